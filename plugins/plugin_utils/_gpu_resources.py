# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: the extended resources NVIDIA's device plugin advertises on a node,
from the node's GPU facts (kubegpu.cluster.gpu_facts) and the plugin's settings - and
what a node's allocatable lacks against them. validate, add_node.yml and
upgrade_driver.yml all compare with these two functions (docs/contracts.md).

The rules follow NVIDIA/k8s-device-plugin (read at commit 1b826acc, 2026-08):

- internal/rm/rm.go ``AddDefaultResourcesToConfig``: every full GPU matches resource
  ``gpu`` (``nvidia.com/gpu``); migStrategy ``single`` maps every MIG device to ``gpu``
  too; ``mixed`` maps each MIG profile whose compute and GPU slice counts agree to
  ``mig-<profile>`` with ``+`` replaced by ``.`` (``nvidia.com/mig-1g.10gb``).
- internal/rm/device_map.go ``buildGPUDeviceMap``: a GPU with MIG enabled is skipped
  as a full GPU unless migStrategy is ``none`` (then it is advertised as a whole GPU,
  its MIG devices are not); ``buildDeviceMapFromConfigResources``: with ``single``, MIG
  and non-MIG GPUs on one node is an error ("all devices on the node must be configured
  with the same migEnabled value"), and ``assertAllMigDevicesAreValid`` requires every
  MIG-enabled GPU to have MIG devices, all of one type.
- internal/rm/device_map.go ``updateDeviceMapWithReplicas`` with api/config/v1
  replicas.go and consts.go: time-slicing of ``nvidia.com/gpu`` with ``replicas`` r
  advertises r devices per device; with ``renameByDefault`` they are advertised as
  ``nvidia.com/gpu.shared`` (``DefaultSharedResourceNameSuffix``) instead. Only the
  resources named in the sharing block are replicated: kubegpu's config names
  ``nvidia.com/gpu`` (plugin_utils/_gpu_sharing.plugin_config), so with ``mixed`` the
  ``nvidia.com/mig-<profile>`` devices stay one each.
- MPS (api/config/v1/sharing.go ``SharingStrategy``) replicates the same way
  (``updateDeviceMapWithReplicas`` is given ``ReplicatedResources()``, the MPS block), but
  cmd/nvidia-device-plugin/main.go ``validateFlags`` refuses MPS with ``mixed`` and
  internal/plugin/mps.go ``getMPSOptions`` refuses MPS over MIG devices: the plugin then
  advertises nothing.

kubegpu.cluster.gpu_facts reports per GPU whether MIG is enabled (``mig_mode_current``)
but not its MIG devices (instances and profiles). Where a GPU's facts carry a list
``mig_devices`` (profile names, or dicts with ``profile``) the count is exact; without
it a MIG-enabled GPU is expected to give at least one device (the plugin's own rule),
and with ``mixed`` at least one ``nvidia.com/mig-*`` resource.
"""

from __future__ import annotations

import re

GPU = "nvidia.com/gpu"
SHARED_SUFFIX = ".shared"
MIG_PREFIX = "nvidia.com/mig-"
MIG_ANY = MIG_PREFIX + "*"
STRATEGIES = ("none", "single", "mixed")
_SPLIT_COMPUTE = re.compile(r"^\d+c\.")
SHARING = ("none", "time-slicing", "mps")


class GpuResourcesError(ValueError):
    """Settings the device plugin itself refuses."""


def _mig_enabled(gpu):
    return gpu.get("mig_mode_current") == "enabled"


def _mig_profiles(gpu):
    devices = gpu.get("mig_devices")
    if devices is None:
        return None
    return [d.get("profile") if isinstance(d, dict) else str(d) for d in devices]


def expected_resources(facts, mig_strategy="none", replicas=1, rename_by_default=False, sharing=None):
    """What the device plugin advertises on a node with these GPU facts.

    ``replicas`` > 1 shares ``nvidia.com/gpu`` the way ``sharing`` says (``time-slicing``,
    the default, or ``mps``; plugin_utils/_gpu_sharing.sharing gives all three settings).

    Returns ``{"resources": {name: {"count": n, "exact": bool}}, "problems": [...],
    "notes": [...]}``. ``exact`` false means "at least n" (MIG devices unknown); the name
    ``nvidia.com/mig-*`` stands for the sum of all ``nvidia.com/mig-<profile>``.
    ``problems`` are configurations the plugin refuses on this node.
    """
    if mig_strategy not in STRATEGIES:
        raise GpuResourcesError("mig strategy %r is not one of %s" % (mig_strategy, ", ".join(STRATEGIES)))
    replicas = max(int(replicas or 1), 1)
    sharing = str(sharing or "time-slicing")
    if sharing not in SHARING:
        raise GpuResourcesError("sharing %r is not one of %s" % (sharing, ", ".join(SHARING)))
    if sharing == "none":
        replicas = 1
    gpus = (facts or {}).get("gpus") or []
    count = int((facts or {}).get("count") or len(gpus))
    resources, problems, notes = {}, [], []

    def add(name, n, exact=True):
        entry = resources.setdefault(name, {"count": 0, "exact": True})
        entry["count"] += n
        entry["exact"] = entry["exact"] and exact

    full = [g for g in gpus if mig_strategy == "none" or not _mig_enabled(g)]
    mig = [g for g in gpus if mig_strategy != "none" and _mig_enabled(g)]
    # GPUs counted by gpu_facts but without per-GPU details are full GPUs.
    full_count = len(full) + max(count - len(gpus), 0)
    if mig_strategy == "none" and any(_mig_enabled(g) for g in gpus):
        notes.append("MIG is enabled on %d GPU(s) but the device plugin's migStrategy is none: "
                     "they are advertised as whole GPUs" % sum(1 for g in gpus if _mig_enabled(g)))
    if mig_strategy == "single" and mig and full_count:
        problems.append("migStrategy single needs MIG enabled on all GPUs or none (%d with MIG, %d without); "
                        "the device plugin refuses this node" % (len(mig), full_count))

    gpu_exact = True
    gpu_count = full_count
    for gpu in mig:
        profiles = _mig_profiles(gpu)
        index = gpu.get("index", "?")
        if profiles is not None and not profiles:
            problems.append("GPU %s has MIG enabled but no MIG devices" % index)
            continue
        if mig_strategy == "single":
            if profiles is None:
                gpu_count += 1
                gpu_exact = False
            else:
                gpu_count += len(profiles)
        else:  # mixed
            if profiles is None:
                add(MIG_ANY, 1, exact=False)
            else:
                for profile in profiles:
                    if _SPLIT_COMPUTE.match(str(profile)):
                        # internal/rm/device_map.go buildMigDeviceMap: a compute instance
                        # smaller than its GPU instance ("1c.3g.40gb", C != G) matches no
                        # default resource pattern, and the plugin refuses the node.
                        problems.append("GPU %s: MIG device %s (a compute instance smaller than its GPU instance) "
                                        "matches no resource of migStrategy mixed; the device plugin refuses "
                                        "this node" % (index, profile))
                        continue
                    add(MIG_PREFIX + str(profile).replace("+", "."), 1)
    if mig_strategy == "single":
        # assertAllMigDevicesAreValid(uniform): one MIG device type on the whole node.
        kinds = sorted(set(p for g in mig for p in (_mig_profiles(g) or [])))
        if len(kinds) > 1:
            problems.append("migStrategy single needs one MIG profile on the node, found %s; the device plugin"
                            " refuses this node (\"more than one MIG device type present on node\")" % ", ".join(kinds))
    if mig and any(_mig_profiles(g) is None for g in mig):
        notes.append("gpu_facts does not report MIG devices: expecting at least one per MIG-enabled GPU")

    if replicas > 1 and sharing == "mps":
        refused = None
        if mig_strategy == "mixed":
            refused = "MPS with migStrategy mixed: the device plugin refuses to start"
        elif mig_strategy == "single" and mig:
            refused = "MPS over MIG devices (%d MIG-enabled GPU(s), migStrategy single): the device plugin refuses" \
                      " to start" % len(mig)
        if refused:
            problems.append(refused)
            return {"resources": {}, "problems": problems, "notes": notes}

    if count or gpus:
        name = GPU
        if replicas > 1:
            name = GPU + SHARED_SUFFIX if rename_by_default else GPU
            notes.append("%s: %d replicas per device" % (sharing, replicas))
        if gpu_count or mig_strategy != "mixed" or not mig:
            add(name, gpu_count * replicas, exact=gpu_exact)
    return {"resources": resources, "problems": problems, "notes": notes}


def _allocatable_ints(allocatable):
    values = {}
    for name, value in (allocatable or {}).items():
        try:
            values[name] = int(str(value).strip())
        except ValueError:
            continue
    return values


def resource_problems(allocatable, expected):
    """Why a node's allocatable (name -> quantity) does not meet ``expected`` (from
    :func:`expected_resources`): one message per resource, [] when it does."""
    have = _allocatable_ints(allocatable)
    messages = list(expected.get("problems") or [])
    for name, want in sorted((expected.get("resources") or {}).items()):
        if name == MIG_ANY:
            got = sum(v for k, v in have.items() if k.startswith(MIG_PREFIX))
            shown = "nvidia.com/mig-<profile>"
        else:
            got = have.get(name, 0)
            shown = name
        ok = got == want["count"] if want["exact"] else got >= want["count"]
        if not ok:
            messages.append("allocatable %s is %d, expected %s%d"
                            % (shown, got, "" if want["exact"] else "at least ", want["count"]))
    return messages


def summary(allocatable, expected):
    """``name have/want`` per expected resource, for the report (``nvidia.com/gpu 8/8``)."""
    have = _allocatable_ints(allocatable)
    parts = []
    for name, want in sorted((expected.get("resources") or {}).items()):
        if name == MIG_ANY:
            got = sum(v for k, v in have.items() if k.startswith(MIG_PREFIX))
        else:
            got = have.get(name, 0)
        parts.append("%s %d/%s%d" % (name.replace("nvidia.com/", ""), got, "" if want["exact"] else ">=", want["count"]))
    return ", ".join(parts) or "-"


def job_resource(requested, extended, expected):
    """The extended resource a test Job requests on a node (roles/validate): ``requested``
    when set, else the first resource the node advertises (``extended``, in the node's
    order) that ``expected`` names, else its first ``nvidia.com/mig-<profile>`` (MIG mixed
    with the profiles unknown), else ``nvidia.com/gpu``."""
    if requested:
        return requested
    advertised = list(extended or {})
    names = (expected or {}).get("resources") or {}
    for name in advertised:
        if name in names:
            return name
    for name in advertised:
        if name.startswith(MIG_PREFIX):
            return name
    return GPU
