# SPDX-License-Identifier: Apache-2.0
"""The GPU Operator's Helm release (plugin_utils/_gpu_operator.py, filters in plugins/filter/gpu.py):
the helm upgrade command, and when it must run (roles/gpu_operator/tasks/operator.yml); the chart's
driver values and the rolling driver upgrade's progress (filters in plugins/filter/driver_container.py)."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import driver_container as driver_filter
from ansible_collections.kubegpu.cluster.plugins.filter import gpu as gpu_filter
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_operator

HELM = ["/usr/local/bin/helm", "--kubeconfig", "/etc/kubernetes/admin.conf"]
VALUES = {"driver": {"enabled": False}, "toolkit": {"enabled": True}, "cdi": {"enabled": False}}
RELEASE = {"name": "gpu-operator", "chart": "gpu-operator", "version": "v25.10.1", "namespace": "gpu-operator",
           "values_file": "/etc/kubernetes/kubegpu/gpu-operator/values.yaml", "values": VALUES, "timeout": 600,
           "repo_url": "https://helm.ngc.nvidia.com/nvidia"}
COMMAND = ["upgrade", "--install", "gpu-operator", "gpu-operator", "--version", "v25.10.1", "--namespace",
           "gpu-operator", "--create-namespace", "--values", "/etc/kubernetes/kubegpu/gpu-operator/values.yaml",
           "--wait", "--timeout", "600s"]


@pytest.mark.parametrize("repo_url, tail", [
    ("https://helm.ngc.nvidia.com/nvidia", ["--repo", "https://helm.ngc.nvidia.com/nvidia"]),
    # A local chart path or an OCI reference: no --repo.
    ("", []),
    (None, []),
])
def test_upgrade_command(repo_url, tail):
    release = dict(RELEASE, repo_url=repo_url)
    assert gpu_filter.gpu_operator_upgrade_argv(HELM, release) == HELM + COMMAND + tail


def test_upgrade_command_timeout_as_a_string():
    assert gpu_filter.gpu_operator_upgrade_argv(HELM, dict(RELEASE, timeout="900"))[len(HELM) + 13] == "900s"


def _listed(**release):
    return json.dumps([dict({"name": "gpu-operator", "status": "deployed", "chart": "gpu-operator-v25.10.1"},
                            **release)])


CURRENT = {"changed": False, "rc": 0, "stdout": json.dumps(VALUES)}


@pytest.mark.parametrize("listed, current, differs", [
    # Missing (helm get values skipped).
    ("[]", {"skipped": True, "changed": False}, True),
    ("[]", None, True),
    # Deployed, this chart version, these values: nothing to do.
    (_listed(), CURRENT, False),
    # Not deployed: failed, or a status helm may show.
    (_listed(status="failed"), CURRENT, True),
    (_listed(status="superseded"), CURRENT, True),
    (_listed(status=None), CURRENT, True),
    # Another chart version (a suffix of another version does not count).
    (_listed(chart="gpu-operator-v25.3.0"), CURRENT, True),
    (_listed(chart="gpu-operator-xv25.10.1"), CURRENT, True),
    (_listed(chart=None), CURRENT, True),
    # Other values, values in another order (the same), or none set (helm prints {}).
    (_listed(), {"stdout": json.dumps({"driver": {"enabled": False}})}, True),
    (_listed(), {"stdout": json.dumps(dict(reversed(list(VALUES.items()))))}, False),
    (_listed(), {"stdout": "{}"}, True),
    (_listed(), {"skipped": True}, True),
])
def test_release_differs(listed, current, differs):
    assert gpu_filter.gpu_operator_release_differs(listed, current, RELEASE) is differs


def test_release_differs_with_empty_values_wanted():
    assert _gpu_operator.release_differs(_listed(), {"skipped": True}, dict(RELEASE, values={})) is False


@pytest.mark.parametrize("listed, current", [("", CURRENT), ("not json", CURRENT), (_listed(), {"stdout": ""})])
def test_unreadable_helm_output_is_a_filter_error(listed, current):
    with pytest.raises(AnsibleFilterError, match="gpu_operator_release_differs: helm's answer could not be read"):
        gpu_filter.gpu_operator_release_differs(listed, current, RELEASE)


def test_installed_release():
    assert gpu_filter.gpu_operator_installed_release("[]") == {}
    assert gpu_filter.gpu_operator_installed_release("[null]") == {}
    assert gpu_filter.gpu_operator_installed_release(_listed(status="pending-upgrade"))["status"] == "pending-upgrade"
    with pytest.raises(AnsibleFilterError, match="gpu_operator_installed_release: helm's answer could not be read"):
        gpu_filter.gpu_operator_installed_release("Error: Kubernetes cluster unreachable")


# --- the chart's driver values (nvidia_driver_mode) -------------------------------------------------

CONTAINER = {"nvidia_driver_mode": "container", "kubegpu_gpu_operator": True,
             "container_runtime_nvidia_toolkit_install": False, "gpu_operator_driver_version": "580.105.08",
             "gpu_operator_driver_precompiled": "auto", "gpu_operator_driver_upgrade_auto": True,
             "gpu_operator_driver_upgrade_max_parallel": 1, "gpu_operator_driver_upgrade_max_unavailable": "25%",
             "gpu_operator_driver_upgrade_drain": False, "gpu_operator_driver_upgrade_drain_timeout": 300}
UBUNTU = {"distribution": "Ubuntu", "distribution_version": "22.04", "kernel": "5.15.0-69-generic",
          "architecture": "x86_64"}
DEBIAN = {"distribution": "Debian", "distribution_version": "12", "kernel": "6.1.0-41-amd64", "architecture": "x86_64"}


def _hostvars(**gpu_facts):
    """hostvars as the kubegpu role leaves them: kubegpu_gpu_node published, ansible_facts of this run."""
    found = {"cp1": {"kubegpu_gpu_node": False, "ansible_facts": DEBIAN}}
    for host, facts in gpu_facts.items():
        found[host] = {"kubegpu_gpu_node": True, "ansible_facts": dict(facts, kubegpu_gpu={"count": 1})}
    return found


def test_host_mode_keeps_the_host_driver():
    assert driver_filter.gpu_operator_driver_values({"nvidia_driver_mode": "host"}, _hostvars(gpu1=UBUNTU),
                                                    ["cp1", "gpu1"]) == {"enabled": False}
    assert driver_filter.gpu_operator_driver_values({}, {}, []) == {"enabled": False}


def test_container_mode_conventional_images():
    values = driver_filter.gpu_operator_driver_values(CONTAINER, _hostvars(gpu1=UBUNTU, gpu2=DEBIAN),
                                                      ["cp1", "gpu1", "gpu2"])
    assert values == {"enabled": True, "usePrecompiled": False, "version": "580.105.08",
                      "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
                                        "drain": {"enable": False, "timeoutSeconds": 300}}}


def test_container_mode_precompiled_where_every_gpu_node_has_them():
    """The CPU-only Debian control plane does not count; the precompiled images are tagged by branch."""
    values = driver_filter.gpu_operator_driver_values(
        dict(CONTAINER, gpu_operator_driver_upgrade_max_unavailable=2, gpu_operator_driver_upgrade_drain="yes"),
        _hostvars(gpu1=UBUNTU, gpu2=dict(UBUNTU, kernel="6.8.0-1015-aws")), ["cp1", "gpu1", "gpu2"])
    assert values["usePrecompiled"] is True and values["version"] == "580"
    assert values["upgradePolicy"]["maxUnavailable"] == 2 and values["upgradePolicy"]["drain"]["enable"] is True


def test_gpu_nodes_os_only_reads_gpu_nodes_and_what_this_run_gathered():
    hostvars = _hostvars(gpu1=UBUNTU)
    hostvars["gpu3"] = {"kubegpu_gpu_node": "true", "ansible_facts": {}}
    assert _gpu_operator.gpu_nodes_os(hostvars, ["cp1", "gpu1", "gpu3", "absent"]) == [UBUNTU, {}]


def _driver_ds(name="nvidia-driver-daemonset", tag="580.105.08-ubuntu22.04", desired=2, updated=2, available=2,
               generation=3, observed=3, namespace="gpu-operator", component="nvidia-driver"):
    return {"kind": "DaemonSet",
            "metadata": {"name": name, "namespace": namespace, "generation": generation,
                         "labels": {"app.kubernetes.io/component": component}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "k8s-driver-manager", "image": "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.9.1"},
                {"name": "nvidia-driver-ctr", "image": "nvcr.io/nvidia/driver:%s" % tag}]}}},
            "status": {"desiredNumberScheduled": desired, "updatedNumberScheduled": updated,
                       "numberAvailable": available, "observedGeneration": observed}}


def _node(name, state=None):
    labels = {"nvidia.com/gpu.present": "true"}
    if state:
        labels["nvidia.com/gpu-driver-upgrade-state"] = state
    return {"kind": "Node", "metadata": {"name": name, "labels": labels}}


def _listing(*items):
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


@pytest.mark.parametrize("items, version, done, fragment", [
    ([_driver_ds(), _node("gpu1", "upgrade-done")], "580.105.08", True, "driver 580.105.08 on every GPU node"),
    # Precompiled: one DaemonSet per kernel, tagged <branch>-<kernel>-<os>.
    ([_driver_ds("nvidia-driver-daemonset-5.15.0-69-generic-ubuntu22.04", "580-5.15.0-69-generic-ubuntu22.04"),
      _driver_ds("nvidia-driver-daemonset-6.8.0-1015-aws-ubuntu22.04", "580-6.8.0-1015-aws-ubuntu22.04")],
     "580", True, "on every GPU node"),
    # The Operator has not yet put the new version into the DaemonSet (right after helm upgrade).
    ([_driver_ds(tag="570.195.03-ubuntu22.04")], "580.105.08", False, "runs 570.195.03-ubuntu22.04"),
    ([_driver_ds(generation=4, observed=3)], "580.105.08", False, "spec not yet seen"),
    # OnDelete: the upgrade controller replaces pods node by node.
    ([_driver_ds(updated=1), _node("gpu1", "pod-restart-required")], "580.105.08", False, "1/2 nodes updated"),
    ([_driver_ds(available=1)], "580.105.08", False, "2/2 nodes updated, 1 available"),
    # Every pod updated and available, but the upgrade controller has not validated and
    # uncordoned the last node yet.
    ([_driver_ds(), _node("gpu1", "upgrade-done"), _node("gpu2", "uncordon-required")], "580.105.08", False,
     "node gpu2: uncordon-required"),
    ([_driver_ds(), _node("gpu1"), _node("gpu2", "upgrade-done")], "580.105.08", True, "on every GPU node"),
    ([], "580.105.08", False, "no driver DaemonSet"),
    # Another namespace's or another component's DaemonSet does not count.
    ([_driver_ds(namespace="other"), _driver_ds(name="x", component="nvidia-device-plugin-daemonset")],
     "580.105.08", False, "no driver DaemonSet"),
    # A version that only shares a prefix is not the one asked for.
    ([_driver_ds(tag="580.105.080-ubuntu22.04")], "580.105.08", False, "runs 580.105.080"),
])
def test_driver_rollout(items, version, done, fragment):
    state = driver_filter.gpu_operator_driver_rollout(_listing(*items), version, "gpu-operator")
    assert state["done"] is done and fragment in state["summary"], state
    assert state["failed"] == []


def test_driver_rollout_names_the_nodes_that_failed():
    state = _gpu_operator.driver_rollout(_listing(_driver_ds(updated=1), _node("gpu2", "upgrade-failed"),
                                                  _node("gpu1", "upgrade-done")), "580.105.08", "gpu-operator")
    assert state == {"done": False, "failed": ["gpu2"],
                     "summary": "nvidia-driver-daemonset: 1/2 nodes updated, 2 available; upgrade-failed on gpu2"}


def test_driver_rollout_unreadable_answer_is_a_filter_error():
    with pytest.raises(AnsibleFilterError, match="gpu_operator_driver_rollout: kubectl's answer could not be read"):
        driver_filter.gpu_operator_driver_rollout("error: the server doesn't have a resource type", "580", "gpu-operator")
