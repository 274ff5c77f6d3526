# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the host_state module and its module_utils (_host_state).

Files are real (tmp_path); dpkg's status file, rpm and systemctl are stood in for by
recorded text and a recording run_command. The module on a real host runs in
tests/integration/test_drift.py (os_prereqs and container_runtime act on its answers).
"""

from __future__ import annotations

import hashlib
import os
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import patch_module_args

from ansible_collections.kubegpu.cluster.plugins.module_utils import _host_state
from ansible_collections.kubegpu.cluster.plugins.modules import host_state

# Stanzas as dpkg writes them (Debian 12): installed and held, installed, removed with
# its config files left, half-installed, and a second architecture of a package.
DPKG_STATUS = """\
Package: containerd
Status: hold ok installed
Priority: optional
Architecture: amd64
Version: 1.6.20~ds1-1+b1
Description: daemon to control runC
 containerd is a daemon.

Package: jq
Status: install ok installed
Architecture: amd64
Version: 1.6-2.1
Description: lightweight JSON processor

Package: chrony
Status: deinstall ok config-files
Architecture: amd64
Version: 4.3-2+deb12u1

Package: socat
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.7.4.4-2

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.36-9+deb12u9

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.36-9+deb12u9
"""

SYSTEMCTL_SHOW = """\
Id=chrony.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled

