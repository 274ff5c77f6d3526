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
Runs go three at a time. Output is read with the ansible.posix.json callback.
"""
from __future__ import annotations

import concurrent.futures
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
VENV_BIN = Path(sys.executable).parent
TABLE = yaml.safe_load((FIXTURES / "preflight" / "cases.yml").read_text(encoding="utf-8"))
CASES = TABLE["cases"]
BY_ID = dict((case["id"], case) for case in CASES)

sys.path.insert(0, str(FIXTURES / "gpu"))
import fakehost  # noqa: E402  (tests/fixtures/gpu/fakehost.py)

NEVER = ("argument_spec_data", "Validation of arguments failed", "Traceback (most recent call last)",
         "gpu_driver_plan:", "nvidia_driver_packages:")


def _refused(case):
    return case.get("refused", True)


def _batch(case):
    return case.get("batch", True) and _refused(case)


def _hosts(case):
    control_planes = list(case.get("control_planes", ["cp1"]))
    workers = list(case.get("workers") or [])
    others = [h for hosts in (case.get("groups") or {}).values() for h in hosts]
    return list(dict.fromkeys(control_planes + workers + others))


# --- the table itself ----------------------------------------------------------------------

def test_the_table_has_sixty_bad_inventories_of_every_kind():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    bad = [case for case in CASES if _refused(case)]
    assert len(bad) >= 60, len(bad)
    kinds = set(case["kind"] for case in bad)
    assert kinds >= {"spec", "version", "endpoint", "runtime", "proxy", "cidr", "calico", "cgroup", "driver",
                     "gpu-node", "mode", "inventory"}, kinds
    for case in bad:
        assert case.get("expect"), case["id"]
    assert [case for case in CASES if not _refused(case)], "no valid setup"


def test_every_refusal_names_a_host_a_variable_and_the_fix():
    """One fragment of every refused case is a message line 'host H: variable V: ...' (or
    'hosts a, b: ...' for an inventory rule), and some fragment carries the fix."""
    line = re.compile(r"^(host [^ :]+: variable [a-z0-9_]+: |hosts [^:]+: (variable )?[a-z0-9_]+: |inventory: group )")
    for case in CASES:
        if not _refused(case) or case["kind"] == "mode":   # modes.yml words its own lines
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


def _add_case(inventory, case, base, prefix=""):
    """Put the case's hosts and groups into the inventory dict, host names prefixed."""
    children = inventory["all"]["children"]

    def name(host):
        return prefix + host

    def group(group_name):
        return children.setdefault(group_name, {}).setdefault("hosts", {})

    for host in case.get("control_planes", ["cp1"]):
        group("kube_control_plane")[name(host)] = None
    for host in case.get("workers") or []:
        group("kube_node")[name(host)] = None
    for group_name, hosts in (case.get("groups") or {}).items():
        group(group_name)
        for host in hosts:
            group(group_name)[name(host)] = None
    host_vars = inventory["all"].setdefault("hosts", {})
    for host in _hosts(case):
        if name(host) in host_vars:     # a host shared by packed cases: add this case's variables
            host_vars[name(host)].update(case.get("cluster_vars") or {})
            host_vars[name(host)].update((case.get("host_vars") or {}).get(host) or {})
            continue
        variables = {
            "_preflight_probe_root": _cgroup_root(base, (case.get("cgroup") or {}).get(host, 2)),
            "_test_gpu_root": _gpu_root(base, (case.get("gpu") or {}).get(host)),
        }
        if prefix:  # a batch: the case's cluster-wide settings become its hosts' own
            variables.update(case.get("cluster_vars") or {})
        variables.update((case.get("host_vars") or {}).get(host) or {})
        host_vars[name(host)] = variables
    if not prefix and case.get("cluster_vars"):
        children.setdefault("k8s_cluster", {})["vars"] = dict(case["cluster_vars"])


def _new_inventory():
    return {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                             # Whatever networks this machine has: not what these cases are about.
                             "preflight_ignored_interfaces": ["*"]},
                    "children": {"kube_control_plane": {"hosts": {}}, "kube_node": {"hosts": {}},
                                 "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}}}}}


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


def _results(stdout):
    """{host: {"failed": [msgs], "warnings": [msgs]}}, and the stats, from the json callback."""
    start = 0 if stdout.startswith("{") else stdout.find("\n{") + 1
    data = json.JSONDecoder().raw_decode(stdout[start:])[0] if start >= 0 and stdout[start:].startswith("{") else {}
    hosts = {}
    for play in data.get("plays", []):
        for task in play.get("tasks", []):
            task_name = task.get("task", {}).get("name", "").split(" : ")[-1]
            for host, result in (task.get("hosts") or {}).items():
                entry = hosts.setdefault(host, {"failed": [], "warnings": []})
                msg = result.get("msg")
                msg = msg if isinstance(msg, str) else json.dumps(msg)
                if result.get("failed"):
                    entry["failed"].append(msg)
                elif task_name.startswith("Warn") and not result.get("skipped"):
                    entry["warnings"].append(msg)
    return hosts, data.get("stats", {})


def _run(tmp, label, inventory, extra_args=()):
    path = tmp / ("%s.yml" % label)
    path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_GATHERING="implicit",
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="40",
               ANSIBLE_DEPRECATION_WARNINGS="false",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(path), str(_playbook(tmp)), *extra_args]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp), env=env, timeout=600)
    hosts, stats = _results(done.stdout)
    return {"rc": done.returncode, "hosts": hosts, "stats": stats, "text": done.stdout + done.stderr,
            "seconds": time.monotonic() - started}


