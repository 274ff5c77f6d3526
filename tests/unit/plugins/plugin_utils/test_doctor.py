# SPDX-License-Identifier: Apache-2.0
"""playbooks/doctor.yml's judgement (plugin_utils/_doctor.py, module_utils/_gpu_health.py) on
captured outputs: kernel-log Xid lines, nvidia-smi's counters of a healthy H100 and of a
failing one, NVML's version-mismatch refusal; the report validated against its schema."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import doctor as doctor_filter
from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu_health, _gpu_smi
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _doctor
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures" / "gpu"
SCHEMA = json.loads((ROOT / "docs" / "doctor.schema.json").read_text(encoding="utf-8"))
H100_FACTS = json.loads((FIXTURES / "h100-device-nvml" / "facts-nvml.json").read_text(encoding="utf-8"))
XID_LOG = (FIXTURES / "health" / "kernel-xid.log").read_text(encoding="utf-8")
UNITS = {"kubelet.service": {"active": "active"}, "nvidia-fabricmanager.service": {"active": "inactive"}}


def _smi_health(name):
    _host, gpus = _gpu_smi.parse_smi_xml((FIXTURES / name).read_text(encoding="utf-8"))
    return gpus[0]["health"]


def _facts(health=None, **driver):
    facts = copy.deepcopy(H100_FACTS)
    facts["gpus"][0]["health"] = health if health is not None else _smi_health(
        "h100-80gb-hbm3-ubuntu2404/nvidia-smi-q-x.xml")
    facts["driver"].update(driver)
    return facts


def _node(count="1", allocatable="1", **extra):
    node = {"ready": True, "labels": {"nvidia.com/gpu.count": count, "nvidia.com/gpu.present": "true"},
            "annotations": {}, "extended": {"nvidia.com/gpu": allocatable}, "unschedulable": False}
    node.update(extra)
    return node


def _statuses(report):
    found = {}
    for check in report["checks"]:
        found.setdefault(check["check"], []).append(check["status"])
    return found


# --- Xid lines ----------------------------------------------------------------------------

def test_xid_lines_of_every_form():
    events = _gpu_health.parse_xid_lines(XID_LOG)
    assert [(e["xid"], e["pci_bus_id"]) for e in events] == [
        (13, "0000:18:00.0"), (43, "0000:18:00.0"), (63, "0000:2a:00.0"), (94, "0000:2a:00.0"),
        (79, "0000:9a:00.0"), (154, "0000:ab:00.0"), (3, "0000:01:00.0")]
    fallen = events[4]
    assert fallen["severity"] == "fail" and fallen["action"] == "RESTART_BM" and fallen["pid"] == "<unknown>"
    assert fallen["meaning"] == "GPU has fallen off the bus"
    assert events[0]["pid"] == "48211" and events[0]["severity"] == "warn"
    assert events[2]["action"] == "RESET_GPU" and "reset gpu to activate" in events[2]["message"]
    # Xid 154 says what the driver wants: a reset here, so it fails.
    assert events[5]["severity"] == "fail" and events[5]["what_to_do"] == "the driver asks for: GPU Reset Required"
    assert "not in kubegpu's table" in events[6]["meaning"]
    assert _gpu_health.xid_summary(events)["worst"] == "fail"
    assert _gpu_health.parse_xid_lines("NVRM: loading NVIDIA UNIX Open Kernel Module 580.95.05") == []


def test_kernel_log_source_lines():
    assert _doctor.kernel_log_source("source: journalctl -k -b\n")[0] == {"status": "ok", "message": "journalctl -k -b"}
    source, text = _doctor.kernel_log_source("source: dmesg\n" + XID_LOG)
    assert source["status"] == "ok" and "Xid" in text
    assert _doctor.kernel_log_source("source: none\n")[0]["status"] == "skip"
    assert _doctor.kernel_log_source("")[0]["status"] == "skip"


# --- the counters ----------------------------------------------------------------------------

def test_healthy_h100_capture():
    health = _smi_health("h100-80gb-hbm3-ubuntu2404/nvidia-smi-q-x.xml")
    report = _doctor.node_report("gpu1", "gpu1", _facts(health), gpu_node=True, xid_text="",
                                 xid_source={"status": "ok", "message": "journalctl -k -b"}, units=UNITS,
                                 node=_node(), expected={"resources": {"nvidia.com/gpu": {"count": 1, "exact": True}}},
                                 plugin_pod={"name": "nvidia-device-plugin-x", "phase": "Running", "ready": True},
                                 gpu_labels={"nvidia.com/gpu.count": "1"})
    statuses = _statuses(report)
    assert report["healthy"] is True and report["summary"] == "healthy", report["checks"]
    assert statuses["ecc_errors"] == ["ok"] and statuses["remapped_rows"] == ["ok"]
    assert statuses["retired_pages"] == ["skip"]          # Hopper remaps rows instead
    assert statuses["fabric"] == ["skip"] and statuses["xid_errors"] == ["ok"]
    cordon = {"possible": True, "unschedulable": False, "annotation": None}
    jsonschema.validate(_doctor.fleet_report([dict(report, cordon=cordon)], "0.1.0"), SCHEMA)


def test_failing_gpu_capture():
    sick = _smi_health("health/smi-sick.xml")
    assert sick["ecc"]["volatile"]["uncorrectable"] == 3 and sick["ecc"]["aggregate"]["uncorrectable"] == 7
    assert sick["throttle_reasons"] == ["hw_thermal_slowdown", "hw_power_brake_slowdown"]
    assert sick["remapped_rows"] == {"correctable": 0, "uncorrectable": 2, "pending": True, "failure": True}
    report = _doctor.node_report("gpu1", "gpu1", _facts(sick), gpu_node=True, xid_text=XID_LOG,
                                 xid_source={"status": "ok", "message": "dmesg"}, units=UNITS)
    statuses = _statuses(report)
    assert report["healthy"] is False
    assert statuses["ecc_errors"] == ["fail"] and statuses["remapped_rows"] == ["fail"]
    assert statuses["throttling"] == ["warn"] and statuses["persistence_mode"] == ["warn"]
    assert "fail" in statuses["xid_errors"] and "warn" in statuses["xid_errors"]
    assert report["summary"].startswith("unhealthy: ") and "ecc_errors" in report["summary"]
    xid_79 = [c for c in report["checks"] if c["check"] == "xid_errors" and c["gpu"] == "0000:9a:00.0"][0]
    assert "Xid 79 x1 (GPU has fallen off the bus; drain the node and reboot it" in xid_79["detail"]


def test_driver_library_mismatch_and_lost_gpu():
    facts = _facts(library_mismatch=True)
    facts["errors"] = ["nvml: nvmlInit_v2 failed: NVML_ERROR_LIB_RM_VERSION_MISMATCH: RM has detected an NVML/RM"
                       " version mismatch."]
    report = _doctor.node_report("gpu1", "gpu1", facts, gpu_node=True, node=_node(count="2"), units=UNITS,
                                 expected={"resources": {"nvidia.com/gpu": {"count": 1, "exact": True}}})
    checks = dict((c["check"], c) for c in report["checks"] if c["gpu"] is None)
    assert checks["driver_library_mismatch"]["status"] == "fail"
    assert "NVML_ERROR_LIB_RM_VERSION_MISMATCH" in checks["driver_library_mismatch"]["detail"]
    assert checks["gpus_detected"] == {"check": "gpus_detected", "status": "fail", "gpu": None,
                                       "detail": "1 GPU(s) detected, 2 last known (node label nvidia.com/gpu.count)"}
    assert checks["device_plugin"]["status"] == "skip"


def test_host_without_gpu_skips_every_gpu_check():
    facts = {"count": 0, "gpus": [], "driver": {"loaded": False}, "fabric_manager_needed": False}
    report = _doctor.node_report("cp1", "cp1", facts, gpu_node=False, units=UNITS, node=_node(count=None),
                                 xid_source={"status": "ok", "message": "dmesg"})
    statuses = _statuses(report)
    for name in ("gpus_detected", "driver_loaded", "driver_library_mismatch", "xid_errors", "ecc_errors",
                 "retired_pages", "remapped_rows", "throttling", "persistence_mode", "fabric", "allocatable",
                 "device_plugin", "labels"):
        assert statuses[name] == ["skip"], name
    assert report["healthy"] is True and statuses["kubelet"] == ["ok"] and statuses["node_ready"] == ["ok"]


def test_nvswitch_host_without_fabric_manager_fails():
    facts = _facts(fabric_manager_needed=True)
    facts["fabric_manager_needed"] = True
    report = _doctor.node_report("gpu1", "gpu1", facts, gpu_node=True, units=UNITS)
    fabric = [c for c in report["checks"] if c["check"] == "fabric"][0]
    assert fabric["status"] == "fail" and "nvidia-fabricmanager.service is inactive" in fabric["detail"]


def _container_mode_facts(loaded):
    """A GPU node in container driver mode as gpu_facts reads it on the host: the driver
    container's module in sysfs, no NVML or nvidia-smi of the host's own, so no counters."""
    facts = _facts(health={})
    facts["gpus"][0].pop("health")
    facts["source"] = "sysfs"
    facts["driver"].update({"loaded": loaded, "library_mismatch": False, "install_hints": []})
    return facts


def test_container_driver_mode_reads_the_driver_as_the_driver_containers():
    report = _doctor.node_report("gpu1", "gpu1", _container_mode_facts(True), gpu_node=True, units=UNITS,
                                 driver_mode="container")
    checks = dict((c["check"], c) for c in report["checks"] if c["check"] != "xid_errors")
    assert checks["driver_loaded"]["status"] == "ok"
    assert checks["driver_library_mismatch"]["status"] == "skip"
    assert "inside the driver container" in checks["driver_library_mismatch"]["detail"]
    for name in ("ecc_errors", "retired_pages", "remapped_rows", "throttling", "persistence_mode"):
        assert checks[name]["status"] == "skip"
        assert "nvidia-driver-ctr -- nvidia-smi -q" in checks[name]["detail"], checks[name]
    # The same facts in host mode: the host's own NVML and nvidia-smi failed.
    host_report = _doctor.node_report("gpu1", "gpu1", _container_mode_facts(True), gpu_node=True, units=UNITS)
    host = dict((c["check"], c) for c in host_report["checks"])
    assert "NVML and nvidia-smi failed" in host["ecc_errors"]["detail"]
    assert host["driver_library_mismatch"]["status"] == "ok"


def test_container_driver_mode_without_a_module_points_at_the_driver_pod():
    report = _doctor.node_report("gpu1", "gpu1", _container_mode_facts(False), gpu_node=True, units=UNITS,
                                 driver_mode="container")
    [loaded] = [c for c in report["checks"] if c["check"] == "driver_loaded"]
    assert loaded["status"] == "fail" and report["healthy"] is False
    assert "loaded by the GPU Operator's driver container" in loaded["detail"]
    assert "app=nvidia-driver-daemonset" in loaded["detail"]


def test_context_passes_the_driver_mode():
    report = _doctor.node_report_from_context(_container_mode_facts(True), _context(driver_mode="container"),
                                              boolean=boolean)
    [mismatch] = [c for c in report["checks"] if c["check"] == "driver_library_mismatch"]
    assert mismatch["status"] == "skip"


MARKER = "/var/lib/kubegpu/reboot-required"


def _context(nodes=None, pods=None, **extra):
    """The doctor role's _doctor_node_context for gpu1 (roles/doctor/vars/main.yml): the
    registered results of its reads and the first control plane's two kubectl answers."""
    context = {"host": "gpu1", "node_name": "gpu1", "gpu_node": True, "kubernetes_nodes": ["cp1", "gpu1"],
               "kernel_log": {"changed": False, "stdout": ""}, "host_state": {"files": {MARKER: None}, "units": UNITS},
               "reboot_marker": MARKER, "first_control_plane": "cp1", "nodes": nodes, "pods": pods,
               "mig_strategy": "none", "replicas": "1", "rename_by_default": False, "label_sets": ["gfd"]}
    context.update(extra)
    return context


