# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kernel_modules module and its module_utils (_dkms).

``dkms status`` outputs: recorded from DKMS 3.0.10 on a Debian 12 test host
(tests/fixtures/dkms/dkms-status-*.txt: the ``module/version, kernel, arch: state``
format), and written here in the two formats as ``do_status``/``do_status_weak`` of
https://github.com/dell/dkms print them (``dkms`` at v2.8.5: ``module, version, kernel,
arch: state``; ``dkms.in`` on master). /boot and /lib/modules are real directories under
tmp_path; dkms and grubby are stood in for by a recording run_command. The real thing
runs in tests/integration/test_kernel_modules.py (real DKMS builds for two kernels).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _dkms
from ansible_collections.kubegpu.cluster.plugins.modules import kernel_modules

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "dkms"

# DKMS 2.8 format: installed, only built, installed with a note, added, installed-weak.
STATUS_DKMS2 = """\
nvidia, 470.223.02, 5.4.0-169-generic, x86_64: installed
nvidia, 470.223.02, 5.4.0-170-generic, x86_64: built
virtualbox, 6.1.50, 5.4.0-169-generic, x86_64: installed (original_module exists)
zfs, 0.8.3: added
nvidia, 535.129.03, 4.18.0-513.el8.x86_64, x86_64: installed-weak from 4.18.0-477.el8.x86_64
"""
# DKMS 3.x (Debian 12's 3.0.10): the same states in the new format, and a warning line.
STATUS_DKMS3 = """\
nvidia-current/535.309.01, 6.1.0-50-amd64, x86_64: installed (Original modules exist) (WARNING! Diff between built and installed module!)
nvidia-current/535.309.01, 6.1.0-57-amd64, x86_64: built
Warning: The /var/lib/dkms/kubegpu_hello/1.0/6.1.0-9-amd64/x86_64/module/kubegpu_hello.ko is not readable.
kubegpu_hello/1.0: added
"""


def test_parse_status_dkms2_format():
    entries = _dkms.parse_status(STATUS_DKMS2)
    assert entries[0] == {"module": "nvidia", "version": "470.223.02", "kernel": "5.4.0-169-generic",
                          "arch": "x86_64", "state": "installed", "note": ""}
    assert entries[1]["state"] == "built"
    assert entries[2]["note"] == "original_module exists" and entries[2]["state"] == "installed"
    assert entries[3] == {"module": "zfs", "version": "0.8.3", "kernel": None, "arch": None, "state": "added",
                          "note": ""}
    assert entries[4]["state"] == "installed-weak" and entries[4]["note"] == "from 4.18.0-477.el8.x86_64"
    assert len(entries) == 5
    rows = _dkms.kernel_rows(["4.18.0-513.el8.x86_64", "5.4.0-170-generic"], {}, {}, entries, "nvidia")
    assert rows["4.18.0-513.el8.x86_64"]["module"] is True      # weak-updates: loadable
    assert rows["5.4.0-170-generic"]["module"] is False and rows["5.4.0-170-generic"]["dkms_state"] == "built"


def test_parse_status_dkms3_format_skips_other_lines():
    entries = _dkms.parse_status(STATUS_DKMS3)
    assert entries[0]["note"].startswith("(Original modules exist) (WARNING!")
    assert [(e["module"], e["version"], e["kernel"], e["state"]) for e in entries] == [
        ("nvidia-current", "535.309.01", "6.1.0-50-amd64", "installed"),
        ("nvidia-current", "535.309.01", "6.1.0-57-amd64", "built"),
        ("kubegpu_hello", "1.0", None, "added"),
    ]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("dkms-status-*.txt")))
def test_parse_recorded_status(name):
    """Every line of a recorded `dkms status` is an entry with a state (nothing is dropped)."""
    text = (FIXTURES / name).read_text()
    lines = [line for line in text.splitlines() if line.strip()]
    entries = _dkms.parse_status(text)
    assert len(entries) == len(lines) and lines
    assert all(e["state"] in ("added", "built", "installed") for e in entries)


