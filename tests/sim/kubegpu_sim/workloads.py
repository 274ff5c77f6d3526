# SPDX-License-Identifier: Apache-2.0
"""What each known container image does when the simulated kubelet "runs" it (test-only).

Images are matched by repository name (any registry, tag or digest):
  calico/node                  writes the CNI config containerd's CRI loads; Running, Ready
  tigera/operator              reconciles Installation "default" (operator.tigera.io/v1)
  metallb/controller           assigns LoadBalancer addresses from the pools (metallb.py)
  metallb/speaker              Running (no ARP answers)
  nvidia/k8s-device-plugin     the device plugin (gpu.py rules) / gpu-feature-discovery /
                               mps-control-daemon
  nvidia/k8s-dra-driver-gpu    NVIDIA's DRA driver: publishes the node's ResourceSlice (dra.py)
  nvidia/gpu-operator          gpu-operator: the GPU Operator's node labels, driver DaemonSet and
                               upgrade controller (gpu_operator.py)
  nvidia/driver                the Operator's driver container: Running, Ready (gpu_operator.py)
  nvidia/cloud-native/k8s-driver-manager  the driver pod's init container: exits 0
  nfd/node-feature-discovery   nfd-worker: NFD's kernel, OS and PCI labels on its node (nfd.py)
  nvidia/k8s/dcgm-exporter     Running
  nvidia/cuda                  nvidia-smi: a table for the visible GPUs, or NVML errors
  nvidia/k8s/cuda-sample       vectoradd: "Test PASSED", or the CUDA error
  anything else                sleep/long-running: Running; true/echo/exit N: exits

A container's outcome is a Process: state running|exited|start_error, exit code, logs.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import shlex
import threading
import time

from . import gpu as gpumod
from . import gpu_operator
from . import metallb
from . import nfd


# ----------------------------------------------------------------------------- images
def image_repository(image):
    """'quay.io/calico/node:v3.31.7' -> 'calico/node'; 'busybox' -> 'library/busybox'.

    Docker reference grammar (distribution/reference normalize.go): the first path
    component is a registry when it contains '.' or ':' or is 'localhost'; a bare
    name lives in Docker Hub's 'library/'.
    """
    ref = image.split("@", 1)[0]
    parts = ref.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        parts = parts[1:]
    last = parts[-1]
    if ":" in last:
        parts[-1] = last.split(":", 1)[0]
    if len(parts) == 1:
        parts = ["library"] + parts
    return "/".join(parts)


def image_tag(image):
    ref = image.split("@", 1)[0]
    last = ref.split("/")[-1]
    return last.split(":", 1)[1] if ":" in last else "latest"


# Environment baked into NVIDIA's CUDA images (gitlab.com/nvidia/container-images/cuda,
# dist/*/base/Dockerfile: ENV NVIDIA_VISIBLE_DEVICES=all, NVIDIA_DRIVER_CAPABILITIES=compute,utility);
# the device plugin's envvar overrides it for containers that request GPUs.
IMAGE_ENV = {
    "nvidia/cuda": {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
    "nvidia/k8s/cuda-sample": {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"},
}


def image_env(image):
    return dict(IMAGE_ENV.get(image_repository(image), {}))


# ----------------------------------------------------------------------------- process
class Process:
    """A simulated container process."""

    def __init__(self, state="running", exit_code=None, logs=None, ready=True, reason=None, message=None):
        self.state = state            # running | exited | start_error
        self.exit_code = exit_code
        self.logs = list(logs or [])
        self.ready = ready
        self.reason = reason
        self.message = message
        self.plugin = None            # gpu.PluginState for a running device plugin
        self.mps_daemon = False
        self.started_at = time.time()
        self.finished_at = None if state == "running" else self.started_at
        self._stop = threading.Event()
        self._thread = None

    def log(self, line):
        self.logs.append(line)
        del self.logs[:-5000]

    def exit(self, code, reason=None):
        self.state = "exited"
        self.exit_code = code
        self.reason = reason or ("Completed" if code == 0 else "Error")
        self.finished_at = time.time()

    def run_in_background(self, target):
        self._thread = threading.Thread(target=target, args=(self,), daemon=True)
        self._thread.start()

    def stop(self):
        self._stop.set()
        if self.state == "running":
            self.exit(137 if self._thread is None else 0, "Completed" if self._thread else "Error")

    @property
    def stopping(self):
        return self._stop.is_set()


def exited(code, logs=(), reason=None):
    proc = Process(logs=logs)
    proc.exit(code, reason)
    return proc


def start_error(message):
    """The runtime could not start the process: kubelet reports terminated, reason
    StartError, exit code 128 (kubernetes pkg/kubelet/kuberuntime/kuberuntime_container.go
    startContainer -> containerd "failed to create containerd task ... exec ...")."""
    proc = Process(state="start_error", ready=False, reason="StartError", message=message)
    proc.exit_code = 128
    proc.finished_at = proc.started_at
    return proc


class Context:
    """What a container sees: the kubelet fills it in."""

    def __init__(self, pod, container, node_name="", env=None, runtime=None, gpus=(), nvml_on_host=False,
                 driver_version=None, read_file=None, api=None, mps_daemon_ready=False, host_ip="",
                 cni_dir="/etc/cni/net.d", now=None, sysfs_pci="/sys/bus/pci/devices"):
        self.pod = pod
        self.container = container
        self.node_name = node_name
        self.env = dict(env or {})
        self.runtime = runtime or {"handler": "runc", "binary": "runc", "nvidia": False}
        self.gpus = list(gpus)
        self.nvml_on_host = nvml_on_host
        self.driver_version = driver_version
        self.read_file = read_file or (lambda path: None)
        self.api = api
        self.mps_daemon_ready = mps_daemon_ready
        self.host_ip = host_ip
        self.cni_dir = cni_dir
        self.now = now or datetime.datetime.now()
        self.sysfs_pci = sysfs_pci

    @property
    def argv(self):
        c = self.container
        return list(c.get("command") or []) + list(c.get("args") or [])

    @property
    def restart_policy(self):
        return (self.pod.get("spec") or {}).get("restartPolicy", "Always")

    def nvidia_injected(self):
        """The NVIDIA runtime injects the driver (libnvidia-ml, nvidia-smi) when the
        container asks for devices (nvidia-container-toolkit: NVIDIA_VISIBLE_DEVICES set and
        not void/none) and the host has the driver's user space."""
        vis = self.env.get("NVIDIA_VISIBLE_DEVICES")
        return bool(self.runtime.get("nvidia")) and vis not in (None, "", "void", "none")


