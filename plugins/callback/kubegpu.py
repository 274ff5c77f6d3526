# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Stage progress and a hosts x stages table for kubegpu runs (docs/callback.md)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: kubegpu
type: aggregate
short_description: Stage progress and a hosts x stages table for kubegpu runs
description:
  - Adds to the stdout callback (it does not replace it) while a kubegpu playbook runs.
    When a stage starts it prints one line; when it ends, one line with its elapsed
    time and its hosts' outcome; at the end of the run, after Ansible's recap, a table
    of hosts x stages and the total elapsed time.
  - It is an C(aggregate) callback, not a C(notification) one. ansible-core loads both
    kinds next to the stdout callback when they are in C(callbacks_enabled); by
    convention C(notification) callbacks send events somewhere else (mail, chat, a log
    server) while C(aggregate) ones summarise the run on the same terminal, like
    C(ansible.posix.profile_tasks) and C(ansible.posix.timer). This one summarises on the
    terminal, so it is C(aggregate).
  - A B(stage) is a playbook of this collection (C(playbooks/<stage>.yml)) and every play
    of it is tagged with the stage's name, so the stage of a play is its play-level tag
    that names a playbook of the collection; failing that, its first play-level tag that
    is not a generic one (C(always), C(never), C(run), C(install), C(configure)); failing
    that, the play's name. Consecutive plays of one stage (preflight's three plays) and
    the serial batches of one play (C(upgrade_driver) runs one node at a time) are one
    stage run; a stage that runs again later (C(preflight) inside C(add_node)) adds to
    the same column.
  - By default (O(scope=kubegpu)) only plays that come from this collection's
    C(playbooks/) directory are followed, whichever way they were started
    (C(playbooks/site.yml) in a checkout, C(kubegpu.cluster.site), or imported by a
    playbook of your own). With any other playbook the callback prints nothing at all,
    so it is harmless in an C(ansible.cfg) shared with other projects. O(scope=all)
    follows every play.
  - Cells of the table, worst first - C(UNREACH) (the host was unreachable), C(FAIL) (a
    task failed; failures ignored with C(ignore_errors) or rescued by a block are not
    failures, as in the recap), C(chg N) (N tasks changed something; in check mode
    they I(would) change it), C(ok), C(skip) (every task was skipped), C(-) (the host had
    no task in that stage, for example it was not targeted, not in C(--limit), or it had
    failed earlier).
  - Fleets - up to O(max_rows) hosts, one row per host, in name order (numbers in names
    compare as numbers, so C(gpu2) comes before C(gpu10)).
    Beyond that, hosts with the same outcome in every stage share one row (with their
    count and the first host's name) and cells show the outcome without counts; groups
    with a failure or an unreachable host come first, then the largest. Beyond
    O(max_rows) groups, the rest are counted on one line. Failed and unreachable hosts
    are always named in the last line (the first ten) and in the JSON file (all).
  - When the table is wider than O(width), the stage columns are numbered and a legend
    names them.
  - Plain ASCII. Colour follows Ansible's own settings (C(NO_COLOR), C(ANSIBLE_NOCOLOR),
    C(ANSIBLE_FORCE_COLOR), no colour when stdout is not a terminal). When the stdout
    callback writes JSON (its name ends in C(json) or C(jsonl)) the lines go to stderr so
    that stdout stays machine-readable.
  - Turn it off for one run with C(ANSIBLE_CALLBACKS_ENABLED) set to the other callbacks
    you want (it replaces C(callbacks_enabled) of C(ansible.cfg)), or keep it and drop
    parts of it with O(progress) and O(table).
version_added: 0.1.0
author:
  - kubegpu maintainers (@kubegpu)
requirements:
  - enable it in C(ansible.cfg) (C(callbacks_enabled = kubegpu.cluster.kubegpu)) or with
    C(ANSIBLE_CALLBACKS_ENABLED)
