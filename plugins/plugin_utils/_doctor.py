# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: playbooks/doctor.yml's judgement of a node, and the fleet report.

``node_report`` turns what doctor read in this run (gpu_facts with its health fields, the
kernel log's Xid events, the reboot marker, systemd units, the node as the API server shows
it) into checks, each ``{"check", "status", "gpu", "detail"}`` with status ``ok``, ``warn``,
``fail`` or ``skip`` (the check does not apply here, or what it reads is not there: a host
without GPUs skips every GPU check). A node is healthy when no check failed.
``fleet_report`` is the JSON document doctor writes (docs/doctor.schema.json), ``table``
the text table it prints. Pure functions; the rules are documented in docs/doctor.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu_health
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_labels
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _k8s_parse
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _validate

SCHEMA_VERSION = 1
STATUSES = ("ok", "warn", "fail", "skip")
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
# Checks in report order; docs/doctor.md describes each.
CHECKS = ("gpus_detected", "driver_loaded", "driver_library_mismatch", "xid_errors", "ecc_errors",
          "retired_pages", "remapped_rows", "throttling", "persistence_mode", "fabric", "pending_reboot",
          "kubelet", "node_ready", "allocatable", "device_plugin", "labels")


def _check(name, status, detail, gpu=None):
    return {"check": name, "status": status, "gpu": gpu, "detail": detail}


def _gpu_name(gpu):
    return "%s %s" % (gpu.get("index"), gpu.get("pci_bus_id"))


# nvidia_driver_mode container: the GPU Operator's driver container loads the module and keeps
# the driver's user space (nvidia-smi, libnvidia-ml) under its own root, not the host's.
DRIVER_CONTAINER_HINT = ("the GPU Operator's driver container (nvidia_driver_mode: container): kubectl -n gpu-operator"
                         " get pods -l app=nvidia-driver-daemonset -o wide; kubectl -n gpu-operator exec"
                         " <its pod on this node> -c nvidia-driver-ctr -- nvidia-smi -q")


