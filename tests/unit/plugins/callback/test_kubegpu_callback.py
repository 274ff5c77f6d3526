# SPDX-License-Identifier: Apache-2.0
"""The kubegpu callback (plugins/callback/kubegpu.py, docs/callback.md).

Three levels:
- the pure helpers (cells, elapsed time, the table with its large-fleet rule);
- the callback driven event by event the way ansible-core's executor drives it, with real
  ansible objects: plays loaded from playbook files by Playbook.load (so they carry the
  file they came from), real inventory hosts, CallbackTaskResult, play.copy() per serial
  batch; its output is recorded by a stand-in Display;
- the real ansible-playbook against localhost aliases (connection local), with the
  callback enabled through ANSIBLE_CALLBACKS_ENABLED and through the shipped ansible.cfg,
  and once through the real playbooks/site.yml.
"""
from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ansible import constants as C
from ansible import context
from ansible.inventory.manager import InventoryManager
from ansible.module_utils.common.collections import ImmutableDict
from ansible.parsing.dataloader import DataLoader
from ansible.playbook import Playbook
from ansible.plugins.loader import callback_loader
from ansible.vars.manager import VariableManager

try:
    from ansible.executor.task_result import CallbackTaskResult as TaskResult
except ImportError:  # ansible-core < 2.19
    from ansible.executor.task_result import TaskResult

from ansible_collections.kubegpu.cluster.plugins.callback import kubegpu as cbmod

ROOT = Path(__file__).resolve().parents[4]
VENV_BIN = Path(sys.executable).parent
LOCAL = "ansible_connection=local ansible_python_interpreter=%s" % sys.executable
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- pure helpers ------------------------------------------------------------------------

def counts(**kw):
    c = cbmod.new_counts()
    c.update(kw)
    return c


@pytest.mark.parametrize("c, text, short", [
    (None, "-", "-"),
    (counts(), "-", "-"),
    (counts(skipped=3), "skip", "skip"),
    (counts(ok=2, skipped=1), "ok", "ok"),
    (counts(ok=5, changed=3), "chg 3", "chg"),
    (counts(ok=5, changed=3, failed=1), "FAIL", "FAIL"),
    (counts(ok=1, failed=1, unreachable=1), "UNREACH", "UNREACH"),
    (counts(rescued=1), "ok", "ok"),
    (counts(ok=1, ignored=1), "ok", "ok"),
])
def test_cell_text(c, text, short):
    assert cbmod.cell_text(c) == text
    assert cbmod.cell_text(c, with_counts=False) == short


@pytest.mark.parametrize("seconds, text", [
    (0, "0.0s"), (12.34, "12.3s"), (59.94, "59.9s"), (60, "1m00s"), (245, "4m05s"), (3723, "1h02m03s"),
])
def test_format_elapsed(seconds, text):
    assert cbmod.format_elapsed(seconds) == text


def test_table_one_row_per_host():
    cells = {
        "cp1": {"preflight": counts(ok=3), "os_prereqs": counts(ok=4, changed=2)},
        "gpu1": {"preflight": counts(ok=3), "os_prereqs": counts(ok=1, failed=1)},
        "w1": {"preflight": counts(unreachable=1)},
    }
    lines = cbmod.render_table(["preflight", "os_prereqs"], ["cp1", "gpu1", "w1"], cells)
    assert [text for text, dummy in lines] == [
        "  host  preflight  os_prereqs",
        "  cp1   ok         chg 2",
        "  gpu1  ok         FAIL",
        "  w1    UNREACH    -",
    ]
    assert [kind for dummy, kind in lines] == ["none", "changed", "failed", "unreachable"]
    # no row can be taken for a PLAY RECAP line ("host : ok=...") by the tests that parse those
    assert not any(re.match(r"^\S+\s+:", text) for text, dummy in lines)


def test_table_numbers_its_columns_when_too_wide():
    stages = ["preflight", "os_prereqs", "nvidia_driver", "container_runtime", "kubernetes"]
    cells = {"cp1": {s: counts(ok=1) for s in stages}}
    lines = [text for text, dummy in cbmod.render_table(stages, ["cp1"], cells, width=60)]
    assert lines[0] == "  stages: 1=preflight 2=os_prereqs 3=nvidia_driver"
    assert lines[1] == "    4=container_runtime 5=kubernetes"
    assert lines[2].split() == ["host", "1", "2", "3", "4", "5"]
    assert all(len(line) <= 60 for line in lines)


