# SPDX-License-Identifier: Apache-2.0
"""gpu.py: the simulated GPUs of tests/sim/gpu/ and NVIDIA k8s-device-plugin's resource
rules (expected results per NVIDIA/k8s-device-plugin internal/rm, cmd/nvidia-device-plugin,
api/config/v1 as cited in gpu.py)."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from kubegpu_sim import gpu  # noqa: E402

from kubegpu_sim import pci_tree  # noqa: E402

GPU_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "sim", "gpu")


@pytest.fixture(scope="module", autouse=True)
def trees(tmp_path_factory):
    """The PCI trees of tests/sim/gpu/*.json, written out as a host would get them."""
    root = tmp_path_factory.mktemp("pci")
    for name in ("h100-1gpu", "hgx-h100-8gpu", "a100-mig"):
        pci_tree.materialise(os.path.join(GPU_DIR, name + ".json"), str(root / name))
    TREES["root"] = str(root)
    return root


TREES = {}


def tree(name):
    return os.path.join(TREES["root"], name)


def gpus(name, mig=None):
    layout = gpu.load_mig_layout(os.path.join(GPU_DIR, mig)) if mig else {}
    return gpu.read_gpus(tree(name), "node1", layout)


def config(mig="none", fail=True, sharing=None, **flags):
    text = "version: v1\nflags:\n  migStrategy: %s\n  failOnInitError: %s\n" % (mig, str(fail).lower())
    cfg = gpu.parse_config(text)
    cfg["sharing"] = sharing or {}
    cfg["flags"].update(flags)
    return cfg


def test_fixtures_read():
    one = gpus("h100-1gpu")
    assert [(g["bus_id"], g["name"], g["memory_mib"]) for g in one] == [
        ("0000:00:06.0", "NVIDIA H100 80GB HBM3", 81559)]
    eight = gpus("hgx-h100-8gpu")
    # NVSwitch functions (class 0x068000) are not GPUs.
    assert len(eight) == 8 and [g["index"] for g in eight] == list(range(8))
    assert eight[0]["bus_id"] == "0000:18:00.0" and eight[-1]["bus_id"] == "0000:db:00.0"
    assert len({g["uuid"] for g in eight}) == 8


def test_nvml_library_present():
    out = "\tlibnvidia-ml.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libnvidia-ml.so.1\n"
    assert gpu.nvml_library_present(out)
    assert not gpu.nvml_library_present("\tlibc.so.6 (libc6,x86-64) => /lib/libc.so.6\n")


@pytest.mark.parametrize("fixture,expect", [("h100-1gpu", {"nvidia.com/gpu": 1}),
                                            ("hgx-h100-8gpu", {"nvidia.com/gpu": 8})])
def test_strategy_none(fixture, expect):
    state = gpu.start_plugin(config(), gpus(fixture), True)
    assert state.capacity() == expect


def test_nvml_missing_fail_on_init_error():
    # factory.go getResourceManagers: failOnInitError -> "nvml init failed" -> exit 1.
    with pytest.raises(gpu.PluginError) as err:
        gpu.start_plugin(config(), gpus("h100-1gpu"), False)
    assert "nvml init failed: ERROR_LIBRARY_NOT_FOUND" in str(err.value)
    assert "Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND." in err.value.logs


def test_nvml_missing_no_fail():
    state = gpu.start_plugin(config(fail=False), gpus("h100-1gpu"), False)
    assert state.capacity() == {} and "No devices found. Waiting indefinitely." in state.logs


def ts(replicas=4, rename=False, fail_gt_one=False):
    return {"timeSlicing": {"renameByDefault": rename, "failRequestsGreaterThanOne": fail_gt_one,
                            "resources": [{"name": "nvidia.com/gpu", "replicas": replicas}]}}


@pytest.mark.parametrize("fixture,rename,expect", [
    # updateDeviceMapWithReplicas: replicas x GPUs, renamed to <name>.shared with renameByDefault.
    ("h100-1gpu", False, {"nvidia.com/gpu": 4}),
    ("h100-1gpu", True, {"nvidia.com/gpu.shared": 4}),
    ("hgx-h100-8gpu", False, {"nvidia.com/gpu": 32}),
])
def test_time_slicing(fixture, rename, expect):
    state = gpu.start_plugin(config(sharing=ts(rename=rename)), gpus(fixture), True)
    assert state.capacity() == expect


def test_time_slicing_replicas_must_be_two_or_more():
    # replicas.go ReplicatedResource.UnmarshalJSON.
    with pytest.raises(gpu.PluginError, match="number of replicas must be >= 2"):
        gpu.start_plugin(config(sharing=ts(replicas=1) | {"timeSlicing": {"resources": [
            {"name": "nvidia.com/gpu", "replicas": 1}], "renameByDefault": False}}), gpus("h100-1gpu"), True)


def test_allocation_envvar_and_fail_requests_greater_than_one():
    g = gpus("h100-1gpu")
    state = gpu.start_plugin(config(sharing=ts(fail_gt_one=True)), g, True)
    ids, envs = state.allocate("nvidia.com/gpu", 1, set())
    assert ids == [g[0]["uuid"] + "::0"] and envs == {"NVIDIA_VISIBLE_DEVICES": g[0]["uuid"]}
    with pytest.raises(gpu.PluginError, match="maximum request size for shared resources is 1; found 2"):
        state.allocate("nvidia.com/gpu", 2, set())
    plain = gpu.start_plugin(config(sharing=ts()), g, True)
    ids, envs = plain.allocate("nvidia.com/gpu", 2, set())
    assert envs["NVIDIA_VISIBLE_DEVICES"] == g[0]["uuid"]   # unique ids of the replicas


def test_allocation_index_strategy_and_exhaustion():
    g = gpus("hgx-h100-8gpu")
    cfg = config()
    cfg["flags"]["plugin"]["deviceIDStrategy"] = "index"
    state = gpu.start_plugin(cfg, g, True)
    ids, envs = state.allocate("nvidia.com/gpu", 2, {g[0]["uuid"]})
    assert envs["NVIDIA_VISIBLE_DEVICES"] == "1,2"
    with pytest.raises(gpu.PluginError):
        state.allocate("nvidia.com/gpu", 9, set())


# A100 with MIG: 3g.40gb, 2g.20gb, 1g.10gb x2 (tests/sim/gpu/a100-mig.mig.json).
@pytest.mark.parametrize("strategy,expect", [
    # none: a MIG-enabled GPU is still advertised whole (buildGPUDeviceMap).
    ("none", {"nvidia.com/gpu": 1}),
    # mixed: one resource per profile, mig-<profile> (AddDefaultResourcesToConfig).
    ("mixed", {"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2}),
])
def test_mig_strategies(strategy, expect):
    state = gpu.start_plugin(config(mig=strategy), gpus("a100-mig", "a100-mig.mig.json"), True)
    assert state.capacity() == expect


def test_mig_single_needs_uniform_profiles(tmp_path):
    with pytest.raises(gpu.PluginError, match="more than one MIG device type present on node"):
        gpu.start_plugin(config(mig="single"), gpus("a100-mig", "a100-mig.mig.json"), True)
    layout = tmp_path / "mig.json"
    layout.write_text('{"0": ["1g.10gb", "1g.10gb", "1g.10gb"]}')
    g = gpu.read_gpus(tree("a100-mig"), "n", gpu.load_mig_layout(str(layout)))
    assert gpu.start_plugin(config(mig="single"), g, True).capacity() == {"nvidia.com/gpu": 3}
    layout.write_text('{"0": []}')
    g = gpu.read_gpus(tree("a100-mig"), "n", gpu.load_mig_layout(str(layout)))
    with pytest.raises(gpu.PluginError, match="device 0 has no MIG devices configured"):
        gpu.start_plugin(config(mig="single"), g, True)


def test_mps_rules():
    mps = {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}
    with pytest.raises(gpu.PluginError, match="using MPS requires --mps-root to be specified"):
        gpu.start_plugin(config(sharing=mps), gpus("h100-1gpu"), True)
    with pytest.raises(gpu.PluginError, match="mixed is not supported with MPS"):
        gpu.start_plugin(config(mig="mixed", sharing=mps, mpsRoot="/run/nvidia/mps"), gpus("h100-1gpu"), True)
    waiting = gpu.start_plugin(config(sharing=mps, mpsRoot="/run/nvidia/mps"), gpus("h100-1gpu"), True)
    assert waiting.capacity() == {}
    ready = gpu.start_plugin(config(sharing=mps, mpsRoot="/run/nvidia/mps"), gpus("h100-1gpu"), True, True)
    assert ready.capacity() == {"nvidia.com/gpu": 2}


def test_unknown_mig_strategy():
    with pytest.raises(gpu.PluginError, match="unknown MIG strategy: bogus"):
        gpu.start_plugin(config(mig="bogus"), gpus("h100-1gpu"), True)


@pytest.mark.parametrize("visible,count", [("all", 8), ("none", 0), ("void", 0), ("", 0), ("0,3", 2)])
def test_visible_gpus(visible, count):
    assert len(gpu.visible_gpus(gpus("hgx-h100-8gpu"), visible)) == count


def test_driver_version_from_package():
    assert gpu.driver_version_from_package("535.247.01-1~deb12u1") == "535.247.01"
    assert gpu.cuda_version_for_driver("580.159.04") == "13.0"


def test_mps_fail_requests_greater_than_one_defaults_to_true():
    """api/config/v1/config.go parseConfig: MPS keeps failRequestsGreaterThanOne unless the
    file sets it; time-slicing's stays false."""
    mps = {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}
    state = gpu.start_plugin(config(sharing=mps, mpsRoot="/run/nvidia/mps"), gpus("h100-1gpu"), True, True)
    with pytest.raises(gpu.PluginError, match="maximum request size for shared resources is 1; found 2"):
        state.allocate("nvidia.com/gpu", 2, set())
    relaxed = {"mps": dict(mps["mps"], failRequestsGreaterThanOne=False)}
    state = gpu.start_plugin(config(sharing=relaxed, mpsRoot="/run/nvidia/mps"), gpus("h100-1gpu"), True, True)
    assert len(state.allocate("nvidia.com/gpu", 2, set())[0]) == 2
    sliced = gpu.start_plugin(config(sharing={"timeSlicing": mps["mps"]}), gpus("h100-1gpu"), True)
    assert len(sliced.allocate("nvidia.com/gpu", 2, set())[0]) == 2


def test_mps_over_mig_devices_is_refused(tmp_path):
    """internal/plugin/mps.go getMPSOptions, after the device map (uniform MIG devices) is built."""
    mps = {"mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}
    layout = tmp_path / "mig.json"
    layout.write_text('{"0": ["1g.10gb", "1g.10gb"]}')
    g = gpu.read_gpus(tree("a100-mig"), "n", gpu.load_mig_layout(str(layout)))
    with pytest.raises(gpu.PluginError, match="sharing using MPS is not supported for MIG devices"):
        gpu.start_plugin(config(mig="single", sharing=mps, mpsRoot="/run/nvidia/mps"), g, True, True)


def test_shared_devices_allocation_policy():
    assert gpu.start_plugin(config(), gpus("h100-1gpu"), True).capacity() == {"nvidia.com/gpu": 1}
    cfg = config()
    cfg["flags"]["plugin"]["sharedDevicesAllocationPolicy"] = "spread"
    with pytest.raises(gpu.PluginError, match="invalid --shared-devices-allocation-policy option: spread"):
        gpu.start_plugin(cfg, gpus("h100-1gpu"), True)


# --- the simulated plugin against kubegpu's own rule and config ---------------------------------
# kubegpu renders the config with plugin_utils/_gpu_sharing.plugin_config and expects
# plugin_utils/_gpu_resources.expected_resources; the simulator is an independent reading of
# the same upstream code. Both must give upstream's numbers for the fixtures' GPUs.

def _facts(gpu_list):
    """The fixture's GPUs as kubegpu.cluster.gpu_facts reports them (with the MIG devices)."""
    return {"count": len(gpu_list), "gpus": [
        {"index": g["index"], "mig_mode_current": "enabled" if g["mig_enabled"] else "disabled",
         "mig_devices": [m["profile"] for m in g["mig_devices"]] if g["mig_enabled"] else None}
        for g in gpu_list]}


MODES = {
    "whole": {},
    "mig-single": {"nvidia_device_plugin_mig_strategy": "single"},
    "mig-mixed": {"nvidia_device_plugin_mig_strategy": "mixed"},
    "time-slicing": {"nvidia_device_plugin_time_slicing_replicas": 4},
    "time-slicing-renamed": {"nvidia_device_plugin_time_slicing_replicas": 4,
                             "nvidia_device_plugin_time_slicing_rename_by_default": True},
    "mps": {"nvidia_device_plugin_mps_replicas": 4},
    "mps-renamed": {"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mps_rename_by_default": True},
}
# Upstream's numbers, by hand: H100 capture 1 GPU; HGX 8 GPUs; A100 with MIG enabled and
# the layout of a100-mig.mig.json (3g.40gb, 2g.20gb, 1g.10gb, 1g.10gb).
UPSTREAM = {
    ("h100-1gpu", "whole"): {"nvidia.com/gpu": 1},
    ("h100-1gpu", "time-slicing"): {"nvidia.com/gpu": 4},
    ("h100-1gpu", "mps"): {"nvidia.com/gpu": 4},
    ("h100-1gpu", "mps-renamed"): {"nvidia.com/gpu.shared": 2},
    ("hgx-h100-8gpu", "whole"): {"nvidia.com/gpu": 8},
    ("hgx-h100-8gpu", "mig-single"): {"nvidia.com/gpu": 8},        # no GPU has MIG enabled
    ("hgx-h100-8gpu", "mig-mixed"): {"nvidia.com/gpu": 8},
    ("hgx-h100-8gpu", "time-slicing"): {"nvidia.com/gpu": 32},
    ("hgx-h100-8gpu", "time-slicing-renamed"): {"nvidia.com/gpu.shared": 32},
    ("hgx-h100-8gpu", "mps"): {"nvidia.com/gpu": 32},
    ("hgx-h100-8gpu", "mps-renamed"): {"nvidia.com/gpu.shared": 16},
    ("a100-mig", "whole"): {"nvidia.com/gpu": 1},                  # migStrategy none: the whole GPU
    ("a100-mig", "mig-mixed"): {"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1,
                                "nvidia.com/mig-1g.10gb": 2},
}


def _plugin_config_text(variables):
    import yaml
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean
    return yaml.safe_dump(_gpu_sharing.plugin_config(variables, boolean))


@pytest.mark.parametrize("fixture, mode", sorted(UPSTREAM))
def test_modes_give_upstreams_numbers(fixture, mode):
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources, _gpu_sharing
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean
    variables = MODES[mode]
    layout = "a100-mig.mig.json" if fixture == "a100-mig" else None
    g = gpus(fixture, layout)
    state = gpu.start_plugin(gpu.parse_config(_plugin_config_text(variables)), g, True, mps_daemon_ready=True)
    assert state.capacity() == UPSTREAM[(fixture, mode)]
    shared = _gpu_sharing.sharing(variables, boolean)
    expected = _gpu_resources.expected_resources(
        _facts(g), mig_strategy=variables.get("nvidia_device_plugin_mig_strategy", "none"),
        replicas=shared["replicas"], rename_by_default=shared["rename_by_default"], sharing=shared["strategy"])
    assert expected["problems"] == []
    assert {name: want["count"] for name, want in expected["resources"].items()} == UPSTREAM[(fixture, mode)]
    assert all(want["exact"] for want in expected["resources"].values())
    assert _gpu_resources.resource_problems(state.capacity(), expected) == []


@pytest.mark.parametrize("variables, error", [
    ({"nvidia_device_plugin_mig_strategy": "single"}, "more than one MIG device type present on node"),
    # The device map is built (and refused) before the MPS options are read.
    ({"nvidia_device_plugin_mig_strategy": "single", "nvidia_device_plugin_mps_replicas": 2},
     "more than one MIG device type present on node"),
    ({"nvidia_device_plugin_mig_strategy": "mixed", "nvidia_device_plugin_mps_replicas": 2},
     "using --mig-strategy=mixed is not supported with MPS"),
])
def test_modes_the_plugin_refuses_on_the_a100_layout(variables, error):
    """The A100 fixture's mixed layout: single refuses it (uniform profiles), MPS refuses MIG;
    expected_resources reports a problem for the MPS ones (preflight refuses them first)."""
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources, _gpu_sharing
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean
    g = gpus("a100-mig", "a100-mig.mig.json")
    with pytest.raises(gpu.PluginError, match=error):
        gpu.start_plugin(gpu.parse_config(_plugin_config_text(variables)), g, True, mps_daemon_ready=True)
    shared = _gpu_sharing.sharing(variables, boolean)
    expected = _gpu_resources.expected_resources(
        _facts(g), mig_strategy=variables["nvidia_device_plugin_mig_strategy"], replicas=shared["replicas"],
        sharing=shared["strategy"])
    assert expected["problems"]
    if shared["strategy"] == "mps":
        assert expected["resources"] == {}