def start(ctx):
    """Start the container; returns a Process."""
    repo = image_repository(ctx.container.get("image", ""))
    argv = ctx.argv
    if repo == "calico/node":
        return calico_node(ctx)
    if repo == "tigera/operator":
        return tigera_operator(ctx)
    if repo == "metallb/controller":
        return metallb.controller(ctx, Process)
    if repo == "metallb/speaker":
        return Process(logs=["Starting MetalLB speaker (simulated: no ARP answers)"])
    if repo == "nvidia/k8s-device-plugin":
        cmd = os.path.basename(argv[0]) if argv else "nvidia-device-plugin"
        if cmd == "gpu-feature-discovery":
            return Process(logs=["Starting GPU Feature Discovery (simulated: labels not written)"])
        if cmd == "mps-control-daemon" and "mount-shm" in argv[1:]:
            # k8s-device-plugin cmd/mps-control-daemon/mount/mount-shm.go: mounts the tmpfs at
            # <mpsRoot>/shm and exits (the chart's init container).
            return exited(0, ["Mounting shm (simulated)"])
        if cmd == "mps-control-daemon":
            proc = Process(logs=["Starting MPS control daemon (simulated)"])
            proc.mps_daemon = True
            return proc
        if cmd == "config-manager":
            return exited(0)
        return device_plugin(ctx)
    if repo == "nvidia/k8s-dra-driver-gpu":
        # NVIDIA's DRA driver for GPUs: its kubelet plugin (dra.py).
        from . import dra
        return dra.kubelet_plugin(ctx)
    if repo == "nvidia/gpu-operator":
        # NVIDIA/gpu-operator deployments/gpu-operator/templates/operator.yaml: command gpu-operator
        # (the validator images' nvidia-validator is not simulated: gpu_operator.py deploys none).
        if not argv or os.path.basename(argv[0]) == "gpu-operator":
            return gpu_operator.operator(ctx, Process)
        return generic(ctx)
    if repo == "nvidia/driver":
        return gpu_operator.driver_container(ctx, Process)
    if repo == "nvidia/cloud-native/k8s-driver-manager":
        return gpu_operator.driver_manager(ctx, Process, exited)
    if repo == "nfd/node-feature-discovery":
        # node-feature-discovery chart templates/worker.yaml: command nfd-worker; nfd-master and
        # nfd-gc (not deployed by the stand-in chart) would only run.
        if argv and os.path.basename(argv[0]) == "nfd-worker":
            return nfd.worker(ctx, Process)
        return Process(logs=["%s (simulated: does nothing)" % (argv[0] if argv else repo)])
    if repo in ("nvidia/k8s/dcgm-exporter", "nvidia/dcgm-exporter"):
        return Process(logs=["Starting dcgm-exporter (simulated)"])
    if repo == "nvidia/cuda":
        if any(os.path.basename(a) == "nvidia-smi" or "nvidia-smi" in a.split() for a in argv):
            return nvidia_smi(ctx)
        return generic(ctx)
    if repo == "nvidia/k8s/cuda-sample" or ("cuda-sample" in repo):
        return vectoradd(ctx)
    return generic(ctx)