def fleet(n_ok, n_changed, failed=(), unreachable=()):
    """Hosts node-000.. : n_ok all ok, then n_changed with changes in os_prereqs, then the
    failed and unreachable ones."""
    stages = ["preflight", "os_prereqs", "nvidia_driver"]
    hosts, cells = [], {}
    for i in range(n_ok + n_changed):
        name = "node-%03d" % i
        hosts.append(name)
        cells[name] = {"preflight": counts(ok=2), "os_prereqs": counts(ok=5, changed=(1 + i % 3) if i >= n_ok else 0),
                       "nvidia_driver": counts(skipped=4)}
    for name in failed:
        hosts.append(name)
        cells[name] = {"preflight": counts(ok=2), "os_prereqs": counts(ok=1, failed=1)}
    for name in unreachable:
        hosts.append(name)
        cells[name] = {"preflight": counts(unreachable=1)}
    return stages, hosts, cells


def test_table_groups_hosts_beyond_max_rows_problems_first():
    stages, hosts, cells = fleet(250, 47, failed=["gpu-017", "gpu-201"], unreachable=["w9"])
    lines = [text for text, dummy in cbmod.render_table(stages, hosts, cells, max_rows=40)]
    # 300 hosts, 4 outcomes: the changed ones share a row although they changed 1-3 things
    assert lines == [
        "  hosts  example        preflight  os_prereqs  nvidia_driver",
        "      2  gpu-017 +1     ok         FAIL        -",
        "      1  w9             UNREACH    -           -",
        "    250  node-000 +249  ok         ok          skip",
        "     47  node-250 +46   ok         chg         skip",
    ]


def test_table_never_has_more_rows_than_max_rows():
    stages = ["s%d" % i for i in range(8)]
    hosts = ["h%03d" % i for i in range(300)]
    # every host its own pattern of outcomes: 300 groups
    cells = {h: {s: (counts(ok=1, changed=1) if (i >> j) & 1 else counts(ok=1)) for j, s in enumerate(stages)}
             for i, h in enumerate(hosts)}
    lines = [text for text, dummy in cbmod.render_table(stages, hosts, cells, max_rows=20)]
    assert len(lines) == 1 + 20  # header, 19 groups, the line that counts the rest
    assert lines[-1] == "  ... 237 more groups (262 hosts) with other outcomes; the JSON file (json_file) has every host"


def test_stage_of_prefers_the_tag_that_names_a_stage_playbook():
    class P:
        def __init__(self, tags, name=""):
            self.tags, self.name = tags, name

        def get_name(self):
            return self.name

    names = frozenset(["nvidia_driver", "upgrade_driver"])
    assert cbmod.stage_of(P(["run", "upgrade_driver"]), names) == "upgrade_driver"
    assert cbmod.stage_of(P(["always", "web", "nvidia_driver"]), names) == "nvidia_driver"
    assert cbmod.stage_of(P(["always", "web"]), names) == "web"
    assert cbmod.stage_of(P("web,db"), names) == "web"
    assert cbmod.stage_of(P([], "Deploy the app"), names) == "Deploy the app"


# --- the repository's playbooks ----------------------------------------------------------

@pytest.fixture
def ansible_env(tmp_path):
    loader = DataLoader()
    inventory_file = tmp_path / "hosts.ini"

    def make(inventory_text):
        inventory_file.write_text(inventory_text, encoding="utf-8")
        inventory = InventoryManager(loader=loader, sources=[str(inventory_file)])
        return loader, inventory, VariableManager(loader=loader, inventory=inventory)
    return make


SITE_INVENTORY = """
[kube_control_plane]
cp1 %(local)s
[kube_node]
gpu1 %(local)s
w1 %(local)s
[k8s_cluster:children]
kube_control_plane
kube_node
""" % {"local": LOCAL}


