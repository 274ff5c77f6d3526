# SPDX-License-Identifier: Apache-2.0
"""workloads.py: what known images do (nvidia-smi, vectoradd, device plugin, calico-node)
and the simulated Tigera operator's reconcile against an in-memory API."""
from __future__ import annotations

import datetime
import os
import shutil
import tempfile
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))
sys.path.insert(0, os.path.dirname(__file__))

from fake_kubelet_api import FakeApi  # noqa: E402
from kubegpu_sim import gpu, workloads  # noqa: E402

GPU_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "sim", "gpu")
NOW = datetime.datetime(2026, 11, 24, 1, 4, 44)
NVIDIA_RT = {"handler": "nvidia", "binary": "/usr/bin/nvidia-container-runtime", "nvidia": True}
RUNC = {"handler": "runc", "binary": "runc", "nvidia": False}


def gpus(name="h100-1gpu"):
    """The simulated GPUs of tests/sim/gpu/<name>.json, written out as a host gets them."""
    from kubegpu_sim import pci_tree
    root = tempfile.mkdtemp(prefix="kubegpu-pci-")
    try:
        return gpu.read_gpus(pci_tree.materialise(os.path.join(GPU_DIR, name + ".json"), os.path.join(root, name)),
                             "node1", {})
    finally:
        shutil.rmtree(root, ignore_errors=True)


def ctx(image, command=None, args=None, env=None, runtime=None, policy="Never", **kw):
    if runtime is None:
        runtime = NVIDIA_RT
    container = {"name": "c", "image": image}
    if command:
        container["command"] = command
    if args:
        container["args"] = args
    pod = {"metadata": {"name": "p", "namespace": "default"}, "spec": {"restartPolicy": policy}}
    full_env = workloads.image_env(image)
    full_env.update(env or {})
    kw.setdefault("gpus", gpus())
    kw.setdefault("nvml_on_host", True)
    kw.setdefault("driver_version", "580.159.04")
    return workloads.Context(pod, container, env=full_env, runtime=runtime, now=NOW, **kw)


@pytest.mark.parametrize("image,repo", [
    ("quay.io/calico/node:v3.31.7", "calico/node"), ("docker.io/calico/node:v3.31.7", "calico/node"),
    ("calico/node", "calico/node"), ("nvcr.io/nvidia/k8s-device-plugin:v0.18.2", "nvidia/k8s-device-plugin"),
    ("busybox:1.36", "library/busybox"), ("localhost:5000/tigera/operator@sha256:ab", "tigera/operator"),
])
def test_image_repository(image, repo):
    assert workloads.image_repository(image) == repo


def test_nvidia_smi_with_gpu_matches_capture_layout():
    g = gpus()
    proc = workloads.start(ctx("nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", ["nvidia-smi"],
                               env={"NVIDIA_VISIBLE_DEVICES": g[0]["uuid"]}))
    assert proc.state == "exited" and proc.exit_code == 0
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "gpu", "h100-80gb-hbm3-ubuntu2404", "nvidia-smi.txt")) as stream:
        capture = stream.read().splitlines()
    # Same frame and same header line as the real H100 capture (values differ only in readings).
    assert proc.logs[2] == capture[2]
    assert [len(line) for line in proc.logs[1:9]] == [len(line) for line in capture[1:9]]
    assert "NVIDIA H100 80GB HBM3" in proc.logs[8] and "00000000:00:06.0" in proc.logs[8]
    assert "81559MiB" in proc.logs[9]
    assert len(proc.logs[9]) == len(capture[9]) and len(proc.logs[10]) == len(capture[10])


def test_nvidia_smi_all_gpus_by_image_env():
    proc = workloads.start(ctx("nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04", ["nvidia-smi"],
                               gpus=gpus("hgx-h100-8gpu")))
    assert proc.exit_code == 0 and sum("NVIDIA H100 80GB HBM3" in line for line in proc.logs) == 8