# ----------------------------------------------------------------------------- generic
def generic(ctx):
    """A container we know nothing about: follow a tiny subset of sh (echo, exit N, true,
    false, sleep); without a command, long-running for restartPolicy Always, else exit 0."""
    argv = ctx.argv
    script = None
    if len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash", "ash") and argv[1] == "-c":
        script = argv[2]
    elif argv:
        script = " ".join(shlex.quote(a) for a in argv)
    if script is None:
        if ctx.restart_policy == "Always":
            return Process()
        return exited(0)
    logs = []
    for stmt in re.split(r"\s*(?:;|&&|\n)\s*", script):
        if not stmt:
            continue
        try:
            words = shlex.split(stmt)
        except ValueError:
            words = stmt.split()
        if not words:
            continue
        cmd = os.path.basename(words[0])
        if cmd == "echo":
            logs.append(" ".join(words[1:]))
        elif cmd == "exit":
            code = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
            return exited(code, logs)
        elif cmd == "false":
            return exited(1, logs)
        elif cmd in ("sleep", "pause", "tail") or cmd.endswith("pause"):
            if cmd == "sleep" and len(words) > 1 and re.fullmatch(r"\d+", words[1]) and int(words[1]) < 5:
                continue
            return Process(logs=logs)
    return exited(0, logs)