Id=containerd.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled
"""

LIST_SWAP = """\
dev-sda2.swap loaded active active /dev/sda2
swapfile.swap masked inactive dead swapfile.swap
"""


def test_dpkg_status_installed_held_and_not_installed():
    found = _host_state.parse_dpkg_status(DPKG_STATUS, ["containerd", "jq", "chrony", "socat", "libc6", "curl"])
    assert found["containerd"] == {"installed": True, "version": "1.6.20~ds1-1+b1", "held": True}
    assert found["jq"] == {"installed": True, "version": "1.6-2.1", "held": False}
    # Removed with config files left, and half-installed: not installed.
    assert found["chrony"]["installed"] is False
    assert found["socat"]["installed"] is False
    assert found["libc6"]["installed"] is True
    assert "curl" not in found


@pytest.mark.parametrize("installed, wanted, ok", [
    ("1.6.20~ds1-1+b1", "", True),
    ("1.6.20~ds1-1+b1", "1.6.20~ds1-1+b1", True),
    ("1.6.20~ds1-1+b1", "1.6.20~ds1-1", False),
    ("1.7.24-1", "1.7.*", True),
    ("1.6.20-1", "1.7.*", False),
    ("1:2.0-1", "2.0-1", True),          # an epoch apt does not need spelled out
    (None, "1.7.*", False),
])
def test_version_matches_as_apt_pins(installed, wanted, ok):
    assert _host_state.version_matches(installed, wanted) is ok


def test_rpm_pins_match_any_release():
    found = _host_state.parse_rpm_query("containerd.io 1.7.24-3.1.el9\n")
    report, missing = _host_state.package_report(found, ["containerd.io"], {"containerd.io": "1.7.24"})
    assert missing == [] and report["containerd.io"]["satisfied"]
    report, missing = _host_state.package_report(found, ["containerd.io"], {"containerd.io": "1.7.2"})
    assert missing == ["containerd.io"]
    # apt's pin is the whole version.
    assert not _host_state.version_matches("1.7.24-1", "1.7.24")


def test_package_report_lists_missing_and_wrong_versions():
    found = _host_state.parse_dpkg_status(DPKG_STATUS, ["containerd", "jq", "chrony", "curl"])
    report, missing = _host_state.package_report(
        found, ["containerd", "jq", "chrony", "curl"], {"containerd": "1.7.*"})
    assert missing == ["containerd", "chrony", "curl"]
    assert report["containerd"]["installed"] and not report["containerd"]["satisfied"]
    assert report["containerd"]["wanted_version"] == "1.7.*"
    assert report["jq"]["satisfied"] and report["jq"]["wanted_version"] is None
    assert report["curl"] == {"installed": False, "version": None, "held": False,
                              "wanted_version": None, "satisfied": False}


def test_rpm_query_lines():
    out = "containerd.io 1.7.24-3.1.el9\njq 1.6-17.el9\npackage socat is not installed\n"
    found = _host_state.parse_rpm_query(out)
    assert found == {"containerd.io": {"installed": True, "version": "1.7.24-3.1.el9", "held": None},
                     "jq": {"installed": True, "version": "1.6-17.el9", "held": None}}


def test_systemctl_show_blocks_in_order():
    units = _host_state.parse_systemctl_show(SYSTEMCTL_SHOW, ["chrony.service", "containerd.service"])
    assert units["chrony.service"] == {"load": "loaded", "active": "active", "sub": "running", "unit_file": "enabled"}
    assert units["containerd.service"]["active"] == "inactive"
    assert units["containerd.service"]["unit_file"] == "disabled"


def test_list_units():
    assert _host_state.parse_list_units(LIST_SWAP) == [
        {"unit": "dev-sda2.swap", "load": "loaded", "active": "active", "sub": "active"},
        {"unit": "swapfile.swap", "load": "masked", "active": "inactive", "sub": "dead"},
    ]
    assert _host_state.parse_list_units("") == []


def test_path_state_file_dir_link_and_absent(tmp_path):
    f = tmp_path / "crictl.yaml"
    f.write_text("debug: false\n")
    f.chmod(0o600)
    d = tmp_path / "certs.d"
    d.mkdir(mode=0o755)
    d.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(f)
    info = _host_state.path_state(str(f))
    assert info["exists"] and info["isreg"] and not info["isdir"] and not info["islnk"]
    assert info["mode"] == "0600"
    assert info["uid"] == os.getuid()
    assert info["checksum"] == hashlib.sha1(b"debug: false\n").hexdigest()
    assert _host_state.path_state(str(d))["isdir"] and _host_state.path_state(str(d))["mode"] == "0755"
    assert _host_state.path_state(str(d))["checksum"] is None
    linked = _host_state.path_state(str(link))
    assert linked["islnk"] and linked["isreg"] and linked["checksum"] == info["checksum"]
    assert _host_state.path_state(str(tmp_path / "absent")) == {"exists": False}


def test_read_text_absent_and_too_big(tmp_path, monkeypatch):
    f = tmp_path / "swaps"
    f.write_text("Filename Type Size Used Priority\n")
    assert _host_state.read_text(str(f)).startswith("Filename")
    assert _host_state.read_text(str(tmp_path / "absent")) is None
    monkeypatch.setattr(_host_state, "READ_LIMIT", 4)
    assert _host_state.read_text(str(f)) is None


class Commands:
    """A recording run_command with canned answers by program."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def __call__(self, argv):
        self.calls.append(list(argv))
        return self.answers[os.path.basename(argv[0])]


def test_read_state_asks_each_tool_once(tmp_path, monkeypatch):
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS)
    monkeypatch.setattr(_host_state, "DPKG_STATUS", str(status))
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages").write_text("")
    commands = Commands({
        "systemctl": (0, SYSTEMCTL_SHOW, ""),
        "systemd-detect-virt": (0, "docker\n", ""),
    })
    state = _host_state.read_state(
        {"paths": [str(status)], "read": [str(status)], "globs": [str(tmp_path / "lists" / "*_Packages*")],
         "packages": ["containerd", "jq"], "package_versions": {}, "units": ["chrony.service", "containerd.service"],
         "unit_types": [], "container": True},
        run_command=commands, which=lambda name: "/usr/bin/" + name)
    assert state["packages_missing"] == []
    assert state["packages"]["containerd"]["held"] is True
    assert state["units"]["containerd.service"]["active"] == "inactive"
    assert state["container_type"] == "docker"
    assert state["files"][str(status)] == DPKG_STATUS
    assert len(state["globs"][str(tmp_path / "lists" / "*_Packages*")]) == 1
    assert [c[0] for c in commands.calls] == ["/usr/bin/systemctl", "/usr/bin/systemd-detect-virt"]
    assert commands.calls[0][-3:] == ["--", "chrony.service", "containerd.service"]


