# SPDX-License-Identifier: Apache-2.0
"""Containerized driver mode (plugin_utils/_driver_container.py, filters in plugins/filter/driver_container.py):
the settings preflight and the gpu_operator stage refuse, what a GPU node must not have, whether NVIDIA's
precompiled driver containers fit a host, and what stage 3 does in container mode."""
from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import driver_container as filters
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_container as dc
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

ROOT = Path(__file__).resolve().parents[4]

# The role defaults these rules read (nvidia_driver, gpu_operator, kubegpu, container_runtime), as preflight
# reads them, with container mode on and the toolkit left to the Operator: a setup that works.
DEFAULTS = ps.settings({}, dc.SETTINGS, str(ROOT))
CONTAINER = dict(DEFAULTS, nvidia_driver_mode="container", kubegpu_gpu_operator=True,
                 container_runtime_nvidia_toolkit_install=False)

UBUNTU_2204 = {"distribution": "Ubuntu", "distribution_version": "22.04", "kernel": "5.15.0-69-generic",
               "architecture": "x86_64"}
H100 = {"index": 0, "name": "NVIDIA H100 80GB HBM3", "architecture": "hopper", "pci_bus_id": "0000:17:00.0"}
K80 = {"index": 0, "name": "Tesla K80", "architecture": "kepler", "pci_bus_id": "0000:10:00.0"}


def _gpu(driver=None, source="sysfs", secure_boot="disabled", gpus=(H100,), **more):
    return dict({"count": len(gpus), "gpus": list(gpus), "source": source, "secure_boot": secure_boot,
                 "driver": dict({"loaded": False, "version": None, "install_hints": []}, **(driver or {}))}, **more)


def _variables(records):
    return [r["variable"] for r in records]


# --- the defaults -----------------------------------------------------------------------------

def test_role_defaults_are_the_host_driver_and_a_pinned_chart_driver():
    assert DEFAULTS["nvidia_driver_mode"] == "host"
    # The default driver of GPU Operator v25.10.1 (deployments/gpu-operator/values.yaml driver.version).
    assert DEFAULTS["gpu_operator_driver_version"] == "580.105.08"
    assert DEFAULTS["gpu_operator_driver_precompiled"] == "auto"
    assert DEFAULTS["gpu_operator_driver_upgrade_max_unavailable"] == "25%"


def test_host_mode_refuses_nothing_here():
    assert dc.mode_problems(DEFAULTS, boolean) == []
    assert dc.host_problems(_gpu({"loaded": True, "version": "580.95.05"}, source="nvml", secure_boot="enabled"),
                            UBUNTU_2204, DEFAULTS, boolean) == []


def test_a_working_container_setup_passes():
    assert dc.mode_problems(CONTAINER, boolean) == []
    assert dc.host_problems(_gpu(), UBUNTU_2204, CONTAINER, boolean) == []


# --- mode_problems: the settings alone ------------------------------------------------------------

@pytest.mark.parametrize("changes, variable, fragment", [
    ({"kubegpu_gpu_operator": "no"}, "nvidia_driver_mode", "container while kubegpu_gpu_operator is false"),
    ({"container_runtime_nvidia_toolkit_install": True}, "container_runtime_nvidia_toolkit_install",
     "true while nvidia_driver_mode is container"),
    ({"gpu_operator_driver_version": "latest"}, "gpu_operator_driver_version", "'latest' is not a driver container"),
    # Unquoted in YAML: 580.10 is the float 580.1.
    ({"gpu_operator_driver_version": 580.1}, "gpu_operator_driver_version", "580.1 is a number, not a driver version"),
    # The branch alone is a tag of the precompiled images only.
    ({"gpu_operator_driver_version": "580"}, "gpu_operator_driver_version", "'580' is not a driver container"),
    ({"gpu_operator_driver_version": "550.163.01", "gpu_operator_driver_precompiled": True},
     "gpu_operator_driver_precompiled", "no precompiled driver containers of branch R550"),
    ({"gpu_operator_driver_upgrade_max_unavailable": "half"}, "gpu_operator_driver_upgrade_max_unavailable",
     "'half' is neither a number of nodes nor a percentage"),
    ({"gpu_operator_driver_upgrade_max_unavailable": 0}, "gpu_operator_driver_upgrade_max_unavailable", "above 0"),
    ({"gpu_operator_driver_upgrade_max_unavailable": "0%"}, "gpu_operator_driver_upgrade_max_unavailable", "above 0"),
    ({"gpu_operator_driver_upgrade_max_parallel": -1}, "gpu_operator_driver_upgrade_max_parallel", "negative"),
    ({"gpu_operator_values": {"driver": {"version": "570.195.03"}}}, "gpu_operator_values", "driver.version is set"),
    ({"gpu_operator_values": {"driver": {"usePrecompiled": True}}}, "gpu_operator_values",
     "driver.usePrecompiled is set"),
    ({"gpu_operator_values": {"driver": {"enabled": False}}}, "gpu_operator_values", "driver.enabled is set"),
])
def test_mode_problems(changes, variable, fragment):
    records = dc.mode_problems(dict(CONTAINER, **changes), boolean)
    assert _variables(records) == [variable], records
    assert fragment in records[0]["problem"] and records[0]["fix"]


