# SPDX-License-Identifier: Apache-2.0
"""Day-2 orchestration (add_node, upgrade_driver) against RECORDING FAKES of kubeadm/kubectl.

tests/fakes/ (see its README) stand in for kubeadm and kubectl on three systemd test
hosts: cp1 (the first control plane, cluster "initialised" by the fake), w1 (an existing
worker) and gpu2 (a new host, pinned as GPU node by the gpu group). This proves the
ORDER of the day-2 playbooks and what they leave alone; it proves nothing about a real
cluster (no kubelet, no device plugin, no GPU).

For speed the package stages are skipped by tag (preflight, os_prereqs, nvidia_driver,
container_runtime): these tests are about ordering. The driver upgrade itself is the
nvidia_driver role, tested on its own.

- add_node --limit gpu2: gpu2 is cordoned (and marked kubegpu.io/add-node=pending)
  before labels, the smoke Job and the uncordon; the cordon comes from the watcher on
  cp1 right after gpu2's join; the existing nodes cp1 and w1 get no cordon, drain,
  label, Job or uncordon, and no kubeadm call runs on w1;
- upgrade_driver (gpu group: w1, gpu2), serial 1: per node cordon -> drain -> smoke Job
  -> uncordon, w1 entirely before gpu2; drain flags as documented;
- upgrade_driver with a failing smoke Job on w1: w1 stays cordoned, the run fails with
  w1's name and the reason, and gpu2 gets no call at all.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"cp1": "kubegpu-d2-cp1", "w1": "kubegpu-d2-w1", "gpu2": "kubegpu-d2-gpu2"}
KUBECTL = "/usr/local/bin/kubectl"
FAST_FACTS = {"ANSIBLE_FACTS_MODULES": "ansible.builtin.setup", "ANSIBLE_GATHER_SUBSET": "!all,!min,distribution",
              "ANSIBLE_GATHER_TIMEOUT": "120"}
SKIP = "preflight,os_prereqs,nvidia_driver,container_runtime"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def fleet(fake_k8s_hosts):
    """cp1 initialised and w1 joined (fake state, no playbook); gpu2 is the new host."""
    state = fake_k8s_hosts(HOSTS)
    docker("exec", HOSTS["cp1"], "sh", "-c",
           "mkdir -p /etc/kubernetes/kubegpu && printf 'name: cp1\\n' > /tmp/init.yaml"
           " && /usr/local/bin/kubeadm init --config /tmp/init.yaml")
    docker("exec", HOSTS["w1"], "sh", "-c", "mkdir -p /etc/kubernetes && echo '# fake' > /etc/kubernetes/kubelet.conf")
    with (state / "nodes").open("a") as stream:
        stream.write("w1\n")
    (state / "calls.jsonl").write_text("")
    return state


def _inventory(tmp_path, gpu_hosts):
    tools = {"kubernetes_kubectl_bin": KUBECTL, "kubernetes_kubeadm_bin": "/usr/local/bin/kubeadm",
             "validate_kubectl_bin": KUBECTL, "gpu_node_labels_kubectl_bin": KUBECTL}
    data = {"all": {
        "vars": {"ansible_connection": "community.docker.docker", "ansible_become": False,
                 "kubernetes_package_source": "none",  # test-only: the fakes stand in for the packages
                 "kubernetes_admin_user": "root", "validate_job_timeout": 10,
                 "add_node_ready_timeout": 20, "upgrade_driver_ready_timeout": 20,
                 # The fake hosts run no containerd: declare the handlers stage 4 publishes
                 # (docs/contracts.md), nvidia as the default runtime, as stage 4 makes it.
                 "container_runtime_cri_handlers": {"default": "nvidia", "names": ["nvidia", "runc"]},
                 **tools},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]}}},
            "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]}, "gpu2": {"ansible_host": HOSTS["gpu2"]}}},
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
            "gpu": {"hosts": {h: {} for h in gpu_hosts}},
        }}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # w1 before gpu2
    return path


def _calls(state):
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines() if line.strip()]


def _kubectl_verbs(calls):
    """(verb, node) for node-targeted kubectl calls, in order; Jobs mapped to their node."""
    out = []
    for call in calls:
        argv = call["argv"]
        if argv[:1] != ["kubectl"]:
            continue
        args = argv[1:]
        if "--kubeconfig" in args:
            index = args.index("--kubeconfig")
            del args[index:index + 2]
        if args[:1] in (["cordon"], ["uncordon"], ["drain"]):
            out.append((args[0], args[1]))
        elif args[:2] in (["annotate", "node"], ["patch", "node"]):
            out.append((args[0], args[2]))
        elif args[:2] == ["create", "-f"]:
            out.append(("job", re.search(r"nvidia-smi-(.+)\.yaml$", args[2]).group(1)))
    return out


def _first(verbs, verb, node):
    return verbs.index((verb, node))


def _node_state(state):
    path = state / "node-state.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _run(ansible_playbook, playbook, inventory, *args, timeout=200):
    result = ansible_playbook(playbook, inventory, "--skip-tags", SKIP, *args, timeout=timeout, **FAST_FACTS)
    return result, result.stdout + result.stderr


def test_add_node_cordons_first_and_leaves_existing_nodes(fleet, tmp_path, ansible_playbook):
    state = fleet
    inventory = _inventory(tmp_path, gpu_hosts=["gpu2"])
    result, output = _run(ansible_playbook, "playbooks/add_node.yml", inventory, "--limit", "gpu2")
    assert result.returncode == 0, output[-6000:]

    calls = _calls(state)
    verbs = _kubectl_verbs(calls)
    # gpu2: joined, cordoned (by the watcher on cp1) before labels, the Job and the uncordon
    join = next(i for i, c in enumerate(calls) if c["host"] == "gpu2" and c["argv"][:1] == ["join"])
    cordon = next(i for i, c in enumerate(calls) if c["argv"][1:2] == ["--kubeconfig"] and c["argv"][3:5] == ["cordon", "gpu2"])
    assert calls[cordon]["host"] == "cp1"
    assert join < cordon
    order = [_first(verbs, "cordon", "gpu2"), _first(verbs, "annotate", "gpu2"), _first(verbs, "patch", "gpu2"),
             _first(verbs, "job", "gpu2"), _first(verbs, "uncordon", "gpu2")]
    assert order == sorted(order), verbs
    # nothing non-DaemonSet may stay: drain runs while cordoned, before the labels
    assert _first(verbs, "cordon", "gpu2") < _first(verbs, "drain", "gpu2") < _first(verbs, "patch", "gpu2")
    # existing nodes untouched: no node-level kubectl verb, no kubeadm on them, no Ansible task on w1
    assert [v for v in verbs if v[1] in ("cp1", "w1")] == []
    assert [c for c in calls if c["host"] == "w1"] == []
    assert [c["argv"][:2] for c in calls if c["host"] == "cp1" and c["argv"][:1] != ["kubectl"]] == [["token", "create"]]
    assert not re.search(r"^w1\s+:", output.split("PLAY RECAP")[-1], re.M)  # w1 is not even in the recap
    node = _node_state(state)["gpu2"]
    assert not node.get("unschedulable") and "kubegpu.io/add-node" not in node.get("annotations", {})
    assert node.get("labels"), "gpu_node_labels did not patch gpu2"

    # a second run finds gpu2 in the cluster and schedulable: nothing to add, no node touched
    (state / "calls.jsonl").write_text("")
    again, output = _run(ansible_playbook, "playbooks/add_node.yml", inventory, "--limit", "gpu2")
    assert again.returncode == 0, output[-6000:]
    assert _kubectl_verbs(_calls(state)) == []
    assert "Adding nothing" in output


def test_upgrade_driver_rolls_one_node_at_a_time_and_stops_on_failure(fleet, tmp_path, ansible_playbook):
    state = fleet
    if "gpu2" not in (state / "nodes").read_text():
        pytest.skip("needs gpu2 joined by the add_node test")
    inventory = _inventory(tmp_path, gpu_hosts=["w1", "gpu2"])

    (state / "calls.jsonl").write_text("")
    result, output = _run(ansible_playbook, "playbooks/upgrade_driver.yml", inventory)
    assert result.returncode == 0, output[-6000:]
    calls = _calls(state)
    verbs = [v for v in _kubectl_verbs(calls) if v[0] in ("cordon", "drain", "job", "uncordon")]
    assert verbs == [("cordon", "w1"), ("drain", "w1"), ("job", "w1"), ("uncordon", "w1"),
                     ("cordon", "gpu2"), ("drain", "gpu2"), ("job", "gpu2"), ("uncordon", "gpu2")]
    drain = next(c["argv"] for c in calls if "drain" in c["argv"])
    assert {"--ignore-daemonsets", "--delete-emptydir-data", "--timeout=600s", "--grace-period=-1"} <= set(drain)
    assert "--disable-eviction" not in drain and "--force" not in drain
    assert all(not n.get("unschedulable") for n in _node_state(state).values())

    # smoke Job fails on w1: w1 stays cordoned, gpu2 is not touched, the message says why
    (state / "calls.jsonl").write_text("")
    (state / "fail-job-w1").write_text("")
    try:
        failed, output = _run(ansible_playbook, "playbooks/upgrade_driver.yml", inventory)
    finally:
        (state / "fail-job-w1").unlink()
    assert failed.returncode != 0
    calls = _calls(state)
    verbs = [v for v in _kubectl_verbs(calls) if v[0] in ("cordon", "drain", "job", "uncordon")]
    assert verbs == [("cordon", "w1"), ("drain", "w1"), ("job", "w1")]
    assert not [c for c in calls if "gpu2" in json.dumps(c["argv"]) or c["host"] == "gpu2"]
    assert _node_state(state)["w1"].get("unschedulable") is True
    assert not _node_state(state)["gpu2"].get("unschedulable")
    message = re.search(r"upgrade_driver stopped at node w1 .*", output)
    assert message, output[-4000:]
    assert "stays cordoned" in output and "nvidia-smi Job failed" in output


def test_nfs_client_fstab_for_real(fleet, tmp_path, ansible_playbook):
    """nfs_client on a real test host, fstab only (state: present): this kernel has no nfs
    file system (no modules, /proc/filesystems lacks nfs/nfsd), so neither an NFS server
    nor a real mount can run here (docs/day2.md). Packages, mount point, the fstab line and
    idempotence are real; removal (state: absent) too."""
    inventory = _inventory(tmp_path, gpu_hosts=[])
    mounts = [{"src": "nas.example.com:/models", "path": "/mnt/models", "state": "present",
               "opts": "vers=4.1,ro,hard,_netdev"}]
    extra = ["--limit", "w1", "-e", json.dumps({"nfs_client_mounts": mounts})]
    first = ansible_playbook("playbooks/nfs_client.yml", inventory, *extra, timeout=300, **FAST_FACTS)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    fstab = docker("exec", HOSTS["w1"], "cat", "/etc/fstab").stdout
    assert "nas.example.com:/models /mnt/models nfs vers=4.1,ro,hard,_netdev 0 0" in fstab
    assert docker("exec", HOSTS["w1"], "dpkg-query", "-W", "-f", "${Status}", "nfs-common").stdout == \
        "install ok installed"
    assert docker("exec", HOSTS["w1"], "test", "-d", "/mnt/models", check=False).returncode == 0
    again = ansible_playbook("playbooks/nfs_client.yml", inventory, *extra, timeout=300, **FAST_FACTS)
    assert re.search(r"^w1\s+:.*changed=0", again.stdout, re.M), again.stdout[-3000:]
    mounts[0]["state"] = "absent"
    gone = ansible_playbook("playbooks/nfs_client.yml", inventory, "--limit", "w1", "-e",
                            json.dumps({"nfs_client_mounts": mounts}), timeout=300, **FAST_FACTS)
    assert gone.returncode == 0, (gone.stdout + gone.stderr)[-4000:]
    assert "nas.example.com:/models" not in docker("exec", HOSTS["w1"], "cat", "/etc/fstab").stdout
