# SPDX-License-Identifier: Apache-2.0
"""The simulated GPU Operator (tests/sim/kubegpu_sim/gpu_operator.py): its decisions as pure
functions (GPU node labels, the driver DaemonSet a ClusterPolicy asks for, which nodes upgrade
next, the upgrade states), and the whole rollout of a new driver version against the
in-memory API with the simulated DaemonSet controller and scheduler (controller_manager.py)."""
from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

import yaml  # noqa: E402
from fake_api import FakeApi  # noqa: E402
from kubegpu_sim import controller_manager as cm  # noqa: E402
from kubegpu_sim import controllers_rules as rules  # noqa: E402
from kubegpu_sim import gpu_operator as op  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
CHART = os.path.join(ROOT, "tests", "sim", "charts", "gpu-operator")
NS = "gpu-operator"
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NFD_GPU = "feature.node.kubernetes.io/pci-10de.present"
MANAGER_IMAGE = "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.9.1"
STATES = ["upgrade-required", "cordon-required", "wait-for-jobs-required", "pod-deletion-required",
          "pod-restart-required", "uncordon-required", "upgrade-done"]


def upgrade_policy(**extra):
    """driver.upgradePolicy as the stand-in chart renders kubegpu's defaults (autoUpgrade,
    maxParallelUpgrades 1, maxUnavailable 25%, drain off) over the chart's."""
    policy = {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
              "waitForCompletion": {"timeoutSeconds": 0},
              "podDeletion": {"force": False, "timeoutSeconds": 300, "deleteEmptyDir": False},
              "drain": {"enable": False, "force": False, "timeoutSeconds": 300, "deleteEmptyDir": False}}
    policy.update(extra)
    return policy


def cluster_policy(version="580.105.08", **driver):
    spec = {"enabled": True, "usePrecompiled": False, "repository": "nvcr.io/nvidia", "image": "driver",
            "version": version, "imagePullPolicy": "IfNotPresent",
            "manager": {"repository": "nvcr.io/nvidia/cloud-native", "image": "k8s-driver-manager", "version": "v0.9.1"},
            "upgradePolicy": upgrade_policy()}
    spec.update(driver)
    return {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
            "metadata": {"name": "cluster-policy", "uid": "cp-uid", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"driver": spec, "toolkit": {"enabled": True}}}