def site_stage_ids():
    """The stage of each import in site.yml, from its name (`Stage N - <stage>`)."""
    site = yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8"))
    return [re.fullmatch(r"Stage \d+ - (\w+)", entry["name"]).group(1) for entry in site]


def test_every_play_of_the_collection_has_the_stage_of_its_playbook(ansible_env):
    """The rule needs no list of stages: the stage of a play is the playbook it is written
    in, for every playbook (day 2 ones too) and for plays imported from another (add_node
    imports preflight.yml)."""
    loader, dummy, vm = ansible_env(SITE_INVENTORY)
    callback = callback_loader.get("kubegpu.cluster.kubegpu")
    callback.set_options()
    playbooks = sorted(p for p in (ROOT / "playbooks").glob("*.yml"))
    assert callback._stage_names == {p.stem for p in playbooks} - {"site"}
    for path in playbooks:
        for play in Playbook.load(str(path), variable_manager=vm, loader=loader).get_plays():
            written_in = Path(cbmod.play_file(play))
            assert written_in.parent.resolve() == (ROOT / "playbooks").resolve()
            assert callback._follows(play), (path.name, play.get_name())
            assert callback._stage(play) == written_in.stem, (path.name, play.get_name(), play.tags)


def test_site_yml_stages_are_the_ones_its_imports_name(ansible_env):
    loader, dummy, vm = ansible_env(SITE_INVENTORY)
    callback = callback_loader.get("kubegpu.cluster.kubegpu")
    callback.set_options()
    plays = Playbook.load(str(ROOT / "playbooks" / "site.yml"), variable_manager=vm, loader=loader).get_plays()
    runs = []
    for play in plays:
        stage = callback._stage(play)
        if not runs or runs[-1] != stage:
            runs.append(stage)
    assert runs == site_stage_ids()


# --- the callback driven event by event ----------------------------------------------------

class Recorder:
    """Stands in for ansible's Display: keeps what the callback prints."""

    def __init__(self):
        self.calls = []
        self.verbose = []

    def vvv(self, msg, host=None):
        self.verbose.append(msg)

    def display(self, msg, color=None, stderr=False, screen_only=False, log_only=False, newline=True, caplevel=None):
        self.calls.append((msg, color, stderr))

    def warning(self, msg, *args, **kwargs):
        self.calls.append(("[WARNING]: " + msg, None, True))

    @property
    def lines(self):
        return [msg for msg, dummy, dummy in self.calls]


class Run:
    """Drives the callback as ansible-core's PlaybookExecutor and strategy do: playbook
    start, one play start per serial batch (a copy of the play, inventory restricted to
    the batch), task results, stats."""

    def __init__(self, tmp_path, ansible_env, plays, inventory=None, **options):
        self.loader, self.inventory, vm = ansible_env(inventory or SITE_INVENTORY)
        path = tmp_path / "play.yml"
        path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
        self.playbook = Playbook.load(str(path), variable_manager=vm, loader=self.loader)
        self.plays = self.playbook.get_plays()
        self.callback = callback_loader.get("kubegpu.cluster.kubegpu")
        self.callback._display = self.out = Recorder()
        self.callback.set_options(direct=options)
        self.callback.v2_playbook_on_start(self.playbook)

    def play(self, index, batch=None):
        play = self.plays[index]
        self.inventory.remove_restriction()
        if batch is not None:
            self.inventory.restrict_to_hosts([self.inventory.get_host(h) for h in batch])
        self.current = play.copy()
        self.callback.v2_playbook_on_play_start(self.current)

    def task(self, name):
        def walk(blocks):
            for item in blocks:
                if getattr(item, "block", None) is not None and not hasattr(item, "action"):
                    found = walk(item.block + item.rescue + item.always)
                    if found:
                        return found
                elif item.get_name() == name:
                    return item
            return None
        found = walk(self.current.tasks)
        assert found, name
        return found

    def result(self, host, task, **data):
        return TaskResult(self.inventory.get_host(host), self.task(task), data, {})

    def ok(self, host, task, changed=False):
        self.callback.v2_runner_on_ok(self.result(host, task, changed=changed))

    def failed(self, host, task, ignore_errors=False):
        self.callback.v2_runner_on_failed(self.result(host, task, failed=True, msg="boom"),
                                          ignore_errors=ignore_errors)

    def unreachable(self, host, task):
        self.callback.v2_runner_on_unreachable(self.result(host, task, unreachable=True, msg="no route"))

    def skipped(self, host, task):
        self.callback.v2_runner_on_skipped(self.result(host, task, skipped=True))

    def stats(self):
        self.callback.v2_playbook_on_stats(None)
        return self.out.lines


