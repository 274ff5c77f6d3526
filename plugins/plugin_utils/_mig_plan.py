# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side of MIG layouts: preflight's refusal and the mig.config node labels.

- ``layout_problems``: a ``nvidia_mig_layout`` the host's GPUs (this run's gpu_facts) cannot
  hold, or an unknown layout name or profile, as preflight problem records naming the
  variable and the fix. It calls plugins/module_utils/_mig.desired_layout, the function the
  module kubegpu.cluster.mig_layout refuses with on the host: one rule, two callers.
- ``config_labels``: ``nvidia.com/mig.config`` (the layout's name) and
  ``nvidia.com/mig.config.state`` (success / pending / failed, mig-manager's values:
  github:NVIDIA/mig-parted deployments/container/reconfigure-mig.sh) for a host, from its
  GPU facts; roles/gpu_node_labels puts them with the host's other labels.
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.module_utils import _mig
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources, _network

VARIABLE = "nvidia_mig_layout"
CONFIG_LABEL = "nvidia.com/mig.config"
STATE_LABEL = "nvidia.com/mig.config.state"
CUSTOM = "custom"
STATES = (_mig.STATE_SUCCESS, _mig.STATE_PENDING, _mig.STATE_FAILED)


def _unset(layout):
    return layout is None or (isinstance(layout, str) and layout.strip() == "")


def gpus_of(gpu_facts):
    """The GPUs of a kubegpu_gpu fact as _mig.desired_layout reads them."""
    return [{"index": g.get("index", i), "name": g.get("name"), "device_id": g.get("pci_device_id")}
            for i, g in enumerate((gpu_facts or {}).get("gpus") or [])]


def _fix(gpus):
    products = []
    for gpu in gpus:
        product = _mig.product_for(gpu.get("name"), gpu.get("device_id"))
        if product and product not in products:
            products.append(product)
    if not products:
        return ("set %s: all-disabled on this host, or remove it (kubegpu knows MIG profiles for %s)"
                % (VARIABLE, ", ".join(_mig.PRODUCTS[k]["label"] for k in sorted(_mig.PRODUCTS))))
    spec = _mig.PRODUCTS[products[0]]
    profiles = sorted(spec["profiles"], key=_mig._size_key)
    return ("set %s to all-balanced, all-<profile> or one list of profiles per GPU that fits the %s: profiles %s, "
            "at most %d compute and %d memory slices per GPU (NVIDIA MIG User Guide, Supported MIG Profiles)"
            % (VARIABLE, spec["label"], ", ".join(profiles), spec["compute_slices"], spec["memory_slices"]))


def future_facts(gpu_facts, desired):
    """The GPU facts as they will read once ``desired`` ({index: None | [profiles]}) is applied."""
    future = dict(gpu_facts or {})
    gpus = []
    for gpu in (gpu_facts or {}).get("gpus") or []:
        gpu = dict(gpu)
        index = gpu.get("index")
        if index in desired:
            profiles = desired[index]
            gpu["mig_mode_current"] = gpu["mig_mode_pending"] = "disabled" if profiles is None else "enabled"
            if profiles is None:
                gpu.pop("mig_devices", None)
            else:
                gpu["mig_devices"] = [{"profile": p} for p in _mig.creation_order(profiles)]
        gpus.append(gpu)
    future["gpus"] = gpus
    return future


def strategy_problems(gpu_facts, desired, mig_strategy):
    """What the device plugin would refuse with this layout and its MIG strategy: the rules of
    _gpu_resources.expected_resources (k8s-device-plugin's), on the facts the layout will give."""
    if not mig_strategy or mig_strategy not in _gpu_resources.STRATEGIES:
        return []      # the argument spec check names it
    expected = _gpu_resources.expected_resources(future_facts(gpu_facts, desired), mig_strategy=mig_strategy)
    return ["with nvidia_device_plugin_mig_strategy: %s, %s" % (mig_strategy, text) for text in expected["problems"]]


def layout_problems(gpu_facts, layout, variable=VARIABLE, gpu_operator=False, boolean=bool, mig_strategy=None):
    """Problem records for a MIG layout on a host with these GPU facts; [] when it fits or is unset.

    ``gpu_operator``: the host's kubegpu_gpu_operator (read with ``boolean``); in GPU Operator
    mode the operator's mig-manager owns MIG, and kubegpu's layout is refused.
    ``mig_strategy``: nvidia_device_plugin_mig_strategy; a layout the device plugin would
    refuse with it (``single`` with MIG on some GPUs only, or more than one profile) is refused."""
    if _unset(layout):
        return []
    try:
        operator = boolean(gpu_operator) if gpu_operator not in (None, "") else False
    except TypeError:
        operator = False    # the argument spec check names it
    if operator:
        return [_network.problem(
            variable, "set in GPU Operator mode (kubegpu_gpu_operator: true), where the operator's mig-manager "
            "changes MIG layouts (node label nvidia.com/mig.config)",
            "remove %s from this host and label the node nvidia.com/mig.config=<layout> for mig-manager, "
            "or use kubegpu's device plugin (kubegpu_gpu_operator: false)" % variable)]
    gpus = gpus_of(gpu_facts)
    desired, problems = _mig.desired_layout(layout, gpus)
    if not problems:
        return [_network.problem(variable, text, "set nvidia_device_plugin_mig_strategy: mixed (one resource per "
                                 "profile), or give every GPU MIG and the same single profile")
                for text in strategy_problems(gpu_facts, desired, mig_strategy)]
    fix = _fix(gpus)
    return [_network.problem(variable, text, fix) for text in problems]


def config_name(layout):
    """The nvidia.com/mig.config value: the layout's name, or ``custom`` for a per-GPU list."""
    if _unset(layout):
        return None
    return layout if isinstance(layout, str) else CUSTOM


def _facts_reading(gpu_facts):
    """The facts in _mig.current_layout's shape: one GPU instance per MIG device, with one
    compute instance of the same profile (a 1c.3g.20gb device reads as a profile of its own, so
    a GPU split into smaller compute instances is not the layout). Instances None: unknown."""
    current = {}
    for gpu in (gpu_facts or {}).get("gpus") or []:
        devices = gpu.get("mig_devices")
        instances = None
        if devices is not None:
            instances = []
            for device in devices:
                profile = device.get("profile") if isinstance(device, dict) else str(device)
                instances.append({"gi_id": None, "profile": profile, "placement": None,
                                  "cis": [{"ci_id": None, "profile": profile}]})
        current[gpu.get("index")] = {"name": gpu.get("name"), "mode_current": gpu.get("mig_mode_current"),
                                     "mode_pending": gpu.get("mig_mode_pending"), "instances": instances}
    return current


def layout_state(gpu_facts, layout):
    """success when the facts show the layout on every GPU, pending otherwise (not applied yet,
    a MIG mode waiting for a reset, MIG devices not readable), failed when the layout is refused."""
    if _unset(layout):
        return None
    desired, problems = _mig.desired_layout(layout, gpus_of(gpu_facts))
    if problems:
        return _mig.STATE_FAILED
    current = _facts_reading(gpu_facts)
    for index, profiles in desired.items():
        gpu = current.get(index)
        if gpu is None:
            return _mig.STATE_PENDING
        if profiles and gpu["instances"] is None:
            return _mig.STATE_PENDING
        reading = dict(gpu, instances=gpu["instances"] or [])
        if not _mig.gpu_matches(reading, profiles):
            return _mig.STATE_PENDING
    return _mig.STATE_SUCCESS


def config_labels(gpu_facts, layout, state=None):
    """The mig.config labels of a host; {} when it has no nvidia_mig_layout. ``state`` (one of
    STATES) overrides what the facts say (the nvidia_mig role passes ``failed`` after a failed apply)."""
    name = config_name(layout)
    if name is None:
        return {}
    if state not in (None, "") and state not in STATES:
        raise ValueError("MIG config state %r is not one of %s" % (state, ", ".join(STATES)))
    return {CONFIG_LABEL: name, STATE_LABEL: state or layout_state(gpu_facts, layout)}
