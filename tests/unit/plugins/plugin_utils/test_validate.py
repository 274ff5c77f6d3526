# SPDX-License-Identifier: Apache-2.0
"""roles/validate's judgement of a node (plugin_utils/_validate.py, filters in plugins/filter/kubeadm.py):
what the wait found missing, the checks before the test Jobs, a Job's result and the name of a test."""
from __future__ import annotations

import json

import pytest

from ansible_collections.kubegpu.cluster.plugins.filter.kubeadm import FilterModule
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _validate
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._k8s_parse import K8sParseError

FILTERS = FilterModule().filters()
EXPECTED = {"resources": {"nvidia.com/gpu": {"count": 8, "exact": True}}, "problems": [], "notes": []}
REFUSED = {"resources": {}, "problems": ["migStrategy single needs MIG enabled on all GPUs or none"], "notes": []}
READY = {"ready": True, "extended": {"nvidia.com/gpu": "8"}}


@pytest.mark.parametrize("info, expected, wait_gpus, problems", [
    ({}, EXPECTED, True, ["node gpu1 is not registered"]),
    (None, EXPECTED, False, ["node gpu1 is not registered"]),
    (READY, EXPECTED, True, []),
    ({"ready": False, "extended": {"nvidia.com/gpu": "8"}}, EXPECTED, True, ["node is not Ready"]),
    ({"ready": True, "extended": {"nvidia.com/gpu": "7"}}, EXPECTED, True, ["allocatable nvidia.com/gpu is 7, expected 8"]),
    ({"ready": False, "extended": {}}, EXPECTED, True, ["node is not Ready", "allocatable nvidia.com/gpu is 0, expected 8"]),
    # Without the GPUs (a node without GPUs, or validate_wait_gpus: false): registered and Ready only.
    ({"ready": True, "extended": {}}, EXPECTED, False, []),
    ({"ready": False}, EXPECTED, "false", ["node is not Ready"]),
    ({"ready": True, "extended": {}}, EXPECTED, "yes", ["allocatable nvidia.com/gpu is 0, expected 8"]),
    # Settings the device plugin refuses on this node are a problem of their own.
    (READY, REFUSED, True, ["migStrategy single needs MIG enabled on all GPUs or none"]),
])
def test_node_problems(info, expected, wait_gpus, problems):
    assert FILTERS["validate_node_problems"](info, "gpu1", expected, wait_gpus) == problems


MISSING = [_validate.RUNTIME_CLASS_MISSING]
MARKER = "/var/lib/kubegpu/reboot-required"


@pytest.mark.parametrize("wait, gpu_node, name, read, reasons, checks", [
    ([], True, "", {"stdout": ""}, [], []),
    # A GPU node whose pods use RuntimeClass nvidia, and the cluster has none.
    ([], True, "nvidia", {"stdout": ""}, [], MISSING),
    ([], True, "nvidia", {"stdout": " \n"}, [], MISSING),
    ([], "yes", "nvidia", {"changed": False}, [], MISSING),
    ([], True, "nvidia", None, [], MISSING),
    ([], True, "nvidia", {"stdout": "runtimeclass.node.k8s.io/nvidia"}, [], []),
    ([], False, "nvidia", {"stdout": ""}, [], []),
    ([], "false", "nvidia", {"stdout": ""}, [], []),
    ([], True, "nvidia-cdi", {"stdout": ""}, [], []),
    # After what the wait found missing; the reboot reasons last.
    (["node is not Ready"], True, "nvidia", {"stdout": ""}, ["os_prereqs: nouveau is loaded", "nvidia_driver: x"],
     ["node is not Ready"] + MISSING
     + ["reboot required (%s: os_prereqs: nouveau is loaded; nvidia_driver: x)" % MARKER]),
    (None, False, "", {}, ["r"], ["reboot required (%s: r)" % MARKER]),
])
def test_node_checks(wait, gpu_node, name, read, reasons, checks):
    assert FILTERS["validate_node_checks"](wait, gpu_node, name, read, MARKER, reasons) == checks


def test_runtime_class_message_keeps_its_apostrophe():
    assert _validate.RUNTIME_CLASS_MISSING == (
        "RuntimeClass nvidia is missing (stage 7 creates it where nvidia is not containerd's default handler)")


def _job(**status):
    return {"rc": 0, "stdout": json.dumps({"kind": "Job", "metadata": {"name": "kubegpu-validate-x"}, "status": status})}


