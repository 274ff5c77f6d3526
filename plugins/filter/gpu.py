# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters over the kubegpu_gpu facts: node labels and the driver plan."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu
short_description: GPU node labels and driver plan from the kubegpu_gpu facts
description:
  - C(gpu_node_labels) turns C(ansible_facts.kubegpu_gpu) (from M(kubegpu.cluster.gpu_facts)) into node labels.
  - C(gfd) gives the GPU Feature Discovery labels (C(nvidia.com/gpu.product), C(gpu.count), C(gpu.memory),
    C(gpu.family), C(gpu.compute.major|minor), C(cuda.driver-version.*), C(cuda.runtime-version.*),
    C(mig.capable), C(gpu.present)).
  - C(aliyun) gives C(aliyun.accelerator/nvidia_name|nvidia_count|nvidia_mem).
  - C(kubegpu) gives C(kubegpu.io/gpu.heterogeneous) and C(kubegpu.io/gpu.architectures); added on its own
    whenever a host mixes GPU models.
  - A host without GPUs gets an empty dict.
  - C(gpu_driver_plan(branch='auto', flavour='auto')) returns the driver branch and kernel-module flavour
    that drive every GPU of the host, whether the loaded driver satisfies it, and fails with a message naming
    the GPU and the variable to change (C(nvidia_driver_branch), C(nvidia_driver_flavour)) when the request
    cannot work. See docs/gpu_facts.md.
  - C(gpu_expected_resources(mig_strategy='none', replicas=1, rename_by_default=False)) gives the extended
    resources NVIDIA's device plugin advertises on a node with these GPU facts (C(nvidia.com/gpu),
    C(nvidia.com/gpu.shared), C(nvidia.com/mig-<profile>)), following k8s-device-plugin's rules
    (docs/contracts.md); C(gpu_resource_problems(allocatable)) and C(gpu_resource_summary(allocatable))
    compare a node's allocatable with them (input the expected resources).
author: kubegpu maintainers
options:
  _input:
    description: The kubegpu_gpu facts.
    type: dict
    required: true
  label_sets:
    description: Label sets to produce.
    type: list
    elements: str
    default: [gfd]
  strategy:
    description: Which GPU describes a host with several models, C(first) (GPU 0, as GFD does) or C(lowest)
      (lowest compute capability, then least memory).
    type: str
    default: first
"""

EXAMPLES = r"""
- name: Show the labels
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kubegpu_gpu | kubegpu.cluster.gpu_node_labels(label_sets=['gfd', 'aliyun']) }}"

- name: Plan the driver
  ansible.builtin.set_fact:
    _plan: "{{ ansible_facts.kubegpu_gpu | kubegpu.cluster.gpu_driver_plan(branch=nvidia_driver_branch, flavour=nvidia_driver_flavour) }}"
"""

RETURN = r"""
_value:
  description: Label name to value (all strings).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_plan import DriverPlanError
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_plan import plan as _plan
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._gpu_labels import node_labels
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources


def gpu_node_labels(facts, label_sets=None, strategy="first"):
    """Node labels for a host's kubegpu_gpu facts."""
    try:
        return node_labels(facts, label_sets=label_sets or ["gfd"], strategy=strategy)
    except ValueError as exc:
        raise AnsibleFilterError("gpu_node_labels: %s" % exc) from exc


def gpu_driver_plan(facts, branch="auto", flavour="auto"):
    """Driver branch and kernel-module flavour that drive every GPU on the host."""
    try:
        return _plan(facts, branch=branch, flavour=flavour)
    except DriverPlanError as exc:
        raise AnsibleFilterError("gpu_driver_plan: %s" % exc) from exc


def gpu_expected_resources(facts, mig_strategy="none", replicas=1, rename_by_default=False):
    """Extended resources the device plugin advertises on a node with these GPU facts."""
    try:
        return _gpu_resources.expected_resources(facts, mig_strategy=mig_strategy, replicas=replicas,
                                                 rename_by_default=rename_by_default)
    except (_gpu_resources.GpuResourcesError, ValueError, TypeError) as exc:
        raise AnsibleFilterError("gpu_expected_resources: %s" % exc) from exc


def gpu_resource_problems(expected, allocatable):
    """What a node's allocatable lacks against the expected resources ([] when none)."""
    return _gpu_resources.resource_problems(allocatable, expected)


def gpu_resource_summary(expected, allocatable):
    """``gpu 8/8`` per expected resource, for the validate report."""
    return _gpu_resources.summary(allocatable, expected)


class FilterModule:
    """kubegpu GPU filters."""

    def filters(self):
        return {
            "gpu_node_labels": gpu_node_labels,
            "gpu_driver_plan": gpu_driver_plan,
            "gpu_expected_resources": gpu_expected_resources,
            "gpu_resource_problems": gpu_resource_problems,
            "gpu_resource_summary": gpu_resource_summary,
        }