def _gpu_checks(facts, gpu_node, expected_count, driver_mode="host"):
    """Checks read from gpu_facts: detection, driver, counters. In container driver mode the
    driver is the driver container's: a missing module is its failure, and the counters are
    read inside it (the host has no NVML or nvidia-smi of its own)."""
    container = str(driver_mode or "host").strip().lower() == "container"
    checks = []
    gpus = facts.get("gpus") or []
    count = int(facts.get("count") or 0)
    if not gpu_node and not count:
        return [_check(name, "skip", "no NVIDIA GPU on this host") for name in
                ("gpus_detected", "driver_loaded", "driver_library_mismatch", "ecc_errors", "retired_pages",
                 "remapped_rows", "throttling", "persistence_mode")]
    pci_warnings = [w for w in facts.get("warnings") or [] if "PCI bus has" in str(w)]
    if expected_count is not None and count < expected_count:
        checks.append(_check("gpus_detected", "fail", "%d GPU(s) detected, %d last known (node label %s)%s"
                             % (count, expected_count, GPU_COUNT_LABEL,
                                "; " + pci_warnings[0] if pci_warnings else "")))
    elif pci_warnings:
        checks.append(_check("gpus_detected", "fail", pci_warnings[0]))
    elif gpu_node and not count:
        checks.append(_check("gpus_detected", "fail", "a GPU node, but no NVIDIA GPU was detected"))
    else:
        checks.append(_check("gpus_detected", "ok", "%d GPU(s)%s" % (
            count, "" if expected_count is None else ", as last known")))
    driver = facts.get("driver") or {}
    if driver.get("loaded"):
        checks.append(_check("driver_loaded", "ok", "driver %s (%s)" % (driver.get("version"), driver.get("flavour"))))
    else:
        hints = "; ".join(driver.get("install_hints") or [])
        if container:
            hints = "it is loaded by " + DRIVER_CONTAINER_HINT
        checks.append(_check("driver_loaded", "fail", "the NVIDIA driver is not loaded" + (" (%s)" % hints if hints else "")))
    if driver.get("library_mismatch"):
        reasons = [str(e) for e in (facts.get("errors") or []) + (facts.get("warnings") or [])
                   if "mismatch" in str(e).lower() or "differs from user-space" in str(e)]
        checks.append(_check("driver_library_mismatch", "fail", "; ".join(reasons) or "driver/library version mismatch"
                             + ": reboot the node (drain it first) to load the installed driver"))
    elif container and driver.get("loaded") and facts.get("source") not in ("nvml", "nvidia_smi"):
        checks.append(_check("driver_library_mismatch", "skip", "the driver's library is inside the driver container"
                             " (nvidia_driver_mode: container), which brings module and library together"))
    else:
        checks.append(_check("driver_library_mismatch", "ok" if driver.get("loaded") else "skip",
                             "kernel module and library agree" if driver.get("loaded") else "driver not loaded"))

    healths = [(g, g.get("health")) for g in gpus]
    known = [(g, h) for g, h in healths if isinstance(h, dict)]
    if not known and container and driver.get("loaded"):
        reason = ("no GPU counters on the host: the driver's NVML and nvidia-smi are inside " + DRIVER_CONTAINER_HINT)
    elif not known:
        reason = "no GPU counters on this layer (%s): the driver is not loaded or NVML and nvidia-smi failed" % (
            facts.get("source") or "none")
    if not known:
        checks.extend(_check(name, "skip", reason) for name in
                      ("ecc_errors", "retired_pages", "remapped_rows", "throttling", "persistence_mode"))
    for gpu, health in known:
        name = _gpu_name(gpu)
        ecc = health.get("ecc") or {}
        volatile = (ecc.get("volatile") or {}).get("uncorrectable")
        aggregate = (ecc.get("aggregate") or {}).get("uncorrectable")
        if volatile:
            checks.append(_check("ecc_errors", "fail", "%d uncorrectable ECC error(s) since the driver loaded"
                                 " (%s lifetime): drain the node and reset the GPU" % (volatile, aggregate), name))
        elif aggregate:
            checks.append(_check("ecc_errors", "warn", "%d uncorrectable ECC error(s) in the GPU's lifetime,"
                                 " none since the driver loaded" % aggregate, name))
        elif volatile is None and aggregate is None:
            checks.append(_check("ecc_errors", "skip", "ECC counters not reported (ECC %s)"
                                 % (health.get("ecc_mode") or "unknown"), name))
        else:
            checks.append(_check("ecc_errors", "ok", "no uncorrectable ECC errors", name))
        pages = health.get("retired_pages") or {}
        if pages.get("single_bit") is None and pages.get("double_bit") is None:
            checks.append(_check("retired_pages", "skip", "page retirement not reported (row remapping on"
                                 " Ampere and newer)", name))
        elif pages.get("pending"):
            checks.append(_check("retired_pages", "warn", "a page retirement is pending: reset the GPU or reboot"
                                 " to activate it", name))
        else:
            checks.append(_check("retired_pages", "ok", "%s single-bit, %s double-bit page(s) retired"
                                 % (pages.get("single_bit"), pages.get("double_bit")), name))
        rows = health.get("remapped_rows") or {}
        if rows.get("failure"):
            checks.append(_check("remapped_rows", "fail", "row remapping failed (no spare rows left): the GPU"
                                 " needs service", name))
        elif rows.get("pending"):
            checks.append(_check("remapped_rows", "warn", "%s uncorrectable row remap(s) pending: drain the node and"
                                 " reset the GPU to activate them" % rows.get("uncorrectable"), name))
        elif rows.get("uncorrectable") is None and rows.get("correctable") is None:
            checks.append(_check("remapped_rows", "skip", "row remapping not reported (before Ampere)", name))
        else:
            checks.append(_check("remapped_rows", "ok", "%s correctable, %s uncorrectable row(s) remapped"
                                 % (rows.get("correctable"), rows.get("uncorrectable")), name))
        reasons = health.get("throttle_reasons") or []
        checks.append(_check("throttling", "warn" if reasons else "ok",
                             ("clocks held down: %s" % ", ".join(reasons)) if reasons else "no power or thermal"
                             " slowdown", name))
        persistence = health.get("persistence_mode")
        if persistence is None:
            checks.append(_check("persistence_mode", "skip", "unknown", name))
        else:
            checks.append(_check("persistence_mode", "ok" if persistence else "warn",
                                 "on" if persistence else "off: start nvidia-persistenced", name))
    return checks