@pytest.mark.parametrize("runtime,env,nvml,reason", [
    (RUNC, {}, True, 'exec: "nvidia-smi": executable file not found in $PATH'),
    (NVIDIA_RT, {"NVIDIA_VISIBLE_DEVICES": "void"}, True, 'exec: "nvidia-smi": executable file not found'),
    (NVIDIA_RT, {}, False, "load library failed: libnvidia-ml.so.1"),
])
def test_nvidia_smi_without_gpu(runtime, env, nvml, reason):
    proc = workloads.start(ctx("nvcr.io/nvidia/cuda:13.0.0-base", ["nvidia-smi"], env=env, runtime=runtime,
                               nvml_on_host=nvml))
    assert proc.state == "start_error" and proc.exit_code == 128 and reason in proc.message


@pytest.mark.parametrize("runtime,code,last", [(NVIDIA_RT, 0, "Done"), (RUNC, 1, None)])
def test_vectoradd(runtime, code, last):
    proc = workloads.start(ctx("nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0", runtime=runtime))
    assert proc.exit_code == code
    if code == 0:
        assert "Test PASSED" in proc.logs and proc.logs[-1] == last


@pytest.mark.parametrize("argv,policy,state,code,logs", [
    (["true"], "Never", "exited", 0, []),
    (["sh", "-c", "echo hello; exit 3"], "Never", "exited", 3, ["hello"]),
    (["sleep", "infinity"], "Always", "running", None, []),
    (None, "Always", "running", None, []),
    (None, "Never", "exited", 0, []),
])
def test_generic(argv, policy, state, code, logs):
    proc = workloads.start(ctx("busybox:1.36", argv, runtime=RUNC, policy=policy))
    assert (proc.state, proc.exit_code, proc.logs) == (state, code, logs)


PLUGIN_CONFIG = """version: v1
flags:
  migStrategy: none
  failOnInitError: %s
  plugin:
    deviceListStrategy: envvar
    deviceIDStrategy: uuid
"""


def plugin_ctx(fail="true", runtime=None, nvml=True):
    files = {"/config/config.yaml": PLUGIN_CONFIG % fail}
    return ctx("nvcr.io/nvidia/k8s-device-plugin:v0.18.2", ["nvidia-device-plugin"],
               env={"CONFIG_FILE": "/config/config.yaml", "NVIDIA_VISIBLE_DEVICES": "all"},
               runtime=runtime, nvml_on_host=nvml, read_file=files.get, policy="Always")


def test_device_plugin_registers():
    proc = workloads.start(plugin_ctx())
    assert proc.state == "running" and proc.plugin.capacity() == {"nvidia.com/gpu": 1}


@pytest.mark.parametrize("runtime,nvml", [(RUNC, True), (NVIDIA_RT, False)])
def test_device_plugin_without_nvml(runtime, nvml):
    failing = workloads.start(plugin_ctx("true", runtime, nvml))
    assert failing.state == "exited" and failing.exit_code == 1
    assert "Failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND." in failing.logs
    idle = workloads.start(plugin_ctx("false", runtime, nvml))
    assert idle.state == "running" and idle.plugin.capacity() == {}


def test_device_plugin_missing_config_file():
    c = plugin_ctx()
    c.read_file = lambda path: None
    proc = workloads.start(c)
    assert proc.exit_code == 1 and "no such file or directory" in proc.logs[-1]


MPS_CONFIG = PLUGIN_CONFIG % "true" + """  mpsRoot: /run/nvidia/mps
sharing:
  mps:
    resources:
      - name: nvidia.com/gpu
        replicas: 4
"""