def _task(name, **kw):
    return dict({"name": name, "ansible.builtin.command": "true"}, **kw)


STAGES = [
    {"name": "Stage 1 - preflight", "hosts": "k8s_cluster", "gather_facts": False, "tags": ["preflight"],
     "tasks": [_task("Check")]},
    {"name": "Stage 2 - OS prerequisites", "hosts": "k8s_cluster", "gather_facts": False, "tags": ["os_prereqs"],
     "tasks": [_task("Change"), _task("Fail"), _task("Skip"),
               {"name": "Guarded", "block": [_task("Try")], "rescue": [_task("Recover")]}]},
    {"name": "Stage 3 - NVIDIA driver", "hosts": "k8s_cluster", "serial": 1, "gather_facts": False,
     "tags": ["nvidia_driver"], "tasks": [_task("Upgrade")]},
]


def test_preload_happens_once_at_the_first_followed_play(tmp_path, ansible_env):
    """The controller loads kubegpu's rules and the inventory's connection plugin before
    the first play forks workers; once per run, whatever the number of plays."""
    run = Run(tmp_path, ansible_env, STAGES[:2], scope="all")
    assert run.out.verbose == []
    run.play(0)
    run.play(1)
    preloaded = [line for line in run.out.verbose if "preloaded" in line]
    assert len(preloaded) == 1, run.out.verbose
    assert re.match(r"kubegpu: preloaded \d+ plugins and modules in [\d.]+ s$", preloaded[0])
    assert not [line for line in run.out.verbose if "not preloaded" in line], run.out.verbose
    assert "ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_plan" in sys.modules


def test_preload_can_be_turned_off(tmp_path, ansible_env):
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all", preload=False)
    run.play(0)
    assert run.out.verbose == []


@pytest.fixture(autouse=True)
def freezes(monkeypatch):
    """gc.freeze calls, recorded instead of made (this process is pytest's)."""
    calls = []
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(True))
    return calls


def test_gc_freeze_at_every_followed_play_after_the_preload(tmp_path, ansible_env, freezes):
    """The controller's objects go to the permanent generation at each kubegpu play, before
    its workers are forked; a play the callback does not follow freezes nothing."""
    run = Run(tmp_path, ansible_env, STAGES[:2], scope="all")
    run.play(0)
    assert len(freezes) == 1 and [line for line in run.out.verbose if "preloaded" in line]
    run.play(1)
    assert len(freezes) == 2
    other = Run(tmp_path, ansible_env, [dict(STAGES[0], name="Something else")], scope="kubegpu")
    other.play(0)
    assert len(freezes) == 2


def test_gc_freeze_can_be_turned_off(tmp_path, ansible_env, freezes):
    run = Run(tmp_path, ansible_env, STAGES[:2], scope="all", gc_freeze=False)
    run.play(0)
    run.play(1)
    assert freezes == []


