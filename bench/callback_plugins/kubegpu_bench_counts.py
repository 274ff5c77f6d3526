# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Counts, per host, the tasks that ran and the module runs among them; times each play.

Bench-only (bench/ is not part of the built collection). bench/fleet.py enables it with
ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins and writes where it should put its JSON
in KUBEGPU_BENCH_COUNTS.

A *module run* is one task result (one loop item for a loop) of a task whose action is
not one that stays on the controller (set_fact, debug, assert, include_*, meta, ...),
and that was not skipped. It is counted for the host the task ran for; a task
delegated to another host is counted too, and also under `delegated`; one delegated to
the controller (localhost) is counted under `controller_module_runs` instead.
Action plugins that run more than one module (template and copy run `stat` and then
`copy` or `file`) count once: the figure is "tasks that ran a module on the host", not
AnsiballZ payloads. The exception is kubegpu.cluster.packages, which runs anything from
none (a reading handed over, nothing to install) to several modules and says how many in
its result (`module_runs`): that number is counted.
"""

from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: kubegpu_bench_counts
    type: aggregate
    short_description: bench-only counts of tasks and module runs per host, and play times
    description: see the module docstring (bench/fleet.py uses it).
    requirements:
      - the environment variable KUBEGPU_BENCH_COUNTS (path of the JSON to write)
"""

# Actions that never run a module on the managed host (their action plugins do all
# their work in the controller's worker process), as ansible-core 2.19 ships them.
CONTROLLER_ACTIONS = frozenset(
    name
    for short in (
        "add_host", "assert", "debug", "fail", "group_by", "include_role", "include_tasks",
        "include_vars", "import_role", "import_tasks", "meta", "pause", "set_fact",
        "set_stats", "validate_argument_spec", "async_status_controller", "noop",
    )
    for name in (short, "ansible.builtin." + short, "ansible.legacy." + short)
)
LOCAL_NAMES = frozenset(("localhost", "127.0.0.1", "::1"))


def is_controller_action(action):
    return action in CONTROLLER_ACTIONS


COUNTED_BY_ITSELF = frozenset(("kubegpu.cluster.packages",))


def module_runs_in(result, looped, action=None):
    """How many module runs a non-skipped result of a module task stands for: one, or
    for a loop one per item that was not skipped; what kubegpu.cluster.packages says."""
    if action in COUNTED_BY_ITSELF and isinstance(result.get("module_runs"), int):
        return result["module_runs"]
    items = result.get("results")
    if looped and isinstance(items, list):
        return sum(1 for r in items if isinstance(r, dict) and not r.get("skipped"))
    return 1


def delegated_to(result):
    """Where a delegated task ran: the delegated host's name, or (ansible-core 2.19 puts
    only the connection variables there) its ansible_host; None if not delegated."""
    dv = result.get("_ansible_delegated_vars") or {}
    return dv.get("ansible_delegated_host") or dv.get("ansible_host")


def host_names(host):
    """The names a delegated result may give for `host` itself."""
    names = {host.get_name()}
    hv = getattr(host, "vars", None) or {}
    if hv.get("ansible_host"):
        names.add(str(hv["ansible_host"]))
    return names


def new_host():
    return {"ok": 0, "changed": 0, "failed": 0, "skipped": 0, "module_runs": 0,
            "delegated": 0, "controller_module_runs": 0}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kubegpu_bench_counts"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("KUBEGPU_BENCH_COUNTS")
        self._hosts = {}
        self._actions = {}
        self._plays = []
        self._t0 = time.monotonic()

    def _close_play(self):
        if self._plays and self._plays[-1].get("seconds") is None:
            self._plays[-1]["seconds"] = round(time.monotonic() - self._plays[-1]["_t"], 2)

    def v2_playbook_on_play_start(self, play):
        self._close_play()
        tags = play.tags if isinstance(play.tags, list) else [play.tags] if play.tags else []
        self._plays.append({"play": play.get_name().strip(), "tags": [str(t) for t in tags],
                            "_t": time.monotonic(), "seconds": None})

    def _count(self, result, status):
        host = result._host.get_name()
        h = self._hosts.setdefault(host, new_host())
        h[status] += 1
        if status == "ok" and result.is_changed():
            h["changed"] += 1
            h["ok"] -= 1
        if status == "skipped":
            return
        action = result._task.action
        if is_controller_action(action):
            return
        task = result._task
        runs = module_runs_in(result._result, bool(getattr(task, "loop", None) or getattr(task, "loop_with", None)), action)
        target = delegated_to(result._result)
        if target in LOCAL_NAMES:
            h["controller_module_runs"] += runs
            return
        h["module_runs"] += runs
        if target and target not in host_names(result._host):
            h["delegated"] += runs
            to = h.setdefault("delegated_to", {})
            to[str(target)] = to.get(str(target), 0) + runs
        self._actions[action] = self._actions.get(action, 0) + runs

    def v2_runner_on_ok(self, result):
        self._count(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._close_play()
        if not self._path:
            return
        plays = [{k: v for k, v in p.items() if k != "_t"} for p in self._plays]
        with open(self._path, "w") as fh:
            json.dump({"hosts": self._hosts, "module_runs_by_action": self._actions,
                       "plays": plays, "seconds": round(time.monotonic() - self._t0, 2)},
                      fh, indent=2, sort_keys=True)
