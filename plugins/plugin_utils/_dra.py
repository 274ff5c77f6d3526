# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: DRA mode (``kubegpu_gpu_allocation: dra``), decided once, here.

Pods get GPUs through Dynamic Resource Allocation (``resource.k8s.io/v1``) and NVIDIA's DRA
driver for GPUs (role nvidia_dra_driver) instead of the device plugin's ``nvidia.com/gpu``.
Preflight (stage 1, _preflight_host.host_report), the nvidia_dra_driver stage and validate
call these functions; each returns problem records ``{"variable", "problem", "fix"}``
(plugins/plugin_utils/_network.py ``problem``) or none:

- mode_problems: the Kubernetes release (``resource.k8s.io/v1`` and the DRA driver's
  minimum), GPU Operator mode, CDI off, the device plugin's sharing settings;
- driver_branch_problem: the driver branch stage 3 plans for a GPU node
  (_preflight_driver.plan_for_host) against the DRA driver's minimum;
- node_slice_problems: what validate reads from a node's ResourceSlices.

Upstream facts (NVIDIA/k8s-dra-driver-gpu, release v25.12.0):
- the driver name and DeviceClass: ``gpu.nvidia.com`` (cmd/gpu-kubelet-plugin/main.go
  ``DriverName``; deployments/helm/nvidia-dra-driver-gpu/templates/deviceclass-gpu.yaml,
  selector ``device.driver == 'gpu.nvidia.com' && device.attributes['gpu.nvidia.com'].type
  == 'gpu'``; deviceclass-mig.yaml the same with ``type == 'mig'``);
- a GPU is published as device ``gpu-<minor>`` with attribute ``type: gpu``
  (cmd/gpu-kubelet-plugin/deviceinfo.go ``GpuInfo.CanonicalName``, ``PartDevAttributes``);