options:
  scope:
    description:
      - C(kubegpu) follows only plays of this collection's playbooks; C(all) follows every
        play (the stage of a play without tags is then its name).
    type: str
    choices: [kubegpu, all]
    default: kubegpu
    env:
      - name: KUBEGPU_CALLBACK_SCOPE
    ini:
      - section: callback_kubegpu
        key: scope
  progress:
    description: Print a line when a stage starts (and per serial batch) and when it ends.
    type: bool
    default: true
    env:
      - name: KUBEGPU_CALLBACK_PROGRESS
    ini:
      - section: callback_kubegpu
        key: progress
  table:
    description: Print the hosts x stages table and the result line at the end of the run.
    type: bool
    default: true
    env:
      - name: KUBEGPU_CALLBACK_TABLE
    ini:
      - section: callback_kubegpu
        key: table
  json_file:
    description:
      - Also write the table as JSON to this file on the controller, rewritten at the end
        of each playbook of the run. Every host is in it, whatever O(max_rows) says.
      - The format is described in docs/callback.md (C(schema) is
        C(kubegpu.cluster.callback/v1)).
    type: path
    env:
      - name: KUBEGPU_CALLBACK_JSON_FILE
    ini:
      - section: callback_kubegpu
        key: json_file
  max_rows:
    description:
      - The most rows the table has. With more hosts than this, hosts with the same
        outcome share a row; with more such groups, the rest are summed up in one line.
    type: int
    default: 40
    env:
      - name: KUBEGPU_CALLBACK_MAX_ROWS
    ini:
      - section: callback_kubegpu
        key: max_rows
  width:
    description:
      - Widest line the table may have before its stage columns are numbered instead of
        named. C(0) is the terminal's width, or 160 when stdout is not a terminal.
    type: int
    default: 0
    env:
      - name: KUBEGPU_CALLBACK_WIDTH
    ini:
      - section: callback_kubegpu
        key: width
  preload:
    description:
      - At the first play of a kubegpu playbook, load this collection's filter, action and
        rules modules and the connection plugins the inventory names (plus the configured
        default), the C(sudo) become plugin and the C(sh) shell plugin into the controller's
        own process. ansible-core forks a worker for every task and host, and each worker
        would otherwise compile those files and parse those plugins' documentation again;
        loaded once here, every worker inherits them. It changes no result, only the
        controller's CPU (docs/benchmarks.md, issue 15). Anything that fails to load here is
        left to the workers, as without this option (shown with C(-vvv)).
    type: bool
    default: true
    env:
      - name: KUBEGPU_CALLBACK_PRELOAD
    ini:
      - section: callback_kubegpu
        key: preload
  gc_freeze:
    description:
      - At every kubegpu play, after the preload, move the objects ansible-playbook holds (the
        inventory, the parsed plays, the loaded plugins, the facts so far) into Python's
        permanent garbage-collector generation (C(gc.freeze)). The workers ansible-core forks
        for every task and host then never walk them in a collection, and neither does
        ansible-playbook itself, so fewer of the memory pages the two share are written and
        copied. It changes no result, only the controller's CPU (docs/benchmarks.md, issue
        15). What is frozen is not collected before the run ends, so cyclic garbage that exists
        at a play's start stays in memory (a few plays per stage).
    type: bool
    default: true
    env:
      - name: KUBEGPU_CALLBACK_GC_FREEZE
    ini:
      - section: callback_kubegpu
        key: gc_freeze
