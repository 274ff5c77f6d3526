# SPDX-License-Identifier: Apache-2.0
"""The preflight acceptance table (tests/fixtures/preflight/cases.yml) through the real role.

Every case runs playbooks/preflight.yml's plays with ansible-playbook against localhost
aliases (connection local, no docker): the three plays as the file has them, with one
addition to the third - module_defaults pointing kubegpu.cluster.gpu_facts' sysfs layer at
a fake host built from a GPU fixture (tests/fixtures/gpu/fakehost.py), so a host "has" an
H100, a B200 or an HGX baseboard. The cgroup hierarchy preflight probes is a fake tree too
(_preflight_probe_root), cgroup v2 unless the case says 1, so the machine's own does not
matter.

To stay within a few minutes on two cores, cases marked batchable share one inventory: each
under its own host names (c07-cp1), the inventory-level check skipped (--skip-tags
preflight_inventory), every host failing in the same task and reporting its own problems;
cases about one variable alone share a host (s00-cp1), up to eight, one per variable.
The others (inventory-level rules, -e, host names in messages, valid setups) run alone; an
inventory-level case (inventory_only) with --tags preflight_inventory, the check alone.
Runs go three at a time. Output is read with the ansible.posix.json callback; building the
runs and judging them is tests/fixtures/preflight/table.py, shared with the integration
runner (tests/integration/test_preflight_matrix.py).
"""
from __future__ import annotations

import concurrent.futures
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VENV_BIN = Path(sys.executable).parent

sys.path.insert(0, str(FIXTURES / "gpu"))
sys.path.insert(0, str(FIXTURES / "preflight"))
import fakehost  # noqa: E402  (tests/fixtures/gpu/fakehost.py)
import table  # noqa: E402  (tests/fixtures/preflight/table.py)

# Forty-one ansible-playbook runs (minutes): on .venv's ansible-core only; the ansible-core
# matrix leaves it out (marker flow, pytest.ini).
pytestmark = pytest.mark.flow

# Tens of seconds of ansible-playbook runs: on .venv's ansible-core only; the matrix leaves
# it out (pytest.ini, marker flow).
pytestmark = pytest.mark.flow

CASES = table.CASES
BY_ID = table.BY_ID
# In `make test` the cases that need nothing but plain hosts run for real, on test hosts
# (tests/integration/test_preflight_matrix.py, judged by the same functions of table.py):
# scripts/test.sh sets KUBEGPU_PREFLIGHT_TABLE_ON_HOSTS and this runner takes the others
# (GPU and cgroup fixtures, addresses of their own). Alone (`make unit`, pytest) it runs all.
RUN_CASES = [case for case in CASES if case.get("needs")] \
    if os.environ.get("KUBEGPU_PREFLIGHT_TABLE_ON_HOSTS") else CASES
_refused = table.refused


# --- the table itself ----------------------------------------------------------------------

def test_the_table_has_sixty_bad_inventories_of_every_kind():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    bad = [case for case in CASES if _refused(case)]
    assert len(bad) >= 60, len(bad)
    kinds = set(case["kind"] for case in bad)
    assert kinds >= {"spec", "version", "endpoint", "runtime", "proxy", "cidr", "calico", "cgroup", "driver",
                     "gpu-node", "mode", "nfs", "inventory"}, kinds
    for case in bad:
        assert case.get("expect"), case["id"]
    assert [case for case in CASES if not _refused(case)], "no valid setup"


def test_every_refusal_names_a_host_a_variable_and_the_fix():
    """One fragment of every refused case is a message line 'host H: variable V: ...' (or
    'hosts a, b: ...' for an inventory rule), and some fragment carries the fix."""
    line = re.compile(r"^(host [^ :]+: variable [a-z0-9_]+: |hosts [^:]+: (variable )?[a-z0-9_]+: |inventory: group )")
    for case in CASES:
        if not _refused(case):
            continue
        assert any(line.match(f) for f in case["expect"]), case["id"]
    for case in CASES:
        if _refused(case):
            assert any("fix: " in f for f in case["expect"]), case["id"]


