# SPDX-License-Identifier: Apache-2.0
"""The simulated kubelet's decisions (tests/sim/kubegpu_sim/kubelet.py) as pure functions,
on the real containerd configs of tests/fixtures/containerd/."""
from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from kubegpu_sim import kubelet  # noqa: E402
from kubegpu_sim.workloads import Process, exited  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "containerd")
NOT_READY_CNI = ("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                 "message:Network plugin returns error: cni plugin not initialized")


def runtime(name):
    with open(os.path.join(FIXTURES, name)) as stream:
        return kubelet.parse_containerd_config(stream.read())


def _systemd(text):
    return text.replace("SystemdCgroup = false", "SystemdCgroup = true")


@pytest.mark.parametrize("fixture,version,default,runtimes", [
    ("default-1.7.24.toml", 2, "runc", {"runc"}),
    ("default-2.1.9.toml", 3, "runc", {"runc"}),
    ("nvidia-ctk-configured-1.7.24.toml", 2, "runc", {"runc", "nvidia"}),
    ("nvidia-ctk-minimal.toml", 2, "nvidia", {"nvidia"}),
    ("v1-legacy.toml", 1, "runc", {"runc"}),
])
def test_parse_containerd_config(fixture, version, default, runtimes):
    info = runtime(fixture)
    assert (info.version, info.default_runtime, set(info.runtimes)) == (version, default, runtimes)
    assert info.cni_conf_dir == "/etc/cni/net.d"


def test_corrupt_config_is_an_error():
    assert runtime("corrupt.toml").error


def test_nvidia_runtime_binary():
    info = runtime("nvidia-ctk-configured-1.7.24.toml")
    assert info.runtimes["nvidia"]["binary"] == "/usr/bin/nvidia-container-runtime"
    assert kubelet.runtime_is_nvidia(info, "nvidia") and not kubelet.runtime_is_nvidia(info, "runc")


@pytest.mark.parametrize("fixture,systemd,major,driver,expect", [
    # containerd 1.7 has no RuntimeConfig RPC: the kubelet keeps its cgroupDriver.
    ("default-1.7.24.toml", False, 1, "systemd", "False"),
    ("default-1.7.24.toml", True, 1, "systemd", "True"),
    ("default-1.7.24.toml", False, 1, "cgroupfs", "True"),
    # containerd 2.x: the kubelet takes the CRI's driver (KubeletCgroupDriverFromCRI).
    ("default-2.1.9.toml", False, 2, "systemd", "True"),
    ("default-2.1.9.toml", True, 2, "systemd", "True"),
])
def test_ready_cgroup_driver(fixture, systemd, major, driver, expect):
    with open(os.path.join(FIXTURES, fixture)) as stream:
        text = stream.read()
    info = kubelet.parse_containerd_config(_systemd(text) if systemd else text)
    assert info.runtimes["runc"]["systemd_cgroup"] is systemd
    status, reason, message = kubelet.ready_condition(True, True, info, driver, major, True, "")
    assert status == expect, message
    if expect == "False":
        assert reason == "KubeletNotReady" and "cgroup driver" in message


def test_ready_requires_cni():
    info = runtime("default-1.7.24.toml")
    status, reason, message = kubelet.ready_condition(True, True, info, "cgroupfs", 1, False, NOT_READY_CNI)
    assert (status, reason, message) == ("False", "KubeletNotReady", NOT_READY_CNI)


@pytest.mark.parametrize("active,dump_ok,text,expect", [
    (False, False, None, "container runtime is down"),
    (True, False, None, "container runtime is down"),
    (True, True, 'version = 2\ndisabled_plugins = ["cri"]\n', "unknown service runtime.v1.RuntimeService"),
    (True, True, 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', "unknown service"),
])
def test_ready_runtime_down(active, dump_ok, text, expect):
    info = kubelet.parse_containerd_config(text) if text else None
    status, _reason, message = kubelet.ready_condition(active, dump_ok, info, "systemd", 1, True, "")
    assert status == "False" and expect in message


def test_ready_default_runtime_missing():
    info = kubelet.parse_containerd_config("version = 2\n[plugins.'io.containerd.grpc.v1.cri'.containerd]\n"
                                           "default_runtime_name = 'nvidia'\n")
    status, _r, message = kubelet.ready_condition(True, True, info, "systemd", 1, True, "")
    assert status == "False" and 'no runtime for "nvidia" is configured' in message


@pytest.mark.parametrize("files,ready", [
    ({}, False),
    ({"10-calico.conflist": '{"name": "k8s-pod-network", "cniVersion": "0.3.1", "plugins": [{"type": "calico"}]}'}, True),
    ({"calico-kubeconfig": "apiVersion: v1"}, False),
    ({"10-bad.conflist": '{"name": "x", "plugins": []}'}, False),
    ({"10-bridge.conf": '{"name": "b", "type": "bridge"}'}, True),
    ({"10-broken.conflist": "{not json"}, False),
])
def test_cni_network_ready(files, ready):
    ok, message = kubelet.cni_network_ready("/nonexistent", files=files)
    assert ok is ready
    assert message == ("" if ready else NOT_READY_CNI)


def test_node_conditions_keep_transition_time():
    first = kubelet.node_conditions(("False", "KubeletNotReady", "x"), "t1")
    second = kubelet.node_conditions(("False", "KubeletNotReady", "x"), "t2", first)
    third = kubelet.node_conditions(("True", "KubeletReady", "kubelet is posting ready status"), "t3", second)
    ready = {c["type"]: c for c in third}["Ready"]
    assert {c["type"]: c for c in second}["Ready"]["lastTransitionTime"] == "t1"
    assert ready["lastTransitionTime"] == "t3" and ready["lastHeartbeatTime"] == "t3"
    assert [c["type"] for c in third] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]


# ------------------------------------------------------------------------- admission
def node(alloc=None, labels=None, taints=None):
    allocatable = {"cpu": "2", "memory": "4Gi", "pods": "110", "ephemeral-storage": "10Gi"}
    allocatable.update(alloc or {})
    base = {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux"}
    base.update(labels or {})
    return {"metadata": {"name": "n1", "labels": base}, "spec": {"taints": taints or []},
            "status": {"allocatable": allocatable}}


def pod(requests=None, limits=None, **spec):
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"},
            "spec": dict({"nodeName": "n1", "containers": [
                {"name": "c", "image": "busybox", "resources": {"requests": requests or {}, "limits": limits or {}}}]},
                **spec)}


@pytest.mark.parametrize("the_pod,the_node,others,reason", [
    (pod(), node(), [], ""),
    (pod(limits={"nvidia.com/gpu": "1"}), node({"nvidia.com/gpu": "1"}), [], ""),
    # predicate.go: InsufficientResourceError on an extended resource -> OutOf<name>.
    (pod(limits={"nvidia.com/gpu": "2"}), node({"nvidia.com/gpu": "1"}), [], "OutOfnvidia.com/gpu"),
    (pod(limits={"nvidia.com/gpu": "1"}), node({"nvidia.com/gpu": "1"}), [pod(limits={"nvidia.com/gpu": "1"})],
     "OutOfnvidia.com/gpu"),
    # removeMissingExtendedResources: unknown to the node -> ignored.
    (pod(limits={"example.com/foo": "1"}), node(), [], ""),
    (pod(requests={"cpu": "3"}), node(), [], "OutOfcpu"),
    (pod(requests={"memory": "5Gi"}), node(), [], "OutOfmemory"),
    (pod(nodeSelector={"nvidia.com/gpu.present": "true"}), node(), [], "NodeAffinity"),
    (pod(nodeSelector={"nvidia.com/gpu.present": "true"}), node(labels={"nvidia.com/gpu.present": "true"}), [], ""),
    (pod(affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]}}}), node(), [], "NodeAffinity"),
    (pod(), node(taints=[{"key": "k", "effect": "NoExecute"}]), [], "TaintToleration"),
    (pod(), node(taints=[{"key": "k", "effect": "NoSchedule"}]), [], ""),
    (pod(tolerations=[{"operator": "Exists"}]), node(taints=[{"key": "k", "effect": "NoExecute"}]), [], ""),
])
def test_admit(the_pod, the_node, others, reason):
    ok, got, message = kubelet.admit(the_pod, the_node, others)
    assert got == reason, message
    assert ok is (reason == "")