# ----------------------------------------------------------------------------- calico
CALICO_CONFLIST = {
    # What calico/node's install-cni writes (projectcalico/calico cni-plugin/pkg/install,
    # template cni-plugin/manifests? -> calico.yaml "cni_network_config"): a conflist with
    # the calico plugin (IPAM calico-ipam) and portmap.
    "name": "k8s-pod-network",
    "cniVersion": "0.3.1",
    "plugins": [
        {"type": "calico", "log_level": "info", "datastore_type": "kubernetes", "mtu": 0,
         "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"},
         "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}},
        {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
    ],
}


def calico_node(ctx):
    cni_dir = ctx.cni_dir
    try:
        os.makedirs(cni_dir, exist_ok=True)
        conf = dict(CALICO_CONFLIST)
        conf["plugins"] = [dict(p) for p in CALICO_CONFLIST["plugins"]]
        if ctx.env.get("FELIX_VXLANMTU", "").isdigit():
            conf["plugins"][0]["mtu"] = int(ctx.env["FELIX_VXLANMTU"])
        _write_atomic(os.path.join(cni_dir, "10-calico.conflist"), json.dumps(conf, indent=2) + "\n")
        kubeconfig = ("apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster:\n"
                      "    server: https://%s:6443\n    insecure-skip-tls-verify: true\n"
                      "users:\n- name: calico\n  user:\n    token: simulated\n"
                      "contexts:\n- name: calico-context\n  context:\n    cluster: local\n    user: calico\n"
                      "current-context: calico-context\n" % (ctx.host_ip or "127.0.0.1"))
        _write_atomic(os.path.join(cni_dir, "calico-kubeconfig"), kubeconfig, mode=0o600)
    except OSError as err:
        return exited(1, ["install-cni failed: %s" % err])
    return Process(logs=["Installed /etc/cni/net.d/10-calico.conflist", "Calico node started successfully"])


def _write_atomic(path, text, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "w") as stream:
        stream.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- operator
# tigera/operator v1.40.15 (the release for Calico v3.31.7): pkg/components/calico.go
# CalicoRelease, pkg/components/images.go CalicoRegistry = "quay.io/".
OPERATOR_CALICO_VERSION = {"v1.40": "v3.31.7"}
DEFAULT_REGISTRY = "quay.io/"
INSTALLATION_PATH = "/apis/operator.tigera.io/v1/installations/default"
TIGERASTATUS_PATH = "/apis/operator.tigera.io/v1/tigerastatuses"


def calico_version_for_operator(tag):
    for prefix, version in OPERATOR_CALICO_VERSION.items():
        if tag.startswith(prefix):
            return version
    return "v3.31.7"


def validate_installation(spec, pod_subnets=None):
    """Errors the operator refuses an Installation with (first one), or None.

    tigera/operator v1.40.15 pkg/controller/installation/validation.go
    validateCustomResource and pkg/controller/ippool/validation.go ValidatePools, plus
    pkg/controller/ippool/defaults.go (pools must lie within kubeadm's podSubnet).
    """
    cni = (spec.get("cni") or {}).get("type", "Calico")
    if cni not in ("Calico", "GKE", "AmazonVPC", "AzureVNET"):
        return "invalid value '%s' for spec.cni.type, it should be one of Calico,GKE,AmazonVPC,AzureVNET" % cni
    net = spec.get("calicoNetwork") or {}
    bgp = net.get("bgp", "Enabled")
    if bgp not in ("Enabled", "Disabled"):
        return "%s is invalid for bgp, should be one of Enabled,Disabled" % bgp
    mtu = net.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or mtu < 0):
        return "spec.calicoNetwork.mtu %r is not valid" % mtu
    cidrs, names = set(), set()
    for pool in net.get("ipPools") or []:
        cidr = pool.get("cidr", "")
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as err:
            return "IP pool CIDR (%s) is invalid: %s" % (cidr, err)
        if cidr in cidrs:
            return "IP pool %s is specified more than once" % cidr
        cidrs.add(cidr)
        if pool.get("name") in names:
            return "IP pool %s is specified more than once" % pool.get("name")
        names.add(pool.get("name"))
        nat = pool.get("natOutgoing", "Enabled")
        if nat not in ("Enabled", "Disabled"):
            return "%s is invalid for natOutgoing, should be one of Enabled,Disabled" % nat
        if pool.get("nodeSelector", "all()") == "":
            return "IP pool nodeSelector should not be empty"
        encap = pool.get("encapsulation", "IPIP")
        if encap not in ("IPIPCrossSubnet", "IPIP", "VXLAN", "VXLANCrossSubnet", "None"):
            return ("%s is invalid for ipPool.encapsulation, should be one of "
                    "IPIPCrossSubnet,IPIP,VXLAN,VXLANCrossSubnet,None" % encap)
        block = pool.get("blockSize")
        if network.version == 4:
            if block is not None:
                if block > 32 or block < 20:
                    return "IPv4 pool block size must be greater than 19 and less than or equal to 32"
                if network.prefixlen > block:
                    return "IP pool size is too small. It must be equal to or greater than the block size"
            # validation.go: IPIP/unencapsulated need BGP.
            if encap in ("IPIP", "IPIPCrossSubnet") and bgp == "Disabled":
                return "IPIP encapsulation requires that BGP is enabled"
            if encap == "None" and bgp == "Disabled":
                return "unencapsulated IP pools require that BGP is enabled"
        else:
            if encap in ("IPIP", "IPIPCrossSubnet"):
                return "IPIP encapsulation is not supported by IPv6 pools, but it is set for %s" % cidr
            if block is not None:
                if block > 128 or block < 116:
                    return "IPv6 pool block size must be greater than 115 and less than or equal to 128"
                if network.prefixlen > block:
                    return "IP pool size is too small. It must be equal to or greater than the block size"
        if pod_subnets:
            within = False
            for subnet in pod_subnets:
                try:
                    outer = ipaddress.ip_network(subnet.strip(), strict=False)
                except ValueError:
                    continue
                within = within or (outer.version == network.version and network.subnet_of(outer))
            if not within:
                return ("could not resolve CalicoNetwork IPPool and kubeadm configuration: IPPool %s is not within "
                        "the platform's configured pod network CIDR(s) %s" % (cidr, "[" + " ".join(pod_subnets) + "]"))
    return None


