# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters of the containerized driver mode (nvidia_driver_mode: container); the rules live in
plugins/plugin_utils/_driver_container.py and the chart values in plugins/plugin_utils/_gpu_operator.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: driver_container
short_description: Containerized driver mode (nvidia_driver_mode container) and the GPU Operator's driver values
description:
  - C(nvidia_driver_mode_problems) takes the driver mode settings (C(nvidia_driver_mode), C(kubegpu_gpu_operator),
    C(container_runtime_nvidia_toolkit_install), C(gpu_operator_values) and the C(gpu_operator_driver_*) settings)
    and returns problem records (C(variable), C(problem), C(fix)); [] in host mode. Preflight calls the same
    function.
  - >-
    C(nvidia_driver_container_plan(os_facts, variables, mode=None)) takes a GPU node's C(ansible_facts.kubegpu_gpu)
    and returns what the nvidia_driver stage does there in container mode (C(variables) is
    C(hostvars[inventory_hostname]) - each setting as set for the host, else its role's default; C(mode) the stage's
    C(nvidia_driver_mode)) - C(packages) (none), C(unload_nouveau),
    C(precompiled_available), C(problems) (the host driver already there, Secure Boot without signed modules,
    precompiled containers asked for where NVIDIA builds none, a branch that cannot drive the GPUs) and
    C(summary).
  - >-
    C(gpu_operator_driver_values(hostvars, hosts)) takes the same settings and returns the chart's C(driver)
    values - C(enabled=false) in host mode; in container mode C(enabled), C(usePrecompiled) (auto - only when
    NVIDIA builds precompiled driver containers for every GPU node among C(hosts), from their facts of this run),
    C(version) and C(upgradePolicy).
  - >-
    C(gpu_operator_driver_rollout(version, namespace)) takes C(kubectl get nodes,daemonsets --all-namespaces -o json)'s
    output (text or parsed) and returns C(done), C(failed) (nodes labelled
    C(nvidia.com/gpu-driver-upgrade-state=upgrade-failed)) and C(summary) of the Operator's rolling upgrade to driver
    C(version): every driver DaemonSet (C(app.kubernetes.io/component=nvidia-driver)) of C(namespace) runs that
    version, updated and available on every node it wants.
author: kubegpu maintainers
options:
  _input:
    description: The settings, the GPU facts, or kubectl's list of nodes and DaemonSets.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse driver mode settings the GPU Operator cannot work with
  ansible.builtin.fail:
    msg: "{{ _problems | kubegpu.cluster.format_problems(inventory_hostname) | join('; ') }}"
  vars:
    _problems: "{{ {'nvidia_driver_mode': 'container', 'kubegpu_gpu_operator': true} | kubegpu.cluster.nvidia_driver_mode_problems }}"
  when: _problems | length > 0
"""

RETURN = r"""
_value:
  description: Problem records, the host plan, the chart's driver values, or the rollout's state.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_dc = _lazy.Module("plugin_utils._driver_container")
_gpu_operator = _lazy.Module("plugin_utils._gpu_operator")
_inventory = _lazy.Module("plugin_utils._preflight_inventory")
_specs = _lazy.Module("plugin_utils._preflight_specs")


def _mapping(value, name):
    if not isinstance(value, dict):
        raise AnsibleFilterError("%s expects a mapping of setting to value" % name)
    return dict(value)


def nvidia_driver_mode_problems(settings):
    """Problem records of the driver mode's settings (see _driver_container.mode_problems)."""
    return _dc.mode_problems(_mapping(settings, "nvidia_driver_mode_problems"), _inventory.boolean)


def nvidia_driver_container_plan(gpu_facts, os_facts, variables, mode=None):
    """What stage 3 does on a GPU node in container mode (see _driver_container.host_plan).

    ``variables``: the host's variables (``hostvars[inventory_hostname]``): the settings SET
    for it, else the owning role's default, as preflight reads them (another role's defaults
    are not visible in stage 3); ``mode``: ``nvidia_driver_mode`` as the stage sees it."""
    settings = _specs.settings(variables if variables is not None else {}, _dc.SETTINGS)
    if mode is not None:
        settings[_dc.MODE] = mode
    return _dc.host_plan(dict(gpu_facts or {}), dict(os_facts or {}), settings, _inventory.boolean)


def gpu_operator_driver_values(settings, hostvars, hosts):
    """The chart's driver values (see _gpu_operator.driver_values, _gpu_operator.gpu_nodes_os)."""
    return _gpu_operator.driver_values(_mapping(settings, "gpu_operator_driver_values"),
                                       _gpu_operator.gpu_nodes_os(hostvars, list(hosts or [])),
                                       _inventory.boolean)


def gpu_operator_driver_rollout(objects, version, namespace):
    """The Operator's rolling driver upgrade (see _gpu_operator.driver_rollout)."""
    try:
        return _gpu_operator.driver_rollout(objects, version, namespace)
    except ValueError as exc:
        raise AnsibleFilterError("gpu_operator_driver_rollout: kubectl's answer could not be read: %s" % exc) from exc


class FilterModule:
    """kubegpu containerized driver mode filters."""

    def filters(self):
        return {
            "nvidia_driver_mode_problems": nvidia_driver_mode_problems,
            "nvidia_driver_container_plan": nvidia_driver_container_plan,
            "gpu_operator_driver_values": gpu_operator_driver_values,
            "gpu_operator_driver_rollout": gpu_operator_driver_rollout,
        }