def node(name, gpu=True, os_id="debian", version="12", kernel="6.1.0-28-amd64", labels=None, unschedulable=False,
         annotations=None):
    all_labels = {"kubernetes.io/hostname": name}
    if gpu:
        all_labels.update({NFD_GPU: "true", op.GPU_PRESENT: "true", op.DEPLOY_DRIVER: "true"})
    if kernel:
        all_labels[op.NFD_KERNEL] = kernel
    if os_id:
        all_labels.update({op.NFD_OS_ID: os_id, op.NFD_OS_VERSION: version})
    all_labels.update(labels or {})
    obj = {"metadata": {"name": name, "labels": all_labels, "annotations": dict(annotations or {})},
           "spec": {"unschedulable": True} if unschedulable else {},
           "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                      "conditions": [{"type": "Ready", "status": "True"}]}}
    return obj


# -- GPU node labels ----------------------------------------------------------------------
def test_gpu_node_labels_follow_nfd():
    container = dict((k, "true") for k in op.STATE_LABELS["container"])
    # NFD found an NVIDIA function: gpu.present and the container workload's operand labels
    assert op.gpu_node_labels({NFD_GPU: "true"}) == dict(container, **{NFD_GPU: "true", op.GPU_PRESENT: "true"})
    # an existing value is honoured (addGPUStateLabels), a sandbox operand's label removed
    labels = {NFD_GPU: "true", op.GPU_PRESENT: "true", "nvidia.com/gpu.deploy.device-plugin": "false",
              "nvidia.com/gpu.deploy.vfio-manager": "true"}
    new = op.gpu_node_labels(labels)
    assert new["nvidia.com/gpu.deploy.device-plugin"] == "false" and "nvidia.com/gpu.deploy.vfio-manager" not in new
    assert new["nvidia.com/gpu.deploy.driver"] == "true"
    # already labelled: nothing to write
    assert op.gpu_node_labels(new) is None
    # labelled by someone else but no NVIDIA function found by NFD: false, operands gone
    assert op.gpu_node_labels(dict(container, **{op.GPU_PRESENT: "true"})) == {op.GPU_PRESENT: "false"}
    # operands disabled on the node
    assert op.gpu_node_labels(dict(container, **{NFD_GPU: "true", op.GPU_PRESENT: "true", op.OPERANDS: "false"})) == \
        {NFD_GPU: "true", op.GPU_PRESENT: "true", op.OPERANDS: "false"}
    # a MIG-capable product (hasMIGCapableGPU) gets the MIG manager's label too
    h100 = op.gpu_node_labels({NFD_GPU: "true", op.GPU_PRODUCT: "NVIDIA-H100-80GB-HBM3"})
    assert h100[op.MIG_MANAGER] == "true"
    # not a GPU node
    assert op.gpu_node_labels({"kubernetes.io/hostname": "cp1"}) is None


def test_auto_upgrade_annotation():
    spec = cluster_policy()["spec"]
    assert op.auto_upgrade_annotation(node("w1"), spec) == "true"
    assert op.auto_upgrade_annotation(node("w1", annotations={op.AUTO_UPGRADE_ANNOTATION: "true"}), spec) is False
    assert op.auto_upgrade_annotation(node("cp1", gpu=False), spec) is False
    off = cluster_policy(upgradePolicy=upgrade_policy(autoUpgrade=False))["spec"]
    assert op.auto_upgrade_annotation(node("w1", annotations={op.AUTO_UPGRADE_ANNOTATION: "true"}), off) is None
    assert op.auto_upgrade_annotation(node("w1"), off) is False


# -- state-driver -------------------------------------------------------------------------
def test_desired_driver_daemonset_from_the_cluster_policy():
    nodes = [node("cp1", gpu=False), node("gpu2"), node("w1")]
    [ds] = op.desired_driver_daemonsets(cluster_policy(), nodes, NS)
    assert ds["metadata"]["name"] == "nvidia-driver-daemonset" and ds["metadata"]["namespace"] == NS
    assert ds["metadata"]["labels"] == {"app": "nvidia-driver-daemonset", "nvidia.com/precompiled": "false",
                                        "app.kubernetes.io/component": "nvidia-driver"}
    assert ds["metadata"]["ownerReferences"] == [{"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
                                                  "name": "cluster-policy", "uid": "cp-uid", "controller": True,
                                                  "blockOwnerDeletion": True}]
    spec = ds["spec"]
    assert spec["updateStrategy"] == {"type": "OnDelete"}
    assert spec["selector"] == {"matchLabels": {"app": "nvidia-driver-daemonset"}}
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.deploy.driver": "true"}
    [driver] = pod["containers"]
    # the tag is the Debian node's OS: NVIDIA publishes no such image (NVIDIA/gpu-operator#2225)
    assert (driver["name"], driver["image"]) == ("nvidia-driver-ctr", "nvcr.io/nvidia/driver:580.105.08-debian12")
    assert driver["command"] == ["nvidia-driver"] and driver["args"] == ["init"]
    assert [c["image"] for c in pod["initContainers"]] == [MANAGER_IMAGE]
    assert ds["metadata"]["annotations"][op.HASH_ANNOTATION]
    # the OS of the first GPU node in the API's order names the tag (kernelFullVersion)
    ubuntu = [node("a", os_id="ubuntu", version="24.04", kernel="6.8.0-60-generic"), node("b")]
    assert op.desired_driver_daemonsets(cluster_policy(), ubuntu, NS)[0]["spec"]["template"]["spec"][
        "containers"][0]["image"] == "nvcr.io/nvidia/driver:580.105.08-ubuntu24.04"
    # another version: another hash, so the Operator replaces the DaemonSet
    [newer] = op.desired_driver_daemonsets(cluster_policy("580.126.09"), nodes, NS)
    assert newer["metadata"]["annotations"][op.HASH_ANNOTATION] != ds["metadata"]["annotations"][op.HASH_ANNOTATION]
    assert op.desired_driver_daemonsets(cluster_policy(), nodes, NS) == [ds]      # stable


def test_precompiled_driver_daemonsets_one_per_kernel():
    nodes = [node("a", os_id="ubuntu", version="22.04", kernel="5.15.0-1050-aws"),
             node("b", os_id="ubuntu", version="22.04", kernel="6.8.0-60-generic"),
             node("c", os_id="ubuntu", version="22.04", kernel="6.8.0-60-generic")]
    found = op.desired_driver_daemonsets(cluster_policy("580", usePrecompiled=True), nodes, NS)
    assert [d["metadata"]["name"] for d in found] == ["nvidia-driver-daemonset-5.15.0-1050-aws-ubuntu22.04",
                                                      "nvidia-driver-daemonset-6.8.0-60-generic-ubuntu22.04"]
    second = found[1]
    assert second["metadata"]["labels"]["nvidia.com/precompiled"] == "true"
    assert second["spec"]["template"]["spec"]["nodeSelector"] == {
        "nvidia.com/gpu.deploy.driver": "true", op.NFD_KERNEL: "6.8.0-60-generic"}
    assert second["spec"]["template"]["spec"]["containers"][0]["image"] == \
        "nvcr.io/nvidia/driver:580-6.8.0-60-generic-ubuntu22.04"
    assert op.sanitized_kernel_version("5.14.0-427.el9.x86_64") == "5.14.0-427.el9"
    with pytest.raises(op.OperatorError, match="different OS versions"):
        op.kernel_versions_map([node("a", version="22.04"), node("b", version="24.04")])


def test_driver_state_without_gpu_nodes_nfd_or_driver():
    assert op.desired_driver_daemonsets(cluster_policy(), [node("cp1", gpu=False)], NS) == []
    assert op.desired_driver_daemonsets(cluster_policy(enabled=False), [node("w1")], NS) == []
    with pytest.raises(op.OperatorError, match="Could not find kernel full version"):
        op.desired_driver_daemonsets(cluster_policy(), [node("w1", kernel=None)], NS)
    # no repository/version: the Operator's environment, else an error
    policy = cluster_policy(repository="", version="", image="")
    with pytest.raises(op.OperatorError, match="DRIVER_IMAGE"):
        op.desired_driver_daemonsets(policy, [node("w1")], NS)
    [ds] = op.desired_driver_daemonsets(policy, [node("w1")], NS, env={"DRIVER_IMAGE": "reg/driver:1"})
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "reg/driver:1-debian12"
    assert op.image_path("nvcr.io/nvidia", "driver", "sha256:abc") == "nvcr.io/nvidia/driver@sha256:abc"


def test_driver_daemonsets_to_delete():
    def ds(name, precompiled, desired=1):
        return {"metadata": {"name": name, "labels": {op.PRECOMPILED: precompiled}},
                "status": {"desiredNumberScheduled": desired, "numberMisscheduled": 0}}
    existing = [ds("nvidia-driver-daemonset", "false"), ds("nvidia-driver-daemonset-6.8.0-ubuntu22.04", "true"),
                ds("nvidia-driver-daemonset-5.15.0-ubuntu22.04", "true", desired=0)]
    assert op.driver_daemonsets_to_delete(cluster_policy(enabled=False), existing, True) == ["nvidia-driver-daemonset"]
    assert op.driver_daemonsets_to_delete(cluster_policy(), existing, True) == [
        "nvidia-driver-daemonset-6.8.0-ubuntu22.04", "nvidia-driver-daemonset-5.15.0-ubuntu22.04"]
    assert op.driver_daemonsets_to_delete(cluster_policy(usePrecompiled=True), existing, True) == [
        "nvidia-driver-daemonset", "nvidia-driver-daemonset-5.15.0-ubuntu22.04"]
    assert op.driver_daemonsets_to_delete(cluster_policy(), existing, False) == []


# -- upgrade controller: which nodes next ----------------------------------------------------------
def states_of(**counts):
    """{state: [node states]} with ``counts`` nodes per state (state names with _ for -)."""
    states = {}
    for key, count in counts.items():
        state = {"unknown": ""}.get(key, key.replace("_", "-"))
        for i in range(count):
            states.setdefault(state, []).append({"node": node("%s-%d" % (key, i)), "pod": {}, "ds": {}})
    return states


@pytest.mark.parametrize("counts, parallel, unavailable, available", [
    ({"upgrade_required": 2}, 1, "25%", 1),                 # kubegpu's defaults on two GPU nodes
    ({"upgrade_required": 1, "cordon_required": 1}, 1, "25%", 0),   # one in progress
    ({"upgrade_required": 4}, 0, "100%", 4),                # 0: no limit
    ({"upgrade_required": 4}, 0, "50%", 2),                 # maxUnavailable caps it
    ({"upgrade_required": 3, "upgrade_done": 5}, 3, 2, 2),
    ({"upgrade_required": 2, "pod_restart_required": 1}, 3, "100%", 2),
])
def test_upgrades_available(counts, parallel, unavailable, available):
    states = states_of(**counts)
    cap = op.max_unavailable(states, {"maxUnavailable": unavailable})
    assert op.upgrades_available(states, parallel, cap) == available


def test_cordoned_nodes_count_as_unavailable():
    states = {"upgrade-required": [{"node": node("a"), "pod": {}, "ds": {}}],
              "upgrade-done": [{"node": node("b", unschedulable=True), "pod": {}, "ds": {}},
                               {"node": node("c"), "pod": {}, "ds": {}}, {"node": node("d"), "pod": {}, "ds": {}}]}
    assert op.upgrades_available(states, 1, op.max_unavailable(states, {"maxUnavailable": "25%"})) == 0


# -- upgrade controller: state transitions ------------------------------------------------------------
DS = {"metadata": {"name": "nvidia-driver-daemonset", "namespace": NS, "uid": "ds-uid",
                   "labels": {"app": "nvidia-driver-daemonset"}},
      "spec": {"selector": {"matchLabels": {"app": "nvidia-driver-daemonset"}}},
      "status": {"desiredNumberScheduled": 1}}
REVISIONS = [{"metadata": {"name": "nvidia-driver-daemonset-old", "namespace": NS,
                           "labels": {"app": "nvidia-driver-daemonset"}}, "revision": 1},
             {"metadata": {"name": "nvidia-driver-daemonset-new", "namespace": NS,
                           "labels": {"app": "nvidia-driver-daemonset"}}, "revision": 2}]


def driver_pod(node_name, hash_value="new", ready=True, restarts=0, phase="Running", owned=True, deleting=False):
    meta = {"name": "driver-%s-%s" % (node_name, hash_value), "namespace": NS, "uid": "uid-%s-%s" % (node_name, hash_value),
            "labels": {"app": "nvidia-driver-daemonset", "controller-revision-hash": hash_value}}
    if owned:
        meta["ownerReferences"] = [{"kind": "DaemonSet", "name": DS["metadata"]["name"], "uid": "ds-uid",
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"nodeName": node_name, "containers": [{"name": "nvidia-driver-ctr"}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "nvidia-driver-ctr", "ready": ready,
                                                              "restartCount": restarts}]}}