"""

import datetime
import gc
import json
import os
import re
import sys
import time

from ansible import constants as C
from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preload

SCHEMA = "kubegpu.cluster.callback/v1"
PREFIX = "kubegpu"
# Play-level tags that say how, not what: never a stage's name.
GENERIC_TAGS = frozenset(("always", "never", "all", "tagged", "untagged", "run", "install", "configure"))
COUNTERS = ("ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored")
# Outcome of a host in a stage, worst first.
OUTCOMES = ("unreachable", "failed", "changed", "ok", "skipped", "none")
CELL_WIDTH = 7  # "UNREACH", "chg 123"
HOST_WIDTH = 32
NAMED_PROBLEMS = 10
DEFAULT_PIPE_WIDTH = 160


def new_counts():
    return dict.fromkeys(COUNTERS, 0)


def outcome(counts):
    """The outcome of one host in one stage (or over the run) from its counters."""
    if not counts:
        return "none"
    if counts.get("unreachable"):
        return "unreachable"
    if counts.get("failed"):
        return "failed"
    if counts.get("changed"):
        return "changed"
    if counts.get("ok") or counts.get("rescued"):
        return "ok"
    if counts.get("skipped"):
        return "skipped"
    return "none"


def cell_text(counts, with_counts=True):
    """`UNREACH`, `FAIL`, `chg 3` (`chg` without counts), `ok`, `skip` or `-`."""
    kind = outcome(counts)
    if kind == "changed":
        return "chg %d" % counts["changed"] if with_counts else "chg"
    return {"unreachable": "UNREACH", "failed": "FAIL", "ok": "ok", "skipped": "skip", "none": "-"}[kind]


def worst(kinds):
    kinds = set(kinds)
    for kind in OUTCOMES:
        if kind in kinds:
            return kind
    return "none"


def format_elapsed(seconds):
    """12.3s, 4m05s, 1h02m03s."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return "%.1fs" % seconds
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%dh%02dm%02ds" % (hours, minutes, secs)
    return "%dm%02ds" % (minutes, secs)


def plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def fit(text, width):
    """text cut to width characters, marked with `..` when cut."""
    if len(text) <= width:
        return text
    return text[:max(0, width - 2)] + ".."


def name_hosts(names, limit=NAMED_PROBLEMS):
    names = list(names)
    shown = ", ".join(names[:limit])
    if len(names) > limit:
        shown += " +%d more" % (len(names) - limit)
    return shown