def _fabric_check(facts, units):
    if not facts.get("fabric_manager_needed"):
        return _check("fabric", "skip", "no NVSwitch on this host")
    unit = (units or {}).get("nvidia-fabricmanager.service") or {}
    if unit.get("active") != "active":
        return _check("fabric", "fail", "NVSwitch host and nvidia-fabricmanager.service is %s: CUDA cannot use the"
                      " GPUs until the fabric is up" % (unit.get("active") or "not installed"))
    states = set()
    for gpu in facts.get("gpus") or []:
        fabric = (gpu.get("health") or {}).get("fabric") or {}
        if fabric.get("state") is not None:
            states.add((fabric.get("state"), fabric.get("status")))
    bad = sorted(s for s in states if s[0] != "Completed" or (s[1] not in (None, "Success")))
    if bad:
        return _check("fabric", "fail", "fabric state %s" % ", ".join("%s/%s" % s for s in bad))
    return _check("fabric", "ok", "nvidia-fabricmanager active" + (", fabric Completed" if states else ""))


def _xid_checks(xid_events, xid_source):
    if xid_source.get("status") != "ok":
        return [_check("xid_errors", "skip", "kernel log not readable here: %s" % xid_source.get("message"))]
    if not xid_events:
        return [_check("xid_errors", "ok", "no Xid in the kernel log since boot (%s)" % xid_source.get("message"))]
    checks = []
    by_gpu = {}
    for event in xid_events:
        by_gpu.setdefault(event["pci_bus_id"], []).append(event)
    for bus_id, events in sorted(by_gpu.items()):
        worst = "fail" if any(e["severity"] == "fail" for e in events) else "warn"
        seen = {}
        for event in events:
            seen.setdefault(event["xid"], [event, 0])[1] += 1
        parts = ["Xid %d x%d (%s; %s)" % (xid, n, e["meaning"], e["what_to_do"]) for xid, (e, n) in sorted(seen.items())]
        checks.append(_check("xid_errors", worst, "; ".join(parts), bus_id))
    return checks


def _cluster_checks(kubernetes_node, node, expected, gpu_node, plugin_pod, units, gpu_labels, cluster_error=None):
    if not kubernetes_node:
        return [_check(name, "skip", "not a Kubernetes node (group k8s_cluster)")
                for name in ("kubelet", "node_ready", "allocatable", "device_plugin", "labels")]
    checks = []
    kubelet = (units or {}).get("kubelet.service") or {}
    checks.append(_check("kubelet", "ok" if kubelet.get("active") == "active" else "fail",
                         "kubelet.service is %s" % (kubelet.get("active") or "not installed")))
    if cluster_error:
        checks.append(_check("node_ready", "fail", cluster_error))
        checks.extend(_check(name, "skip", "the API server did not answer") for name in
                      ("allocatable", "device_plugin", "labels"))
        return checks
    if node is None:
        checks.extend(_check(name, "skip", "the API server was not asked (no admin kubeconfig on the first control"
                             " plane)") for name in ("node_ready", "allocatable", "device_plugin", "labels"))
        return checks
    if not node:
        checks.append(_check("node_ready", "fail", "the node is not registered"))
        checks.extend(_check(name, "skip", "the node is not registered") for name in ("allocatable", "device_plugin", "labels"))
        return checks
    checks.append(_check("node_ready", "ok" if node.get("ready") else "fail", "Ready" if node.get("ready") else "not Ready"))
    if not gpu_node:
        checks.extend(_check(name, "skip", "not a GPU node") for name in ("allocatable", "device_plugin", "labels"))
        return checks
    problems = _gpu_resources.resource_problems(node.get("extended") or {}, expected or {})
    checks.append(_check("allocatable", "fail" if problems else "ok", "; ".join(problems) if problems else
                         _gpu_resources.summary(node.get("extended") or {}, expected or {})))
    if plugin_pod is None:
        checks.append(_check("device_plugin", "skip", "GPU Operator mode: the Operator runs the device plugin"))
    elif not plugin_pod:
        checks.append(_check("device_plugin", "fail", "no device plugin pod on this node"))
    else:
        ready = plugin_pod.get("ready")
        checks.append(_check("device_plugin", "ok" if ready else "fail", "pod %s %s%s" % (
            plugin_pod.get("name"), plugin_pod.get("phase"), "" if ready else ", not ready")))
    labels = node.get("labels") or {}
    drift = sorted(name for name, value in (gpu_labels or {}).items() if labels.get(name) != value)
    checks.append(_check("labels", "warn" if drift else "ok",
                         ("labels differ from this run's GPU facts: %s (re-run playbooks/gpu_node_labels.yml)"
                          % ", ".join("%s=%s (node: %s)" % (n, gpu_labels[n], labels.get(n)) for n in drift))
                         if drift else "GPU labels match this run's facts"))
    return checks