def test_outcomes_are_counted_per_host_and_stage(tmp_path, ansible_env):
    run = Run(tmp_path, ansible_env, STAGES[:2], scope="all")
    run.play(0)
    run.ok("cp1", "Check")
    run.ok("gpu1", "Check")
    run.unreachable("w1", "Check")
    run.play(1)
    run.ok("cp1", "Change", changed=True)
    run.ok("gpu1", "Change", changed=True)
    run.ok("cp1", "Fail")
    run.failed("gpu1", "Fail")
    run.skipped("cp1", "Skip")
    run.failed("cp1", "Try")           # in a block with rescue: rescued, not failed
    run.ok("cp1", "Recover")
    lines = run.stats()
    assert lines == [
        "kubegpu > [1/2] preflight: started (Stage 1 - preflight)",
        "kubegpu < [1/2] preflight: UNREACHABLE in %s - 3 hosts: 1 unreachable (w1), 2 ok" % _elapsed(lines[1]),
        "kubegpu > [2/2] os_prereqs: started (Stage 2 - OS prerequisites)",
        "kubegpu < [2/2] os_prereqs: FAILED in %s - 2 hosts: 1 failed (gpu1), 1 changed" % _elapsed(lines[3]),
        "",
        "kubegpu: 3 hosts x 2 stages (play.yml)",
        "  host  preflight  os_prereqs",
        "  cp1   ok         chg 1",
        "  gpu1  ok         FAIL",
        "  w1    UNREACH    -",
        "kubegpu: FAILED - 3 hosts: 1 failed (gpu1), 1 unreachable (w1), 1 changed - total %s" % _total(lines[-1]),
    ]
    report = run.callback.report()
    assert report["hosts"]["cp1"]["os_prereqs"] == dict(counts(ok=3, changed=1, skipped=1, rescued=1), status="chg 1")
    assert report["hosts"]["gpu1"]["os_prereqs"] == dict(counts(ok=1, changed=1, failed=1), status="FAIL")
    assert report["totals"]["w1"] == dict(counts(unreachable=1), status="unreachable")
    assert (report["failed_hosts"], report["unreachable_hosts"], report["result"]) == (["gpu1"], ["w1"], "failed")
    # coloured like Ansible's own output: the whole line, by its worst cell
    colours = {msg: color for msg, color, dummy in run.out.calls}
    assert colours["  gpu1  ok         FAIL"] == C.COLOR_ERROR
    assert colours["  cp1   ok         chg 1"] == C.COLOR_CHANGED
    assert colours["  w1    UNREACH    -"] == C.COLOR_UNREACHABLE


def _elapsed(line):
    return re.search(r" in (\S+) - ", line).group(1)


def _total(line):
    return re.search(r"total (\S+)$", line).group(1)


def test_ignored_errors_and_ignored_unreachable_are_not_failures(tmp_path, ansible_env):
    plays = [{"name": "Stage 1 - preflight", "hosts": "k8s_cluster", "gather_facts": False, "tags": ["preflight"],
              "tasks": [_task("Probe", ignore_errors=True), _task("Reach", ignore_unreachable=True)]}]
    run = Run(tmp_path, ansible_env, plays, scope="all")
    run.play(0)
    run.failed("cp1", "Probe", ignore_errors=True)
    run.unreachable("cp1", "Reach")
    run.stats()
    assert run.callback.report()["hosts"]["cp1"]["preflight"] == dict(counts(ok=2, ignored=2), status="ok")


def test_an_unreachable_host_alone_is_not_called_a_failure(tmp_path, ansible_env):
    """preflight lets an unreachable host drop out and the others go on: the run is
    UNREACHABLE (Ansible exits 4), not FAILED (2)."""
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all")
    run.play(0)
    run.ok("cp1", "Check")
    run.unreachable("w1", "Check")
    lines = run.stats()
    assert lines[-1].startswith("kubegpu: UNREACHABLE - 2 hosts: 1 unreachable (w1), 1 ok - total ")
    assert run.callback.report()["result"] == "unreachable"


def test_serial_batches_are_one_stage(tmp_path, ansible_env):
    run = Run(tmp_path, ansible_env, STAGES[2:], scope="all")
    for host in ("cp1", "gpu1", "w1"):
        run.play(0, batch=[host])
        run.ok(host, "Upgrade", changed=host != "w1")
    lines = run.stats()
    assert lines[:5] == [
        "kubegpu > [1/1] nvidia_driver: started (Stage 3 - NVIDIA driver)",
        "kubegpu > [1/1] nvidia_driver: batch 1, 1 host (cp1)",
        "kubegpu > [1/1] nvidia_driver: batch 2, 1 host (gpu1)",
        "kubegpu > [1/1] nvidia_driver: batch 3, 1 host (w1)",
        "kubegpu < [1/1] nvidia_driver: done in %s - 3 hosts: 2 changed, 1 ok" % _elapsed(lines[4]),
    ]
    assert lines[6:10] == [
        "kubegpu: 3 hosts x 1 stage (play.yml)",
        "  host  nvidia_driver",
        "  cp1   chg 1",
        "  gpu1  chg 1",
    ]
    (stage,) = run.callback.report()["stages"]
    assert (stage["id"], stage["batches"], stage["plays"]) == ("nvidia_driver", 3, ["Stage 3 - NVIDIA driver"])