def kubeadm_pod_subnets(configmap):
    """pkg/controller/ippool/kubeadm.go extractKubeadmCIDRs: `podSubnet: (.*)` lines of
    kube-system/kubeadm-config, comma-separated."""
    out = []
    for value in ((configmap or {}).get("data") or {}).values():
        for match in re.finditer(r"podSubnet: (.*)", value or ""):
            out.extend(c.strip().strip('"') for c in match.group(1).split(",") if c.strip())
    return out


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ensure(api, path, name, obj):
    existing = api.get("%s/%s" % (path, name))
    if existing is None:
        return api.create(path, obj)
    merged = dict(existing)
    merged["spec"] = obj.get("spec", existing.get("spec"))
    meta = dict(existing.get("metadata") or {})
    meta["labels"] = {**(meta.get("labels") or {}), **(obj["metadata"].get("labels") or {})}
    merged["metadata"] = meta
    if merged.get("spec") != existing.get("spec") or meta != existing.get("metadata"):
        return api.replace("%s/%s" % (path, name), merged)
    return existing


def calico_node_daemonset(installation, version):
    """calico-system/calico-node as the operator renders it (pkg/render/node.go
    nodeDaemonset: hostNetwork, tolerations Exists (rmeta.TolerateAll), nodeSelector
    kubernetes.io/os=linux, priorityClassName system-node-critical)."""
    spec = installation.get("spec") or {}
    registry = spec.get("registry") or DEFAULT_REGISTRY
    if not registry.endswith("/"):
        registry += "/"
    image_path = spec.get("imagePath")
    image = "%s%s:%s" % (registry, (image_path + "/node") if image_path else "calico/node", version)
    net = spec.get("calicoNetwork") or {}
    env = [{"name": "DATASTORE_TYPE", "value": "kubernetes"},
           {"name": "CLUSTER_TYPE", "value": "k8s,operator,bgp"},
           {"name": "CALICO_NETWORKING_BACKEND", "value": "bird" if net.get("bgp", "Enabled") == "Enabled" else "vxlan"},
           {"name": "NODENAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
    if net.get("mtu"):
        env.append({"name": "FELIX_VXLANMTU", "value": str(net["mtu"])})
    labels = {"k8s-app": "calico-node", "app.kubernetes.io/name": "calico-node"}
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "calico-node", "namespace": "calico-system", "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"k8s-app": "calico-node"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": True,
                    "serviceAccountName": "calico-node",
                    "priorityClassName": "system-node-critical",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"operator": "Exists"}],
                    "containers": [{"name": "calico-node", "image": image, "env": env,
                                    "securityContext": {"privileged": True}}],
                },
            },
        },
    }


def kube_controllers_deployment(installation, version):
    """pkg/render/kubecontrollers/kube-controllers.go: one replica, CriticalAddonsOnly and
    control-plane tolerations (rmeta.TolerateCriticalAddonsAndControlPlane)."""
    spec = installation.get("spec") or {}
    registry = spec.get("registry") or DEFAULT_REGISTRY
    if not registry.endswith("/"):
        registry += "/"
    labels = {"k8s-app": "calico-kube-controllers"}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "calico-kube-controllers", "namespace": "calico-system", "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": "calico-kube-controllers",
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                                    {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                    "containers": [{"name": "calico-kube-controllers",
                                    "image": "%scalico/kube-controllers:%s" % (registry, version)}],
                },
            },
        },
    }


def daemonset_progress(ds):
    """tigera/operator pkg/controller/status/status.go syncState: DaemonSet checks.
    Returns (available, progressing message or None)."""
    if ds is None:
        return False, 'DaemonSet "calico-system/calico-node" is not yet scheduled on any nodes'
    st = ds.get("status") or {}
    desired = st.get("desiredNumberScheduled", 0)
    name = "%s/%s" % (ds["metadata"].get("namespace"), ds["metadata"]["name"])
    if st.get("updatedNumberScheduled", 0) < desired:
        return False, 'DaemonSet "%s" update is rolling out (%d out of %d updated)' % (
            name, st.get("updatedNumberScheduled", 0), desired)
    if st.get("numberUnavailable", 0) > 0:
        return False, 'DaemonSet "%s" is not available (awaiting %d nodes)' % (name, st["numberUnavailable"])
    if st.get("numberAvailable", 0) == 0 and desired != 0:
        return False, 'DaemonSet "%s" is not yet scheduled on any nodes' % name
    if desired == 0:
        return False, 'DaemonSet "%s" is not yet scheduled on any nodes' % name
    gen, observed = ds["metadata"].get("generation", 1), st.get("observedGeneration", 0)
    if gen > observed:
        return False, 'DaemonSet "%s" update is being processed (generation %d, observed generation %d)' % (
            name, gen, observed)
    return True, None


