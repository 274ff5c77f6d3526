# SPDX-License-Identifier: Apache-2.0
"""The nvidia_dra_driver role's manifests (DRA mode), rendered with Ansible's own templating as
tests/unit/test_k8s_render.py renders the other roles', validated strictly against the
Kubernetes 1.35 schemas (resource.k8s.io/v1 DeviceClass included), and the playbook wiring:
stage 7 runs the DRA driver or the device plugin, never both."""
from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from ansible_collections.kubegpu.cluster.tests.unit.test_k8s_render import (  # noqa: F401  (collection finder first)
    EXAMPLE, Renderer, by_kind, validate_k8s)

ROOT = Path(__file__).resolve().parents[3]
ROLE = ROOT / "roles" / "nvidia_dra_driver"


def _render(overrides=None):
    renderer = Renderer(EXAMPLE, "nvidia_dra_driver", overrides=overrides)
    _text, docs = renderer.render("cp1", "dra-driver-gpu.yaml.j2")
    for doc in docs:
        validate_k8s(doc)
    return renderer, docs


def test_every_template_is_rendered_here():
    assert sorted(p.name for p in (ROLE / "templates").iterdir()) == ["dra-driver-gpu.yaml.j2"]
    renderer = Renderer(EXAMPLE, "nvidia_dra_driver")
    assert [m + ".j2" for m in renderer.expr("cp1", "_nvidia_dra_driver_manifests")] == ["dra-driver-gpu.yaml.j2"]


def test_the_objects_validate_against_the_1_35_schemas():
    _renderer, docs = _render()
    assert [(d["apiVersion"], d["kind"]) for d in docs] == [
        ("v1", "Namespace"), ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"), ("resource.k8s.io/v1", "DeviceClass"),
        ("resource.k8s.io/v1", "DeviceClass"), ("apps/v1", "DaemonSet")]
    namespaces = set(d["metadata"].get("namespace") for d in docs if d["kind"] in ("ServiceAccount", "DaemonSet"))
    assert namespaces == {"nvidia-dra-driver-gpu"}


def test_the_device_classes_select_the_drivers_gpus_and_mig_devices():
    _renderer, docs = _render()
    classes = dict((d["metadata"]["name"], d["spec"]) for d in by_kind(docs, "DeviceClass"))
    assert classes == {
        "gpu.nvidia.com": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"
                                                                " && device.attributes['gpu.nvidia.com'].type == 'gpu'"}}]},
        "mig.nvidia.com": {"selectors": [{"cel": {"expression": "device.driver == 'gpu.nvidia.com'"
                                                                " && device.attributes['gpu.nvidia.com'].type == 'mig'"}}]},
    }


def test_the_kubelet_plugin_is_pinned_and_placed_on_gpu_nodes():
    _renderer, docs = _render()
    [daemonset] = by_kind(docs, "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["name"] == "gpus"
    assert container["image"] == "nvcr.io/nvidia/k8s-dra-driver-gpu:v25.12.0"
    assert pod["initContainers"][0]["image"] == container["image"]
    assert container["command"] == ["gpu-kubelet-plugin"]
    env = dict((e["name"], e.get("value")) for e in container["env"])
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert env["CDI_ROOT"] == "/var/run/cdi"
    assert env["NVIDIA_DRIVER_ROOT"] == "/"
    assert env["KUBELET_PLUGINS_DIRECTORY_PATH"] == "/var/lib/kubelet/plugins"
    assert env["HEALTHCHECK_PORT"] == "51516"
    assert container["startupProbe"]["grpc"] == {"port": 51516, "service": "liveness"}
    volumes = dict((v["name"], v["hostPath"]["path"]) for v in pod["volumes"])
    assert volumes == {"plugins-registry": "/var/lib/kubelet/plugins_registry", "plugins": "/var/lib/kubelet/plugins",
                       "cdi": "/var/run/cdi", "driver-root-parent": "/", "driver-root": "/"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}]}]
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]