def test_check_mode_is_marked(tmp_path, ansible_env, monkeypatch):
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True))
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all")
    run.play(0)
    run.ok("cp1", "Check", changed=True)
    lines = run.stats()
    assert lines[0] == "kubegpu > [1/1] preflight: started (Stage 1 - preflight) [check mode]"
    assert lines[3] == "kubegpu: 1 host x 1 stage (play.yml) [check mode: chg = would change]"
    assert lines[-1].startswith("kubegpu: ok - 1 host: 1 would change - total ")
    assert lines[-1].endswith(" [check mode]")
    assert run.callback.report()["check_mode"] is True


def test_a_check_mode_play_is_marked(tmp_path, ansible_env):
    plays = [dict(STAGES[0], check_mode=True)]
    run = Run(tmp_path, ansible_env, plays, scope="all")
    run.play(0)
    run.ok("cp1", "Check")
    assert run.stats()[0].endswith("[check mode]")


def test_other_playbooks_are_left_alone_by_default(tmp_path, ansible_env):
    """With scope=kubegpu (the default) a playbook that is not the collection's makes the
    callback print nothing at all, and write no JSON file."""
    out = tmp_path / "report.json"
    run = Run(tmp_path, ansible_env, STAGES, json_file=str(out))
    for index in range(2):
        run.play(index)
        run.ok("cp1", "Check" if index == 0 else "Change", changed=True)
    assert run.stats() == []
    assert not out.exists()


def test_a_fleet_of_hundreds_stays_readable(tmp_path, ansible_env):
    names = ["gpu-%03d" % i for i in range(300)]
    inventory = "[k8s_cluster]\n" + "".join("%s %s\n" % (n, LOCAL) for n in names)
    out = tmp_path / "report.json"
    run = Run(tmp_path, ansible_env, STAGES[:2], inventory=inventory, scope="all", json_file=str(out), max_rows=10)
    run.play(0)
    for name in names:
        run.ok(name, "Check")
    run.play(1)
    for i, name in enumerate(names):
        if name == "gpu-123":
            run.failed(name, "Fail")
        else:
            run.ok(name, "Change", changed=i % 2 == 0)
    lines = run.stats()
    assert lines[3] == "kubegpu < [2/2] os_prereqs: FAILED in %s - 300 hosts: 1 failed (gpu-123), 150 changed, 149 ok" % (
        _elapsed(lines[3]))
    table = lines[lines.index("kubegpu: 300 hosts x 2 stages (play.yml)") + 1:-1]
    assert table == [
        "  hosts  example       preflight  os_prereqs",
        "      1  gpu-123       ok         FAIL",
        "    150  gpu-000 +149  ok         chg",
        "    149  gpu-001 +148  ok         ok",
    ]
    assert lines[-1].startswith("kubegpu: FAILED - 300 hosts: 1 failed (gpu-123), 150 changed, 149 ok - total ")
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["schema"] == "kubegpu.cluster.callback/v1"
    assert len(report["hosts"]) == 300 and report["failed_hosts"] == ["gpu-123"]
    assert report["hosts"]["gpu-002"]["os_prereqs"]["status"] == "chg 1"


def test_lines_go_to_stderr_when_stdout_is_json(tmp_path, ansible_env, monkeypatch):
    monkeypatch.setattr(C, "DEFAULT_STDOUT_CALLBACK", "ansible.posix.json", raising=False)
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all")
    run.play(0)
    run.ok("cp1", "Check")
    run.stats()
    assert run.out.calls and all(stderr for dummy, dummy, stderr in run.out.calls)


