# SPDX-License-Identifier: Apache-2.0
"""The driver filters expose _driver_packages and turn refusals into filter errors."""
from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import driver
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_plan import plan

H100 = {
    "count": 1,
    "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "architecture": "hopper", "pci_device_id": "2330",
              "pci_bus_id": "0000:01:00.0"}],
    "driver": {"loaded": False, "version": None, "flavour": None},
    "nvswitch_count": 0,
    "fabric_manager_needed": False,
}


def test_filters_are_registered():
    names = set(driver.FilterModule().filters())
    assert {"nvidia_driver_packages", "nvidia_driver_default_source", "nvidia_driver_source_constraints",
            "nvidia_driver_pinned_plan", "nvidia_driver_package_changes",
            "nvidia_driver_merge_apt_components"} <= names


def test_packages_from_a_real_plan():
    p = plan(H100, "auto", "auto")
    s = driver.nvidia_driver_packages(p, "Debian", "Ubuntu", "24.04", "ubuntu", kernel_release="6.8.0-51-generic")
    assert s["names"][0] == "nvidia-headless-no-dkms-580-server-open"


def test_debian_constraint_feeds_the_plan():
    c = driver.nvidia_driver_source_constraints("debian", "Debian", "Debian", "12.12")
    p = plan(H100, c["branch"], c["flavour"])
    s = driver.nvidia_driver_packages(p, "Debian", "Debian", "12.12", "debian")
    assert s["names"][0] == "nvidia-kernel-dkms"


def test_fabric_manager_follows_the_plan():
    p = dict(plan(H100, "580", "open"), fabric_manager=True)
    s = driver.nvidia_driver_packages(p, "Debian", "Ubuntu", "24.04", "cuda", kernel_release="6.8.0-51-generic")
    assert s["fabric_manager_packages"] == ["nvidia-fabricmanager", "libnvidia-nscq"]    # CUDA repo, R580+
    assert s["nvlsm_packages"] == []
    s = driver.nvidia_driver_packages(dict(p, nvlsm=True), "Debian", "Ubuntu", "24.04", "cuda",
                                      kernel_release="6.8.0-51-generic")
    assert s["nvlsm_packages"] == ["nvlsm", "infiniband-diags"]


def test_refusal_is_a_filter_error_naming_the_variable():
    p = plan(H100, "auto", "auto")
    with pytest.raises(AnsibleFilterError, match="nvidia_driver_packages: .*nvidia_driver_source: cuda"):
        driver.nvidia_driver_packages(p, "Debian", "Debian", "12.12", "debian")


def test_no_gpu_plan_is_refused_without_a_branch():
    with pytest.raises(AnsibleFilterError, match="expected a driver plan with a branch"):
        driver.nvidia_driver_packages(plan({"gpus": []}), "Debian", "Debian", "12.12", "debian")


def test_pinned_plan_and_changes_and_merge():
    p = driver.nvidia_driver_pinned_plan({"gpus": []}, "auto", "auto", {"branch": 535, "flavour": "proprietary"})
    s = driver.nvidia_driver_packages(p, "Debian", "Debian", "12.12", "debian")
    assert driver.nvidia_driver_package_changes({}, s)["install"] is True
    r = driver.nvidia_driver_merge_apt_components("deb http://d/debian bookworm main\n", "list", ["non-free"], "bookworm")
    assert r["content"] == "deb http://d/debian bookworm main non-free\n"
    with pytest.raises(AnsibleFilterError):
        driver.nvidia_driver_default_source("Suse", "SLES")
    with pytest.raises(AnsibleFilterError):
        driver.nvidia_driver_merge_apt_components("", "toml", [], "x")


