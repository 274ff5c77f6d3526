# SPDX-License-Identifier: Apache-2.0
"""nvidia_driver on the test fleet: driver packages on GPU nodes only.

GPU nodes are the hosts in group `gpu` (the test hosts have no GPU; gpu1 is
pinned). The scenario must give them nvidia_driver_source: debian and
nvidia_driver_module_options: {nvidia: NVreg_EnableStreamMemOPs=1} (see
docs/nvidia_driver.md). Loading the module and nvidia-smi are out of reach in a
container, so this checks packages, holds, configuration and units only.
"""
from __future__ import annotations

import pytest

# Debian non-free packages of a headless compute node (both flavours' kernel
# package names, so the test follows nvidia_driver_flavour).
COMMON = ["firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced"]
KERNEL_PACKAGES = {"proprietary": "nvidia-kernel-dkms", "open": "nvidia-open-kernel-dkms"}
BRANCH = {"12": "535", "13": "550"}
UNATTENDED = "/etc/apt/apt.conf.d/51kubegpu-nvidia-unattended-upgrades"
MODPROBE = "/etc/modprobe.d/kubegpu-nvidia.conf"


def _is_gpu_node(host):
    groups = host.ansible.get_variables().get("group_names", [])
    return "gpu" in groups


def _debian_major(host):
    return host.system_info.release.split(".")[0]


def _kernel_package(host):
    kernel = [p for p in KERNEL_PACKAGES.values() if host.package(p).is_installed]
    assert len(kernel) == 1, f"expected exactly one NVIDIA kernel package, found {kernel}"
    return kernel[0]


def test_driver_packages_installed_and_held_on_gpu_nodes(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    names = COMMON + [_kernel_package(host)]
    branch = BRANCH.get(_debian_major(host))
    held = set(host.check_output("apt-mark showhold").split())
    for name in names:
        pkg = host.package(name)
        assert pkg.is_installed, f"{name} is not installed"
        if branch:
            assert pkg.version.startswith(branch + "."), f"{name} {pkg.version} is not branch {branch}"
        assert name in held, f"{name} is not held (apt-mark showhold: {sorted(held)})"


def test_only_one_kernel_module_flavour(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    _kernel_package(host)


def test_no_driver_packages_on_other_hosts(host):
    if _is_gpu_node(host):
        pytest.skip("GPU node")
    for name in COMMON + list(KERNEL_PACKAGES.values()):
        assert not host.package(name).is_installed, f"{name} is installed on a host without GPUs"
    assert not host.file(UNATTENDED).exists
    assert not host.file(MODPROBE).exists


def test_non_free_components_enabled(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    policy = host.check_output("apt-cache policy")
    for component in ("contrib", "non-free", "non-free-firmware"):
        # e.g. " 500 http://deb.debian.org/debian bookworm/non-free amd64 Packages"
        assert f"/{component} " in policy, f"{component} is not in apt's sources"


def test_unattended_upgrades_blacklist(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    conf = host.file(UNATTENDED)
    assert conf.exists and conf.user == "root" and conf.mode == 0o644
    # apt itself must parse it and see the patterns.
    dump = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    for pattern in ("^nvidia-", "^libnvidia-", "^libcuda1", "^firmware-nvidia-"):
        assert f'"{pattern}"' in dump, f"{pattern} missing from the unattended-upgrades blacklist: {dump}"


def test_persistence_daemon_enabled(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    unit = host.service("nvidia-persistenced")
    # Enabled for the next boot; it cannot run without a loaded driver (container).
    assert unit.is_enabled, host.run("systemctl status nvidia-persistenced --no-pager").stdout


def test_module_options_file(host):
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    options = host.ansible.get_variables().get("nvidia_driver_module_options") or {}
    conf = host.file(MODPROBE)
    if not options:
        assert not conf.exists
        return
    assert conf.exists and conf.mode == 0o644
    for module, value in options.items():
        value = value if isinstance(value, str) else " ".join(value)
        assert f"options {module} {value}" in conf.content_string


def test_nouveau_blacklisted_on_gpu_nodes(host):
    """os_prereqs writes the blacklist the driver stage relies on."""
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    blacklist = host.file("/etc/modprobe.d/kubegpu-blacklist-nouveau.conf")
    if not blacklist.exists:
        pytest.skip("os_prereqs did not run in this scenario")
    assert "blacklist nouveau" in blacklist.content_string


def test_dkms_registered_the_module(host):
    """DKMS knows the module (it builds nothing here: no kernel headers in a container)."""
    if not _is_gpu_node(host):
        pytest.skip("not a GPU node")
    status = host.check_output("dkms status")
    assert "nvidia" in status, status