def test_device_plugin_retries_until_the_mps_daemon_runs(monkeypatch):
    """main.go: a plugin that fails to start (MPS daemon not healthy yet) is started again
    after 30 s (RESTART_SECONDS, shortened here) while the process keeps running."""
    import time
    monkeypatch.setattr(gpu, "RESTART_SECONDS", 0.05)
    daemon = {"running": False}
    c = plugin_ctx()
    c.read_file = {"/config/config.yaml": MPS_CONFIG}.get
    c.mps_daemon_ready = lambda: daemon["running"]
    proc = workloads.start(c)
    assert proc.state == "running" and proc.plugin is None
    assert "Failed to start one or more plugins. Retrying in 0s..." in proc.logs
    time.sleep(0.2)
    assert proc.plugin is None and proc.state == "running"      # still waiting, retried
    daemon["running"] = True
    deadline = time.time() + 5
    while proc.plugin is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.plugin is not None and proc.plugin.capacity() == {"nvidia.com/gpu": 4}
    assert "Registered device plugin for 'nvidia.com/gpu' with Kubelet" in proc.logs
    proc.stop()


def test_device_plugin_starts_at_once_when_the_mps_daemon_runs():
    c = plugin_ctx()
    c.read_file = {"/config/config.yaml": MPS_CONFIG}.get
    c.mps_daemon_ready = True
    proc = workloads.start(c)
    assert proc.plugin.capacity() == {"nvidia.com/gpu": 4}


def test_calico_node_writes_cni_config(tmp_path):
    from kubegpu_sim import kubelet
    proc = workloads.start(ctx("quay.io/calico/node:v3.31.7", runtime=RUNC, policy="Always",
                               cni_dir=str(tmp_path)))
    assert proc.state == "running" and proc.ready
    assert kubelet.cni_network_ready(str(tmp_path)) == (True, "")
    assert (tmp_path / "calico-kubeconfig").exists()


# ------------------------------------------------------------------------- operator
INSTALLATION = {"apiVersion": "operator.tigera.io/v1", "kind": "Installation",
                "metadata": {"name": "default", "generation": 1},
                "spec": {"calicoNetwork": {"ipPools": [{"name": "default-ipv4-ippool", "cidr": "10.244.0.0/16",
                                                        "blockSize": 26, "encapsulation": "VXLANCrossSubnet",
                                                        "natOutgoing": "Enabled", "nodeSelector": "all()"}]}}}
KUBEADM_CM = {"metadata": {"name": "kubeadm-config"},
              "data": {"ClusterConfiguration": "networking:\n  podSubnet: 10.244.0.0/16\n"}}


def api_with(installation):
    return FakeApi({workloads.INSTALLATION_PATH: installation,
                    "/api/v1/namespaces/kube-system/configmaps/kubeadm-config": KUBEADM_CM})


def test_operator_reconcile_until_ready():
    api = api_with(INSTALLATION)
    assert "not yet scheduled" in workloads.operator_reconcile(api, "v1.40.15")
    ds = api.objects["/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node"]
    pod_spec = ds["spec"]["template"]["spec"]
    assert pod_spec["containers"][0]["image"] == "quay.io/calico/node:v3.31.7"
    assert pod_spec["hostNetwork"] and pod_spec["tolerations"] == [{"operator": "Exists"}]
    assert pod_spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "/apis/apps/v1/namespaces/calico-system/deployments/calico-kube-controllers" in api.objects
    ts = api.objects[workloads.TIGERASTATUS_PATH + "/calico"]
    assert {c["type"]: c["status"] for c in ts["status"]["conditions"]}["Available"] == "False"
    # the DaemonSet controller reports every node available
    ds["status"] = {"desiredNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2,
                    "numberReady": 2, "numberUnavailable": 0, "observedGeneration": 1}
    assert workloads.operator_reconcile(api, "v1.40.15") == "calico-node available"
    inst = api.objects[workloads.INSTALLATION_PATH]
    assert inst["status"]["calicoVersion"] == "v3.31.7"
    assert {c["type"]: c["status"] for c in inst["status"]["conditions"]} == {
        "Ready": "True", "Progressing": "False", "Degraded": "False"}