@pytest.mark.parametrize("releases, newest", [
    (["6.1.0-9-amd64", "6.1.0-10-amd64"], "6.1.0-10-amd64"),
    (["6.1.0-57-cloud-amd64", "6.1.0-50-cloud-amd64"], "6.1.0-57-cloud-amd64"),
    (["6.1.0-57-amd64", "6.12.38+deb12-amd64"], "6.12.38+deb12-amd64"),
    (["5.14.0-427.13.1.el9_4.x86_64", "5.14.0-70.22.1.el9_0.x86_64"], "5.14.0-427.13.1.el9_4.x86_64"),
    ([], None),
])
def test_newest_kernel_follows_sort_v(releases, newest):
    assert _dkms.newest(releases) == newest


@pytest.mark.parametrize("images, grub, saved, grubby, boot", [
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], None, None, None, "6.1.0-57-amd64"),
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], "0", None, None, "6.1.0-57-amd64"),
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], "saved",
     "gnulinux-advanced-1234>gnulinux-6.1.0-50-amd64-advanced-1234", None, "6.1.0-50-amd64"),
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], "saved", None, None, "6.1.0-57-amd64"),
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], "Advanced options for Debian GNU/Linux>"
     "Debian GNU/Linux, with Linux 6.1.0-50-amd64", None, None, "6.1.0-50-amd64"),
    (["6.1.0-50-amd64", "6.1.0-57-amd64"], "2", None, None, None),
    (["5.14.0-70.el9.x86_64"], None, None, "/boot/vmlinuz-5.14.0-427.el9.x86_64\n", "5.14.0-427.el9.x86_64"),
    ([], None, None, None, None),
])
def test_next_boot(images, grub, saved, grubby, boot):
    found, rule = _dkms.next_boot(images, grub, saved, grubby)
    assert found == boot
    assert rule


def test_grub_setting_last_assignment_wins():
    text = '# GRUB_DEFAULT=2\nGRUB_DEFAULT=0\nGRUB_TIMEOUT=5\nGRUB_DEFAULT="saved"\n'
    assert _dkms.grub_setting(text) == "saved"
    assert _dkms.grub_setting("GRUB_TIMEOUT=5\n") is None


class Host:
    """/boot and /lib/modules under tmp_path; dkms and grubby answer from recorded text."""

    def __init__(self, tmp_path, monkeypatch, status="", grubby=None):
        self.boot = tmp_path / "boot"
        self.modules = tmp_path / "lib-modules"
        self.boot.mkdir()
        self.modules.mkdir()
        self.grub = tmp_path / "grub"
        self.status = status
        self.grubby = grubby
        self.calls = []
        self.fail_build = False
        monkeypatch.setattr(kernel_modules.AnsibleModule, "run_command", self.run_command)
        monkeypatch.setattr(kernel_modules.AnsibleModule, "get_bin_path", self.get_bin_path)

    def kernel(self, release, image=True, tree=True, headers=True, ko=None):
        if image:
            (self.boot / ("vmlinuz-" + release)).write_text("")
        top = self.modules / release
        top.mkdir(exist_ok=True)
        if tree:
            (top / "kernel").mkdir(exist_ok=True)
            (top / "modules.order").write_text("")
        if headers:
            target = self.modules.parent / ("headers-" + release)
            target.mkdir(exist_ok=True)
            (top / "build").symlink_to(target)
        if ko:
            path = top / ko
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("")

    def get_bin_path(self, name, required=False, opt_dirs=None):
        if name == "grubby" and self.grubby is None:
            return None
        return "/usr/sbin/%s" % name

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        if args[1:] == ["status"]:
            return 0, self.status, ""
        if args[1:] == ["--default-kernel"]:
            return 0, self.grubby, ""
        if args[1] == "install":
            if self.fail_build:
                return 10, "", "Error! Bad return status for module build on kernel: %s" % args[-1]
            module, version, release = args[3], args[5], args[7]
            self.status += "%s/%s, %s, x86_64: installed\n" % (module, version, release)
            return 0, "", ""
        raise AssertionError("unexpected command %r" % (args,))

    def run(self, check_mode=False, diff=False, **params):
        args = dict(modules_dir=str(self.modules), boot_dir=str(self.boot), grub_default_file=str(self.grub),
                    grubenv_file=str(self.grub) + "env", _ansible_check_mode=check_mode, _ansible_diff=diff)
        args.update(params)
        with patch_module_args(args):
            with pytest.raises(ModuleExit) as caught:
                kernel_modules.main()
        return caught.value.args[0]


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