def plan(node_obj, pod, *, policy=None, pods_by_node=None, tracking=None, now=1000, validation=None):
    states = op.build_state([DS], [pod], [node_obj])
    return op.plan_upgrade(states, policy or upgrade_policy(), REVISIONS, pods_by_node or {}, now, tracking, validation)


def state_node(state, **kwargs):
    labels = dict(kwargs.pop("labels", {}), **({op.UPGRADE_STATE: state} if state else {}))
    return node("w1", labels=labels, **kwargs)


def test_node_states_one_step_per_pass():
    old, new = driver_pod("w1", "old"), driver_pod("w1", "new")
    assert plan(state_node(""), new) == [("state", "w1", "upgrade-done")]          # unknown, in sync
    assert plan(state_node(""), old) == [("state", "w1", "upgrade-required")]
    assert plan(state_node("upgrade-done"), new) == []
    assert plan(state_node("upgrade-done"), old) == [("state", "w1", "upgrade-required")]
    assert plan(state_node("upgrade-required"), old) == [("state", "w1", "cordon-required")]
    assert plan(state_node("cordon-required"), old) == [("cordon", "w1", True), ("state", "w1", "wait-for-jobs-required")]
    assert plan(state_node("wait-for-jobs-required", unschedulable=True), old) == [
        ("state", "w1", "pod-deletion-required")]
    # no GPU pod on the node: nothing to delete (gpuPodSpecFilter)
    assert plan(state_node("pod-deletion-required", unschedulable=True), old) == [
        ("state", "w1", "pod-restart-required")]
    # the old driver pod is deleted; the DaemonSet controller makes the new one
    assert plan(state_node("pod-restart-required", unschedulable=True), old) == [("delete_pod", old)]
    assert plan(state_node("pod-restart-required", unschedulable=True), driver_pod("w1", "old", deleting=True)) == []
    assert plan(state_node("pod-restart-required", unschedulable=True), driver_pod("w1", ready=False)) == []
    assert plan(state_node("pod-restart-required", unschedulable=True), new) == [("state", "w1", "uncordon-required")]
    assert plan(state_node("uncordon-required", unschedulable=True), new) == [
        ("cordon", "w1", False), ("state", "w1", "upgrade-done")]