# Kinds whose refusal is about one variable alone, whatever else the host has set.
_PACKABLE = ("spec", "version", "endpoint", "proxy", "runtime")
_PER_HOST = 8


def _packable(case):
    """One variable on cp1 only, nothing else: such cases can share a host (their lines name
    their variables), which saves a host's fact gathering each."""
    names = list(case.get("cluster_vars") or {}) + list((case.get("host_vars") or {}).get("cp1") or {})
    return (case["kind"] in _PACKABLE and len(names) == 1 and _hosts(case) == ["cp1"]
            and set(case.get("host_vars") or {}) <= {"cp1"}
            and not any(case.get(key) for key in ("gpu", "cgroup", "groups", "extra_args")))


def _slots(cases):
    """[(prefix, [case, ...])]: packable cases share hosts (at most _PER_HOST each, never two
    cases of one variable on a host); every other case has hosts of its own."""
    slots, shared = [], []
    for case in cases:
        if not _packable(case):
            slots.append(("c%02d-" % len(slots), [case]))
            continue
        name = (list(case.get("cluster_vars") or {}) + list(case["host_vars"]["cp1"] if case.get("host_vars") else []))[0]
        for members, names in shared:
            if name not in names and len(members) < _PER_HOST:
                members.append(case)
                names.add(name)
                break
        else:
            shared.append(([case], {name}))
    slots.extend(("s%02d-" % index, members) for index, (members, _names) in enumerate(shared))
    return slots


def _batches():
    """(label, [(prefix, [case, ...])]) of the runs that share an inventory: two of host-level
    cases (one per core), one of GPU-mode cases (they fail in a later task)."""
    host_level = _slots([c for c in CASES if _batch(c) and c["kind"] != "mode"])
    modes = _slots([c for c in CASES if _batch(c) and c["kind"] == "mode"])
    half = (len(host_level) + 1) // 2
    return [("batch-a", host_level[:half]), ("batch-b", host_level[half:]), ("batch-modes", modes)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case run once: {case id: (run, host prefix)}."""
    tmp = tmp_path_factory.mktemp("preflight-cases")
    jobs = []
    for label, slots in _batches():
        inventory = _new_inventory()
        members = []
        for prefix, cases in slots:
            for case in cases:
                _add_case(inventory, case, tmp, prefix=prefix)
                members.append((case["id"], prefix))
        jobs.append((label, inventory, ["--skip-tags", "preflight_inventory"], members))
    for case in CASES:
        if _batch(case):
            continue
        inventory = _new_inventory()
        _add_case(inventory, case, tmp)
        args = list(case.get("extra_args") or [])
        if case.get("inventory_only"):
            args += ["--tags", "preflight_inventory"]
        jobs.append((case["id"], inventory, args, [(case["id"], "")]))
    found = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = dict((pool.submit(_run, tmp, label, inventory, args), members)
                       for label, inventory, args, members in jobs)
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            for case_id, prefix in futures[future]:
                found[case_id] = (result, prefix)
    return found


def _prefixed(text, case, prefix):
    for host in _hosts(case):
        text = re.sub(r"(?<![\w-])%s(?![\w-])" % re.escape(host), prefix + host, text)
    return text


@pytest.mark.parametrize("case_id", [c["id"] for c in CASES if _refused(c)])
def test_refused(runs, case_id):
    case = BY_ID[case_id]
    result, prefix = runs[case_id]
    tail = result["text"][-3000:]
    assert result["rc"] != 0, tail
    hosts = [prefix + h for h in _hosts(case)] if prefix else list(result["hosts"])
    failures = "\n".join(m for h in hosts for m in result["hosts"].get(h, {}).get("failed", []))
    for fragment in case["expect"]:
        fragment = _prefixed(fragment, case, prefix)
        assert fragment in failures, "missing %r in:\n%s" % (fragment, failures or tail)
    for fragment in list(case.get("absent") or []) + list(NEVER):
        assert fragment not in result["text"], fragment
    # Short messages: the failure is the heading and one line per problem, no spec dump.
    for message in failures.split("\n"):
        assert len(message) < 1200, message[:300]
    # Nothing was changed on any host.
    assert all(s.get("changed", 0) == 0 for s in result["stats"].values()), result["stats"]


@pytest.mark.parametrize("case_id", [c["id"] for c in CASES if not _refused(c)])
def test_valid_setup_passes(runs, case_id):
    case = BY_ID[case_id]
    result, _prefix = runs[case_id]
    assert result["rc"] == 0, json.dumps(result["hosts"], indent=1)[-4000:] + result["text"][-2000:]
    warnings = "\n".join(m for entry in result["hosts"].values() for m in entry["warnings"])
    for fragment in case.get("warn") or []:
        assert fragment in warnings, "missing %r in:\n%s" % (fragment, warnings)
    for fragment in list(case.get("absent") or []) + list(NEVER):
        assert fragment not in result["text"], fragment
    assert all(s.get("changed", 0) == 0 for s in result["stats"].values()), result["stats"]