def test_run_level_report_reads_kubectl_answers_and_the_reboot_marker():
    nodes = {"kind": "NodeList", "items": [{"kind": "Node", "metadata": {
        "name": "gpu1", "labels": {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "annotations": {"kubegpu.io/doctor": "old"}}, "spec": {"unschedulable": True},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {"nvidia.com/gpu": "0"}}}]}
    pods = {"kind": "PodList", "items": [{"kind": "Pod", "metadata": {"name": "nvidia-device-plugin-abc"},
                                          "spec": {"nodeName": "gpu1"},
                                          "status": {"phase": "Running", "conditions": [{"type": "Ready",
                                                                                         "status": "False"}]}}]}
    answers = [{"rc": 0, "stdout": json.dumps(nodes)}, {"rc": 0, "stdout": json.dumps(pods)}]
    report = doctor_filter.doctor_node_report(_facts(), _context(
        *answers, gpu_node="yes", kernel_log={"stdout": "source: none\n"},
        host_state={"files": {MARKER: "os_prereqs: nouveau is loaded\n"}, "units": UNITS}))
    checks = dict((c["check"], c) for c in report["checks"] if c["gpu"] is None)
    assert checks["allocatable"]["status"] == "fail" and "allocatable nvidia.com/gpu is 0" in checks["allocatable"]["detail"]
    assert checks["device_plugin"]["status"] == "fail" and "not ready" in checks["device_plugin"]["detail"]
    assert checks["pending_reboot"] == {"check": "pending_reboot", "status": "warn", "gpu": None,
                                        "detail": "reboot required: os_prereqs: nouveau is loaded"}
    assert checks["xid_errors"]["status"] == "skip"
    assert checks["labels"]["status"] == "warn" and "nvidia.com/gpu.memory" in checks["labels"]["detail"]
    assert report["cordon"] == {"possible": True, "unschedulable": True, "annotation": "old"}
    operator_mode = doctor_filter.doctor_node_report(_facts(), _context(answers[0], {"skipped": True}))
    assert [c["status"] for c in operator_mode["checks"] if c["check"] == "device_plugin"] == ["skip"]
    no_pod = doctor_filter.doctor_node_report(_facts(), _context(
        answers[0], {"rc": 0, "stdout": '{"kind": "PodList", "items": []}'}))
    assert [c["detail"] for c in no_pod["checks"] if c["check"] == "device_plugin"] == [
        "no device plugin pod on this node"]
    failed = doctor_filter.doctor_node_report(_facts(), _context({"rc": 1, "stderr": "connection refused"}, {"rc": 0}))
    ready = [c for c in failed["checks"] if c["check"] == "node_ready"][0]
    assert ready["status"] == "fail" and "connection refused" in ready["detail"]
    fleet = doctor_filter.doctor_fleet_report([report, failed])
    jsonschema.validate(fleet, SCHEMA)
    assert fleet["healthy"] is False and fleet["counts"] == {"nodes": 2, "unhealthy": 2}
    assert fleet["kubegpu_version"] == _doctor.collection_version() != ""
    text = doctor_filter.doctor_table(fleet)
    assert text.splitlines()[0].split() == ["NODE", "GPUS", "DRIVER", "RESULT"]
    assert "FAIL gpu1: allocatable: allocatable nvidia.com/gpu is 0, expected 1" in text
    assert text.splitlines()[-1] == "fleet: UNHEALTHY (2 node(s), 2 unhealthy)"