def test_node_cordoned_before_the_upgrade_stays_cordoned():
    initial = {op.INITIAL_UNSCHEDULABLE: "true"}
    assert plan(state_node("upgrade-done", unschedulable=True), driver_pod("w1", "old")) == [
        ("annotate", "w1", op.INITIAL_UNSCHEDULABLE, "true"), ("state", "w1", "upgrade-required")]
    # a cordoned node is taken even when no upgrade slot is free
    assert plan(state_node("upgrade-required", unschedulable=True), driver_pod("w1", "old")) == [
        ("state", "w1", "cordon-required")]
    assert plan(state_node("pod-restart-required", unschedulable=True, annotations=initial), driver_pod("w1")) == [
        ("state", "w1", "upgrade-done"), ("annotate", "w1", op.INITIAL_UNSCHEDULABLE, None)]


def test_failing_driver_and_recovery():
    crashing = driver_pod("w1", ready=False, restarts=11)
    assert plan(state_node("pod-restart-required", unschedulable=True), crashing) == [("state", "w1", "upgrade-failed")]
    assert plan(state_node("upgrade-failed", unschedulable=True), crashing) == []
    assert plan(state_node("upgrade-failed", unschedulable=True), driver_pod("w1")) == [
        ("state", "w1", "uncordon-required")]


