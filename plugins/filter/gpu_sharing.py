# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters over the device plugin's sharing and CDI settings (plugins/plugin_utils/_gpu_sharing.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu_sharing
short_description: The device plugin's GPU sharing (time-slicing, MPS), its config file, and CDI
description:
  - >-
    The input is a mapping of settings by variable name (C(nvidia_device_plugin_mig_strategy),
    C(nvidia_device_plugin_time_slicing_*), C(nvidia_device_plugin_mps_*),
    C(nvidia_device_plugin_device_list_strategy), C(kubegpu_cdi), C(container_runtime_nvidia_cdi),
    C(kubegpu_gpu_operator)); a missing one takes its default. The rules live in plugins/plugin_utils/_gpu_sharing.py.
  - >-
    C(gpu_sharing) gives C(strategy) (none, time-slicing or mps), C(replicas), C(rename_by_default) and
    C(fail_requests_greater_than_one) - MPS when C(nvidia_device_plugin_mps_replicas) is above 1, else time-slicing
    when C(nvidia_device_plugin_time_slicing_replicas) is, else none (k8s-device-plugin api/config/v1/sharing.go).
  - >-
    C(gpu_sharing_problems(facts=None)) gives the problem records (C(variable), C(problem), C(fix)) that preflight
    and the nvidia_device_plugin stage refuse; C(facts) is the host's C(kubegpu_gpu) facts.
  - >-
    C(nvidia_device_plugin_config(mps_root, extra_plugin_flags)) gives the device plugin's config file
    (C(version v1)) as data.
  - >-
    C(nvidia_device_plugin_manifests(runtime_class=false)) gives the manifests the device plugin stage applies, in
    order - the RuntimeClass (with C(runtime_class)), the device plugin, the MPS control daemon (MPS sharing), GPU
    Feature Discovery and the DCGM exporter (C(nvidia_device_plugin_gfd_enabled),
    C(nvidia_device_plugin_dcgm_exporter_enabled)).
  - >-
    C(gpu_cdi_enabled) says whether GPU nodes run with CDI - C(container_runtime_nvidia_cdi) where it is set, else
    C(kubegpu_cdi).
author: kubegpu maintainers
options:
  _input:
    description: The settings, a mapping of variable name to value.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Say how the device plugin shares GPUs
  ansible.builtin.debug:
    msg: "{{ {'nvidia_device_plugin_mps_replicas': 4} | kubegpu.cluster.gpu_sharing }}"
"""

RETURN = r"""
_value:
  description: The sharing, the problem records, the config file as data, or a boolean.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean


def _settings(settings, name):
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise AnsibleFilterError("%s: the input must be a mapping of settings, not %s" % (name, type(settings).__name__))
    return settings


def gpu_sharing(settings):
    """The device plugin's sharing strategy, replicas and flags (see _gpu_sharing.sharing)."""
    return _gpu_sharing.sharing(_settings(settings, "gpu_sharing"), boolean)


def gpu_sharing_problems(settings, facts=None):
    """Problem records of the sharing and CDI settings (see _gpu_sharing.sharing_problems)."""
    return _gpu_sharing.sharing_problems(_settings(settings, "gpu_sharing_problems"), boolean, facts)


def nvidia_device_plugin_config(settings, mps_root="/run/nvidia/mps", extra_plugin_flags=None):
    """The device plugin's config file as data (see _gpu_sharing.plugin_config)."""
    return _gpu_sharing.plugin_config(_settings(settings, "nvidia_device_plugin_config"), boolean,
                                      mps_root=mps_root, extra_plugin_flags=extra_plugin_flags)


def nvidia_device_plugin_manifests(settings, runtime_class=False):
    """The manifests the device plugin stage applies, in order (see _gpu_sharing.plugin_manifests)."""
    return _gpu_sharing.plugin_manifests(_settings(settings, "nvidia_device_plugin_manifests"), boolean,
                                         runtime_class=boolean(runtime_class))


def gpu_cdi_enabled(settings):
    """Whether GPU nodes run with CDI (see _gpu_sharing.cdi_enabled)."""
    return _gpu_sharing.cdi_enabled(_settings(settings, "gpu_cdi_enabled"), boolean)


class FilterModule:
    """kubegpu GPU sharing filters."""

    def filters(self):
        return {
            "gpu_sharing": gpu_sharing,
            "gpu_sharing_problems": gpu_sharing_problems,
            "nvidia_device_plugin_config": nvidia_device_plugin_config,
            "gpu_cdi_enabled": gpu_cdi_enabled,
            "nvidia_device_plugin_manifests": nvidia_device_plugin_manifests,
        }