def _reboot_check(marker):
    reasons = _validate.reboot_reasons(marker)
    if reasons:
        return _check("pending_reboot", "warn", "reboot required: %s" % "; ".join(reasons))
    return _check("pending_reboot", "ok", "no reboot pending")


def kernel_log_source(stdout):
    """(source, text) of the doctor role's kernel-log read: its first line says which
    command answered ("source: journalctl -k -b", "source: dmesg", "source: none")."""
    lines = (stdout or "").splitlines()
    first = lines[0] if lines else ""
    if not first.startswith("source: "):
        return {"status": "skip", "message": "no kernel log was read"}, ""
    name = first[len("source: "):].strip()
    if name == "none":
        return {"status": "skip", "message": "neither journalctl -k nor dmesg may be read (in a container, the"
                                             " host's kernel log is the host's to read)"}, ""
    return {"status": "ok", "message": name}, "\n".join(lines[1:])


def cluster_view(answers, node_name):
    """(node, plugin pod, error) of one node from the doctor role's kubectl runs on the first
    control plane: [nodes, kubegpu's device plugin pods], registered results (rc, stdout,
    stderr; {"skipped": true} when not run). (None, None, None) when the API server was not
    asked; (None, None, message) when kubectl failed. The pod is None when the pods were not
    asked (GPU Operator mode), {} when the node has none."""
    answers = [a if isinstance(a, dict) else {"rc": 0, "stdout": a} for a in (answers or [])]
    if not answers or answers[0].get("skipped"):
        return None, None, None
    failed = [a for a in answers if not a.get("skipped") and a.get("rc", 0) != 0]
    if failed:
        message = (failed[0].get("stderr") or failed[0].get("msg") or "").strip()
        return None, None, "kubectl on the first control plane failed: %s" % (message[:300] or "rc %s" % failed[0].get("rc"))
    try:
        nodes = _k8s_parse.node_info(answers[0].get("stdout") or "")
        pods = None
        if len(answers) > 1 and not answers[1].get("skipped"):
            pods = _k8s_parse._items(answers[1].get("stdout") or "", "Pod")
    except (_k8s_parse.K8sParseError, KeyError, TypeError) as exc:
        return None, None, "kubectl's answer could not be read: %s" % exc
    node = nodes.get(node_name, {})
    if pods is None:
        return node, None, None
    pod = {}
    for item in pods:
        spec, status = item.get("spec") or {}, item.get("status") or {}
        if spec.get("nodeName") != node_name:
            continue
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
        pod = {"name": (item.get("metadata") or {}).get("name"), "phase": status.get("phase"), "ready": ready}
        break
    return node, pod, None


def collection_version(root=None):
    """The collection's version: MANIFEST.json of an installed collection, else galaxy.yml."""
    base = Path(root) if root else Path(__file__).resolve().parents[2]
    manifest = base / "MANIFEST.json"
    if manifest.is_file():
        return str(json.loads(manifest.read_text(encoding="utf-8")).get("collection_info", {}).get("version", ""))
    galaxy = base / "galaxy.yml"
    if galaxy.is_file():
        for line in galaxy.read_text(encoding="utf-8").splitlines():
            if line.startswith("version:"):
                return line.split(":", 1)[1].strip().strip("'\"")
    return ""


