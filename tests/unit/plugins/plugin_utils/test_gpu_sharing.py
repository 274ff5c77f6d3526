# SPDX-License-Identifier: Apache-2.0
"""The device plugin's sharing and CDI rules (plugins/plugin_utils/_gpu_sharing.py), per
k8s-device-plugin v0.20.0 (api/config/v1, cmd/nvidia-device-plugin/main.go, internal/plugin/mps.go)."""
import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing as s
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean


def variables(problems):
    return [p["variable"] for p in problems]


@pytest.mark.parametrize("settings, want", [
    ({}, {"strategy": "none", "replicas": 1, "rename_by_default": False, "fail_requests_greater_than_one": False}),
    ({"nvidia_device_plugin_time_slicing_replicas": 1}, {"strategy": "none", "replicas": 1, "rename_by_default": False,
                                                         "fail_requests_greater_than_one": False}),
    ({"nvidia_device_plugin_time_slicing_replicas": "4", "nvidia_device_plugin_time_slicing_rename_by_default": "yes"},
     {"strategy": "time-slicing", "replicas": 4, "rename_by_default": True, "fail_requests_greater_than_one": False}),
    # MPS keeps failRequestsGreaterThanOne unless set (config.go parseConfig).
    ({"nvidia_device_plugin_mps_replicas": 2},
     {"strategy": "mps", "replicas": 2, "rename_by_default": False, "fail_requests_greater_than_one": True}),
    ({"nvidia_device_plugin_mps_replicas": 3, "nvidia_device_plugin_mps_fail_requests_greater_than_one": False,
      "nvidia_device_plugin_mps_rename_by_default": True},
     {"strategy": "mps", "replicas": 3, "rename_by_default": True, "fail_requests_greater_than_one": False}),
    # Both set: MPS wins (sharing.go SharingStrategy); preflight refuses this.
    ({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_time_slicing_replicas": 8},
     {"strategy": "mps", "replicas": 2, "rename_by_default": False, "fail_requests_greater_than_one": True}),
])
def test_sharing(settings, want):
    assert s.sharing(settings, boolean) == want


def test_plugin_config():
    assert s.plugin_config({}, boolean) == {"version": "v1", "flags": {
        "migStrategy": "none", "failOnInitError": True,
        "plugin": {"deviceListStrategy": "envvar", "deviceIDStrategy": "uuid"}}}
    mps = s.plugin_config({"nvidia_device_plugin_mps_replicas": 4}, boolean, mps_root="/run/mps",
                          extra_plugin_flags={"sharedDevicesAllocationPolicy": "packed", "nvidiaCTKPath": None})
    assert mps["flags"]["mpsRoot"] == "/run/mps"
    assert mps["flags"]["plugin"] == {"deviceListStrategy": "envvar", "deviceIDStrategy": "uuid",
                                      "sharedDevicesAllocationPolicy": "packed"}
    assert mps["sharing"] == {"mps": {"renameByDefault": False, "failRequestsGreaterThanOne": True,
                                      "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}
    sliced = s.plugin_config({"nvidia_device_plugin_time_slicing_replicas": 2,
                              "nvidia_device_plugin_time_slicing_fail_requests_greater_than_one": True}, boolean)
    assert sliced["sharing"] == {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": True,
                                                 "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}
    assert "mpsRoot" not in sliced["flags"]


@pytest.mark.parametrize("settings, cdi", [
    ({}, True),                                                     # kubegpu_cdi default: the Operator's
    ({"kubegpu_cdi": False}, False),
    ({"kubegpu_cdi": "no", "container_runtime_nvidia_cdi": True}, True),    # the role override wins
    ({"kubegpu_cdi": True, "container_runtime_nvidia_cdi": False}, False),
    # preflight reads role defaults as written: the container_runtime default follows kubegpu_cdi
    ({"kubegpu_cdi": False, "container_runtime_nvidia_cdi": "{{ kubegpu_cdi }}"}, False),
])
def test_cdi_enabled(settings, cdi):
    assert s.cdi_enabled(settings, boolean) is cdi


@pytest.mark.parametrize("settings, refused", [
    ({}, []),
    ({"nvidia_device_plugin_mps_replicas": 2}, []),
    ({"nvidia_device_plugin_mps_replicas": 1}, ["nvidia_device_plugin_mps_replicas"]),
    ({"nvidia_device_plugin_mps_replicas": -2}, ["nvidia_device_plugin_mps_replicas"]),
    ({"nvidia_device_plugin_time_slicing_replicas": -1}, ["nvidia_device_plugin_time_slicing_replicas"]),
    ({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_time_slicing_replicas": 2},
     ["nvidia_device_plugin_mps_replicas"]),
    ({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mig_strategy": "mixed"},
     ["nvidia_device_plugin_mps_replicas"]),
    ({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mig_strategy": "single"}, []),   # no MIG here
    ({"nvidia_device_plugin_device_list_strategy": "cdi-cri"}, []),
    ({"nvidia_device_plugin_device_list_strategy": "cdi-cri", "kubegpu_cdi": False},
     ["nvidia_device_plugin_device_list_strategy"]),
    ({"nvidia_device_plugin_device_list_strategy": ["envvar", "cdi-annotations"], "container_runtime_nvidia_cdi": "off"},
     ["nvidia_device_plugin_device_list_strategy"]),
    ({"nvidia_device_plugin_device_list_strategy": "envvar", "kubegpu_cdi": False}, []),
    # GPU Operator mode: the Operator's device plugin, not these variables.
    ({"kubegpu_gpu_operator": True, "nvidia_device_plugin_mps_replicas": 1}, []),
])
def test_sharing_problems(settings, refused):
    problems = s.sharing_problems(settings, boolean)
    assert variables(problems) == refused
    for record in problems:
        assert record["problem"] and record["fix"]


def test_mps_over_mig_devices_needs_the_host_facts():
    mig = {"count": 2, "gpus": [{"index": 0, "mig_mode_current": "enabled"}, {"index": 1, "mig_mode_current": "disabled"}]}
    settings = {"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mig_strategy": "single"}
    (record,) = s.sharing_problems(settings, boolean, mig)
    assert record["variable"] == "nvidia_device_plugin_mps_replicas"
    assert "MIG is enabled on GPU(s) 0" in record["problem"]
    assert "not supported for MIG devices" in record["problem"]
    assert s.sharing_problems(dict(settings, nvidia_device_plugin_mig_strategy="none"), boolean, mig) == []


@pytest.mark.parametrize("settings, runtime_class, want", [
    ({}, False, ["device-plugin.yaml"]),
    ({}, True, ["runtimeclass.yaml", "device-plugin.yaml"]),
    ({"nvidia_device_plugin_mps_replicas": "4", "nvidia_device_plugin_gfd_enabled": "yes",
      "nvidia_device_plugin_dcgm_exporter_enabled": True}, True,
     ["runtimeclass.yaml", "device-plugin.yaml", "mps-control-daemon.yaml", "gpu-feature-discovery.yaml",
      "dcgm-exporter.yaml"]),
    # time-slicing has no control daemon
    ({"nvidia_device_plugin_time_slicing_replicas": 4, "nvidia_device_plugin_gfd_enabled": "false"}, False,
     ["device-plugin.yaml"]),
])
def test_plugin_manifests(settings, runtime_class, want):
    assert s.plugin_manifests(settings, boolean, runtime_class) == want