def test_operator_custom_registry():
    inst = dict(INSTALLATION, spec=dict(INSTALLATION["spec"], registry="registry.local:5000"))
    api = api_with(inst)
    workloads.operator_reconcile(api, "v1.40.15")
    ds = api.objects["/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node"]
    assert ds["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local:5000/calico/node:v3.31.7"


@pytest.mark.parametrize("pool,error", [
    ({"blockSize": 33}, "IPv4 pool block size must be greater than 19 and less than or equal to 32"),
    ({"blockSize": 19}, "IPv4 pool block size must be greater than 19"),
    ({"cidr": "10.244.0.0/27", "blockSize": 26}, "IP pool size is too small"),
    ({"encapsulation": "Geneve"}, "Geneve is invalid for ipPool.encapsulation"),
    ({"natOutgoing": "true"}, "true is invalid for natOutgoing"),
    ({"cidr": "192.168.0.0/16"}, "is not within the platform's configured pod network CIDR(s)"),
    ({"cidr": "10.244.0.0/33"}, "IP pool CIDR (10.244.0.0/33) is invalid"),
])
def test_operator_refuses_bad_installation(pool, error):
    spec = {"calicoNetwork": {"ipPools": [dict(INSTALLATION["spec"]["calicoNetwork"]["ipPools"][0], **pool)]}}
    api = api_with(dict(INSTALLATION, spec=spec))
    assert error in workloads.operator_reconcile(api, "v1.40.15")
    ts = api.objects[workloads.TIGERASTATUS_PATH + "/calico"]
    degraded = {c["type"]: c for c in ts["status"]["conditions"]}["Degraded"]
    assert degraded["status"] == "True" and degraded["reason"] == "InvalidConfigurationError"
    assert "/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node" not in api.objects


def test_operator_ipip_requires_bgp():
    spec = {"calicoNetwork": {"bgp": "Disabled", "ipPools": [
        dict(INSTALLATION["spec"]["calicoNetwork"]["ipPools"][0], encapsulation="IPIP")]}}
    assert workloads.validate_installation(spec) == "IPIP encapsulation requires that BGP is enabled"


def test_kubeadm_pod_subnets():
    assert workloads.kubeadm_pod_subnets(KUBEADM_CM) == ["10.244.0.0/16"]


# -- the GPU Operator's images (gpu_operator.py) and NFD's (nfd.py) ------------------------------
def test_driver_container_runs_and_is_ready():
    """An unknown image with `nvidia-driver init` would exit 0 and restart (generic): the
    driver container's image is run explicitly, long-running and ready."""
    proc = workloads.start(ctx("nvcr.io/nvidia/driver:580.126.09-debian12", ["nvidia-driver"], ["init"],
                               runtime=RUNC, policy="Always"))
    assert (proc.state, proc.ready) == ("running", True)
    assert "DRIVER_VERSION=580.126.09" in proc.logs
    manager = workloads.start(ctx("nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.9.1", ["driver-manager"],
                                  ["uninstall_driver"], runtime=RUNC, policy="Always"))
    assert (manager.state, manager.exit_code) == ("exited", 0)


def test_gpu_operator_image_runs_the_operator_only_for_its_command():
    api = FakeApi()
    proc = workloads.start(ctx("nvcr.io/nvidia/gpu-operator:v25.10.1", ["gpu-operator"], ["--leader-elect"],
                               runtime=RUNC, policy="Always", api=api))
    try:
        assert proc.state == "running" and "version: v25.10.1" in proc.logs
    finally:
        proc.stop()
    # the same image as the validator (not deployed by the simulated Operator): generic
    other = workloads.start(ctx("nvcr.io/nvidia/gpu-operator:v25.10.1", ["sh", "-c"], ["nvidia-validator"],
                                runtime=RUNC, policy="Never"))
    assert (other.state, other.exit_code) == ("exited", 0)


def test_nfd_images():
    master = workloads.start(ctx("registry.k8s.io/nfd/node-feature-discovery:v0.18.2", ["nfd-master"], runtime=RUNC,
                                 policy="Always"))
    assert master.state == "running"
    worker = workloads.start(ctx("registry.k8s.io/nfd/node-feature-discovery:v0.18.2", ["nfd-worker"], runtime=RUNC,
                                 policy="Always"))       # no API: only runs
    assert worker.state == "running"