def node_report_from_run(host, node_name, facts, gpu_node=False, kubernetes_node=True, kernel_log="",
                         reboot_marker="", units=None, cluster=None, mig_strategy="none", replicas=1,
                         rename_by_default=False, label_sets=("gfd",), boolean=bool, driver_mode="host"):
    """node_report from what the doctor role read in this run: the kernel-log command's
    stdout, the two kubectl answers of the first control plane, and the settings of
    stages 7 and 8 (what the node should advertise and be labelled with)."""
    facts = facts or {}
    xid_source, xid_text = kernel_log_source(kernel_log)
    node, plugin_pod, cluster_error = cluster_view(cluster, node_name)
    try:
        expected = _gpu_resources.expected_resources(facts, mig_strategy=str(mig_strategy or "none"),
                                                     replicas=int(str(replicas or 1)),
                                                     rename_by_default=boolean(rename_by_default))
    except (_gpu_resources.GpuResourcesError, ValueError) as exc:
        expected = {"resources": {}, "problems": [str(exc)], "notes": []}
    labels = dict(_gpu_labels.node_labels(facts, label_sets=tuple(label_sets or ("gfd",))), **{
        "nvidia.com/gpu.present": "true"}) if boolean(gpu_node) else {}
    report = node_report(host, node_name, facts, gpu_node=boolean(gpu_node), kubernetes_node=bool(kubernetes_node),
                         xid_text=xid_text, xid_source=xid_source, reboot_marker=reboot_marker, units=units,
                         node=node, expected=expected, plugin_pod=plugin_pod, gpu_labels=labels,
                         cluster_error=cluster_error, driver_mode=driver_mode)
    report["cordon"] = {"possible": bool(node), "unschedulable": bool((node or {}).get("unschedulable")),
                        "annotation": ((node or {}).get("annotations") or {}).get(CORDON_ANNOTATION)}
    return report


def node_report_from_context(facts, context, boolean=bool):
    """node_report_from_run over what the doctor role gathered for one host, as one mapping
    (the role's ``_doctor_node_context``): ``host``, ``node_name``, ``gpu_node``;
    ``kubernetes_nodes``, the hosts of k8s_cluster (the host is a Kubernetes node when it is
    one of them); ``kernel_log`` and ``host_state``, the registered results of the kernel-log
    read and of host_state (its ``files`` hold the reboot marker, read at the path
    ``reboot_marker``; its ``units``); ``first_control_plane`` ("" when the group is empty:
    the API server is not asked) and ``nodes``/``pods``, that host's two kubectl answers
    (None or {"skipped": true} where not run); and the settings ``mig_strategy``,
    ``replicas``, ``rename_by_default``, ``label_sets`` and ``driver_mode`` (nvidia_driver_mode)."""
    context = context or {}
    host = context.get("host")
    host_state = context.get("host_state") or {}
    kernel_log = context.get("kernel_log") or {}
    cluster = [context.get("nodes") or {"skipped": True}, context.get("pods") or {"skipped": True}] \
        if context.get("first_control_plane") else []
    return node_report_from_run(
        host, context.get("node_name"), facts, gpu_node=context.get("gpu_node", False),
        kubernetes_node=host in (context.get("kubernetes_nodes") or []),
        kernel_log=kernel_log.get("stdout") or "",
        reboot_marker=(host_state.get("files") or {}).get(context.get("reboot_marker")) or "",
        units=host_state.get("units"), cluster=cluster,
        mig_strategy=context.get("mig_strategy", "none"), replicas=context.get("replicas", 1),
        rename_by_default=context.get("rename_by_default", False),
        label_sets=context.get("label_sets") or ("gfd",), boolean=boolean,
        driver_mode=context.get("driver_mode") or "host")


CORDON_ANNOTATION = "kubegpu.io/doctor"


