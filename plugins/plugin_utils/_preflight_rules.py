# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: rules a later stage enforces, decided once, here, for stage 1 and that stage.

Each function is the one place its rule lives; preflight (stage 1) and the stage that
depends on it call the same function, so a setting the stage would refuse after stages 2-4
changed the hosts is refused before any host changes. Each returns problem records
``{"variable", "problem", "fix"}`` (plugins/plugin_utils/_network.py ``problem``), or
none:

- kubernetes_version_problem: an exact release X.Y.Z, 1.31 or newer (the kubernetes role);
- endpoint_problem / ha_endpoint_problem: kubeadm's ``controlPlaneEndpoint`` is host[:port],
  required with more than one control plane (the kubernetes role);
- container_runtime_problem: a Kubernetes node runs containerd (the kubernetes role);
- runtime_source_problems: the chosen containerd or Docker Engine source has packages for the
  host's OS (the container_runtime role: RHEL ships neither);
- proxy_problems: proxy URLs with a scheme (os_prereqs writes them into apt's and dnf's
  configuration as they are);
- toolkit_enabled_problem: ``gpu_operator_toolkit_enabled`` is auto or a boolean (gpu_operator);
- cgroup_problem: kubelet 1.35 and newer refuses cgroup v1 hosts (the kubernetes stage);
- host_fact_problems: the OS, architecture, Python and control-plane resources this run's
  facts show, against preflight's own settings;
- gpu_mode_problems: kubegpu's device plugin or NVIDIA's GPU Operator, consistently set
  (the gpu_operator and nvidia_device_plugin stages); gpu_mode_warnings: the GFD label set
  written twice in operator mode (a warning);
- nfs_mount_problems / nfs_provisioner_problems: the NFS entries the nfs_client stage mounts
  and its provisioner's settings;
- python_probe_command / python_problem: the Python Ansible will run kubegpu's modules with,
  asked with ``raw`` before any module runs (playbooks/preflight.yml, second play).

``kubernetes_problems`` is what the kubernetes role checks before it installs anything.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from urllib.parse import urlsplit

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_specs import collection_defaults, show

problem = _network.problem

# --- Kubernetes version ---------------------------------------------------------------------

# The kubernetes role installs kubeadm=<version>-<revision> from the per-minor repository
# pkgs.k8s.io/core:/stable:/v<major.minor> and gives kubeadm kubernetesVersion v<version> in
# a kubeadm.k8s.io/v1beta4 configuration (templates/kubeadm-init.yaml.j2), which kubeadm
# reads from 1.31 on (kubeadm's v1beta4 API, introduced in Kubernetes 1.31).
KUBERNETES_MIN = (1, 31)
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
VERSION_ACCEPTED = "an exact release X.Y.Z such as 1.35.4, without a leading v, 1.31 or newer"


def parse_kubernetes_version(value):
    """(major, minor, patch) of an exact release, or None."""
    match = _RELEASE.match(value.strip()) if isinstance(value, str) else None
    return tuple(int(part) for part in match.groups()) if match else None


def kubernetes_version_problem(value, variable="kubernetes_version"):
    """The problem record of a Kubernetes version the kubernetes role cannot install, or None."""
    if isinstance(value, bool) or isinstance(value, (int, float)):
        return problem(variable, "%s is a number, not a version (YAML reads 1.30 as the number 1.3) (accepted: %s)"
                       % (show(value), VERSION_ACCEPTED),
                       "quote it: %s: \"1.35.4\"" % variable)
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text[:1] in ("v", "V") and parse_kubernetes_version(text[1:]):
        return problem(variable, "%s has a leading v (accepted: %s)" % (show(value), VERSION_ACCEPTED),
                       "%s: \"%s\" (the role adds the v where kubeadm wants it)" % (variable, text[1:]))
    release = parse_kubernetes_version(text)
    if release is None:
        return problem(variable, "%s is not a Kubernetes release (accepted: %s)" % (show(value), VERSION_ACCEPTED),
                       "set %s to the exact release to install, e.g. \"1.35.4\"" % variable)
    if release[:2] < KUBERNETES_MIN:
        return problem(variable, "%s is older than %d.%d: kubegpu gives kubeadm a kubeadm.k8s.io/v1beta4"
                       " configuration, which kubeadm reads from %d.%d on (accepted: %s)"
                       % (show(value), KUBERNETES_MIN[0], KUBERNETES_MIN[1], KUBERNETES_MIN[0], KUBERNETES_MIN[1],
                          VERSION_ACCEPTED),
                       "set %s to a %d.%d or newer release" % (variable, KUBERNETES_MIN[0], KUBERNETES_MIN[1]))
    return None


