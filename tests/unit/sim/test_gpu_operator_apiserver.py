# SPDX-License-Identifier: Apache-2.0
"""The simulated GPU Operator against the simulated API server (conftest.py `cluster`): the
stand-in chart installed and upgraded by the REAL helm with the driver values kubegpu renders
in container mode, the Operator's writes (node labels, its DaemonSet, strategic merge patches,
pod deletions) accepted by the server's validation, the simulated DaemonSet controller and
scheduler making the pods, a stand-in kubelet reporting them Running. The whole driver
rollout, as tests/integration/test_day2_reset_operator.py sees it on test hosts."""
from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from kubegpu_sim import controller_manager as cm  # noqa: E402
from kubegpu_sim import gpu_operator as op  # noqa: E402

# Tens of seconds of the real helm against the simulated control plane: on .venv's
# ansible-core only; the ansible-core matrix leaves it out (marker flow, pytest.ini).
pytestmark = pytest.mark.flow

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
CHART = os.path.join(ROOT, "tests", "sim", "charts", "gpu-operator")
NS = "gpu-operator"
GPU_NODES = ("gpu2", "w1")
STATES = ["upgrade-required", "cordon-required", "wait-for-jobs-required", "pod-deletion-required",
          "pod-restart-required", "uncordon-required", "upgrade-done"]
# plugins/plugin_utils/_gpu_operator.driver_values in container mode with the role's defaults
DRIVER = {"enabled": True, "usePrecompiled": False, "version": "580.105.08",
          "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
                            "drain": {"enable": False, "timeoutSeconds": 300}}}


def add_node(api, name, gpu):
    labels = {"kubernetes.io/hostname": name}
    if gpu:
        labels.update({"feature.node.kubernetes.io/pci-10de.present": "true", op.GPU_PRESENT: "true",
                       op.NFD_KERNEL: "6.1.0-28-amd64", op.NFD_OS_ID: "debian", op.NFD_OS_VERSION: "12"})
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
                                 "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                            "conditions": [{"type": "Ready", "status": "True",
                                                            "lastHeartbeatTime": "2099-01-01T00:00:00Z"}]}})


def kubelet(api):
    """The kubelet's part: bound pods Running and ready, deleted ones gone (grace period 0)."""
    for pod in api.list("/api/v1/namespaces/%s/pods" % NS):
        meta = pod["metadata"]
        path = "/api/v1/namespaces/%s/pods/%s" % (NS, meta["name"])
        if meta.get("deletionTimestamp"):
            api.delete(path, params={"gracePeriodSeconds": "0"})
        elif pod["spec"].get("nodeName") and (pod.get("status") or {}).get("phase") != "Running":
            api.merge_patch(path + "/status", {"status": {
                "phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": c["name"], "ready": True, "restartCount": 0, "image": c["image"],
                                       "imageID": "", "state": {"running": {}}}
                                      for c in pod["spec"]["containers"]]}})


def driver_pods(api):
    return [p for p in api.list("/api/v1/namespaces/%s/pods" % NS)
            if p["metadata"].get("labels", {}).get("app") == "nvidia-driver-daemonset"]


def rolled_out(api, version):
    ds = api.get("/apis/apps/v1/namespaces/%s/daemonsets/nvidia-driver-daemonset" % NS)
    if ds is None:
        return False
    status = ds.get("status") or {}
    pods = [p for p in driver_pods(api) if not p["metadata"].get("deletionTimestamp")]
    nodes = dict((n["metadata"]["name"], n) for n in api.list("/api/v1/nodes"))
    return (len(pods) == 2 and all(p["spec"]["containers"][0]["image"] == "nvcr.io/nvidia/driver:%s-debian12" % version
                                   and (p.get("status") or {}).get("phase") == "Running" for p in pods)
            and [status.get(k) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable")] == [2] * 3
            and all(nodes[n]["metadata"]["labels"].get(op.UPGRADE_STATE) == "upgrade-done"
                    and not (nodes[n].get("spec") or {}).get("unschedulable") for n in GPU_NODES))


def test_chart_operator_and_rollout_on_the_simulated_api_server(cluster, tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(json.dumps({"driver": DRIVER}))
    cluster.helm("install", "gpu-operator", CHART, "--namespace", NS, "--create-namespace", "--values", str(values))
    api = cluster.client()
    add_node(api, "cp1", gpu=False)
    for name in GPU_NODES:
        add_node(api, name, gpu=True)
    manager = cm.ControllerManager(api, logger=lambda line: None, node_monitor_grace=3600.0)
    lines = []
    operator = op.Operator(api, NS, env={"DRIVER_MANAGER_IMAGE": "unused"}, log=lines.append)

    def run(version, passes=60):
        for _unused in range(passes):
            operator.reconcile()
            manager.sync_once()
            kubelet(api)
            if rolled_out(api, version):
                return
        raise AssertionError("not rolled out: %s" % lines[-20:])

    run("580.105.08")
    ds = api.get("/apis/apps/v1/namespaces/%s/daemonsets/nvidia-driver-daemonset" % NS)
    assert ds["spec"]["updateStrategy"]["type"] == "OnDelete"
    assert ds["metadata"]["ownerReferences"][0]["kind"] == "ClusterPolicy"
    assert ds["spec"]["template"]["spec"]["initContainers"][0]["image"] == \
        "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.9.1"      # from the ClusterPolicy, not the env
    first = sorted(p["metadata"]["name"] for p in driver_pods(api))

    del lines[:]
    cluster.helm("upgrade", "gpu-operator", CHART, "--namespace", NS, "--reuse-values",
                 "--set", "driver.version=580.126.09")
    run("580.126.09")
    for name in GPU_NODES:
        states = [line.rsplit("=", 1)[1] for line in lines if line.startswith("node %s: %s=" % (name, op.UPGRADE_STATE))]
        assert states == STATES, lines
    assert len([line for line in lines if line.endswith(" cordoned")]) == 2
    assert sorted(line.split("/")[-1] for line in lines if line.startswith("deleted pod ")) == first
    ds = api.get("/apis/apps/v1/namespaces/%s/daemonsets/nvidia-driver-daemonset" % NS)
    assert ds["status"]["observedGeneration"] == ds["metadata"]["generation"]

    # the release gone with its ClusterPolicy: the garbage collector takes the DaemonSet and its pods
    cluster.helm("uninstall", "gpu-operator", "--namespace", NS)
    for _unused in range(10):
        manager.sync_once()
        kubelet(api)
        if api.get("/apis/apps/v1/namespaces/%s/daemonsets/nvidia-driver-daemonset" % NS) is None:
            break
    assert api.get("/apis/apps/v1/namespaces/%s/daemonsets/nvidia-driver-daemonset" % NS) is None
    assert operator.reconcile() == "no ClusterPolicy"
