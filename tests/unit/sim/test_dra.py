# SPDX-License-Identifier: Apache-2.0
"""DRA in the simulated control plane (tests/sim/kubegpu_sim/dra.py): the CEL subset, the
structured allocator, the resource-claim controller and the scheduler through the
controller manager (against the in-memory FakeApi), NVIDIA's kubelet plugin slice and the
kubelet's claim preparation."""
from __future__ import annotations

import datetime
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

import fake_api  # noqa: E402
from kubegpu_sim import controller_manager as cm  # noqa: E402
from kubegpu_sim import controllers_rules as rules  # noqa: E402
from kubegpu_sim import dra  # noqa: E402
from kubegpu_sim import workloads  # noqa: E402

GPU_CLASS = {"metadata": {"name": "gpu.nvidia.com"}, "spec": {"selectors": [{"cel": {"expression":
             "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'"}}]}}
MIG_CLASS = {"metadata": {"name": "mig.nvidia.com"}, "spec": {"selectors": [{"cel": {"expression":
             "device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'mig'"}}]}}
GPUS = [{"index": i, "uuid": "GPU-%d" % i, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559, "mig_devices": []}
        for i in range(2)]


def gpu_slice(node, count=2):
    return dra.node_slice(node, GPUS[:count], "580.159.04")


# -- CEL subset ------------------------------------------------------------------------------
@pytest.mark.parametrize("expression, driver, matches", [
    ("device.driver == 'gpu.nvidia.com'", "gpu.nvidia.com", True),
    ('device.driver == "gpu.nvidia.com"', "other.example.com", False),
    ("device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'gpu'", "gpu.nvidia.com", True),
    ("device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type == 'mig'", "gpu.nvidia.com", False),
    ("device.attributes['gpu.nvidia.com'].uuid == 'GPU-0'", "gpu.nvidia.com", True),
    ("device.attributes['other.example.com'].type == 'gpu'", "gpu.nvidia.com", False),
    ("device.capacity['gpu.nvidia.com'].memory.compareTo(quantity('40Gi')) >= 0", "gpu.nvidia.com", False),
])
def test_the_cel_subset(expression, driver, matches):
    device = gpu_slice("gpu1")["spec"]["devices"][0]
    assert dra.cel_matches(expression, driver, device) is matches


def test_the_nvidia_slice_names_devices_by_minor_with_their_attributes():
    found = gpu_slice("gpu1")
    assert found["spec"]["driver"] == "gpu.nvidia.com"
    assert found["spec"]["nodeName"] == "gpu1"
    assert found["spec"]["pool"] == {"name": "gpu1", "generation": 1, "resourceSliceCount": 1}
    assert [d["name"] for d in found["spec"]["devices"]] == ["gpu-0", "gpu-1"]
    assert found["spec"]["devices"][1]["attributes"]["uuid"] == {"string": "GPU-1"}
    assert found["spec"]["devices"][0]["attributes"]["type"] == {"string": "gpu"}