# --- the control-plane endpoint ---------------------------------------------------------------

ENDPOINT = "kubernetes_control_plane_endpoint"
ENDPOINT_ACCEPTED = "host[:port]: a DNS name or IPv4 address, [IPv6 address], optional port 1-65535"


def _host_problem(host):
    try:
        ipaddress.ip_address(host)
        return ""
    except ValueError:
        pass
    return _network.dns1123_subdomain_problem(host)


def endpoint_problem(endpoint):
    """The problem record of a ``kubernetes_control_plane_endpoint`` kubeadm refuses, or None.

    kubeadm's controlPlaneEndpoint is host[:port] (ValidateHostPort with
    kubeadmutil.ParseHostPort, cmd/kubeadm/app/apis/kubeadm/validation/validation.go); the
    kubernetes role appends ``:<kubernetes_apiserver_port>`` when no port is given and strips
    the port for the certificate's names."""
    if endpoint is None or endpoint == "":
        return None
    if not isinstance(endpoint, str):
        return None     # the argument spec check names the type
    text = endpoint.strip()
    if "://" in text:
        rest = urlsplit(text)
        fixed = rest.netloc or text.split("://", 1)[1].split("/", 1)[0]
        return problem(ENDPOINT, "%s is a URL (accepted: %s; kubeadm's controlPlaneEndpoint has no scheme)"
                       % (show(endpoint), ENDPOINT_ACCEPTED),
                       "%s: %s" % (ENDPOINT, fixed or "lb.example.com:6443"))
    host, port = text, None
    if text.startswith("["):
        match = re.match(r"^\[([^\]]+)\](?::(.*))?$", text)
        if not match:
            host = None
        else:
            host, port = match.group(1), match.group(2)
            try:
                if ipaddress.ip_address(host).version != 6:
                    host = None
            except ValueError:
                host = None
    elif text.count(":") > 1:
        return problem(ENDPOINT, "%s looks like a bare IPv6 address (accepted: %s)" % (show(endpoint), ENDPOINT_ACCEPTED),
                       "write it in brackets with the port: %s: \"[%s]:6443\"" % (ENDPOINT, text))
    elif ":" in text:
        host, port = text.split(":", 1)
    why = "not a host name or address" if host is None or host == "" else _host_problem(host)
    if not why and port is not None and not (port.isdigit() and 1 <= int(port) <= 65535):
        why = "port %r is not a number from 1 to 65535" % port
    if "/" in text:
        why = "a path is not part of it"
    if why:
        return problem(ENDPOINT, "%s is not host[:port]: %s (accepted: %s)" % (show(endpoint), why, ENDPOINT_ACCEPTED),
                       "%s: lb.example.com:6443 (the load balancer or VIP every node reaches)" % ENDPOINT)
    return None


def ha_endpoint_problem(endpoint, control_planes, vip=None):
    """The problem record when more than one control plane has no ``kubernetes_control_plane_endpoint``
    and no ``kubegpu_control_plane_vip`` (kube-vip's address becomes the endpoint).

    kubeadm joins other control planes only to a cluster initialised with a
    controlPlaneEndpoint, the stable address (load balancer or VIP) every node uses."""
    count = len(control_planes) if isinstance(control_planes, (list, tuple)) else int(control_planes or 0)
    if count > 1 and (endpoint is None or str(endpoint).strip() == "") and (vip is None or str(vip).strip() == ""):
        return problem(ENDPOINT, "empty, but there are %d control planes: an HA control plane needs a stable"
                       " endpoint (a load balancer or VIP) that every node reaches, given to kubeadm init"
                       " (accepted: %s)" % (count, ENDPOINT_ACCEPTED),
                       "set %s: lb.example.com:6443 in group_vars/all (or use one control plane)" % ENDPOINT)
    return None


# --- container runtime --------------------------------------------------------------------

KUBERNETES_RUNTIME = "containerd"


