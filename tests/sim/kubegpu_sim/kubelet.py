# SPDX-License-Identifier: Apache-2.0
"""Simulated kubelet (test-only): `python3 -m kubegpu_sim.kubelet --kubeconfig=... --config=...`.

Registers the Node, heartbeats (Lease + status), judges Ready from the host's REAL
containerd (service state, `containerd config dump`) and CNI config, admits and "runs"
the pods bound to it (what each image does: workloads.py), advertises and allocates the
device plugin's resources (gpu.py) and serves container logs on :10250.

Pure decision functions come first (unit-tested in tests/unit/sim/test_kubelet.py); the
daemon (I/O, threads) is at the end. Upstream: kubernetes/kubernetes v1.35 (pkg/kubelet).
"""
from __future__ import annotations

import argparse
import datetime
import ipaddress
import json
import os
import platform
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
import tomllib
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from . import dra
from . import gpu as gpumod
from . import kube_vip
from . import workloads, yamlish

KUBELET_VERSION = "v1.35.4"


# =============================================================================== containerd
class RuntimeInfo:
    """What the CRI plugin of a containerd config says (from `containerd config dump`)."""

    def __init__(self, version=2, cri_disabled=False, default_runtime="runc", runtimes=None,
                 cni_conf_dir="/etc/cni/net.d", error=None):
        self.version = version
        self.cri_disabled = cri_disabled
        self.default_runtime = default_runtime
        self.runtimes = runtimes or {}     # name -> {"type", "binary", "systemd_cgroup"}
        self.cni_conf_dir = cni_conf_dir
        self.error = error


def parse_containerd_config(text):
    """containerd's config (version 1, 2 or 3) -> RuntimeInfo.

    Paths per containerd: v2 `plugins."io.containerd.grpc.v1.cri".containerd.runtimes.<name>`
    (containerd 1.x/2.x pkg/cri/config/config.go), v3 `plugins."io.containerd.cri.v1.runtime"
    .containerd.runtimes.<name>` (containerd 2.x internal/cri/config/config.go), v1 plugin id
    `cri`. `disabled_plugins` lists the plugin ids (containerd cmd/containerd/server/config).
    """
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        return RuntimeInfo(error="failed to load TOML: %s" % err)
    version = int(data.get("version", 1))
    plugins = data.get("plugins") or {}
    disabled = set(data.get("disabled_plugins") or [])
    if version >= 3:
        cri = plugins.get("io.containerd.cri.v1.runtime") or {}
        cri_ids = {"io.containerd.cri.v1.runtime", "io.containerd.grpc.v1.cri", "cri"}
    elif version == 2:
        cri = plugins.get("io.containerd.grpc.v1.cri") or {}
        cri_ids = {"io.containerd.grpc.v1.cri", "cri"}
    else:
        cri = plugins.get("cri") or {}
        cri_ids = {"cri", "io.containerd.grpc.v1.cri"}
    ctrd = cri.get("containerd") or {}
    runtimes = {}
    for name, rt in (ctrd.get("runtimes") or {}).items():
        options = rt.get("options") or {}
        rtype = rt.get("runtime_type", "")
        # The runc shim (io.containerd.runc.v2) execs options.BinaryName (default "runc");
        # other shims are containerd-shim-<name>-<version> binaries
        # (containerd core/runtime/v2/shim_load.go / manager: BinaryName from runtime_type).
        if rtype in ("", "io.containerd.runc.v2", "io.containerd.runc.v1", "io.containerd.runtime.v1.linux"):
            binary = options.get("BinaryName") or "runc"
        else:
            parts = rtype.split(".")
            binary = "containerd-shim-%s-%s" % (parts[-2], parts[-1]) if len(parts) >= 2 else rtype
        runtimes[name] = {"type": rtype, "binary": binary,
                          "systemd_cgroup": bool(options.get("SystemdCgroup", False))}
    default = ctrd.get("default_runtime_name") or "runc"
    cni = (cri.get("cni") or {}).get("conf_dir") or "/etc/cni/net.d"
    return RuntimeInfo(version=version, cri_disabled=bool(cri_ids & disabled), default_runtime=default,
                       runtimes=runtimes, cni_conf_dir=cni)


def containerd_major(version_output):
    """`containerd --version` -> major version (int) or None."""
    match = re.search(r"\s(v?)(\d+)\.(\d+)\.(\d+)", version_output or "")
    return int(match.group(2)) if match else None


def containerd_version_string(version_output):
    """'containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+deb13u1' -> '1.7.24~ds1'
    (the CRI Version RPC's runtime_version, shown as containerd://<it>)."""
    parts = (version_output or "").split()
    return parts[2] if len(parts) >= 3 else "unknown"


# =============================================================================== CNI
def cni_network_ready(conf_dir, files=None):
    """(ready, message) as containerd's CRI reports NetworkReady.

    containerd internal/cri/server/status.go Status: NetworkReady=false with reason
    NetworkPluginNotReady and "Network plugin returns error: cni plugin not initialized"
    until go-cni loaded a config from conf_dir (libcni ConfFiles: *.conf, *.conflist,
    *.json, lexical order; a conflist needs a name and at least one plugin with a type).
    """
    not_ready = (False, "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
                        "message:Network plugin returns error: cni plugin not initialized")
    if files is None:
        try:
            names = sorted(os.listdir(conf_dir))
        except OSError:
            return not_ready
        files = {}
        for name in names:
            path = os.path.join(conf_dir, name)
            if os.path.isfile(path) and name.endswith((".conf", ".conflist", ".json")):
                try:
                    with open(path) as stream:
                        files[name] = stream.read()
                except OSError:
                    continue
    for name in sorted(files):
        try:
            conf = json.loads(files[name])
        except ValueError:
            continue
        if not isinstance(conf, dict) or not conf.get("name"):
            continue
        if name.endswith(".conflist"):
            plugins = conf.get("plugins") or []
            if plugins and all(isinstance(p, dict) and p.get("type") for p in plugins):
                return True, ""
        elif conf.get("type"):
            return True, ""
    return not_ready


# =============================================================================== Ready
def ready_condition(containerd_active, dump_ok, runtime, kubelet_cgroup_driver, containerd_major_version,
                    network_ready, network_message):
    """(status, reason, message) of the Node Ready condition.

    pkg/kubelet/nodestatus/setters.go ReadyCondition: errors from runtimeState
    (pkg/kubelet/runtime.go runtimeErrors / networkErrors, fed by kubelet.go
    updateRuntimeUp from the CRI Status call) make it False with reason KubeletNotReady.
    """
    errors = []
    if not containerd_active or not dump_ok or runtime is None or runtime.error:
        # kubelet.go updateRuntimeUp: no answer from the CRI socket.
        errors.append("container runtime is down")
    elif runtime.cri_disabled:
        # The CRI plugin is off: /run/containerd/containerd.sock has no runtime.v1 service.
        errors.append("container runtime is down: rpc error: code = Unimplemented desc = unknown service "
                      "runtime.v1.RuntimeService")
    else:
        drivers = cgroup_driver_problem(runtime, kubelet_cgroup_driver, containerd_major_version)
        if drivers:
            errors.append(drivers)
        if not network_ready:
            errors.append(network_message)
    if errors:
        return "False", "KubeletNotReady", ", ".join(errors)
    return "True", "KubeletReady", "kubelet is posting ready status"