def test_skip_label_and_requested_annotation():
    assert plan(state_node("upgrade-required", labels={op.SKIP_NODE: "true"}), driver_pod("w1", "old")) == []
    requested = state_node("upgrade-done", annotations={op.REQUESTED: "true"})
    assert plan(requested, driver_pod("w1")) == [("state", "w1", "upgrade-required")]
    assert plan(state_node("upgrade-required", annotations={op.REQUESTED: "true"}), driver_pod("w1")) == [
        ("annotate", "w1", op.REQUESTED, None), ("state", "w1", "cordon-required")]


def gpu_workload(node_name, owner="ReplicaSet", volumes=None, name="train"):
    meta = {"name": name, "namespace": "default", "uid": "uid-" + name}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "x", "uid": "x", "controller": True}]
    return {"metadata": meta, "spec": {"nodeName": node_name, "volumes": volumes or [],
                                       "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]},
            "status": {"phase": "Running"}}


def test_gpu_pods_deleted_before_the_driver_restarts():
    workload, other = gpu_workload("w1"), dict(gpu_workload("w1", name="web"), spec={"nodeName": "w1", "containers": []})
    assert op.gpu_pod(workload) and not op.gpu_pod(other)
    cordoned = state_node("pod-deletion-required", unschedulable=True)
    actions = plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [workload, other]})
    assert actions == [("evict", workload), ("track", "w1", {"kind": "pod-deletion", "since": 1000, "uids": ["uid-train"]})]
    tracking = {"w1": actions[1][2]}
    # still there: evicted again (a PodDisruptionBudget's 429 is retried); gone: the driver's turn
    assert plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [workload]}, tracking=tracking) == [
        ("evict", workload)]
    assert plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [other]}, tracking=tracking) == [
        ("untrack", "w1"), ("state", "w1", "pod-restart-required")]
    assert plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [workload]}, tracking=tracking, now=1301) == [
        ("untrack", "w1"), ("state", "w1", "upgrade-failed")]
    # a pod the drain helper refuses (no controller, or an emptyDir): failed, or drained when drain is on
    for refused in (gpu_workload("w1", owner=None), gpu_workload("w1", volumes=[{"name": "s", "emptyDir": {}}])):
        assert plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [refused]}) == [
            ("state", "w1", "upgrade-failed")]
        drain_on = upgrade_policy(drain={"enable": True, "timeoutSeconds": 300})
        assert plan(cordoned, driver_pod("w1", "old"), pods_by_node={"w1": [refused]}, policy=drain_on) == [
            ("state", "w1", "drain-required")]


def test_drain_when_enabled():
    drain_on = upgrade_policy(drain={"enable": True, "force": False, "timeoutSeconds": 300, "deleteEmptyDir": False})
    skipped = gpu_workload("w1", name="operator")
    skipped["metadata"]["labels"] = {"nvidia.com/gpu-driver-upgrade-drain.skip": "true"}
    daemon = gpu_workload("w1", owner="DaemonSet", name="plugin")
    workload = gpu_workload("w1")
    draining = state_node("drain-required", unschedulable=True)
    actions = plan(draining, driver_pod("w1", "old"), policy=drain_on, pods_by_node={"w1": [skipped, daemon, workload]})
    assert actions == [("evict", workload), ("track", "w1", {"kind": "drain", "since": 1000, "uids": ["uid-train"]})]
    assert plan(draining, driver_pod("w1", "old"), policy=drain_on, pods_by_node={"w1": [gpu_workload("w1", owner=None)]}) \
        == [("state", "w1", "upgrade-failed")]
    # drain off: straight to the driver pod's restart
    assert plan(draining, driver_pod("w1", "old")) == [("state", "w1", "pod-restart-required")]