@pytest.mark.parametrize("changes", [
    {"gpu_operator_driver_version": "580", "gpu_operator_driver_precompiled": "yes"},
    {"gpu_operator_driver_version": "570.195.03"},
    {"gpu_operator_driver_upgrade_max_unavailable": 2},
    {"gpu_operator_driver_upgrade_max_unavailable": "3"},
    {"gpu_operator_driver_upgrade_max_unavailable": "100%"},
    {"gpu_operator_driver_upgrade_max_parallel": 0},
    # Driver values kubegpu does not set pass through (a mirror, pod deletion).
    {"gpu_operator_values": {"driver": {"repository": "registry.example.com/nvidia",
                                        "upgradePolicy": {"gpuPodDeletion": {"force": True}}}}},
])
def test_mode_accepts(changes):
    assert dc.mode_problems(dict(CONTAINER, **changes), boolean) == []


def test_container_mode_spelled_with_capitals_is_container_but_the_spec_check_names_it():
    # The argument spec (choices host, container) refuses "Container" first; the rule reads it as meant.
    assert dc.is_container({"nvidia_driver_mode": "Container"})
    assert not dc.is_container({"nvidia_driver_mode": None})


# --- NVIDIA's conventional driver containers: which OS has them --------------------------------

DEBIAN_12 = {"distribution": "Debian", "distribution_version": "12", "distribution_major_version": "12",
             "kernel": "6.1.0-28-amd64", "architecture": "x86_64"}


@pytest.mark.parametrize("facts, fragment", [
    (UBUNTU_2204, None),
    (dict(UBUNTU_2204, distribution_version="24.04"), None),
    ({"distribution": "RedHat", "distribution_version": "9.4", "distribution_major_version": "9"}, None),
    ({"distribution": "RedHat", "distribution_version": "8.10", "distribution_major_version": "8"}, None),
    ({"distribution": "Rocky", "distribution_version": "9.5", "distribution_major_version": "9"}, None),
    (DEBIAN_12, "none for Debian 12"),
    (dict(DEBIAN_12, distribution_version="13", distribution_major_version="13"), "none for Debian 13"),
    (dict(UBUNTU_2204, distribution_version="20.04"), "none for Ubuntu 20.04"),
    ({"distribution": "AlmaLinux", "distribution_version": "9.4"}, "none for AlmaLinux 9.4"),
    # Odd RHEL minor releases have no image (NVIDIA/gpu-operator#1895: no -rhel9.7 tag).
    ({"distribution": "RedHat", "distribution_version": "9.7", "distribution_major_version": "9"},
     "even minor releases only"),
    ({}, "gathered no OS facts"),
])
def test_image_problem(facts, fragment):
    found = dc.image_problem(facts)
    assert (found is None) if fragment is None else (fragment in found), found


def test_container_mode_on_debian_is_refused_unless_the_images_are_ones_own():
    [record] = dc.host_problems(_gpu(), DEBIAN_12, CONTAINER, boolean)
    assert record["variable"] == "nvidia_driver_mode"
    assert "none for Debian 12" in record["problem"] and "ImagePullBackOff" in record["problem"]
    assert "nvidia_driver_mode: host" in record["fix"] and "driver: {repository:" in record["fix"]
    own = dict(CONTAINER, gpu_operator_values={"driver": {"repository": "registry.example.com/gpu/"}})
    assert dc.own_driver_images(own) == "registry.example.com/gpu"
    assert dc.host_problems(_gpu(), DEBIAN_12, own, boolean) == []
    # NVIDIA's own registry named explicitly is still NVIDIA's images.
    nvidia = dict(CONTAINER, gpu_operator_values={"driver": {"repository": "nvcr.io/nvidia"}})
    assert _variables(dc.host_problems(_gpu(), DEBIAN_12, nvidia, boolean)) == ["nvidia_driver_mode"]


