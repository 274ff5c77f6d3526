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