def cgroup_driver_problem(runtime, kubelet_driver, major):
    """The cgroup driver check, or None.

    With containerd >= 2.0 the kubelet asks the CRI (RuntimeConfig) and uses the
    runtime's driver whatever its config says (feature KubeletCgroupDriverFromCRI, on by
    default since 1.31: kubernetes pkg/kubelet/kubelet.go getCgroupDriverFromCRI), so no
    mismatch is possible. containerd 1.x does not implement RuntimeConfig: the kubelet
    keeps its cgroupDriver and a mismatch with the runtime's SystemdCgroup breaks the
    pods (runc "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd
    cgroups"). The simulation reports that as NotReady so a test sees it at once.
    """
    rt = runtime.runtimes.get(runtime.default_runtime)
    if rt is None:
        return ("container runtime is down: failed to get runtime for default runtime \"%s\": no runtime for \"%s\" is "
                "configured" % (runtime.default_runtime, runtime.default_runtime))
    runtime_driver = "systemd" if rt["systemd_cgroup"] else "cgroupfs"
    if major is not None and major >= 2:
        return None
    if (kubelet_driver or "cgroupfs") != runtime_driver:
        return ("misconfiguration: kubelet cgroup driver: \"%s\" is different from the container runtime's cgroup "
                "driver: \"%s\" (containerd runtime \"%s\" SystemdCgroup=%s)" % (
                    kubelet_driver or "cgroupfs", runtime_driver, runtime.default_runtime,
                    "true" if rt["systemd_cgroup"] else "false"))
    return None


