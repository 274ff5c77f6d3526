# SPDX-License-Identifier: Apache-2.0
"""Render what the day-2 roles apply and check it, as test_k8s_render.py does.

- nfs_client: the nfs-subdir-external-provisioner manifest (every object validated
  strictly against the Kubernetes 1.35 schemas; pinned image, server/path, StorageClass
  options), and the defaults each mount entry gets;
- gpu_operator: the chart values (driver.enabled false with the host driver; with
  nvidia_driver_mode container the Operator's pinned driver container, precompiled where every
  GPU node of this run can have it, and the upgrade policy; toolkit.enabled from
  container_runtime_nvidia_toolkit_install; extra values merged; kubegpu's keys checked against
  the chart's, tests/fixtures/k8s/crd-fields.yaml GpuOperatorValues), and the helm command's
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


def _operator_values(facts=None, host_facts=None, **overrides):
    renderer = k8s.Renderer(EXAMPLE, "gpu_operator", overrides=overrides, facts=facts, host_facts=host_facts)
    text, docs = renderer.render("cp1", "values.yaml.j2")
    assert len(docs) == 1
    renderer.text = text
    return docs[0], renderer


def _check_chart_keys(values, extra=()):
    """kubegpu's own keys against the chart's (the user's gpu_operator_values, ``extra``, are theirs)."""
    ours = dict((key, value) for key, value in values.items() if key not in extra)
    problems = k8s.check_fields(ours, k8s.CRD_FIELDS["GpuOperatorValues"], "values.yaml")
    assert not problems, problems


def test_operator_values_keep_the_host_driver_and_toolkit():
    values, renderer = _operator_values()
    _check_chart_keys(values)
    assert values["driver"] == {"enabled": False}
    assert "host driver kept (driver.enabled=false)" in renderer.text
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


# --- nvidia_driver_mode: container (the Operator's driver containers) ---------------------------

UBUNTU_2204 = {"distribution": "Ubuntu", "distribution_version": "22.04", "kernel": "5.15.0-69-generic",
               "architecture": "x86_64"}
CONTAINER = {"nvidia_driver_mode": "container", "kubegpu_gpu_operator": True,
             "container_runtime_nvidia_toolkit_install": False}


def test_operator_values_container_mode():
    """gpu1 (a GPU node by its facts) runs a Debian kernel: no precompiled image, so the
    conventional driver container of the pinned version; the Operator's toolkit follows."""
    values, renderer = _operator_values(facts={"gpu1": k8s.H100_FACTS},
                                        host_facts={"gpu1": dict(UBUNTU_2204, distribution="Debian",
                                                                 distribution_version="12",
                                                                 kernel="6.1.0-41-amd64")},
                                        **CONTAINER)
    _check_chart_keys(values)
    assert values["driver"] == {
        "enabled": True, "usePrecompiled": False, "version": "580.105.08",
        "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
                          "drain": {"enable": False, "timeoutSeconds": 300}}}
    assert values["toolkit"] == {"enabled": True}
    assert "driver containers 580.105.08 (nvidia_driver_mode container)" in renderer.text
    # The stage's own checks (the same functions preflight calls) pass this setup.
    assert renderer.expr("cp1", "_gpu_operator_driver_settings | kubegpu.cluster.nvidia_driver_mode_problems") == []
    assert renderer.expr("cp1", "_gpu_operator_mode_settings | kubegpu.cluster.gpu_mode_problems") == []


def test_operator_values_container_mode_precompiled_and_upgrade_policy():
    """Every GPU node of this run (gpu1) on a kernel NVIDIA builds precompiled images for: the chart
    gets the branch as driver.version; the CPU nodes' OS does not count."""
    values, renderer = _operator_values(
        facts={"gpu1": k8s.H100_FACTS}, host_facts={"gpu1": UBUNTU_2204},
        gpu_operator_driver_upgrade_max_unavailable=1, gpu_operator_driver_upgrade_max_parallel=0,
        gpu_operator_driver_upgrade_drain=True, gpu_operator_driver_upgrade_auto=False, **CONTAINER)
    _check_chart_keys(values)
    assert values["driver"]["usePrecompiled"] is True and values["driver"]["version"] == "580"
    assert "version: '580'" in renderer.text     # a string, as the chart quotes it
    assert values["driver"]["upgradePolicy"] == {"autoUpgrade": False, "maxParallelUpgrades": 0,
                                                 "maxUnavailable": 1, "drain": {"enable": True, "timeoutSeconds": 300}}
    # upgrade_driver.yml waits for this version.
    assert renderer.expr("cp1", "_gpu_operator_driver_version") == "580"


def test_operator_values_container_mode_a_new_version_changes_one_value():
    """upgrade_driver.yml's change: only driver.version differs, so helm makes one revision."""
    before, _renderer = _operator_values(facts={"gpu1": k8s.H100_FACTS}, **CONTAINER)
    after, renderer = _operator_values(facts={"gpu1": k8s.H100_FACTS}, gpu_operator_driver_version="580.126.09",
                                       **CONTAINER)
    assert after["driver"]["version"] == "580.126.09"
    assert dict(after, driver=dict(after["driver"], version=before["driver"]["version"])) == before
    release = renderer.expr("cp1", "_gpu_operator_release_spec")
    assert release["values"] == after


def test_operator_values_container_mode_refused_by_the_stage():
    """The stage refuses what preflight refuses (the same functions): container mode with the host's toolkit
    and the driver version given in gpu_operator_values."""
    _values, renderer = _operator_values(nvidia_driver_mode="container", kubegpu_gpu_operator=True,
                                         gpu_operator_values={"driver": {"version": "570.195.03"}})
    problems = renderer.expr("cp1", "_gpu_operator_driver_settings | kubegpu.cluster.nvidia_driver_mode_problems")
    assert [p["variable"] for p in problems] == ["container_runtime_nvidia_toolkit_install", "gpu_operator_values"]
    # ... and the host-driver rule stays quiet about driver.* in container mode.
    assert renderer.expr("cp1", "_gpu_operator_mode_settings | kubegpu.cluster.gpu_mode_problems") == []


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
