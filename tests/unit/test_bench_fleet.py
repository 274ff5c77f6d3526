# SPDX-License-Identifier: Apache-2.0
"""bench/fleet.py and its callback count what they report (no docker, no ansible run)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fleet():
    return _load("kubegpu_bench_fleet", ROOT / "bench" / "fleet.py")


@pytest.fixture(scope="module")
def counts():
    return _load("kubegpu_bench_counts", ROOT / "bench" / "callback_plugins" / "kubegpu_bench_counts.py")


RECAP = """
PLAY RECAP *********************************************************************
cp1                        : ok=150  changed=40   unreachable=0    failed=0    skipped=60   rescued=1    ignored=0
gpu01                      : ok=120  changed=30   unreachable=0    failed=1    skipped=50   rescued=0    ignored=0
localhost                  : ok=3    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0

Tuesday 02 December 2026  03:10:00 +0000 (0:00:01.234)       0:05:00.000 *****
===============================================================================
kubernetes : Initialise the control plane ------------------------------ 42.10s
calico : Wait for calico-node -------------------------------------------- 12.50s
"""


def test_tasks_per_host_counts_changed_once(fleet):
    # ok includes changed (ansible's strategy increments both for a changed task).
    recap = fleet.parse_recap(RECAP)
    assert fleet.tasks_per_host(recap) == {"cp1": 150 + 60 + 1, "gpu01": 120 + 50 + 1}


def test_slowest_tasks_come_from_profile_tasks(fleet):
    slow = fleet.parse_profile(RECAP, 1)
    assert slow == [{"task": "kubernetes : Initialise the control plane", "seconds": 42.1}]


def test_stage_seconds_group_plays_by_their_stage_tag(fleet):
    plays = [
        {"play": "Stage 1 - preflight - check that the inventory has a cluster", "tags": ["preflight"], "seconds": 1.0},
        {"play": "Stage 1 - preflight", "tags": ["preflight"], "seconds": 2.5},
        {"play": "Publish what stage 7 reads from the cluster nodes", "tags": ["nvidia_device_plugin"], "seconds": 3.0},
        {"play": "NVIDIA device plugin", "tags": ["nvidia_device_plugin"], "seconds": 4.0},
        {"play": "Something else", "tags": [], "seconds": 0.5},
    ]
    assert fleet.stage_seconds(plays) == {"preflight": 3.5, "nvidia_device_plugin": 7.0,
                                          "Something else": 0.5}


def test_layout_groups_and_the_table_cell_by_kind(fleet):
    layout = fleet.fleet_layout(16)
    names = [n for n, _c, _g in layout]
    gpus = [n for n, _c, g in layout if "gpu" in g]
    assert names[0] == "cp1" and len(layout) == 16 and len(gpus) == 4
    per_host = {n: (100 if n == "cp1" else 80 if n in gpus else 60 + i) for i, n in enumerate(names)}
    cell = fleet.kinds_cell({n: g for n, _c, g in layout}, per_host)
    assert cell == "100 / 80 / 65-75"


def test_only_gpu_hosts_get_the_simulated_pci_tree(fleet):
    gpu = fleet.run_options(["kube_node", "gpu"], "", "/x/h100")
    cpu = fleet.run_options(["kube_node"], "", "/x/h100")
    assert "/x/h100:/sys/bus/pci/devices:ro" in gpu
    assert not any("/sys/bus/pci" in o for o in cpu)
    # --stages-1-4 (no simulation): no PCI tree for anyone.
    assert not any("/sys/bus/pci" in o for o in fleet.run_options(["gpu"], "", None))


def test_inventory_gets_molecules_variables_for_stages_5_to_9(fleet, tmp_path):
    import json
    layout = fleet.fleet_layout(4)
    sim = {"debs": "/r/.cache/sim-debs"}
    fleet.write_inventory(tmp_path / "inv.yml", layout, "", {}, sim)
    v = json.loads((tmp_path / "inv.yml").read_text())["all"]["vars"]
    molecule = (ROOT / ".config" / "molecule" / "config.yml").read_text()
    for key in fleet.sim_vars("x"):
        assert key + ":" in molecule, "%s is not what Molecule sets" % key
    assert v["kubernetes_package_source"] == "local"
    assert v["kubernetes_local_package_dir"] == "/r/.cache/sim-debs"
    assert v["calico_operator_manifest_url"] == "/etc/kubegpu-sim/tigera-operator.yaml"
    fleet.write_inventory(tmp_path / "old.yml", layout, "", {})
    assert "kubernetes_package_source" not in json.loads((tmp_path / "old.yml").read_text())["all"]["vars"]


def test_summarise_adds_module_runs_and_per_host_cpu(fleet):
    counts = {"hosts": {"cp1": {"module_runs": 9}, "gpu01": {"module_runs": 7}},
              "plays": [{"play": "Calico", "tags": ["calico"], "seconds": 2.0}],
              "module_runs_by_action": {"ansible.builtin.command": 16}}
    run = fleet.summarise(RECAP, counts, {"controller_cpu_s": 10.0, "hosts_cpu_s": 3.0}, 2)
    assert run["module_runs_per_host"] == {"cp1": 9, "gpu01": 7}
    assert (run["module_runs_per_host_min"], run["module_runs_per_host_max"]) == (7, 9)
    assert run["stage_s"] == {"calico": 2.0}
    assert run["controller_cpu_s_per_host"] == 5.0 and run["hosts_cpu_s_per_host"] == 1.5
    assert run["changed_total"] == 70


def _result(counts, host, action, ret, changed=False, loop=None, status=None):
    task = SimpleNamespace(action=action, loop=loop, loop_with=None)
    h = SimpleNamespace(get_name=lambda: host, vars={"ansible_host": "kubegpu-bench-" + host})
    return SimpleNamespace(_host=h, _task=task, _result=ret, is_changed=lambda: changed)


def test_callback_counts_module_runs_not_controller_actions(counts, tmp_path, monkeypatch):
    out = tmp_path / "c.json"
    monkeypatch.setenv("KUBEGPU_BENCH_COUNTS", str(out))
    cb = counts.CallbackModule()
    cb.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Calico", tags=["calico"]))
    cb.v2_runner_on_ok(_result(counts, "cp1", "ansible.builtin.set_fact", {}))
    cb.v2_runner_on_ok(_result(counts, "cp1", "ansible.builtin.assert", {}))
    cb.v2_runner_on_ok(_result(counts, "cp1", "include_tasks", {}))
    cb.v2_runner_on_ok(_result(counts, "cp1", "kubegpu.cluster.host_state", {}))
    cb.v2_runner_on_ok(_result(counts, "cp1", "ansible.builtin.command", {}, changed=True))
    cb.v2_runner_on_skipped(_result(counts, "cp1", "ansible.builtin.apt", {"skipped": True}))
    # A loop: one run per item that was not skipped.
    cb.v2_runner_on_ok(_result(counts, "cp1", "ansible.builtin.file",
                               {"results": [{}, {"skipped": True}, {}]}, loop=["a", "b", "c"]))
    # Delegated to another host (named, or as ansible-core 2.19 gives it: its
    # ansible_host); to itself (not counted as delegated); to the controller.
    cb.v2_runner_on_ok(_result(counts, "gpu01", "ansible.builtin.command",
                               {"_ansible_delegated_vars": {"ansible_host": "kubegpu-bench-cp1"}}))
    cb.v2_runner_on_ok(_result(counts, "cp1", "ansible.builtin.command",
                               {"_ansible_delegated_vars": {"ansible_host": "kubegpu-bench-cp1"}}))
    cb.v2_runner_on_ok(_result(counts, "gpu01", "ansible.builtin.stat",
                               {"_ansible_delegated_vars": {"ansible_delegated_host": "localhost"}}))
    cb.v2_runner_on_failed(_result(counts, "gpu01", "ansible.builtin.command", {"failed": True}))
    cb.v2_playbook_on_stats(None)
    import json
    data = json.loads(out.read_text())
    cp1, gpu = data["hosts"]["cp1"], data["hosts"]["gpu01"]
    assert cp1 == {"ok": 6, "changed": 1, "failed": 0, "skipped": 1, "module_runs": 1 + 1 + 2 + 1,
                   "delegated": 0, "controller_module_runs": 0}
    assert gpu["module_runs"] == 2 and gpu["delegated"] == 1 and gpu["controller_module_runs"] == 1
    assert gpu["failed"] == 1
    assert data["module_runs_by_action"]["ansible.builtin.command"] == 4
    assert gpu["delegated_to"] == {"kubegpu-bench-cp1": 1}
    assert [p["play"] for p in data["plays"]] == ["Calico"] and data["plays"][0]["tags"] == ["calico"]
    assert data["plays"][0]["seconds"] is not None


def test_every_controller_action_is_an_action_plugin_or_a_core_keyword(counts):
    # The list names real actions: ansible-core ships each as an action plugin (or as a
    # strategy-level keyword: meta, include_*/import_*, noop).
    import ansible.plugins.action as actions
    shipped = {p.stem for p in Path(actions.__file__).parent.glob("*.py")}
    keywords = {"meta", "include_role", "include_tasks", "import_role", "import_tasks", "noop",
                "async_status_controller"}
    for name in counts.CONTROLLER_ACTIONS:
        short = name.rsplit(".", 1)[-1]
        assert short in shipped or short in keywords, name
    # Actions that do run modules on the host are not in it.
    for name in ("ansible.builtin.template", "ansible.builtin.copy", "ansible.builtin.command",
                 "ansible.builtin.wait_for_connection", "ansible.builtin.setup"):
        assert not counts.is_controller_action(name)


def test_with_floor_stores_the_floor_in_the_same_results_file(fleet, tmp_path, monkeypatch, capsys):
    import json
    calls = {}
    monkeypatch.setattr(fleet, "docker", lambda *a, **k: SimpleNamespace(stdout="", returncode=0))
    monkeypatch.setattr(fleet, "ensure_inotify", lambda n: None)
    monkeypatch.setattr(fleet.signal, "signal", lambda *a: None)  # leave pytest's handlers

    def bench_size(n, opts, outdir, apt_proxy, sim=None):
        calls.setdefault("sizes", []).append((n, opts.stages_1_4, sim))
        run = {"rc": 0, "wall_s": 10.0 * n, "load_before": [1.0], "tasks_per_host": {"cp1": 5},
               "changed_total": 0, "controller_cpu_s_per_host": 1.0, "hosts_cpu_s_per_host": 0.5}
        return {"n": n, "gpu_hosts": 0, "hosts": {"cp1": ["kube_control_plane"]},
                "runs": {"converge": dict(run), "noop": run}, "noop_best_s": run["wall_s"]}

    monkeypatch.setattr(fleet, "bench_size", bench_size)
    fake_floor = SimpleNamespace(
        WORKLOADS=("skip",),
        measure=lambda sizes, tasks, workloads, **kw: calls.update(floor=(sizes, tasks, workloads)) or {
            "meta": {}, "results": {"skip": {n: {"wall_s": 1.0 * n, "controller_cpu_s": 1.0,
                                                 "hosts_cpu_s": 0.0} for n in sizes}}},
        table=lambda results, sizes, k: "FLOOR TABLE")
    monkeypatch.setitem(sys.modules, "floor", fake_floor)
    rc = fleet.main(["--sizes", "4,1", "--stages-1-4", "--apt-proxy", "none", "--with-floor",
                     "--results", str(tmp_path)])
    assert rc == 0
    assert [n for n, _s, _sim in calls["sizes"]] == [4, 1] and calls["sizes"][0][1:] == (True, None)
    assert calls["floor"] == ([1, 4], 20, ["skip"])
    (out,) = tmp_path.glob("fleet-*.json")
    doc = json.loads(out.read_text())
    assert [r["n"] for r in doc["results"]] == [4, 1]
    assert doc["floor"]["results"]["skip"]["4"]["wall_s"] == 4.0
    assert doc["meta"]["skip_tags"] == fleet.STAGES_1_4_SKIP_TAGS
    assert "FLOOR TABLE" in capsys.readouterr().out


def test_cputask_sums_the_rows_by_task_most_expensive_first():
    cputask = _load("kubegpu_bench_cputask", ROOT / "bench" / "callback_plugins" / "kubegpu_bench_cputask.py")
    rows = [{"play": "p", "task": "a", "self_s": 0.1, "children_s": 0.2},
            {"play": "p", "task": "b", "self_s": 0.5, "children_s": 1.0},
            {"play": "p", "task": "a", "self_s": 0.1, "children_s": 0.2}]
    out = cputask.summary(rows)
    assert out["total_s"] == 2.1
    assert [(e["task"], e["self_s"], e["children_s"]) for e in out["by_task"]] == [("b", 0.5, 1.0), ("a", 0.2, 0.4)]
    assert out["rows"] == rows
    own, children = cputask.cpu_now()
    assert own > 0 and children >= 0