def test_admit_message_like_upstream():
    _ok, _r, message = kubelet.admit(pod(limits={"nvidia.com/gpu": "2"}), node({"nvidia.com/gpu": "1"}), [])
    assert message == "Node didn't have enough resource: nvidia.com/gpu, requested: 2, used: 0, capacity: 1"


# ------------------------------------------------------------------------- sandbox
@pytest.mark.parametrize("fixture,rc_name,rc,binaries,handler,error", [
    ("nvidia-ctk-configured-1.7.24.toml", None, None, {"runc"}, "runc", None),
    ("nvidia-ctk-configured-1.7.24.toml", "nvidia", {"handler": "nvidia"},
     {"runc", "/usr/bin/nvidia-container-runtime"}, "nvidia", None),
    ("nvidia-ctk-configured-1.7.24.toml", "nvidia", None, {"runc"}, None,
     'runtimeclass.node.k8s.io "nvidia" not found'),
    ("default-1.7.24.toml", "nvidia", {"handler": "nvidia"}, {"runc"}, "nvidia",
     'no runtime for "nvidia" is configured'),
    ("nvidia-ctk-configured-1.7.24.toml", "nvidia", {"handler": "nvidia"}, {"runc"}, "nvidia",
     "fork/exec /usr/bin/nvidia-container-runtime: no such file or directory"),
    ("nvidia-ctk-minimal.toml", None, None, {"runc"}, "nvidia",
     "fork/exec /usr/bin/nvidia-container-runtime: no such file or directory"),
])
def test_resolve_runtime_handler(fixture, rc_name, rc, binaries, handler, error):
    the_pod = pod(runtimeClassName=rc_name) if rc_name else pod()
    got_handler, got_error = kubelet.resolve_runtime_handler(the_pod, rc, runtime(fixture), binaries.__contains__)
    assert got_handler == handler
    if error is None:
        assert got_error is None
    else:
        assert error in got_error


