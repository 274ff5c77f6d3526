# SPDX-License-Identifier: Apache-2.0
"""Expected extended resources per k8s-device-plugin's rules (internal/rm, api/config/v1)."""
import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources as r


def _gpus(mig_flags, profiles=None):
    gpus = [{"index": i, "mig_mode_current": "enabled" if m else "disabled"} for i, m in enumerate(mig_flags)]
    if profiles is not None:
        for gpu in gpus:
            if gpu["mig_mode_current"] == "enabled":
                gpu["mig_devices"] = list(profiles)
    return {"count": len(gpus), "gpus": gpus}


def res(expected):
    return {k: (v["count"], v["exact"]) for k, v in expected["resources"].items()}


@pytest.mark.parametrize("strategy, flags, profiles, want", [
    ("none", [0, 0], None, {"nvidia.com/gpu": (2, True)}),
    ("none", [1, 1], None, {"nvidia.com/gpu": (2, True)}),            # MIG GPUs as whole GPUs
    ("single", [1, 1], None, {"nvidia.com/gpu": (2, False)}),          # at least one MIG device each
    ("single", [1, 1], ["1g.10gb"] * 7, {"nvidia.com/gpu": (14, True)}),
    ("mixed", [1, 1], None, {"nvidia.com/mig-*": (2, False)}),
    ("mixed", [0, 1], ["2g.20gb", "1g.10gb+me"],
     {"nvidia.com/gpu": (1, True), "nvidia.com/mig-2g.20gb": (1, True), "nvidia.com/mig-1g.10gb.me": (1, True)}),
    ("mixed", [0, 0], None, {"nvidia.com/gpu": (2, True)}),
])
def test_expected(strategy, flags, profiles, want):
    assert res(r.expected_resources(_gpus(flags, profiles), mig_strategy=strategy)) == want


def test_single_refuses_mixed_mig_modes():
    expected = r.expected_resources(_gpus([1, 0]), mig_strategy="single")
    assert expected["problems"] and "refuses" in expected["problems"][0]
    assert r.resource_problems({"nvidia.com/gpu": "2"}, expected) == expected["problems"]


def test_time_slicing_and_rename():
    facts = _gpus([0, 0])
    assert res(r.expected_resources(facts, replicas=4)) == {"nvidia.com/gpu": (8, True)}
    assert res(r.expected_resources(facts, replicas=4, rename_by_default=True)) == {"nvidia.com/gpu.shared": (8, True)}
    assert res(r.expected_resources(facts, replicas=1, rename_by_default=True)) == {"nvidia.com/gpu": (2, True)}


def test_problems_and_summary():
    expected = r.expected_resources(_gpus([1, 1]), mig_strategy="mixed")
    assert r.resource_problems({"nvidia.com/mig-1g.10gb": "3", "nvidia.com/mig-3g.40gb": "1"}, expected) == []
    assert r.resource_problems({}, expected) == ["allocatable nvidia.com/mig-<profile> is 0, expected at least 2"]
    assert r.summary({"nvidia.com/mig-1g.10gb": "3"}, expected) == "mig-* 3/>=2"


def test_unknown_strategy():
    with pytest.raises(r.GpuResourcesError):
        r.expected_resources({}, mig_strategy="auto")


# --- the resource a validate test Job requests ---------------------------------------------------

GPU_ONLY = {"resources": {"nvidia.com/gpu": {"count": 8, "exact": True}}, "problems": [], "notes": []}
SHARED = {"resources": {"nvidia.com/gpu.shared": {"count": 32, "exact": True}}, "problems": [], "notes": []}
MIXED = {"resources": {"nvidia.com/mig-*": {"count": 1, "exact": False}}, "problems": [], "notes": []}