def test_options_reach_the_manifest():
    _renderer, docs = _render({"nvidia_dra_driver_version": "v25.8.1", "nvidia_dra_driver_healthcheck_port": 0,
                               "nvidia_dra_driver_driver_root": "/run/nvidia/driver",
                               "nvidia_dra_driver_cdi_root": "/etc/cdi"})
    pod = by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "nvcr.io/nvidia/k8s-dra-driver-gpu:v25.8.1"
    assert "startupProbe" not in container and "livenessProbe" not in container
    volumes = dict((v["name"], v["hostPath"]["path"]) for v in pod["volumes"])
    assert volumes["driver-root-parent"] == "/run/nvidia"
    assert volumes["cdi"] == "/etc/cdi"


def test_schema_validation_catches_a_misspelt_device_class_field():
    _renderer, docs = _render()
    device_class = by_kind(docs, "DeviceClass")[0]
    device_class["spec"]["selector"] = device_class["spec"].pop("selectors")
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(device_class)


def test_the_mode_settings_the_role_checks():
    renderer = Renderer(EXAMPLE, "nvidia_dra_driver", overrides={"kubegpu_gpu_allocation": "dra"})
    assert renderer.expr("cp1", "_nvidia_dra_driver_mode_settings | kubegpu.cluster.dra_mode_problems") == []
    renderer = Renderer(EXAMPLE, "nvidia_dra_driver", overrides={
        "kubegpu_gpu_allocation": "dra", "kubernetes_version": "1.33.4", "nvidia_device_plugin_time_slicing_replicas": 2})
    problems = renderer.expr("cp1", "_nvidia_dra_driver_mode_settings | kubegpu.cluster.dra_mode_problems")
    assert [p["variable"] for p in problems] == ["kubegpu_gpu_allocation", "nvidia_device_plugin_time_slicing_replicas"]


def test_stage_7_runs_one_of_the_two():
    site = [play["ansible.builtin.import_playbook"] for play in
            yaml.safe_load((ROOT / "playbooks" / "site.yml").read_text(encoding="utf-8"))]
    assert site.index("nvidia_dra_driver.yml") == site.index("nvidia_device_plugin.yml") + 2
    assert site.index("nvidia_dra_driver.yml") < site.index("gpu_node_labels.yml")
    [play] = yaml.safe_load((ROOT / "playbooks" / "nvidia_dra_driver.yml").read_text(encoding="utf-8"))
    assert play["tags"] == ["nvidia_dra_driver"]
    assert play["roles"] == [{"role": "kubegpu.cluster.nvidia_dra_driver", "when": "kubegpu_gpu_allocation == 'dra'"}]
    plugin = yaml.safe_load((ROOT / "playbooks" / "nvidia_device_plugin.yml").read_text(encoding="utf-8"))[1]
    assert "kubegpu_gpu_allocation != 'dra'" in plugin["roles"][0]["when"]


# --- validate in DRA mode (roles/validate, shared with the device plugin mode) ----------------

H100_FACTS = {"count": 2, "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "architecture": "hopper"}
                                   for i in range(2)],
              "driver": {"loaded": True, "version": "580.159.04"}, "cuda_driver_version": "13.0"}


def test_the_validate_job_claims_its_gpu_in_dra_mode():
    renderer = Renderer(EXAMPLE, "validate", overrides={"kubegpu_gpu_allocation": "dra"}, facts={"gpu1": H100_FACTS})
    assert renderer.expr("gpu1", "_validate_job_resource") == "gpu.nvidia.com"
    suffix = renderer.expr("gpu1", "_validate_job_suffix")
    name = "kubegpu-validate-nvidia-smi-%s-0123456789" % suffix
    _text, docs = renderer.render(
        "gpu1", "job.yaml.j2", _validate_job_kind="nvidia-smi", _validate_job_image="nvcr.io/nvidia/cuda:12.2.2-base-ubuntu22.04",
        _validate_job_command=["nvidia-smi"], _validate_job_name=name, _validate_runtime_class_name="")
    for doc in docs:
        validate_k8s(doc)
    template, job = docs
    assert (template["apiVersion"], template["kind"]) == ("resource.k8s.io/v1", "ResourceClaimTemplate")
    assert template["metadata"]["name"] == name
    assert template["metadata"]["labels"]["kubegpu.io/node"] == job["metadata"]["labels"]["kubegpu.io/node"]
    assert template["spec"]["spec"]["devices"]["requests"] == [
        {"name": "gpu", "exactly": {"deviceClassName": "gpu.nvidia.com", "count": 1}}]
    pod = job["spec"]["template"]["spec"]
    assert pod["resourceClaims"] == [{"name": "gpu", "resourceClaimTemplateName": name}]
    assert pod["containers"][0]["resources"] == {"claims": [{"name": "gpu"}]}
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "gpu1"}


