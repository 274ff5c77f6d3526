# SPDX-License-Identifier: Apache-2.0
"""bench/floor.py writes playbooks with the number of tasks per host it reports."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def floor():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("kubegpu_bench_floor", ROOT / "bench" / "floor.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "bench"))


@pytest.mark.parametrize("workload", ["skip", "action", "module", "stage"])
def test_each_workload_has_the_tasks_per_host_it_reports(floor, tmp_path, workload):
    path = tmp_path / "pb.yml"
    floor.write_playbook(path, workload, 20)
    plays = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert len(plays) == 1 and plays[0]["hosts"] == "all" and plays[0]["gather_facts"] is False
    tasks = plays[0]["tasks"]
    assert len(tasks) == 20
    modules = [next(k for k in t if k.startswith(("ansible.", "kubegpu."))) for t in tasks]
    expected = {"skip": {"ansible.builtin.debug"}, "action": {"ansible.builtin.assert"},
                "module": {"ansible.builtin.ping"},
                "stage": {"ansible.builtin.validate_argument_spec", "kubegpu.cluster.host_state",
                          "ansible.builtin.file"}}[workload]
    assert set(modules) == expected
    if workload == "stage":
        # Five stages: one read of the host each, and every change guarded by it.
        assert modules.count("kubegpu.cluster.host_state") == 5
        assert all("floor_state" in t["when"] for t in tasks if "ansible.builtin.file" in t)


def test_the_table_reports_the_ratio_and_the_cost_of_one_more_host(floor):
    results = {"skip": {n: {"wall_s": w, "controller_cpu_s": c, "hosts_cpu_s": 0.0}
                        for n, w, c in ((1, 1.0, 1.0), (4, 2.0, 2.4), (16, 5.0, 8.0))}}
    row = floor.table(results, [1, 4, 16], 20).splitlines()[2]
    # 5.0 / 2.0; (5.0 - 1.0) / 15 per host; 8.0 / 16 / 20 per host and task.
    assert row == "| skip | 1.0 | 2.0 | 5.0 | 2.50 | 0.27 | 0.025 / 0.000 |"