def test_progress_and_table_can_be_turned_off(tmp_path, ansible_env):
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all", progress=False, table=False)
    run.play(0)
    run.ok("cp1", "Check")
    assert run.stats() == []
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all", progress=False)
    run.play(0)
    run.ok("cp1", "Check")
    assert run.stats()[1] == "kubegpu: 1 host x 1 stage (play.yml)"


def test_an_unwritable_json_file_is_a_warning(tmp_path, ansible_env):
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    run = Run(tmp_path, ansible_env, STAGES[:1], scope="all", json_file=str(blocker / "report.json"))
    run.play(0)
    run.ok("cp1", "Check")
    assert run.stats()[-1].startswith("[WARNING]: kubegpu callback: cannot write ")


# --- the real ansible-playbook -----------------------------------------------------------

INVENTORY = """
[kube_control_plane]
cp1 %(local)s
[kube_node]
gpu1 %(local)s
w1 %(local)s
[k8s_cluster:children]
kube_control_plane
kube_node
""" % {"local": LOCAL}

PLAYBOOK = [
    {"name": "Stage 1 - preflight", "hosts": "k8s_cluster", "gather_facts": False, "tags": ["preflight"],
     "tasks": [{"name": "Check", "ansible.builtin.command": "true", "changed_when": False}]},
    {"name": "Stage 2 - OS prerequisites", "hosts": "k8s_cluster", "gather_facts": True, "gather_subset": ["min"],
     "tags": ["os_prereqs"],
     "tasks": [{"name": "Change on the control plane", "ansible.builtin.command": "true",
                "changed_when": "inventory_hostname == 'cp1'"},
               {"name": "Fail on gpu1", "ansible.builtin.command": "false", "when": "inventory_hostname == 'gpu1'"},
               {"name": "Skip everywhere", "ansible.builtin.debug": {"msg": "never"}, "when": False}]},
    {"name": "Stage 3 - NVIDIA driver", "hosts": "k8s_cluster", "serial": 1, "gather_facts": False,
     "tags": ["nvidia_driver"],
     "tasks": [{"name": "Upgrade", "ansible.builtin.command": "true", "changed_when": "inventory_hostname == 'w1'"}]},
]


def ansible_playbook(tmp_path, *args, env=None, playbook=None):
    (tmp_path / "hosts.ini").write_text(INVENTORY, encoding="utf-8")
    if playbook is None:
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump(PLAYBOOK, sort_keys=False), encoding="utf-8")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "KUBEGPU_CALLBACK_"))}
    base.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_LOCALHOST_WARNING="false",
                ANSIBLE_RETRY_FILES_ENABLED="false", ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_FORKS="4",
                NO_COLOR="1", PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    base.update(env or {})
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.ini"), str(playbook), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=base,
                          timeout=600)


def recap(stdout):
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
            for host, rest in re.findall(r"^(\S+)\s+:\s+(ok=\d+.*)$", stdout, re.M)}


