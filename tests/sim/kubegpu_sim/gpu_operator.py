# SPDX-License-Identifier: Apache-2.0
"""NVIDIA's GPU Operator, as the simulated kubelet "runs" the image nvcr.io/nvidia/gpu-operator
(command gpu-operator; test-only). The part of the Operator that the containerized driver
(kubegpu's nvidia_driver_mode: container) relies on, each rule following NVIDIA/gpu-operator
v25.10.1 (the chart version roles/gpu_operator pins) and the k8s-operator-libs it vendors
(vendor/github.com/NVIDIA/k8s-operator-libs, v0.0.0-20250709180754-c80af13d73e3):

ClusterPolicy controller (controllers/clusterpolicy_controller.go, state_manager.go,
object_controls.go), on the first ClusterPolicy:
- GPU node labels (state_manager.go labelGPUNodes): a node with NFD's NVIDIA PCI label gets
  nvidia.com/gpu.present=true, one labelled true without it gets false and loses its
  operand labels; a GPU node gets the "container" workload's nvidia.com/gpu.deploy.<operand>
  labels it lacks (an existing value is honoured), none with nvidia.com/gpu.deploy.operands=false;
  the annotation nvidia.com/gpu-driver-upgrade-enabled follows driver.upgradePolicy.autoUpgrade
  (applyDriverAutoUpgradeAnnotation);
- state-driver (object_controls.go DaemonSet, TransformDriver, resolveDriverTag,
  cleanupUnusedDriverDaemonSets, cleanupStalePrecompiledDaemonsets): the DaemonSet
  nvidia-driver-daemonset of assets/state-driver/0500_daemonset.yaml in the Operator's
  namespace, owned by the ClusterPolicy, updateStrategy OnDelete, nodeSelector
  nvidia.com/gpu.deploy.driver=true, the driver container nvidia-driver-ctr with the image
  "<repository>/<image>:<version>-<os id><os version id>" (the OS from the NFD labels of the
  first GPU node, kernelFullVersion), or with usePrecompiled one DaemonSet per kernel,
  nvidia-driver-daemonset-<kernel>-<os>, image "<repository>/<image>:<branch>-<kernel>-<os>";
  created when missing, replaced when the hash of the wanted object (annotation
  nvidia.com/last-applied-hash, isDaemonsetSpecChanged) differs, deleted when driver.enabled
  is false. No GPU node: nothing is created. A GPU node without NFD's kernel label: an error,
  nothing created.

Upgrade controller (controllers/upgrade_controller.go, k8s-operator-libs pkg/upgrade), while
driver.upgradePolicy.autoUpgrade is true (false: the upgrade-state label is removed from every
node): BuildState (driver pods with app=nvidia-driver-daemonset in the namespace, grouped by
their node's nvidia.com/gpu-driver-upgrade-state; a DaemonSet whose desiredNumberScheduled
differs from its pod count stops the pass) and ApplyState's steps in its order, each on the
nodes that were in its state when the pass began (so a node moves one state per pass):
ProcessDoneOrUnknownNodes, ProcessUpgradeRequiredNodes (maxParallelUpgrades, maxUnavailable:
GetUpgradesAvailable), ProcessCordonRequiredNodes, ProcessWaitForJobsRequiredNodes,
ProcessPodDeletionRequiredNodes (pod deletion enabled with cmd/gpu-operator/main.go
gpuPodSpecFilter), ProcessDrainNodes, ProcessPodRestartNodes, ProcessUpgradeFailedNodes,
ProcessValidationRequiredNodes, ProcessUncordonRequiredNodes. A driver pod is in sync when its
controller-revision-hash is the one of the DaemonSet's newest ControllerRevision
(pod_manager.go GetDaemonsetControllerRevisionHash).

Deliberately not simulated:
- the validation state: cmd/gpu-operator/main.go enables it with the validator pods
  (app=nvidia-operator-validator), whose DaemonSet needs the Operator's container toolkit (its
  runtime class "nvidia"), which nothing here simulates; the simulated Operator runs the
  upgrade controller as k8s-operator-libs does without validation (pod-restart-required ->
  uncordon-required), and deploys no validator;
- every other operand (toolkit, device plugin, GFD, DCGM, MIG manager, validator), the
  ClusterPolicy's status, RBAC objects, OpenShift, vGPU, the NVIDIADriver CRD, the
  driver-manager's own evictions; its volumes and probes (the simulated kubelet neither
  mounts nor probes);
- authorisation: the Operator talks to the API server with the credentials of the kubelet
  that runs it (the audit log shows system:node:<node> where a real cluster shows the
  gpu-operator service account).
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import time

from . import kube_vip
from .apiserver import selectors
from .client import ApiError

APPS = "/apis/apps/v1"
CLUSTER_POLICIES = "/apis/nvidia.com/v1/clusterpolicies"
LOOP_SECONDS = 3

# -- state_manager.go constants ---------------------------------------------------------------
GPU_PRESENT = "nvidia.com/gpu.present"
OPERANDS = "nvidia.com/gpu.deploy.operands"
MIG_MANAGER = "nvidia.com/gpu.deploy.mig-manager"
MIG_CAPABLE = "nvidia.com/mig.capable"
MIG_CONFIG = "nvidia.com/mig.config"
VGPU_HOST_DRIVER = "nvidia.com/vgpu.host-driver-version"
GPU_PRODUCT = "nvidia.com/gpu.product"
AUTO_UPGRADE_ANNOTATION = "nvidia.com/gpu-driver-upgrade-enabled"
NFD_PREFIX = "feature.node.kubernetes.io/"
NFD_KERNEL = "feature.node.kubernetes.io/kernel-version.full"
NFD_OS_ID = "feature.node.kubernetes.io/system-os_release.ID"
NFD_OS_VERSION = "feature.node.kubernetes.io/system-os_release.VERSION_ID"
GPU_NODE_LABELS = {"feature.node.kubernetes.io/pci-10de.present": "true",
                   "feature.node.kubernetes.io/pci-0302_10de.present": "true",
                   "feature.node.kubernetes.io/pci-0300_10de.present": "true"}
STATE_LABELS = {
    "container": ("nvidia.com/gpu.deploy.driver", "nvidia.com/gpu.deploy.gpu-feature-discovery",
                  "nvidia.com/gpu.deploy.container-toolkit", "nvidia.com/gpu.deploy.device-plugin",
                  "nvidia.com/gpu.deploy.dcgm", "nvidia.com/gpu.deploy.dcgm-exporter",
                  "nvidia.com/gpu.deploy.node-status-exporter", "nvidia.com/gpu.deploy.operator-validator"),
    "vm-passthrough": ("nvidia.com/gpu.deploy.sandbox-device-plugin", "nvidia.com/gpu.deploy.sandbox-validator",
                       "nvidia.com/gpu.deploy.vfio-manager", "nvidia.com/gpu.deploy.kata-manager",
                       "nvidia.com/gpu.deploy.cc-manager"),
    "vm-vgpu": ("nvidia.com/gpu.deploy.sandbox-device-plugin", "nvidia.com/gpu.deploy.vgpu-manager",
                "nvidia.com/gpu.deploy.vgpu-device-manager", "nvidia.com/gpu.deploy.sandbox-validator",
                "nvidia.com/gpu.deploy.cc-manager"),
}

# -- object_controls.go / assets/state-driver ----------------------------------------------------
DRIVER_DS = "nvidia-driver-daemonset"          # commonDriverDaemonsetName
DRIVER_CONTAINER = "nvidia-driver-ctr"
DRIVER_APP = {"app": DRIVER_DS}                  # upgrade_controller.go DriverLabelKey/Value
COMPONENT = "app.kubernetes.io/component"
PRECOMPILED = "nvidia.com/precompiled"           # precompiledIdentificationLabelKey
HASH_ANNOTATION = "nvidia.com/last-applied-hash"  # NvidiaAnnotationHashKey
DEPLOY_DRIVER = "nvidia.com/gpu.deploy.driver"

# -- k8s-operator-libs pkg/upgrade/consts.go with the driver name "gpu" (main.go SetDriverName) ---
UPGRADE_STATE = "nvidia.com/gpu-driver-upgrade-state"
SKIP_NODE = "nvidia.com/gpu-driver-upgrade.skip"
SAFE_LOAD = "nvidia.com/gpu-driver-upgrade.driver-wait-for-safe-load"
INITIAL_UNSCHEDULABLE = "nvidia.com/gpu-driver-upgrade.node-initial-state.unschedulable"
COMPLETION_START = "nvidia.com/gpu-driver-upgrade-wait-for-pod-completion-start-time"
VALIDATION_START = "nvidia.com/gpu-driver-upgrade-validation-start-time"
REQUESTED = "nvidia.com/gpu-driver-upgrade-requested"
REQUESTOR_MODE = "nvidia.com/gpu-driver-upgrade-requestor-mode"
# upgrade_controller.go UpgradeSkipDrainLabelSelector
SKIP_DRAIN_SELECTOR = "nvidia.com/gpu-driver-upgrade-drain.skip!=true"
UNKNOWN = ""
REQUIRED = "upgrade-required"
CORDON = "cordon-required"
WAIT_FOR_JOBS = "wait-for-jobs-required"
POD_DELETION = "pod-deletion-required"
DRAIN = "drain-required"
POD_RESTART = "pod-restart-required"
VALIDATION = "validation-required"
UNCORDON = "uncordon-required"
DONE = "upgrade-done"
FAILED = "upgrade-failed"
MANAGED_STATES = (UNKNOWN, DONE, REQUIRED, CORDON, WAIT_FOR_JOBS, POD_DELETION, FAILED, DRAIN, POD_RESTART,
                  UNCORDON, VALIDATION)           # common_manager.go GetTotalManagedNodes
VALIDATION_TIMEOUT = 600                          # validation_manager.go validationTimeoutSeconds
# cmd/gpu-operator/main.go: the leader election Lease (controller-runtime defaults 15 s).
LEADER_LEASE = "53822513.nvidia.com"
LEASE_SECONDS = 15


class OperatorError(Exception):
    """What makes a state of the ClusterPolicy controller fail (logged, retried next pass)."""


class UpgradeStateError(Exception):
    """BuildState refused to build the cluster upgrade state (the pass is skipped)."""


def _meta(obj):
    return (obj or {}).get("metadata") or {}


def _labels(obj):
    return _meta(obj).get("labels") or {}


def _annotations(obj):
    return _meta(obj).get("annotations") or {}


def _flag(value, default):
    """A *bool in the ClusterPolicy: unset is the type's default (api/nvidia/v1 IsEnabled...)."""
    if value is None:
        return default
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


