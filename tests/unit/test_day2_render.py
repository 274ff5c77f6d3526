# SPDX-License-Identifier: Apache-2.0
"""Render what the day-2 roles apply and check it, as test_k8s_render.py does.

- nfs_client: the nfs-subdir-external-provisioner manifest (every object validated
  strictly against the Kubernetes 1.35 schemas; pinned image, server/path, StorageClass
  options), and the defaults each mount entry gets;
- gpu_operator: the chart values (driver.enabled false always; toolkit.enabled from
  container_runtime_nvidia_toolkit_install; extra values merged), and the helm command's
  change guard;
- preflight's GPU mode rules (plugin_utils/_preflight_rules.py): the contradictions it refuses.
The Renderer (Ansible's own Templar with role defaults, vars and an inventory) comes from
test_k8s_render.py.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("kubegpu_test_k8s_render", HERE / "test_k8s_render.py")
k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s)

ROOT = HERE.parents[1]
EXAMPLE = k8s.EXAMPLE


def test_provisioner_manifest_is_valid():
    renderer = k8s.Renderer(EXAMPLE, "nfs_client", overrides={
        "nfs_client_storage_class_enabled": True,
        "nfs_client_provisioner_server": "nas.example.com",
        "nfs_client_provisioner_path": "/export/k8s",
        "nfs_client_storage_class_default": True,
        "nfs_client_storage_class_mount_options": ["nfsvers=4.1", "hard"],
    })
    _text, docs = renderer.render("cp1", "nfs-subdir-external-provisioner.yaml.j2")
    for doc in docs:
        k8s.validate_k8s(doc)
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
                                         "Role", "RoleBinding", "Deployment", "StorageClass"]
    (deployment,) = k8s.by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.k8s.io/sig-storage/nfs-subdir-external-provisioner:v4.0.2"
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"PROVISIONER_NAME": "k8s-sigs.io/nfs-subdir-external-provisioner",
                   "NFS_SERVER": "nas.example.com", "NFS_PATH": "/export/k8s"}
    assert pod["volumes"][0]["nfs"] == {"server": "nas.example.com", "path": "/export/k8s"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    (sc,) = k8s.by_kind(docs, "StorageClass")
    assert sc["provisioner"] == env["PROVISIONER_NAME"]
    assert sc["parameters"] == {"archiveOnDelete": "true"}
    assert sc["mountOptions"] == ["nfsvers=4.1", "hard"]
    assert sc["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}


def test_provisioner_manifest_minimal():
    renderer = k8s.Renderer(EXAMPLE, "nfs_client", overrides={
        "nfs_client_provisioner_server": "10.0.0.5", "nfs_client_provisioner_path": "/srv/nfs",
        "nfs_client_storage_class_archive_on_delete": False})
    _text, docs = renderer.render("cp1", "nfs-subdir-external-provisioner.yaml.j2")
    for doc in docs:
        k8s.validate_k8s(doc)
    (sc,) = k8s.by_kind(docs, "StorageClass")
    assert "annotations" not in sc["metadata"] and "mountOptions" not in sc
    assert sc["parameters"] == {"archiveOnDelete": "false"}


def _operator_values(**overrides):
    renderer = k8s.Renderer(EXAMPLE, "gpu_operator", overrides=overrides)
    text, docs = renderer.render("cp1", "values.yaml.j2")
    assert len(docs) == 1
    return docs[0], renderer


def test_operator_values_keep_the_host_driver_and_toolkit():
    values, _renderer = _operator_values()
    assert values["driver"] == {"enabled": False}
    # container_runtime installs the toolkit by default: the Operator does not
    assert values["toolkit"] == {"enabled": False}
    assert values["devicePlugin"] == {"enabled": True}
    assert values["gfd"] == {"enabled": True}
    assert values["mig"] == {"strategy": "single"}


@pytest.mark.parametrize("runtime_toolkit, setting, expected", [
    (True, "auto", False), (False, "auto", True), (False, True, True), (True, False, False)])
def test_operator_toolkit_follows_the_runtime_stage(runtime_toolkit, setting, expected):
    values, _renderer = _operator_values(container_runtime_nvidia_toolkit_install=runtime_toolkit,
                                         gpu_operator_toolkit_enabled=setting)
    assert values["toolkit"] == {"enabled": expected}


def test_operator_extra_values_are_merged():
    values, renderer = _operator_values(gpu_operator_values={"dcgmExporter": {"serviceMonitor": {"enabled": True}},
                                                             "nfd": {"enabled": False}})
    assert values["dcgmExporter"] == {"enabled": True, "serviceMonitor": {"enabled": True}}
    assert values["nfd"] == {"enabled": False}
    assert values["driver"] == {"enabled": False}
    # the change guard compares helm's values with exactly these
    assert renderer.expr("cp1", "_gpu_operator_values") == values


def test_validate_job_tolerates_cordoned_nodes():
    """add_node and upgrade_driver validate cordoned nodes: the smoke Job must tolerate
    node.kubernetes.io/unschedulable (the scheduler's NodeUnschedulable filter honours it)."""
    renderer = k8s.Renderer(EXAMPLE, "validate", overrides={
        "_validate_job_name": "kubegpu-validate-nvidia-smi-gpu1", "_validate_job_kind": "nvidia-smi",
        "_validate_job_image": "nvcr.io/nvidia/cuda:12.2.2-base-ubuntu22.04", "_validate_job_command": ["nvidia-smi"], "_validate_job_suffix": "gpu1",
        "_validate_job_resource": "nvidia.com/gpu"})
    _text, docs = renderer.render("gpu1", "job.yaml.j2")
    tolerations = docs[0]["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"} in tolerations
