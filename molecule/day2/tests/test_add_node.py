# SPDX-License-Identifier: Apache-2.0
"""Verify of the day2 scenario: what add_node did, asked of the SIMULATED cluster.

cp1 runs the simulated API server (tests/sim/README.md); the REAL kubectl on cp1 answers
for the end state, and the API server's audit log (one audit.k8s.io/v1 Event per write,
in the order the server handled them; prepare.yml switched it on and emptied it after
the set-up) for what happened during converge AND idempotence. So each "once" also says
that the second run changed nothing in the cluster. Proves the playbook's behaviour
against the simulation only: no real kubelet, scheduler, device plugin or GPU.
"""

from __future__ import annotations

import json
import subprocess

import pytest

CP1 = "kubegpu-day2-cp1"
W1 = "kubegpu-day2-w1"
EXISTING = ("cp1", "w1")
ADMIN = "kubernetes-admin"  # admin.conf's client certificate (kubeadm init)
AUDIT_LOG = "/var/log/kubegpu-sim/audit.log"


def _exec(container, *cmd):
    return subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def _kubectl_json(*args):
    return json.loads(_exec(CP1, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", *args, "-o", "json"))


@pytest.fixture(scope="module")
def events():
    return [json.loads(line) for line in _exec(CP1, "cat", AUDIT_LOG).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def nodes():
    return {n["metadata"]["name"]: n for n in _kubectl_json("get", "nodes")["items"]}


def _ref(event):
    return event["objectRef"]


def _is(event, resource, name=None, sub=None, verb=None, user=None):
    ref = _ref(event)
    return (ref.get("resource") == resource and (name is None or ref.get("name") == name)
            and ref.get("subresource") == sub and (verb is None or event["verb"] == verb)
            and (user is None or event["user"]["username"] == user)
            and event["responseStatus"]["code"] < 300 and "annotations" not in event)  # dry runs aside


def _node_change(event):
    """What an admin's write to a Node did: cordon, uncordon, mark, unmark, label, other."""
    body = event.get("requestObject") or {}
    spec, meta = body.get("spec") or {}, body.get("metadata") or {}
    if "unschedulable" in spec:
        return "cordon" if spec["unschedulable"] else "uncordon"
    annotations = meta.get("annotations") or {}
    if "kubegpu.io/add-node" in annotations:
        return "mark" if annotations["kubegpu.io/add-node"] == "pending" else "unmark"
    if meta.get("labels"):
        return "label"
    return "other"


def _timeline(events, node):
    """(index, what) of the writes about `node`, in the API server's order."""
    out = []
    for index, event in enumerate(events):
        if _is(event, "nodes", node, verb="create"):
            out.append((index, "registered"))
        elif _is(event, "nodes", node, user=ADMIN) and event["verb"] in ("patch", "update"):
            out.append((index, _node_change(event)))
        elif _is(event, "jobs", verb="create", user=ADMIN):
            selector = (((event.get("requestObject") or {}).get("spec") or {}).get("template") or {}).get(
                "spec", {}).get("nodeSelector") or {}
            if selector.get("kubernetes.io/hostname") == node:
                out.append((index, "job"))
        elif _is(event, "pods", sub="binding", verb="create"):
            if ((event.get("requestObject") or {}).get("target") or {}).get("name") == node:
                out.append((index, "bind:" + _ref(event)["name"]))
    return out


def _first(timeline, what):
    found = [index for index, w in timeline if w == what]
    assert found, "no %s in %s" % (what, [w for _i, w in timeline])
    return found[0]


def test_gpu2_is_ready_schedulable_labelled_with_its_gpu(nodes):
    gpu2 = nodes["gpu2"]
    ready = {c["type"]: c["status"] for c in gpu2["status"]["conditions"]}
    assert ready.get("Ready") == "True", gpu2["status"]["conditions"]
    assert not gpu2["spec"].get("unschedulable")
    assert not [t for t in gpu2["spec"].get("taints") or [] if t["key"] == "node.kubernetes.io/unschedulable"]
    assert "kubegpu.io/add-node" not in (gpu2["metadata"].get("annotations") or {})
    assert gpu2["metadata"]["labels"].get("nvidia.com/gpu.present") == "true", "gpu_node_labels did not label gpu2"
    # the simulated device plugin advertises the simulated H100 once the driver is installed
    assert gpu2["status"]["allocatable"].get("nvidia.com/gpu") == "1", gpu2["status"]["allocatable"]
    for name in EXISTING:
        assert not nodes[name]["spec"].get("unschedulable"), name


def test_gpu2_validate_job_succeeded_once():
    jobs = [j for j in _kubectl_json("get", "jobs", "-A", "-l", "app.kubernetes.io/name=kubegpu-validate")["items"]
            if j["spec"]["template"]["spec"].get("nodeSelector", {}).get("kubernetes.io/hostname") == "gpu2"]
    assert jobs, "no validate Job for gpu2"
    assert all((j.get("status") or {}).get("succeeded", 0) >= 1 for j in jobs), [j.get("status") for j in jobs]


def test_gpu2_joined_once_and_cordoned_from_registration_until_validated(events):
    timeline = _timeline(events, "gpu2")
    whats = [w for _i, w in timeline]
    assert whats.count("registered") == 1, "one join over both runs"
    csrs = [e for e in events if _is(e, "certificatesigningrequests", verb="create")]
    assert len(csrs) == 1 and csrs[0]["user"]["username"].startswith("system:bootstrap:"), csrs
    tokens = [e for e in events if _is(e, "secrets", verb="create") and _ref(e).get("namespace") == "kube-system"]
    assert len(tokens) == 1 and tokens[0]["user"]["username"] == ADMIN, "one join token, made on cp1"
    registered, cordon = _first(timeline, "registered"), _first(timeline, "cordon")
    order = [registered, cordon, _first(timeline, "mark"), _first(timeline, "label"),
             _first(timeline, "job"), _first(timeline, "uncordon"), _first(timeline, "unmark")]
    assert order == sorted(order), whats
    for what in ("cordon", "mark", "job", "uncordon", "unmark"):
        assert whats.count(what) == 1, (what, whats)  # the idempotence run touched nothing
    # nothing but DaemonSet pods was bound to gpu2 before it was cordoned
    pods = {p["metadata"]["name"]: p for p in _kubectl_json("get", "pods", "-A")["items"]}
    early = [w[5:] for i, w in timeline if w.startswith("bind:") and i < cordon]
    for name in early:
        owners = (pods.get(name, {}).get("metadata") or {}).get("ownerReferences") or []
        assert [o for o in owners if o["kind"] == "DaemonSet"], "pod %s landed on gpu2 before the cordon" % name


def test_existing_nodes_untouched(events):
    # no write to the cp1/w1 Node objects but their own kubelets' (the admin never cordoned,
    # labelled, annotated or uncordoned them), no eviction of their pods
    for name in EXISTING:
        writers = {e["user"]["username"] for e in events
                   if _ref(e).get("resource") == "nodes" and _ref(e).get("name") == name}
        assert writers <= {"system:node:%s" % name}, (name, writers)
    on_existing = {p["metadata"]["name"] for p in _kubectl_json("get", "pods", "-A")["items"]
                   if p["spec"].get("nodeName") in EXISTING}
    evicted = [_ref(e)["name"] for e in events if _is(e, "pods", sub="eviction", verb="create")]
    assert not set(evicted) & on_existing, evicted
    # w1: no kubeadm or kubelet file changed since the cluster was set up
    now = _exec(W1, "bash", "-c", "find /etc/kubernetes /var/lib/kubelet -type f -print0 | sort -z | xargs -0 md5sum")
    assert now == _exec(W1, "cat", "/root/day2-prepared.md5")