def host_order(name):
    """Sort key of host names: numbers in names compare as numbers (gpu2 before gpu10)."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name)]


def play_tags(play):
    tags = getattr(play, "tags", None) or []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [str(t).strip() for t in tags if str(t).strip()]


def stage_of(play, stage_names=frozenset()):
    """The stage a play belongs to: its play-level tag that names a playbook of the
    collection, else its first tag that is not a generic one, else its name."""
    tags = play_tags(play)
    for tag in tags:
        if tag in stage_names:
            return tag
    for tag in tags:
        if tag not in GENERIC_TAGS:
            return tag
    name = (play.get_name() or "").strip()
    return name or "play"


def play_file(play):
    """The file a play was written in, or None."""
    try:
        path = play.get_path()
    except Exception:
        return None
    if not path:
        return None
    path = path.rsplit(":", 1)[0] if path.rsplit(":", 1)[-1].isdigit() else path
    return path or None


def collection_root():
    """Root of the collection this file belongs to (a checkout or an installed copy)."""
    return os.path.realpath(os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", ".."))


def collection_stage_names(root):
    """Stages the collection has a playbook for (playbooks/<stage>.yml, site excluded)."""
    try:
        names = os.listdir(os.path.join(root, "playbooks"))
    except OSError:
        return frozenset()
    return frozenset(n[:-4] for n in names if n.endswith(".yml") and n != "site.yml")


def in_directory(path, directory):
    if not path:
        return False
    path = os.path.realpath(path)
    directory = os.path.realpath(directory)
    return os.path.commonpath([path, directory]) == directory


def rescued_by_block(task):
    """True when a failure of `task` is caught by a `rescue` of a block around it (the task
    is in the `block` part, not in `rescue`/`always`), as the strategy decides."""
    child, parent = task, getattr(task, "_parent", None)
    for dummy in range(100):
        if parent is None:
            return False
        rescue = getattr(parent, "rescue", None)
        body = getattr(parent, "block", None)
        if rescue and isinstance(body, list):
            uuid = getattr(child, "_uuid", None)
            if any(getattr(item, "_uuid", object()) == uuid for item in body):
                return True
        child, parent = parent, getattr(parent, "_parent", None)
    return False


def _result_parts(result):
    """(host, task, result dict) of a callback result, ansible-core 2.17 to 2.20."""
    host = getattr(result, "host", None) or result._host
    task = getattr(result, "task", None) or result._task
    data = getattr(result, "result", None)
    if data is None:
        data = result._result
    return host, task, data


def render_table(stages, hosts, cells, max_rows=40, width=DEFAULT_PIPE_WIDTH):
    """Lines of the hosts x stages table as (text, outcome) pairs; outcome colours the line.

    stages: stage ids in column order; hosts: host names in row order; cells:
    {host: {stage: counts}}. Up to max_rows hosts, one row each; beyond, hosts with the
    same outcome in every stage share a row (problems first, then the largest groups)
    and at most max_rows such rows are shown. Stage columns are numbered, with a legend,
    when named ones would make a line wider than width."""
    stages = list(stages)
    hosts = list(hosts)
    grouped = len(hosts) > max_rows
    if grouped:
        groups = {}
        for host in hosts:
            key = tuple(cell_text(cells.get(host, {}).get(s), with_counts=False) for s in stages)
            kinds = tuple(outcome(cells.get(host, {}).get(s)) for s in stages)
            groups.setdefault(key, {"hosts": [], "kinds": kinds})["hosts"].append(host)
        ordered = sorted(groups.items(),
                         key=lambda kv: (worst(kv[1]["kinds"]) not in ("unreachable", "failed"),
                                         -len(kv[1]["hosts"])))
        rows = []
        for key, group in ordered:
            members = group["hosts"]
            label = members[0] if len(members) == 1 else "%s +%d" % (members[0], len(members) - 1)
            rows.append((str(len(members)), label, list(key), worst(group["kinds"])))
    else:
        rows = []
        for host in hosts:
            counts = [cells.get(host, {}).get(s) for s in stages]
            rows.append((None, host, [cell_text(c) for c in counts], worst(outcome(c) for c in counts)))

    shown, hidden = rows, []
    if len(rows) > max_rows:
        shown, hidden = rows[:max(1, max_rows - 1)], rows[max(1, max_rows - 1):]

    host_header = "example" if grouped else "host"
    host_width = min(HOST_WIDTH, max([len(host_header)] + [len(r[1]) for r in rows]))
    count_width = max([len("hosts")] + [len(r[0]) for r in rows]) if grouped else 0
    lead = 2 + (count_width + 2 if grouped else 0) + host_width
    cell_width = max([CELL_WIDTH] + [len(c) for r in rows for c in r[2]])
    named = [max(cell_width, len(s)) for s in stages]
    numbered = lead + sum(w + 2 for w in named) > width
    if numbered:
        headers = [str(i + 1) for i in range(len(stages))]
        widths = [max(cell_width, len(h)) for h in headers]
    else:
        headers, widths = stages, named

    def line(count, label, values):
        parts = ["  "]
        if grouped:
            parts.append((count or "").rjust(count_width) + "  ")
        parts.append(fit(label, host_width).ljust(host_width))
        for value, w in zip(values, widths):
            parts.append("  " + value.ljust(w))
        return "".join(parts).rstrip()

    out = []
    if numbered:
        legend = ["%d=%s" % (i + 1, s) for i, s in enumerate(stages)]
        text = "  stages:"
        for item in legend:
            if len(text) + 1 + len(item) > max(width, 40):
                out.append((text, "none"))
                text = "   "
            text += " " + item
        out.append((text, "none"))
    out.append((line("hosts", host_header, headers), "none"))
    for count, label, values, kind in shown:
        out.append((line(count, label, values), kind))
    if hidden:
        out.append(("  ... %d more group%s (%s) with other outcomes; the JSON file (json_file) has every host"
                    % (len(hidden), "" if len(hidden) == 1 else "s", plural(sum(int(r[0]) for r in hidden), "host")),
                    worst(r[3] for r in hidden)))
    return out


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "kubegpu.cluster.kubegpu"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._root = collection_root()
        self._playbooks_dir = os.path.join(self._root, "playbooks")
        self._stage_names = collection_stage_names(self._root)
        self._preloaded = False  # once per process (plugin_utils/_preload.py)
        self._reset()

    def _reset(self):
        self._t0 = None
        self._started_at = None
        self._playbooks = []
        self._stages = {}        # id -> {"id", "plays", "elapsed_s", "batches", "check_mode"}
        self._order = []         # stage ids in column order
        self._hosts = []         # host names as they first reported
        self._cells = {}         # host -> stage -> counts
        self._run = None         # the stage run in progress
        self._runs = 0           # stage runs so far
        self._expected_runs = 0  # stage runs the playbooks have, counted when they load
        self._play_uuid = None
        self._tracking = False

    # --- options and output ----------------------------------------------------------

    def _opt(self, name, default=None):
        try:
            value = self.get_option(name)
        except (KeyError, AttributeError):
            return default
        return default if value is None else value

    def _to_stderr(self):
        try:
            name = str(C.DEFAULT_STDOUT_CALLBACK or "")
        except Exception:
            return False
        return name.rsplit(".", 1)[-1] in ("json", "jsonl")

    def _say(self, text, kind="none"):
        color = {
            "unreachable": C.COLOR_UNREACHABLE,
            "failed": C.COLOR_ERROR,
            "changed": C.COLOR_CHANGED,
            "ok": C.COLOR_OK,
            "skipped": C.COLOR_SKIP,
        }.get(kind)
        self._display.display(text, color=color, stderr=self._to_stderr())

    def _check_mode(self):
        try:
            return bool(context.CLIARGS.get("check"))
        except Exception:
            return False

    # --- what to follow --------------------------------------------------------------

    def _follows(self, play):
        if self._opt("scope", "kubegpu") == "all":
            return True
        return in_directory(play_file(play), self._playbooks_dir)

    def _stage(self, play):
        return stage_of(play, self._stage_names)

    # --- events ----------------------------------------------------------------------

    def v2_playbook_on_start(self, playbook):
        if self._t0 is None:
            self._t0 = time.monotonic()
            self._started_at = datetime.datetime.now(datetime.timezone.utc)
        name = getattr(playbook, "_file_name", None) or "playbook"
        self._playbooks.append(name)
        try:
            plays = playbook.get_plays()
        except Exception:
            plays = []
        previous = None
        for play in plays:
            if not self._follows(play):
                previous = None
                continue
            stage = self._stage(play)
            if stage != previous:
                self._expected_runs += 1
            previous = stage

    def v2_playbook_on_play_start(self, play):
        if self._t0 is None:  # ad hoc or an executor that sends no playbook start
            self._t0 = time.monotonic()
            self._started_at = datetime.datetime.now(datetime.timezone.utc)
        uuid = getattr(play, "_uuid", None)
        same_play = uuid is not None and uuid == self._play_uuid
        self._play_uuid = uuid
        if not self._follows(play):
            self._end_run()
            self._tracking = False
            return
        self._tracking = True
        if not self._preloaded:
            self._preloaded = True
            if self._opt("preload", True):
                self._preload(play)
        if self._opt("gc_freeze", True):
            gc.freeze()
        stage = self._stage(play)
        check = self._check_mode() or getattr(play, "check_mode", None) is True
        record = self._stages.get(stage)
        if record is None:
            record = {"id": stage, "plays": [], "elapsed_s": 0.0, "batches": 0, "check_mode": check}
            self._stages[stage] = record
            self._order.append(stage)
        record["check_mode"] = record["check_mode"] or check
        name = (play.get_name() or "").strip()
        if name and name not in record["plays"]:
            record["plays"].append(name)
        record["batches"] += 1
        serial = bool(getattr(play, "serial", None))

        if self._run is not None and self._run["stage"] == stage:
            run = self._run
            run["batch"] = run["batch"] + 1 if same_play else 1
        else:
            self._end_run()
            self._runs += 1
            run = self._run = {"stage": stage, "t0": time.monotonic(), "index": self._runs, "batch": 1,
                               "hosts": set()}
            if self._opt("progress", True):
                what = "started" + (" (%s)" % fit(name, 60) if name else "")
                self._say("%s > %s: %s%s" % (PREFIX, self._label(run), what, " [check mode]" if check else ""))
        if serial and self._opt("progress", True):
            hosts = self._play_hosts(play)
            text = "%s > %s: batch %d" % (PREFIX, self._label(run), run["batch"])
            if hosts is not None:
                text += ", %s (%s)" % (plural(len(hosts), "host"), name_hosts(hosts, 5))
            self._say(text)

    def _preload(self, play):
        try:
            inventory = play.get_variable_manager()._inventory
            values = _preload.inventory_connections(inventory)
        except Exception:
            values = []
        started = time.monotonic()
        loaded, failed = _preload.preload(_preload.connection_names(values, C.DEFAULT_TRANSPORT))
        self._display.vvv("%s: preloaded %d plugins and modules in %.2f s" % (PREFIX, len(loaded), time.monotonic() - started))
        for name, error in failed:
            self._display.vvv("%s: not preloaded: %s (%s)" % (PREFIX, name, error))

    def _label(self, run):
        total = self._expected_runs
        index = run["index"]
        number = "%d/%d" % (index, total) if total >= index else "%d" % index
        return "[%s] %s" % (number, run["stage"])

    @staticmethod
    def _play_hosts(play):
        """Names of the hosts this play (this serial batch) runs on, when the play says."""
        try:
            inventory = play.get_variable_manager()._inventory
            return [h.get_name() for h in inventory.get_hosts(play.hosts, order=getattr(play, "order", None))]
        except Exception:
            return None

    def _end_run(self):
        run, self._run = self._run, None
        if run is None:
            return
        elapsed = time.monotonic() - run["t0"]
        record = self._stages[run["stage"]]
        record["elapsed_s"] += elapsed
        if not self._opt("progress", True):
            return
        kinds = {}
        for host in run["hosts"]:
            kinds.setdefault(outcome(self._cells[host][run["stage"]]), []).append(host)
        parts = []
        for kind, word in (("failed", "failed"), ("unreachable", "unreachable"), ("changed", "changed"),
                           ("ok", "ok"), ("skipped", "skipped")):
            names = sorted(kinds.get(kind, []), key=host_order)
            if not names:
                continue
            part = "%d %s" % (len(names), word)
            if kind in ("failed", "unreachable"):
                part += " (%s)" % name_hosts(names, 5)
            parts.append(part)
        summary = ("%s: %s" % (plural(len(run["hosts"]), "host"), ", ".join(parts))) if parts else "no task ran"
        verdict = "FAILED" if "failed" in kinds else "UNREACHABLE" if "unreachable" in kinds else "done"
        self._say("%s < %s: %s in %s - %s" % (PREFIX, self._label(run), verdict, format_elapsed(elapsed), summary),
                  worst(kinds) if parts else "none")

    def _count(self, result, *names):
        if not self._tracking or self._run is None:
            return
        host = _result_parts(result)[0]
        name = host.get_name() if hasattr(host, "get_name") else str(host)
        stage = self._run["stage"]
        if name not in self._cells:
            self._cells[name] = {}
            self._hosts.append(name)
        counts = self._cells[name].setdefault(stage, new_counts())
        for key in names:
            counts[key] += 1
        self._run["hosts"].add(name)

    @staticmethod
    def _changed(data):
        return bool(isinstance(data, dict) and data.get("changed"))

    def v2_runner_on_ok(self, result):
        data = _result_parts(result)[2]
        self._count(result, "ok", *(("changed",) if self._changed(data) else ()))

    def v2_runner_on_failed(self, result, ignore_errors=False):
        dummy, task, data = _result_parts(result)
        if ignore_errors:
            self._count(result, "ok", "ignored", *(("changed",) if self._changed(data) else ()))
        elif rescued_by_block(task):
            self._count(result, "rescued")
        else:
            self._count(result, "failed")

    def v2_runner_on_unreachable(self, result):
        task = _result_parts(result)[1]
        if getattr(task, "ignore_unreachable", False):
            self._count(result, "ok", "ignored")
        else:
            self._count(result, "unreachable")

    def v2_runner_on_skipped(self, result):
        self._count(result, "skipped")

    def v2_playbook_on_stats(self, stats):
        self._end_run()
        self._tracking = False
        self._play_uuid = None
        if not self._order:
            return  # nothing of ours ran: say nothing
        if self._opt("table", True):
            self._print_table()
        path = self._opt("json_file")
        if path:
            self._write_json(path)

    # --- the end of the run ----------------------------------------------------------

    def _rows(self):
        """Host names in table order (numbers in names compare as numbers)."""
        return sorted(self._hosts, key=host_order)

    def _totals(self):
        totals = {}
        for host in self._rows():
            total = new_counts()
            for counts in self._cells[host].values():
                for key in COUNTERS:
                    total[key] += counts[key]
            totals[host] = total
        return totals

    def _problems(self):
        failed, unreachable = [], []
        for host in self._rows():
            kinds = [outcome(c) for c in self._cells[host].values()]
            if "unreachable" in kinds:
                unreachable.append(host)
            elif "failed" in kinds:
                failed.append(host)
        return failed, unreachable

    def _elapsed(self):
        return time.monotonic() - self._t0 if self._t0 is not None else 0.0

    def _width(self):
        width = int(self._opt("width", 0) or 0)
        if width > 0:
            return width
        stream = sys.stderr if self._to_stderr() else sys.stdout
        try:
            if stream.isatty():
                return os.get_terminal_size(stream.fileno()).columns - 1
        except (AttributeError, OSError, ValueError):
            pass
        return DEFAULT_PIPE_WIDTH

    def _print_table(self):
        check = any(r["check_mode"] for r in self._stages.values())
        title = "%s: %s x %s" % (PREFIX, plural(len(self._hosts), "host"), plural(len(self._order), "stage"))
        if self._playbooks:
            title += " (%s)" % ", ".join(os.path.basename(p) for p in self._playbooks)
        if check:
            title += " [check mode: chg = would change]"
        self._say("")
        self._say(title)
        for text, kind in render_table(self._order, self._rows(), self._cells,
                                       max_rows=max(1, int(self._opt("max_rows", 40))), width=self._width()):
            self._say(text, kind)
        failed, unreachable = self._problems()
        kinds = [outcome(t) for t in self._totals().values()]
        changed, ok = kinds.count("changed"), kinds.count("ok")
        parts = []
        if failed:
            parts.append("%d failed (%s)" % (len(failed), name_hosts(failed)))
        if unreachable:
            parts.append("%d unreachable (%s)" % (len(unreachable), name_hosts(unreachable)))
        if changed:
            parts.append("%d %s" % (changed, "would change" if check else "changed"))
        if ok:
            parts.append("%d ok" % ok)
        verdict = "FAILED" if failed else "UNREACHABLE" if unreachable else "ok"
        self._say("%s: %s - %s%s - total %s%s" % (
            PREFIX, verdict, plural(len(self._hosts), "host"), (": " + ", ".join(parts)) if parts else "",
            format_elapsed(self._elapsed()), " [check mode]" if check else ""),
            "failed" if failed else "unreachable" if unreachable else "changed" if changed else "ok")

    def report(self):
        """The run as JSON-ready data (the format of json_file)."""
        failed, unreachable = self._problems()
        hosts = {}
        for host in self._rows():
            hosts[host] = {stage: dict(counts, status=cell_text(counts))
                           for stage, counts in self._cells[host].items()}
        totals = self._totals()
        return {
            "schema": SCHEMA,
            "playbooks": list(self._playbooks),
            "started_at": self._started_at.isoformat().replace("+00:00", "Z") if self._started_at else None,
            "elapsed_s": round(self._elapsed(), 3),
            "check_mode": any(r["check_mode"] for r in self._stages.values()),
            "result": "failed" if failed else "unreachable" if unreachable else "ok",
            "stages": [dict(self._stages[s], elapsed_s=round(self._stages[s]["elapsed_s"], 3)) for s in self._order],
            "hosts": hosts,
            "totals": {host: dict(totals[host], status=outcome(totals[host])) for host in self._rows()},
            "failed_hosts": failed,
            "unreachable_hosts": unreachable,
        }

    def _write_json(self, path):
        path = os.path.abspath(os.path.expanduser(str(path)))
        tmp = path + ".tmp"
        try:
            directory = os.path.dirname(path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(self.report(), fh, indent=2, sort_keys=True)
                fh.write("\n")
            os.replace(tmp, path)
        except (OSError, TypeError, ValueError) as exc:
            self._display.warning("kubegpu callback: cannot write %s: %s" % (path, exc))