def container_runtime_problem(runtime, kubernetes_node=True):
    """The problem record of a container runtime kubelet cannot use on a Kubernetes node, or None.

    kubeadm is given containerd's socket (kubernetes_cri_socket); Docker Engine has no CRI
    without cri-dockerd, which kubegpu does not install."""
    if not kubernetes_node or runtime is None or str(runtime).strip() in ("", KUBERNETES_RUNTIME):
        return None
    return problem("kubegpu_container_runtime",
                   "%s on a Kubernetes node (group k8s_cluster): kubelet needs a CRI runtime and Docker Engine has"
                   " none without cri-dockerd, which kubegpu does not install (accepted: containerd)" % runtime,
                   "kubegpu_container_runtime: containerd for hosts in k8s_cluster (docker is for standalone GPU"
                   " hosts outside the cluster)")


RUNTIME_SOURCE_SETTINGS = ("kubegpu_container_runtime", "container_runtime_containerd_source",
                           "container_runtime_docker_source")
# containerd's source that installs no package (the release tarball, tasks/containerd_release.yml).
RELEASE_SOURCE = "release"


def runtime_source_problems(settings, packages, os_name):
    """Problem records of a container runtime source with no package for the host's OS, or [].

    ``settings``: the RUNTIME_SOURCE_SETTINGS as the stage sees them; ``packages``:
    {"containerd": {source: [package]}, "docker": {source: [package]}}, the container_runtime
    role's vars file for the host's OS (_container_runtime_containerd_packages and
    _container_runtime_docker_packages); ``os_name``: e.g. "RedHat 9", for the message.
    containerd's ``release`` source installs the release tarball, no package."""
    runtime = str(settings.get("kubegpu_container_runtime") or KUBERNETES_RUNTIME)
    if runtime == KUBERNETES_RUNTIME:
        variable, kind, name = "container_runtime_containerd_source", "containerd", "containerd"
        fix = ("container_runtime_containerd_source: docker (Docker's containerd.io) or release (containerd's"
               " release tarball) for this host")
    else:
        variable, kind, name = "container_runtime_docker_source", "docker", "Docker Engine"
        fix = "container_runtime_docker_source: docker (Docker's docker-ce) for this host"
    source = str(settings.get(variable) or "distro")
    if kind == "containerd" and source == RELEASE_SOURCE:
        return []
    if ((packages or {}).get(kind) or {}).get(source):
        return []
    offered = sorted(s for s, names in ((packages or {}).get(kind) or {}).items() if names)
    if kind == "containerd":
        offered.append(RELEASE_SOURCE)
    return [problem(variable, "%s: %s has no %s package from that source (sources with one here: %s)"
                    % (show(source), os_name, name, ", ".join(offered) or "none"), fix)]


# --- proxies --------------------------------------------------------------------------------

PROXY_VARIABLES = ("kubegpu_http_proxy", "kubegpu_https_proxy")
PROXY_SCHEMES = ("http", "https")


def proxy_problem(variable, value):
    """The problem record of a proxy URL apt, dnf and containerd cannot use, or None.

    os_prereqs writes the URL as it is into apt's Acquire::http(s)::Proxy and dnf's proxy=;
    without a scheme apt takes the host name for one and every download fails."""
    if value is None or not isinstance(value, str) or value.strip() == "":
        return None
    text = value.strip()
    accepted = "http://host:port or https://host:port, user:password@ before the host if needed"
    parts = urlsplit(text) if "://" in text else None
    if parts is None:
        return problem(variable, "%s has no scheme: apt would be given it as written and fail every download"
                       " (accepted: %s)" % (show(value), accepted),
                       "%s: http://%s" % (variable, re.sub(r"^([^:@/]*):[^@/]*@", r"\1:***@", text)))
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme.lower() not in PROXY_SCHEMES:
        why = "scheme %s is not http or https" % parts.scheme
    elif not parts.hostname:
        why = "it has no host"
    elif port == -1:
        why = "its port is not a number from 1 to 65535"
    elif parts.path not in ("", "/") or parts.query or parts.fragment:
        why = "a proxy URL has no path"
    else:
        return None
    return problem(variable, "%s: %s (accepted: %s)" % (show(value), why, accepted),
                   "%s: http://proxy.example.com:3128" % variable)


def proxy_problems(settings):
    """Problem records of kubegpu_http_proxy and kubegpu_https_proxy in ``settings``."""
    return [p for p in (proxy_problem(name, (settings or {}).get(name)) for name in PROXY_VARIABLES) if p]


# --- GPU Operator toolkit -----------------------------------------------------------------