def test_the_validate_job_keeps_its_limits_in_device_plugin_mode():
    renderer = Renderer(EXAMPLE, "validate", facts={"gpu1": H100_FACTS})
    _text, docs = renderer.render(
        "gpu1", "job.yaml.j2", _validate_job_kind="nvidia-smi", _validate_job_image="img", _validate_job_resource="nvidia.com/gpu",
        _validate_job_command=["nvidia-smi"], _validate_job_name="kubegpu-validate-nvidia-smi-gpu1-0", _validate_runtime_class_name="")
    [job] = docs
    assert job["spec"]["template"]["spec"]["containers"][0]["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert "resourceClaims" not in job["spec"]["template"]["spec"]


def _slices(node, count):
    return {"items": [{"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
                       "spec": {"driver": "gpu.nvidia.com", "nodeName": node,
                                "devices": [{"name": "gpu-%d" % i, "attributes": {"type": {"string": "gpu"}}}
                                            for i in range(count)]}}]}


def test_the_wait_reads_the_resource_slices_in_dra_mode():
    import json
    renderer = Renderer(EXAMPLE, "validate", overrides={"kubegpu_gpu_allocation": "dra"}, facts={"gpu1": H100_FACTS},
                        published={"gpu1": {"_validate_slices_read": {"stdout": json.dumps(_slices("gpu1", 1))}}})
    assert renderer.expr("gpu1", "_validate_slice_problems") == [
        "gpu1 publishes 1 GPU device(s) of driver gpu.nvidia.com in its ResourceSlices, 2 expected"]
    renderer = Renderer(EXAMPLE, "validate", overrides={"kubegpu_gpu_allocation": "dra"}, facts={"gpu1": H100_FACTS},
                        published={"gpu1": {"_validate_slices_read": {"stdout": json.dumps(_slices("gpu1", 2))}}})
    assert renderer.expr("gpu1", "_validate_slice_problems") == []
    # Allocatable is not asked for nvidia.com/gpu in DRA mode; it is in the default mode.
    node = {"items": [{"metadata": {"name": "gpu1", "labels": {}},
                       "status": {"conditions": [{"type": "Ready", "status": "True"}], "allocatable": {}}}]}
    published = {"gpu1": {"_validate_node_read": {"stdout": json.dumps(node)}}}
    dra = Renderer(EXAMPLE, "validate", overrides={"kubegpu_gpu_allocation": "dra"}, facts={"gpu1": H100_FACTS},
                   published=published)
    assert dra.expr("gpu1", "_validate_node_problems") == []
    plugin = Renderer(EXAMPLE, "validate", facts={"gpu1": H100_FACTS}, published=published)
    assert plugin.expr("gpu1", "_validate_node_problems")
    assert plugin.expr("gpu1", "_validate_slice_problems") == []


def test_the_report_row_counts_published_gpus_in_dra_mode():
    """validate's report row (tasks/main.yml, "Build this node's report row"): in DRA mode the GPU
    column is what the node's ResourceSlices publish against this run's GPU count."""
    import json
    tasks = yaml.safe_load((ROOT / "roles" / "validate" / "tasks" / "main.yml").read_text(encoding="utf-8"))
    [row] = [t for t in tasks if t.get("name") == "Build this node's report row"]
    expression = row["ansible.builtin.set_fact"]["_validate_row"]["gpus"].strip()[2:-2]
    published = {"gpu1": {"_validate_slices_read": {"stdout": json.dumps(_slices("gpu1", 1))},
                          "_validate_node": {"extended": {"nvidia.com/gpu": "2"}}}}
    dra = Renderer(EXAMPLE, "validate", overrides={"kubegpu_gpu_allocation": "dra"}, facts={"gpu1": H100_FACTS},
                   published=published)
    assert dra.expr("gpu1", expression) == "gpu.nvidia.com 1/2"
    assert dra.expr("cp1", expression) == "-"
    plugin = Renderer(EXAMPLE, "validate", facts={"gpu1": H100_FACTS}, published=published)
    assert plugin.expr("gpu1", expression) == "gpu 2/2"