def _conditions(available, progressing_msg, degraded_msg, degraded_reason, generation):
    """TigeraStatus conditions (status.go: setAvailable/setProgressing/setDegraded with
    reasons AllObjectsAvailable, ResourceNotReady, InvalidConfigurationError)."""
    now = _now()
    msg_ok = "All Objects Available"
    conds = [
        {"type": "Available", "status": "True" if available else "False",
         "reason": "AllObjectsAvailable" if available else "ResourceNotReady",
         "message": msg_ok if available else (progressing_msg or degraded_msg or ""),
         "lastTransitionTime": now, "observedGeneration": generation},
        {"type": "Progressing", "status": "True" if progressing_msg and not degraded_msg else "False",
         "reason": "ResourceNotReady" if progressing_msg else "AllObjectsAvailable",
         "message": progressing_msg or (msg_ok if available else ""),
         "lastTransitionTime": now, "observedGeneration": generation},
        {"type": "Degraded", "status": "True" if degraded_msg else "False",
         "reason": degraded_reason if degraded_msg else "AllObjectsAvailable",
         "message": degraded_msg or (msg_ok if available else ""),
         "lastTransitionTime": now, "observedGeneration": generation},
    ]
    return conds


def installation_conditions(ts_conditions):
    """status.go UpdateStatusCondition: TigeraStatus Available -> Installation Ready."""
    out = []
    for c in ts_conditions:
        out.append({"type": "Ready" if c["type"] == "Available" else c["type"], "status": c["status"],
                    "reason": c["reason"] or "Unknown", "message": c["message"],
                    "lastTransitionTime": c["lastTransitionTime"],
                    "observedGeneration": c.get("observedGeneration") or 0})
    return out


def _set_tigerastatus(api, name, conditions):
    path = TIGERASTATUS_PATH
    existing = api.get("%s/%s" % (path, name))
    if existing is None:
        existing = api.create(path, {"apiVersion": "operator.tigera.io/v1", "kind": "TigeraStatus",
                                     "metadata": {"name": name}, "spec": {}})
    old = (existing.get("status") or {}).get("conditions") or []
    conditions = _keep_transition_times(old, conditions)
    if old != conditions:
        existing["status"] = {"conditions": conditions}
        api.replace("%s/%s/status" % (path, name), existing)
    return conditions


def _keep_transition_times(old, new):
    by_type = {c["type"]: c for c in old}
    out = []
    for c in new:
        prev = by_type.get(c["type"])
        if prev and prev.get("status") == c["status"]:
            c = dict(c, lastTransitionTime=prev.get("lastTransitionTime", c["lastTransitionTime"]))
        out.append(c)
    return out


def operator_reconcile(api, operator_tag="v1.40.15"):
    """One reconcile of Installation "default" (pkg/controller/installation/core_controller.go
    Reconcile, trimmed to what a kubeadm cluster with the Calico CNI needs). Returns a
    short string describing the outcome (for the logs)."""
    inst = api.get(INSTALLATION_PATH)
    if inst is None:
        return "waiting for Installation default"
    generation = inst["metadata"].get("generation", 1)
    version = calico_version_for_operator(operator_tag)
    pod_subnets = kubeadm_pod_subnets(api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config"))
    error = validate_installation(inst.get("spec") or {}, pod_subnets)
    if error:
        conds = _conditions(False, None, "Invalid Installation provided: %s" % error,
                            "InvalidConfigurationError", generation)
        conds = _set_tigerastatus(api, "calico", conds)
        _set_installation_status(api, inst, None, conds)
        return "invalid Installation: %s" % error
    if api.get("/api/v1/namespaces/calico-system") is None:
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "calico-system",
                                                       "labels": {"name": "calico-system",
                                                                  "pod-security.kubernetes.io/enforce": "privileged"}}})
    for sa in ("calico-node", "calico-kube-controllers"):
        if api.get("/api/v1/namespaces/calico-system/serviceaccounts/%s" % sa) is None:
            api.create("/api/v1/namespaces/calico-system/serviceaccounts",
                       {"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": sa, "namespace": "calico-system"}})
    _ensure(api, "/apis/apps/v1/namespaces/calico-system/daemonsets", "calico-node",
            calico_node_daemonset(inst, version))
    _ensure(api, "/apis/apps/v1/namespaces/calico-system/deployments", "calico-kube-controllers",
            kube_controllers_deployment(inst, version))
    ds = api.get("/apis/apps/v1/namespaces/calico-system/daemonsets/calico-node")
    available, progressing = daemonset_progress(ds)
    conds = _conditions(available, progressing, None, "", generation)
    conds = _set_tigerastatus(api, "calico", conds)
    # APIServer "default": its own TigeraStatus "apiserver" (pkg/controller/apiserver); the
    # simulated one is available as soon as the resource exists.
    if api.get("/apis/operator.tigera.io/v1/apiservers/default") is not None:
        _set_tigerastatus(api, "apiserver", _conditions(True, None, None, "", 1))
    _set_installation_status(api, inst, version if available else None, conds)
    return "calico-node available" if available else (progressing or "progressing")


