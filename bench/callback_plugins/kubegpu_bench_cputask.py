# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""The controller's CPU per task: ansible-playbook's own and its workers' (and the
connection's commands, such as the docker CLI), from one task's start to the next one's.

Bench-only (bench/ is not part of the built collection). Enabled by hand beside the
checkout's callbacks, with the path of the JSON to write:

    ANSIBLE_CALLBACK_PLUGINS=bench/callback_plugins \\
    ANSIBLE_CALLBACKS_ENABLED=kubegpu.cluster.kubegpu,kubegpu_bench_cputask \\
    KUBEGPU_BENCH_CPUTASK=out.json ansible-playbook ...

A worker's CPU is counted when it is reaped, and multiprocessing reaps finished workers
only when it starts the next one; so before a task is closed the finished workers are
reaped (``multiprocessing.active_children``, waiting up to 0.1 s for those still exiting),
and each task's figure holds its own workers. What happens before the first play
(start-up, inventory, playbook parsing) is not in any task; `total_s` is the sum of the
rows. The JSON lists the rows in the order the tasks ran, and the same tasks summed and
sorted by cost under `by_task`.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: kubegpu_bench_cputask
    type: aggregate
    short_description: bench-only controller CPU per task
    description: see the module docstring.
    requirements:
      - the environment variable KUBEGPU_BENCH_CPUTASK (path of the JSON to write)
"""


def cpu_now():
    """(own, children) CPU seconds of this process, user + system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def reap(wait_s=0.1):
    """Reap the finished workers, waiting a little for those still exiting."""
    deadline = time.monotonic() + wait_s
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.005)


def summary(rows):
    """The rows summed by (play, task), most expensive first, and the total."""
    by_task = {}
    for row in rows:
        key = (row["play"], row["task"])
        entry = by_task.setdefault(key, {"play": row["play"], "task": row["task"], "self_s": 0.0, "children_s": 0.0})
        entry["self_s"] += row["self_s"]
        entry["children_s"] += row["children_s"]
    ordered = sorted(by_task.values(), key=lambda e: -(e["self_s"] + e["children_s"]))
    for entry in ordered:
        entry["self_s"] = round(entry["self_s"], 3)
        entry["children_s"] = round(entry["children_s"], 3)
    return {"total_s": round(sum(r["self_s"] + r["children_s"] for r in rows), 2), "by_task": ordered, "rows": rows}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kubegpu_bench_cputask"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._rows = []
        self._open = None
        self._play = ""
        self._since = cpu_now()

    def _close(self):
        reap()
        now = cpu_now()
        if self._open is not None:
            self._rows.append({"play": self._play, "task": self._open,
                               "self_s": round(now[0] - self._since[0], 4),
                               "children_s": round(now[1] - self._since[1], 4)})
        self._since = now

    def v2_playbook_on_play_start(self, play):
        self._close()
        self._play = play.get_name()
        self._open = "(play start)"

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._open = task.get_name()

    def v2_playbook_on_stats(self, stats):
        self._close()
        self._open = None
        path = os.environ.get("KUBEGPU_BENCH_CPUTASK")
        if path:
            with open(path, "w", encoding="utf-8") as out:
                json.dump(summary(self._rows), out, indent=1)