@pytest.mark.parametrize("value", ["false", "no", False])
def test_gpu_node_read_as_the_specs_read_booleans(value):
    report = _doctor.node_report_from_run("cp1", "cp1", {"count": 0, "gpus": [], "driver": {}}, gpu_node=value,
                                          units=UNITS, boolean=boolean)
    assert _statuses(report)["driver_loaded"] == ["skip"]


NODES = {"rc": 0, "stdout": json.dumps({"kind": "NodeList", "items": [{"kind": "Node", "metadata": {
    "name": "gpu1", "labels": {}}, "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                          "allocatable": {"nvidia.com/gpu": "1"}}}]})}


@pytest.mark.parametrize("context, expected", [
    # No host in the control plane group: the API server is not asked, whatever was registered.
    (_context(NODES, first_control_plane=""), "the API server was not asked (no admin kubeconfig on the first"
                                              " control plane)"),
    # The kubectl task skipped (no admin kubeconfig), or its result not set on the first control
    # plane (None: the role's default is {'skipped': true}).
    (_context({"skipped": True}), "the API server was not asked (no admin kubeconfig on the first control plane)"),
    (_context(None), "the API server was not asked (no admin kubeconfig on the first control plane)"),
    (_context(NODES), "Ready"),
    # Not in k8s_cluster: no cluster checks.
    (_context(NODES, kubernetes_nodes=["cp1"]), "not a Kubernetes node (group k8s_cluster)"),
    (_context(NODES, kubernetes_nodes=None), "not a Kubernetes node (group k8s_cluster)"),
])
def test_context_reads_the_cluster_answers_of_the_first_control_plane(context, expected):
    report = doctor_filter.doctor_node_report(_facts(), context)
    assert [c["detail"] for c in report["checks"] if c["check"] == "node_ready"] == [expected]


@pytest.mark.parametrize("files, status", [
    ({MARKER: None}, "ok"), ({MARKER: ""}, "ok"), ({}, "ok"), (None, "ok"),
    ({MARKER: "os_prereqs: nouveau is loaded\n"}, "warn"), ({"/elsewhere": "reason\n"}, "ok"),
])
def test_context_reads_the_reboot_marker_from_host_state(files, status):
    report = _doctor.node_report_from_context(_facts(), _context(host_state={"files": files, "units": UNITS}))
    assert _statuses(report)["pending_reboot"] == [status]


def test_context_reads_the_kernel_log_stdout():
    with_xid = _context(kernel_log={"stdout": "source: dmesg\n" + XID_LOG})
    assert _statuses(doctor_filter.doctor_node_report(_facts(), with_xid))["xid_errors"][0] in ("warn", "fail")
    for kernel_log in ({}, None, {"stdout": ""}, {"stdout": "source: none"}):
        report = _doctor.node_report_from_context(_facts(), _context(kernel_log=kernel_log))
        assert _statuses(report)["xid_errors"] == ["skip"]


def test_context_without_units_and_with_settings_as_strings():
    report = _doctor.node_report_from_context(_facts(), _context(
        NODES, host_state={}, gpu_node="no", replicas="2", rename_by_default="yes", label_sets=None), boolean=boolean)
    assert _statuses(report)["kubelet"] == ["fail"]
    assert [c["detail"] for c in report["checks"] if c["check"] == "allocatable"] == ["not a GPU node"]


def test_filter_refuses_what_is_not_a_context():
    with pytest.raises(AnsibleFilterError, match="the doctor role's context"):
        doctor_filter.doctor_node_report(_facts(), "gpu1")
    with pytest.raises(AnsibleFilterError, match="kubegpu_gpu facts"):
        doctor_filter.doctor_node_report([], _context())