def test_wait_for_jobs_with_a_pod_selector():
    policy = upgrade_policy(waitForCompletion={"podSelector": "app=train", "timeoutSeconds": 60})
    job = gpu_workload("w1")
    job["metadata"]["labels"] = {"app": "train"}
    waiting = state_node("wait-for-jobs-required", unschedulable=True)
    assert plan(waiting, driver_pod("w1", "old"), policy=policy, pods_by_node={"w1": [job]}) == [
        ("annotate", "w1", op.COMPLETION_START, "1000")]
    started = state_node("wait-for-jobs-required", unschedulable=True, annotations={op.COMPLETION_START: "1000"})
    assert plan(started, driver_pod("w1", "old"), policy=policy, pods_by_node={"w1": [job]}, now=1030) == []
    assert plan(started, driver_pod("w1", "old"), policy=policy, pods_by_node={"w1": [job]}, now=1061) == [
        ("state", "w1", "pod-deletion-required"), ("annotate", "w1", op.COMPLETION_START, None)]
    assert plan(started, driver_pod("w1", "old"), policy=policy, pods_by_node={"w1": []}) == [
        ("annotate", "w1", op.COMPLETION_START, None), ("state", "w1", "pod-deletion-required")]


def test_validation_state_when_enabled():
    """Off in the simulated Operator (module docstring); upstream's rules when a validator selector is set."""
    selector = "app=nvidia-operator-validator"
    assert plan(state_node("pod-restart-required", unschedulable=True), driver_pod("w1"), validation=selector) == [
        ("state", "w1", "validation-required")]
    validating = state_node("validation-required", unschedulable=True)
    assert plan(validating, driver_pod("w1"), validation=selector) == []            # no validator pod yet
    validator = driver_pod("w1")
    validator["metadata"]["labels"] = {"app": "nvidia-operator-validator"}
    assert plan(validating, driver_pod("w1"), validation=selector, pods_by_node={"w1": [validator]}) == [
        ("annotate", "w1", op.VALIDATION_START, None), ("state", "w1", "uncordon-required")]
    not_ready = driver_pod("w1", ready=False)
    not_ready["metadata"]["labels"] = {"app": "nvidia-operator-validator"}
    assert plan(validating, driver_pod("w1"), validation=selector, pods_by_node={"w1": [not_ready]}) == [
        ("annotate", "w1", op.VALIDATION_START, "1000")]
    late = state_node("validation-required", unschedulable=True, annotations={op.VALIDATION_START: "1000"})
    assert plan(late, driver_pod("w1"), validation=selector, pods_by_node={"w1": [not_ready]}, now=1601) == [
        ("state", "w1", "upgrade-failed"), ("annotate", "w1", op.VALIDATION_START, None)]


def test_auto_upgrade_off_does_nothing_and_build_state_refuses_missing_pods():
    assert plan(state_node("upgrade-done"), driver_pod("w1", "old"), policy=upgrade_policy(autoUpgrade=False)) == []
    assert op.remove_state_labels([state_node("upgrade-done"), node("x")]) == ["w1"]
    with pytest.raises(op.UpgradeStateError, match="Unscheduled pods"):
        op.build_state([dict(DS, status={"desiredNumberScheduled": 2})], [driver_pod("w1")], [node("w1")])
    # an orphaned driver pod is not in sync and is restarted
    orphan = driver_pod("w1", owned=False)
    states = op.build_state([dict(DS, status={"desiredNumberScheduled": 0})], [orphan], [state_node("pod-restart-required")])
    assert op.plan_upgrade(states, upgrade_policy(), REVISIONS, {}, 0) == [("delete_pod", orphan)]
    with pytest.raises(op.UpgradeStateError, match="no revision"):
        op.revision_hash(DS, [])


# -- the stand-in chart: the ClusterPolicy the Operator reads ------------------------------------------------
def _helm():
    path = os.environ.get("KUBEGPU_HELM") or os.path.join(ROOT, ".cache", "helm", "helm")
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else shutil.which("helm")