def expected_count(node):
    """The last known GPU count: the node label stage 8 wrote, None without one."""
    value = ((node or {}).get("labels") or {}).get(GPU_COUNT_LABEL)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def node_report(host, node_name, facts, gpu_node=False, kubernetes_node=True, xid_text="", xid_source=None,
                reboot_marker="", units=None, node=None, expected=None, plugin_pod=None, gpu_labels=None,
                cluster_error=None, driver_mode="host"):
    """One node's report: {"host", "node", "healthy", "summary", "gpus", "checks"}.

    ``node``: the node as kubectl shows it (k8s_node_info), {} when not registered, None when
    the API server was not asked; ``expected``: gpu_expected_resources of this run's facts;
    ``plugin_pod``: {"name", "phase", "ready"} of kubegpu's device plugin pod on the node,
    {} when none, None when not asked; ``gpu_labels``: the labels stage 8 computes from this
    run's facts (nvidia.com/gpu.*), compared with the node's."""
    facts = facts or {}
    xid_source = xid_source or {"status": "skip", "message": "not read"}
    events = _gpu_health.parse_xid_lines(xid_text) if xid_source.get("status") == "ok" else []
    checks = _gpu_checks(facts, gpu_node, expected_count(node), driver_mode)
    checks.extend(_xid_checks(events, xid_source) if (gpu_node or facts.get("count")) else [
        _check("xid_errors", "skip", "no NVIDIA GPU on this host")])
    checks.append(_fabric_check(facts, units))
    checks.append(_reboot_check(reboot_marker))
    checks.extend(_cluster_checks(kubernetes_node, node, expected, gpu_node, plugin_pod, units, gpu_labels,
                                  cluster_error))
    order = dict((name, index) for index, name in enumerate(CHECKS))
    checks.sort(key=lambda c: order.get(c["check"], len(order)))
    failed = [c for c in checks if c["status"] == "fail"]
    warned = [c for c in checks if c["status"] == "warn"]
    summary = "healthy" if not failed and not warned else (
        "unhealthy: " + "; ".join(sorted(set(c["check"] for c in failed))) if failed
        else "healthy, with warnings: " + "; ".join(sorted(set(c["check"] for c in warned))))
    gpus = [{"index": g.get("index"), "pci_bus_id": g.get("pci_bus_id"), "name": g.get("name"), "uuid": g.get("uuid")}
            for g in facts.get("gpus") or []]
    return {"host": str(host), "node": str(node_name), "healthy": not failed, "summary": summary,
            "gpu_count": int(facts.get("count") or 0), "driver": (facts.get("driver") or {}).get("version"),
            "gpus": gpus, "xid_events": events, "checks": checks}


def fleet_report(nodes, kubegpu_version=""):
    """The JSON document: {"schema_version", "kind", "kubegpu_version", "healthy", "nodes"}."""
    nodes = sorted(nodes or [], key=lambda n: n["node"])
    return {"schema_version": SCHEMA_VERSION, "kind": "kubegpu-doctor", "kubegpu_version": str(kubegpu_version),
            "healthy": all(n["healthy"] for n in nodes),
            "counts": {"nodes": len(nodes), "unhealthy": len([n for n in nodes if not n["healthy"]])},
            "nodes": nodes}


def table(report):
    """A fixed-width text table: node, GPUs, driver, result, then one line per failed or
    warned check."""
    rows = [("NODE", "GPUS", "DRIVER", "RESULT")]
    for node in report.get("nodes") or []:
        rows.append((node["node"], str(node["gpu_count"]), node.get("driver") or "-",
                     "OK" if node["summary"] == "healthy" else ("FAIL" if not node["healthy"] else "WARN")))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for node in report.get("nodes") or []:
        for check in node["checks"]:
            if check["status"] in ("fail", "warn"):
                lines.append("%s %s: %s%s: %s" % (check["status"].upper(), node["node"], check["check"],
                                                  " [GPU %s]" % check["gpu"] if check["gpu"] else "", check["detail"]))
    lines.append("fleet: %s (%d node(s), %d unhealthy)" % ("healthy" if report.get("healthy") else "UNHEALTHY",
                                                           report["counts"]["nodes"], report["counts"]["unhealthy"]))
    return "\n".join(lines)
