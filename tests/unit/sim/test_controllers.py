# SPDX-License-Identifier: Apache-2.0
"""Controller loops of the simulated kube-controller-manager + scheduler
(tests/sim/kubegpu_sim/controller_manager.py) against the in-memory FakeApi."""
from __future__ import annotations

import base64
import datetime
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from fake_api import FakeApi  # noqa: E402
from kubegpu_sim import controller_manager as cm  # noqa: E402
from kubegpu_sim import controllers_rules as rules  # noqa: E402

T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def tick(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)


@pytest.fixture
def env():
    clock = Clock()
    api = FakeApi(now_text=lambda: rules.now_rfc3339(clock.now))
    lines = []
    manager = cm.ControllerManager(api, cluster_cidr="10.244.0.0/16", allocate_node_cidrs=True,
                                   clock=clock, logger=lines.append)
    return api, manager, clock, lines


def add_node(api, name, gpus=None, taints=None, ready="True", labels=None):
    allocatable = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    api.add("nodes", {"metadata": {"name": name, "labels": dict(labels or {}, **{"kubernetes.io/hostname": name})},
                      "spec": {"taints": taints or []},
                      "status": {"allocatable": allocatable, "conditions": [
                          {"type": "Ready", "status": ready, "lastHeartbeatTime": api.now_text()}]}})
    api.add("leases", {"metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": {"renewTime": api.now_text()}})


def three_nodes(api):
    add_node(api, "cp1", taints=[CP_TAINT])
    add_node(api, "gpu1", gpus=1)
    add_node(api, "cpu1")


def kubelet(api, phase="Running", ready=True, only=None):
    """What the kubelet would do: run bound pods, report Ready."""
    for pod in api.objects("pods"):
        if not pod["spec"].get("nodeName") or (only and pod["metadata"]["name"] not in only):
            continue
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        pod["status"]["phase"] = phase
        status = "True" if ready and phase == "Running" else "False"
        pod["status"]["conditions"] = [c for c in pod["status"].get("conditions") or [] if c["type"] != "Ready"] + [
            {"type": "Ready", "status": status, "lastTransitionTime": api.now_text()}]


def sync(manager, passes=1):
    for _unused in range(passes):
        manager.sync_once()


# -- scheduler ----------------------------------------------------------------------------
def test_scheduler_binds_gpu_pod_and_reports_unschedulable(env):
    api, manager, _clock, lines = env
    three_nodes(api)
    gpu_pod = {"metadata": {"name": "smoke", "namespace": "default"},
               "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
               "status": {"phase": "Pending"}}
    api.add("pods", gpu_pod)
    sync(manager)
    assert api.obj("pods", "smoke", "default")["spec"]["nodeName"] == "gpu1"
    assert any("bound default/smoke to gpu1" in line for line in lines)
    api.add("pods", dict(gpu_pod, metadata={"name": "second", "namespace": "default"}))
    sync(manager)
    second = api.obj("pods", "second", "default")
    assert "nodeName" not in second["spec"]
    cond = rules.condition(second, "PodScheduled")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"].startswith("0/3 nodes are available: 1 node(s) had untolerated taint(s), "
                                      "2 Insufficient nvidia.com/gpu.")
    writes = len([c for c in api.calls if c[0] == "PATCH"])
    sync(manager)
    assert len([c for c in api.calls if c[0] == "PATCH"]) == writes  # same message: no new write


def test_scheduler_ignores_other_schedulers_and_bound_pods(env):
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("pods", {"metadata": {"name": "other", "namespace": "default"},
                     "spec": {"schedulerName": "volcano", "containers": [{"name": "c"}]}, "status": {}})
    sync(manager)
    assert "nodeName" not in api.obj("pods", "other", "default")["spec"]


