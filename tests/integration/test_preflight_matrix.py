# SPDX-License-Identifier: Apache-2.0
"""Preflight refuses bad inventories before any host is changed.

Each bad case runs the real playbooks/site.yml (preflight, then os_prereqs, ...)
against three shared systemd test hosts and asserts: the run fails, the message names
the host, the variable and the fix, the os_prereqs stage never started, and nothing
under /etc, /var/lib/apt or /var/lib/dpkg changed on any host. The cases are the
acceptance table tests/fixtures/preflight/cases.yml (those that need no GPU or cgroup
fixture and set no addresses of their own), grouped into runs as the unit runner
groups them (tests/fixtures/preflight/table.py), and a few written here that are about
the real hosts (their network, OS, memory). Good inventories pass
playbooks/preflight.yml with changed=0, and an unreachable host drops out without
stopping the others.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import itertools
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "preflight"))
import table  # noqa: E402  (tests/fixtures/preflight/table.py)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"m1": "kubegpu-pf-m1", "m2": "kubegpu-pf-m2", "m3": "kubegpu-pf-m3"}
MARKER = "/var/tmp/kubegpu-pf-marker"
SNAPSHOT = (
    "find /etc /var/lib/apt /var/lib/dpkg -xdev -type f -print0 | sort -z"
    " | xargs -0 md5sum; ls -la /etc/modules-load.d /etc/sysctl.d;"
    " echo NEWER; find /etc /var/lib/apt /var/lib/dpkg -xdev -newer " + MARKER + " -print"
)


def snapshot(docker_cli, container):
    out = docker_cli.exec(container, "sh", "-c", SNAPSHOT)
    files, newer = out.split("NEWER\n", 1)
    return hashlib.sha256(files.encode()).hexdigest(), newer.split()


@pytest.fixture(scope="module")
def fleet(systemd_hosts, docker_cli):
    """Three Debian 12 systemd hosts, a marker file, and their /etc snapshot."""
    for short, name in HOSTS.items():
        systemd_hosts(name, hostname=short)
        docker_cli.exec(name, "touch", "-d", "-1 second", MARKER)
    baseline = {name: snapshot(docker_cli, name) for name in HOSTS.values()}
    return {"baseline": baseline, "network": docker_cli.network(HOSTS["m1"])}


def inventory(tmp_path, control_planes=("cp1",), workers=("w1",), hosts=None,
              etcd=None, cluster_vars=None, extra_groups=None):
    """Write a kubespray-style inventory; hosts maps inventory name -> container."""
    hosts = hosts or {"cp1": HOSTS["m1"], "w1": HOSTS["m2"]}
    children = {}
    if control_planes is not None:
        children["kube_control_plane"] = {"hosts": {h: {"ansible_host": hosts[h]} for h in control_planes}}
    if workers is not None:
        children["kube_node"] = {"hosts": {h: {"ansible_host": hosts[h]} for h in workers}}
    if etcd is not None:
        children["etcd"] = {"hosts": {h: None for h in etcd}}
    cluster_children = {g: None for g in ("kube_control_plane", "kube_node") if g in children}
    children["k8s_cluster"] = {"children": cluster_children}
    if cluster_vars:
        children["k8s_cluster"]["vars"] = cluster_vars
    children.update(extra_groups or {})
    data = {"all": {"vars": {"ansible_connection": "community.docker.docker",
                             "kubegpu_pod_cidr": "192.168.0.0/16",
                             "kubegpu_service_cidr": "10.96.0.0/12"},
                    "children": children}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ev(**values):
    return ["-e", json.dumps(values)]


def assert_refused(result, fleet, docker_cli, fragments):
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    for fragment in fragments:
        assert fragment in out, "missing %r in:\n%s" % (fragment, out[-4000:])
    # site.yml stopped in stage 1: no os_prereqs task started on any host.
    assert "TASK [kubegpu.cluster.os_prereqs" not in out, out[-3000:]
    assert not re.search(r"changed=[1-9]", out), out[-3000:]
    for name, (digest, newer_at_start) in fleet["baseline"].items():
        now_digest, newer = snapshot(docker_cli, name)
        # The marker is dated a second back, so what systemd touched in the last
        # second of boot (e.g. /etc/mtab from systemd-tmpfiles) is newer from the
        # start: only what appeared since the baseline counts.
        appeared = sorted(set(newer) - set(newer_at_start))
        assert appeared == [], "%s: files changed by a refused run: %s" % (name, appeared)
        assert now_digest == digest, "%s: /etc, /var/lib/apt or /var/lib/dpkg changed" % name
        kubegpu_files = docker_cli.exec(name, "sh", "-c",
                                        "ls /etc/modules-load.d /etc/sysctl.d | grep -i kube || true")
        assert kubegpu_files.strip() == "", kubegpu_files


def case_missing_control_plane(tmp_path, fleet):
    return inventory(tmp_path, control_planes=None, workers=("w1",)), [], [
        "inventory: group kube_control_plane: missing or empty",
        "fix: list the control-plane host(s)"]


def case_even_control_planes(tmp_path, fleet):
    inv = inventory(tmp_path, control_planes=("cp1", "cp2"), workers=(),
                    hosts={"cp1": HOSTS["m1"], "cp2": HOSTS["m2"]}, etcd=("cp1", "cp2"))
    return inv, [], [
        "group kube_control_plane: has 2 hosts (cp1, cp2), an even number",
        "fix: use 1, 3 or 5 control planes",
        "inventory: group etcd: has 2 hosts (cp1, cp2)"]


def case_pod_service_overlap(tmp_path, fleet):
    return inventory(tmp_path), ev(kubegpu_pod_cidr="10.96.0.0/16"), [
        "host cp1: variable kubegpu_service_cidr: 10.96.0.0/12 overlaps kubegpu_pod_cidr 10.96.0.0/16",
        "host w1: variable kubegpu_service_cidr",
        "fix: choose non-overlapping ranges for kubegpu_pod_cidr and kubegpu_service_cidr"]


def case_pod_overlaps_host_network(tmp_path, fleet):
    return inventory(tmp_path), ev(kubegpu_pod_cidr="172.16.0.0/12"), [
        "host cp1: variable kubegpu_pod_cidr: 172.16.0.0/12 overlaps the host network %s on"
        " interface eth0" % fleet["network"],
        "fix: choose a range for kubegpu_pod_cidr that no host is attached to"]


def case_invalid_cidr(tmp_path, fleet):
    return inventory(tmp_path), ev(kubegpu_service_cidr="10.96.0.0/33"), [
        "host cp1: variable kubegpu_service_cidr: '10.96.0.0/33' is not a valid CIDR",
        "fix: set kubegpu_service_cidr to a network in CIDR notation"]


def case_wrong_type_cidr(tmp_path, fleet):
    # An int in the inventory: the arg spec (type str) would silently accept it.
    return inventory(tmp_path, cluster_vars={"kubegpu_pod_cidr": 12}), [], [
        "host cp1: variable kubegpu_pod_cidr: must be a string in CIDR notation, got int 12",
        "fix: set kubegpu_pod_cidr to a network in CIDR notation"]


def case_duplicate_host(tmp_path, fleet):
    inv = inventory(tmp_path, control_planes=("cp1",), workers=("w1", "w1-again"),
                    hosts={"cp1": HOSTS["m1"], "w1": HOSTS["m2"], "w1-again": HOSTS["m2"]})
    return inv, [], [
        "hosts w1, w1-again: ansible_host: the same address, one machine listed twice",
        "fix: list every machine once"]


def case_unsupported_os(tmp_path, fleet):
    return inventory(tmp_path), ev(preflight_supported_os={"Ubuntu": ["22.04", "24.04"]}), [
        "host cp1: variable preflight_supported_os: Debian 12",
        "is not a supported OS (supported: Ubuntu 22.04/24.04)",
        "fix: install a supported OS, or set preflight_allow_unsupported_os: true"]


def case_low_memory_and_bad_cidr(tmp_path, fleet):
    # Both problems of cp1 in ONE message; the worker is not held to control-plane minimums.
    return inventory(tmp_path), ev(preflight_min_memory_mb_control_plane=10 ** 8,
                                   kubegpu_pod_cidr="10.244.0.1/16"), [
        "host cp1 has 2 problem(s)",
        "host cp1: variable preflight_min_memory_mb_control_plane: control plane has",
        "fix: give the host more memory, or set preflight_resources_fatal: false",
        "host cp1: variable kubegpu_pod_cidr: '10.244.0.1/16' has host bits set",
        "host w1 has 1 problem(s)"]


CASES = [
    case_missing_control_plane,
    case_even_control_planes,
    case_pod_service_overlap,
    case_pod_overlaps_host_network,
    case_invalid_cidr,
    case_wrong_type_cidr,
    case_duplicate_host,
    case_unsupported_os,
    case_low_memory_and_bad_cidr,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[5:] for c in CASES])
def test_site_refuses_bad_inventory(case, tmp_path, fleet, docker_cli, ansible_playbook):
    inv, extra, fragments = case(tmp_path, fleet)
    result = ansible_playbook("playbooks/site.yml", inv, *extra)
    assert_refused(result, fleet, docker_cli, fragments)


# --- the acceptance table on the test hosts -------------------------------------------------

TABLE_CASES = [case for case in table.CASES if not case.get("needs")]
OS_PREREQS_TASK = re.compile(r"(^|\.)os_prereqs : ")


@pytest.fixture(scope="module")
def table_runs(fleet, tmp_path_factory, ansible_environment):
    """Every table case run once against the test hosts: {case id: (run, host prefix)}.

    The inventory hosts take the machines in turn (a case's hosts are on different
    machines when it has three at most); refused cases run site.yml, valid ones
    playbooks/preflight.yml (site.yml would go on to build the cluster)."""
    tmp = tmp_path_factory.mktemp("preflight-table")
    machines = itertools.cycle(sorted(HOSTS.values()))

    def host_vars(_case, _host, _name):
        return {"ansible_host": next(machines)}

    jobs = table.jobs(TABLE_CASES, host_vars, parts=2, ansible_connection="community.docker.docker")
    env = ansible_environment(ANSIBLE_FORKS="16")

    def run(label, inventory, args, members):
        path = tmp / ("%s.yml" % label)
        path.write_text(yaml.safe_dump(inventory, sort_keys=False), encoding="utf-8")
        playbook = "playbooks/site.yml" if table.refused(table.BY_ID[members[0][0]]) else "playbooks/preflight.yml"
        argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(path), playbook, *args]
        return table.run(argv, env, REPO)

    found = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        futures = dict((pool.submit(run, *job), job[3]) for job in jobs)
        for future in concurrent.futures.as_completed(futures):
            result = future.result()
            for case_id, prefix in futures[future]:
                found[case_id] = (result, prefix)
    return found


def test_table_covers_sixty_cases_here():
    assert len([case for case in TABLE_CASES if table.refused(case)]) >= 60


@pytest.mark.parametrize("case_id", [c["id"] for c in TABLE_CASES if table.refused(c)])
def test_table_case_refused_in_stage_one(table_runs, case_id):
    result, prefix = table_runs[case_id]
    table.assert_refused(result, table.BY_ID[case_id], prefix)
    started = [task for task in result["tasks"] if OS_PREREQS_TASK.search(task)]
    assert started == [], "site.yml went past stage 1: %s" % started[:3]


@pytest.mark.parametrize("case_id", [c["id"] for c in TABLE_CASES if not table.refused(c)])
def test_table_valid_setup_passes(table_runs, case_id):
    result, _prefix = table_runs[case_id]
    table.assert_passed(result, table.BY_ID[case_id])


def test_table_left_the_hosts_unchanged(table_runs, fleet, docker_cli):
    assert table_runs
    for name, (digest, newer_at_start) in fleet["baseline"].items():
        now_digest, newer = snapshot(docker_cli, name)
        assert sorted(set(newer) - set(newer_at_start)) == [], name
        assert now_digest == digest, "%s: /etc, /var/lib/apt or /var/lib/dpkg changed" % name


def test_good_inventory_passes_unchanged(tmp_path, fleet, docker_cli, ansible_playbook):
    result = ansible_playbook("playbooks/preflight.yml", inventory(tmp_path))
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    for host in ("cp1", "w1"):
        assert re.search(r"^%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0" % host, out, re.M), out[-2000:]
    for name, (digest, _unused) in fleet["baseline"].items():
        assert snapshot(docker_cli, name)[0] == digest


def test_unreachable_host_drops_out_alone(tmp_path, fleet, ansible_playbook):
    """An unreachable host is named in the recap; the reachable ones finish preflight."""
    inv = inventory(tmp_path, workers=("w1", "ghost"),
                    hosts={"cp1": HOSTS["m1"], "w1": HOSTS["m2"], "ghost": "unused"})
    data = yaml.safe_load(inv.read_text())
    data["all"]["children"]["kube_node"]["hosts"]["ghost"] = {
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    result = ansible_playbook("playbooks/preflight.yml", inv)
    out = result.stdout + result.stderr
    assert result.returncode == 4, out[-3000:]   # 4: some hosts unreachable
    assert re.search(r"^ghost\s+: ok=0\s+changed=0\s+unreachable=1\s+failed=0", out, re.M), out[-2000:]
    for host in ("cp1", "w1"):
        assert re.search(r"^%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0" % host, out, re.M), out[-2000:]
    # The reachable hosts went through the role's last task.
    assert re.search(r"Gather GPU facts with kubegpu.cluster.gpu_facts[^\]\n]*\] \*+\n(skipping|ok): \[(cp1|w1)\]", out), \
        out[-3000:]
