# SPDX-License-Identifier: Apache-2.0
"""DRA mode's rules (plugins/plugin_utils/_dra.py): what preflight refuses, the driver branch
stage 3 plans on real GPU fixtures, and what validate reads from ResourceSlices."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.filter import dra as dra_filter
from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _dra
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver as pd
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_host as ph
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES / "gpu"))
import fakehost  # noqa: E402

UBUNTU_24 = {"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "24.04",
             "distribution_major_version": "24", "kernel": "6.8.0-45-generic", "architecture": "x86_64"}
GROUPS = {"k8s_cluster": ["cp1"], "kube_control_plane": ["cp1"], "kube_node": []}


def problems(**settings):
    return format_problems(_dra.mode_problems(settings, boolean), "cp1")


def test_the_default_mode_is_left_alone():
    assert problems() == []
    assert problems(kubegpu_gpu_allocation="device-plugin", kubernetes_version="1.31.0",
                    nvidia_device_plugin_time_slicing_replicas=4) == []


def test_dra_on_the_default_release_passes():
    assert problems(kubegpu_gpu_allocation="dra", kubernetes_version="1.35.4") == []
    assert problems(kubegpu_gpu_allocation="dra", kubernetes_version="1.34.2", kubegpu_cdi=True,
                    nvidia_device_plugin_mig_strategy="none", nvidia_device_plugin_time_slicing_replicas=1) == []


@pytest.mark.parametrize("version", ["1.33.7", "1.34.1", "1.31.0"])
def test_a_release_older_than_the_dra_driver_needs_is_refused(version):
    [line] = problems(kubegpu_gpu_allocation="dra", kubernetes_version=version)
    assert line.startswith("host cp1: variable kubegpu_gpu_allocation: dra, but kubernetes_version is '%s':"
                           " NVIDIA's DRA driver for GPUs needs Kubernetes 1.34.2 or newer" % version)
    assert "fix: kubernetes_version: \"1.34.2\" or newer, or kubegpu_gpu_allocation: device-plugin" in line


def test_a_version_that_is_no_release_is_left_to_its_own_rule():
    assert problems(kubegpu_gpu_allocation="dra", kubernetes_version="banana") == []


def test_operator_mode_cdi_off_and_device_plugin_sharing_are_refused():
    lines = problems(kubegpu_gpu_allocation="dra", kubernetes_version="1.35.4", kubegpu_gpu_operator="yes",
                     kubegpu_cdi=False, nvidia_device_plugin_mig_strategy="mixed",
                     nvidia_device_plugin_time_slicing_replicas="4", nvidia_device_plugin_mps_replicas=2)
    assert [line.split(": variable ")[1].split(":")[0] for line in lines] == [
        "kubegpu_gpu_allocation", "kubegpu_cdi", "nvidia_device_plugin_mig_strategy",
        "nvidia_device_plugin_time_slicing_replicas", "nvidia_device_plugin_mps_replicas"]
    assert "dra while kubegpu_gpu_operator is true" in lines[0]
    assert "fix: kubegpu_cdi: true" in lines[1]
    assert "fix: nvidia_device_plugin_mig_strategy: none" in lines[2]
    assert "fix: nvidia_device_plugin_time_slicing_replicas: 0" in lines[3]


@pytest.mark.parametrize("branch,refused", [("550", True), ("560", True), ("565", False), ("580", False)])
def test_the_planned_branch_against_the_minimum(branch, refused):
    record = _dra.driver_branch_problem({"needed": True, "branch": branch})
    assert bool(record) is refused
    if refused:
        assert record["variable"] == "kubegpu_gpu_allocation"
        assert "driver branch R%s: NVIDIA's DRA driver for GPUs needs R565 or newer" % branch in record["problem"]
        assert record["fix"].startswith("nvidia_driver_branch: 565 or newer (with nvidia_driver_source: cuda")
    assert _dra.driver_branch_problem({"needed": False, "branch": None}) is None


@pytest.fixture(scope="module")
def h100(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu")
    fakehost.build(str(FIXTURES / "gpu" / "h100-80gb-hbm3-ubuntu2404"), str(root))
    facts = dict(UBUNTU_24)
    facts["kubegpu_gpu"] = _gpu.collect(sources=["sysfs"], sysfs_root=str(root), proc_root=str(root))
    return facts


def test_the_branch_comes_from_stage_3s_plan(h100):
    settings = ps.settings({}, pd.SETTINGS, str(ROOT))
    assert _dra.planned_branch_problem(h100, settings, True) is None       # auto: the loaded R580
    settings["nvidia_driver_branch"] = "550"
    record = _dra.planned_branch_problem(h100, settings, "true")
    assert record and "R550" in record["problem"]
    assert _dra.planned_branch_problem(h100, settings, False) is None     # not a GPU node


def test_preflight_reports_it_for_the_host(h100):
    variables = {"kubegpu_gpu_allocation": "dra", "kubegpu_gpu_node": True, "nvidia_driver_branch": "550",
                 "kubernetes_version": "1.33.2"}
    result = ph.host_report("cp1", variables, h100, GROUPS, {"cgroup_version": 2}, root=str(ROOT))
    lines = format_problems(result["problems"], "cp1")
    assert any("needs Kubernetes 1.34.2 or newer" in line for line in lines), lines
    assert any("driver branch R550" in line for line in lines), lines
    # The default mode does not look at the branch for DRA.
    variables["kubegpu_gpu_allocation"] = "device-plugin"
    result = ph.host_report("cp1", variables, h100, GROUPS, {"cgroup_version": 2}, root=str(ROOT))
    assert not any("DRA" in line for line in format_problems(result["problems"], "cp1"))


def test_the_mode_is_refused_by_its_spec():
    result = ph.host_report("cp1", {"kubegpu_gpu_allocation": "DRA"}, dict(UBUNTU_24, kubegpu_gpu={"gpus": []}),
                            GROUPS, {"cgroup_version": 2}, root=str(ROOT))
    [line] = format_problems(result["problems"], "cp1")
    assert "variable kubegpu_gpu_allocation: 'DRA' is not one of the accepted values (accepted: device-plugin, dra" \
        in line


# --- ResourceSlices, as validate reads them -------------------------------------------------

def _slice(node, driver, devices):
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "spec": {"driver": driver, "nodeName": node,
                     "pool": {"name": node, "generation": 1, "resourceSliceCount": 1},
                     "devices": [{"name": name, "attributes": {"type": {"string": kind}}} for name, kind in devices]}}


SLICES = {"items": [
    _slice("gpu1", "gpu.nvidia.com", [("gpu-0", "gpu"), ("gpu-1", "gpu"), ("gpu-1-mig-1g.10gb-19-0", "mig")]),
    _slice("gpu2", "gpu.nvidia.com", [("gpu-0", "gpu")]),
    _slice("gpu1", "other.example.com", [("gpu-7", "gpu")]),
]}


def test_the_devices_of_a_node():
    assert _dra.node_devices(SLICES, "gpu1") == ["gpu-0", "gpu-1"]
    assert _dra.node_devices(SLICES["items"], "gpu2") == ["gpu-0"]
    assert _dra.node_devices(SLICES, "cpu1") == []


def test_what_a_node_lacks():
    assert _dra.node_slice_problems(SLICES, "gpu1", 2) == []
    assert _dra.node_slice_problems(SLICES, "gpu2", 2) == [
        "gpu2 publishes 1 GPU device(s) of driver gpu.nvidia.com in its ResourceSlices, 2 expected"]
    assert _dra.node_slice_problems({"items": []}, "gpu1", 0) == [
        "gpu1 publishes 0 GPU device(s) of driver gpu.nvidia.com in its ResourceSlices, 1 expected"]


def test_the_filters():
    found = dra_filter.FilterModule().filters()
    assert found["dra_mode_problems"]({"kubegpu_gpu_allocation": "dra", "kubernetes_version": "1.30.1"})[0][
        "variable"] == "kubegpu_gpu_allocation"
    assert found["dra_node_slice_problems"]('{"items": []}', "gpu1", 1)
    assert found["dra_node_slice_problems"](SLICES, "gpu1", 2) == []
    assert found["dra_node_slice_summary"]("", "gpu1", 2) == "gpu.nvidia.com 0/2"
    assert found["dra_node_slice_summary"](SLICES, "gpu1", 2) == "gpu.nvidia.com 2/2"


@pytest.mark.parametrize("root,parent", [("/", "/"), ("", "/"), ("/run/nvidia/driver", "/run/nvidia"),
                                         ("/run/nvidia/driver/", "/run/nvidia"), ("/driver", "/")])
def test_the_driver_root_parent(root, parent):
    assert _dra.driver_root_parent(root) == parent