@pytest.mark.parametrize("status, log, passed_before, check_mode, result", [
    # An earlier success stands, and check mode predicts no test outcome: the Job was not waited for.
    ({"skipped": True}, {"skipped": True}, True, False, "ok"),
    ({"skipped": True}, {"skipped": True}, False, True, "ok"),
    (None, None, "yes", False, "ok"),
    (_job(succeeded=1), {"stdout_lines": []}, False, False, "ok"),
    (_job(conditions=[{"type": "Complete", "status": "True"}]), {"stdout_lines": ["GPU 0: H100"]}, False, False, "ok"),
    # Failed: the last line of its log.
    (_job(conditions=[{"type": "Failed", "status": "True"}]), {"stdout_lines": ["a", "CUDA error"]}, False, False,
     "nvidia-smi Job failed: CUDA error"),
    (_job(failed=1), {"stdout_lines": []}, "no", False, "nvidia-smi Job failed: "),
    (_job(failed=1), {"skipped": True}, False, False, "nvidia-smi Job failed: "),
    # Still running when the wait gave up.
    (_job(active=1), {"stdout_lines": ["waiting"]}, False, False, "nvidia-smi Job failed: waiting"),
])
def test_job_result(status, log, passed_before, check_mode, result):
    assert FILTERS["validate_job_result"](status, log, "nvidia-smi", passed_before, check_mode) == result


def test_job_result_of_unreadable_kubectl_output_is_an_error():
    with pytest.raises(Exception, match="validate_job_result: kubectl output is not JSON"):
        FILTERS["validate_job_result"]({"stdout": "error: not found"}, {}, "nvidia-smi")
    with pytest.raises(K8sParseError):
        _validate.job_result({"stdout": "[]"}, {}, "nvidia-smi")


INPUTS = {"node": "gpu1", "image": "nvcr.io/nvidia/cuda:12.2.2-base-ubuntu22.04", "command": ["nvidia-smi"],
          "driver": "580.159.04", "resources": {"nvidia.com/gpu": {"count": 8, "exact": True}},
          "runtime_class": "nvidia", "resource": "nvidia.com/gpu"}


def test_job_id_is_what_the_role_hashed_before():
    """The Jinja it replaces: [node, image, command, driver, resources, runtime class, resource]
    | to_json | hash('sha256') | truncate(10, true, ''): a Job that succeeded before keeps its name."""
    from ansible.plugins.filter.core import get_hash, to_json

    listed = [INPUTS[name] for name in _validate.JOB_INPUTS]
    assert FILTERS["validate_job_id"](INPUTS) == get_hash(to_json(listed), "sha256")[:10]


@pytest.mark.parametrize("change", [
    {"node": "gpu2"}, {"image": "other"}, {"command": []}, {"driver": ""}, {"resources": {}},
    {"runtime_class": ""}, {"resource": "nvidia.com/gpu.shared"}])
def test_job_id_changes_with_every_input(change):
    job_id = _validate.job_id(INPUTS)
    assert len(job_id) == 10 and int(job_id, 16) >= 0
    assert _validate.job_id(dict(INPUTS, **change)) != job_id


def test_job_id_reads_the_inputs_by_name():
    assert _validate.job_id(dict(reversed(list(INPUTS.items())), extra="ignored")) == _validate.job_id(INPUTS)
    assert _validate.job_id({}) == _validate.job_id(None)


def test_the_reboot_markers_reasons_are_its_lines():
    text = "os_prereqs: nouveau is loaded\n\n  nvidia_driver: the driver 580 is installed, 570 loaded  \n"
    assert _validate.reboot_reasons(text) == ["os_prereqs: nouveau is loaded",
                                              "nvidia_driver: the driver 580 is installed, 570 loaded"]
    assert _validate.reboot_reasons("") == [] and _validate.reboot_reasons(None) == []
    assert FilterModule().filters()["reboot_reasons"]("a\n") == ["a"]


# --- the NVLink fabric (tests/fixtures/gpu/hgx-b200-nvlink5) -------------------------------------

def _b200_facts(tmp_path, xml_name="nvidia-smi-q-x.xml", missing_module=None):
    """gpu_facts on the HGX B200 fixture, nvidia-smi answering with the fixture's XML."""
    import importlib.util
    from pathlib import Path

    from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu

    fixtures = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
    spec = importlib.util.spec_from_file_location("kubegpu_fakehost_validate", fixtures / "fakehost.py")
    fakehost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fakehost)
    root = Path(fakehost.build(str(fixtures / "hgx-b200-nvlink5"), str(tmp_path / "root")))
    if missing_module:
        (root / "sys" / "module" / missing_module).rmdir()
        (root / "proc" / "modules").write_text("nvidia 1 0 - Live 0x0\n")
    xml = (fixtures / "hgx-b200-nvlink5" / xml_name).read_text()

    def no_nvml():
        raise OSError("no NVML in unit tests")
    return _gpu.collect(sysfs_root=str(root), proc_root=str(root), nvml_loader=no_nvml,
                        smi_finder=lambda path: "/usr/bin/nvidia-smi", smi_runner=lambda argv, timeout: (0, xml, ""))


