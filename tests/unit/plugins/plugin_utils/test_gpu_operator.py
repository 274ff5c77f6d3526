# SPDX-License-Identifier: Apache-2.0
"""The GPU Operator's Helm release (plugin_utils/_gpu_operator.py, filters in plugins/filter/gpu.py):
the helm upgrade command, and when it must run (roles/gpu_operator/tasks/operator.yml)."""
from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

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