def test_gpu_driver_plan_refuses_a_branch_below_hoppers_floor():
    """Stage 3's gpu_driver_plan filter (plugins/filter/gpu.py) on a Hopper host: R520 is the floor."""
    from ansible_collections.kubegpu.cluster.plugins.filter.gpu import gpu_driver_plan

    with pytest.raises(AnsibleFilterError) as info:
        gpu_driver_plan(H100, "470", "auto")
    assert str(info.value) == (
        "gpu_driver_plan: nvidia_driver_branch=470 cannot drive GPU 0 NVIDIA H100 80GB HBM3 (hopper, 0000:01:00.0):"
        " hopper GPUs need branch R520 or newer. Set nvidia_driver_branch to 520 or newer (580 recommended) or 'auto'.")
    assert gpu_driver_plan(H100, "535", "auto")["branch"] == "535"


UBUNTU_2404 = {"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "24.04",
               "kernel": "6.8.0-51-generic", "architecture": "x86_64"}


def test_host_plan_is_preflights_decision():
    decided = driver.nvidia_driver_host_plan(H100, UBUNTU_2404, {"nvidia_driver_branch": "auto"})
    assert decided["source"] == "ubuntu"
    assert decided["plan"]["branch"] == plan(H100, "auto", "auto")["branch"]
    with pytest.raises(AnsibleFilterError, match="nvidia_driver_host_plan: .*R520"):
        driver.nvidia_driver_host_plan(H100, UBUNTU_2404, {"nvidia_driver_branch": "470"})


@pytest.mark.parametrize("precompiled, builds", [(True, False), ("true", False), ("false", True), ("no", True)])
def test_host_selection_types_booleans_from_the_command_line(precompiled, builds):
    """-e nvidia_driver_ubuntu_precompiled=false is the string 'false': DKMS, not precompiled."""
    decided = driver.nvidia_driver_host_plan(H100, UBUNTU_2404, {})
    selection = driver.nvidia_driver_host_selection(decided["plan"], decided["source"], UBUNTU_2404,
                                                    {"nvidia_driver_ubuntu_precompiled": precompiled})
    assert selection["builds_modules"] is builds


@pytest.mark.parametrize("mok, refused", [(False, True), ("false", True), ("true", False), (True, False)])
def test_secure_boot_refusal_types_the_mok_setting(mok, refused):
    decided = driver.nvidia_driver_host_plan(H100, UBUNTU_2404, {})
    selection = driver.nvidia_driver_host_selection(decided["plan"], decided["source"], UBUNTU_2404,
                                                    {"nvidia_driver_ubuntu_precompiled": False})
    found = driver.nvidia_driver_secure_boot_problems(selection, dict(H100, secure_boot="enabled"), mok)
    assert bool(found) is refused
    if refused:
        assert found[0]["variable"] == "nvidia_driver_source"
        assert "Secure Boot is enabled" in found[0]["problem"]
    assert driver.nvidia_driver_secure_boot_problems(selection, dict(H100, secure_boot="disabled"), False) == []


def test_reboot_decision_filter_reads_its_context_as_ansible_passes_it():
    """run.yml passes the context as a dict of templated values: booleans may arrive as
    strings (ansible-core before 2.19) and the virtualisation type may be empty."""
    from ansible_collections.kubegpu.cluster.plugins.filter.driver import nvidia_driver_reboot_decision
    plan = {"branch": "580", "version": None, "flavour": "open"}
    context = {"was_loaded": "False", "in_container": "True", "check_mode": False, "reboot_allowed": "true",
               "reboot_on_upgrade": False, "host": "gpu1", "virtualization_type": "docker"}
    decision = nvidia_driver_reboot_decision({"driver": {"loaded": False}}, plan, context)
    assert decision["reboot_needed"] is True and decision["reboot_ok"] is False
    assert decision["message"].startswith("gpu1: reboot required to load driver R580 open")
    assert "container (docker)" in decision["message"]
    allowed = nvidia_driver_reboot_decision({"driver": {"loaded": False}}, plan,
                                            dict(context, in_container="False", virtualization_type=""))
    assert allowed["reboot_ok"] is True and allowed["message"] == ""
