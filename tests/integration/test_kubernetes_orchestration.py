# SPDX-License-Identifier: Apache-2.0
"""Orchestration of the kubernetes role against RECORDING FAKES of kubeadm/kubectl.

tests/fakes/kubeadm and tests/fakes/kubectl (see tests/fakes/README.md) are installed
on three systemd test hosts (cp1, cp2: control planes; w1: worker). They record every
call in a directory shared by the hosts and print upstream-format outputs. This proves
the ordering, guards, retry and secret handling of playbooks/kubernetes.yml; it does NOT
prove that a real cluster comes up (docs/kubernetes.md says how to check that).

Asserts:
- kubeadm init runs exactly once, on the first control plane, and never again;
- certificates are uploaded before the control-plane join, cp2 joins before w1;
- w1's first join fails half-way (injected) and is reset and retried once;
- the join configuration is removed from the nodes after the joins;
- a second run joins nothing, creates no token and reports changed=0;
- no bootstrap token or certificate key appears in Ansible's output (run with -v),
  while they do reach the nodes (the fake's record of the join configuration).
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

# conftest.py's helpers are reached through its fixtures (fake_k8s_hosts starts the
# systemd hosts with the recording fakes; ansible_playbook runs the plays).
REPO = Path(__file__).resolve().parents[2]


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker_exec(container, *cmd, check=True):
    return docker("exec", container, *cmd, check=check).stdout


HOSTS = {"cp1": "kubegpu-k8s-cp1", "cp2": "kubegpu-k8s-cp2", "w1": "kubegpu-k8s-w1"}


@pytest.fixture(scope="module")
def fleet(fake_k8s_hosts):
    """Three systemd hosts with the recording fakes and their shared state."""
    state = fake_k8s_hosts(HOSTS)
    (state / "fail-join-w1").write_text("")  # w1's first join fails half-way
    return state


def _inventory(tmp_path):
    data = {"all": {
        "vars": {"ansible_connection": "community.docker.docker", "ansible_become": False,
                 "kubernetes_package_source": "none",  # test-only: the fakes stand in for the packages
                 "kubernetes_control_plane_endpoint": "cp1:6443",
                 "kubernetes_admin_user": "root",
                 "kubernetes_kubeadm_bin": "/usr/local/bin/kubeadm",
                 "kubernetes_kubectl_bin": "/usr/local/bin/kubectl"},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]},
                                             "cp2": {"ansible_host": HOSTS["cp2"]}}},
            "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]}}},
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
        }}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


# The kubernetes role needs no GPU facts; a small fact subset keeps the run short on
# busy 2-core CI machines.
FAST_FACTS = {"ANSIBLE_FACTS_MODULES": "ansible.builtin.setup", "ANSIBLE_GATHER_SUBSET": "!all,!min,distribution",
              "ANSIBLE_GATHER_TIMEOUT": "120"}


def _calls(state):
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines() if line.strip()]


def _kubeadm_calls(calls):
    return [(c["host"], c["argv"]) for c in calls if c["argv"][:1] != ["kubectl"]]


def _index(calls, host, prefix):
    for index, (h, argv) in enumerate(calls):
        if h == host and argv[:len(prefix)] == prefix:
            return index
    raise AssertionError("no %s %s call in %s" % (host, prefix, calls))


def _recap(output):
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}


def _secrets(state):
    found = []
    for name in ("tokens", "certificate-keys"):
        path = state / name
        if path.exists():
            found += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return found


def test_init_join_rerun_and_secrets(fleet, tmp_path, ansible_playbook):
    state = fleet
    run_playbook = ansible_playbook
    inventory = _inventory(tmp_path)

    first = run_playbook("playbooks/kubernetes.yml", inventory, "-v", timeout=240, **FAST_FACTS)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-6000:]

    calls = _kubeadm_calls(_calls(state))
    inits = [(h, a) for h, a in calls if a[:1] == ["init"] and "phase" not in a]
    assert inits == [("cp1", ["init", "--config", "/etc/kubernetes/kubegpu/kubeadm-init.yaml"])]
    # order: init, token, upload-certs, cp2 join, then w1 (fails, reset, retried)
    order = [_index(calls, "cp1", ["init", "--config"]),
             _index(calls, "cp1", ["token", "create"]),
             _index(calls, "cp1", ["init", "phase", "upload-certs"]),
             _index(calls, "cp2", ["join"]),
             _index(calls, "w1", ["join"])]
    assert order == sorted(order), calls
    w1 = [a[0] for h, a in calls if h == "w1"]
    assert w1 == ["join", "reset", "join"]
    token_create = calls[_index(calls, "cp1", ["token", "create"])][1]
    assert token_create[token_create.index("--ttl") + 1] == "15m"

    # secrets: in the join configurations the nodes received, never in Ansible's output
    secrets = _secrets(state)
    assert len(secrets) == 2  # one token, one certificate key
    joins = [c.get("config", "") for c in _calls(state) if c["argv"][:1] == ["join"]]
    assert all(secrets[0] in text for text in joins)
    assert secrets[1] in [c for c in joins if "controlPlane:" in c][0]
    for secret in secrets:
        assert secret not in output

    for host in HOSTS.values():
        assert docker("exec", host, "test", "-e", "/etc/kubernetes/kubegpu/kubeadm-join.yaml",
                      check=False).returncode == 1
    for host in ("kubegpu-k8s-cp1", "kubegpu-k8s-cp2"):
        assert docker_exec(host, "stat", "-c", "%a %U", "/root/.kube/config").strip() == "600 root"
    assert docker_exec("kubegpu-k8s-cp1", "stat", "-c", "%a", "/etc/kubernetes/kubegpu/kubeadm-init.yaml").strip() == "600"

    # second run: nothing to join, nothing changed
    before = len(_calls(state))
    second = run_playbook("playbooks/kubernetes.yml", inventory, "-v", timeout=240, **FAST_FACTS)
    output2 = second.stdout + second.stderr
    assert second.returncode == 0, output2[-6000:]
    new = [(c["host"], c["argv"]) for c in _calls(state)[before:]]
    assert all(argv[:3] == ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"] for _h, argv in new), new
    assert "Nothing to join." in output2
    recap = _recap(output2)
    assert set(recap) == set(HOSTS), output2[-3000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    for secret in _secrets(state):
        assert secret not in output2