# =========================================================================== node labels
def gpu_node_labels(labels, policy_spec=None):
    """state_manager.go labelGPUNodes for one node (sandbox workloads disabled: the workload
    is "container", getWorkloadConfig): the node's labels afterwards, or None when unchanged."""
    policy_spec = policy_spec or {}
    new = dict(labels or {})
    common = new.get(GPU_PRESENT) == "true"                                   # hasCommonGPULabel
    has_gpu = any(new.get(k) == v for k, v in GPU_NODE_LABELS.items())       # hasGPULabels
    if not common and has_gpu:
        new[GPU_PRESENT] = "true"
    elif common and not has_gpu:
        new[GPU_PRESENT] = "false"
        _remove_all_state_labels(new)
    if new.get(GPU_PRESENT) == "true":
        if new.get(OPERANDS) == "false":                                      # hasOperandsDisabled
            _remove_all_state_labels(new)
        else:
            for config, keys in STATE_LABELS.items():                         # removeGPUStateLabels
                if config == "container":
                    continue
                for key in keys:
                    if key not in STATE_LABELS["container"]:
                        new.pop(key, None)
            for key in STATE_LABELS["container"]:                             # addGPUStateLabels
                new.setdefault(key, "true")
            if _mig_capable(new) and MIG_MANAGER not in new:
                new[MIG_MANAGER] = "true"
        mig = policy_spec.get("migManager") or {}
        if (_flag(mig.get("enabled"), True) and _mig_capable(new) and not new.get(MIG_CONFIG)
                and (mig.get("config") or {}).get("default") == "all-disabled"):
            new[MIG_CONFIG] = "all-disabled"
    return None if new == dict(labels or {}) else new


def _remove_all_state_labels(labels):
    for keys in STATE_LABELS.values():
        for key in keys:
            labels.pop(key, None)
    labels.pop(MIG_MANAGER, None)


def _mig_capable(labels):
    """state_manager.go hasMIGCapableGPU."""
    if labels.get(VGPU_HOST_DRIVER):
        return False
    if MIG_CAPABLE in labels:
        return labels[MIG_CAPABLE] == "true"
    product = (labels.get(GPU_PRODUCT) or "").lower()
    return any(p in product for p in ("h100", "a100", "a30"))


def label_patch(old, new):
    """The merge patch that turns labels ``old`` into ``new``."""
    patch = dict((k, v) for k, v in new.items() if old.get(k) != v)
    patch.update((k, None) for k in old if k not in new)
    return patch


def auto_upgrade_annotation(node, policy_spec):
    """state_manager.go applyDriverAutoUpgradeAnnotation for one node: the annotation value
    to write ("true", None to remove), or False when nothing changes. Not a GPU node: False."""
    if _labels(node).get(GPU_PRESENT) != "true":
        return False
    policy = ((policy_spec or {}).get("driver") or {}).get("upgradePolicy")
    present = AUTO_UPGRADE_ANNOTATION in _annotations(node)
    if policy and _flag(policy.get("autoUpgrade"), False):
        return "true" if _annotations(node).get(AUTO_UPGRADE_ANNOTATION) != "true" else False
    return None if present else False


# =========================================================================== state-driver
def driver_spec(policy):
    return ((policy or {}).get("spec") or {}).get("driver") or {}