# -- allocator -----------------------------------------------------------------------------
def claim(name, count=None, mode=None, device_class="gpu.nvidia.com", status=None):
    exact = {"deviceClassName": device_class}
    if count is not None:
        exact["count"] = count
    if mode:
        exact["allocationMode"] = mode
    return {"metadata": {"name": name, "namespace": "default", "uid": "uid-" + name},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": exact}]}}, "status": status or {}}


def test_allocation_takes_free_matching_devices_of_the_node():
    slices = [gpu_slice("gpu1"), gpu_slice("gpu2", 1)]
    result = dra.allocate(claim("a"), "gpu1", slices, [GPU_CLASS], set())
    assert result["devices"]["results"] == [{"request": "gpu", "driver": "gpu.nvidia.com", "pool": "gpu1",
                                             "device": "gpu-0"}]
    assert result["nodeSelector"]["nodeSelectorTerms"][0]["matchFields"] == [
        {"key": "metadata.name", "operator": "In", "values": ["gpu1"]}]
    used = {("gpu.nvidia.com", "gpu1", "gpu-0")}
    assert dra.allocate(claim("b"), "gpu1", slices, [GPU_CLASS], used)["devices"]["results"][0]["device"] == "gpu-1"
    assert dra.allocate(claim("c", count=2), "gpu2", slices, [GPU_CLASS], set()) is None
    assert len(dra.allocate(claim("d", mode="All"), "gpu1", slices, [GPU_CLASS], set())["devices"]["results"]) == 2
    assert dra.allocate(claim("e", device_class="mig.nvidia.com"), "gpu1", slices, [GPU_CLASS, MIG_CLASS], set()) is None
    assert dra.allocate(claim("f", device_class="missing"), "gpu1", slices, [GPU_CLASS], set()) is None
    assert dra.allocate(claim("g"), "cpu1", slices, [GPU_CLASS], set()) is None


def test_feasible_nodes_wait_for_claims_and_honour_allocations():
    pod = {"metadata": {"name": "p", "namespace": "default", "uid": "pod-uid"},
           "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimName": "a"}]}}
    nodes = [{"metadata": {"name": n}} for n in ("cpu1", "gpu1", "gpu2")]
    slices = [gpu_slice("gpu1"), gpu_slice("gpu2", 1)]
    assert dra.feasible_nodes(pod, nodes, [], slices, [GPU_CLASS])[2] == dra.REASON_CLAIM_MISSING
    ok, plans, waiting = dra.feasible_nodes(pod, nodes, [claim("a")], slices, [GPU_CLASS])
    assert waiting is None and [n["metadata"]["name"] for n in ok] == ["gpu1", "gpu2"]
    # gpu2's one GPU is taken by another claim: only gpu1 is left.
    taken = claim("other", status={"allocation": dra.allocate(claim("x"), "gpu2", slices, [GPU_CLASS], set())})
    ok, plans, _w = dra.feasible_nodes(pod, nodes, [claim("a"), taken], slices, [GPU_CLASS])
    assert [n["metadata"]["name"] for n in ok] == ["gpu1"] and plans["gpu1"]["a"]["devices"]["results"]
    # An allocated claim pins the node.
    pinned = claim("a", status={"allocation": dra.allocate(claim("a"), "gpu2", slices, [GPU_CLASS], set())})
    ok, _plans, _w = dra.feasible_nodes(pod, nodes, [pinned], slices, [GPU_CLASS])
    assert [n["metadata"]["name"] for n in ok] == ["gpu2"]


def test_generated_names_keep_both_parts():
    assert dra.generate_name("pod", "gpu") == "pod-gpu-"
    long = dra.generate_name("p" * 60, "c" * 20)
    assert len(long) <= 58 and long.startswith("p") and long.endswith("c")


def test_claim_cleanup():
    pods = [{"metadata": {"name": "p", "uid": "u1"}, "status": {"phase": "Running"}},
            {"metadata": {"name": "done", "uid": "u2"}, "status": {"phase": "Succeeded"}}]
    owned = {"ownerReferences": [{"kind": "Pod", "name": "p", "uid": "u1", "controller": True}]}
    reserved = {"allocation": {"devices": {}}, "reservedFor": [{"resource": "pods", "uid": "u1"}]}
    mine = {"metadata": dict(owned, name="c"), "status": dict(reserved)}
    assert dra.claim_cleanup(mine, pods) == ("keep", [{"resource": "pods", "uid": "u1"}])
    gone = {"metadata": dict(owned, name="c"), "status": dict(reserved)}
    assert dra.claim_cleanup(gone, pods[1:])[0] == "delete"
    shared = {"metadata": {"name": "s"}, "status": {"allocation": {"devices": {}}, "reservedFor": [
        {"resource": "pods", "uid": "u1"}, {"resource": "pods", "uid": "u2"}]}}
    assert dra.claim_cleanup(shared, pods) == ("unreserve", [{"resource": "pods", "uid": "u1"}])
    unused = {"metadata": {"name": "s"},
              "status": {"allocation": {"devices": {}}, "reservedFor": [{"resource": "pods", "uid": "u2"}]}}
    assert dra.claim_cleanup(unused, pods) == ("deallocate", [])


