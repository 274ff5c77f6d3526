# SPDX-License-Identifier: Apache-2.0
"""Testinfra checks of the os_prereqs stage on every k8s_cluster host.

Run by Molecule's verifier over each scenario's fleet, or by hand:
    pytest --hosts=ansible://all --ansible-inventory=INVENTORY molecule/tests/test_os_prereqs.py

Where the host is a container, the kernel's own state (swap, modules, sysctls) is the
host machine's: those checks accept what the role reports it could not change, and
say so in the skip reason; the files the role writes are checked everywhere.
"""

from __future__ import annotations

import pathlib

import pytest
import yaml

ROLE = pathlib.Path(__file__).resolve().parents[2] / "roles" / "os_prereqs"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
SYSCTL_FILE = "/etc/sysctl.d/99-kubegpu.conf"
MODULES_FILE = "/etc/modules-load.d/kubegpu.conf"
NOUVEAU_FILE = "/etc/modprobe.d/kubegpu-blacklist-nouveau.conf"
REBOOT_MARKER = "/var/lib/kubegpu/reboot-required"


def _variables(host) -> dict:
    try:
        return host.ansible.get_variables()
    except (AttributeError, RuntimeError):  # not the ansible backend
        return {}


def _setting(host, name):
    return _variables(host).get(name, DEFAULTS[name])


@pytest.fixture()
def node(host):
    groups = _variables(host).get("group_names")
    if groups is not None and "k8s_cluster" not in groups:
        pytest.skip("not a k8s_cluster host: os_prereqs does not run here")
    return host


def _in_container(host) -> bool:
    return host.run("systemd-detect-virt --container").rc == 0


def _os_vars(host) -> dict:
    family = "Debian" if host.system_info.distribution in ("debian", "ubuntu") else "RedHat"
    major = host.system_info.release.split(".")[0]
    for name in (f"{family}_{major}.yml", f"{family}.yml"):
        path = ROLE / "vars" / name
        if path.exists():
            return yaml.safe_load(path.read_text())
    raise AssertionError(f"no vars file for {family} {major}")


def _is_gpu_node(host) -> bool:
    where = _setting(host, "os_prereqs_nouveau_blacklist")
    if where in ("all", "none"):
        return where == "all"
    variables = _variables(host)
    if "kubegpu_gpu_node" in variables and isinstance(variables["kubegpu_gpu_node"], bool):
        return variables["kubegpu_gpu_node"]
    return "gpu" in variables.get("group_names", [])


def test_sysctl_file_persists_every_parameter(node):
    f = node.file(SYSCTL_FILE)
    assert f.is_file and f.user == "root"
    lines = {line.replace(" ", "") for line in f.content_string.splitlines()}
    for key, value in _setting(node, "os_prereqs_sysctl").items():
        assert f"{key}={value}" in lines, f"{key} missing from {SYSCTL_FILE}"


def test_sysctl_values_are_applied(node):
    refused = []
    for key, value in _setting(node, "os_prereqs_sysctl").items():
        path = "/proc/sys/" + key.replace(".", "/")
        assert node.file(path).exists, f"{key}: not in /proc/sys (module not loaded)"
        current = node.file(path).content_string.split()
        if current != str(value).split():
            writable = node.run("test -w %s", path).rc == 0
            assert not writable, f"{key} is {current}, wanted {value}, and /proc/sys is writable"
            refused.append(key)
    if refused:
        pytest.skip(f"read-only /proc/sys (container): {refused} differ, reported by the role")


def test_modules_load_file_lists_the_modules(node):
    f = node.file(MODULES_FILE)
    assert f.is_file
    listed = [line.strip() for line in f.content_string.splitlines()
              if line.strip() and not line.startswith("#")]
    assert listed == _setting(node, "os_prereqs_kernel_modules")


def test_overlay_and_br_netfilter_are_active(node):
    # Loaded or built in: overlay registers its file system, br_netfilter its sysctls.
    assert "overlay" in node.file("/proc/filesystems").content_string
    assert node.file("/proc/sys/net/bridge/bridge-nf-call-iptables").exists


def test_fstab_has_no_active_swap_line(node):
    fstab = node.file("/etc/fstab")
    if not fstab.exists:
        pytest.skip("no /etc/fstab")
    for line in fstab.content_string.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 3:
            assert fields[2] != "swap", f"active swap line in /etc/fstab: {line}"


def test_no_swap_is_active(node):
    swaps = node.file("/proc/swaps").content_string.splitlines()[1:]
    if swaps and _in_container(node):
        pytest.skip(f"host swap visible in a container, reported by the role: {swaps}")
    assert swaps == []


def test_nouveau_blacklist_only_where_wanted(node):
    f = node.file(NOUVEAU_FILE)
    if _is_gpu_node(node):
        assert f.is_file
        lines = f.content_string.splitlines()
        assert "blacklist nouveau" in lines
        assert "options nouveau modeset=0" in lines
    else:
        assert not f.exists


def test_reboot_marker_matches_nouveau_state(node):
    nouveau_loaded = node.file("/sys/module/nouveau").exists
    marker = node.file(REBOOT_MARKER)
    ours = marker.exists and "os_prereqs: nouveau" in marker.content_string
    assert ours == (nouveau_loaded and _is_gpu_node(node))


def test_time_sync_service_is_running(node):
    choice = _setting(node, "os_prereqs_time_sync")
    service = _os_vars(node)["_os_prereqs_time_sync_services"][choice]["service"]
    svc = node.service(service)
    assert svc.is_enabled
    if choice == "timesyncd" and _in_container(node):
        pytest.skip("systemd-timesyncd does not run in containers (ConditionVirtualization=!container)")
    if not svc.is_running:
        journal = node.run("journalctl --unit %s --lines 40 --no-pager", service).stdout
        pytest.fail(f"{service} is not running; its journal:\n{journal}")
    dropin = node.file(f"/etc/systemd/system/{service}.service.d/kubegpu-container.conf")
    # chrony runs with -x (clock left alone) in a container, unchanged elsewhere.
    assert dropin.exists == (choice == "chrony" and _in_container(node))


def test_base_packages_are_installed(node):
    os_vars = _os_vars(node)
    choice = _setting(node, "os_prereqs_time_sync")
    wanted = (os_vars["_os_prereqs_packages"]
              + os_vars["_os_prereqs_time_sync_services"][choice]["packages"]
              + _setting(node, "os_prereqs_packages_extra"))
    missing = [name for name in wanted if not node.package(name).is_installed]
    assert missing == []