def test_fabric_completed_on_every_gpu_passes(tmp_path):
    facts = _b200_facts(tmp_path)
    assert _validate.fabric_wait_needed(facts) is True
    assert _validate.fabric_problems(facts, "b200-1", 300) == []


def test_fabric_in_progress_names_host_gpus_and_fix(tmp_path):
    facts = _b200_facts(tmp_path, "nvidia-smi-q-x-in-progress.xml")
    [message] = _validate.fabric_problems(facts, "b200-1", 300)
    assert message == (
        "NVLink fabric not ready on b200-1 after 300 s - GPU 6 (0000:d1:00.0) In Progress, GPU 7 (0000:df:00.0)"
        " In Progress; CUDA cannot use these GPUs until the fabric manager registers them (state Completed, status"
        " Success); check the fabric manager on b200-1: systemctl status nvidia-fabricmanager; journalctl -u"
        " nvidia-fabricmanager; on this NVLink5 system it starts NVLSM too (package nvlsm, log /var/log/nvlsm.log),"
        " which needs the kernel modules mlx5_ib, ib_umad loaded")


def test_fabric_in_progress_with_a_module_missing(tmp_path):
    facts = _b200_facts(tmp_path, "nvidia-smi-q-x-in-progress.xml", missing_module="ib_umad")
    [message] = _validate.fabric_problems(facts, "b200-1")
    assert "NVLink fabric not ready on b200-1 - GPU 6" in message
    assert message.endswith("loaded (not loaded now: ib_umad)")


@pytest.mark.parametrize("facts, needed", [
    ({}, False),
    ({"fabric_manager_needed": False, "gpus": [{"health": {"fabric": {"state": "In Progress"}}}]}, False),
    ({"fabric_manager_needed": True, "gpus": []}, True),
    ({"nvlsm_needed": True}, True),
])
def test_fabric_wait_needed(facts, needed):
    assert _validate.fabric_wait_needed(facts) is needed
    assert FILTERS["validate_fabric_wait_needed"](facts) is needed


def test_fabric_states_that_are_not_a_wait():
    """An NVSwitch host whose GPUs report no fabric state (pre-Hopper A100, nvidia-smi N/A) has
    nothing to wait for; a completed GPU with an error status is not ready."""
    nvswitch = {"fabric_manager_needed": True, "gpus": [
        {"index": 0, "pci_bus_id": "0000:07:00.0", "health": {"fabric": {"state": None, "status": None}}},
        {"index": 1, "pci_bus_id": "0000:0f:00.0", "health": None}]}
    assert _validate.fabric_problems(nvswitch, "a100-1") == []
    failed = {"fabric_manager_needed": True, "gpus": [
        {"index": 0, "pci_bus_id": "0000:07:00.0", "health": {"fabric": {"state": "Completed", "status": "NVML error 8"}}}]}
    [message] = _validate.fabric_problems(failed, "h100-1")
    assert message.startswith("NVLink fabric not ready on h100-1 - GPU 0 (0000:07:00.0) Completed/NVML error 8;")
    assert "NVLSM" not in message         # an NVSwitch host has no NVLSM


def test_fabric_read_as_the_wait_registers_it(tmp_path):
    """The filter reads the registered gpu_facts run of tasks/wait.yml."""
    facts = _b200_facts(tmp_path, "nvidia-smi-q-x-in-progress.xml")
    read = {"changed": False, "ansible_facts": {"kubegpu_gpu": facts}}
    [message] = FILTERS["validate_fabric_problems"](read, "b200-1", 5)
    assert message.startswith("NVLink fabric not ready on b200-1 after 5 s - GPU 6 (0000:d1:00.0)")
    assert FILTERS["validate_fabric_problems"]({"skipped": True, "changed": False}, "b200-1", 5) == []
    assert FILTERS["validate_fabric_problems"]({}, "b200-1", 5) == []
    assert FILTERS["validate_fabric_problems"]({"failed": True, "msg": "boom"}, "b200-1") == [
        "could not read the GPU facts on b200-1: boom"]
    # until's retries ran out: the read is marked failed, its facts are the last ones read.
    assert FILTERS["validate_fabric_problems"](dict(read, failed=True, attempts=2), "b200-1", 5)[0].startswith(
        "NVLink fabric not ready on b200-1 after 5 s - GPU 6")
