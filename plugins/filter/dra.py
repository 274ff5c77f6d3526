# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters of DRA mode (kubegpu_gpu_allocation: dra); the rules live in plugins/plugin_utils/_dra.py."""

from __future__ import annotations

DOCUMENTATION = r"""
name: dra
short_description: DRA mode's rules (kubegpu_gpu_allocation dra)
description:
  - C(dra_mode_problems) takes the DRA mode settings (C(kubegpu_gpu_allocation), C(kubernetes_version),
    C(kubegpu_gpu_operator), C(kubegpu_cdi) and the device plugin's sharing settings) and returns problem records
    (C(variable), C(problem), C(fix)); [] outside DRA mode. Preflight calls the same function.
  - C(dra_node_slice_problems(node_name, gpu_count)) takes C(kubectl get resourceslices -o json)'s output (text or
    parsed) and returns lines saying that the node publishes fewer GPU devices of driver C(gpu.nvidia.com) than
    C(gpu_count); [] when it publishes them all. C(dra_node_slice_summary(node_name, gpu_count)) gives
    C(gpu.nvidia.com <published>/<expected>) for validate's report.
  - C(dra_driver_root_parent) gives the host directory above the NVIDIA driver root (input C(nvidia_dra_driver_driver_root)),
    C(/) for C(/).
author: kubegpu maintainers
options:
  _input:
    description: The settings, or the ResourceSlice list.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Refuse DRA settings the DRA driver cannot work with
  ansible.builtin.fail:
    msg: "{{ _problems | kubegpu.cluster.format_problems(inventory_hostname) | join('; ') }}"
  vars:
    _problems: "{{ {'kubegpu_gpu_allocation': 'dra', 'kubernetes_version': '1.35.4'} | kubegpu.cluster.dra_mode_problems }}"
  when: _problems | length > 0
"""

RETURN = r"""
_value:
  description: Problem records, or lines.
  type: list
"""

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _dra
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean


def dra_mode_problems(settings):
    """Problem records of DRA mode's settings (see _dra.mode_problems)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("dra_mode_problems expects a mapping of setting to value")
    return _dra.mode_problems(dict(settings), boolean)


def _slices(slices, name):
    if isinstance(slices, str):
        try:
            return json.loads(slices or '{"items": []}')
        except ValueError as exc:
            raise AnsibleFilterError("%s: kubectl's answer could not be read: %s" % (name, exc)) from exc
    return slices


def dra_node_slice_problems(slices, node_name, gpu_count):
    """What a GPU node's ResourceSlices lack (see _dra.node_slice_problems)."""
    return _dra.node_slice_problems(_slices(slices, "dra_node_slice_problems"), str(node_name), gpu_count)


def dra_node_slice_summary(slices, node_name, gpu_count):
    """``gpu.nvidia.com <published>/<expected>`` for validate's report (see _dra.node_slice_summary)."""
    return _dra.node_slice_summary(_slices(slices, "dra_node_slice_summary"), str(node_name), gpu_count)


def dra_driver_root_parent(driver_root):
    """The host directory above the NVIDIA driver root (see _dra.driver_root_parent)."""
    return _dra.driver_root_parent(driver_root)


class FilterModule:
    """kubegpu DRA filters."""

    def filters(self):
        return {
            "dra_mode_problems": dra_mode_problems,
            "dra_node_slice_problems": dra_node_slice_problems,
            "dra_node_slice_summary": dra_node_slice_summary,
            "dra_driver_root_parent": dra_driver_root_parent,
        }
