# SPDX-License-Identifier: Apache-2.0
"""The per-OS variables of roles/os_prereqs: complete and consistent for every OS.

tasks/facts.yml loads the FIRST file that exists of <distro>_<major>.yml,
<distro>.yml, <os_family>_<major>.yml, <os_family>.yml, and only that one, so every
file must carry every key. The RHEL family cannot run on the test hosts here: these
checks are what stands behind its package names, services and tools.
"""

from __future__ import annotations

import pathlib

import jinja2
import pytest
import yaml

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "os_prereqs"
VARS_DIR = ROLE / "vars"
OS_VARS_FILES = sorted(p for p in VARS_DIR.glob("*.yml") if p.name != "main.yml")

REQUIRED_KEYS = {
    "_os_prereqs_packages",
    "_os_prereqs_time_sync_services",
    "_os_prereqs_initramfs_tool",
    "_os_prereqs_initramfs_command",
    "_os_prereqs_firewall_backend",
    "_os_prereqs_firewall_tool",
    "_os_prereqs_package_proxy_backend",
    "_os_prereqs_selinux",
}

# What each OS family must look like (tools, backends, features).
FAMILY = {
    "Debian": {
        "_os_prereqs_initramfs_command": ["update-initramfs", "-u"],
        "_os_prereqs_firewall_backend": "ufw",
        "_os_prereqs_package_proxy_backend": "apt",
        "_os_prereqs_selinux": False,
        "chrony_service": "chrony",
    },
    "RedHat": {
        "_os_prereqs_initramfs_command": ["dracut", "-f"],
        "_os_prereqs_firewall_backend": "firewalld",
        "_os_prereqs_package_proxy_backend": "dnf",
        "_os_prereqs_selinux": True,
        "chrony_service": "chronyd",
    },
}

# A command kubeadm/kubelet/kube-proxy need, and the package that provides it, per family.
TOOLS = {
    "conntrack": {"Debian": "conntrack", "RedHat": "conntrack-tools"},
    "socat": {"Debian": "socat", "RedHat": "socat"},
    "ethtool": {"Debian": "ethtool", "RedHat": "ethtool"},
    "ipset": {"Debian": "ipset", "RedHat": "ipset"},
    "ip": {"Debian": "iproute2", "RedHat": "iproute"},
    "modprobe": {"Debian": "kmod", "RedHat": "kmod"},
    "jq": {"Debian": "jq", "RedHat": "jq"},
}

# (distribution, major version, os_family) as Ansible reports them -> the vars file.
PLATFORMS = [
    ("Debian", "12", "Debian", "Debian.yml"),
    ("Debian", "13", "Debian", "Debian.yml"),
    ("Ubuntu", "22", "Debian", "Debian.yml"),
    ("Ubuntu", "24", "Debian", "Debian.yml"),
    ("RedHat", "8", "RedHat", "RedHat_8.yml"),
    ("RedHat", "9", "RedHat", "RedHat.yml"),
    ("Rocky", "8", "RedHat", "RedHat_8.yml"),
    ("Rocky", "9", "RedHat", "RedHat.yml"),
    ("AlmaLinux", "8", "RedHat", "RedHat_8.yml"),
    ("AlmaLinux", "9", "RedHat", "RedHat.yml"),
]


def _load(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text())


def _family(path: pathlib.Path) -> str:
    return path.stem.split("_")[0] if path.stem.split("_")[0] in FAMILY else "Debian"


def _candidates() -> list[str]:
    """The first_found file list of tasks/facts.yml, unrendered."""
    for task in _load(ROLE / "tasks" / "facts.yml"):
        if "ansible.builtin.include_vars" in task:
            return task["vars"]["_os_prereqs_vars_candidates"]["files"]
    raise AssertionError("tasks/facts.yml has no include_vars task")


