# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kernel_prereqs module and its module_utils (_kernel).

/proc/sys and /sys/module are stood in for by directories under tmp_path (proc_path is
patched); modprobe by a recording run_command. The real thing runs in Molecule
(molecule/tests/test_os_prereqs.py) on systemd test hosts.
"""

from __future__ import annotations

import os
from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _kernel
from ansible_collections.kubegpu.cluster.plugins.modules import kernel_prereqs

SETTINGS = {"net.bridge.bridge-nf-call-iptables": 1, "net.ipv4.ip_forward": 1}


Exit = ModuleExit


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)


class Host:
    """A fake /proc/sys and /sys/module under tmp_path; modprobe 'loads' br_netfilter."""

    def __init__(self, tmp_path, monkeypatch, proc=None, loaded=(), modprobe_rc=0):
        self.root = tmp_path
        self.proc = tmp_path / "proc-sys"
        self.sysmod = tmp_path / "sys-module"
        self.sysmod.mkdir()
        for name in loaded:
            (self.sysmod / name).mkdir()
        for key, value in (proc or {}).items():
            self.set_proc(key, value)
        self.modprobe_rc = modprobe_rc
        self.calls = []
        monkeypatch.setattr(_kernel, "proc_path", lambda key: str(self.proc / key.replace(".", "/")))

    def set_proc(self, key, value):
        path = self.proc / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("%s\n" % value)

    def run_command(self, args, **kwargs):
        self.calls.append(args)
        if self.modprobe_rc == 0:
            (self.sysmod / args[1]).mkdir(exist_ok=True)
            if args[1] == "br_netfilter":
                self.set_proc("net.bridge.bridge-nf-call-iptables", 0)
            return 0, "", ""
        return self.modprobe_rc, "", "modprobe: FATAL: Module %s not found" % args[1]

    def args(self, **extra):
        args = dict(modules=["overlay", "br_netfilter"], sysctl=dict(SETTINGS),
                    module_probes={"overlay": str(self.sysmod / "overlay"),
                                   "br_netfilter": str(self.sysmod / "br_netfilter")},
                    modules_file=str(self.root / "modules-load.d" / "kubegpu.conf"),
                    sysctl_file=str(self.root / "sysctl.d" / "99-kubegpu.conf"))
        args.update(extra)
        return args

    def run(self, check_mode=False, diff=False, **extra):
        args = self.args(**extra)
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with mock.patch.object(basic.AnsibleModule, "run_command", self.run_command):
                with pytest.raises(Exit) as caught:
                    kernel_prereqs.main()
        return caught.value.args[0]


# -- pure functions -------------------------------------------------------

def test_merge_keeps_other_lines_and_order_and_updates_our_keys():
    text = "# mine\nvm.swappiness = 10\nnet.ipv4.ip_forward=0\nkernel.pid_max = 4194304\n"
    merged = _kernel.merge_sysctl(text, SETTINGS)
    assert merged.splitlines() == ["# mine", "vm.swappiness = 10", "net.ipv4.ip_forward = 1",
                                   "kernel.pid_max = 4194304", "net.bridge.bridge-nf-call-iptables = 1"]


def test_merge_leaves_a_matching_line_as_written():
    text = "net.ipv4.ip_forward=1\nnet.bridge.bridge-nf-call-iptables=1\n"
    assert _kernel.merge_sysctl(text, SETTINGS) == text


def test_merge_drops_later_duplicates_that_would_win_at_boot():
    text = "net.ipv4.ip_forward = 1\nnet/ipv4/ip_forward = 0\n-net.ipv4.ip_forward=0\n"
    assert _kernel.merge_sysctl(text, {"net.ipv4.ip_forward": 1}) == "net.ipv4.ip_forward = 1\n"


def test_values_compare_by_fields_and_booleans_are_numbers():
    assert _kernel.same_value("4096\t87380   6291456\n", "4096 87380 6291456")
    assert not _kernel.same_value("0\n", 1)
    assert _kernel.merge_sysctl("", {"net.ipv4.ip_forward": True}) == "net.ipv4.ip_forward = 1\n"


def test_plan_sorts_keys_into_set_missing_and_readonly():
    proc = {"a.b": ("0\n", True), "c.d": ("0\n", False), "e.f": None, "g.h": ("1\n", False)}
    planned = _kernel.plan(["overlay", "br_netfilter"], {"a.b": 1, "c.d": 1, "e.f": 1, "g.h": 1},
                           {"overlay": True, "br_netfilter": False}, proc, "")
    assert planned["load"] == ["br_netfilter"]
    assert planned["set"] == {"a.b": "1"}
    assert planned["missing"] == ["e.f"]
    assert planned["readonly"] == {"c.d": "0"}


# -- the module on a fake host ---------------------------------------------

def test_first_run_writes_both_files_loads_and_sets(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, proc={"net.ipv4.ip_forward": 0}, loaded=["overlay"])
    result = host.run()
    assert not result["_failed"], result
    assert result["changed"]
    assert host.calls == [["modprobe", "br_netfilter"]]
    assert result["loaded"] == ["br_netfilter"]
    # br_netfilter's key appeared only after the load, and was then set too
    assert result["set"] == {"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"}
    assert (host.proc / "net/bridge/bridge-nf-call-iptables").read_text() == "1"
    assert result["notes"] == []
    modules = (tmp_path / "modules-load.d" / "kubegpu.conf").read_text()
    assert [line for line in modules.splitlines() if not line.startswith("#")] == ["overlay", "br_netfilter"]
    sysctl = tmp_path / "sysctl.d" / "99-kubegpu.conf"
    assert sysctl.read_text() == "net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n"
    assert oct(sysctl.stat().st_mode & 0o777) == "0o644"
    assert "backup_file" not in result  # nothing to back up on a new file

    again = host.run()
    assert not again["_failed"] and not again["changed"], again
    assert again["files"] == [] and again["loaded"] == [] and again["set"] == {}
    assert host.calls == [["modprobe", "br_netfilter"]]


def test_hand_edited_sysctl_file_is_merged_and_backed_up(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, proc={"net.ipv4.ip_forward": 1, "net.bridge.bridge-nf-call-iptables": 1},
                loaded=["overlay", "br_netfilter"])
    sysctl = tmp_path / "sysctl.d" / "99-kubegpu.conf"
    sysctl.parent.mkdir()
    sysctl.write_text("# added by hand\nvm.max_map_count = 262144\nnet.ipv4.ip_forward = 0\n")
    result = host.run()
    assert result["changed"] and result["files"][-1] == str(sysctl)
    assert sysctl.read_text() == ("# added by hand\nvm.max_map_count = 262144\nnet.ipv4.ip_forward = 1\n"
                                  "net.bridge.bridge-nf-call-iptables = 1\n")
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(sysctl.parent)
    with open(backup) as stream:
        assert "net.ipv4.ip_forward = 0" in stream.read()


def test_container_loads_nothing_and_says_why(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, loaded=["overlay"])
    host.set_proc("net.ipv4.ip_forward", 0)
    # a read-only /proc/sys (root ignores file modes, so the fake says it instead)
    monkeypatch.setattr(_kernel, "writable", lambda path: False)
    result = host.run(container_type="docker")
    assert not result["_failed"], result
    assert host.calls == []
    assert result["loaded"] == [] and result["set"] == {}
    notes = result["notes"]
    assert len(notes) == 3, notes
    assert notes[0].startswith("kernel module br_netfilter: not active, and this host is a docker container")
    assert notes[1].startswith("sysctl net.bridge.bridge-nf-call-iptables: /proc/sys has no such key")
    assert notes[2].startswith("sysctl net.ipv4.ip_forward is 0, wanted 1: /proc/sys is read-only on this host"
                               " (docker container")
    # the files are still written: a real host booted from this image would use them
    assert result["changed"] and len(result["files"]) == 2


def test_check_mode_reports_and_changes_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, proc={"net.ipv4.ip_forward": 0}, loaded=["overlay"])
    result = host.run(check_mode=True, diff=True)
    assert result["changed"] and result["loaded"] == ["br_netfilter"]
    assert result["set"] == {"net.ipv4.ip_forward": "1"}
    assert host.calls == []
    assert not (tmp_path / "sysctl.d").exists() and not (tmp_path / "modules-load.d").exists()
    assert (host.proc / "net/ipv4/ip_forward").read_text() == "0\n"
    assert "check mode loads nothing" in result["notes"][0]
    assert [d["after_header"] for d in result["diff"]] == [host.args()["modules_file"], host.args()["sysctl_file"]]


def test_modprobe_failure_names_the_module_and_the_fix(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch, loaded=["overlay"], modprobe_rc=1)
    result = host.run()
    assert result["_failed"]
    assert result["msg"].startswith("kernel module br_netfilter: modprobe failed (rc=1): modprobe: FATAL")
    assert "os_prereqs_kernel_modules" in result["msg"]