def toolkit_enabled_problem(value, boolean):
    """``gpu_operator_toolkit_enabled`` (spec type raw) is auto or a boolean as ``boolean`` reads it."""
    if value is None or str(value).strip().lower() == "auto":
        return None
    try:
        boolean(value)
        return None
    except TypeError:
        return problem("gpu_operator_toolkit_enabled", "%s is neither auto nor a boolean (accepted: auto, true,"
                       " false)" % show(value), "gpu_operator_toolkit_enabled: auto")


# --- the host's facts: OS, architecture, Python, resources -----------------------------------

HOST_FACT_SETTINGS = (
    "preflight_supported_os", "preflight_supported_architectures", "preflight_allow_unsupported_os",
    "preflight_min_python_version", "preflight_min_memory_mb_control_plane", "preflight_min_cpus_control_plane",
    "preflight_resources_fatal",
)


def _int(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default      # the argument spec check names it


def host_fact_problems(facts, settings, control_plane, boolean):
    """(problems, warnings) of this run's facts against preflight's settings: an unsupported
    OS or architecture (a warning with preflight_allow_unsupported_os), a Python older than
    preflight_min_python_version, a control plane with less memory or fewer CPUs than the
    minimums (a warning without preflight_resources_fatal)."""
    facts = facts or {}
    settings = settings or {}
    problems, warnings = [], []
    supported = settings.get("preflight_supported_os") or {}
    supported = supported if isinstance(supported, dict) else {}
    distribution = str(facts.get("distribution", ""))
    versions = [str(v) for v in (supported.get(distribution) or [])]
    os_found = []
    if "distribution" in facts and str(facts.get("distribution_version", "")) not in versions \
            and str(facts.get("distribution_major_version", "")) not in versions:
        os_found.append(problem(
            "preflight_supported_os",
            "%s %s (%s) is not a supported OS (supported: %s)" % (
                distribution, facts.get("distribution_version", ""), facts.get("architecture", ""),
                ", ".join("%s %s" % (name, "/".join(str(v) for v in (vs or []))) for name, vs in supported.items())),
            "install a supported OS, or set preflight_allow_unsupported_os: true to go on at your own risk"))
    architectures = [str(a) for a in (settings.get("preflight_supported_architectures") or [])]
    if "architecture" in facts and str(facts.get("architecture", "")) not in architectures:
        os_found.append(problem(
            "preflight_supported_architectures",
            "architecture %s is not supported (supported: %s)" % (facts.get("architecture", ""), ", ".join(architectures)),
            "use an x86_64 or aarch64 host, or set preflight_allow_unsupported_os: true to go on at your own risk"))
    (warnings if _flag(settings, "preflight_allow_unsupported_os", boolean, False) else problems).extend(os_found)

    minimum = str(settings.get("preflight_min_python_version") or "3.8")
    found = _version(str(facts.get("python_version") or ""))
    if found and _version(minimum) and found < _version(minimum):
        problems.append(problem(
            "ansible_python_interpreter", "Python %s found, %s or newer is needed" % (facts.get("python_version"), minimum),
            "install python3 >= %s on the host and point ansible_python_interpreter at it" % minimum))

    resources = []
    if control_plane:     # a fact this run did not gather is not judged
        memory, cpus = _int(facts.get("memtotal_mb"), None), _int(facts.get("processor_vcpus"), None)
        min_memory = _int(settings.get("preflight_min_memory_mb_control_plane"))
        min_cpus = _int(settings.get("preflight_min_cpus_control_plane"))
        if memory is not None and memory < min_memory:
            resources.append(problem(
                "preflight_min_memory_mb_control_plane",
                "control plane has %s MB of memory, less than %s MB" % (facts.get("memtotal_mb"), min_memory),
                "give the host more memory, or set preflight_resources_fatal: false to only warn"))
        if cpus is not None and cpus < min_cpus:
            resources.append(problem(
                "preflight_min_cpus_control_plane",
                "control plane has %s CPUs, fewer than %s" % (facts.get("processor_vcpus"), min_cpus),
                "give the host more CPUs, or set preflight_resources_fatal: false to only warn"))
    (problems if _flag(settings, "preflight_resources_fatal", boolean, True) else warnings).extend(resources)
    return problems, warnings


# --- GPU software mode ---------------------------------------------------------------------

# Settings gpu_mode_problems reads (the value set for the host, else the role default).
GPU_MODE_SETTINGS = (
    "kubegpu_gpu_operator", "gpu_operator_device_plugin_enabled", "kubegpu_container_runtime",
    "gpu_operator_values", "gpu_operator_toolkit_enabled", "container_runtime_nvidia_toolkit_install",
    "nvidia_device_plugin_mig_strategy", "nvidia_device_plugin_time_slicing_replicas", "nvidia_driver_mode",
)


def _flag(settings, name, boolean, default):
    value = settings.get(name)
    if value is None:
        return default
    try:
        return boolean(value)
    except TypeError:
        return default      # the argument spec check names it


def _time_slicing(replicas):
    try:
        return int(str(replicas).strip()) > 1
    except (TypeError, ValueError):
        return False        # the argument spec check names it


def gpu_mode_warnings(settings, boolean):
    """Warning records of the GPU software mode: in GPU Operator mode, the gfd label set of
    gpu_node_labels_label_sets (its default) writes the nvidia.com/gpu.* labels that the
    Operator's GPU Feature Discovery writes too."""
    settings = settings or {}
    if not _flag(settings, "kubegpu_gpu_operator", boolean, False):
        return []
    label_sets = settings.get("gpu_node_labels_label_sets")
    label_sets = ["gfd"] if label_sets is None else label_sets
    if not isinstance(label_sets, (list, tuple)) or "gfd" not in label_sets:
        return []
    return [problem("gpu_node_labels_label_sets",
                    "includes gfd while kubegpu_gpu_operator is true; the Operator's GPU Feature Discovery"
                    " writes the same nvidia.com/gpu.* labels",
                    "gpu_node_labels_label_sets without gfd (e.g. [kubegpu]) in operator mode")]


def gpu_mode_problems(settings, boolean):
    """Problem records of the GPU software mode: kubegpu's device plugin stage
    (kubegpu_gpu_operator false) or NVIDIA's GPU Operator (true), and what each mode needs.

    ``settings``: GPU_MODE_SETTINGS (missing ones take their defaults); ``boolean``: how
    the argument specs read a boolean (yes/no, on/off, true/false, 1/0)."""
    settings = settings or {}
    records = []
    operator = _flag(settings, "kubegpu_gpu_operator", boolean, False)
    values = settings.get("gpu_operator_values")
    values = values if isinstance(values, dict) else {}

    def section(name):
        found = values.get(name)
        return found if isinstance(found, dict) else {}

    if not operator:
        # nvidia_device_plugin stage: time-slicing shares nvidia.com/gpu, which MIG strategy
        # mixed does not advertise (it advertises nvidia.com/mig-<profile> only).
        strategy = str(settings.get("nvidia_device_plugin_mig_strategy") or "none")
        if strategy == "mixed" and _time_slicing(settings.get("nvidia_device_plugin_time_slicing_replicas")):
            records.append(problem(
                "nvidia_device_plugin_time_slicing_replicas",
                "%s turns time-slicing on, which shares nvidia.com/gpu, which MIG strategy mixed does not advertise"
                % show(settings.get("nvidia_device_plugin_time_slicing_replicas")),
                "nvidia_device_plugin_mig_strategy: single (or none) with time-slicing, or"
                " nvidia_device_plugin_time_slicing_replicas: 0"))
        return records
    if not _flag(settings, "gpu_operator_device_plugin_enabled", boolean, True):
        records.append(problem(
            "gpu_operator_device_plugin_enabled",
            "false while kubegpu_gpu_operator is true: no device plugin would"
            " run (the nvidia_device_plugin stage does nothing in operator mode) and nvidia.com/gpu is never advertised",
            "gpu_operator_device_plugin_enabled: true, or kubegpu_gpu_operator: false"))
    if str(settings.get("kubegpu_container_runtime") or "containerd") == "docker":
        records.append(problem(
            "kubegpu_container_runtime", "docker, while kubegpu_gpu_operator is true: the GPU Operator supports containerd"
            " and CRI-O only", "kubegpu_container_runtime: containerd, or kubegpu_gpu_operator: false"))
    # With nvidia_driver_mode container the Operator's driver is kubegpu's own setting
    # (_driver_container.mode_problems refuses driver.* values then).
    if _flag(section("driver"), "enabled", boolean, False) \
            and str(settings.get("nvidia_driver_mode") or "host").strip().lower() != "container":
        records.append(problem(
            "gpu_operator_values", "driver.enabled is true: kubegpu keeps the host driver"
            " (nvidia_driver stage) in operator mode", "remove driver.enabled from gpu_operator_values"
            " (nvidia_driver_mode: container is how the Operator installs the driver)"))
    toolkit = settings.get("gpu_operator_toolkit_enabled")
    toolkit = "auto" if toolkit is None or str(toolkit).strip().lower() == "auto" else _flag(
        settings, "gpu_operator_toolkit_enabled", boolean, "auto")
    runtime_toolkit = _flag(settings, "container_runtime_nvidia_toolkit_install", boolean, True)
    if toolkit is True and runtime_toolkit:
        records.append(problem(
            "gpu_operator_toolkit_enabled", "true while"
            " container_runtime_nvidia_toolkit_install is true: two NVIDIA Container Toolkits would configure"
            " containerd", "gpu_operator_toolkit_enabled: auto (or false), or container_runtime_nvidia_toolkit_install:"
            " false"))
    if toolkit is False and not runtime_toolkit:
        records.append(problem(
            "gpu_operator_toolkit_enabled", "false while"
            " container_runtime_nvidia_toolkit_install is false: no NVIDIA Container Toolkit would configure"
            " containerd", "gpu_operator_toolkit_enabled: auto"))
    if "enabled" in section("toolkit"):
        records.append(problem(
            "gpu_operator_values", "toolkit.enabled is set: the toolkit is chosen by"
            " gpu_operator_toolkit_enabled", "remove toolkit.enabled from gpu_operator_values"))
    if "enabled" in section("cdi"):
        records.append(problem(
            "gpu_operator_values", "cdi.enabled is set: CDI is one setting for both modes,"
            " container_runtime_cdi (or container_runtime_nvidia_cdi), which the Operator values follow",
            "remove cdi.enabled from gpu_operator_values and set container_runtime_cdi"))
    return records


# --- NFS ----------------------------------------------------------------------------------------

NFS_STATES = ("mounted", "present", "unmounted", "absent", "remounted")
NFS_FSTYPES = ("nfs", "nfs4")
_NFS_SOURCE = re.compile(r"^[^:/\s]+:/")


def nfs_mount_problems(mounts):
    """Problem records of ``nfs_client_mounts``: a list of {src: server:/export, path:
    absolute, state: one of NFS_STATES, fstype: nfs or nfs4}, one record per bad entry."""
    variable = "nfs_client_mounts"
    if mounts is None:
        return []
    if not isinstance(mounts, (list, tuple)):
        return [problem(variable, "must be a list of mounts, got %s" % show(mounts),
                        "set nfs_client_mounts to a list of {src: server:/export, path: /mount/point}")]
    records = []
    for index, entry in enumerate(mounts):
        if not isinstance(entry, dict):
            records.append(problem(variable, "entry %d is %s, not a mapping" % (index, show(entry)),
                                   "write each entry as {src: server:/export, path: /mount/point}"))
            continue
        wrong = []
        src, path = entry.get("src"), entry.get("path")
        if not isinstance(src, str) or not _NFS_SOURCE.match(src):
            wrong.append("src %s is not server:/export" % show(src))
        if not isinstance(path, str) or not path.startswith("/"):
            wrong.append("path %s is not an absolute path" % show(path))
        if "state" in entry and entry["state"] not in NFS_STATES:
            wrong.append("state %s is not one of %s" % (show(entry["state"]), ", ".join(NFS_STATES)))
        if "fstype" in entry and entry["fstype"] not in NFS_FSTYPES:
            wrong.append("fstype %s is not nfs or nfs4" % show(entry["fstype"]))
        if wrong:
            records.append(problem(variable, "entry %d (%s): %s" % (index, show(path if path else src), "; ".join(wrong)),
                                   "give every entry src: server:/export and an absolute path; state %s;"
                                   " fstype nfs or nfs4" % "/".join(NFS_STATES)))
    return records


NFS_PROVISIONER_SETTINGS = ("nfs_client_storage_class_enabled", "nfs_client_provisioner_server",
                            "nfs_client_provisioner_path", "nfs_client_storage_class_reclaim_policy")


def nfs_provisioner_problems(settings, boolean):
    """Problem records of the NFS provisioner's settings when the storage class is on."""
    settings = settings or {}
    if not _flag(settings, "nfs_client_storage_class_enabled", boolean, False):
        return []
    records = []
    server = settings.get("nfs_client_provisioner_server")
    if not isinstance(server, str) or not server.strip():
        records.append(problem("nfs_client_provisioner_server", "is empty while nfs_client_storage_class_enabled is"
                               " true", "set it to the NFS server's name or address"))
    export = settings.get("nfs_client_provisioner_path")
    if not isinstance(export, str) or not export.startswith("/"):
        records.append(problem("nfs_client_provisioner_path", "%s is not an absolute export path" % show(export),
                               "set it to the export on nfs_client_provisioner_server, e.g. /srv/nfs/kubernetes"))
    policy = settings.get("nfs_client_storage_class_reclaim_policy")
    if policy is not None and policy not in ("Delete", "Retain"):
        records.append(problem("nfs_client_storage_class_reclaim_policy", "%s is not Delete or Retain" % show(policy),
                               "nfs_client_storage_class_reclaim_policy: Delete (or Retain)"))
    return records


# --- cgroup v1 ----------------------------------------------------------------------------

# kubelet refuses to start on a cgroup v1 host from Kubernetes 1.35 unless its configuration
# says failCgroupV1: false (KEP-5573, kubernetes/enhancements#5573: "Remove cgroup v1
# support"), which kubegpu's KubeletConfiguration does not set. RHEL 8 boots cgroup v1.
CGROUP_V1_REFUSED_FROM = (1, 35)


def cgroup_problem(kubernetes_version, cgroup_version):
    """The problem record of a cgroup v1 host for a kubelet that refuses it, or None.

    ``cgroup_version``: 2 when /sys/fs/cgroup is the unified hierarchy (cgroup.controllers
    at its root, what kubelet's IsCgroup2UnifiedMode tests), 1 otherwise, None unknown."""
    release = parse_kubernetes_version(kubernetes_version)
    if cgroup_version != 1 or release is None or release[:2] < CGROUP_V1_REFUSED_FROM:
        return None
    return problem("kubernetes_version",
                   "this host runs cgroup v1, and kubelet %s refuses to start on cgroup v1 (from %d.%d on, unless"
                   " failCgroupV1: false, which kubegpu does not set) (accepted: a cgroup v2 host, or Kubernetes"
                   " 1.34 or older)" % (kubernetes_version, CGROUP_V1_REFUSED_FROM[0], CGROUP_V1_REFUSED_FROM[1]),
                   "boot the host with cgroup v2 (kernel argument systemd.unified_cgroup_hierarchy=1, e.g. grubby"
                   " --update-kernel=ALL --args=systemd.unified_cgroup_hierarchy=1 on RHEL 8, then reboot), or set"
                   " kubernetes_version to a 1.34 release")


# --- the hosts' Python ------------------------------------------------------------------------

# ansible-core 2.19 runs modules on target Python 3.8 or newer, and kubegpu's module_utils are
# written for 3.8: preflight_min_python_version (roles/preflight/defaults/main.yml) can raise
# this floor, not lower it. A module on Python 3.6 (RHEL 8's python3) or 2.7 ends in a
# SyntaxError deep in its code, so the version is asked with ``raw`` first.
PYTHON_FLOOR = (3, 8)
PYTHON_PROBE_MARK = "kubegpu-python:"
PYTHON_SETTING = "preflight_min_python_version"
# ansible_python_interpreter / interpreter_python values that mean "discover it".
_DISCOVERY = ("", "auto", "auto_silent", "auto_legacy", "auto_legacy_silent")
# What ansible-core 2.19 tries, in order, when it discovers the interpreter
# (config/base.yml INTERPRETER_PYTHON_FALLBACK; executor/interpreter_discovery.py takes the
# first that `command -v` finds, else /usr/bin/python3). The play passes the configured list.
PYTHON_FALLBACK = ("python3.13", "python3.12", "python3.11", "python3.10", "python3.9", "python3.8",
                   "/usr/bin/python3", "python3")
_VERSION_CODE = 'import sys; print("%d.%d" % sys.version_info[:2])'     # Python 2.7 reads it too


def _python_in_use(interpreter, discovered):
    """(interpreter or None, how): the one Ansible will run modules with. A set
    ansible_python_interpreter wins; else an interpreter discovered earlier (Ansible keeps it
    as the fact discovered_interpreter_python, also in the fact cache, and does not discover
    again); else discovery."""
    text = "" if interpreter is None else str(interpreter).strip()
    if text.lower() not in _DISCOVERY:
        return text, "set"
    if discovered:
        return str(discovered).strip(), "discovered"
    return None, "discovery"


def python_probe_command(interpreter=None, fallback=None, discovered=None):
    """The /bin/sh command (for ``ansible.builtin.raw``, no Python needed) that prints one line,
    ``kubegpu-python: <X.Y|none|unknown> <interpreter>``, for the interpreter Ansible will use."""
    path, how = _python_in_use(interpreter, discovered)
    if path:
        # "/usr/bin/env python3" is a valid ansible_python_interpreter: keep its words.
        select = "set -- %s" % " ".join(shlex.quote(word) for word in path.split())
    else:
        candidates = " ".join(shlex.quote(str(c)) for c in (fallback or PYTHON_FALLBACK))
        select = ('set --; for c in %s; do p=$(command -v "$c" 2>/dev/null) && case "$p" in /*)'
                  ' set -- "$p"; break;; esac; done' % candidates)
    return ('%s; if [ $# -gt 0 ] && command -v "$1" >/dev/null 2>&1;'
            ' then v=$("$@" -c %s 2>/dev/null) || v=unknown; echo "%s ${v:-unknown} $*";'
            ' else echo "%s none $*"; fi'
            % (select, shlex.quote(_VERSION_CODE), PYTHON_PROBE_MARK, PYTHON_PROBE_MARK))


def _version(text):
    match = re.match(r"^\s*(\d+)\.(\d+)", str(text or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def python_minimum(minimum=None, root=None):
    """(major, minor) a host needs: preflight_min_python_version as set for the host, else its
    default in roles/preflight/defaults/main.yml, never below PYTHON_FLOOR."""
    wanted = _version(minimum) if minimum is not None else None
    if wanted is None:
        wanted = _version(collection_defaults(root).get(PYTHON_SETTING))
    return max(wanted or PYTHON_FLOOR, PYTHON_FLOOR)


def python_problem(stdout, interpreter=None, minimum=None, discovered=None, root=None):
    """The problem record of a host whose Python cannot run kubegpu's modules, or None.

    ``stdout``: what python_probe_command printed; no probe line (a shell that did not run it)
    is no verdict: the third play reports what then fails."""
    line = next((text.strip() for text in str(stdout or "").splitlines()
                 if text.strip().startswith(PYTHON_PROBE_MARK)), None)
    if line is None:
        return None
    found = line[len(PYTHON_PROBE_MARK):].strip().split(None, 1)
    answer, path = (found + ["", ""])[:2]
    wanted = python_minimum(minimum, root)
    need = "%d.%d" % wanted
    _path, how = _python_in_use(interpreter, discovered)
    if how == "set":
        where = "ansible_python_interpreter %s" % path
    elif how == "discovered":
        where = "%s, which Ansible discovered earlier (fact discovered_interpreter_python); ansible_python_interpreter" \
                " is not set" % path
    else:
        where = "%s, found by Ansible's interpreter discovery; ansible_python_interpreter is not set" % path
    fix = ("install Python %s or newer (e.g. dnf install python39 on RHEL 8) and set ansible_python_interpreter to it"
           " (e.g. /usr/bin/python3.9)" % need)
    if answer == "none":
        if how == "set":
            what = "ansible_python_interpreter %s is not a command on this host" % path
        else:
            what = "no Python found by Ansible's interpreter discovery (ansible_python_interpreter is not set)"
        return problem("ansible_python_interpreter", "%s; kubegpu's modules need Python %s or newer" % (what, need),
                       fix)
    version = _version(answer)
    if version is None:
        return problem("ansible_python_interpreter",
                       "%s did not tell its version (python -c failed); kubegpu's modules need Python %s or newer"
                       % (where, need), fix)
    if version >= wanted:
        return None
    return problem("ansible_python_interpreter", "Python %d.%d found (%s), kubegpu's modules need %s or newer"
                   % (version[0], version[1], where, need), fix)


# --- what the kubernetes role checks ------------------------------------------------------------

def kubernetes_problems(settings, control_planes):
    """Problem records of the settings kubeadm is given: the version, the control-plane
    endpoint (and its need with several control planes) and the pod and service CIDRs
    (validity, overlap, kubeadm's size limits). ``settings``: kubernetes_version,
    kubernetes_control_plane_endpoint, kubegpu_pod_cidr, kubegpu_service_cidr."""
    settings = settings or {}
    cidrs = {_network.POD_CIDR: settings.get(_network.POD_CIDR), _network.SERVICE_CIDR: settings.get(_network.SERVICE_CIDR)}
    records = [kubernetes_version_problem(settings.get("kubernetes_version")),
               endpoint_problem(settings.get(ENDPOINT)),
               ha_endpoint_problem(settings.get(ENDPOINT), control_planes, settings.get(_network.VIP))]
    return ([r for r in records if r] + _network.cidr_problems(cidrs) + _network.kubeadm_cidr_problems(cidrs))