def test_every_fixture_a_case_names_exists():
    for case in CASES:
        for fixture in (case.get("gpu") or {}).values():
            assert (FIXTURES / fixture).is_dir(), (case["id"], fixture)
        if case.get("gpu"):
            assert "gpu-fixture" in case.get("needs", []), case["id"]
        if case.get("cgroup"):
            assert "cgroup-fixture" in case.get("needs", []), case["id"]


# --- running them ----------------------------------------------------------------------------

def _fake_root(base, name, builder):
    path = base / name
    if not path.exists():
        builder(path)
    return str(path)


def _cgroup_root(base, version):
    def build(path):
        (path / "sys" / "fs" / "cgroup").mkdir(parents=True)
        if version == 2:
            (path / "sys" / "fs" / "cgroup" / "cgroup.controllers").write_text("cpu memory pids\n")
    return _fake_root(base, "cgroup-v%d" % version, build)


def _gpu_root(base, fixture):
    def build(path):
        if fixture:
            fakehost.build(str(FIXTURES / fixture), str(path))
        else:
            (path / "sys" / "bus" / "pci" / "devices").mkdir(parents=True)
            (path / "proc").mkdir(parents=True)
    return _fake_root(base, "gpu-" + (fixture or "none").replace("/", "-"), build)


def _host_vars(base):
    def host_vars(case, host, _name):
        return {"_preflight_probe_root": _cgroup_root(base, (case.get("cgroup") or {}).get(host, 2)),
                "_test_gpu_root": _gpu_root(base, (case.get("gpu") or {}).get(host))}
    return host_vars


def _playbook(tmp):
    """playbooks/preflight.yml's plays, the third with gpu_facts pointed at the fake hosts."""
    plays = yaml.safe_load((ROOT / "playbooks" / "preflight.yml").read_text(encoding="utf-8"))
    assert plays[2]["roles"][0]["role"] == "kubegpu.cluster.preflight"
    plays[2]["module_defaults"] = {"kubegpu.cluster.gpu_facts": {
        "sysfs_root": "{{ _test_gpu_root }}", "proc_root": "{{ _test_gpu_root }}", "sources": ["sysfs"]}}
    # The role gathers the facts it decides from itself, fresh (tasks/facts.yml); the play's
    # own gathering would only double the time here.
    plays[2]["gather_facts"] = False
    path = tmp / "preflight-cases.yml"
    path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    return path


def _run(tmp, playbook, label, inventory, extra_args=()):
    path = tmp / ("%s.yml" % label)
    path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_GATHERING="implicit",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_FORKS="40",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(path), str(playbook), *extra_args]
    return table.run(argv, env, tmp)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case run once: {case id: (run, host prefix)}."""
    tmp = tmp_path_factory.mktemp("preflight-cases")
    jobs = table.jobs(RUN_CASES, _host_vars(tmp), parts=2, inventory_tag=True,
                      ansible_connection="local", ansible_python_interpreter=sys.executable)
    found = {}
    # Written once, before the runs start: a run that reads it while another rewrites it would
    # find it empty ("Empty playbook, nothing to do").
    playbook = _playbook(tmp)
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = dict((pool.submit(_run, tmp, playbook, label, inventory, args), members)
                       for label, inventory, args, members in jobs)
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            for case_id, prefix in futures[future]:
                found[case_id] = (result, prefix)
    return found


@pytest.mark.parametrize("case_id", [c["id"] for c in RUN_CASES if _refused(c)])
def test_refused(runs, case_id):
    result, prefix = runs[case_id]
    table.assert_refused(result, BY_ID[case_id], prefix)


@pytest.mark.parametrize("case_id", [c["id"] for c in RUN_CASES if not _refused(c)])
def test_valid_setup_passes(runs, case_id):
    result, _prefix = runs[case_id]
    table.assert_passed(result, BY_ID[case_id])