def image_path(repository, image, version, env_value=None, env_name="DRIVER_IMAGE"):
    """api/nvidia/v1/clusterpolicy_types.go imagePath: repository/image:version (an sha256
    version with "@"), image alone without repository and version, else the Operator's
    environment variable."""
    repository, image, version = repository or "", image or "", str(version or "")
    path = ""
    if not repository and not version:
        path = image
    elif version.startswith("sha256:"):
        path = "%s/%s@%s" % (repository, image, version)
    else:
        path = "%s/%s:%s" % (repository, image, version)
    if path:
        return path
    if env_value:
        return env_value
    raise OperatorError("empty image path provided through both ClusterPolicy CR and ENV %s" % env_name)


def gpu_nodes(nodes):
    """The nodes labelled nvidia.com/gpu.present=true, in the API's order."""
    return [n for n in nodes or [] if _labels(n).get(GPU_PRESENT) == "true"]


def kernel_full_version(nodes):
    """object_controls.go kernelFullVersion: (kernel, os tag) of the FIRST GPU node's NFD
    labels; ("", "") without GPU nodes; the os tag "" without the OS labels."""
    found = gpu_nodes(nodes)
    if not found:
        return "", ""
    labels = _labels(found[0])
    kernel = labels.get(NFD_KERNEL, "")
    if not kernel or NFD_OS_ID not in labels or NFD_OS_VERSION not in labels:
        return kernel, ""
    return kernel, "%s%s" % (labels[NFD_OS_ID], labels[NFD_OS_VERSION])


def kernel_versions_map(nodes):
    """object_controls.go getKernelVersionsMap: {kernel: "<os id><version>"} of the GPU
    nodes; a GPU node without the kernel label, or one kernel on two OSes, is an error."""
    found = {}
    for node in gpu_nodes(nodes):
        labels = _labels(node)
        kernel = labels.get(NFD_KERNEL)
        if not kernel:
            raise OperatorError("Failed to get kernel version of GPU node %s using Node Feature Discovery (NFD) "
                                "labels. Is NFD installed in the cluster?" % _meta(node).get("name"))
        node_os = "%s%s" % (labels.get(NFD_OS_ID, ""), labels.get(NFD_OS_VERSION, ""))
        if kernel in found and found[kernel] != node_os:
            raise OperatorError("different OS versions found for the same kernel version %s, unsupported "
                                "configuration" % kernel)
        found[kernel] = node_os
    return found


def sanitized_kernel_version(kernel):
    """object_controls.go getSanitizedKernelVersion."""
    text = re.sub(r"x86_64(?:_64k)?|aarch64(?:_64k)?", "", kernel).replace("_", ".")
    return (text[:-1] if text.endswith(".") else text).lower()


def resolve_driver_image(spec, nodes, kernel=None, env=None):
    """object_controls.go resolveDriverTag for the driver: the kernel label of the first GPU
    node must exist; conventional: ImagePath + "-<os tag>"; precompiled:
    "<repository>/<image>:<version>-<kernel>" + "-<os tag>"; a digest gets no os tag.

    The Operator has no driver images for Debian (nvcr.io/nvidia/driver is built for
    Ubuntu, RHEL/RHCOS and SLES; NVIDIA/gpu-operator#2225: a Debian 13 node gets the tag
    580.105.08-debian13, which does not exist, ImagePullBackOff). It names the tag after
    the node's OS all the same, and so does this simulation, which pulls no image."""
    first_kernel, os_tag = kernel_full_version(nodes)
    if not first_kernel:
        raise OperatorError("ERROR: Could not find kernel full version: ('%s', '%s')" % (first_kernel, os_tag))
    if _flag(spec.get("usePrecompiled"), False):
        if not spec.get("repository") and not spec.get("version"):
            if not spec.get("image"):
                raise OperatorError("unable to resolve driver image path for pre-compiled drivers, driver.repository,"
                                    " driver.image and driver.version have to be specified in the ClusterPolicy")
            image = "%s-%s" % (spec["image"], kernel)
        else:
            image = "%s/%s:%s-%s" % (spec.get("repository", ""), spec.get("image", ""), spec.get("version", ""), kernel)
    else:
        image = image_path(spec.get("repository"), spec.get("image"), spec.get("version"),
                           (env or {}).get("DRIVER_IMAGE"))
    if "sha256:" not in image:
        image = "%s-%s" % (image, os_tag)
    return image


