# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Host side of the systemd_units module: read the units of a stage in one ``systemctl show``,
enable and start only those that are not, and wait until the daemon answers.

What counts as enabled and as running follows systemctl(1): ``is-enabled`` exits 0 for the
unit file states enabled, enabled-runtime, static, indirect, generated, transient and alias
(the man page's table of is-enabled output), so those need no ``systemctl enable``; a unit is
running while its ActiveState is active, activating or reloading (ansible.builtin.systemd_service
treats active and activating as running; reloading is a running unit re-reading its files).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.kubegpu.cluster.plugins.module_utils._host_state import UNIT_PROPERTIES, parse_systemctl_show

ENABLED_STATES = ("enabled", "enabled-runtime", "static", "indirect", "generated", "transient", "alias")
RUNNING_STATES = ("active", "activating", "reloading")
JOURNAL_LINES = 40


def plan(units, status):
    """What to do for each unit: {"enable", "start", "restart", "missing", "skipped"}, each a list of names.

    ``units``: the module's option (name, enabled, started, restarted, optional); ``status``: per unit name,
    parse_systemctl_show's {"load", "active", "sub", "unit_file"}. A unit systemd does not know
    (LoadState not-found) is missing: an error unless the unit is optional, then skipped."""
    todo = {"enable": [], "start": [], "restart": [], "missing": [], "skipped": []}
    for unit in units:
        name = unit["name"]
        state = status.get(name) or {}
        if state.get("load") in ("", "not-found"):
            todo["skipped" if unit.get("optional") else "missing"].append(name)
            continue
        if unit.get("enabled") and state.get("unit_file") not in ENABLED_STATES:
            todo["enable"].append(name)
        if unit.get("restarted"):
            todo["restart"].append(name)
        elif unit.get("started") and state.get("active") not in RUNNING_STATES:
            todo["start"].append(name)
    return todo


def _show(module, systemctl, names):
    rc, out, err = module.run_command([systemctl, "show", "--property=" + ",".join(UNIT_PROPERTIES), "--"] + names)
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed (rc=%d): %s" % (" ".join(names), rc, (err or out).strip()))
    return parse_systemctl_show(out, names)


def _journal(module, name):
    journalctl = module.get_bin_path("journalctl")
    if not journalctl:
        return ""
    _rc, out, _err = module.run_command([journalctl, "--unit", name, "--lines", str(JOURNAL_LINES), "--no-pager"])
    return out


def wait_ready(module, ready, sleep=time.sleep):
    """Run ``ready.argv`` until it exits 0, at most ``ready.retries`` + 1 times, ``ready.delay``
    seconds apart; returns {"rc", "stdout", "stderr", "attempts"} of the last try."""
    attempts = 0
    while True:
        attempts += 1
        rc, out, err = module.run_command(list(ready["argv"]))
        if rc == 0 or attempts > int(ready.get("retries") or 0):
            return {"rc": rc, "stdout": out, "stderr": err, "attempts": attempts}
        sleep(float(ready.get("delay") or 0))


def run(module, sleep=time.sleep):
    """The systemd_units module: read, compare, act; then the readiness check."""
    p = module.params
    units = p["units"]
    names = [u["name"] for u in units]
    result = {"changed": False, "enabled": [], "started": [], "restarted": [], "skipped": [], "status": {},
              "ready": None}
    systemctl = module.get_bin_path("systemctl", required=True)
    if p["daemon_reload"] and not module.check_mode:
        rc, out, err = module.run_command([systemctl, "daemon-reload"])
        if rc != 0:
            module.fail_json(msg="systemctl daemon-reload failed (rc=%d): %s" % (rc, (err or out).strip()), **result)
    status = _show(module, systemctl, names)
    todo = plan(units, status)
    result.update(enabled=todo["enable"], started=todo["start"], restarted=todo["restart"], skipped=todo["skipped"],
                  status=status)
    if todo["missing"]:
        module.fail_json(msg="systemd has no unit %s on this host (is its package installed?)"
                         % ", ".join(todo["missing"]), **result)
    result["changed"] = bool(todo["enable"] or todo["start"] or todo["restart"])
    if module._diff and result["changed"]:
        result["diff"] = {"before": "".join("%s: %s, %s\n" % (n, status[n]["unit_file"], status[n]["active"])
                                            for n in names if n not in todo["skipped"]),
                          "after": "".join("%s: %s, %s\n" % (
                              n, "enabled" if n in todo["enable"] else status[n]["unit_file"],
                              "active" if n in todo["start"] + todo["restart"] else status[n]["active"])
                              for n in names if n not in todo["skipped"])}
    if module.check_mode:
        # A unit this run would start (or restart) is not running: nothing can answer yet.
        idle = [n for n in todo["start"] + todo["restart"] if status[n]["active"] not in RUNNING_STATES]
        if p["ready"] and not idle:
            result["ready"] = wait_ready(module, p["ready"], sleep)
            _check_ready(module, result)
        return result
    for verb in ("enable", "start", "restart"):
        if todo[verb]:
            rc, out, err = module.run_command([systemctl, verb, "--"] + todo[verb])
            if rc != 0:
                journals = "".join("\n--- journalctl --unit %s\n%s" % (n, _journal(module, n)) for n in todo[verb])
                module.fail_json(msg="systemctl %s %s failed (rc=%d): %s%s"
                                 % (verb, " ".join(todo[verb]), rc, (err or out).strip(), journals), **result)
    if todo["start"] or todo["restart"]:
        result["status"] = _show(module, systemctl, names)
        down = [n for n in todo["start"] + todo["restart"] if result["status"][n]["active"] not in RUNNING_STATES]
        if down:
            journals = "".join("\n--- journalctl --unit %s\n%s" % (n, _journal(module, n)) for n in down)
            module.fail_json(msg="%s not running after systemctl start/restart (ActiveState %s)%s"
                             % (", ".join(down), ", ".join(result["status"][n]["active"] for n in down), journals),
                             **result)
    if p["ready"]:
        result["ready"] = wait_ready(module, p["ready"], sleep)
        _check_ready(module, result)
    return result


def _check_ready(module, result):
    ready = result["ready"]
    if ready["rc"] != 0:
        argv = " ".join(module.params["ready"]["argv"])
        journals = "".join("\n--- journalctl --unit %s\n%s" % (u["name"], _journal(module, u["name"]))
                           for u in module.params["units"] if u.get("started") and u["name"] not in result["skipped"])
        module.fail_json(msg="%s did not answer after %d tries (rc=%d): %s%s"
                         % (argv, ready["attempts"], ready["rc"], (ready["stderr"] or ready["stdout"]).strip(), journals),
                         **result)