def test_bare_binary_name_message():
    info = kubelet.parse_containerd_config(
        "version = 2\n[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia]\n"
        "runtime_type = 'io.containerd.runc.v2'\n"
        "[plugins.'io.containerd.grpc.v1.cri'.containerd.runtimes.nvidia.options]\n"
        "BinaryName = 'nvidia-container-runtime'\n")
    _h, err = kubelet.resolve_runtime_handler(pod(runtimeClassName="nvidia"), {"handler": "nvidia"}, info,
                                              lambda b: False)
    assert 'exec: "nvidia-container-runtime": executable file not found in $PATH' in err


# ------------------------------------------------------------------------- pod status
def _st(proc, **kw):
    st = kubelet.container_state(proc, **kw)
    st["name"] = "c"
    return st


@pytest.mark.parametrize("policy,procs,phase", [
    ("Always", [Process()], "Running"),
    ("Never", [exited(0)], "Succeeded"),
    ("Never", [exited(1)], "Failed"),
    ("OnFailure", [exited(0)], "Succeeded"),
    ("Never", [Process(), exited(0)], "Running"),
    ("Always", [None], "Pending"),
])
def test_pod_phase(policy, procs, phase):
    statuses = [_st(p) for p in procs]
    assert kubelet.pod_phase({"restartPolicy": policy}, True, statuses) == phase