def test_chart_cluster_policy_copies_the_driver_values(tmp_path):
    helm = _helm()
    if not helm:
        pytest.skip("no helm (scripts/fetch-helm.sh)")
    # the driver values roles/gpu_operator renders in container mode (plugin_utils/_gpu_operator.driver_values)
    values = {"driver": {"enabled": True, "usePrecompiled": False, "version": "580.126.09",
                         "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
                                           "drain": {"enable": False, "timeoutSeconds": 300}}}}
    (tmp_path / "values.yaml").write_text(json.dumps(values))
    out = subprocess.run([helm, "template", "gpu-operator", CHART, "--namespace", NS, "--values",
                          str(tmp_path / "values.yaml")], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    policy = next(d for d in docs if d["kind"] == "ClusterPolicy")
    driver = policy["spec"]["driver"]
    assert driver["version"] == "580.126.09" and driver["repository"] == "nvcr.io/nvidia" and driver["image"] == "driver"
    assert driver["usePrecompiled"] is False and driver["upgradePolicy"]["drain"]["enable"] is False
    assert driver["upgradePolicy"]["maxParallelUpgrades"] == 1 and driver["upgradePolicy"]["maxUnavailable"] == "25%"
    assert driver["upgradePolicy"]["podDeletion"] == {"force": False, "timeoutSeconds": 300, "deleteEmptyDir": False}
    policy["metadata"]["uid"] = "cp-uid"
    [ds] = op.desired_driver_daemonsets(policy, [node("w1")], NS)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/driver:580.126.09-debian12"
    assert ds["spec"]["template"]["spec"]["initContainers"][0]["image"] == MANAGER_IMAGE
    worker = next(d for d in docs if d["kind"] == "DaemonSet")
    assert worker["spec"]["template"]["spec"]["containers"][0]["command"] == ["nfd-worker"]
    operator = next(d for d in docs if d["kind"] == "Deployment")
    assert operator["spec"]["template"]["spec"]["containers"][0]["command"] == ["gpu-operator"]
    # host mode: nothing of the driver deployed, no NFD when asked
    out = subprocess.run([helm, "template", "gpu-operator", CHART, "--namespace", NS, "--set", "driver.enabled=false",
                          "--set", "nfd.enabled=false"], capture_output=True, text=True, check=True).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    assert [d["kind"] for d in docs] == ["Deployment", "ClusterPolicy"]
    assert next(d for d in docs if d["kind"] == "ClusterPolicy")["spec"]["driver"]["enabled"] is False


# -- the whole rollout against the in-memory API ---------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


def kubelet(api):
    """What the simulated kubelet does with the bound pods: Running, every container ready."""
    for pod in api.objects("pods"):
        if not pod["spec"].get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            continue
        pod["status"] = {"phase": "Running", "containerStatuses": [
            {"name": c["name"], "ready": True, "restartCount": 0} for c in pod["spec"].get("containers") or []],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": api.now_text()}]}


@pytest.fixture
def cluster():
    clock = Clock()
    api = FakeApi(now_text=lambda: rules.now_rfc3339(clock.now))
    manager = cm.ControllerManager(api, clock=clock, logger=lambda line: None)
    for obj in (node("cp1", gpu=False), node("gpu2"), node("w1")):
        obj["metadata"]["labels"].pop(op.GPU_PRESENT, None)    # the Operator labels them
        obj["metadata"]["labels"].pop(op.DEPLOY_DRIVER, None)
        obj["status"]["conditions"][0]["lastHeartbeatTime"] = api.now_text()
        api.add("nodes", obj)
        api.add("leases", {"metadata": {"name": obj["metadata"]["name"], "namespace": "kube-node-lease"},
                           "spec": {"renewTime": api.now_text()}})
    api.add("clusterpolicies", cluster_policy())
    seconds = iter(range(10 ** 6))
    operator = op.Operator(api, NS, env={"DRIVER_MANAGER_IMAGE": MANAGER_IMAGE}, clock=lambda: next(seconds))
    return api, manager, operator


def run(api, manager, operator, done, passes=80):
    for _unused in range(passes):
        operator.reconcile()
        manager.sync_once()
        kubelet(api)
        if done():
            return
    raise AssertionError("not done after %d passes" % passes)


def driver_pods(api):
    return sorted(api.objects("pods", NS), key=lambda p: p["spec"].get("nodeName") or "")


def states(api):
    return dict((n["metadata"]["name"], n["metadata"]["labels"].get(op.UPGRADE_STATE)) for n in api.objects("nodes"))


def rolled_out(api, version):
    ds = api.obj("daemonsets", "nvidia-driver-daemonset", NS)
    status = (ds or {}).get("status") or {}
    pods = driver_pods(api)
    return (ds is not None and len(pods) == 2 and all(version in p["spec"]["containers"][0]["image"] for p in pods)
            and status.get("updatedNumberScheduled") == status.get("numberAvailable") == status.get("desiredNumberScheduled") == 2
            and states(api) == {"cp1": None, "gpu2": "upgrade-done", "w1": "upgrade-done"})


def state_writes(api, start):
    """[(node, state)] of the upgrade-state label writes since call ``start``, in order."""
    found = []
    for call in api.calls[start:]:
        if call[0] == "PATCH" and call[1].startswith("/api/v1/nodes/"):
            labels = ((call[2].get("metadata") or {}).get("labels") or {})
            if op.UPGRADE_STATE in labels:
                found.append((call[1].rsplit("/", 1)[1], labels[op.UPGRADE_STATE]))
    return found


def test_driver_rollout_node_by_node(cluster):
    api, manager, operator = cluster
    run(api, manager, operator, lambda: rolled_out(api, "580.105.08"))
    # the Operator labelled the GPU nodes NFD found, and only those run the driver
    labels = dict((n["metadata"]["name"], n["metadata"]["labels"]) for n in api.objects("nodes"))
    assert labels["w1"][op.GPU_PRESENT] == labels["gpu2"][op.GPU_PRESENT] == "true" and op.GPU_PRESENT not in labels["cp1"]
    assert [p["spec"]["nodeName"] for p in driver_pods(api)] == ["gpu2", "w1"]
    assert [p["spec"]["containers"][0]["image"] for p in driver_pods(api)] == [
        "nvcr.io/nvidia/driver:580.105.08-debian12"] * 2
    first_pods = set(p["metadata"]["name"] for p in driver_pods(api))

    # helm gives the ClusterPolicy the new version
    api.merge_patch("/apis/nvidia.com/v1/clusterpolicies/cluster-policy", {"spec": {"driver": {"version": "580.126.09"}}})
    start = len(api.calls)
    operator.reconcile()
    manager.sync_once()
    ds = api.obj("daemonsets", "nvidia-driver-daemonset", NS)
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/driver:580.126.09-debian12"
    # OnDelete: the DaemonSet controller replaces no pod by itself; the status says so
    assert set(p["metadata"]["name"] for p in driver_pods(api)) == first_pods
    assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"] == 2
    assert (ds["status"]["updatedNumberScheduled"], ds["status"]["numberAvailable"]) == (0, 2)
    run(api, manager, operator, lambda: rolled_out(api, "580.126.09"))

    writes = state_writes(api, start)
    for name in ("gpu2", "w1"):
        assert [s for n, s in writes if n == name] == STATES, writes
    # maxParallelUpgrades 1: one node from cordon-required to upgrade-done, then the other
    order = [n for n, s in writes if s != "upgrade-required"]
    assert order == [order[0]] * 6 + [order[-1]] * 6, writes
    cordons = [(c[1].rsplit("/", 1)[1], c[2]["spec"]["unschedulable"]) for c in api.calls[start:]
               if c[0] == "PATCH" and c[1].startswith("/api/v1/nodes/") and "unschedulable" in c[2].get("spec", {})]
    assert cordons == [(order[0], True), (order[0], None), (order[-1], True), (order[-1], None)]
    assert not any(n.get("spec", {}).get("unschedulable") for n in api.objects("nodes"))
    deleted = [c[1].rsplit("/", 1)[1] for c in api.calls[start:] if c[0] == "DELETE" and "/pods/" in c[1]]
    assert sorted(deleted) == sorted(first_pods)
    ds = api.obj("daemonsets", "nvidia-driver-daemonset", NS)
    newest = sorted(api.objects("controllerrevisions", NS), key=lambda r: r["revision"])[-1]
    assert all(p["metadata"]["labels"]["controller-revision-hash"] == newest["metadata"]["name"].rsplit("-", 1)[1]
               for p in driver_pods(api))

    # converged: another pass writes nothing to nodes, DaemonSets or pods
    start = len(api.calls)
    for _unused in range(3):
        operator.reconcile()
        manager.sync_once()
        kubelet(api)
    assert [c for c in api.calls[start:] if c[0] != "GET" and c[0] != "LIST"
            and any(p in c[1] for p in ("/nodes", "/daemonsets", "/pods"))] == []


def test_parallel_upgrades_and_driver_disabled(cluster):
    api, manager, operator = cluster
    run(api, manager, operator, lambda: rolled_out(api, "580.105.08"))
    api.merge_patch("/apis/nvidia.com/v1/clusterpolicies/cluster-policy", {"spec": {"driver": {
        "version": "580.126.09", "upgradePolicy": {"maxParallelUpgrades": 0, "maxUnavailable": "100%"}}}})
    start = len(api.calls)
    run(api, manager, operator, lambda: rolled_out(api, "580.126.09"))
    writes = state_writes(api, start)
    # both nodes cordoned in the same pass
    assert sorted(writes[2:4]) == [("gpu2", "cordon-required"), ("w1", "cordon-required")], writes
    # driver.enabled false: the DaemonSet goes
    api.merge_patch("/apis/nvidia.com/v1/clusterpolicies/cluster-policy", {"spec": {"driver": {"enabled": False}}})
    operator.reconcile()
    assert api.obj("daemonsets", "nvidia-driver-daemonset", NS) is None
    # auto upgrade off: the state labels go
    api.merge_patch("/apis/nvidia.com/v1/clusterpolicies/cluster-policy",
                    {"spec": {"driver": {"upgradePolicy": {"autoUpgrade": False}}}})
    operator.reconcile()
    assert set(states(api).values()) == {None}
    assert all(op.AUTO_UPGRADE_ANNOTATION not in (n["metadata"].get("annotations") or {}) for n in api.objects("nodes"))