def _first_found(distribution: str, major: str, os_family: str) -> str | None:
    facts = {"distribution": distribution, "distribution_major_version": major,
             "os_family": os_family}
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for candidate in _candidates():
        name = env.from_string(candidate).render(ansible_facts=facts)
        if (VARS_DIR / name).exists():
            return name
    return None


def test_there_are_vars_for_both_families():
    names = {p.name for p in OS_VARS_FILES}
    assert {"Debian.yml", "RedHat.yml"} <= names


@pytest.mark.parametrize("distribution,major,os_family,expected", PLATFORMS)
def test_each_platform_resolves_to_its_vars_file(distribution, major, os_family, expected):
    assert _first_found(distribution, major, os_family) == expected


@pytest.mark.parametrize("path", OS_VARS_FILES, ids=lambda p: p.name)
def test_vars_file_is_complete(path):
    data = _load(path)
    assert set(data) == REQUIRED_KEYS, f"{path.name}: missing {REQUIRED_KEYS - set(data)}, extra {set(data) - REQUIRED_KEYS}"


@pytest.mark.parametrize("path", OS_VARS_FILES, ids=lambda p: p.name)
def test_vars_file_matches_its_family(path):
    data = _load(path)
    expected = FAMILY[_family(path)]
    for key, value in expected.items():
        if key.startswith("_os_prereqs_"):
            assert data[key] == value, f"{path.name}: {key}"
    assert data["_os_prereqs_time_sync_services"]["chrony"]["service"] == expected["chrony_service"]
    # The initramfs command is the tool the role looks for before running it.
    assert data["_os_prereqs_initramfs_tool"].startswith("/")
    assert pathlib.PurePath(data["_os_prereqs_initramfs_tool"]).name == data["_os_prereqs_initramfs_command"][0]
    tool = pathlib.PurePath(data["_os_prereqs_firewall_tool"]).name
    assert tool == {"ufw": "ufw", "firewalld": "firewall-cmd"}[data["_os_prereqs_firewall_backend"]]


@pytest.mark.parametrize("path", OS_VARS_FILES, ids=lambda p: p.name)
def test_package_list_provides_the_node_tools(path):
    packages = _load(path)["_os_prereqs_packages"]
    assert all(isinstance(p, str) and p for p in packages)
    assert len(packages) == len(set(packages)), f"{path.name}: duplicates"
    family = _family(path)
    for tool, by_family in TOOLS.items():
        assert by_family[family] in packages, f"{path.name}: nothing provides {tool}"
    assert any(p.startswith("iptables") for p in packages), f"{path.name}: no iptables"


def test_el9_does_not_ask_for_curl():
    # EL9 ships curl-minimal; "dnf install curl" conflicts with it.
    assert "curl" not in _load(VARS_DIR / "RedHat.yml")["_os_prereqs_packages"]


@pytest.mark.parametrize("path", OS_VARS_FILES, ids=lambda p: p.name)
def test_time_sync_choices_are_complete(path):
    services = _load(path)["_os_prereqs_time_sync_services"]
    assert set(services) == {"chrony", "timesyncd"}
    for name, service in services.items():
        assert set(service) == {"packages", "service", "binary", "container_execstart"}, name
        assert service["packages"] and all(isinstance(p, str) for p in service["packages"])
        assert service["binary"].startswith("/")
    chrony = services["chrony"]
    # The container drop-in runs the packaged command with -x (never steer the clock).
    assert chrony["binary"] in chrony["container_execstart"]
    assert chrony["container_execstart"].split()[-1] == "-x"
    assert services["timesyncd"]["container_execstart"] == ""


def test_defaults_equal_argument_spec_defaults():
    defaults = _load(ROLE / "defaults" / "main.yml")
    options = _load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["settings"]["options"]
    assert set(defaults) == set(options)
    for name, spec in options.items():
        assert spec.get("type") and spec.get("description"), name
        assert defaults[name] == spec.get("default"), name
        if "choices" in spec:
            assert defaults[name] in spec["choices"], name