# -- node lifecycle + IPAM ----------------------------------------------------------------
def test_node_lifecycle_taints_and_unreachable(env):
    api, manager, clock, lines = env
    add_node(api, "gpu1", ready="False")
    sync(manager)
    node = api.obj("nodes", "gpu1")
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")}
    assert node["spec"]["podCIDR"] == "10.244.0.0/24" and node["spec"]["podCIDRs"] == ["10.244.0.0/24"]
    # kubelet reports Ready and renews its lease
    node["status"]["conditions"][0].update(status="True", lastHeartbeatTime=api.now_text())
    sync(manager)
    assert not api.obj("nodes", "gpu1")["spec"].get("taints")
    # the kubelet stops: after the grace period Ready turns Unknown, unreachable taints
    clock.tick(41)
    sync(manager)
    node = api.obj("nodes", "gpu1")
    ready = rules.condition(node, "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert ("node.kubernetes.io/unreachable", "NoSchedule") in {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
    # a second node gets the next /24
    add_node(api, "cpu1")
    sync(manager)
    assert api.obj("nodes", "cpu1")["spec"]["podCIDR"] == "10.244.1.0/24"


def test_node_lifecycle_taint_write_does_not_drop_a_taint_added_since_its_read(env):
    """kubeadm's mark-control-plane adds the control-plane taint between the controller's read
    and its write: the write carries the read's resourceVersion, is a conflict, and is done
    again on the node read afresh (controller_utils.go PatchNodeTaints, RetryOnConflict)."""
    api, manager, _clock, lines = env
    add_node(api, "cp1", ready="False")
    manager.refresh()                                   # the controller's read: no taint yet
    api.merge_patch("/api/v1/nodes/cp1", {"spec": {"taints": [CP_TAINT]}})   # kubeadm, since
    manager.sync_node_lifecycle()
    taints = {(t["key"], t["effect"]) for t in api.obj("nodes", "cp1")["spec"]["taints"]}
    assert taints == {(CP_TAINT["key"], "NoSchedule"), ("node.kubernetes.io/not-ready", "NoSchedule"),
                      ("node.kubernetes.io/not-ready", "NoExecute")}
    patches = [c for c in api.calls if c[0] == "PATCH" and c[1] == "/api/v1/nodes/cp1"][1:]
    assert len(patches) == 2 and all(p[2]["metadata"]["resourceVersion"] for p in patches)
    # Ready again, read; then a cordon: the write made from the read is a conflict, the one
    # made from the node read again has the cordon's taint
    api.merge_patch("/api/v1/nodes/cp1/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastHeartbeatTime": api.now_text()}]}})
    manager.refresh()
    api.merge_patch("/api/v1/nodes/cp1", {"spec": {"unschedulable": True}})
    manager.sync_node_lifecycle()
    node = api.obj("nodes", "cp1")
    assert node["spec"]["unschedulable"] is True
    assert {(t["key"], t["effect"]) for t in node["spec"]["taints"]} == {
        (CP_TAINT["key"], "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")}
    assert any("taints now" in line for line in lines)


# -- DaemonSet ----------------------------------------------------------------------------
def daemonset(image="plugin:1", tolerations=None, strategy=None):
    spec = {"containers": [{"name": "c", "image": image}]}
    if tolerations:
        spec["tolerations"] = tolerations
    ds = {"metadata": {"name": "plugin", "namespace": "kube-system"},
          "spec": {"selector": {"matchLabels": {"app": "plugin"}},
                   "template": {"metadata": {"labels": {"app": "plugin"}}, "spec": spec}}}
    if strategy:
        ds["spec"]["updateStrategy"] = strategy
    return ds


def test_daemonset_pods_status_and_rolling_update(env):
    api, manager, _clock, _lines = env
    three_nodes(api)
    api.add("daemonsets", daemonset())
    sync(manager)
    pods = api.objects("pods", "kube-system")
    assert len(pods) == 2  # cp1 has an untolerated NoSchedule taint
    for pod in pods:
        assert pod["metadata"]["labels"]["app"] == "plugin"
        assert pod["metadata"]["labels"]["controller-revision-hash"]
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["controller"]) == ("DaemonSet", True)
        term = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
        assert term["matchFields"][0]["values"][0] == pod["spec"]["nodeName"]  # bound by the scheduler
        assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"} in pod["spec"]["tolerations"]
    assert len(api.objects("controllerrevisions", "kube-system")) == 1
    kubelet(api)
    sync(manager)
    status = api.obj("daemonsets", "plugin", "kube-system")["status"]
    assert status == {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberMisscheduled": 0,
                      "numberReady": 2, "numberAvailable": 2, "updatedNumberScheduled": 2, "observedGeneration": 1}
    # template change: one pod at a time (maxUnavailable 1)
    api.merge_patch("/apis/apps/v1/namespaces/kube-system/daemonsets/plugin",
                    {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "plugin:2"}]}}}})
    sync(manager)
    images = sorted(p["spec"]["containers"][0]["image"] for p in api.objects("pods", "kube-system"))
    assert images == ["plugin:1", "plugin:2"] or images == ["plugin:1"]
    for _unused in range(4):
        kubelet(api)
        sync(manager)
    pods = api.objects("pods", "kube-system")
    assert sorted(p["spec"]["containers"][0]["image"] for p in pods) == ["plugin:2", "plugin:2"]
    status = api.obj("daemonsets", "plugin", "kube-system")["status"]
    assert status["updatedNumberScheduled"] == 2 and status["numberAvailable"] == 2
    assert status["observedGeneration"] == 2
    assert len(api.objects("controllerrevisions", "kube-system")) == 2