# -- the controller manager: claim from template, allocation, reservation, bind -----------------
@pytest.fixture
def env(monkeypatch):
    for plural, kind in (("resourceclaims", "ResourceClaim"), ("resourceclaimtemplates", "ResourceClaimTemplate"),
                         ("resourceslices", "ResourceSlice"), ("deviceclasses", "DeviceClass")):
        monkeypatch.setitem(fake_api.KINDS, plural, ("resource.k8s.io/v1", kind))
    monkeypatch.setattr(fake_api, "NAMESPACED", fake_api.NAMESPACED | {"resourceclaims", "resourceclaimtemplates"})
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    api = fake_api.FakeApi(now_text=lambda: rules.now_rfc3339(now))
    lines = []
    manager = cm.ControllerManager(api, clock=lambda: now, logger=lines.append)
    for name in ("cpu1", "gpu1"):
        api.add("nodes", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                          "spec": {}, "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                                                 "conditions": [{"type": "Ready", "status": "True",
                                                                 "lastHeartbeatTime": api.now_text()}]}})
        api.add("leases", {"metadata": {"name": name, "namespace": "kube-node-lease"},
                           "spec": {"renewTime": api.now_text()}})
    api.add("deviceclasses", GPU_CLASS)
    api.add("resourceslices", gpu_slice("gpu1", 1))
    api.add("resourceclaimtemplates", {"metadata": {"name": "one-gpu", "namespace": "default"},
                                       "spec": {"spec": claim("t")["spec"]}})
    return api, manager, lines


def claiming_pod(name):
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "one-gpu"}],
                     "containers": [{"name": "c", "image": "cuda", "resources": {"claims": [{"name": "gpu"}]}}]},
            "status": {"phase": "Pending"}}


def test_a_pod_gets_its_claim_allocated_and_is_bound(env):
    api, manager, lines = env
    api.add("pods", claiming_pod("smoke"))
    manager.sync_once()
    pod = api.obj("pods", "smoke", "default")
    [status] = pod["status"]["resourceClaimStatuses"]
    assert status["name"] == "gpu" and status["resourceClaimName"].startswith("smoke-gpu-")
    made = api.obj("resourceclaims", status["resourceClaimName"], "default")
    assert made["metadata"]["annotations"][dra.POD_CLAIM_ANNOTATION] == "gpu"
    assert made["metadata"]["ownerReferences"][0]["uid"] == pod["metadata"]["uid"]
    assert made["status"]["allocation"]["devices"]["results"] == [
        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "gpu1", "device": "gpu-0"}]
    assert made["status"]["reservedFor"] == [{"resource": "pods", "name": "smoke", "uid": pod["metadata"]["uid"]}]
    assert pod["spec"]["nodeName"] == "gpu1"
    assert any("allocated resourceclaim default/" in line for line in lines)
    # The only GPU is taken: a second pod gets its claim but stays unschedulable.
    api.add("pods", claiming_pod("second"))
    manager.sync_once()
    second = api.obj("pods", "second", "default")
    assert "nodeName" not in second["spec"]
    cond = rules.condition(second, "PodScheduled")
    assert cond["reason"] == "Unschedulable" and dra.REASON_CANNOT_ALLOCATE in cond["message"]
    # The first pod finishes: its claim is deleted, and the second pod gets the GPU.
    api.obj("pods", "smoke", "default")["status"]["phase"] = "Succeeded"
    manager.sync_once()
    assert api.obj("resourceclaims", status["resourceClaimName"], "default") is None
    manager.sync_once()
    assert api.obj("pods", "second", "default")["spec"]["nodeName"] == "gpu1"


