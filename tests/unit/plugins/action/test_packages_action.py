# SPDX-License-Identifier: Apache-2.0
"""kubegpu.cluster.packages' lock wait and hold rules, with the module runs replaced by a
recording fake (the whole action runs for real in tests/unit/roles/test_kubegpu_package_holds.py,
on Debian hosts in tests/integration/test_drift.py and every Molecule scenario; the
lock held for real in `make drills`, docs/fault-drills.md)."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.action import packages as action

LOCKED = {"failed": True, "msg": "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)"}


class FakeTask:
    check_mode = False


def fake_action(outcomes, check_mode=False):
    """An ActionModule whose module runs answer from ``outcomes``, in order."""
    plugin = object.__new__(action.ActionModule)
    plugin._task = FakeTask()
    plugin._task.check_mode = check_mode
    plugin.calls = []

    def run(name, module_args, check_mode=None):
        plugin.calls.append((name, module_args, check_mode))
        return dict(outcomes[len(plugin.calls) - 1])
    plugin._module = run
    return plugin


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    slept = []
    monkeypatch.setattr(action.time, "sleep", slept.append)
    return slept


def test_apts_lists_lock_is_waited_out_every_ten_seconds(no_sleep):
    plugin = fake_action([LOCKED, LOCKED, {"changed": True}])
    result = plugin._locked("ansible.builtin.apt", {"name": ["jq"]}, 30)
    assert result["changed"] is True and result["attempts"] == 3
    assert no_sleep == [10, 10]


def test_a_lock_never_let_go_fails_after_as_long_again(no_sleep):
    plugin = fake_action([LOCKED] * 10)
    result = plugin._locked("ansible.builtin.apt", {"name": ["jq"]}, 30)
    # 30 s: three waits of 10 s, four tries, then apt's own message
    assert result["failed"] and "Could not get lock" in result["msg"] and result["attempts"] == 4
    assert no_sleep == [10, 10, 10]


def test_any_other_failure_stops_at_once(no_sleep):
    plugin = fake_action([{"failed": True, "msg": "No package matching 'jqq' is available"}, {"changed": True}])
    result = plugin._locked("ansible.builtin.apt", {"name": ["jqq"]}, 30)
    assert result["failed"] and result["attempts"] == 1 and no_sleep == []


def test_holds_only_what_is_not_held_and_not_before_a_check_mode_install():
    reading = {"packages": {"containerd": {"held": True}, "runc": {"held": False}}}
    plugin = fake_action([{"changed": True}])
    held = plugin._holds({"hold": ["containerd", "runc"], "held": None}, False, reading, "apt")
    assert held == {"changed": True, "held_now": ["runc"]}
    assert plugin.calls == [("ansible.builtin.dpkg_selections", {"name": "runc", "selection": "hold"}, None)]

    # check mode, the install would change something: the packages are not there to hold
    plugin = fake_action([], check_mode=True)
    assert plugin._holds({"hold": ["runc"], "held": None}, True, reading, "apt") == {"changed": False, "held_now": []}
    assert plugin.calls == []

    # dnf: the versionlock plugin (a no-op where it is installed), then one versionlock run for all of them
    plugin = fake_action([{"changed": False}, {"changed": True}])
    assert plugin._holds({"hold": ["containerd.io"], "held": None, "lock_timeout": 60}, False, None, "dnf") == \
        {"changed": True, "held_now": ["containerd.io"]}
    assert plugin.calls == [
        ("ansible.builtin.dnf", {"name": ["python3-dnf-plugin-versionlock"], "state": "present", "lock_timeout": 60}, None),
        ("community.general.dnf_versionlock", {"name": ["containerd.io"], "state": "present"}, None)]

    # a fresh host without the plugin: installing it is a change; its failure says what it was for
    plugin = fake_action([{"failed": True, "msg": "No match for argument: python3-dnf-plugin-versionlock"}])
    failed = plugin._holds({"hold": ["nvidia-driver"], "held": None}, False, None, "dnf")
    assert failed["failed"] and failed["msg"] == (
        "packages: installing python3-dnf-plugin-versionlock, which dnf's version locks need, failed:"
        " No match for argument: python3-dnf-plugin-versionlock")
    assert [name for name, _args, _check in plugin.calls] == ["ansible.builtin.dnf"]


def test_a_host_without_an_apt_index_gets_one_first():
    reading = {"changed": False, "packages_missing": ["jq"],
               "packages": {"jq": {"installed": False, "held": False, "wanted_version": None, "satisfied": False}},
               "globs": {"/var/lib/apt/lists/*_Packages*": []}}
    plugin = fake_action([reading, {"changed": False, "cache_updated": True}, {"changed": True}])
    result = plugin._apt({"names": ["jq"], "state": "present", "lock_timeout": 30, "update_cache": True,
                          "hold": [], "held": None, "reading": None})
    assert [(name, check) for name, _args, check in plugin.calls] == [
        ("kubegpu.cluster.host_state", None), ("ansible.builtin.apt", False), ("ansible.builtin.apt", None)]
    assert plugin.calls[1][1] == {"update_cache": True, "cache_valid_time": 0, "lock_timeout": 30}
    assert plugin.calls[2][1] == {"name": ["jq"], "state": "present", "lock_timeout": 30, "update_cache": True}
    assert result["changed"] is True and result["installed"] == ["jq"] and result["index_downloaded"] is True


def test_a_converged_host_with_a_handed_reading_runs_nothing():
    entry = {"installed": True, "held": True, "wanted_version": None, "satisfied": True}
    reading = {"changed": False, "packages_missing": [], "packages": {"containerd": entry},
               "globs": {"/var/lib/apt/lists/*_Packages*": ["/var/lib/apt/lists/x_Packages"]}}
    plugin = fake_action([])
    result = plugin._apt({"names": ["containerd"], "state": "present", "lock_timeout": 30, "update_cache": True,
                          "hold": ["containerd"], "held": None, "reading": reading})
    assert plugin.calls == []
    assert result["changed"] is False and result["installed"] == [] and result["held_now"] == []


NO_LISTS = {"changed": False, "packages_missing": ["jq"],
            "packages": {"jq": {"installed": False, "held": False, "wanted_version": None, "satisfied": False}},
            "globs": {"/var/lib/apt/lists/*_Packages*": []}}
NO_PYTHON_APT = {"failed": True, "msg": "python3-apt must be installed to use check mode. If run normally this module"
                                        " can auto-install it."}
SIMULATED = {"changed": True, "rc": 0, "stdout": "Reading package lists...\nInst libjq1 (1.6-2.1 Debian:12/stable [amd64])\n"
             "Inst jq (1.6-2.1 Debian:12/stable [amd64])\nConf jq (1.6-2.1 Debian:12/stable [amd64])",
             "stdout_lines": ["Reading package lists...", "Inst libjq1 (1.6-2.1 Debian:12/stable [amd64])",
                              "Inst jq (1.6-2.1 Debian:12/stable [amd64])", "Conf jq (1.6-2.1 Debian:12/stable [amd64])"]}
ARGS = {"names": ["jq"], "state": "present", "lock_timeout": 30, "update_cache": True, "hold": [], "held": None,
        "reading": None}


def test_in_check_mode_the_index_comes_from_apt_get_not_from_the_apt_module():
    # ansible.builtin.apt, run for real, installs python3-apt first where it is missing
    plugin = fake_action([NO_LISTS, {"changed": True, "rc": 0}, {"changed": True}], check_mode=True)
    result = plugin._apt(dict(ARGS))
    assert [(name, check) for name, _args, check in plugin.calls] == [
        ("kubegpu.cluster.host_state", None), ("ansible.builtin.command", False), ("ansible.builtin.apt", None)]
    assert plugin.calls[1][1] == {"argv": ["apt-get", "update", "-q"]}
    assert result["changed"] is True and result["index_downloaded"] is True


def test_apt_gets_lists_lock_is_waited_out_from_its_stderr(no_sleep):
    locked = {"failed": True, "rc": 100, "msg": "non-zero return code",
              "stderr": "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 42 (apt-get)"}
    plugin = fake_action([NO_LISTS, locked, {"changed": True, "rc": 0}, {"changed": True}], check_mode=True)
    result = plugin._apt(dict(ARGS))
    assert result["changed"] is True and no_sleep == [10]
    assert [name for name, _args, _check in plugin.calls] == [
        "kubegpu.cluster.host_state", "ansible.builtin.command", "ansible.builtin.command", "ansible.builtin.apt"]


def test_check_mode_without_python3_apt_simulates_with_apt_get():
    reading = dict(NO_LISTS, globs={"/var/lib/apt/lists/*_Packages*": ["/var/lib/apt/lists/x_Packages"]})
    plugin = fake_action([reading, NO_PYTHON_APT, SIMULATED], check_mode=True)
    result = plugin._apt(dict(ARGS, install_recommends=False, reading=None))
    assert [(name, check) for name, _args, check in plugin.calls] == [
        ("kubegpu.cluster.host_state", None), ("ansible.builtin.apt", None), ("ansible.builtin.command", False)]
    assert plugin.calls[2][1] == {"argv": ["apt-get", "install", "--simulate", "-q", "--no-install-recommends", "jq"]}
    assert result["changed"] is True and not result.get("failed") and result["installed"] == ["jq"]
    assert result["msg"].startswith("check mode: apt-get would install libjq1, jq (simulated with apt-get:")


def test_check_mode_without_python3_apt_fails_with_apts_reason():
    reading = dict(NO_LISTS, globs={"/var/lib/apt/lists/*_Packages*": ["/var/lib/apt/lists/x_Packages"]})
    missing = {"failed": True, "rc": 100, "msg": "non-zero return code", "stdout": "",
               "stderr": "E: Package 'jq' has no installation candidate\n"}
    plugin = fake_action([reading, NO_PYTHON_APT, missing], check_mode=True)
    result = plugin._apt(dict(ARGS))
    assert result["failed"] and result["msg"] == (
        "packages: apt-get install --simulate jq failed: E: Package 'jq' has no installation candidate")


def test_check_mode_without_python3_apt_simulates_a_removal_as_a_removal():
    removed = {"changed": True, "rc": 0, "stdout_lines": ["Reading package lists...", "Remv jq [1.6-2.1]"],
               "stdout": "Reading package lists...\nRemv jq [1.6-2.1]"}
    plugin = fake_action([NO_PYTHON_APT, removed], check_mode=True)
    result = plugin._apt(dict(ARGS, state="absent"))
    assert [name for name, _args, _check in plugin.calls] == ["ansible.builtin.apt", "ansible.builtin.command"]
    assert plugin.calls[1][1] == {"argv": ["apt-get", "remove", "--simulate", "-q", "jq"]}
    assert result["changed"] is True and result["msg"].startswith("check mode: apt-get would remove jq ")

    # latest, already at the newest version: apt-get simulates nothing, nothing would change
    plugin = fake_action([NO_PYTHON_APT, {"changed": True, "rc": 0, "stdout": "", "stdout_lines": []}], check_mode=True)
    result = plugin._apt(dict(ARGS, state="latest"))
    assert result["changed"] is False and result["msg"].startswith("check mode: apt-get would install nothing ")


def test_without_check_mode_the_apt_modules_failure_stands():
    # not check mode: ansible.builtin.apt installs python3-apt itself; any failure is its own
    reading = dict(NO_LISTS, globs={"/var/lib/apt/lists/*_Packages*": ["/var/lib/apt/lists/x_Packages"]})
    plugin = fake_action([reading, NO_PYTHON_APT])
    result = plugin._apt(dict(ARGS))
    assert result["failed"] and result["msg"] == NO_PYTHON_APT["msg"] and len(plugin.calls) == 2