- the chart refuses GPU allocation unless the device plugin is off on the same nodes
  (templates/validation.yaml, ``gpuResourcesEnabledOverride``: "this DRA driver cannot be
  deployed alongside the standard GPU device plugin on the same node").
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._gpu_sharing import _flag, _int
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver as _driver
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_rules import parse_kubernetes_version
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_specs import show

problem = _network.problem

VARIABLE = "kubegpu_gpu_allocation"
MODES = ("device-plugin", "dra")
DRIVER_NAME = "gpu.nvidia.com"
GPU_DEVICE_CLASS = "gpu.nvidia.com"
MIG_DEVICE_CLASS = "mig.nvidia.com"
RESOURCE_API = "resource.k8s.io/v1"

# resource.k8s.io/v1 is served from Kubernetes 1.34 on, where DRA with structured parameters
# became stable (KEP-4381, github.com/kubernetes/enhancements/issues/4381; kubernetes.io/docs/
# concepts/scheduling-eviction/dynamic-resource-allocation/); kubegpu's manifests use v1.
# NVIDIA's DRA driver itself installs on 1.32+ (its README and Chart.yaml kubeVersion
# ">=1.32.0-0", picking the highest resource.k8s.io version served), while NVIDIA's
# installation guide asks for Kubernetes 1.34.2 or newer (docs.nvidia.com/datacenter/
# cloud-native/gpu-operator/latest/dra-intro-install.html, "Prerequisites";
# NVIDIA/cloud-native-docs#347). The later of these.
KUBERNETES_MIN = (1, 34, 2)
# The same guide: GPU allocation needs NVIDIA driver 565 or newer (ComputeDomains, which
# kubegpu leaves off, need 570.158.01; NVIDIA/k8s-dra-driver-gpu#1088).
DRIVER_BRANCH_MIN = 565

# Settings mode_problems reads (the value set for the host, else the role default).
# kubegpu_cdi: "CDI on" cluster-wide; the DRA driver hands devices to containers as CDI
# devices only (the kubelet plugin writes CDI specs under CDI_ROOT=/var/run/cdi,
# templates/kubeletplugin.yaml), so containerd must have CDI on.
SHARING_SETTINGS = (
    "nvidia_device_plugin_mig_strategy", "nvidia_device_plugin_time_slicing_replicas",
    "nvidia_device_plugin_mps_replicas",
)
SETTINGS = (VARIABLE, "kubernetes_version", "kubegpu_gpu_operator", "kubegpu_cdi", "container_runtime_nvidia_cdi") + SHARING_SETTINGS


def is_dra(settings):
    """Whether the settings ask for DRA mode."""
    return str((settings or {}).get(VARIABLE) or "device-plugin").strip() == "dra"


def kubernetes_version_problem(version):
    """The problem record of a Kubernetes release too old for DRA mode, or None (also None for a
    value that is not a release: kubernetes_version_problem names that)."""
    release = parse_kubernetes_version(version) if isinstance(version, str) else None
    if release is None or release >= KUBERNETES_MIN:
        return None
    wanted = "%d.%d.%d" % KUBERNETES_MIN
    return problem(VARIABLE, "dra, but kubernetes_version is %s: NVIDIA's DRA driver for GPUs needs Kubernetes %s or"
                   " newer (resource.k8s.io/v1 is served from 1.34)" % (show(version), wanted),
                   "kubernetes_version: \"%s\" or newer, or kubegpu_gpu_allocation: device-plugin" % wanted)


def sharing_problems(settings):
    """Problem records of device plugin sharing settings set in DRA mode (they configure the
    device plugin, which DRA mode does not deploy)."""
    records = []
    strategy = settings.get("nvidia_device_plugin_mig_strategy")
    if strategy is not None and str(strategy).strip() not in ("", "none"):
        records.append(problem(
            "nvidia_device_plugin_mig_strategy", "%s while kubegpu_gpu_allocation is dra: the MIG strategy configures"
            " the device plugin, which DRA mode does not deploy (MIG devices are claimed with DeviceClass %s)"
            % (show(strategy), MIG_DEVICE_CLASS),
            "nvidia_device_plugin_mig_strategy: none, or kubegpu_gpu_allocation: device-plugin"))
    for name in ("nvidia_device_plugin_time_slicing_replicas", "nvidia_device_plugin_mps_replicas"):
        value = settings.get(name)
        if _int(value) > 1:
            records.append(problem(
                name, "%s while kubegpu_gpu_allocation is dra: it shares GPUs through the device plugin, which DRA"
                " mode does not deploy (with DRA, pods share a GPU by sharing one ResourceClaim)" % show(value),
                "%s: 0, or kubegpu_gpu_allocation: device-plugin" % name))
    return records


def mode_problems(settings, boolean):
    """Problem records of DRA mode's settings, [] outside DRA mode.

    ``settings``: SETTINGS (missing ones take their defaults); ``boolean``: how the argument
    specs read a boolean."""
    settings = settings or {}
    if not is_dra(settings):
        return []
    records = [kubernetes_version_problem(settings.get("kubernetes_version"))]
    if _flag(settings, "kubegpu_gpu_operator", boolean, False):
        records.append(problem(
            VARIABLE, "dra while kubegpu_gpu_operator is true: kubegpu's GPU Operator mode runs the Operator's device"
            " plugin, and NVIDIA's DRA driver refuses GPU allocation beside the device plugin on the same nodes",
            "kubegpu_gpu_operator: false with kubegpu_gpu_allocation: dra, or kubegpu_gpu_allocation: device-plugin"))
    if not _gpu_sharing.cdi_enabled(settings, boolean):
        # the one CDI rule (kubegpu_cdi, or the container_runtime_nvidia_cdi override)
        records.append(problem(
            "kubegpu_cdi", "CDI is off on GPU nodes (kubegpu_cdi or container_runtime_nvidia_cdi false) while"
            " kubegpu_gpu_allocation is dra: NVIDIA's DRA driver hands GPUs to containers as CDI devices only",
            "kubegpu_cdi: true (and container_runtime_nvidia_cdi unset), or kubegpu_gpu_allocation: device-plugin"))
    return [r for r in records if r] + sharing_problems(settings)


def driver_branch_problem(plan):
    """The problem record of a planned driver branch older than the DRA driver needs, or None.

    ``plan``: stage 3's plan for the host (_preflight_driver.plan_for_host, _driver_plan.plan)."""
    plan = plan or {}
    if not plan.get("needed"):
        return None
    try:
        branch = int(str(plan.get("branch")).split(".", maxsplit=1)[0])
    except (TypeError, ValueError):
        return None
    if branch >= DRIVER_BRANCH_MIN:
        return None
    return problem(VARIABLE, "dra, but this GPU node gets driver branch R%d: NVIDIA's DRA driver for GPUs needs R%d or"
                   " newer" % (branch, DRIVER_BRANCH_MIN),
                   "nvidia_driver_branch: %d or newer (with nvidia_driver_source: cuda where the OS archive ships"
                   " an older branch only), or kubegpu_gpu_allocation: device-plugin" % DRIVER_BRANCH_MIN)


def driver_root_parent(driver_root):
    """The directory above the driver root that the kubelet plugin's init container mounts: the
    root itself for "/", else its parent (the chart's ``driver-root-parent`` volume,
    deployments/helm/nvidia-dra-driver-gpu/templates/kubeletplugin.yaml)."""
    text = str(driver_root or "/").rstrip("/")
    if not text:
        return "/"
    parent = text.rsplit("/", 1)[0]
    return parent or "/"


# --- what validate reads ---------------------------------------------------------------------

def node_devices(slices, node_name, driver=DRIVER_NAME, device_type="gpu"):
    """Names of the devices the driver publishes for a node in ResourceSlices (a
    ``kubectl get resourceslices -o json`` list or its items): slices with spec.driver and
    spec.nodeName, devices whose attribute ``type`` is ``device_type``
    (k8s.io/api resource/v1 ResourceSliceSpec, Device.Attributes)."""
    items = slices.get("items", []) if isinstance(slices, dict) else (slices or [])
    names = []
    for item in items:
        spec = (item or {}).get("spec") or {}
        if spec.get("driver") != driver or spec.get("nodeName") != node_name:
            continue
        for device in spec.get("devices") or []:
            kind = (((device.get("attributes") or {}).get("type")) or {}).get("string")
            if device_type is None or kind == device_type:
                names.append(device.get("name"))
    return sorted(n for n in names if n)


def node_slice_problems(slices, node_name, gpu_count):
    """Lines saying what a GPU node's ResourceSlices lack: fewer GPUs published by the DRA
    driver than this run's GPU facts count; [] when they match or more."""
    found = node_devices(slices, node_name)
    wanted = _int(gpu_count)
    if len(found) >= wanted and found:
        return []
    return ["%s publishes %d GPU device(s) of driver %s in its ResourceSlices, %d expected"
            % (node_name, len(found), DRIVER_NAME, max(wanted, 1))]


def planned_branch_problem(facts, driver_settings, gpu_node):
    """driver_branch_problem of the branch stage 3 plans for a GPU node, by stage 3's own
    function (_preflight_driver.plan_for_host); None off GPU nodes or where the plan itself
    fails (_preflight_driver.driver_problems reports that)."""
    if not _driver._as_bool(gpu_node):
        return None
    facts = facts or {}
    try:
        _source, _constraints, plan = _driver.plan_for_host(facts.get("kubegpu_gpu") or {}, facts, driver_settings)
    except (_driver._plan.DriverPlanError, _driver._dp.DriverPackagesError):
        return None
    return driver_branch_problem(plan)


def node_slice_summary(slices, node_name, gpu_count):
    """The report's GPU column in DRA mode: ``gpu.nvidia.com <published>/<expected>``."""
    return "%s %d/%d" % (DRIVER_NAME, len(node_devices(slices, node_name)), _int(gpu_count))