def test_crashloop_status():
    st = _st(None, waiting_reason="CrashLoopBackOff", restart_count=2, last=exited(1))
    assert st["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert st["lastState"]["terminated"]["exitCode"] == 1 and st["restartCount"] == 2
    assert kubelet.pod_phase({"restartPolicy": "Always"}, True, [st]) == "Running"
    assert [kubelet.crashloop_backoff(n) for n in (1, 2, 3, 6, 9)] == [10, 20, 40, 300, 300]


def test_pod_conditions_running_and_completed():
    running = kubelet.pod_conditions("Running", True, True, [_st(Process())], "t")
    by = {c["type"]: c["status"] for c in running}
    assert by == {"PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
                  "ContainersReady": "True", "PodScheduled": "True"}
    done = {c["type"]: c for c in kubelet.pod_conditions("Succeeded", True, True, [_st(exited(0))], "t")}
    assert done["Ready"]["status"] == "False" and done["Ready"]["reason"] == "PodCompleted"
    pending = {c["type"]: c for c in kubelet.pod_conditions("Pending", False, True, [_st(None)], "t")}
    assert pending["Ready"]["message"] == "containers with unready status: [c]"
    assert pending["PodReadyToStartContainers"]["status"] == "False"


def test_start_error_status():
    from kubegpu_sim.workloads import start_error
    st = _st(start_error('exec: "nvidia-smi": executable file not found in $PATH'))
    assert st["state"]["terminated"]["reason"] == "StartError" and st["state"]["terminated"]["exitCode"] == 128


# ------------------------------------------------------------------------- node object
def test_node_labels_and_allocatable():
    assert kubelet.node_labels("gpu1", "amd64") == {
        "kubernetes.io/hostname": "gpu1", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64"}
    alloc = kubelet.allocatable_from({"cpu": "2", "memory": "4194304Ki", "pods": "110",
                                      "ephemeral-storage": "10485760Ki"})
    assert alloc["memory"] == "%dKi" % (4194304 - 102400)
    assert alloc["cpu"] == "2" and int(alloc["ephemeral-storage"]) == int(10485760 * 1024 * 0.9)


@pytest.mark.parametrize("text,expect", [
    ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1", (1, "1.7.24~ds1")),
    ("containerd github.com/containerd/containerd/v2 2.1.9+unknown", (2, "2.1.9+unknown")),
])
def test_containerd_version(text, expect):
    assert (kubelet.containerd_major(text), kubelet.containerd_version_string(text)) == expect


def test_parse_taints_and_pod_ip():
    assert kubelet.parse_taints("a=b:NoSchedule,c:NoExecute") == [
        {"key": "a", "value": "b", "effect": "NoSchedule"}, {"key": "c", "effect": "NoExecute"}]
    assert kubelet.pod_ip_from_cidr("10.244.1.0/24", 0) == "10.244.1.2"


# ------------------------------------------------------------------------- daemon wiring
def test_sync_pod_wiring_with_fake_api(tmp_path):
    """One pass of the daemon's pod sync against the in-memory API: admission, sandbox,
    the workload, and the status it writes (no threads, no network)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from fake_kubelet_api import FakeApi

    args = kubelet.parse_args(["--hostname-override=n1", "--node-ip=10.0.0.5"])
    k = kubelet.Kubelet(args)
    the_node = node({"nvidia.com/gpu": "1"})
    the_node["spec"]["podCIDR"] = "10.244.1.0/24"
    k.node = the_node
    k.node_ip = "10.0.0.5"
    k.runtime = runtime("nvidia-ctk-configured-1.7.24.toml")
    k.runtime.cni_conf_dir = str(tmp_path)
    (tmp_path / "10-calico.conflist").write_text('{"name": "k8s", "plugins": [{"type": "calico"}]}')
    k.host.binary_exists = lambda b: b == "runc"
    p = pod()
    p["spec"]["containers"][0]["command"] = ["sh", "-c", "echo hi"]
    p["spec"]["restartPolicy"] = "Never"
    api = FakeApi({"/api/v1/namespaces/default/pods/p": p})
    k.api = api
    rec = kubelet.PodRecord(p)
    k.pods[rec.uid] = rec
    k.sync_pod(rec)
    status = api.objects["/api/v1/namespaces/default/pods/p"]["status"]
    assert status["phase"] == "Succeeded" and status["podIP"] == "10.244.1.2"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0
    assert k.container_logs("default", "p", "c") == "hi\n"
    # A pod for the nvidia RuntimeClass whose binary is missing stays ContainerCreating.
    p2 = pod(runtimeClassName="nvidia")
    p2["metadata"].update(name="q", uid="u2")
    api.objects["/api/v1/namespaces/default/pods/q"] = p2
    api.objects["/apis/node.k8s.io/v1/runtimeclasses/nvidia"] = {"metadata": {"name": "nvidia"}, "handler": "nvidia"}
    rec2 = kubelet.PodRecord(p2)
    k.pods[rec2.uid] = rec2
    k.sync_pod(rec2)
    status = api.objects["/api/v1/namespaces/default/pods/q"]["status"]
    assert status["phase"] == "Pending"
    assert status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
    events = [o for path, o in api.objects.items() if "/events/" in path]
    assert any(e["reason"] == "FailedCreatePodSandBox" and "fork/exec /usr/bin/nvidia-container-runtime" in e["message"]
               for e in events)


def test_admission_reads_the_node_as_the_api_server_has_it_now(tmp_path):
    """A label written after the kubelet's last heartbeat counts at admission (the kubelet's
    Node informer): the GPU Operator labels a node, then creates a DaemonSet whose pods select
    that label; the heartbeat's copy would reject them (NodeAffinity)."""
    sys.path.insert(0, os.path.dirname(__file__))
    from fake_kubelet_api import FakeApi

    k = kubelet.Kubelet(kubelet.parse_args(["--hostname-override=n1", "--node-ip=10.0.0.5"]))
    k.node = node()                                                   # the heartbeat's copy: no label yet
    labelled = node(labels={"nvidia.com/gpu.deploy.driver": "true"})
    labelled["spec"]["podCIDR"] = "10.244.1.0/24"
    k.node_ip = "10.0.0.5"
    k.runtime = runtime("nvidia-ctk-configured-1.7.24.toml")
    k.runtime.cni_conf_dir = str(tmp_path)
    (tmp_path / "10-calico.conflist").write_text('{"name": "k8s", "plugins": [{"type": "calico"}]}')
    k.host.binary_exists = lambda b: b == "runc"
    p = pod(nodeSelector={"nvidia.com/gpu.deploy.driver": "true"}, restartPolicy="Never")
    p["spec"]["containers"][0]["command"] = ["sh", "-c", "true"]
    api = FakeApi({"/api/v1/namespaces/default/pods/p": p, "/api/v1/nodes/n1": labelled})
    k.api = api
    rec = kubelet.PodRecord(p)
    k.pods[rec.uid] = rec
    k.sync_pod(rec)
    assert rec.admitted is True, rec.reject
    assert api.objects["/api/v1/namespaces/default/pods/p"]["status"]["phase"] == "Succeeded"
    assert k.node["metadata"]["labels"]["nvidia.com/gpu.deploy.driver"] == "true"
    # the API server away: the last copy decides (here without the label: rejected)
    k2 = kubelet.Kubelet(kubelet.parse_args(["--hostname-override=n1", "--node-ip=10.0.0.5"]))
    k2.node = node()
    k2.api = FakeApi({"/api/v1/namespaces/default/pods/p": p})
    rec2 = kubelet.PodRecord(p)
    k2.sync_pod(rec2)
    assert rec2.admitted is False and rec2.reject[0] == "NodeAffinity"


def test_node_status_changed_ignores_only_the_heartbeat_time():
    """kubelet_node_status.go nodeStatusHasChanged."""
    old = {"capacity": {"cpu": "2", "nvidia.com/gpu": "1"},
           "conditions": kubelet.node_conditions(("True", "KubeletReady", "ready"), "t1")}
    same = {"capacity": {"cpu": "2", "nvidia.com/gpu": "1"},
            "conditions": kubelet.node_conditions(("True", "KubeletReady", "ready"), "t2", old["conditions"])}
    assert not kubelet.node_status_changed(old, same)
    not_ready = dict(same, conditions=kubelet.node_conditions(("False", "KubeletNotReady", "x"), "t2", old["conditions"]))
    assert kubelet.node_status_changed(old, not_ready)
    assert kubelet.node_status_changed(old, dict(same, capacity={"cpu": "2", "nvidia.com/gpu": None}))


def test_an_unchanged_node_status_is_posted_again_only_after_the_report_frequency(tmp_path, monkeypatch):
    """tryUpdateNodeStatus: the Lease is the heartbeat; the Node's status is written when it
    changes, or nodeStatusReportFrequency (5 min) after the last write."""
    sys.path.insert(0, os.path.dirname(__file__))
    from fake_kubelet_api import FakeApi

    k = kubelet.Kubelet(kubelet.parse_args(["--hostname-override=n1", "--node-ip=10.0.0.5"]))
    (tmp_path / "10-calico.conflist").write_text('{"name": "k8s", "plugins": [{"type": "calico"}]}')
    info = runtime("nvidia-ctk-configured-1.7.24.toml")
    info.cni_conf_dir = str(tmp_path)

    def runtime_state():
        k.runtime, k.containerd_version = info, "1.7.24"
        return True, True

    k.runtime_state = runtime_state
    api = FakeApi({"/api/v1/nodes/n1": node()})
    k.api = api
    clock = [1000.0]
    monkeypatch.setattr(kubelet.time, "monotonic", lambda: clock[0])

    def patches():
        return sum(1 for call in api.calls if call == ("PATCH", "/api/v1/nodes/n1/status"))

    k.update_status(force=True)                     # registration posts it
    assert patches() == 1
    clock[0] += 10
    k.update_status()                               # a heartbeat with nothing new
    assert patches() == 1
    k.plugin_resources = {"nvidia.com/gpu": 1}      # the device plugin registered
    clock[0] += 10
    k.update_status()
    assert patches() == 2
    assert api.objects["/api/v1/nodes/n1"]["status"]["allocatable"]["nvidia.com/gpu"] == "1"
    clock[0] += kubelet.NODE_STATUS_REPORT_FREQUENCY - 1
    k.update_status()
    assert patches() == 2
    clock[0] += 1
    k.update_status()                               # five minutes since the last write
    assert patches() == 3