def test_reads_kernels_boot_kernel_and_module(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, status="nvidia-current/535.309.01, 6.1.0-50-amd64, x86_64: installed\n"
                                              "nvidia-current/535.309.01: added\n")
    host.kernel("6.1.0-50-amd64", ko="updates/dkms/nvidia-current.ko")
    host.kernel("6.1.0-57-amd64", headers=False)
    # headers only (the build link of linux-headers-*) is not an installed kernel
    host.kernel("6.1.0-58-amd64", image=False, tree=False)
    result = host.run(dkms_module="nvidia-current", module_names=["nvidia-current", "nvidia"])
    assert result["changed"] is False
    assert result["installed"] == ["6.1.0-57-amd64", "6.1.0-50-amd64"]
    assert result["boot_kernel"] == "6.1.0-57-amd64"
    assert result["kernels"]["6.1.0-50-amd64"] == {"headers": True, "module": True, "dkms_state": "installed",
                                                   "module_files": ["updates/dkms/nvidia-current.ko"]}
    assert result["kernels"]["6.1.0-57-amd64"]["module"] is False
    assert result["dkms_version"] == "535.309.01"
    assert result["no_headers"] == ["6.1.0-57-amd64"] and result["built"] == []
    assert host.calls == [["/usr/sbin/dkms", "status"]]


def test_precompiled_module_file_counts(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.kernel("6.8.0-51-generic", ko="kernel/nvidia-580srv/nvidia.ko.zst", headers=False)
    result = host.run(dkms_module="nvidia")
    assert result["kernels"]["6.8.0-51-generic"]["module"] is True
    assert result["dkms_version"] is None and result["no_headers"] == []


def test_builds_for_each_kernel_with_headers_then_changes_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, status="kubegpu_hello/1.0: added\n")
    host.kernel("6.1.0-50-amd64")
    host.kernel("6.1.0-57-amd64")
    host.kernel("6.1.0-58-amd64", headers=False)
    result = host.run(dkms_module="kubegpu_hello", build=True, diff=True)
    assert result["changed"] is True
    assert result["built"] == ["6.1.0-50-amd64", "6.1.0-57-amd64"]
    installs = [c for c in host.calls if c[1] == "install"]
    assert installs == [["/usr/sbin/dkms", "install", "-m", "kubegpu_hello", "-v", "1.0", "-k", "6.1.0-50-amd64"],
                        ["/usr/sbin/dkms", "install", "-m", "kubegpu_hello", "-v", "1.0", "-k", "6.1.0-57-amd64"]]
    assert result["kernels"]["6.1.0-57-amd64"]["module"] is True
    assert result["no_headers"] == ["6.1.0-58-amd64"]
    assert "6.1.0-57-amd64: kubegpu_hello/1.0 installed" in result["diff"]["after"]
    host.calls.clear()
    again = host.run(dkms_module="kubegpu_hello", build=True)
    assert again["changed"] is False and again["built"] == []
    assert not [c for c in host.calls if c[1] == "install"]


def test_check_mode_builds_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, status="kubegpu_hello/1.0: added\n")
    host.kernel("6.1.0-50-amd64")
    result = host.run(check_mode=True, dkms_module="kubegpu_hello", build=True)
    assert result["changed"] is True and result["built"] == ["6.1.0-50-amd64"]
    assert not [c for c in host.calls if c[1] == "install"]


def test_failed_build_names_the_kernel(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, status="kubegpu_hello/1.0: added\n")
    host.kernel("6.1.0-50-amd64")
    host.fail_build = True
    result = host.run(dkms_module="kubegpu_hello", build=True)
    assert result["_failed"] is True
    assert "for kernel 6.1.0-50-amd64" in result["msg"] and "Bad return status" in result["msg"]


def test_grubby_decides_on_rhel(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, grubby="/boot/vmlinuz-5.14.0-70.el9.x86_64\n")
    host.kernel("5.14.0-70.el9.x86_64")
    host.kernel("5.14.0-427.el9.x86_64")
    result = host.run()
    assert result["boot_kernel"] == "5.14.0-70.el9.x86_64"
    assert result["boot_rule"] == "grubby --default-kernel"


def test_rescue_image_is_not_a_kernel(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    (host.boot / "vmlinuz-0-rescue-0123456789abcdef").write_text("")
    host.kernel("5.14.0-70.el9.x86_64")
    assert host.run()["installed"] == ["5.14.0-70.el9.x86_64"]
