# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: roles/validate's judgement of one node - what the wait found missing,
what else the node lacks, which test Job ran and how it ended, and what names a test.

The inputs are what the role read in this run: the node as ``k8s_node_info`` shows it, the
registered results of its kubectl runs, the expected resources of
``_gpu_resources.expected_resources``. The message texts are the report's (docs/validate.md).
Pure functions.
"""

from __future__ import annotations

import hashlib
import json

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import NVLINK5_KERNEL_MODULES
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _k8s_parse
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_driver import _as_bool

RUNTIME_CLASS_MISSING = ("RuntimeClass nvidia is missing (stage 7 creates it where nvidia is not containerd's"
                         " default handler)")
# What names a test Job (tasks/job.yml), in the order its hash reads them.
JOB_INPUTS = ("node", "image", "command", "driver", "resources", "runtime_class", "resource")


def node_problems(info, node_name, expected, wait_gpus):
    """What the node lacks as the wait last read it ([] when nothing): registered, Ready
    and, when ``wait_gpus``, every resource of ``expected`` in its allocatable
    (``_gpu_resources.resource_problems``). ``info``: the node as k8s_node_info shows it,
    {} when not registered."""
    if not info:
        return ["node %s is not registered" % node_name]
    problems = [] if info.get("ready") else ["node is not Ready"]
    if _as_bool(wait_gpus):
        problems.extend(_gpu_resources.resource_problems(info.get("extended") or {}, expected or {}))
    return problems


# What a GPU's NVLink fabric registration reads once it is done (nvidia-smi -q "Fabric":
# State Completed, Status Success; NVIDIA Fabric Manager user guide as quoted in
# siderolabs/extensions#717, nvml.h nvmlGpuFabricInfo_t: the status counts once the state
# is complete). gpu_facts reads the same from NVML or nvidia-smi -q -x (docs/gpu_facts.md).
FABRIC_DONE = ("Completed", "Success")


def fabric_wait_needed(facts):
    """Whether this host's GPUs wait for an NVLink fabric before CUDA can use them: gpu_facts
    found NVSwitches or NVLink5 switch trays beside its GPUs (``fabric_manager_needed``)."""
    facts = facts or {}
    return bool(facts.get("fabric_manager_needed") or facts.get("nvlsm_needed"))


def fabric_problems(facts, host="this host", timeout=None):
    """[] when every GPU that reports an NVLink fabric state reads Completed / Success, or
    the host needs no fabric; else one message naming the host, each GPU that is not there
    (index, bus id, state/status) and the fix. ``facts``: the GPU facts (kubegpu_gpu).

    A GPU whose state reads null has no fabric state to wait for (NVML's NOT_SUPPORTED,
    nvidia-smi's N/A: GPUs older than Hopper, a GPU passed through alone): the fabric manager's
    service is all that can be checked there (playbooks/doctor.yml does)."""
    facts = facts or {}
    if not fabric_wait_needed(facts):
        return []
    waiting = []
    for gpu in facts.get("gpus") or []:
        fabric = (gpu.get("health") or {}).get("fabric") or {}
        state, status = fabric.get("state"), fabric.get("status")
        if state is None or (state, status or "Success") == FABRIC_DONE:
            continue
        waiting.append("%s (%s) %s%s" % (gpu.get("index"), gpu.get("pci_bus_id"), state,
                                         "/%s" % status if status else ""))
    if not waiting:
        return []
    nvlsm = bool(facts.get("nvlsm_needed"))
    where = "after %s s " % timeout if timeout not in (None, "") else ""
    fix = ("check the fabric manager on %s: systemctl status nvidia-fabricmanager; journalctl -u"
           " nvidia-fabricmanager" % host)
    if nvlsm:
        fix += ("; on this NVLink5 system it starts NVLSM too (package nvlsm, log /var/log/nvlsm.log), which needs"
                " the kernel modules %s loaded" % ", ".join(NVLINK5_KERNEL_MODULES))
        missing = facts.get("nvlink5_kernel_modules_missing") or []
        if missing:
            fix += " (not loaded now: %s)" % ", ".join(missing)
    return ["NVLink fabric not ready on %s %s- GPU %s; CUDA cannot use these GPUs until the fabric manager"
            " registers them (state Completed, status Success); %s" % (host, where, ", GPU ".join(waiting), fix)]


def fabric_read_problems(read, host="this host", timeout=None):
    """fabric_problems of a registered kubegpu.cluster.gpu_facts run (roles/validate
    tasks/wait.yml): [] where the task was skipped (no fabric to wait for) or not run."""
    read = read or {}
    if read.get("skipped") or not read:
        return []
    facts = (read.get("ansible_facts") or {}).get("kubegpu_gpu")
    if facts is None:
        return ["could not read the GPU facts on %s: %s" % (host, read.get("msg") or "gpu_facts gave none")]
    # A read whose retries ran out is marked failed; its facts are the last ones read.
    return fabric_problems(facts, host, timeout)


def reboot_reasons(marker_text):
    """The reasons for a reboot the shared marker records (one a line, each stage's own
    line prefixed with the stage; blank lines and surrounding space dropped)."""
    return [line.strip() for line in str(marker_text or "").splitlines() if line.strip()]


def node_checks(wait_problems, gpu_node, runtime_class_name, runtime_class_read, reboot_marker, reboot_reasons):
    """The node's failed checks before its test Jobs: what the wait found missing, then on a
    GPU node whose test pods use RuntimeClass nvidia a cluster without it
    (``runtime_class_read``: the registered ``kubectl get runtimeclass nvidia
    --ignore-not-found -o name``), then the reasons for a reboot recorded in the marker."""
    checks = list(wait_problems or [])
    found = str((runtime_class_read or {}).get("stdout") or "").strip()
    if _as_bool(gpu_node) and runtime_class_name == "nvidia" and not found:
        checks.append(RUNTIME_CLASS_MISSING)
    if reboot_reasons:
        checks.append("reboot required (%s: %s)" % (reboot_marker, "; ".join(str(r) for r in reboot_reasons)))
    return checks


def job_result(status_read, log_read, kind, passed_before=False, check_mode=False):
    """"ok", or why the test Job of ``kind`` failed (the last line of its log).
    ``status_read``/``log_read``: the registered ``kubectl get job -o json`` and
    ``kubectl logs`` (skipped where an earlier success stands or in check mode, which
    predicts no test outcome)."""
    if _as_bool(passed_before) or _as_bool(check_mode):
        return "ok"
    if _k8s_parse.job_state((status_read or {}).get("stdout")) == "succeeded":
        return "ok"
    lines = (log_read or {}).get("stdout_lines") or []
    return "%s Job failed: %s" % (kind, lines[-1] if lines else "")


def job_id(inputs):
    """Ten hex digits naming a test: the sha256 of the JOB_INPUTS of ``inputs`` as a JSON
    list (the role's ``_validate_job_inputs``). The same test keeps its name from run to
    run, so a Job of that name that succeeded is the proof of an earlier run."""
    inputs = inputs or {}
    text = json.dumps([inputs.get(name) for name in JOB_INPUTS])
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:10]
