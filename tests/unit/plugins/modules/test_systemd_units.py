# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the systemd_units module (module_utils/_systemd_units).

systemctl, journalctl and the readiness command are a recording run_command that changes a
fake systemd as the real programs would (enable sets the unit file state, start the
ActiveState). The real thing runs on systemd test hosts: every Molecule scenario and
tests/integration/test_drift.py (containerd stopped and disabled by hand, put right by one
run).
"""

from __future__ import annotations

from unittest import mock

import pytest

from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import ModuleExit, patch_module_args, patch_module_exits

from ansible_collections.kubegpu.cluster.plugins.module_utils import _systemd_units
from ansible_collections.kubegpu.cluster.plugins.modules import systemd_units

CTR = ["/usr/bin/ctr", "--address", "/run/containerd/containerd.sock", "plugins", "ls"]
PLUGINS = "TYPE  ID  PLATFORMS  STATUS\nio.containerd.grpc.v1  cri  linux/amd64  ok\n"


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    patch_module_exits(monkeypatch)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/bin/" + name)


class Systemd:
    """Units {name: [unit file state, ActiveState]}; a unit not listed is not-found.
    ``ready_after``: how many readiness tries fail before one answers (None: never)."""

    def __init__(self, units, ready_after=0, start_fails=(), stays_down=()):
        self.units = {k: list(v) for k, v in units.items()}
        self.ready_after = ready_after
        self.start_fails = start_fails
        self.stays_down = stays_down
        self.calls = []

    def show(self, names):
        blocks = []
        for name in names:
            if name in self.units:
                unit_file, active = self.units[name]
                blocks.append("Id=%s\nLoadState=loaded\nActiveState=%s\nSubState=%s\nUnitFileState=%s\n"
                              % (name, active, "running" if active == "active" else "dead", unit_file))
            else:
                blocks.append("Id=%s\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\n" % name)
        return "\n".join(blocks)

    def run_command(self, args, **kwargs):
        self.calls.append(list(args))
        name = args[0].rsplit("/", 1)[-1]
        if name == "systemctl":
            verb, names = args[1], [a for a in args[2:] if not a.startswith("-")]
            if verb == "show":
                return 0, self.show(names), ""
            if verb == "enable":
                for unit in names:
                    self.units[unit][0] = "enabled"
            if verb in ("start", "restart"):
                if set(names) & set(self.start_fails):
                    return 1, "", "Job for %s failed." % names[0]
                for unit in names:
                    if unit not in self.stays_down:
                        self.units[unit][1] = "active"
                    else:
                        self.units[unit][1] = "failed"
            return 0, "", ""
        if name == "journalctl":
            return 0, "-- journal of %s --\nlevel=fatal msg=\"bad config\"\n" % args[2], ""
        if args == CTR:
            tries = sum(1 for c in self.calls if c == CTR)
            if self.ready_after is not None and tries > self.ready_after:
                return 0, PLUGINS, ""
            return 1, "", "ctr: failed to dial \"/run/containerd/containerd.sock\": connection refused"
        raise AssertionError("unexpected command %s" % args)

    def changing(self):
        return [c[1:] for c in self.calls if c[0].endswith("systemctl") and c[1] != "show"]

    def run(self, check_mode=False, diff=False, **args):
        if check_mode:
            args["_ansible_check_mode"] = True
        if diff:
            args["_ansible_diff"] = True
        with patch_module_args(args):
            with mock.patch.object(basic.AnsibleModule, "run_command", self.run_command), \
                    mock.patch.object(_systemd_units.time, "sleep", lambda s: None):
                with pytest.raises(ModuleExit) as caught:
                    systemd_units.main()
        return caught.value.args[0]


CONTAINERD = [{"name": "containerd.service"}]
READY = {"argv": CTR, "retries": 3, "delay": 0}


# -- pure functions ---------------------------------------------------------

@pytest.mark.parametrize("unit_file,active,todo", [
    ("enabled", "active", ([], [])),
    ("static", "active", ([], [])),          # is-enabled exits 0: nothing to enable
    ("enabled-runtime", "activating", ([], [])),
    ("disabled", "active", (["u"], [])),
    ("enabled", "inactive", ([], ["u"])),
    ("disabled", "failed", (["u"], ["u"])),
    ("masked", "inactive", (["u"], ["u"])),  # enable then fails on the host: systemd says why
])
def test_plan_enables_and_starts_only_what_is_not(unit_file, active, todo):
    planned = _systemd_units.plan([{"name": "u", "enabled": True, "started": True}],
                                  {"u": {"load": "loaded", "unit_file": unit_file, "active": active}})
    assert (planned["enable"], planned["start"]) == todo


def test_plan_a_unit_not_found_is_missing_unless_optional():
    status = {"a": {"load": "not-found"}, "b": {"load": "not-found"}}
    planned = _systemd_units.plan([{"name": "a", "enabled": True, "started": True, "optional": True},
                                   {"name": "b", "enabled": True, "started": False}], status)
    assert planned == {"enable": [], "start": [], "restart": [], "missing": ["b"], "skipped": ["a"]}


# -- the module -------------------------------------------------------------

def test_a_running_enabled_unit_is_left_alone_and_its_readiness_returned():
    host = Systemd({"containerd.service": ["enabled", "active"]})
    result = host.run(units=CONTAINERD, ready=READY)
    assert result["changed"] is False and not result["_failed"]
    assert host.changing() == []
    assert result["ready"]["rc"] == 0 and "io.containerd.grpc.v1  cri" in result["ready"]["stdout"]
    assert result["ready"]["attempts"] == 1
    # one systemctl call to read, one readiness call
    assert len(host.calls) == 2


def test_a_stopped_disabled_unit_is_enabled_and_started_then_waited_for():
    host = Systemd({"containerd.service": ["disabled", "inactive"]}, ready_after=2)
    result = host.run(units=CONTAINERD, ready=READY, diff=True)
    assert result["changed"] is True and not result["_failed"]
    assert host.changing() == [["enable", "--", "containerd.service"], ["start", "--", "containerd.service"]]
    assert result["enabled"] == result["started"] == ["containerd.service"]
    assert result["status"]["containerd.service"]["active"] == "active"
    assert result["ready"]["attempts"] == 3
    assert result["diff"] == {"before": "containerd.service: disabled, inactive\n",
                              "after": "containerd.service: enabled, active\n"}
    again = host.run(units=CONTAINERD, ready=READY)
    assert again["changed"] is False


def test_check_mode_reports_and_changes_nothing_and_does_not_wait_for_a_unit_it_would_start():
    host = Systemd({"containerd.service": ["enabled", "inactive"]}, ready_after=None)
    result = host.run(check_mode=True, units=CONTAINERD, ready=READY, daemon_reload=True)
    assert result["changed"] is True and result["started"] == ["containerd.service"]
    assert host.changing() == [] and result["ready"] is None
    assert host.units["containerd.service"] == ["enabled", "inactive"]


def test_check_mode_still_reads_a_running_daemon():
    host = Systemd({"containerd.service": ["enabled", "active"]})
    result = host.run(check_mode=True, units=CONTAINERD, ready=READY)
    assert result["changed"] is False and result["ready"]["rc"] == 0


def test_a_daemon_that_never_answers_fails_with_its_journal():
    host = Systemd({"containerd.service": ["enabled", "active"]}, ready_after=None)
    result = host.run(units=CONTAINERD, ready=READY)
    assert result["_failed"]
    assert result["ready"]["attempts"] == 4    # the first try and three retries
    assert "did not answer after 4 tries (rc=1): ctr: failed to dial" in result["msg"]
    assert "--- journalctl --unit containerd.service" in result["msg"] and "bad config" in result["msg"]


def test_a_failed_start_names_the_unit_with_its_journal():
    host = Systemd({"containerd.service": ["enabled", "inactive"]}, start_fails=("containerd.service",))
    result = host.run(units=CONTAINERD, ready=READY)
    assert result["_failed"] and "systemctl start containerd.service failed (rc=1)" in result["msg"]
    assert "bad config" in result["msg"]


def test_a_unit_that_dies_after_its_start_is_refused():
    host = Systemd({"containerd.service": ["enabled", "inactive"]}, stays_down=("containerd.service",))
    result = host.run(units=CONTAINERD)
    assert result["_failed"] and "containerd.service not running after systemctl start/restart (ActiveState failed)" \
        in result["msg"]


def test_optional_units_missing_are_skipped_and_others_enabled_in_one_call():
    host = Systemd({"nvidia-cdi-refresh.path": ["disabled", "inactive"],
                    "nvidia-cdi-refresh.service": ["disabled", "inactive"]})
    result = host.run(units=[{"name": "nvidia-cdi-refresh.path"},
                             {"name": "nvidia-cdi-refresh.service", "started": False},
                             {"name": "absent.service", "optional": True}])
    assert not result["_failed"] and result["skipped"] == ["absent.service"]
    assert host.changing() == [["enable", "--", "nvidia-cdi-refresh.path", "nvidia-cdi-refresh.service"],
                               ["start", "--", "nvidia-cdi-refresh.path"]]
    assert host.units["nvidia-cdi-refresh.service"] == ["enabled", "inactive"]


def test_a_required_unit_systemd_does_not_know_is_refused():
    host = Systemd({})
    result = host.run(units=CONTAINERD)
    assert result["_failed"] and result["msg"] == \
        "systemd has no unit containerd.service on this host (is its package installed?)"
    assert host.changing() == []


def test_daemon_reload_runs_first_outside_check_mode():
    host = Systemd({"containerd.service": ["enabled", "active"]})
    host.run(units=CONTAINERD, daemon_reload=True)
    assert host.calls[0] == ["/usr/bin/systemctl", "daemon-reload"]


def test_restarted_restarts_whatever_the_state_after_a_daemon_reload():
    host = Systemd({"chrony.service": ["enabled", "active"], "other.service": ["enabled", "inactive"]})
    result = host.run(units=[{"name": "chrony.service", "restarted": True},
                             {"name": "other.service", "restarted": True, "enabled": False}],
                      daemon_reload=True, diff=True)
    assert result["changed"] is True and not result["_failed"]
    assert host.changing() == [["daemon-reload"], ["restart", "--", "chrony.service", "other.service"]]
    assert result["restarted"] == ["chrony.service", "other.service"] and result["started"] == []
    assert host.units["other.service"][1] == "active"


def test_a_unit_enabled_but_not_started_is_only_enabled():
    host = Systemd({"systemd-timesyncd.service": ["disabled", "inactive"]})
    result = host.run(units=[{"name": "systemd-timesyncd.service", "started": False}])
    assert host.changing() == [["enable", "--", "systemd-timesyncd.service"]]
    assert result["started"] == [] and host.units["systemd-timesyncd.service"] == ["enabled", "inactive"]
