# SPDX-License-Identifier: Apache-2.0
"""Every example under examples/ is a valid Kubernetes object for the target version.

- Plain manifests (examples/jupyter-tensorflow-gpu, examples/gpu-pods) are loaded and
  validated strictly (unknown fields fail) against the Kubernetes 1.35 schemas.
- The Helm chart examples/helm/gpu-app is rendered by the real ``helm template`` (no
  helm re-implementation here) with gpu_enable true and false, ingress on and off, and
  every rendered object is validated the same way. helm is found at $KUBEGPU_HELM or
  on PATH; without it these cases are skipped with the reason (docs/day2.md says how to
  get the binary offline). ``helm lint`` runs too.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHART = EXAMPLES / "helm" / "gpu-app"
K8S_SCHEMA_VERSION = "1.35.0"
GPU_LABEL = "nvidia.com/gpu.present"

MANIFESTS = sorted(p for p in EXAMPLES.rglob("*.yaml") if CHART not in p.parents)


def validate(doc):
    kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)


def load(path):
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def pod_spec(doc):
    return doc["spec"] if doc["kind"] == "Pod" else doc["spec"]["template"]["spec"]


def helm():
    found = os.environ.get("KUBEGPU_HELM") or shutil.which("helm")
    if not found:
        pytest.skip("helm not found ($KUBEGPU_HELM or PATH): the chart cannot be rendered honestly here")
    return found


def helm_template(*sets):
    argv = [helm(), "template", "demo", str(CHART)]
    for item in sets:
        argv += ["--set", item]
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d is not None]


def test_there_are_examples():
    names = {p.relative_to(EXAMPLES).as_posix() for p in MANIFESTS}
    assert {"gpu-pods/single-gpu.yaml", "gpu-pods/two-gpus.yaml", "gpu-pods/time-sliced.yaml",
            "gpu-pods/mig-1g.10gb.yaml", "jupyter-tensorflow-gpu/tf-notebook.yaml"} <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_manifest_is_valid(path):
    docs = load(path)
    assert docs
    for doc in docs:
        validate(doc)
        if doc["kind"] in ("Pod", "Deployment"):
            for container in pod_spec(doc)["containers"]:
                assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("name, resource, count", [
    ("single-gpu.yaml", "nvidia.com/gpu", 1),
    ("two-gpus.yaml", "nvidia.com/gpu", 2),
    ("time-sliced.yaml", "nvidia.com/gpu", 1),
    ("mig-1g.10gb.yaml", "nvidia.com/mig-1g.10gb", 1),
])
def test_gpu_pods_request_what_they_say(name, resource, count):
    (pod,) = load(EXAMPLES / "gpu-pods" / name)
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {resource: count}
    assert pod["spec"]["nodeSelector"] == {GPU_LABEL: "true"}


def test_jupyter_password_comes_from_a_secret():
    deployment, service = load(EXAMPLES / "jupyter-tensorflow-gpu" / "tf-notebook.yaml")
    container = pod_spec(deployment)["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "tf-notebook", "key": "token"}
    assert all("value" not in e for e in container["env"])
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert service["spec"]["type"] == "ClusterIP"


@pytest.mark.parametrize("gpu_enable", [True, False])
@pytest.mark.parametrize("ingress", [True, False])
def test_chart_renders_valid_objects(gpu_enable, ingress):
    docs = helm_template("gpu_enable=%s" % str(gpu_enable).lower(), "ingress.enabled=%s" % str(ingress).lower())
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == sorted(["Deployment", "Service"] + (["Ingress"] if ingress else []))
    for doc in docs:
        validate(doc)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    spec = pod_spec(deployment)
    container = spec["containers"][0]
    assert container["readinessProbe"]["tcpSocket"]["port"] == "http"
    assert container["livenessProbe"]["tcpSocket"]["port"] == "http"
    if gpu_enable:
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert spec["nodeSelector"] == {GPU_LABEL: "true"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert "affinity" not in spec
    else:
        assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
        assert "nodeSelector" not in spec
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": GPU_LABEL, "operator": "DoesNotExist"}]}]


def test_chart_gpu_count_and_mounts():
    docs = helm_template("gpu_enable=true", "gpuCount=2", "hostPathMounts[0].name=models",
                         "hostPathMounts[0].hostPath=/mnt/models", "hostPathMounts[0].mountPath=/models",
                         "hostPathMounts[0].readOnly=true")
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    validate(deployment)
    spec = pod_spec(deployment)
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert spec["volumes"] == [{"name": "models", "hostPath": {"path": "/mnt/models", "type": "Directory"}}]
    assert spec["containers"][0]["volumeMounts"] == [{"name": "models", "mountPath": "/models", "readOnly": True}]


def test_chart_lints():
    result = subprocess.run([helm(), "lint", "--strict", str(CHART)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name, containers", [("single-gpu.yaml", 1), ("shared-gpu.yaml", 2)])
def test_dra_examples_claim_a_gpu_of_nvidias_device_class(name, containers):
    """examples/dra (kubegpu_gpu_allocation: dra): each pod claims through a ResourceClaimTemplate of
    the same file, one request of DeviceClass gpu.nvidia.com, which every container names; no
    nvidia.com/gpu limits (the device plugin is not deployed in DRA mode)."""
    docs = load(EXAMPLES / "dra" / name)
    [template] = [d for d in docs if d["kind"] == "ResourceClaimTemplate"]
    assert template["apiVersion"] == "resource.k8s.io/v1"
    [request] = template["spec"]["spec"]["devices"]["requests"]
    assert request["exactly"]["deviceClassName"] == "gpu.nvidia.com"
    assert request["exactly"].get("count", 1) == 1
    [pod] = [d for d in docs if d["kind"] == "Pod"]
    [claim] = pod["spec"]["resourceClaims"]
    assert claim["resourceClaimTemplateName"] == template["metadata"]["name"]
    assert len(pod["spec"]["containers"]) == containers
    for container in pod["spec"]["containers"]:
        assert container["resources"] == {"claims": [{"name": claim["name"]}]}


# --- per-model placement in the chart (issue #18 item 6) ------------------------------------------

def _chart_pod_spec(*sets):
    docs = helm_template(*sets)
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    validate(deployment)
    return pod_spec(deployment)


def test_chart_places_a_gpu_model_by_its_product_label():
    spec = _chart_pod_spec("gpu_enable=true", "gpuProduct=NVIDIA-H100-80GB-HBM3", "gpuCount=4")
    assert spec["nodeSelector"] == {GPU_LABEL: "true", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 4


def test_chart_places_a_gpu_model_by_a_vendor_label_set():
    """Seed 003's nodes carry Alibaba Cloud's labels only: no kubegpu label, the vendor's name."""
    spec = _chart_pod_spec("gpu_enable=true", "gpuNodeLabel=",
                           "gpuNodeSelector.aliyun\\.accelerator/nvidia_name=Tesla-P4")
    assert spec["nodeSelector"] == {"aliyun.accelerator/nvidia_name": "Tesla-P4"}
    off = _chart_pod_spec("gpu_enable=false", "gpuNodeLabel=")
    assert "affinity" not in off and "nodeSelector" not in off


@pytest.mark.parametrize("setting, fragment", [
    ("gpuProduct=Tesla P4", "/gpuProduct"),
    ("gpuCount=0", "/gpuCount"),
    ("service.type=Loadbalancer", "/service/type"),
    ("gpuNodeSelector.bad label=x", "invalid propertyName 'bad label'"),
])
def test_chart_schema_refuses_bad_values(setting, fragment):
    argv = [helm(), "template", "demo", str(CHART), "--set", "gpu_enable=true", "--set", setting]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0 and fragment in result.stderr, result.stderr