def object_hash(obj):
    """utils.GetObjectHash stand-in: a stable hash of the object as the Operator built it."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return str(int(hashlib.sha256(text.encode()).hexdigest()[:15], 16))


def _env(name, value=None, field=None):
    if field:
        return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}
    return {"name": name, "value": value}


def driver_daemonset(policy, namespace, image, manager_image, kernel=None, os_name=None):
    """assets/state-driver/0500_daemonset.yaml after TransformDriver (object_controls.go):
    the driver-manager init container and the driver container (peermem, GDS, GDRCopy and
    the OpenShift toolkit containers are removed when those features are off, as they are
    here); the ClusterPolicy as controller; spec.daemonsets labels and annotations added
    (applyCommonDaemonsetMetadata); precompiled: transformPrecompiledDriverDaemonset."""
    spec = driver_spec(policy)
    common = ((policy or {}).get("spec") or {}).get("daemonsets") or {}
    precompiled = "true" if kernel else "false"
    labels = {"app": DRIVER_DS, PRECOMPILED: precompiled, COMPONENT: "nvidia-driver"}
    name = DRIVER_DS
    node_selector = {DEPLOY_DRIVER: "true"}
    if kernel:
        name = "%s-%s-%s" % (DRIVER_DS, sanitized_kernel_version(kernel), os_name)
        node_selector[NFD_KERNEL] = kernel
    driver_env = [_env("NODE_NAME", field="spec.nodeName"), _env("NODE_IP", field="status.hostIP")]
    if spec.get("kernelModuleType"):
        driver_env.append(_env("KERNEL_MODULE_TYPE", spec["kernelModuleType"]))
    for item in spec.get("env") or []:
        driver_env = [e for e in driver_env if e["name"] != item.get("name")] + [dict(item)]
    driver = {"name": DRIVER_CONTAINER, "image": image, "imagePullPolicy": _pull_policy(spec.get("imagePullPolicy")),
              "command": ["nvidia-driver"], "args": list(spec.get("args") or ["init"]), "env": driver_env,
              "securityContext": {"privileged": True, "seLinuxOptions": {"level": "s0"}}}
    if spec.get("resources"):
        driver["resources"] = copy.deepcopy(spec["resources"])
    manager = {"name": "k8s-driver-manager", "image": manager_image, "imagePullPolicy": "IfNotPresent",
               "command": ["driver-manager"], "args": ["uninstall_driver"],
               "env": [_env("NODE_NAME", field="spec.nodeName"), _env("NVIDIA_VISIBLE_DEVICES", "void"),
                       _env("ENABLE_GPU_POD_EVICTION", "true"), _env("ENABLE_AUTO_DRAIN", "false"),
                       _env("DRAIN_USE_FORCE", "false"), _env("DRAIN_POD_SELECTOR_LABEL", ""),
                       _env("DRAIN_TIMEOUT_SECONDS", "0s"), _env("DRAIN_DELETE_EMPTYDIR_DATA", "false"),
                       _env("OPERATOR_NAMESPACE", field="metadata.namespace")],
               "securityContext": {"privileged": True}}
    meta = _meta(policy)
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": name, "namespace": namespace,
                       "labels": dict(labels, **(common.get("labels") or {})),
                       "annotations": dict({"openshift.io/scc": "nvidia-driver"}, **(common.get("annotations") or {})),
                       "ownerReferences": [{"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy",
                                            "name": meta.get("name"), "uid": meta.get("uid"),
                                            "controller": True, "blockOwnerDeletion": True}]},
          "spec": {"selector": {"matchLabels": dict(DRIVER_APP)},
                   "updateStrategy": {"type": "OnDelete"},
                   "template": {
                       "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": DRIVER_CONTAINER},
                                    "labels": dict(labels)},
                       "spec": {"nodeSelector": node_selector,
                                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                                 "effect": "NoSchedule"}] + list(common.get("tolerations") or []),
                                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
                                    "labelSelector": {"matchExpressions": [{"key": COMPONENT, "operator": "In",
                                                                            "values": ["nvidia-driver"]}]},
                                    "topologyKey": "kubernetes.io/hostname"}]}},
                                "priorityClassName": common.get("priorityClassName") or "system-node-critical",
                                "hostPID": True,
                                "initContainers": [manager],
                                "containers": [driver]}}}}
    ds["metadata"]["annotations"][HASH_ANNOTATION] = object_hash(ds)
    return ds


def _pull_policy(value):
    """api/nvidia/v1 ImagePullPolicy: Always, Never, else IfNotPresent."""
    return value if value in ("Always", "Never") else "IfNotPresent"


def desired_driver_daemonsets(policy, nodes, namespace, env=None):
    """The driver DaemonSets state-driver wants: [] when the driver is disabled or no node is
    a GPU node; one, or one per kernel with precompiled drivers (precompiledDriverDaemonsets).
    Raises OperatorError where the Operator's state fails."""
    spec = driver_spec(policy)
    if not _flag(spec.get("enabled"), True) or not gpu_nodes(nodes):
        return []
    manager = spec.get("manager") or {}
    manager_image = image_path(manager.get("repository"), manager.get("image"), manager.get("version"),
                               (env or {}).get("DRIVER_MANAGER_IMAGE"), "DRIVER_MANAGER_IMAGE")
    if _flag(spec.get("usePrecompiled"), False):
        return [driver_daemonset(policy, namespace, resolve_driver_image(spec, nodes, kernel, env), manager_image,
                                 kernel, os_name)
                for kernel, os_name in sorted(kernel_versions_map(nodes).items())]
    return [driver_daemonset(policy, namespace, resolve_driver_image(spec, nodes, env=env), manager_image)]


def driver_daemonsets_to_delete(policy, existing, has_gpu_nodes):
    """Names of driver DaemonSets state-driver deletes: nvidia-driver-daemonset when the
    driver is disabled (DaemonSet: state disabled); the other kind's DaemonSets
    (cleanupUnusedDriverDaemonSets: nvidia.com/precompiled "true" when conventional, "false"
    when precompiled; name prefix nvidia-driver-daemonset); precompiled ones that want no
    pod and have none misscheduled (cleanupStalePrecompiledDaemonsets)."""
    spec = driver_spec(policy)
    names = []
    if not _flag(spec.get("enabled"), True):
        return [_meta(ds)["name"] for ds in existing if _meta(ds).get("name") == DRIVER_DS]
    if not has_gpu_nodes:
        return names
    precompiled = _flag(spec.get("usePrecompiled"), False)
    other = "false" if precompiled else "true"
    for ds in existing:
        name = _meta(ds).get("name", "")
        if not name.startswith(DRIVER_DS):
            continue
        if _labels(ds).get(PRECOMPILED) == other:
            names.append(name)
        elif precompiled and _labels(ds).get(PRECOMPILED) == "true":
            status = ds.get("status") or {}
            if int(status.get("desiredNumberScheduled") or 0) == 0 and int(status.get("numberMisscheduled") or 0) == 0:
                names.append(name)
    return names