def _set_installation_status(api, inst, version, ts_conditions):
    status = dict(inst.get("status") or {})
    status["conditions"] = installation_conditions(ts_conditions)
    if version:
        # core_controller.go: Variant and CalicoVersion are written once available.
        spec = inst.get("spec") or {}
        status["variant"] = spec.get("variant", "Calico")
        status["calicoVersion"] = version
        status["mtu"] = (spec.get("calicoNetwork") or {}).get("mtu") or 1450
    if status != (inst.get("status") or {}):
        inst = dict(inst, status=status)
        api.replace(INSTALLATION_PATH + "/status", inst)


def tigera_operator(ctx):
    tag = image_tag(ctx.container.get("image", ""))
    proc = Process(logs=["Version: %s" % tag, "Starting the Tigera operator (simulated)"])
    api = ctx.api
    if api is None:
        return proc

    def loop(p):
        last = None
        while not p.stopping:
            try:
                outcome = operator_reconcile(api, tag)
            except Exception as err:  # noqa: BLE001 - keep running like a controller
                outcome = "reconcile error: %s" % err
            if outcome != last:
                p.log("%s reconcile: %s" % (_now(), outcome))
                last = outcome
            p._stop.wait(3)
    proc.run_in_background(loop)
    return proc


# ----------------------------------------------------------------------------- device plugin
def _config_file_from(ctx):
    path = ctx.env.get("CONFIG_FILE")
    for i, arg in enumerate(ctx.argv):
        if arg.startswith("--config-file="):
            path = arg.split("=", 1)[1]
        elif arg == "--config-file" and i + 1 < len(ctx.argv):
            path = ctx.argv[i + 1]
    return path


def device_plugin(ctx):
    path = _config_file_from(ctx)
    text = None
    if path:
        text = ctx.read_file(path)
        if text is None:
            return exited(1, ["unable to load config: unable to finalize config: unable to parse config file: "
                              "error parsing config file: error opening config file: open %s: no such file or "
                              "directory" % path])
    try:
        config = gpumod.parse_config(text, ctx.env, ctx.argv[1:])
        # The plugin's container requests NVIDIA_VISIBLE_DEVICES=all; NVML loads only if
        # the NVIDIA runtime injected libnvidia-ml.so.1 from the host.
        nvml = ctx.nvidia_injected() and ctx.nvml_on_host
        state = gpumod.start_plugin(config, ctx.gpus, nvml, _mps_daemon_ready(ctx))
    except gpumod.PluginError as err:
        return exited(1, err.logs + [str(err)])
    except Exception as err:  # noqa: BLE001 - a config the parser refuses
        return exited(1, ["unable to load config: %s" % err])
    proc = Process(logs=state.logs)
    if not state.restart:
        proc.plugin = state
        return proc

    def restart(proc):
        # main.go: `goto restart` when restartTimeout fires: stop the plugins, start them again.
        while not proc.stopping:
            if proc._stop.wait(gpumod.RESTART_SECONDS):
                return
            try:
                again = gpumod.start_plugin(config, ctx.gpus, nvml, _mps_daemon_ready(ctx))
            except gpumod.PluginError as err:
                for line in err.logs + [str(err)]:
                    proc.log(line)
                proc.exit(1)
                return
            for line in again.logs:
                proc.log(line)
            if not again.restart:
                proc.plugin = again
                return
    proc.run_in_background(restart)
    return proc


def _mps_daemon_ready(ctx):
    """Whether the node's MPS control daemon runs now (the kubelet passes a callable)."""
    ready = ctx.mps_daemon_ready
    return bool(ready() if callable(ready) else ready)


