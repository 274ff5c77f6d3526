# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the swap_off module and its module_utils (_swap).

/proc/swaps and /etc/fstab are files under tmp_path; swapoff and systemctl are a
recording run_command that changes the fake host as the real programs would. The real
thing runs on systemd test hosts: tests/integration/test_container_runtime_lifecycle.py
(a swap line in fstab and a swap unit of its own) and every Molecule scenario.
"""

from __future__ import annotations

from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _swap
from ansible_collections.kubegpu.cluster.plugins.modules import kernel_prereqs, swap_off

HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
FSTAB = (
    "# /etc/fstab: static file system information.\n"
    "UUID=1111 / ext4 errors=remount-ro 0 1\n"
    "UUID=2222 none swap sw 0 0\n"
    "/swapfile\tnone\tswap\tdefaults\t0\t0\n"
    "# UUID=3333 none swap sw 0 0\n"
    "/dev/sdb1 /srv/swapdata ext4 defaults 0 2\n"
)
UNITS = ("dev-disk-by\\x2duuid-2222.swap loaded active active /dev/disk/by-uuid/2222\n"
         "swapfile.swap loaded inactive dead /swapfile\n"
         "dev-zram0.swap masked inactive dead dev-zram0.swap\n")


Exit = ModuleExit


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)


class Host:
    """/proc/swaps and fstab under tmp_path; swapoff empties /proc/swaps, systemctl mask
    marks units masked."""

    def __init__(self, tmp_path, swaps=("/swapfile",), fstab=FSTAB, units=UNITS, fail=None):
        self.proc = tmp_path / "swaps"
        self.proc.write_text(HEADER + "".join("%s\tfile\t1048572\t0\t-2\n" % s for s in swaps))
        self.fstab = tmp_path / "fstab"
        self.fstab.write_text(fstab)
        self.fstab.chmod(0o644)
        self.units = units
        self.fail = fail
        self.calls = []

    def run_command(self, args, **kwargs):
        self.calls.append(args)
        name = args[0].rsplit("/", 1)[-1]
        if name == self.fail:
            return 1, "", "%s: operation not permitted" % name
        if name == "swapoff":
            self.proc.write_text(HEADER)
        elif name == "systemctl" and args[1] == "mask":
            masked = set(args[3:])
            self.units = "".join(
                line.replace(" loaded ", " masked ", 1) if line.split()[0] in masked else line
                for line in self.units.splitlines(True))
        elif name == "systemctl" and args[1] == "list-units":
            return 0, self.units, ""
        return 0, "", ""

    def run(self, check_mode=False, diff=False, module=swap_off, **extra):
        args = dict(fstab=str(self.fstab), proc_swaps=str(self.proc), **extra) if module is swap_off else extra
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with mock.patch.object(basic.AnsibleModule, "run_command", self.run_command):
                with pytest.raises(Exit) as caught:
                    module.main()
        return caught.value.args[0]

    def changing_calls(self):
        """swapoff and systemctl mask (not the listing; not the lsattr atomic_move asks)."""
        return [c for c in self.calls if c[0].rsplit("/", 1)[-1] in ("swapoff", "systemctl")
                and c[1:2] != ["list-units"]]


# -- pure functions -------------------------------------------------------

def test_fstab_swap_lines_are_commented_and_the_rest_kept():
    text, commented = _swap.comment_fstab(FSTAB)
    assert commented == ["UUID=2222 none swap sw 0 0", "/swapfile\tnone\tswap\tdefaults\t0\t0"]
    lines = text.splitlines()
    assert lines[2] == "# kubegpu: swap off for kubelet: UUID=2222 none swap sw 0 0"
    assert lines[3] == "# kubegpu: swap off for kubelet: /swapfile\tnone\tswap\tdefaults\t0\t0"
    # Comments, other file systems and a mount point that merely contains "swap" stay.
    assert [lines[i] for i in (0, 1, 4, 5)] == [FSTAB.splitlines()[i] for i in (0, 1, 4, 5)]
    assert _swap.comment_fstab(text) == (text, [])


def test_fstab_without_a_final_newline_and_with_crlf():
    assert _swap.comment_fstab("a / ext4 defaults 0 1\r\n/sw none swap sw")[0] == \
        "a / ext4 defaults 0 1\r\n# kubegpu: swap off for kubelet: /sw none swap sw"


def test_plan_in_a_container_notes_active_swap_and_does_not_swapoff():
    planned = _swap.plan(HEADER + "/dev/sda2 partition 100 0 -2\n", "", "", "docker")
    assert planned["swapoff"] is False and planned["active"] == ["/dev/sda2"]
    assert planned["notes"] == [
        "swap: /dev/sda2 is active, but this host is a docker container: swap belongs to the host kernel, so "
        "swapoff here is refused or would act on the host. Turn swap off on the host itself."]


def test_units_already_masked_are_left_alone():
    assert _swap.plan(HEADER, "", UNITS, "")["mask"] == ["dev-disk-by\\x2duuid-2222.swap", "swapfile.swap"]
    assert _swap.plan(HEADER, "", UNITS, "", mask_units=False)["mask"] == []


# -- the module -----------------------------------------------------------

def test_turns_swap_off_comments_fstab_masks_units_then_changes_nothing(tmp_path):
    host = Host(tmp_path)
    result = host.run(backup=True)
    assert result["changed"] is True and not result["_failed"]
    assert result["swapoff"] is True and result["active"] == ["/swapfile"]
    assert len(result["fstab_commented"]) == 2
    assert result["masked"] == ["dev-disk-by\\x2duuid-2222.swap", "swapfile.swap"]
    assert [c[0].rsplit("/", 1)[-1] for c in host.changing_calls()] == ["swapoff", "systemctl"]
    assert host.changing_calls()[1] == ["/usr/bin/systemctl", "mask", "--",
                                        "dev-disk-by\\x2duuid-2222.swap", "swapfile.swap"]
    assert "# kubegpu: swap off for kubelet: UUID=2222" in host.fstab.read_text()
    assert oct(host.fstab.stat().st_mode & 0o777) == "0o644"
    backups = [p for p in tmp_path.iterdir() if p.name.startswith("fstab.") and p.name != "fstab"]
    assert len(backups) == 1 and backups[0].read_text() == FSTAB
    host.calls.clear()
    again = host.run()
    assert again["changed"] is False and host.changing_calls() == []
    assert again["notes"] == []


def test_check_mode_reports_and_changes_nothing_with_a_diff(tmp_path):
    host = Host(tmp_path)
    result = host.run(check_mode=True, diff=True)
    assert result["changed"] is True and result["swapoff"] is True
    assert host.changing_calls() == []
    assert host.fstab.read_text() == FSTAB
    [diff] = result["diff"]
    assert diff["before"] == FSTAB and diff["after"].count("# kubegpu: swap off for kubelet:") == 2


def test_container_keeps_swap_but_fixes_fstab_and_units(tmp_path):
    host = Host(tmp_path)
    result = host.run(container_type="docker")
    assert result["swapoff"] is False and result["changed"] is True
    assert [c[0].rsplit("/", 1)[-1] for c in host.changing_calls()] == ["systemctl"]
    assert "docker container" in result["notes"][0]
    again = host.run(container_type="docker")
    assert again["changed"] is False and "docker container" in again["notes"][0]


def test_nothing_to_do(tmp_path):
    host = Host(tmp_path, swaps=(), fstab="UUID=1 / ext4 defaults 0 1\n", units="")
    result = host.run()
    assert result["changed"] is False and host.changing_calls() == []


def test_a_failing_swapoff_fails_with_its_message(tmp_path):
    host = Host(tmp_path, fail="swapoff")
    result = host.run()
    assert result["_failed"] and result["msg"] == "swapoff -a failed (rc=1): swapoff: operation not permitted"
    assert host.fstab.read_text() == FSTAB       # nothing after the failure


# -- the same, in kernel_prereqs' run (os_prereqs: one module run for swap and kernel) --

def _kernel_prereqs(host, tmp_path, check_mode=False, swap_off=True, **extra):
    return host.run(check_mode=check_mode, module=kernel_prereqs, swap_off=swap_off, swap_fstab=str(host.fstab),
                    swap_proc_swaps=str(host.proc), modules=[], sysctl={},
                    modules_file=str(tmp_path / "modules.conf"), sysctl_file=str(tmp_path / "sysctl.conf"), **extra)


def test_kernel_prereqs_turns_swap_off_in_the_same_run(tmp_path):
    host = Host(tmp_path)
    checked = _kernel_prereqs(host, tmp_path, check_mode=True)
    assert checked["changed"] is True and checked["swap"]["swapoff"] is True and host.changing_calls() == []
    assert "# kubegpu" not in host.fstab.read_text()

    result = _kernel_prereqs(host, tmp_path)
    assert result["changed"] is True and not result["_failed"]
    assert result["swap"]["swapoff"] is True and len(result["swap"]["fstab_commented"]) == 2
    assert result["swap"]["masked"] == ["dev-disk-by\\x2duuid-2222.swap", "swapfile.swap"]
    assert "backup_file" in result["swap"]
    assert [c[0].rsplit("/", 1)[-1] for c in host.changing_calls()] == ["swapoff", "systemctl"]
    assert "# kubegpu: swap off for kubelet: UUID=2222" in host.fstab.read_text()

    again = _kernel_prereqs(host, tmp_path)
    assert again["changed"] is False and again["swap"]["fstab_commented"] == [] and again["swap"]["masked"] == []


def test_kernel_prereqs_reports_a_containers_swap_in_its_notes(tmp_path):
    host = Host(tmp_path, swaps=("/dev/sda2",))
    result = _kernel_prereqs(host, tmp_path, container_type="docker", swap_mask_units=False)
    assert result["swap"]["swapoff"] is False
    assert result["notes"][0].startswith("swap: /dev/sda2 is active, but this host is a docker container")


def test_kernel_prereqs_leaves_swap_alone_without_swap_off(tmp_path):
    host = Host(tmp_path)
    result = _kernel_prereqs(host, tmp_path, swap_off=False)
    assert "swap" not in result and host.calls == [] and host.fstab.read_text() == FSTAB