def node_conditions(ready, now, previous=None, pressure=None):
    """MemoryPressure, DiskPressure, PIDPressure, Ready (setters.go MemoryPressureCondition,
    DiskPressureCondition, PIDPressureCondition, ReadyCondition), keeping
    lastTransitionTime while the status does not change."""
    pressure = pressure or {}
    prev = {c["type"]: c for c in previous or []}
    conds = [
        ("MemoryPressure", "True" if pressure.get("memory") else "False",
         "KubeletHasInsufficientMemory" if pressure.get("memory") else "KubeletHasSufficientMemory",
         "kubelet has insufficient memory available" if pressure.get("memory")
         else "kubelet has sufficient memory available"),
        ("DiskPressure", "True" if pressure.get("disk") else "False",
         "KubeletHasDiskPressure" if pressure.get("disk") else "KubeletHasNoDiskPressure",
         "kubelet has disk pressure" if pressure.get("disk") else "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready",) + tuple(ready),
    ]
    out = []
    for ctype, status, reason, message in conds:
        old = prev.get(ctype)
        transition = old["lastTransitionTime"] if old and old.get("status") == status else now
        out.append({"type": ctype, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": transition})
    return out


# kubelet configuration nodeStatusReportFrequency (default 5m with the node lease):
# how long an unchanged node status goes without being posted again.
NODE_STATUS_REPORT_FREQUENCY = 300.0


def _without_heartbeat(conditions):
    return [{k: v for k, v in c.items() if k != "lastHeartbeatTime"} for c in conditions or []]


def node_status_changed(old, new):
    """pkg/kubelet/kubelet_node_status.go nodeStatusHasChanged: the conditions compared
    without their lastHeartbeatTime, every other field of the status to be posted as it is.
    `new` is the status patch (an extended resource that went away is null in it)."""
    for key, value in new.items():
        if key == "conditions":
            if _without_heartbeat(old.get("conditions")) != _without_heartbeat(value):
                return True
        elif old.get(key) != value:
            return True
    return False


# =============================================================================== quantities
_SUFFIX = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60,
           "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18,
           "m": 10 ** -3, "": 1}


def parse_quantity(value):
    """A Kubernetes quantity (apimachinery pkg/api/resource) as a float."""
    if isinstance(value, (int, float)):
        return float(value)
    match = re.fullmatch(r"([+-]?[0-9.]+)(?:[eE]([+-]?\d+))?([A-Za-z]*)", str(value).strip())
    if not match:
        raise ValueError("invalid quantity %r" % value)
    number = float(match.group(1))
    if match.group(2):
        number *= 10 ** int(match.group(2))
    return number * _SUFFIX[match.group(3)]


def _amount(name, value):
    """Milli-units for cpu, integers otherwise (scheduler framework Resource)."""
    q = parse_quantity(value)
    return int(round(q * 1000)) if name == "cpu" else int(round(q))


def pod_requests(pod):
    """Effective requests: max(sum of containers, each init container)
    (k8s.io/component-helpers/resource PodRequests; restartable init containers ignored)."""
    total = {}
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        res = c.get("resources") or {}
        reqs = dict(res.get("limits") or {})
        reqs.update(res.get("requests") or {})   # limits default requests (defaults.go)
        for name, value in reqs.items():
            total[name] = total.get(name, 0) + _amount(name, value)
    for c in spec.get("initContainers") or []:
        res = c.get("resources") or {}
        reqs = dict(res.get("limits") or {})
        reqs.update(res.get("requests") or {})
        for name, value in reqs.items():
            total[name] = max(total.get(name, 0), _amount(name, value))
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + _amount(name, value)
    return total


def is_extended_resource(name):
    """pkg/apis/core/v1/helper IsExtendedResourceName: a domain-prefixed name outside
    kubernetes.io (and not requests.*)."""
    if "/" not in name or name.startswith("requests."):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


# =============================================================================== admission
def _match_expression(expr, labels):
    key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
    present = key in labels
    if op == "In":
        return present and labels[key] in values
    if op == "NotIn":
        return not present or labels[key] not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        try:
            a, b = int(labels.get(key)), int(values[0])
        except (TypeError, ValueError, IndexError):
            return False
        return a > b if op == "Gt" else a < b
    return False


def node_affinity_matches(pod, node):
    """component-helpers/scheduling/corev1/nodeaffinity GetRequiredNodeAffinity().Match:
    nodeSelector AND (any nodeSelectorTerm: all matchExpressions and matchFields)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        exprs = term.get("matchExpressions") or []
        fexprs = term.get("matchFields") or []
        if not exprs and not fexprs:
            continue
        if all(_match_expression(e, labels) for e in exprs) and all(_match_expression(e, fields) for e in fexprs):
            return True
    return False


def toleration_tolerates(tol, taint):
    """core/v1 Toleration.ToleratesTaint (api/core/v1/toleration.go)."""
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    if tol.get("key") and tol["key"] != taint.get("key"):
        return False
    op = tol.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (tol.get("value") or "") == (taint.get("value") or "")


def untolerated_noexecute(pod, node):
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") != "NoExecute":
            continue
        if not any(toleration_tolerates(t, taint) for t in tolerations):
            return taint
    return None


def admit(pod, node, other_pods):
    """(admit, reason, message): pkg/kubelet/lifecycle/predicate.go Admit/generalFilter
    (scheduler AdmissionCheck: resources, node affinity/selector, node name; then the
    NoExecute taints). Extended resources the node does not know are dropped
    (removeMissingExtendedResources)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    pod_os = ((pod.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/os")
    if pod_os is not None and pod_os != labels.get("kubernetes.io/os", "linux"):
        return (False, "PodOSSelectorNodeLabelDoesNotMatch",
                "Failed to admit pod as the `kubernetes.io/os` label doesn't match node label")
    spec_os = ((pod.get("spec") or {}).get("os") or {}).get("name")
    if spec_os and spec_os != "linux":
        return False, "PodOSNotSupported", "Failed to admit pod as the OS field doesn't match node OS"
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    want = pod_requests(pod)
    used = {}
    count = 0
    for other in other_pods:
        if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        count += 1
        for name, value in pod_requests(other).items():
            used[name] = used.get(name, 0) + value
    # noderesources fit.go fitsRequest: pods first, then cpu, memory, ephemeral-storage, scalar.
    max_pods = int(parse_quantity(allocatable.get("pods", 110)))
    if count + 1 > max_pods:
        return (False, "OutOfpods", "Node didn't have enough resource: pods, requested: 1, used: %d, capacity: %d"
                % (count, max_pods))
    order = ["cpu", "memory", "ephemeral-storage"] + sorted(n for n in want
                                                            if n not in ("cpu", "memory", "ephemeral-storage"))
    for name in order:
        request = want.get(name, 0)
        if not request:
            continue
        if is_extended_resource(name) and name not in allocatable:
            continue
        if name.startswith("hugepages-") or name in ("cpu", "memory", "ephemeral-storage") or is_extended_resource(name):
            cap = _amount(name, allocatable.get(name, 0))
            if request > cap - used.get(name, 0):
                return (False, "OutOf%s" % name,
                        "Node didn't have enough resource: %s, requested: %d, used: %d, capacity: %d"
                        % (name, request, used.get(name, 0), cap))
    node_name = (pod.get("spec") or {}).get("nodeName")
    if node_name and node_name != node["metadata"]["name"]:
        return False, "NodeName", "Predicate NodeName failed: node(s) didn't match the requested node name"
    if not node_affinity_matches(pod, node):
        return (False, "NodeAffinity",
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector")
    if untolerated_noexecute(pod, node):
        return (False, "TaintToleration",
                "Predicate TaintToleration failed: node(s) had untolerated taint(s)")
    return True, "", ""


# =============================================================================== sandbox
def resolve_runtime_handler(pod, runtime_class, runtime, binary_exists):
    """(handler, error_message) for the pod sandbox.

    - kubernetes pkg/kubelet/runtimeclass/runtimeclass_manager.go LookupRuntimeHandler:
      runtimeClassName set and RuntimeClass missing -> `runtimeclass.node.k8s.io "<n>" not found`.
    - containerd internal/cri/server/sandbox_run.go / podsandbox: an unknown handler ->
      `no runtime for "<handler>" is configured`.
    - the runc shim runs options.BinaryName; missing -> exec error (the task create fails).
    runtime_class: the RuntimeClass object, or None when missing; ignored without runtimeClassName.
    """
    name = (pod.get("spec") or {}).get("runtimeClassName")
    if name:
        if runtime_class is None:
            return None, 'runtimeclass.node.k8s.io "%s" not found' % name
        handler = runtime_class.get("handler") or ""
    else:
        handler = runtime.default_runtime
    rt = runtime.runtimes.get(handler)
    if rt is None:
        return handler, ('rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "%s" is '
                         'configured' % handler)
    binary = rt["binary"]
    if not binary_exists(binary):
        if binary.startswith("/"):
            detail = "fork/exec %s: no such file or directory" % binary
        else:
            detail = 'exec: "%s": executable file not found in $PATH' % binary
        return handler, ("rpc error: code = Unknown desc = failed to create containerd task: failed to create shim "
                         "task: OCI runtime create failed: unable to retrieve OCI runtime error (open "
                         "/run/containerd/io.containerd.runtime.v2.task/k8s.io/sandbox/log.json: no such file or "
                         "directory): %s: unknown" % detail)
    return handler, None


def runtime_is_nvidia(runtime, handler):
    rt = runtime.runtimes.get(handler) or {}
    return "nvidia-container-runtime" in os.path.basename(rt.get("binary") or "")


# =============================================================================== pod status
def container_state(proc, waiting_reason=None, waiting_message=None, restart_count=0, last=None, image=""):
    """A ContainerStatus from a Process (pkg/kubelet/kubelet_pods.go convertToAPIContainerStatuses)."""
    status = {"restartCount": restart_count, "image": image, "imageID": "", "containerID": ""}
    if waiting_reason:
        status["state"] = {"waiting": {"reason": waiting_reason, **({"message": waiting_message}
                                                                    if waiting_message else {})}}
        status["ready"] = False
        status["started"] = False
    elif proc is None:
        status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        status["ready"] = False
        status["started"] = False
    elif proc.state == "running":
        status["state"] = {"running": {"startedAt": _ts(proc.started_at)}}
        status["ready"] = bool(proc.ready)
        status["started"] = True
    else:
        term = {"exitCode": proc.exit_code, "reason": proc.reason or ("Completed" if proc.exit_code == 0 else "Error"),
                "startedAt": _ts(proc.started_at), "finishedAt": _ts(proc.finished_at or proc.started_at)}
        if proc.message:
            term["message"] = proc.message
        status["state"] = {"terminated": term}
        status["ready"] = False
        status["started"] = False
    if last is not None:
        status["lastState"] = {"terminated": {"exitCode": last.exit_code, "reason": last.reason or "Error",
                                              "startedAt": _ts(last.started_at),
                                              "finishedAt": _ts(last.finished_at or last.started_at)}}
    else:
        status["lastState"] = {}
    return status


def pod_phase(spec, init_done, statuses):
    """pkg/kubelet/kubelet_pods.go getPhase."""
    if not init_done:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for st in statuses:
        state = st["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"]["exitCode"] == 0:
                succeeded += 1
        else:
            # a waiting container that ran before (restartCount > 0) counts as running
            if st.get("restartCount", 0) > 0 or st.get("lastState", {}).get("terminated"):
                running += 1
            else:
                waiting += 1
    policy = spec.get("restartPolicy", "Always")
    if waiting > 0:
        return "Pending"
    if running > 0:
        return "Running"
    if stopped == len(statuses) and statuses:
        if policy == "Always":
            return "Running"
        if succeeded == stopped:
            return "Succeeded"
        return "Running" if policy == "OnFailure" else "Failed"
    return "Pending"


def pod_conditions(phase, sandbox_ready, init_done, statuses, now, previous=None, all_init_names=()):
    """pkg/kubelet/status/generate.go GeneratePodReadyCondition / GenerateContainersReadyCondition /
    GeneratePodInitializedCondition, PodReadyToStartContainers (kubelet_pods.go)."""
    prev = {c["type"]: c for c in previous or []}

    def cond(ctype, ok, reason=None, message=None):
        status = "True" if ok else "False"
        old = prev.get(ctype)
        c = {"type": ctype, "status": status, "lastProbeTime": None,
             "lastTransitionTime": old["lastTransitionTime"] if old and old.get("status") == status else now}
        if reason:
            c["reason"] = reason
        if message:
            c["message"] = message
        return c

    unready = [s["name"] for s in statuses if not s.get("ready")]
    completed = phase in ("Succeeded", "Failed")
    if completed:
        cr = cond("ContainersReady", False, "PodCompleted")
        r = cond("Ready", False, "PodCompleted")
    elif unready:
        msg = "containers with unready status: [%s]" % " ".join(unready)
        cr = cond("ContainersReady", False, "ContainersNotReady", msg)
        r = cond("Ready", False, "ContainersNotReady", msg)
    else:
        cr = cond("ContainersReady", True)
        r = cond("Ready", True)
    init = (cond("Initialized", True, "PodCompleted" if completed else None) if init_done
            else cond("Initialized", False, "ContainersNotInitialized",
                      "containers with incomplete status: [%s]" % " ".join(all_init_names)))
    out = [cond("PodReadyToStartContainers", bool(sandbox_ready) and not completed), init, r, cr]
    if "PodScheduled" in prev:
        out.append(prev["PodScheduled"])
    else:
        out.append(cond("PodScheduled", True))
    return out


def crashloop_backoff(restarts):
    """pkg/kubelet/kubelet.go: container restart back-off 10 s doubling to 300 s
    (backOffPeriod, MaxContainerBackOff)."""
    return min(10 * (2 ** max(restarts - 1, 0)), 300)


def pod_ip_from_cidr(cidr, index):
    """The index-th host address of the node's podCIDR (Calico IPAM gives addresses from
    the node's block; the simulation uses spec.podCIDR, host-local style: .2 upwards)."""
    net = ipaddress.ip_network(cidr, strict=False)
    return str(net.network_address + 2 + index)


def _ts(epoch=None):
    return datetime.datetime.fromtimestamp(epoch if epoch is not None else time.time(),
                                           datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro(epoch=None):
    return datetime.datetime.fromtimestamp(epoch if epoch is not None else time.time(),
                                           datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# =============================================================================== node object
def node_labels(name, arch):
    """kubelet_node_status.go initialNode: hostname, os, arch, beta os/arch."""
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}


def go_arch(machine=None):
    machine = machine or platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
            "s390x": "s390x"}.get(machine, machine)


def allocatable_from(capacity, reserved=None, eviction_hard=None):
    """pkg/kubelet/cm/node_container_manager_linux.go GetNodeAllocatableAbsolute:
    capacity - kubeReserved - systemReserved - hard eviction (memory.available 100Mi,
    nodefs.available 10% by default: pkg/kubelet/apis/config/v1beta1 defaults)."""
    reserved = reserved or {}
    eviction = {"memory.available": "100Mi", "nodefs.available": "10%"}
    eviction.update(eviction_hard or {})
    out = dict(capacity)
    mem = _amount("memory", capacity["memory"]) - _amount("memory", reserved.get("memory", 0))
    ev = eviction.get("memory.available", "0")
    mem -= int(_amount("memory", capacity["memory"]) * float(ev[:-1]) / 100) if ev.endswith("%") else _amount("memory", ev)
    out["memory"] = "%dKi" % (max(mem, 0) // 1024)
    cpu = _amount("cpu", capacity["cpu"]) - _amount("cpu", reserved.get("cpu", 0))
    out["cpu"] = "%dm" % cpu if cpu % 1000 else str(cpu // 1000)
    eph = _amount("ephemeral-storage", capacity["ephemeral-storage"])
    ev = eviction.get("nodefs.available", "0")
    eph -= int(eph * float(ev[:-1]) / 100) if ev.endswith("%") else _amount("ephemeral-storage", ev)
    out["ephemeral-storage"] = str(max(eph, 0))
    return out


# =============================================================================== daemon
class Host:
    """The test host: every question the kubelet asks it."""

    def __init__(self, root="/"):
        self.root = root

    @staticmethod
    def run(argv, timeout=30):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            return out.returncode, out.stdout, out.stderr
        except (OSError, subprocess.SubprocessError) as err:
            return 127, "", str(err)

    def containerd_active(self):
        return self.run(["systemctl", "is-active", "containerd"])[1].strip() == "active"

    def containerd_dump(self):
        rc, out, _err = self.run(["containerd", "config", "dump"])
        return (rc == 0), out

    def containerd_version(self):
        return self.run(["containerd", "--version"])[1].strip()

    @staticmethod
    def binary_exists(binary):
        if binary.startswith("/"):
            return os.access(binary, os.X_OK)
        return shutil.which(binary) is not None

    def memory_kib(self):
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
        return 0

    @staticmethod
    def os_image():
        try:
            with open("/etc/os-release") as stream:
                for line in stream:
                    if line.startswith("PRETTY_NAME="):
                        return line.split("=", 1)[1].strip().strip('"')
        except OSError:
            pass
        return "Linux"

    @staticmethod
    def read(path):
        try:
            with open(path) as stream:
                return stream.read().strip()
        except OSError:
            return ""

    def default_ip(self):
        rc, out, _err = self.run(["ip", "-4", "route", "get", "1.1.1.1"])
        match = re.search(r"\bsrc (\S+)", out)
        if match:
            return match.group(1)
        try:
            return socket.gethostbyname(socket.gethostname())
        except OSError:
            return "127.0.0.1"


class PodRecord:
    def __init__(self, pod):
        self.uid = pod["metadata"]["uid"]
        self.pod = pod
        self.admitted = None
        self.reject = None
        self.sandbox_error = None
        self.handler = None
        self.procs = {}          # container name -> Process
        self.last = {}           # container name -> previous Process
        self.restarts = {}
        self.next_start = {}
        self.init_done = False
        self.ip = None
        self.allocated = {}      # container -> {resource: [ids]}
        self.envs = {}           # container -> extra env
        self.start_time = None
        self.events_sent = set()
        self.last_status = None


class Kubelet:
    def __init__(self, args):
        self.args = args
        self.host = Host()
        self.config = {}
        self.node_name = args.hostname_override or socket.gethostname().split(".")[0].lower()
        self.node_ip = args.node_ip
        self.api = None
        self.pods = {}           # uid -> PodRecord
        self.lock = threading.RLock()
        self.runtime = None
        self.containerd_version = ""
        self.node = None
        self.ip_index = 0
        self.used_ips = set()
        self.gpus = []
        self.nvml = False
        self.driver_version = None
        self.plugin_resources = {}
        self._status_reported = None   # monotonic time of the last node status posted
        self.stop = threading.Event()

    # -- setup ---------------------------------------------------------------------
    def load(self):
        from .client import Client

        if not os.path.exists(self.args.kubeconfig):
            print("kubelet: %s missing (kubeadm has not run yet)" % self.args.kubeconfig, file=sys.stderr)
            sys.exit(1)
        if self.args.config and os.path.exists(self.args.config):
            with open(self.args.config) as stream:
                self.config = yamlish.load(stream.read()) or {}
        self.api = Client.from_kubeconfig(self.args.kubeconfig)
        self.node_ip = self.node_ip or self.host.default_ip()
        mig = gpumod.load_mig_layout()
        self.gpus = gpumod.read_gpus(self.args.sysfs_pci, self.node_name, mig)
        self.nvml = gpumod.host_nvml_present()
        self.driver_version = gpumod.host_driver_version()

    def current_gpus(self):
        """The GPUs as NVML shows them when a container starts: the MIG layout as it is now
        (nvidia-smi mig on the host changes it; the device plugin enumerates its devices
        through NVML when it starts, k8s-device-plugin internal/rm/nvml_manager.go
        NewNVMLResourceManagers, so a restarted plugin sees the new layout)."""
        self.gpus = gpumod.read_gpus(self.args.sysfs_pci, self.node_name, gpumod.load_mig_layout())
        return self.gpus

    # -- node ----------------------------------------------------------------------
    def capacity(self):
        st = os.statvfs("/var/lib/kubelet" if os.path.isdir("/var/lib/kubelet") else "/")
        return {"cpu": str(os.cpu_count() or 1), "memory": "%dKi" % self.host.memory_kib(),
                "pods": str(self.config.get("maxPods", 110)),
                "ephemeral-storage": "%dKi" % (st.f_blocks * st.f_frsize // 1024),
                "hugepages-1Gi": "0", "hugepages-2Mi": "0"}

    def runtime_state(self):
        active = self.host.containerd_active()
        ok, dump = self.host.containerd_dump() if active else (False, "")
        self.runtime = parse_containerd_config(dump) if ok else None
        self.containerd_version = self.host.containerd_version()
        return active, ok

    def node_status(self, previous_conditions=None):
        active, ok = self.runtime_state()
        net_ok, net_msg = cni_network_ready(self.runtime.cni_conf_dir if self.runtime else "/etc/cni/net.d")
        ready = ready_condition(active, ok, self.runtime, self.config.get("cgroupDriver", "cgroupfs"),
                                containerd_major(self.containerd_version), net_ok, net_msg)
        now = _ts()
        cap = self.capacity()
        alloc = allocatable_from(cap, {**(self.config.get("systemReserved") or {}),
                                       **(self.config.get("kubeReserved") or {})},
                                 self.config.get("evictionHard"))
        for name, count in self.plugin_resources.items():
            cap[name] = str(count)
            alloc[name] = str(count)
        handlers = []
        if self.runtime:
            for name in sorted(self.runtime.runtimes):
                handlers.append({"name": name, "features": {"recursiveReadOnlyMounts": True, "userNamespaces": True}})
        machine_id = self.host.read("/etc/machine-id")
        status = {
            "capacity": cap, "allocatable": alloc,
            "conditions": node_conditions(ready, now, previous_conditions),
            "addresses": [{"type": "InternalIP", "address": self.node_ip},
                          {"type": "Hostname", "address": self.node_name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.args.port}},
            "nodeInfo": {
                "machineID": machine_id, "systemUUID": self.host.read("/sys/class/dmi/id/product_uuid") or machine_id,
                "bootID": self.host.read("/proc/sys/kernel/random/boot_id"),
                "kernelVersion": platform.release(), "osImage": self.host.os_image(),
                "containerRuntimeVersion": "containerd://%s" % containerd_version_string(self.containerd_version),
                "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
                "architecture": go_arch()},
            "runtimeHandlers": handlers,
        }
        return status

    def register(self):
        """kubelet_node_status.go registerWithAPIServer / tryRegisterWithAPIServer."""
        labels = node_labels(self.node_name, go_arch())
        node = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": labels,
                             "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
                "spec": {}}
        taints = self.config.get("registerWithTaints") or []
        if taints:
            node["spec"]["taints"] = taints
        if self.args.register_with_taints:
            node["spec"]["taints"] = node["spec"].get("taints", []) + parse_taints(self.args.register_with_taints)
        if self.args.node_labels:
            for item in self.args.node_labels.split(","):
                if "=" in item:
                    k, v = item.split("=", 1)
                    labels[k] = v
        from .client import ApiError
        try:
            created = self.api.create("/api/v1/nodes", node)
            self.node = created
        except ApiError as err:
            if err.status != 409:
                raise
            existing = self.api.get("/api/v1/nodes/%s" % self.node_name)
            # updateDefaultLabels: only the kubelet's default labels are reconciled.
            cur = existing["metadata"].get("labels") or {}
            if any(cur.get(k) != v for k, v in labels.items()):
                self.api.strategic_patch("/api/v1/nodes/%s" % self.node_name, {"metadata": {"labels": labels}})
            self.node = self.api.get("/api/v1/nodes/%s" % self.node_name)
        self.update_status(force=True)

    def fresh_node(self):
        """This kubelet's Node as the API server has it now; the last copy if the read fails."""
        try:
            node = self.api.get("/api/v1/nodes/%s" % self.node_name)
        except Exception:  # noqa: BLE001 - the informer's cache outlives an API server away
            node = None
        if node is not None:
            self.node = node
        return self.node

    def update_status(self, force=False):
        node = self.api.get("/api/v1/nodes/%s" % self.node_name)
        if node is None:
            return
        self.node = node
        old = node.get("status") or {}
        status = self.node_status(old.get("conditions"))
        # extended resources that went away: null them (strategic merge deletes the key).
        for key in ("capacity", "allocatable"):
            for name in (old.get(key) or {}):
                if is_extended_resource(name) and name not in status[key]:
                    status[key][name] = None
        conds = [c for c in old.get("conditions") or [] if c["type"] not in
                 ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")]
        status["conditions"] = conds + status["conditions"]
        # tryUpdateNodeStatus: an unchanged status is posted again only after
        # nodeStatusReportFrequency; the Lease is the heartbeat in between (renew_lease).
        last = self._status_reported
        if (not force and last is not None and time.monotonic() - last < NODE_STATUS_REPORT_FREQUENCY
                and not node_status_changed(old, status)):
            return
        path = "/api/v1/nodes/%s/status" % self.node_name
        from .client import ApiError
        try:
            self.node = self.api.strategic_patch(path, {"status": status})
        except ApiError as err:
            if err.status not in (400, 415, 422):
                raise
            self.node = self.api.merge_patch(path, {"status": status})
        self._status_reported = time.monotonic()

    def renew_lease(self):
        """k8s.io/component-helpers/apimachinery/lease controller: 40 s lease, renewed every
        10 s (kubelet nodeLeaseDurationSeconds 40, renew interval 25% of it)."""
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        lease = self.api.get("%s/%s" % (path, self.node_name))
        now = _micro()
        if lease is None:
            owner = []
            if self.node and self.node.get("metadata", {}).get("uid"):
                owner = [{"apiVersion": "v1", "kind": "Node", "name": self.node_name,
                          "uid": self.node["metadata"]["uid"]}]
            self.api.create(path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                   "metadata": {"name": self.node_name, "namespace": "kube-node-lease",
                                                "ownerReferences": owner},
                                   "spec": {"holderIdentity": self.node_name,
                                            "leaseDurationSeconds": self.config.get("nodeLeaseDurationSeconds", 40),
                                            "renewTime": now}})
        else:
            lease["spec"]["renewTime"] = now
            lease["spec"]["holderIdentity"] = self.node_name
            self.api.replace("%s/%s" % (path, self.node_name), lease)

    def heartbeat_loop(self):
        while not self.stop.is_set():
            try:
                self.renew_lease()
                self.update_status()
            except Exception as err:  # noqa: BLE001
                print("kubelet: heartbeat: %s" % err, file=sys.stderr)
            self.stop.wait(self.args.status_interval)

    # -- pods ----------------------------------------------------------------------
    def watch_pods(self):
        params = {"fieldSelector": "spec.nodeName=%s" % self.node_name}
        while not self.stop.is_set():
            try:
                listing = self.api.request("GET", "/api/v1/pods", params=params)
                seen = set()
                for pod in listing.get("items", []):
                    seen.add(pod["metadata"]["uid"])
                    self.on_pod(pod)
                with self.lock:
                    for uid in list(self.pods):
                        if uid not in seen:
                            self.forget(uid)
                rv = (listing.get("metadata") or {}).get("resourceVersion")
                for event in self.api.watch("/api/v1/pods", params=dict(params, resourceVersion=rv),
                                            timeout_seconds=60):
                    obj = event.get("object") or {}
                    if event.get("type") == "DELETED":
                        self.forget(obj.get("metadata", {}).get("uid"))
                    elif event.get("type") in ("ADDED", "MODIFIED"):
                        self.on_pod(obj)
                    if self.stop.is_set():
                        return
            except Exception as err:  # noqa: BLE001
                print("kubelet: pod watch: %s" % err, file=sys.stderr)
                self.stop.wait(2)

    def on_pod(self, pod):
        with self.lock:
            uid = pod["metadata"]["uid"]
            rec = self.pods.get(uid)
            if rec is None:
                rec = PodRecord(pod)
                self.pods[uid] = rec
            rec.pod = pod

    def forget(self, uid):
        with self.lock:
            rec = self.pods.pop(uid, None)
        if rec:
            for proc in rec.procs.values():
                proc.stop()
            self.used_ips.discard(rec.ip)

    def sync_loop(self):
        while not self.stop.is_set():
            with self.lock:
                records = list(self.pods.values())
            for rec in records:
                try:
                    self.sync_pod(rec)
                except Exception as err:  # noqa: BLE001
                    print("kubelet: sync %s: %s" % (rec.pod["metadata"].get("name"), err), file=sys.stderr)
            self.refresh_plugins()
            self.stop.wait(1)

    def refresh_plugins(self):
        """devicemanager: a plugin's resources exist while its pod runs on this node
        (pkg/kubelet/cm/devicemanager/manager.go GetCapacity: resources of a gone plugin
        drop to 0 and are removed)."""
        res = {}
        with self.lock:
            for rec in self.pods.values():
                for proc in rec.procs.values():
                    if proc.state == "running" and proc.plugin is not None:
                        for name, count in proc.plugin.capacity().items():
                            res[name] = res.get(name, 0) + count
        if res != self.plugin_resources:
            self.plugin_resources = res
            try:
                self.update_status()
            except Exception as err:  # noqa: BLE001
                print("kubelet: status: %s" % err, file=sys.stderr)

    def plugin_for(self, resource):
        with self.lock:
            for rec in self.pods.values():
                for proc in rec.procs.values():
                    if proc.state == "running" and proc.plugin is not None and resource in proc.plugin.resources:
                        return proc.plugin
        return None

    def mps_daemon_ready(self):
        with self.lock:
            return any(p.state == "running" and p.mps_daemon for r in self.pods.values() for p in r.procs.values())

    def event(self, rec, etype, reason, message):
        key = (reason, message)
        if key in rec.events_sent:
            return
        rec.events_sent.add(key)
        meta = rec.pod["metadata"]
        now = _ts()
        try:
            self.api.create("/api/v1/namespaces/%s/events" % meta["namespace"], {
                "apiVersion": "v1", "kind": "Event",
                # client-go tools/record/event.go makeEvent: name "<object>.<unix nanos hex>".
                "metadata": {"name": "%s.%x" % (meta["name"], time.time_ns()), "namespace": meta["namespace"]},
                "involvedObject": {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                                   "uid": meta["uid"], "apiVersion": "v1"},
                "reason": reason, "message": message, "type": etype,
                "source": {"component": "kubelet", "host": self.node_name},
                "firstTimestamp": now, "lastTimestamp": now, "count": 1,
                "reportingComponent": "kubelet", "reportingInstance": self.node_name})
        except Exception as err:  # noqa: BLE001
            print("kubelet: event: %s" % err, file=sys.stderr)

    def read_volume_file(self, pod, container, path):
        """Resolve a path inside the container through its volumeMounts (configMap,
        secret, hostPath) to the content."""
        spec = pod.get("spec") or {}
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        best = None
        for m in container.get("volumeMounts") or []:
            mp = m.get("mountPath", "").rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best[0]):
                    best = (mp, m)
        if best is None:
            return None
        mp, mount = best
        rel = path[len(mp):].lstrip("/")
        if mount.get("subPath"):
            rel = mount["subPath"] if not rel else mount["subPath"] + "/" + rel
        vol = volumes.get(mount["name"]) or {}
        ns = pod["metadata"]["namespace"]
        if "configMap" in vol:
            cm = self.api.get("/api/v1/namespaces/%s/configmaps/%s" % (ns, vol["configMap"]["name"]))
            data = (cm or {}).get("data") or {}
            items = {i["path"]: i["key"] for i in vol["configMap"].get("items") or []}
            key = items.get(rel, rel)
            return data.get(key)
        if "secret" in vol:
            import base64
            sec = self.api.get("/api/v1/namespaces/%s/secrets/%s" % (ns, vol["secret"]["secretName"]))
            value = ((sec or {}).get("data") or {}).get(rel)
            return base64.b64decode(value).decode() if value else None
        if "hostPath" in vol:
            return self.host.read(os.path.join(vol["hostPath"]["path"], rel))
        return None

    def container_env(self, pod, container, extra):
        env = workloads.image_env(container.get("image", ""))
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = item["value"]
            elif "valueFrom" in item:
                ref = (item["valueFrom"].get("fieldRef") or {}).get("fieldPath")
                values = {"spec.nodeName": self.node_name, "metadata.name": pod["metadata"]["name"],
                          "metadata.namespace": pod["metadata"]["namespace"], "status.hostIP": self.node_ip}
                if ref in values:
                    env[item["name"]] = values[ref]
        env.update(extra or {})
        return env

    def allocate_devices(self, rec):
        """devicemanager Allocate for every container's extended resources (requests ==
        limits for them)."""
        in_use = set()
        with self.lock:
            for other in self.pods.values():
                if other is rec:
                    continue
                for per in other.allocated.values():
                    for ids in per.values():
                        in_use.update(ids)
        for c in (rec.pod["spec"].get("initContainers") or []) + rec.pod["spec"].get("containers", []):
            limits = dict((c.get("resources") or {}).get("limits") or {})
            limits.update((c.get("resources") or {}).get("requests") or {})
            envs = {}
            for name, value in limits.items():
                if not is_extended_resource(name):
                    continue
                plugin = self.plugin_for(name)
                if plugin is None:
                    continue
                ids, extra = plugin.allocate(name, int(parse_quantity(value)), in_use)
                in_use.update(ids)
                rec.allocated.setdefault(c["name"], {})[name] = ids
                envs.update(extra)
            rec.envs[c["name"]] = envs
        if dra.pod_claim_entries(rec.pod):
            # DRA: NodePrepareResources of the pod's claims by the running DRA plugins (dra.py).
            self.prepare_claims(rec)

    def prepare_claims(self, rec):
        """kubelet pkg/kubelet/cm/dra/manager.go PrepareResources: the claims as the API server
        has them, prepared by the DRA plugins registered on this node (running plugin pods)."""
        with self.lock:
            drivers = set(getattr(p, "dra_driver", None) for r in self.pods.values() for p in r.procs.values()
                          if p.state == "running")
        namespace = rec.pod["metadata"]["namespace"]
        names = [dra.claim_name_for(rec.pod, e) for e in dra.pod_claim_entries(rec.pod)]
        claims = [c for c in (self.api.get(dra.claims_path(namespace, n)) for n in names if n) if c]
        try:
            prepared = dra.prepare_pod(rec.pod, claims, self.node_name, self.gpus, drivers)
        except dra.DraError as err:
            raise gpumod.PluginError(str(err)) from err
        for name, env in prepared.items():
            rec.envs.setdefault(name, {}).update(env)

    def sync_pod(self, rec):
        pod = rec.pod
        meta, spec = pod["metadata"], pod.get("spec") or {}
        if meta.get("deletionTimestamp"):
            for proc in rec.procs.values():
                proc.stop()
            self.api.delete("/api/v1/namespaces/%s/pods/%s" % (meta["namespace"], meta["name"]),
                            params={"gracePeriodSeconds": "0"},
                            body={"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                                  "preconditions": {"uid": meta["uid"]}})
            self.forget(rec.uid)
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") and not rec.procs:
            return
        if rec.start_time is None:
            rec.start_time = (pod.get("status") or {}).get("startTime") or _ts()
        if rec.admitted is None:
            with self.lock:
                others = [r.pod for r in self.pods.values() if r is not rec and r.admitted]
            # The admit handler reads the Node through the kubelet's informer on its own Node
            # (pkg/kubelet/kubelet.go NewMainKubelet: nodeLister; lifecycle.NewPredicateAdmitHandler
            # with getNodeAnyWay), current within a watch event: a label written a moment ago (the
            # GPU Operator's nvidia.com/gpu.deploy.* before its DaemonSets) counts. A fresh read,
            # not the copy of the last heartbeat (up to --status-interval old).
            node = self.fresh_node()
            ok, reason, message = admit(pod, node, others)
            if ok:
                try:
                    self.allocate_devices(rec)
                except gpumod.PluginError as err:
                    # container_manager_linux.go resourceAllocator.Admit.
                    ok, reason, message = False, "UnexpectedAdmissionError", \
                        "Allocate failed due to %s, which is unexpected" % err
            rec.admitted = ok
            if not ok:
                rec.reject = (reason, message)
                self.event(rec, "Warning", reason, message)
        if not rec.admitted:
            # kubelet.go rejectPod.
            self.put_status(rec, {"phase": "Failed", "reason": rec.reject[0],
                                  "message": "Pod was rejected: " + rec.reject[1], "startTime": rec.start_time})
            return
        # sandbox
        if not rec.procs and not rec.init_done:
            rc = None
            if spec.get("runtimeClassName"):
                rc = self.api.get("/apis/node.k8s.io/v1/runtimeclasses/%s" % spec["runtimeClassName"])
            if self.runtime is None:
                self.runtime_state()
            if self.runtime is None:
                rec.sandbox_error = "container runtime is down"
            else:
                handler, err = resolve_runtime_handler(pod, rc, self.runtime, self.host.binary_exists)
                rec.handler, rec.sandbox_error = handler, err
            if not rec.sandbox_error and not spec.get("hostNetwork"):
                net_ok, net_msg = cni_network_ready(self.runtime.cni_conf_dir)
                if not net_ok:
                    rec.sandbox_error = net_msg
            if rec.sandbox_error:
                # kuberuntime_manager.go SyncPod: FailedCreatePodSandBox.
                self.event(rec, "Warning", "FailedCreatePodSandBox",
                           "Failed to create pod sandbox: %s" % rec.sandbox_error)
                self.put_status(rec, self.build_status(rec, sandbox_ready=False))
                return
            if rec.ip is None:
                rec.ip = self.allocate_ip(spec)
        self.run_containers(rec)
        self.put_status(rec, self.build_status(rec, sandbox_ready=True))

    def allocate_ip(self, spec):
        if spec.get("hostNetwork"):
            return self.node_ip
        cidr = ((self.node or {}).get("spec") or {}).get("podCIDR")
        if not cidr:
            return None
        i = 0
        while True:
            ip = pod_ip_from_cidr(cidr, i)
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip
            i += 1

    def make_context(self, rec, container):
        pod = rec.pod
        return workloads.Context(
            pod, container, node_name=self.node_name,
            env=self.container_env(pod, container, rec.envs.get(container["name"])),
            runtime={"handler": rec.handler,
                     "binary": (self.runtime.runtimes.get(rec.handler) or {}).get("binary"),
                     "nvidia": runtime_is_nvidia(self.runtime, rec.handler)},
            gpus=self.current_gpus(), nvml_on_host=self.nvml, driver_version=self.driver_version,
            read_file=lambda path: self.read_volume_file(pod, container, path),
            api=self.api, mps_daemon_ready=self.mps_daemon_ready, host_ip=self.node_ip,
            cni_dir=self.runtime.cni_conf_dir if self.runtime else "/etc/cni/net.d",
            sysfs_pci=self.args.sysfs_pci)

    def run_containers(self, rec):
        spec = rec.pod["spec"]
        now = time.time()
        if not rec.init_done:
            for c in spec.get("initContainers") or []:
                proc = rec.procs.get(c["name"])
                if proc is None:
                    proc = workloads.start(self.make_context(rec, c))
                    rec.procs[c["name"]] = proc
                if proc.state == "running":
                    return
                if proc.exit_code != 0:
                    if spec.get("restartPolicy", "Always") == "Never":
                        return
                    self.restart(rec, c, now)
                    return
            rec.init_done = True
        policy = spec.get("restartPolicy", "Always")
        for c in spec.get("containers") or []:
            proc = rec.procs.get(c["name"])
            if proc is None:
                if now < rec.next_start.get(c["name"], 0):
                    continue
                proc = workloads.start(self.make_context(rec, c))
                rec.procs[c["name"]] = proc
                if proc.state == "start_error":
                    self.event(rec, "Warning", "Failed", "Error: %s" % proc.message)
                elif proc.state == "exited" and proc.exit_code != 0:
                    self.event(rec, "Warning", "BackOff", "Back-off restarting failed container %s in pod %s"
                               % (c["name"], rec.pod["metadata"]["name"]))
                continue
            if proc.state == "running":
                continue
            failed = proc.exit_code != 0
            if policy == "Always" or (policy == "OnFailure" and failed):
                self.restart(rec, c, now)

    def restart(self, rec, container, now):
        name = container["name"]
        proc = rec.procs.pop(name)
        rec.last[name] = proc
        rec.restarts[name] = rec.restarts.get(name, 0) + 1
        rec.next_start[name] = now + crashloop_backoff(rec.restarts[name])

    def build_status(self, rec, sandbox_ready):
        spec = rec.pod["spec"]
        now = _ts()

        def statuses(containers, init=False):
            out = []
            for c in containers:
                name = c["name"]
                proc = rec.procs.get(name)
                waiting = msg = None
                if not sandbox_ready:
                    waiting = "PodInitializing" if init else "ContainerCreating"
                elif proc is None and rec.restarts.get(name):
                    waiting = "CrashLoopBackOff"
                    msg = "back-off %ds restarting failed container=%s pod=%s_%s(%s)" % (
                        crashloop_backoff(rec.restarts[name]), name, rec.pod["metadata"]["name"],
                        rec.pod["metadata"]["namespace"], rec.uid)
                elif proc is None:
                    waiting = "PodInitializing" if (not init and not rec.init_done) else "ContainerCreating"
                st = container_state(proc, waiting, msg, rec.restarts.get(name, 0), rec.last.get(name),
                                     c.get("image", ""))
                st["name"] = name
                if proc is not None and proc.state != "start_error":
                    st["containerID"] = "containerd://%032x" % (abs(hash((rec.uid, name, rec.restarts.get(name, 0)))))
                out.append(st)
            return out

        init_st = statuses(spec.get("initContainers") or [], init=True)
        main_st = statuses(spec.get("containers") or [])
        phase = pod_phase(spec, rec.init_done, main_st) if sandbox_ready else "Pending"
        previous = (rec.pod.get("status") or {}).get("conditions")
        status = {
            "phase": phase,
            "conditions": pod_conditions(phase, sandbox_ready, rec.init_done, main_st, now, previous,
                                         [c["name"] for c in spec.get("initContainers") or []]),
            "hostIP": self.node_ip, "hostIPs": [{"ip": self.node_ip}],
            "startTime": rec.start_time, "containerStatuses": main_st, "qosClass": qos_class(rec.pod),
        }
        if init_st:
            status["initContainerStatuses"] = init_st
        if rec.ip:
            status["podIP"] = rec.ip
            status["podIPs"] = [{"ip": rec.ip}]
        return status

    def put_status(self, rec, status):
        comparable = json.dumps({k: v for k, v in status.items() if k != "conditions"}, sort_keys=True) + \
            json.dumps([(c["type"], c["status"]) for c in status.get("conditions") or []])
        if comparable == rec.last_status:
            return
        meta = rec.pod["metadata"]
        path = "/api/v1/namespaces/%s/pods/%s/status" % (meta["namespace"], meta["name"])
        from .client import ApiError
        try:
            updated = self.api.merge_patch(path, {"status": status})
            if updated:
                rec.pod = updated
            rec.last_status = comparable
        except ApiError as err:
            if err.status == 404:
                self.forget(rec.uid)
            else:
                raise

    # -- logs ----------------------------------------------------------------------
    def container_logs(self, namespace, name, container, tail=None, previous=False):
        with self.lock:
            for rec in self.pods.values():
                meta = rec.pod["metadata"]
                if meta["namespace"] == namespace and meta["name"] == name:
                    names = [c["name"] for c in (rec.pod["spec"].get("initContainers") or [])
                             + rec.pod["spec"].get("containers", [])]
                    if container is None and len(names) == 1:
                        container = names[0]
                    proc = rec.last.get(container) if previous else (rec.procs.get(container)
                                                                     or rec.last.get(container))
                    if proc is None:
                        return None
                    lines = list(proc.logs)
                    if proc.state == "start_error":
                        lines = []
                    count = -1 if tail is None else int(tail)
                    if count >= 0:
                        lines = lines[max(0, len(lines) - count):] if count else []
                    return "".join(line + "\n" for line in lines)
        return None

    def serve_logs(self):
        kubelet = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
                query = urllib.parse.parse_qs(url.query)
                if parts == ["healthz"]:
                    return self._send(200, "ok")
                if len(parts) in (3, 4) and parts[0] == "containerLogs":
                    tail = query.get("tailLines", [None])[0]
                    text = kubelet.container_logs(parts[1], parts[2], parts[3] if len(parts) == 4 else None,
                                                  int(tail) if tail and tail.lstrip("-").isdigit() else None,
                                                  query.get("previous", ["false"])[0] == "true")
                    if text is None:
                        return self._send(404, "container %s not found in pod %s/%s" % (
                            parts[3] if len(parts) == 4 else "", parts[1], parts[2]))
                    return self._send(200, text)
                return self._send(404, "not found")

            def _send(self, code, text):
                body = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        cert, key = self.ensure_serving_cert()
        server = ThreadingHTTPServer((self.args.address, self.args.port), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        server.serve_forever()

    def ensure_serving_cert(self):
        """pkg/kubelet/kubelet.go: without serverTLSBootstrap the kubelet self-signs
        /var/lib/kubelet/pki/kubelet.{crt,key} (cert.GenerateSelfSignedCertKey)."""
        pki = self.args.cert_dir
        os.makedirs(pki, exist_ok=True)
        cert, key = os.path.join(pki, "kubelet.crt"), os.path.join(pki, "kubelet.key")
        if not (os.path.exists(cert) and os.path.exists(key)):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                            "-keyout", key, "-out", cert,
                            "-subj", "/CN=%s@%d" % (self.node_name, int(time.time())),
                            "-addext", "subjectAltName=DNS:%s,IP:%s" % (self.node_name, self.node_ip)],
                           check=True, capture_output=True)
            os.chmod(key, 0o600)
        return cert, key

    # -- main ----------------------------------------------------------------------
    def run(self):
        self.load()
        # The one static Pod simulated: kube-vip's control-plane VIP (kube_vip.py); it must run
        # before registration, which goes through the VIP.
        kube_vip.start(self.node_name, self.stop)
        threading.Thread(target=self.serve_logs, daemon=True).start()
        while not self.stop.is_set():
            try:
                self.register()
                break
            except Exception as err:  # noqa: BLE001
                print("kubelet: register: %s" % err, file=sys.stderr)
                time.sleep(3)
        threading.Thread(target=self.heartbeat_loop, daemon=True).start()
        threading.Thread(target=self.watch_pods, daemon=True).start()
        self.sync_loop()


def parse_taints(text):
    """--register-with-taints "key[=value]:Effect,..." (pkg/util/taints ParseTaints)."""
    out = []
    for item in [t for t in text.split(",") if t]:
        spec, _sep, effect = item.rpartition(":")
        key, _sep, value = spec.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        out.append(taint)
    return out


def qos_class(pod):
    """pkg/apis/core/v1/helper/qos GetPodQOS (simplified: cpu/memory only)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        for name in ("cpu", "memory"):
            if name in req or name in lim:
                any_set = True
            if name not in lim or (name in req and parse_quantity(req[name]) != parse_quantity(lim[name])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="kubelet")
    parser.add_argument("--kubeconfig", default="/etc/kubernetes/kubelet.conf")
    parser.add_argument("--bootstrap-kubeconfig")
    parser.add_argument("--config", default="/var/lib/kubelet/config.yaml")
    parser.add_argument("--hostname-override")
    parser.add_argument("--node-ip")
    parser.add_argument("--container-runtime-endpoint")
    parser.add_argument("--pod-infra-container-image")
    parser.add_argument("--register-with-taints")
    parser.add_argument("--node-labels")
    parser.add_argument("--address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=10250)
    parser.add_argument("--cert-dir", default="/var/lib/kubelet/pki")
    parser.add_argument("--sysfs-pci", default="/sys/bus/pci/devices")
    parser.add_argument("--status-interval", type=float, default=10.0)
    parser.add_argument("--version", action="store_true")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print("kubelet: ignoring flags %s" % " ".join(unknown), file=sys.stderr)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.version:
        print("Kubernetes %s" % KUBELET_VERSION)
        return 0
    Kubelet(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