# --- precompiled driver containers -------------------------------------------------------------

@pytest.mark.parametrize("facts, branch, fragment", [
    (UBUNTU_2204, "580", None),
    (dict(UBUNTU_2204, kernel="6.8.0-1015-aws"), "535", None),
    (dict(UBUNTU_2204, distribution_version="24.04", kernel="6.8.0-51-generic"), "570", None),
    (dict(UBUNTU_2204, distribution_version="24.04", kernel="6.8.0-1012-nvidia"), "580", None),
    (dict(UBUNTU_2204, kernel="6.8.0-1015-gcp"), "580", "of the gcp variant"),
    (dict(UBUNTU_2204, kernel="5.15.0-69-lowlatency"), "580", "of the lowlatency variant"),
    (dict(UBUNTU_2204, distribution_version="24.04", kernel="6.11.0-26-generic"), "580", "built for kernels 6.8"),
    (dict(UBUNTU_2204, distribution_version="24.04", kernel="6.8.0-51-generic"), "535",
     "R535 has no precompiled driver containers for Ubuntu 24.04"),
    (dict(UBUNTU_2204, architecture="aarch64"), "580", "x86_64 only"),
    ({"distribution": "Debian", "distribution_version": "12", "kernel": "6.1.0-41-amd64", "architecture": "x86_64"},
     "580", "for Ubuntu 22.04 and Ubuntu 24.04 only, not for Debian 12"),
    ({}, "580", "no OS facts"),
])
def test_precompiled_problem(facts, branch, fragment):
    found = dc.precompiled_problem(facts, branch)
    assert (found is None) if fragment is None else (fragment in found), found


@pytest.mark.parametrize("setting, nodes, expected", [
    ("auto", [UBUNTU_2204, dict(UBUNTU_2204, kernel="6.8.0-1015-azure")], True),
    # One GPU node NVIDIA builds none for: the ClusterPolicy's one setting is off for all.
    ("auto", [UBUNTU_2204, dict(UBUNTU_2204, kernel="6.8.0-1015-gcp")], False),
    # A GPU node without facts in this run cannot be matched to an image.
    ("auto", [UBUNTU_2204, {}], False),
    ("auto", [], False),
    (True, [], True),
    ("false", [UBUNTU_2204], False),
])
def test_use_precompiled(setting, nodes, expected):
    assert dc.use_precompiled(dict(CONTAINER, gpu_operator_driver_precompiled=setting), nodes, boolean) is expected


# --- host_problems: one GPU node -----------------------------------------------------------------

@pytest.mark.parametrize("gpu, fragment", [
    # The host's own driver, answering through NVML or nvidia-smi (as the Operator's validator tells).
    (_gpu({"loaded": True, "version": "580.95.05"}, source="nvml"), "own NVIDIA driver 580.95.05 is loaded"),
    (_gpu({"loaded": True, "version": "535.261.03"}, source="nvidia_smi"), "own NVIDIA driver 535.261.03"),
    (_gpu({"loaded": True, "version": "580.95.05", "library_mismatch": True}), "own NVIDIA driver"),
    # Installed, not loaded: it would load at the next boot.
    (_gpu({"installed": True, "install_hints": ["kernel module /lib/modules/6.8.0-45-generic/updates/dkms/nvidia.ko.zst"]}),
     "installed, not loaded, and would load at the next boot (kernel module /lib/modules"),
])
def test_a_host_driver_is_refused(gpu, fragment):
    records = dc.host_problems(gpu, UBUNTU_2204, CONTAINER, boolean)
    assert _variables(records) == ["nvidia_driver_mode"], records
    assert fragment in records[0]["problem"]
    assert "apt purge" in records[0]["fix"] and "nvidia_driver_mode: host" in records[0]["fix"]


def test_the_driver_containers_own_driver_is_not_a_host_driver():
    """Loaded by the Operator's driver container: the host's own user space does not answer
    (gpu_facts fell back to sysfs), so a re-run of site.yml is not refused."""
    gpu = _gpu({"loaded": True, "version": "580.105.08"}, source="sysfs")
    assert dc.host_driver(gpu) is None
    assert dc.host_problems(gpu, UBUNTU_2204, CONTAINER, boolean) == []


