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
