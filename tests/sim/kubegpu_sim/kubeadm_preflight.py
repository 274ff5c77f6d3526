# SPDX-License-Identifier: Apache-2.0
"""Pre-flight checks of the simulated kubeadm (test-only), after kubernetes
cmd/kubeadm/app/preflight/checks.go (RunInitNodeChecks, RunJoinNodeChecks). Each check
returns (warnings, errors) as lists of strings; names are the ones kubeadm prints in
"[ERROR <name>]" and accepts in --ignore-preflight-errors."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess


class Check:
    def __init__(self, name, func):
        self.name = name
        self.func = func


def _read(path):
    try:
        with open(path) as stream:
            return stream.read()
    except OSError:
        return None


def is_privileged(root):
    # checks.go IsPrivilegedUserCheck (checks_unix.go): euid 0
    if os.geteuid() != 0:
        return [], ["user is not running as root"]
    return [], []


def num_cpu(root):
    # checks.go NumCPUCheck: constants.ControlPlaneNumCPU = 2
    count = os.cpu_count() or 1
    if count < 2:
        return [], ["the number of available CPUs %d is less than the required 2" % count]
    return [], []


def memory(root):
    # checks.go MemCheck: constants.ControlPlaneMem = 1700 MB (from /proc/meminfo via syscall.Sysinfo)
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            mb = int(line.split()[1]) // 1024
            if mb < 1700:
                return [], ["the system RAM (%d MB) is less than the minimum 1700 MB" % mb]
    return [], []


def port_open(port):
    def check(root):
        # checks.go PortOpenCheck: listen on the port; failure -> "Port %d is in use"
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return [], ["Port %d is in use" % port]
        finally:
            sock.close()
        return [], []
    return Check("Port-%d" % port, check)


def file_available(path):
    def check(root):
        # checks.go FileAvailableCheck: "%s already exists"
        if os.path.exists(root + path):
            return [], ["%s already exists" % path]
        return [], []
    return Check("FileAvailable-" + path.replace("/", "-"), check)


def dir_available(path):
    def check(root):
        # checks.go DirAvailableCheck: a directory that exists must be empty ("%s is not empty")
        full = root + path
        if os.path.isdir(full) and os.listdir(full):
            return [], ["%s is not empty" % path]
        return [], []
    return Check("DirAvailable-" + path.replace("/", "-"), check)


def file_content(path, content="1"):
    def check(root):
        # checks.go FileContentCheck: "%s contents are not set to %s"; a missing file is
        # "%s does not exist" — except bridge-nf-call-iptables, checked only when present
        # (checks_linux.go addOSSpecificChecks: br_netfilter loaded)
        data = _read(root + path)
        if data is None:
            if "bridge" in path:
                return [], []
            return [], ["%s does not exist" % path]
        if data.strip() != content:
            return [], ["%s contents are not set to %s" % (path, content)]
        return [], []
    return Check("FileContent-" + path.replace("/", "-"), check)


def swap(root):
    # checks.go SwapCheck: swap on -> warning (NodeSwap is GA: a warning, not an error)
    lines = (_read("/proc/swaps") or "").strip().splitlines()
    if len(lines) > 1:
        return ["swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. "
                "Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, "
                "or disable swap on the node"], []
    return [], []


def cri_socket(socket_url, runner=subprocess.run):
    def check(root):
        # checks.go ContainerRuntimeCheck: the CRI answers at the socket; kubeadm's
        # utilruntime.IsRunning calls RuntimeService.Status. Here: the socket exists and
        # containerd's CRI plugin is not disabled (`containerd config dump`, disabled_plugins).
        path = socket_url[len("unix://"):] if socket_url.startswith("unix://") else socket_url
        prefix = "container runtime is not running: output: , error: "
        if not os.path.exists(root + path):
            return [], [prefix + "validate service connection: validate CRI v1 runtime API for endpoint "
                        "\"%s\": rpc error: code = Unavailable desc = connection error: desc = \"transport: "
                        "Error while dialing: dial unix %s: connect: no such file or directory\"" % (socket_url, path)]
        if shutil.which("containerd") is None:
            return [], []
        try:
            out = runner(["containerd", "config", "dump"], capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return [], [prefix + str(err)]
        for line in out.stdout.splitlines():
            stripped = line.strip()
            if stripped.startswith("disabled_plugins"):
                value = stripped.split("=", 1)[1]
                if '"cri"' in value or "io.containerd.grpc.v1.cri" in value:
                    return [], [prefix + "validate service connection: validate CRI v1 runtime API for endpoint "
                                "\"%s\": rpc error: code = Unimplemented desc = unknown service "
                                "runtime.v1.RuntimeService" % socket_url]
        return [], []
    return Check("CRI", check)


def kubelet_binary(root):
    # checks.go KubeletVersionCheck: `kubelet --version` must run
    if shutil.which("kubelet") is None:
        return [], ["couldn't get kubelet version: cannot execute 'kubelet --version': executable file not "
                    "found in $PATH"]
    return [], []


def kubelet_service(root, runner=subprocess.run):
    # checks.go ServiceCheck{Service: "kubelet", CheckIfActive: false}: a warning when not enabled
    if shutil.which("systemctl") is None:
        return [], []
    out = runner(["systemctl", "is-enabled", "kubelet.service"], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return ["kubelet service is not enabled, please run 'systemctl enable kubelet.service'"], []
    return [], []


def hostname(node_name):
    def check(root):
        # checks.go HostnameCheck: a warning when the node name does not resolve
        try:
            socket.getaddrinfo(node_name, None)
        except OSError:
            return ['hostname "%s" could not be reached' % node_name], []
        return [], []
    return Check("Hostname", check)


def init_checks(cri, node_name, bind_port=6443):
    """checks.go RunInitNodeChecks (+ RunJoinNodeChecks' node checks, addOSSpecificChecks)."""
    return [
        Check("IsPrivilegedUser", is_privileged),
        Check("NumCPU", num_cpu),
        Check("Mem", memory),
        port_open(bind_port), port_open(10259), port_open(10257),
        file_available("/etc/kubernetes/manifests/kube-apiserver.yaml"),
        file_available("/etc/kubernetes/manifests/kube-controller-manager.yaml"),
        file_available("/etc/kubernetes/manifests/kube-scheduler.yaml"),
        file_available("/etc/kubernetes/manifests/etcd.yaml"),
        port_open(2379), port_open(2380),
        dir_available("/var/lib/etcd"),
    ] + node_checks(cri, node_name)


def node_checks(cri, node_name):
    """checks.go RunJoinNodeChecks / addCommonChecks."""
    return [
        Check("IsPrivilegedUser", is_privileged),
        dir_available("/etc/kubernetes/manifests"),
        file_available("/etc/kubernetes/kubelet.conf"),
        file_available("/etc/kubernetes/bootstrap-kubelet.conf"),
        cri_socket(cri),
        Check("Swap", swap),
        file_content("/proc/sys/net/bridge/bridge-nf-call-iptables"),
        file_content("/proc/sys/net/ipv4/ip_forward"),
        Check("KubeletVersion", kubelet_binary),
        Check("Service-Kubelet", kubelet_service),
        hostname(node_name),
        port_open(10250),
    ]


def join_checks(cri, node_name, control_plane=False, bind_port=6443):
    checks = node_checks(cri, node_name) + [file_available("/etc/kubernetes/pki/ca.crt")]
    if control_plane:
        # checks.go RunInitNodeChecks with isSecondaryControlPlane=true
        checks = [Check("NumCPU", num_cpu), Check("Mem", memory), port_open(bind_port), port_open(10259),
                  port_open(10257), file_available("/etc/kubernetes/manifests/kube-apiserver.yaml"),
                  file_available("/etc/kubernetes/manifests/kube-controller-manager.yaml"),
                  file_available("/etc/kubernetes/manifests/kube-scheduler.yaml"),
                  file_available("/etc/kubernetes/manifests/etcd.yaml"), port_open(2379), port_open(2380),
                  dir_available("/var/lib/etcd")] + checks
    return checks


def run_checks(checks, ignore=(), root=""):
    """checks.go RunChecks: (warnings, errors) as printed lines; ignored errors become
    warnings ("[WARNING X]"), "all" ignores every check. Duplicate names run once."""
    ignore = {i.lower() for i in ignore}
    warnings, errors, seen = [], [], set()
    for check in checks:
        if check.name in seen:
            continue
        seen.add(check.name)
        warns, errs = check.func(root)
        for warn in warns:
            warnings.append("\t[WARNING %s]: %s" % (check.name, warn))
        for err in errs:
            if "all" in ignore or check.name.lower() in ignore:
                warnings.append("\t[WARNING %s]: %s" % (check.name, err))
            else:
                errors.append("\t[ERROR %s]: %s" % (check.name, err))
    return warnings, errors