def test_daemonset_tolerating_everything_runs_on_control_plane_and_leaves_ineligible_nodes(env):
    api, manager, _clock, _lines = env
    three_nodes(api)
    api.add("daemonsets", daemonset(tolerations=[{"operator": "Exists"}]))
    sync(manager)
    assert sorted(p["spec"]["nodeName"] for p in api.objects("pods", "kube-system")) == ["cp1", "cpu1", "gpu1"]
    # a NoExecute taint the pod does not tolerate removes it
    api.merge_patch("/apis/apps/v1/namespaces/kube-system/daemonsets/plugin",
                    {"spec": {"template": {"spec": {"tolerations": None, "nodeSelector": {"gpu": "yes"}}}}})
    sync(manager, 2)
    assert api.objects("pods", "kube-system") == []
    assert api.obj("daemonsets", "plugin", "kube-system")["status"]["desiredNumberScheduled"] == 0


def test_daemonset_on_delete_keeps_old_pods(env):
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("daemonsets", daemonset(strategy={"type": "OnDelete"}))
    sync(manager)
    api.merge_patch("/apis/apps/v1/namespaces/kube-system/daemonsets/plugin",
                    {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "plugin:2"}]}}}})
    kubelet(api)
    sync(manager, 2)
    assert [p["spec"]["containers"][0]["image"] for p in api.objects("pods", "kube-system")] == ["plugin:1"]
    assert api.obj("daemonsets", "plugin", "kube-system")["status"]["updatedNumberScheduled"] == 0


def test_daemonset_waits_for_a_terminating_pod_and_counts_it(env):
    """podsShouldBeOnNode: a node whose daemon pod is being deleted gets no new one until it
    is gone; updateDaemonSetStatus counts the terminating pod (getNodesToDaemonPods keeps it)."""
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("daemonsets", daemonset(strategy={"type": "OnDelete"}))
    sync(manager)
    kubelet(api)
    sync(manager)
    [pod] = api.objects("pods", "kube-system")
    pod["metadata"]["finalizers"] = ["kubegpu.test/hold"]      # the kubelet has not confirmed the deletion yet
    api.delete("/api/v1/namespaces/kube-system/pods/" + pod["metadata"]["name"])
    sync(manager, 2)
    assert [p["metadata"]["name"] for p in api.objects("pods", "kube-system")] == [pod["metadata"]["name"]]
    status = api.obj("daemonsets", "plugin", "kube-system")["status"]
    assert (status["currentNumberScheduled"], status["numberReady"], status["updatedNumberScheduled"]) == (1, 1, 1)
    pod["metadata"]["finalizers"] = []
    api.store["pods"].pop(("kube-system", pod["metadata"]["name"]))
    sync(manager)
    [new] = api.objects("pods", "kube-system")
    assert new["metadata"]["name"] != pod["metadata"]["name"]