# -- kubelet: preparing the claims and the plugin's image ------------------------------------------
def test_prepare_gives_the_containers_the_claimed_gpus():
    pod = claiming_pod("smoke")
    pod["metadata"]["uid"] = "u1"
    pod["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "smoke-gpu-abcde"}]
    allocation = dra.allocate(claim("x"), "gpu1", [gpu_slice("gpu1")], [GPU_CLASS], {("gpu.nvidia.com", "gpu1", "gpu-0")})
    made = {"metadata": {"name": "smoke-gpu-abcde"},
            "status": {"allocation": allocation, "reservedFor": [{"resource": "pods", "name": "smoke", "uid": "u1"}]}}
    assert dra.prepare_pod(pod, [made], "gpu1", GPUS, {"gpu.nvidia.com"}) == {"c": {"NVIDIA_VISIBLE_DEVICES": "GPU-1"}}
    with pytest.raises(dra.DraError, match="DRA driver gpu.nvidia.com is not registered"):
        dra.prepare_pod(pod, [made], "gpu1", GPUS, set())
    with pytest.raises(dra.DraError, match="not allocated to node gpu2"):
        dra.prepare_pod(pod, [made], "gpu2", GPUS, {"gpu.nvidia.com"})
    with pytest.raises(dra.DraError, match="failed to fetch ResourceClaim"):
        dra.prepare_pod(pod, [], "gpu1", GPUS, {"gpu.nvidia.com"})


class SliceApi:
    def __init__(self):
        self.objects = {}

    def get(self, path, params=None):
        return self.objects.get(path)

    def create(self, path, obj, params=None):
        self.objects[path + "/" + obj["metadata"]["name"]] = obj
        return obj

    def merge_patch(self, path, patch, params=None):
        self.objects[path].update(patch)
        return self.objects[path]


def _context(argv, nvml=True, api=None):
    container = {"name": "gpus", "image": "nvcr.io/nvidia/k8s-dra-driver-gpu:v25.12.0", "command": argv}
    return workloads.Context({"metadata": {"name": "plugin"}, "spec": {}}, container, node_name="gpu1",
                             env={"NODE_NAME": "gpu1", "NVIDIA_DRIVER_ROOT": "/"}, gpus=GPUS, nvml_on_host=nvml,
                             driver_version="580.159.04", api=api)


def test_the_kubelet_plugin_image_publishes_the_node_slice():
    api = SliceApi()
    proc = workloads.start(_context(["gpu-kubelet-plugin"], api=api))
    assert proc.state == "running" and proc.dra_driver == "gpu.nvidia.com"
    [published] = list(api.objects.values())
    assert published["spec"]["nodeName"] == "gpu1" and len(published["spec"]["devices"]) == 2
    init = workloads.start(_context(["bash", "/usr/bin/kubelet-plugin-prestart.sh"], api=api))
    assert (init.state, init.exit_code) == ("exited", 0)
    failed = workloads.start(_context(["gpu-kubelet-plugin"], nvml=False, api=api))
    assert failed.exit_code == 1 and "NVML" in failed.logs[-1]


def test_what_the_simulation_writes_validates_against_the_1_35_schemas():
    """The ResourceSlice the plugin publishes and the claim the controller makes, allocated and
    reserved as the scheduler writes it, are valid resource.k8s.io/v1 objects (strict)."""
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    kubernetes_validate.validate(gpu_slice("gpu1"), "1.35.0", strict=True)
    pod = claiming_pod("smoke")
    pod["metadata"]["uid"] = "0b0e5f6c-1111-4222-8333-944455556666"
    template = {"spec": {"metadata": {"labels": {"app": "x"}}, "spec": claim("t")["spec"]}}
    made = dra.claim_from_template(pod, pod["spec"]["resourceClaims"][0], template)
    made["status"] = {"allocation": dra.allocate(made, "gpu1", [gpu_slice("gpu1")], [GPU_CLASS], set()),
                      "reservedFor": [dra.reserved_for(pod)]}
    kubernetes_validate.validate(made, "1.35.0", strict=True)


# -- the REAL kubectl against the simulated API server (tests/unit/sim/conftest.py `cluster`) ---------
def _rendered_driver_manifest(path):
    """roles/nvidia_dra_driver's manifest as the role renders it (tests/unit/test_k8s_render.py's Renderer)."""
    from ansible_collections.kubegpu.cluster.tests.unit.test_k8s_render import EXAMPLE, Renderer
    text, _docs = Renderer(EXAMPLE, "nvidia_dra_driver").render("cp1", "dra-driver-gpu.yaml.j2")
    path.write_text(text)
    return path


def test_the_driver_applies_once_and_a_pod_gets_a_gpu_on_the_simulated_api_server(cluster, tmp_path):
    """Stage 7's apply plumbing (roles/kubegpu/tasks/apply.yml) with the role's manifest: created,
    then nothing differs; then the plugin's slice, examples/dra/single-gpu.yaml created with
    kubectl, and the controller manager allocating the claim and binding the pod - every
    object through the API server's 1.35 schemas."""
    from test_apply_plumbing import _run
    if not cluster.kubectl_bin:
        pytest.skip("kubectl 1.35 not found: run scripts/fetch-helm.sh or set KUBEGPU_KUBECTL")
    _rendered_driver_manifest(tmp_path / "manifest.yaml")
    assert _run(cluster, tmp_path) == 1
    assert _run(cluster, tmp_path) == 0
    names = cluster.kubectl("get", "deviceclasses", "-o", "name").stdout.split()
    assert {"deviceclass.resource.k8s.io/gpu.nvidia.com", "deviceclass.resource.k8s.io/mig.nvidia.com"} <= set(names)

    api = cluster.client()
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                 "metadata": {"name": "gpu1", "labels": {"kubernetes.io/hostname": "gpu1"}}})
    api.merge_patch("/api/v1/nodes/gpu1/status", {"status": {
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}})
    dra.publish_slice(api, "gpu1", GPUS, "580.159.04")
    dra.publish_slice(api, "gpu1", GPUS, "580.159.04")      # unchanged: left as it is
    assert len(cluster.kubectl("get", "resourceslices", "-o", "name").stdout.split()) == 1
    example = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "dra", "single-gpu.yaml")
    cluster.kubectl("create", "-f", example, "-n", "default")
    lines = []
    manager = cm.ControllerManager(api, logger=lines.append)
    for _unused in range(3):
        manager.sync_once()
    pod = json.loads(cluster.kubectl("get", "pod", "dra-gpu-pod-1", "-n", "default", "-o", "json").stdout)
    assert pod["spec"].get("nodeName") == "gpu1", lines
    [claim_name] = [s["resourceClaimName"] for s in pod["status"]["resourceClaimStatuses"]]
    made = json.loads(cluster.kubectl("get", "resourceclaim", claim_name, "-n", "default", "-o", "json").stdout)
    assert made["status"]["allocation"]["devices"]["results"] == [
        {"request": "gpu", "driver": "gpu.nvidia.com", "pool": "gpu1", "device": "gpu-0"}]
    assert made["status"]["reservedFor"] == [{"resource": "pods", "name": "dra-gpu-pod-1",
                                              "uid": pod["metadata"]["uid"]}]
    assert dra.prepare_pod(pod, [made], "gpu1", GPUS, {"gpu.nvidia.com"}) == {
        "cuda": {"NVIDIA_VISIBLE_DEVICES": "GPU-0"}}