# ----------------------------------------------------------------------------- CUDA
def _no_nvidia_smi(ctx):
    # CUDA images do not ship nvidia-smi; the NVIDIA runtime mounts it from the host
    # (nvidia-container-toolkit "utility" capability). Without it containerd's runc
    # cannot exec it.
    return start_error('failed to create containerd task: failed to create shim task: OCI runtime create failed: '
                       'runc create failed: unable to start container process: error during container init: '
                       'exec: "nvidia-smi": executable file not found in $PATH: unknown')


def nvidia_smi(ctx):
    if not ctx.nvidia_injected():
        return _no_nvidia_smi(ctx)
    if not ctx.nvml_on_host:
        # nvidia-container-cli needs libnvidia-ml on the host to set the container up.
        return start_error("failed to create containerd task: failed to create shim task: OCI runtime create failed: "
                           "runc create failed: unable to start container process: error during container init: "
                           "error running prestart hook #0: exit status 1, stdout: , stderr: Auto-detected mode as "
                           "'legacy'\nnvidia-container-cli: initialization error: load library failed: "
                           "libnvidia-ml.so.1: cannot open shared object file: no such file or directory: unknown")
    shown = gpumod.visible_gpus(ctx.gpus, ctx.env.get("NVIDIA_VISIBLE_DEVICES"))
    if not shown:
        return exited(6, ["No devices were found"])
    return exited(0, nvidia_smi_table(shown, ctx.driver_version or "N/A", ctx.now))


def nvidia_smi_table(gpus, driver, now):
    """The default nvidia-smi view, laid out like the real capture
    shared/fixtures/gpu/h100-80gb-hbm3-ubuntu2404/nvidia-smi.txt (driver 580 layout)."""
    cuda = gpumod.cuda_version_for_driver(driver)
    lines = [now.strftime("%a %b %d %H:%M:%S %Y") + "       ",
             "+" + "-" * 89 + "+",
             "| NVIDIA-SMI %-22s Driver Version: %-14s CUDA Version: %-9s|" % (driver, driver, cuda),
             "+-----------------------------------------+------------------------+----------------------+",
             "| GPU  Name                 Persistence-M | Bus-Id          Disp.A | Volatile Uncorr. ECC |",
             "| Fan  Temp   Perf          Pwr:Usage/Cap |           Memory-Usage | GPU-Util  Compute M. |",
             "|                                         |                        |               MIG M. |",
             "|=========================================+========================+======================|"]
    for i, g in enumerate(gpus):
        bus = "0000" + g["bus_id"] if len(g["bus_id"]) == 12 else g["bus_id"]
        bus = bus.upper().replace("0000:", "00000000:", 1) if bus.startswith("0000:") else bus.upper()
        name = g["name"][:29]
        mig = "Enabled" if g.get("mig_enabled") else "Disabled"
        lines.append("| %3d  %-29s  On  | %18s Off | %20s |" % (i, name, bus, "On" if g.get("mig_enabled") else "0"))
        power = "%dW / %4dW" % (70, g["max_power_w"] or 0)
        mem = "%dMiB / %6dMiB" % (0, g["memory_mib"])
        lines.append("| N/A   34C    P0 %23s | %22s | %20s |" % (power, mem, "0%      Default"))
        lines.append("| %39s | %22s | %20s |" % ("", "", mig))
        lines.append("+-----------------------------------------+------------------------+----------------------+")
    lines += ["",
              "+" + "-" * 89 + "+",
              "| Processes:                                                                              |",
              "|  GPU   GI   CI              PID   Type   Process name                        GPU Memory |",
              "|        ID   ID                                                               Usage      |",
              "|" + "=" * 89 + "|",
              "|  No running processes found                                                             |",
              "+" + "-" * 89 + "+"]
    return lines


VECTORADD_OK = ["[Vector addition of 50000 elements]",
                "Copy input data from the host memory to the CUDA device",
                "CUDA kernel launch with 196 blocks of 256 threads",
                "Copy output data from the CUDA device to the host memory",
                "Test PASSED",
                "Done"]


def vectoradd(ctx):
    """NVIDIA cuda-samples vectorAdd (the k8s device plugin README's test pod)."""
    shown = gpumod.visible_gpus(ctx.gpus, ctx.env.get("NVIDIA_VISIBLE_DEVICES")) \
        if ctx.nvidia_injected() and ctx.nvml_on_host else []
    if not shown:
        return exited(1, ["[Vector addition of 50000 elements]",
                          "Failed to allocate device vector A (error code CUDA driver version is insufficient "
                          "for CUDA runtime version)!"])
    return exited(0, VECTORADD_OK)