def test_daemonset_template_back_to_an_earlier_one_is_the_newest_revision(env):
    """update.go constructHistory: the matching ControllerRevision gets max(old) + 1."""
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("daemonsets", daemonset(strategy={"type": "OnDelete"}))
    sync(manager)
    path = "/apis/apps/v1/namespaces/kube-system/daemonsets/plugin"
    api.merge_patch(path, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "plugin:2"}]}}}})
    sync(manager)
    api.merge_patch(path, {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "plugin:1"}]}}}})
    sync(manager)
    revisions = sorted(api.objects("controllerrevisions", "kube-system"), key=lambda r: r["revision"])
    assert [r["revision"] for r in revisions] == [2, 3]
    assert revisions[-1]["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "plugin:1"
    [pod] = api.objects("pods", "kube-system")
    assert pod["metadata"]["labels"]["controller-revision-hash"] == revisions[-1]["metadata"]["labels"][
        "controller-revision-hash"]


# -- Job -------------------------------------------------------------------------------------
def add_job(api, name="validate", **spec):
    template = {"metadata": {"labels": {"app": name}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "cuda",
                                                                   "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}
    api.add("jobs", {"metadata": {"name": name, "namespace": "default"}, "spec": dict({"template": template}, **spec)})


def test_job_success_conditions_and_finalizers(env):
    api, manager, _clock, _lines = env
    three_nodes(api)
    add_job(api)
    sync(manager)
    job = api.obj("jobs", "validate", "default")
    (pod,) = api.objects("pods", "default")
    labels = pod["metadata"]["labels"]
    assert labels["batch.kubernetes.io/job-name"] == "validate" and labels["job-name"] == "validate"
    assert labels["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"] == labels["controller-uid"]
    assert pod["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert pod["spec"]["nodeName"] == "gpu1"
    assert job["status"]["active"] == 1 and job["status"]["startTime"]
    kubelet(api)
    sync(manager)
    assert api.obj("jobs", "validate", "default")["status"]["ready"] == 1
    kubelet(api, phase="Succeeded")
    sync(manager)
    status = api.obj("jobs", "validate", "default")["status"]
    types = [c["type"] for c in status["conditions"]]
    assert types == ["SuccessCriteriaMet", "Complete"]
    assert status["succeeded"] == 1 and status["active"] == 0 and status["completionTime"]
    assert status["conditions"][1]["reason"] == "CompletionsReached"
    assert not api.objects("pods", "default")[0]["metadata"].get("finalizers")
    sync(manager)
    assert len(api.objects("pods", "default")) == 1  # no new pod after completion


def test_job_backoff_limit_exceeded(env):
    api, manager, clock, _lines = env
    add_node(api, "gpu1", gpus=1)
    add_job(api, backoffLimit=1)
    sync(manager)
    kubelet(api, phase="Failed")
    sync(manager)
    status = api.obj("jobs", "validate", "default")["status"]
    assert status["failed"] == 1 and status.get("active", 0) == 0  # 10 s pod failure backoff
    clock.tick(11)
    sync(manager)
    assert api.obj("jobs", "validate", "default")["status"]["active"] == 1
    kubelet(api, phase="Failed")
    sync(manager, 2)
    status = api.obj("jobs", "validate", "default")["status"]
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    assert status["conditions"][1]["reason"] == "BackoffLimitExceeded"
    assert status["failed"] == 2 and "completionTime" not in status


def test_job_deadline_and_suspend(env):
    api, manager, clock, _lines = env
    add_node(api, "gpu1", gpus=1)
    add_job(api, activeDeadlineSeconds=30)
    sync(manager)
    kubelet(api)
    clock.tick(31)
    sync(manager, 3)  # FailureTarget + pod deleted; pod counted and finalizer removed; Failed
    status = api.obj("jobs", "validate", "default")["status"]
    assert [c["type"] for c in status["conditions"]] == ["FailureTarget", "Failed"]
    assert status["conditions"][1]["reason"] == "DeadlineExceeded"
    add_job(api, name="later", suspend=True)
    sync(manager)
    status = api.obj("jobs", "later", "default")["status"]
    assert [(c["type"], c["status"], c["reason"]) for c in status["conditions"]] == [("Suspended", "True", "JobSuspended")]
    assert not [p for p in api.objects("pods", "default") if p["metadata"]["labels"].get("job-name") == "later"]
    api.merge_patch("/apis/batch/v1/namespaces/default/jobs/later", {"spec": {"suspend": False}})
    sync(manager)
    status = api.obj("jobs", "later", "default")["status"]
    assert status["conditions"][-1]["reason"] == "JobResumed" and status["active"] == 1 and status["startTime"]


# -- Deployment -------------------------------------------------------------------------------
def test_deployment_replicaset_pods_and_status(env):
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    add_node(api, "cpu2")
    api.add("deployments", {"metadata": {"name": "web", "namespace": "default"},
                            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                     "template": {"metadata": {"labels": {"app": "web"}},
                                                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}}})
    sync(manager, 2)
    (rs,) = api.objects("replicasets", "default")
    hash_value = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == "web-" + hash_value
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    pods = api.objects("pods", "default")
    assert len(pods) == 2 and all(p["metadata"]["labels"]["pod-template-hash"] == hash_value for p in pods)
    kubelet(api)
    sync(manager, 3)
    status = api.obj("deployments", "web", "default")["status"]
    assert (status["replicas"], status["readyReplicas"], status["availableReplicas"], status["updatedReplicas"]) == (2, 2, 2, 2)
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    # rollout of a new template
    api.merge_patch("/apis/apps/v1/namespaces/default/deployments/web",
                    {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})
    for _unused in range(8):
        sync(manager)
        kubelet(api)
    sync(manager, 3)
    pods = api.objects("pods", "default")
    assert sorted(p["spec"]["containers"][0]["image"] for p in pods) == ["nginx:2", "nginx:2"]
    status = api.obj("deployments", "web", "default")["status"]
    assert (status["replicas"], status["updatedReplicas"], status["availableReplicas"]) == (2, 2, 2)
    assert status["observedGeneration"] == 2
    assert {c["type"]: c for c in status["conditions"]}["Progressing"]["reason"] == "NewReplicaSetAvailable"


# -- garbage collector -------------------------------------------------------------------------
def test_gc_background_foreground_orphan(env):
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("daemonsets", daemonset())
    sync(manager)
    assert len(api.objects("pods", "kube-system")) == 1
    # background: the owner is gone -> dependents deleted
    api.store["daemonsets"].clear()
    sync(manager, 2)
    assert api.objects("pods", "kube-system") == []
    assert api.objects("controllerrevisions", "kube-system") == []
    # foreground
    api.add("daemonsets", daemonset())
    sync(manager)
    api.delete("/apis/apps/v1/namespaces/kube-system/daemonsets/plugin", params={"propagationPolicy": "Foreground"})
    assert api.obj("daemonsets", "plugin", "kube-system") is not None
    sync(manager, 6)  # dependents deleted (foreground), their finalizers removed, then the owner's
    assert api.obj("daemonsets", "plugin", "kube-system") is None
    assert api.objects("pods", "kube-system") == []
    # orphan
    api.add("daemonsets", daemonset())
    sync(manager)
    api.delete("/apis/apps/v1/namespaces/kube-system/daemonsets/plugin", params={"propagationPolicy": "Orphan"})
    sync(manager, 2)
    assert api.obj("daemonsets", "plugin", "kube-system") is None
    (pod,) = api.objects("pods", "kube-system")
    assert not pod["metadata"].get("ownerReferences")


# -- disruption ----------------------------------------------------------------------------------
def test_pdb_status(env):
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    api.add("replicasets", {"metadata": {"name": "rs", "namespace": "default"},
                            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "a"}},
                                     "template": {"metadata": {"labels": {"app": "a"}},
                                                  "spec": {"containers": [{"name": "c"}]}}}})
    api.add("poddisruptionbudgets", {"metadata": {"name": "pdb", "namespace": "default"},
                                     "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "a"}}}})
    sync(manager, 3)
    kubelet(api)
    sync(manager, 3)
    status = api.obj("poddisruptionbudgets", "pdb", "default")["status"]
    assert (status["currentHealthy"], status["desiredHealthy"], status["disruptionsAllowed"], status["expectedPods"]) == (3, 2, 1, 3)
    assert status["conditions"][0]["type"] == "DisruptionAllowed" and status["conditions"][0]["reason"] == "SufficientPods"


# -- namespace ---------------------------------------------------------------------------------------
def test_namespace_deletion_empties_then_finalizes(env):
    api, manager, _clock, _lines = env
    api.add("namespaces", {"metadata": {"name": "gpu-operator"}, "spec": {"finalizers": ["kubernetes"]},
                           "status": {"phase": "Active"}})
    api.add("configmaps", {"metadata": {"name": "cm", "namespace": "gpu-operator"}})
    api.delete("/api/v1/namespaces/gpu-operator")
    assert api.obj("namespaces", "gpu-operator")["status"]["phase"] == "Terminating"
    sync(manager, 4)
    assert api.obj("configmaps", "cm", "gpu-operator") is None
    assert api.obj("namespaces", "gpu-operator") is None
    assert ("PUT", "/api/v1/namespaces/gpu-operator/finalize") in api.calls


# -- CSR approver + signer (real openssl) -------------------------------------------------------
@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
@pytest.mark.parametrize("subject, username, groups, approved", [
    ("/O=system:nodes/CN=system:node:gpu1", "system:bootstrap:abcdef", ["system:bootstrappers", "system:authenticated"], True),
    ("/O=system:nodes/CN=system:node:gpu1", "system:node:gpu1", ["system:nodes"], True),   # selfnodeclient renewal
    ("/O=system:nodes/CN=system:node:gpu1", "mallory", ["system:authenticated"], False),
    ("/O=system:masters/CN=system:node:gpu1", "system:bootstrap:abcdef", ["system:bootstrappers"], False),
    ("/O=system:nodes/CN=admin", "system:bootstrap:abcdef", ["system:bootstrappers"], False),
])
def test_csr_approve_and_sign(env, tmp_path, subject, username, groups, approved):
    api, manager, _clock, _lines = env

    def run(*args):
        return subprocess.run(args, check=True, capture_output=True, cwd=tmp_path)

    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=kubernetes")
    run("openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", subject)
    manager.signing_cert, manager.signing_key = str(tmp_path / "ca.crt"), str(tmp_path / "ca.key")
    api.add("certificatesigningrequests", {
        "metadata": {"name": "csr-1"},
        "spec": {"request": base64.b64encode((tmp_path / "node.csr").read_bytes()).decode(),
                 "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                 "usages": ["digital signature", "client auth"], "username": username, "groups": groups}})
    sync(manager)
    csr = api.obj("certificatesigningrequests", "csr-1")
    if not approved:
        assert not (csr.get("status") or {}).get("conditions")
        return
    assert csr["status"]["conditions"][0]["type"] == "Approved"
    pem = base64.b64decode(csr["status"]["certificate"])
    (tmp_path / "node.crt").write_bytes(pem)
    run("openssl", "verify", "-CAfile", "ca.crt", "node.crt")
    text = run("openssl", "x509", "-in", "node.crt", "-noout", "-text").stdout.decode()
    assert "TLS Web Client Authentication" in text and "CA:FALSE" in text
    assert "system:node:gpu1" in text


# -- robustness ------------------------------------------------------------------------------------
def test_api_server_away_is_survived(env, monkeypatch):
    api, manager, _clock, lines = env
    add_node(api, "cpu1")
    api.down = True
    sleeps = []

    def fake_sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            api.down = False
        if len(sleeps) > 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(cm.time, "sleep", fake_sleep)
    with pytest.raises(KeyboardInterrupt):
        manager.run(interval=1.0)
    assert sleeps[:3] == [1.0, 2.0, 4.0]  # backoff while away
    assert any("api server unavailable" in line for line in lines)
    assert api.obj("nodes", "cpu1")["spec"]["podCIDR"] == "10.244.0.0/24"  # worked once back


def test_run_passes_while_the_cluster_changes_and_resyncs_when_idle(env, monkeypatch):
    """A pass each second while something was written since the last pass began; with
    nothing written, one every IDLE_RESYNC seconds (time alone can change something)."""
    api, manager, _clock, _lines = env
    add_node(api, "cpu1")
    now = [0.0]
    synced = []
    real_sync = manager.sync_once

    def counting_sync():
        synced.append(now[0])
        real_sync()

    def fake_sleep(seconds):
        now[0] += seconds
        if now[0] == 9.0:
            api.add("configmaps", {"metadata": {"name": "written", "namespace": "default"}})
        if now[0] >= 14.0:
            raise KeyboardInterrupt

    monkeypatch.setattr(cm.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(cm.time, "sleep", fake_sleep)
    monkeypatch.setattr(manager, "sync_once", counting_sync)
    with pytest.raises(KeyboardInterrupt):
        manager.run(interval=1.0, idle_resync=3.0)
    # 0: first pass (it writes the node's podCIDR), 1: the pass after a write, then idle
    # resyncs at 4 and 7; the write at 9 gets its pass at once, then 12 is the next resync.
    assert synced == [0.0, 1.0, 4.0, 7.0, 9.0, 12.0]
    assert api.obj("nodes", "cpu1")["spec"]["podCIDR"] == "10.244.0.0/24"