# =========================================================================== upgrade controller
def revision_hash(ds, revisions):
    """pod_manager.go GetDaemonsetControllerRevisionHash: the newest (highest revision)
    ControllerRevision of the DaemonSet's namespace that matches its selector's matchLabels
    and whose name starts with the DaemonSet's; the hash is the name after "<ds>-"."""
    name = _meta(ds).get("name", "")
    wanted = ((ds.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    found = [r for r in revisions or [] if _meta(r).get("namespace") == _meta(ds).get("namespace")
             and all(_labels(r).get(k) == v for k, v in wanted.items()) and _meta(r).get("name", "").startswith(name)]
    if not found:
        raise UpgradeStateError("no revision found for daemonset %s" % name)
    newest = sorted(found, key=lambda r: int(r.get("revision") or 0))[-1]
    return _meta(newest)["name"][len(name) + 1:]


def _orphaned(pod):
    return not _meta(pod).get("ownerReferences")


def build_state(daemonsets, pods, nodes):
    """upgrade_state.go BuildState: {state: [node state]} with node state {"node", "pod",
    "ds"}. ``daemonsets``/``pods``: the driver DaemonSets and pods (label app=
    nvidia-driver-daemonset) of the Operator's namespace. Raises UpgradeStateError where a
    DaemonSet's desiredNumberScheduled differs from its pod count (GetPodsOwnedbyDs counts
    every pod whose first owner is the DaemonSet, terminating ones too)."""
    by_uid = dict((_meta(ds).get("uid"), ds) for ds in daemonsets)
    by_name = dict((_meta(n).get("name"), n) for n in nodes)
    chosen = []
    for ds in sorted(daemonsets, key=lambda d: _meta(d).get("name", "")):
        owned = [p for p in pods if not _orphaned(p) and _meta(p)["ownerReferences"][0].get("uid") == _meta(ds).get("uid")]
        if int((ds.get("status") or {}).get("desiredNumberScheduled") or 0) != len(owned):
            raise UpgradeStateError("driver DaemonSet should not have Unscheduled pods (%s: %d wanted, %d pods)" % (
                _meta(ds).get("name"), int((ds.get("status") or {}).get("desiredNumberScheduled") or 0), len(owned)))
        chosen.extend(owned)
    chosen.extend(p for p in pods if _orphaned(p))                    # GetOrphanedPods
    states = {}
    for pod in chosen:
        spec = pod.get("spec") or {}
        if not spec.get("nodeName") and (pod.get("status") or {}).get("phase", "Pending") == "Pending":
            continue
        node = by_name.get(spec.get("nodeName"))
        if node is None:
            raise UpgradeStateError("unable to get node %s" % spec.get("nodeName"))
        ds = None if _orphaned(pod) else by_uid.get(_meta(pod)["ownerReferences"][0].get("uid"))
        states.setdefault(_labels(node).get(UPGRADE_STATE, UNKNOWN), []).append({"node": node, "pod": pod, "ds": ds})
    return states


def pod_in_sync(node_state, revisions):
    """common_manager.go podInSyncWithDS: (synced, orphaned)."""
    if node_state["ds"] is None:
        return False, True
    pod_hash = _labels(node_state["pod"]).get("controller-revision-hash")
    if pod_hash is None:
        raise UpgradeStateError("controller-revision-hash label not present for pod %s" % _meta(node_state["pod"])["name"])
    return pod_hash == revision_hash(node_state["ds"], revisions), False


def driver_pod_ready_in_sync(node_state, revisions):
    """common_manager.go isDriverPodInSync: in sync, Running, every container ready."""
    synced, orphaned = pod_in_sync(node_state, revisions)
    status = node_state["pod"].get("status") or {}
    containers = status.get("containerStatuses") or []
    return (not orphaned and synced and status.get("phase") == "Running" and bool(containers)
            and all(c.get("ready") for c in containers))


def driver_pod_failing(pod):
    """common_manager.go isDriverPodFailing: a container not ready after more than 10 restarts."""
    status = pod.get("status") or {}
    return any(not c.get("ready") and int(c.get("restartCount") or 0) > 10
               for c in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []))


def _unschedulable(node):
    return bool((node.get("spec") or {}).get("unschedulable"))


def _node_ready(node):
    """common_manager.go isNodeConditionReady: no Ready condition other than True."""
    return all(c.get("status") == "True" for c in (node.get("status") or {}).get("conditions") or []
               if c.get("type") == "Ready")


def total_managed(states):
    return sum(len(states.get(s, [])) for s in MANAGED_STATES)


def upgrades_in_progress(states):
    return total_managed(states) - sum(len(states.get(s, [])) for s in (UNKNOWN, DONE, REQUIRED))


def current_unavailable(states):
    """common_manager.go GetCurrentUnavailableNodes: cordoned or not Ready nodes."""
    return sum(1 for nodes in states.values() for ns in nodes if _unschedulable(ns["node"]) or not _node_ready(ns["node"]))


def scaled_int_or_percent(value, total, round_up=True):
    """apimachinery intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, bool):
        raise ValueError("invalid int-or-string %r" % value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        exact = int(text[:-1]) * total / 100.0
        return int(-(-exact // 1)) if round_up else int(exact // 1)
    return int(text)


def max_unavailable(states, policy):
    """upgrade_inplace.go ProcessUpgradeRequiredNodes: maxUnavailable of the total managed
    nodes (rounded up), the total when unset."""
    total = total_managed(states)
    value = (policy or {}).get("maxUnavailable")
    return total if value is None else scaled_int_or_percent(value, total, True)


def upgrades_available(states, max_parallel, max_unavail):
    """common_manager.go GetUpgradesAvailable."""
    in_progress = upgrades_in_progress(states)
    total = total_managed(states)
    max_parallel = int(max_parallel or 0)
    available = len(states.get(REQUIRED, [])) if max_parallel == 0 else max_parallel - in_progress
    unavailable = current_unavailable(states) + len(states.get(CORDON, []))
    if available > max_unavail:
        available = max_unavail
    if unavailable >= max_unavail:
        available = 0
    elif max_unavail < total and unavailable + available > max_unavail:
        available = max_unavail - unavailable
    return available


def gpu_pod(pod):
    """cmd/gpu-operator/main.go gpuPodSpecFilter: a Running or Pending pod one of whose
    containers asks for nvidia.com/gpu* or nvidia.com/mig-* (limits or requests)."""
    if (pod.get("status") or {}).get("phase") not in ("Running", "Pending"):
        return False
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for names in ((resources.get("limits") or {}), (resources.get("requests") or {})):
            if any(n.startswith("nvidia.com/gpu") or n.startswith("nvidia.com/mig-") for n in names):
                return True
    return False


def deletion_problems(pods, force=False, delete_emptydir=False):
    """k8s.io/kubectl/pkg/drain filters.go as the upgrade's drain.Helper runs them
    (IgnoreAllDaemonSets, GetPodsForDeletion): (deletable pods, errors). A DaemonSet's pod
    and a mirror pod are skipped with a warning (neither deletable nor an error); a pod with
    an emptyDir is an error unless DeleteEmptyDirData, one without a controller unless
    Force. Finished pods are always deletable."""
    deletable, errors = [], []
    for pod in pods:
        meta = _meta(pod)
        name = "%s/%s" % (meta.get("namespace"), meta.get("name"))
        finished = (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
        if controller and controller.get("kind") == "DaemonSet":
            continue
        if "kubernetes.io/config.mirror" in _annotations(pod):
            continue
        if not finished and not delete_emptydir and any(
                "emptyDir" in v for v in (pod.get("spec") or {}).get("volumes") or []):
            errors.append("%s: has local storage (emptyDir)" % name)
        elif not finished and not force and controller is None:
            errors.append("%s: not managed by a controller" % name)
        else:
            deletable.append(pod)
    return deletable, errors


def _pods_on(pods_by_node, node_name, selector=None):
    reqs = selectors.parse_labels(selector) if selector else []
    return [p for p in pods_by_node.get(node_name, []) if selectors.match_labels(reqs, _labels(p))]


def _wait_expired(plan, node, key, timeout, now):
    """A timed wait of the upgrade controller, its start kept in the node's annotation ``key``
    (k8s-operator-libs pkg/upgrade): started now where the node has none; True once
    ``timeout`` seconds have passed (the caller moves the node on and clears the annotation)."""
    started = _annotations(node).get(key)
    if started is None:
        plan.annotate(node, key, str(int(now)))
        return False
    return now > int(started) + timeout


class Plan:
    """The actions of one ApplyState pass, in order: ("state", node, state),
    ("annotate", node, key, value|None), ("cordon", node, bool), ("delete_pod", pod),
    ("evict", pod), ("track", node, record), ("untrack", node)."""

    def __init__(self):
        self.actions = []

    def state(self, node, value):
        self.actions.append(("state", _meta(node)["name"], value))

    def annotate(self, node, key, value):
        self.actions.append(("annotate", _meta(node)["name"], key, value))

    def cordon(self, node, on):
        # drain.RunCordonOrUncordon: patched only when it differs (CordonHelper.UpdateIfRequired)
        if _unschedulable(node) != on:
            self.actions.append(("cordon", _meta(node)["name"], on))

    def add(self, *action):
        self.actions.append(action)


def plan_upgrade(states, upgrade_policy, revisions, pods_by_node, now, tracking=None, validation_selector=None):
    """upgrade_state.go ApplyState for the in-place upgrade (no maintenance operator), pod
    deletion enabled, validation enabled only with ``validation_selector`` (main.go:
    "app=nvidia-operator-validator"; module docstring). ``pods_by_node``: every pod by node
    name; ``tracking``: {node: {"kind", "uids", "since"}} of pod deletions / drains in
    progress (the managers' nodesInProgress / drainingNodes and the goroutines that wait for
    the pods to go); ``now``: Unix seconds. Returns the Plan's actions."""
    plan = Plan()
    policy = upgrade_policy or {}
    tracking = tracking or {}
    if not _flag(policy.get("autoUpgrade"), False):
        return plan.actions

    def in_sync(ns):
        return pod_in_sync(ns, revisions)

    def to_uncordon_or_done(ns):
        # common_manager.go updateNodeToUncordonOrDoneState
        node = ns["node"]
        requestor = _annotations(node).get(REQUESTOR_MODE) == "true"
        initial = INITIAL_UNSCHEDULABLE in _annotations(node)
        new = DONE if initial and not requestor else UNCORDON
        plan.state(node, new)
        if new == DONE or requestor:
            plan.annotate(node, INITIAL_UNSCHEDULABLE, None)

    # ProcessDoneOrUnknownNodes
    for name in (UNKNOWN, DONE):
        for ns in states.get(name, []):
            synced, orphaned = in_sync(ns)
            node = ns["node"]
            requested = _annotations(node).get(REQUESTED) == "true"
            waiting = bool(_annotations(node).get(SAFE_LOAD))
            if (not synced and not orphaned) or waiting or requested:
                if _unschedulable(node):
                    plan.annotate(node, INITIAL_UNSCHEDULABLE, "true")
                plan.state(node, REQUIRED)
                continue
            if name == UNKNOWN:
                plan.state(node, DONE)
    # ProcessUpgradeRequiredNodes (upgrade_inplace.go)
    available = upgrades_available(states, policy.get("maxParallelUpgrades"), max_unavailable(states, policy))
    for ns in states.get(REQUIRED, []):
        node = ns["node"]
        if _annotations(node).get(REQUESTED) == "true":
            plan.annotate(node, REQUESTED, None)
        if _labels(node).get(SKIP_NODE) == "true":
            continue
        if available <= 0 and not _unschedulable(node):
            continue
        plan.state(node, CORDON)
        available -= 1
    # ProcessCordonRequiredNodes
    for ns in states.get(CORDON, []):
        plan.cordon(ns["node"], True)
        plan.state(ns["node"], WAIT_FOR_JOBS)
    # ProcessWaitForJobsRequiredNodes (pod deletion is enabled: next state pod-deletion-required)
    wait = policy.get("waitForCompletion") or {}
    selector = wait.get("podSelector") or ""
    for ns in states.get(WAIT_FOR_JOBS, []):
        node = ns["node"]
        if not selector:
            plan.state(node, POD_DELETION)
            continue
        # pod_manager.go ScheduleCheckOnPodCompletion
        running = any((p.get("status") or {}).get("phase") in ("Running", "Pending")
                      for p in _pods_on(pods_by_node, _meta(node)["name"], selector))
        if running:
            timeout = int(wait.get("timeoutSeconds") or 0)
            if timeout and _wait_expired(plan, node, COMPLETION_START, timeout, now):
                plan.state(node, POD_DELETION)
                plan.annotate(node, COMPLETION_START, None)
            continue
        plan.annotate(node, COMPLETION_START, None)
        plan.state(node, POD_DELETION)
    drain = policy.get("drain") or {}
    drain_enabled = _flag(drain.get("enable"), False)
    # ProcessPodDeletionRequiredNodes -> pod_manager.go SchedulePodEviction
    deletion = policy.get("podDeletion") or {}
    for ns in states.get(POD_DELETION, []):
        node = ns["node"]
        name = _meta(node)["name"]
        on_node = pods_by_node.get(name, [])
        record = tracking.get(name)
        if record and record.get("kind") == "pod-deletion":
            _wait_for_pods(plan, node, record, on_node, now, int(deletion.get("timeoutSeconds") or 0),
                           POD_RESTART, DRAIN if drain_enabled else FAILED)
            continue
        wanted = [p for p in on_node if gpu_pod(p)]
        if not wanted:
            plan.state(node, POD_RESTART)
            continue
        deletable, _errors = deletion_problems(wanted, _flag(deletion.get("force"), False),
                                               _flag(deletion.get("deleteEmptyDir"), False))
        if len(deletable) != len(wanted):
            plan.state(node, DRAIN if drain_enabled else FAILED)        # updateNodeToDrainOrFailed
            continue
        _evict_all(plan, node, deletable, "pod-deletion", now)
    # ProcessDrainNodes (drain_manager.go ScheduleNodesDrain)
    for ns in states.get(DRAIN, []):
        node = ns["node"]
        name = _meta(node)["name"]
        if not drain_enabled:
            plan.state(node, POD_RESTART)
            continue
        record = tracking.get(name)
        if record and record.get("kind") == "drain":
            _wait_for_pods(plan, node, record, pods_by_node.get(name, []), now,
                           int(drain.get("timeoutSeconds") or 0), POD_RESTART, FAILED)
            continue
        plan.cordon(node, True)
        chosen = ",".join(s for s in (drain.get("podSelector") or "", SKIP_DRAIN_SELECTOR) if s)
        candidates = [p for p in _pods_on(pods_by_node, name, chosen) if not _meta(p).get("deletionTimestamp")]
        deletable, errors = deletion_problems(candidates, _flag(drain.get("force"), False),
                                              _flag(drain.get("deleteEmptyDir"), False))
        if errors:
            plan.state(node, FAILED)
            continue
        _evict_all(plan, node, deletable, "drain", now)
    # ProcessPodRestartNodes
    for ns in states.get(POD_RESTART, []):
        node = ns["node"]
        synced, orphaned = in_sync(ns)
        if not synced or orphaned:
            if not _meta(ns["pod"]).get("deletionTimestamp"):
                plan.add("delete_pod", ns["pod"])                       # SchedulePodsRestart
            continue
        if _annotations(node).get(SAFE_LOAD):
            plan.annotate(node, SAFE_LOAD, None)                         # UnblockLoading
        if driver_pod_ready_in_sync(ns, revisions):
            if validation_selector:
                plan.state(node, VALIDATION)
            else:
                to_uncordon_or_done(ns)
        elif driver_pod_failing(ns["pod"]):
            plan.state(node, FAILED)
    # ProcessUpgradeFailedNodes
    for ns in states.get(FAILED, []):
        node = ns["node"]
        if driver_pod_ready_in_sync(ns, revisions):
            initial = INITIAL_UNSCHEDULABLE in _annotations(node)
            plan.state(node, DONE if initial else UNCORDON)
            if initial:
                plan.annotate(node, INITIAL_UNSCHEDULABLE, None)
    # ProcessValidationRequiredNodes (validation_manager.go Validate)
    for ns in states.get(VALIDATION, []):
        node = ns["node"]
        if _annotations(node).get(SAFE_LOAD):
            plan.annotate(node, SAFE_LOAD, None)
        if not validation_selector:
            to_uncordon_or_done(ns)                                       # podSelector "": validated
            continue
        validators = _pods_on(pods_by_node, _meta(node)["name"], validation_selector)
        if not validators:
            continue                                                      # "No validation pods found"
        if all(_pod_ready(p) for p in validators):
            plan.annotate(node, VALIDATION_START, None)
            to_uncordon_or_done(ns)
            continue
        if _wait_expired(plan, node, VALIDATION_START, VALIDATION_TIMEOUT, now):
            plan.state(node, FAILED)
            plan.annotate(node, VALIDATION_START, None)
    # ProcessUncordonRequiredNodes (upgrade_inplace.go)
    for ns in states.get(UNCORDON, []):
        node = ns["node"]
        if _annotations(node).get(REQUESTOR_MODE) == "true":
            continue
        plan.cordon(node, False)
        plan.state(node, DONE)
    return plan.actions


def _pod_ready(pod):
    """validation_manager.go isPodReady: Running, containers, all ready."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    return status.get("phase") == "Running" and bool(containers) and all(c.get("ready") for c in containers)


def _evict_all(plan, node, pods, kind, now):
    """drain.Helper DeleteOrEvictPods: each pod evicted (policy/v1 Eviction; a
    PodDisruptionBudget's 429 is retried on the next pass), then waited for."""
    for pod in pods:
        plan.add("evict", pod)
    plan.add("track", _meta(node)["name"],
             {"kind": kind, "since": now, "uids": [_meta(p).get("uid") for p in pods]})


def _wait_for_pods(plan, node, record, on_node, now, timeout, done_state, timeout_state):
    """The goroutine's wait (drain.Helper waitForDelete, Timeout; 0 = none): gone -> the next
    state; past the timeout -> ``timeout_state``; meanwhile pods not yet going are evicted again."""
    left = [p for p in on_node if _meta(p).get("uid") in record.get("uids", [])]
    name = _meta(node)["name"]
    if not left:
        plan.add("untrack", name)
        plan.state(node, done_state)
        return
    if timeout and now > record.get("since", now) + timeout:
        plan.add("untrack", name)
        plan.state(node, timeout_state)
        return
    for pod in left:
        if not _meta(pod).get("deletionTimestamp"):
            plan.add("evict", pod)


def remove_state_labels(nodes):
    """upgrade_controller.go removeNodeUpgradeStateLabels (auto upgrade off): the nodes that
    carry the upgrade-state label."""
    return [_meta(n)["name"] for n in nodes if UPGRADE_STATE in _labels(n)]


# =========================================================================== the Operator
def _pod_path(pod):
    return "/api/v1/namespaces/%s/pods/%s" % (_meta(pod).get("namespace"), _meta(pod)["name"])


def first_policy(policies):
    """The ClusterPolicy the Operator manages: the oldest (clusterpolicy_controller.go: a
    second one is "ignored")."""
    found = sorted(policies or [], key=lambda p: (_meta(p).get("creationTimestamp") or "", _meta(p).get("name", "")))
    return found[0] if found else None


class Operator:
    """The reconcilers of one Operator process: ClusterPolicy (node labels, state-driver) and
    upgrade, one pass each per reconcile()."""

    def __init__(self, api, namespace, env=None, validation_selector=None, clock=time.time, log=None):
        self.api = api
        self.namespace = namespace
        self.env = dict(env or {})
        self.validation_selector = validation_selector
        self.clock = clock
        self.log = log or (lambda line: None)
        self.tracking = {}

    def reconcile(self):
        """One pass; returns a short line for the container's log."""
        policy = first_policy(self.api.list(CLUSTER_POLICIES))
        if policy is None:
            return "no ClusterPolicy"
        spec = policy.get("spec") or {}
        nodes = self.api.list("/api/v1/nodes")
        nodes = self.label_nodes(nodes, spec)
        outcome = []
        try:
            outcome.append(self.sync_driver(policy, nodes))
        except OperatorError as err:
            outcome.append("state-driver: %s" % err)
        try:
            outcome.append(self.sync_upgrade(spec, nodes))
        except UpgradeStateError as err:
            outcome.append("upgrade: %s" % err)
        return "; ".join(outcome)

    # -- ClusterPolicy controller -----------------------------------------------------
    def label_nodes(self, nodes, spec):
        out = []
        for node in nodes:
            name = _meta(node)["name"]
            labels = _labels(node)
            new = gpu_node_labels(labels, spec)
            if new is not None:
                self.api.merge_patch("/api/v1/nodes/%s" % name, {"metadata": {"labels": label_patch(labels, new)}})
                node = copy.deepcopy(node)
                node["metadata"]["labels"] = new
                self.log("labelled node %s for the GPU Operator" % name)
            value = auto_upgrade_annotation(node, spec)
            if value is not False:
                self.api.merge_patch("/api/v1/nodes/%s" % name,
                                     {"metadata": {"annotations": {AUTO_UPGRADE_ANNOTATION: value}}})
                node = copy.deepcopy(node)
                annotations = node["metadata"].setdefault("annotations", {})
                if value is None:
                    annotations.pop(AUTO_UPGRADE_ANNOTATION, None)
                else:
                    annotations[AUTO_UPGRADE_ANNOTATION] = value
            out.append(node)
        return out

    def sync_driver(self, policy, nodes):
        path = "%s/namespaces/%s/daemonsets" % (APPS, self.namespace)
        existing = [ds for ds in self.api.list(path, params={"labelSelector": "%s=nvidia-driver" % COMPONENT})
                    if _labels(ds).get(COMPONENT) == "nvidia-driver"]
        for name in driver_daemonsets_to_delete(policy, existing, bool(gpu_nodes(nodes))):
            self.api.delete("%s/%s" % (path, name))
            self.log("deleted DaemonSet %s/%s" % (self.namespace, name))
        if not _flag(driver_spec(policy).get("enabled"), True):
            return "driver disabled"
        wanted = desired_driver_daemonsets(policy, nodes, self.namespace, self.env)
        if not wanted:
            return "no GPU node"
        by_name = dict((_meta(ds)["name"], ds) for ds in existing)
        for ds in wanted:
            name = _meta(ds)["name"]
            found = by_name.get(name)
            if found is None:
                self.api.create(path, ds)
                self.log("created DaemonSet %s/%s (%s)" % (self.namespace, name, _driver_image(ds)))
            elif _annotations(found).get(HASH_ANNOTATION) != _annotations(ds)[HASH_ANNOTATION]:
                self.api.replace("%s/%s" % (path, name), ds)
                self.log("updated DaemonSet %s/%s (%s)" % (self.namespace, name, _driver_image(ds)))
        return "driver %s" % ", ".join(_driver_image(ds) for ds in wanted)

    # -- upgrade controller ----------------------------------------------------------------
    def sync_upgrade(self, spec, nodes):
        policy = (spec.get("driver") or {}).get("upgradePolicy")
        if not policy or not _flag(policy.get("autoUpgrade"), False):
            for name in remove_state_labels(nodes):
                self.api.merge_patch("/api/v1/nodes/%s" % name, {"metadata": {"labels": {UPGRADE_STATE: None}}})
            return "auto upgrade off"
        selector = ",".join("%s=%s" % kv for kv in DRIVER_APP.items())
        daemonsets = [ds for ds in self.api.list("%s/namespaces/%s/daemonsets" % (APPS, self.namespace),
                                                 params={"labelSelector": selector})
                      if all(_labels(ds).get(k) == v for k, v in DRIVER_APP.items())]
        all_pods = self.api.list("/api/v1/pods")
        pods = [p for p in all_pods if _meta(p).get("namespace") == self.namespace
                and all(_labels(p).get(k) == v for k, v in DRIVER_APP.items())]
        revisions = self.api.list("%s/namespaces/%s/controllerrevisions" % (APPS, self.namespace))
        states = build_state(daemonsets, pods, nodes)
        by_node = {}
        for pod in all_pods:
            by_node.setdefault((pod.get("spec") or {}).get("nodeName"), []).append(pod)
        actions = plan_upgrade(states, policy, revisions, by_node, self.clock(), self.tracking,
                               self.validation_selector)
        self.apply(actions)
        return "upgrade: %s" % ", ".join("%s %s" % (_meta(ns["node"])["name"], state or "unknown")
                                         for state, members in sorted(states.items()) for ns in members)

    def apply(self, actions):
        for action in actions:
            kind = action[0]
            if kind == "state":
                # node_upgrade_state_provider.go ChangeNodeUpgradeState: a strategic merge patch
                self.api.strategic_patch("/api/v1/nodes/%s" % action[1],
                                         {"metadata": {"labels": {UPGRADE_STATE: action[2]}}})
                self.log("node %s: %s=%s" % (action[1], UPGRADE_STATE, action[2]))
            elif kind == "annotate":
                # ChangeNodeUpgradeAnnotation: a merge patch, "null" removes
                self.api.merge_patch("/api/v1/nodes/%s" % action[1], {"metadata": {"annotations": {action[2]: action[3]}}})
            elif kind == "cordon":
                # kubectl drain's CordonHelper.PatchOrReplace: the two-way patch of spec.unschedulable
                self.api.strategic_patch("/api/v1/nodes/%s" % action[1],
                                         {"spec": {"unschedulable": True if action[2] else None}})
                self.log("node %s %s" % (action[1], "cordoned" if action[2] else "uncordoned"))
            elif kind == "delete_pod":
                self.api.delete(_pod_path(action[1]))
                self.log("deleted pod %s/%s" % (_meta(action[1]).get("namespace"), _meta(action[1])["name"]))
            elif kind == "evict":
                pod = action[1]
                try:
                    self.api.create(_pod_path(pod) + "/eviction", {
                        "apiVersion": "policy/v1", "kind": "Eviction",
                        "metadata": {"name": _meta(pod)["name"], "namespace": _meta(pod).get("namespace")}})
                    self.log("evicted pod %s/%s" % (_meta(pod).get("namespace"), _meta(pod)["name"]))
                except ApiError as err:
                    if err.status not in (404, 429):
                        raise
            elif kind == "track":
                self.tracking[action[1]] = action[2]
            elif kind == "untrack":
                self.tracking.pop(action[1], None)


def _driver_image(ds):
    containers = (((ds.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return next((c.get("image") for c in containers if c.get("name") == DRIVER_CONTAINER), "?")


def _lease(api, namespace, identity, now):
    """controller-runtime leader election (--leader-elect) on the Lease 53822513.nvidia.com."""
    path = "/apis/coordination.k8s.io/v1/namespaces/%s/leases" % namespace
    lease = api.get("%s/%s" % (path, LEADER_LEASE))
    spec = {"holderIdentity": identity, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": kube_vip._micro(now)}
    if lease is None:
        spec["acquireTime"] = kube_vip._micro(now)
        api.create(path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                          "metadata": {"name": LEADER_LEASE, "namespace": namespace}, "spec": spec})
        return True
    held = lease.get("spec") or {}
    holder = held.get("holderIdentity")
    expires = kube_vip._epoch(held.get("renewTime")) + int(held.get("leaseDurationSeconds") or LEASE_SECONDS)
    if holder and holder != identity and expires > now:
        return False
    if holder != identity:
        spec["acquireTime"] = kube_vip._micro(now)
        spec["leaseTransitions"] = int(held.get("leaseTransitions") or 0) + 1
    else:
        spec["acquireTime"] = held.get("acquireTime") or kube_vip._micro(now)
    api.replace("%s/%s" % (path, LEADER_LEASE), dict(lease, spec=dict(held, **spec)))
    return True


# =========================================================================== what the images do
def operator(ctx, process_class):
    """The gpu-operator container: leader election, then a reconcile every LOOP_SECONDS."""
    tag = ctx.container.get("image", "").rsplit(":", 1)[-1]
    proc = process_class(logs=["version: %s" % tag, "Starting the GPU Operator (simulated: node labels, "
                               "driver DaemonSet, upgrade controller)"])
    api = ctx.api
    if api is None:
        return proc
    meta = (ctx.pod or {}).get("metadata") or {}
    namespace = ctx.env.get("OPERATOR_NAMESPACE") or meta.get("namespace") or "default"
    identity = "%s_%s" % (meta.get("name", "gpu-operator"), meta.get("uid", ""))
    leader = "--leader-elect" in ctx.argv

    def loop(p):
        last = None
        engine = Operator(api, namespace, env=ctx.env, log=p.log)
        while not p.stopping:
            try:
                if leader and not _lease(api, namespace, identity, time.time()):
                    outcome = "waiting for the leader lease %s" % LEADER_LEASE
                else:
                    outcome = engine.reconcile()
            except Exception as err:  # noqa: BLE001 - keep running like a controller
                outcome = "reconcile error: %s" % err
            if outcome != last:
                p.log(outcome)
                last = outcome
            p._stop.wait(LOOP_SECONDS)
    proc.run_in_background(loop)
    return proc


def driver_container(ctx, process_class):
    """nvcr.io/nvidia/driver, command nvidia-driver init (NVIDIA/gpu-driver-container
    nvidia-driver init: builds and loads the kernel modules, then waits): running and ready.
    Nothing is built or loaded; the version is the image tag's."""
    tag = ctx.container.get("image", "").rsplit(":", 1)[-1]
    return process_class(logs=["DRIVER_VERSION=%s" % tag.split("-", 1)[0],
                               "Starting the NVIDIA driver container %s (simulated: no kernel module built or loaded)"
                               % tag, "Done, now waiting for signal"])


def driver_manager(ctx, process_class, exited):
    """nvcr.io/nvidia/cloud-native/k8s-driver-manager, driver-manager uninstall_driver (the
    driver pod's init container: evicts the GPU operands, unloads the old modules, exits 0).
    Not simulated beyond its exit."""
    return exited(0, ["Uninstalling the NVIDIA driver (simulated: no operand evicted, no module unloaded)"])