def test_read_state_not_a_container_and_no_systemd(tmp_path, monkeypatch):
    monkeypatch.setattr(_host_state, "DPKG_STATUS", str(tmp_path / "no-dpkg"))
    commands = Commands({"systemd-detect-virt": (1, "none\n", ""), "rpm": (0, "jq 1.6-17.el9\n", "")})
    which = {"systemd-detect-virt": "/usr/bin/systemd-detect-virt", "rpm": "/usr/bin/rpm"}.get
    state = _host_state.read_state(
        {"packages": ["jq", "socat"], "units": ["chronyd.service"], "unit_types": ["swap"], "container": True},
        run_command=commands, which=which)
    assert state["container_type"] == ""
    assert state["units"] == {} and state["unit_lists"] == {}
    assert state["packages_missing"] == ["socat"]
    assert commands.calls[0][:3] == ["/usr/bin/rpm", "-q", "--qf"]
    assert commands.calls[0][-2:] == ["jq", "socat"]


def test_package_match_adds_installed_packages_by_name(tmp_path, monkeypatch):
    status = tmp_path / "status"
    status.write_text(DPKG_STATUS + """
Package: nvidia-driver-535
Status: hold ok installed
Architecture: amd64
Version: 535.261.03-1

Package: nvidia-kernel-dkms
Status: deinstall ok config-files
Architecture: amd64
Version: 535.261.03-1
""")
    monkeypatch.setattr(_host_state, "DPKG_STATUS", str(status))
    state = _host_state.read_state({"packages": ["nvidia-driver"], "package_match": "^(nvidia-|libnvidia-)"},
                                   run_command=Commands({}), which=lambda name: None)
    # The wanted name is missing; the other branch's package is reported as installed and
    # held; a removed one is reported as not installed; nothing else is.
    assert state["packages_missing"] == ["nvidia-driver"]
    assert state["packages"]["nvidia-driver-535"] == {
        "installed": True, "version": "535.261.03-1", "held": True, "wanted_version": None, "satisfied": True}
    assert state["packages"]["nvidia-kernel-dkms"]["installed"] is False
    assert sorted(state["packages"]) == ["nvidia-driver", "nvidia-driver-535", "nvidia-kernel-dkms"]


def test_package_match_with_rpm_lists_all_packages_once(tmp_path, monkeypatch):
    monkeypatch.setattr(_host_state, "DPKG_STATUS", str(tmp_path / "no-dpkg"))
    commands = Commands({"rpm": (0, "kmod-nvidia-latest-dkms 580.95.05-1.el9\njq 1.6-17.el9\n", "")})
    state = _host_state.read_state({"packages": ["nvidia-driver"], "package_match": "^(kmod-nvidia|nvidia-)"},
                                   run_command=commands, which={"rpm": "/usr/bin/rpm"}.get)
    assert commands.calls == [["/usr/bin/rpm", "-qa", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n"]]
    assert sorted(state["packages"]) == ["kmod-nvidia-latest-dkms", "nvidia-driver"]
    assert state["packages_missing"] == ["nvidia-driver"]


def test_module_reports_unchanged_in_check_mode(tmp_path):
    f = tmp_path / "x.conf"
    f.write_text("x\n")

    class Exit(Exception):
        pass

    def exit_json(self, **kwargs):
        raise Exit(kwargs)

    with patch_module_args({"paths": [str(f)], "_ansible_check_mode": True}):
        with mock.patch.object(basic.AnsibleModule, "exit_json", exit_json):
            with pytest.raises(Exit) as caught:
                host_state.main()
    result = caught.value.args[0]
    assert result["changed"] is False
    assert result["paths"][str(f)]["checksum"] == hashlib.sha1(b"x\n").hexdigest()
    assert result["container_type"] is None and result["packages_missing"] == []
