# SPDX-License-Identifier: Apache-2.0
"""Packages that give every installed kernel the NVIDIA module (_driver_packages.kernel_rule,
kernel_packages, kernel_meta_packages; the filters of plugins/filter/kernel.py)."""
from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.filter import kernel as kernel_filter
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_packages as dp
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver as pd

KERNELS = {"installed": ["6.1.0-57-amd64", "6.1.0-50-amd64"]}


@pytest.mark.parametrize("os_family, dist, ver, source, flavour, kernel, precompiled, want", [
    ("Debian", "Debian", "12", "debian", "proprietary", "6.1.0-50-amd64", True,
     {"dkms_module": "nvidia-current", "module_names": ["nvidia-current", "nvidia"], "manager": "apt",
      "per_kernel": ["linux-headers-{kernel}"]}),
    ("Debian", "Debian", "13", "debian", "open", "6.12.48+deb13-amd64", True,
     {"dkms_module": "nvidia-current-open", "module_names": ["nvidia-current-open", "nvidia"], "manager": "apt",
      "per_kernel": ["linux-headers-{kernel}"]}),
    ("Debian", "Ubuntu", "24.04", "ubuntu", "open", "6.8.0-51-generic", True,
     {"dkms_module": None, "module_names": ["nvidia"], "manager": "apt",
      "per_kernel": ["linux-modules-nvidia-580-server-open-{kernel}"]}),
    ("Debian", "Ubuntu", "24.04", "ubuntu", "open", "6.8.0-51-generic", False,
     {"dkms_module": "nvidia", "module_names": ["nvidia"], "manager": "apt", "per_kernel": ["linux-headers-{kernel}"]}),
    ("RedHat", "Rocky", "9.4", "rhel", "open", "5.14.0-427.el9.x86_64", True,
     {"dkms_module": "nvidia", "module_names": ["nvidia"], "manager": "dnf", "per_kernel": ["kernel-devel-{kernel}"]}),
    ("Debian", "Debian", "12", "cuda", "open", "6.1.0-50-amd64", True,
     {"dkms_module": "nvidia", "module_names": ["nvidia"], "manager": "apt", "per_kernel": ["linux-headers-{kernel}"]}),
])
def test_selection_and_host_rule_agree(os_family, dist, ver, source, flavour, kernel, precompiled, want):
    branch = "535" if source == "debian" and ver == "12" else ("550" if source == "debian" else "580")
    selection = dp.select(os_family, dist, ver, branch, flavour, source, kernel_release=kernel, precompiled=precompiled)
    assert selection["kernel_rule"] == want
    # The rule for a host whose loaded driver satisfies the plan (no selection there) is the same.
    os_facts = {"os_family": os_family, "distribution": dist, "distribution_version": ver, "kernel": kernel}
    settings = {"nvidia_driver_ubuntu_precompiled": precompiled}
    assert pd.kernel_rule_for_host({"branch": branch, "flavour": flavour}, source, os_facts, settings) == want
    assert kernel_filter.nvidia_driver_kernel_rule({"branch": branch, "flavour": flavour}, source, os_facts,
                                                   settings) == want


def test_headers_for_every_installed_kernel():
    rule = dp.kernel_rule("debian", "debian", 535, False, True, "apt")
    got = dp.kernel_packages(rule, KERNELS)
    assert got["packages"] == ["linux-headers-6.1.0-57-amd64", "linux-headers-6.1.0-50-amd64"]
    assert got["by_kernel"]["6.1.0-50-amd64"] == ["linux-headers-6.1.0-50-amd64"]
    assert got["dkms_module"] == "nvidia-current" and got["manager"] == "apt"


def test_precompiled_modules_for_every_installed_kernel():
    rule = dp.kernel_rule("ubuntu", "ubuntu", 580, False, False, "apt")
    got = dp.kernel_packages(rule, ["6.8.0-51-generic", "6.8.0-49-generic"])
    assert got["packages"] == ["linux-modules-nvidia-580-server-6.8.0-51-generic",
                               "linux-modules-nvidia-580-server-6.8.0-49-generic"]
    assert got["dkms_module"] is None


def test_dkms_module_override_is_checked_first():
    rule = dp.kernel_rule("debian", "debian", 535, False, True, "apt")
    got = kernel_filter.nvidia_driver_kernel_packages(rule, [], "kubegpu_hello")
    assert got["dkms_module"] == "kubegpu_hello"
    assert got["module_names"] == ["kubegpu_hello", "nvidia-current", "nvidia"]
    assert got["packages"] == [] and got["by_kernel"] == {}


def test_no_kernels_no_packages():
    assert dp.kernel_packages({}, {})["packages"] == []


@pytest.mark.parametrize("os_family, dist, kernel, arch, want", [
    ("Debian", "Debian", "6.1.0-57-amd64", "x86_64", ["linux-image-amd64"]),
    ("Debian", "Debian", "6.1.0-57-cloud-amd64", "x86_64", ["linux-image-cloud-amd64"]),
    ("Debian", "Debian", "6.12.38+deb12-amd64", "x86_64", ["linux-image-amd64"]),
    ("Debian", "Debian", "6.1.0-57-arm64", "aarch64", ["linux-image-arm64"]),
    ("Debian", "Debian", "6.18.44-custom", "aarch64", ["linux-image-arm64"]),
    ("Debian", "Ubuntu", "6.8.0-51-generic", "x86_64", ["linux-image-generic"]),
    ("RedHat", "Rocky", "5.14.0-427.el9.x86_64", "x86_64", ["kernel"]),
])
def test_kernel_meta_packages(os_family, dist, kernel, arch, want):
    assert dp.kernel_meta_packages(os_family, dist, kernel, arch) == want
    assert kernel_filter.nvidia_driver_kernel_meta_packages(
        {"os_family": os_family, "distribution": dist, "kernel": kernel, "architecture": arch}) == want


def test_kernel_meta_packages_refuses_an_unknown_ubuntu_flavour():
    with pytest.raises(dp.DriverPackagesError, match="kernel_update_packages"):
        dp.kernel_meta_packages("Debian", "Ubuntu", "6.8.0-custom", "x86_64")