@pytest.mark.parametrize("requested, extended, expected, resource", [
    # Asked for: that one, whatever the node advertises.
    ("nvidia.com/mig-3g.40gb", {"nvidia.com/gpu": "8"}, GPU_ONLY, "nvidia.com/mig-3g.40gb"),
    # The first expected resource the node advertises, in the node's order.
    ("", {"nvidia.com/gpu.shared": "32", "nvidia.com/gpu": "8"}, SHARED, "nvidia.com/gpu.shared"),
    ("", {"example.com/fpga": "1", "nvidia.com/gpu": "8"}, GPU_ONLY, "nvidia.com/gpu"),
    # MIG mixed, profiles unknown: the node's first nvidia.com/mig-<profile>.
    ("", {"nvidia.com/mig-2g.20gb": "1", "nvidia.com/mig-1g.10gb": "3"}, MIXED, "nvidia.com/mig-2g.20gb"),
    (None, {"nvidia.com/mig-1g.10gb": "3"}, GPU_ONLY, "nvidia.com/mig-1g.10gb"),
    # Nothing advertised yet (or no node read): nvidia.com/gpu.
    ("", {}, GPU_ONLY, "nvidia.com/gpu"),
    ("", None, MIXED, "nvidia.com/gpu"),
    ("", {"nvidia.com/gpu": "0"}, {}, "nvidia.com/gpu"),
])
def test_job_resource(requested, extended, expected, resource):
    assert r.job_resource(requested, extended, expected) == resource


# --- MPS (api/config/v1/sharing.go, cmd/nvidia-device-plugin/main.go, internal/plugin/mps.go) ---

def test_mps_replicates_like_time_slicing():
    facts = _gpus([0] * 8)
    assert res(r.expected_resources(facts, replicas=4, sharing="mps")) == {"nvidia.com/gpu": (32, True)}
    assert res(r.expected_resources(facts, replicas=2, rename_by_default=True, sharing="mps")) == {
        "nvidia.com/gpu.shared": (16, True)}
    assert "mps: 4 replicas per device" in r.expected_resources(facts, replicas=4, sharing="mps")["notes"]


@pytest.mark.parametrize("strategy, flags, profiles", [
    ("mixed", [0, 0], None),                    # main.go validateFlags refuses MPS with mixed
    ("single", [1, 1], ["1g.10gb"] * 7),        # mps.go getMPSOptions refuses MIG devices
])
def test_mps_refusals_leave_nothing_advertised(strategy, flags, profiles):
    expected = r.expected_resources(_gpus(flags, profiles), mig_strategy=strategy, replicas=2, sharing="mps")
    assert expected["resources"] == {} and len(expected["problems"]) == 1
    assert "refuses" in expected["problems"][0]
    assert r.resource_problems({"nvidia.com/gpu": "14"}, expected) == expected["problems"]


def test_mps_on_gpus_without_mig_under_single():
    assert res(r.expected_resources(_gpus([0, 0]), mig_strategy="single", replicas=3, sharing="mps")) == {
        "nvidia.com/gpu": (6, True)}


def test_sharing_none_ignores_replicas():
    assert res(r.expected_resources(_gpus([0, 0]), replicas=4, sharing="none")) == {"nvidia.com/gpu": (2, True)}
    with pytest.raises(r.GpuResourcesError):
        r.expected_resources(_gpus([0]), replicas=2, sharing="vgpu")


def test_single_refuses_two_mig_profiles():
    facts = _gpus([1])
    facts["gpus"][0]["mig_devices"] = ["3g.40gb", "2g.20gb", "1g.10gb", "1g.10gb"]
    expected = r.expected_resources(facts, mig_strategy="single")
    assert len(expected["problems"]) == 1 and "more than one MIG device type" in expected["problems"][0]


def test_mixed_does_not_replicate_mig_devices():
    """kubegpu's config shares nvidia.com/gpu only (updateDeviceMapWithReplicas replicates the
    resources the sharing block names): MIG devices stay one each."""
    facts = _gpus([0, 1], ["2g.20gb", "1g.10gb"])
    assert res(r.expected_resources(facts, mig_strategy="mixed", replicas=4)) == {
        "nvidia.com/gpu": (4, True), "nvidia.com/mig-2g.20gb": (1, True), "nvidia.com/mig-1g.10gb": (1, True)}


def test_mixed_refuses_compute_instances_smaller_than_their_gpu_instance():
    """buildMigDeviceMap (internal/rm/device_map.go): "1c.3g.40gb" matches no mixed
    resource; the plugin refuses the node, so it is a problem, not a resource."""
    facts = {"count": 1, "gpus": [{"index": 0, "mig_mode_current": "enabled",
                                   "mig_devices": [{"profile": "1c.3g.40gb"}, {"profile": "3g.40gb"}]}]}
    got = r.expected_resources(facts, mig_strategy="mixed")
    assert got["resources"] == {"nvidia.com/mig-3g.40gb": {"count": 1, "exact": True}}
    assert len(got["problems"]) == 1 and "1c.3g.40gb" in got["problems"][0]