@pytest.mark.parametrize("changes, facts, refused", [
    ({}, UBUNTU_2204, True),
    # auto: precompiled only if every GPU node has them, which one host cannot promise.
    ({"gpu_operator_driver_precompiled": "auto"}, UBUNTU_2204, True),
    ({"gpu_operator_driver_precompiled": True}, UBUNTU_2204, False),
    ({"gpu_operator_driver_signed_modules": "yes"}, UBUNTU_2204, False),
])
def test_secure_boot_needs_signed_modules(changes, facts, refused):
    records = dc.host_problems(_gpu(secure_boot="enabled"), facts, dict(CONTAINER, **changes), boolean)
    secure = [r for r in records if "Secure Boot" in r["problem"]]
    assert bool(secure) is refused, records
    if refused:
        assert secure[0]["variable"] == "nvidia_driver_mode"
        assert "gpu_operator_driver_precompiled: true" in secure[0]["fix"]
        assert "gpu_operator_driver_signed_modules: true" in secure[0]["fix"]


def test_precompiled_forced_where_nvidia_builds_none():
    debian = {"distribution": "Debian", "distribution_version": "12", "kernel": "6.1.0-41-amd64",
              "architecture": "x86_64"}
    records = dc.host_problems(_gpu(secure_boot="enabled"), debian,
                               dict(CONTAINER, gpu_operator_driver_precompiled=True), boolean)
    assert _variables(records) == ["gpu_operator_driver_precompiled", "nvidia_driver_mode"], records
    assert "true, but NVIDIA builds precompiled driver containers for Ubuntu" in records[0]["problem"]


def test_a_branch_that_cannot_drive_the_gpus():
    records = dc.host_problems(_gpu(gpus=(K80,)), UBUNTU_2204, CONTAINER, boolean)
    assert records == [{
        "variable": "gpu_operator_driver_version",
        "problem": "gpu_operator_driver_version=580.105.08 cannot drive GPU 0 Tesla K80 (kepler, 0000:10:00.0):"
                   " the last branch for kepler GPUs is R470",
        "fix": records[0]["fix"]}]
    assert "nvidia_driver_mode: host" in records[0]["fix"]


# --- host_plan: what stage 3 does ------------------------------------------------------------------

def test_host_plan_installs_nothing_and_unloads_nouveau():
    plan = dc.host_plan(_gpu(nouveau_loaded=True), UBUNTU_2204, CONTAINER, boolean)
    assert plan["packages"] == [] and plan["problems"] == []
    assert plan["unload_nouveau"] is True and plan["precompiled_available"] is True
    assert "580.105.08" in plan["summary"] and "no driver package and no kernel headers" in plan["summary"]
    assert "nouveau is unloaded first" in plan["summary"]


def test_host_plan_in_a_container_unloads_nothing():
    facts = dict(UBUNTU_2204, virtualization_role="guest", virtualization_type="docker")
    assert dc.host_plan(_gpu(nouveau_loaded=True), facts, CONTAINER, boolean)["unload_nouveau"] is False


def test_host_plan_says_when_the_modules_are_built():
    debian = {"distribution": "Debian", "distribution_version": "12", "kernel": "6.1.0-41-amd64",
              "architecture": "x86_64"}
    plan = dc.host_plan(_gpu(), debian, CONTAINER, boolean)
    assert plan["precompiled_available"] is False
    assert "the driver container builds the modules (no precompiled image: NVIDIA builds" in plan["summary"]


def test_host_plan_carries_the_refusals():
    plan = dc.host_plan(_gpu(secure_boot="enabled"), UBUNTU_2204, CONTAINER, boolean)
    assert _variables(plan["problems"]) == ["nvidia_driver_mode"]


# --- filters ---------------------------------------------------------------------------------------

def test_filter_reads_the_settings_as_set_else_the_role_defaults():
    """Stage 3 hands the host's variables (hostvars): what is set wins, the gpu_operator role's defaults fill
    in (they are not visible in stage 3), and the stage's own nvidia_driver_mode is given."""
    variables = {"gpu_operator_driver_version": "570.195.03", "kubegpu_gpu_operator": True}
    plan = filters.nvidia_driver_container_plan(_gpu(), UBUNTU_2204, variables, "container")
    assert "570.195.03" in plan["summary"]
    # container_runtime_nvidia_toolkit_install is not host-level: only the mode's settings reach host_plan.
    assert plan["problems"] == []


def test_mode_filter_wants_a_mapping():
    with pytest.raises(AnsibleFilterError):
        filters.nvidia_driver_mode_problems("container")
    assert _variables(filters.nvidia_driver_mode_problems({"nvidia_driver_mode": "container"})) == [
        "nvidia_driver_mode", "container_runtime_nvidia_toolkit_install", "gpu_operator_driver_version",
        "gpu_operator_driver_upgrade_max_unavailable"]