def test_real_run_shows_the_failed_host(tmp_path):
    report = tmp_path / "report.json"
    (tmp_path / "empty.cfg").write_text("[defaults]\n", encoding="utf-8")
    done = ansible_playbook(tmp_path, env={"ANSIBLE_CONFIG": str(tmp_path / "empty.cfg"),
                                           "ANSIBLE_CALLBACKS_ENABLED": "kubegpu.cluster.kubegpu",
                                           "KUBEGPU_CALLBACK_SCOPE": "all",
                                           "KUBEGPU_CALLBACK_JSON_FILE": str(report)})
    out = done.stdout
    assert done.returncode == 2, out[-3000:] + done.stderr[-3000:]
    assert not ANSI.search(out), "NO_COLOR: no escape sequences"
    ours = [line for line in out.splitlines() if line.startswith("kubegpu")]
    assert ours[:7] == [
        "kubegpu > [1/3] preflight: started (Stage 1 - preflight)",
        "kubegpu < [1/3] preflight: done in %s - 3 hosts: 3 ok" % _elapsed(ours[1]),
        "kubegpu > [2/3] os_prereqs: started (Stage 2 - OS prerequisites)",
        "kubegpu < [2/3] os_prereqs: FAILED in %s - 3 hosts: 1 failed (gpu1), 1 changed, 1 ok" % _elapsed(ours[3]),
        "kubegpu > [3/3] nvidia_driver: started (Stage 3 - NVIDIA driver)",
        "kubegpu > [3/3] nvidia_driver: batch 1, 1 host (cp1)",
        # gpu1 failed in stage 2: its batch runs nothing
        "kubegpu > [3/3] nvidia_driver: batch 2, 1 host (gpu1)",
    ]
    # after Ansible's recap: the table, then the result with the total time
    tail = out[out.index("PLAY RECAP"):].splitlines()
    start = tail.index("kubegpu: 3 hosts x 3 stages (play.yml)")
    assert tail[start + 1:start + 5] == [
        "  host  preflight  os_prereqs  nvidia_driver",
        "  cp1   ok         chg 1       ok",
        "  gpu1  ok         FAIL        -",
        "  w1    ok         ok          chg 1",
    ]
    assert re.fullmatch(r"kubegpu: FAILED - 3 hosts: 1 failed \(gpu1\), 2 changed - total \d+\.\ds", tail[start + 5])
    # the same numbers as Ansible's own recap, host by host
    data = json.loads(report.read_text(encoding="utf-8"))
    for host, numbers in recap(out).items():
        total = data["totals"][host]
        assert numbers == {"ok": total["ok"], "changed": total["changed"], "unreachable": total["unreachable"],
                           "failed": total["failed"], "skipped": total["skipped"], "rescued": total["rescued"],
                           "ignored": total["ignored"]}, host
    assert [s["batches"] for s in data["stages"]] == [1, 1, 3]


def test_real_run_with_the_shipped_ansible_cfg_is_silent_for_other_playbooks(tmp_path):
    """ansible.cfg enables the callback; a playbook that is not the collection's gets no
    extra line, and --limit is honoured when it is followed."""
    cfg = {"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    done = ansible_playbook(tmp_path, "--limit", "cp1,w1", env=cfg)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "kubegpu" not in done.stdout + done.stderr
    done = ansible_playbook(tmp_path, "--limit", "cp1,w1", env=dict(cfg, KUBEGPU_CALLBACK_SCOPE="all"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    tail = done.stdout[done.stdout.index("kubegpu: 2 hosts x 3 stages (play.yml)"):].splitlines()
    assert tail[1:4] == [
        "  host  preflight  os_prereqs  nvidia_driver",
        "  cp1   ok         chg 1       ok",
        "  w1    ok         ok          chg 1",
    ]


def test_real_site_yml_in_check_mode(tmp_path):
    """The real site.yml, in check mode, with a tag no task has (so only fact gathering
    and argument checks run) and the driver stage one host at a time: every stage of
    site.yml is a column, in order, and the batches are one stage."""
    done = ansible_playbook(tmp_path, "--check", "--tags", "kubegpu_callback_test_no_such_tag",
                            "-e", "nvidia_driver_serial=1", playbook=ROOT / "playbooks" / "site.yml",
                            # twelve stage columns: wider than the default 160, so the table keeps one column per stage
                            env={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "KUBEGPU_CALLBACK_WIDTH": "240"})
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    stages = site_stage_ids()
    ours = [line for line in out.splitlines() if line.startswith("kubegpu")]
    starts = [line for line in ours if ": started " in line]
    assert [re.match(r"kubegpu > \[\d+/(\d+)\] (\w+): ", line).groups() for line in starts] == [
        (str(len(stages)), s) for s in stages]
    assert all(line.endswith("[check mode]") for line in starts)
    assert [line.split(": batch ")[1] for line in ours if ": batch " in line] == [
        "1, 1 host (cp1)", "2, 1 host (gpu1)", "3, 1 host (w1)"]
    title = "kubegpu: 3 hosts x %d stages (site.yml) [check mode: chg = would change]" % len(stages)
    table = out[out.index(title):].splitlines()
    assert table[1].split() == ["host"] + stages
    assert table[2].split()[0] == "cp1"
    (result,) = [line for line in table if line.startswith("kubegpu: ok")]
    assert re.fullmatch(r"kubegpu: ok - 3 hosts: 3 ok - total \S+ \[check mode\]", result), result