def test_the_kubelet_prepares_claims_only_with_the_plugin_running():
    """kubelet.Kubelet.allocate_devices -> prepare_claims (NodePrepareResources): the claimed
    GPU's UUID in the container's environment while the DRA plugin runs on the node; an
    admission error without it."""
    from fake_kubelet_api import FakeApi as KubeletApi
    from kubegpu_sim import gpu as gpumod
    from kubegpu_sim import kubelet
    k = kubelet.Kubelet(kubelet.parse_args(["--hostname-override=gpu1", "--node-ip=10.0.0.5"]))
    k.gpus = GPUS
    pod = claiming_pod("smoke")
    pod["metadata"]["uid"] = "u1"
    pod["spec"]["nodeName"] = "gpu1"
    pod["status"]["resourceClaimStatuses"] = [{"name": "gpu", "resourceClaimName": "smoke-gpu-abcde"}]
    made = {"metadata": {"name": "smoke-gpu-abcde", "namespace": "default"},
            "status": {"allocation": dra.allocate(claim("x"), "gpu1", [gpu_slice("gpu1")], [GPU_CLASS], set()),
                       "reservedFor": [dra.reserved_for(pod)]}}
    k.api = KubeletApi({dra.claims_path("default", "smoke-gpu-abcde"): made})
    rec = kubelet.PodRecord(pod)
    k.pods[rec.uid] = rec
    with pytest.raises(gpumod.PluginError, match="DRA driver gpu.nvidia.com is not registered"):
        k.allocate_devices(rec)
    plugin = kubelet.PodRecord({"metadata": {"name": "plugin", "namespace": "nvidia-dra-driver-gpu", "uid": "u0"},
                                "spec": {"containers": []}})
    proc = workloads.Process(logs=["plugin"])
    proc.dra_driver = "gpu.nvidia.com"
    plugin.procs["gpus"] = proc
    k.pods[plugin.uid] = plugin
    k.allocate_devices(rec)
    assert rec.envs["c"] == {"NVIDIA_VISIBLE_DEVICES": "GPU-0"}
