# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters over the kubegpu_gpu facts: node labels and the driver plan."""

from __future__ import annotations

DOCUMENTATION = r"""
name: gpu
short_description: GPU node labels, driver plan and expected resources; the GPU Operator release
description:
  - C(gpu_node_labels) turns C(ansible_facts.kubegpu_gpu) (from M(kubegpu.cluster.gpu_facts)) into node labels.
  - C(gfd) gives the GPU Feature Discovery labels (C(nvidia.com/gpu.product), C(gpu.count), C(gpu.memory),
    C(gpu.family), C(gpu.compute.major|minor), C(cuda.driver-version.*), C(cuda.runtime-version.*),
    C(mig.capable), C(gpu.present)).
  - C(aliyun) gives C(aliyun.accelerator/nvidia_name|nvidia_count|nvidia_mem).
  - C(kubegpu) gives C(kubegpu.io/gpu.heterogeneous) and C(kubegpu.io/gpu.architectures); added on its own
    whenever a host mixes GPU models.
  - A host without GPUs gets an empty dict.
  - >-
    C(gpu_node_desired_labels(label_sets, strategy, gpu_node=true, mig_layout=None, mig_state=None, extra=None))
    gives every label stage 8 wants on the node: {} where C(gpu_node) is false, else C(gpu_node_labels), then
    C(nvidia.com/gpu.present=true), the MIG layout's C(nvidia.com/mig.config) labels and the C(extra) labels.
  - C(gpu_driver_plan(branch='auto', flavour='auto')) returns the driver branch and kernel-module flavour
    that drive every GPU of the host, whether the loaded driver satisfies it, and fails with a message naming
    the GPU and the variable to change (C(nvidia_driver_branch), C(nvidia_driver_flavour)) when the request
    cannot work. See docs/gpu_facts.md.
  - C(gpu_expected_resources(mig_strategy='none', replicas=1, rename_by_default=False)) gives the extended
    resources NVIDIA's device plugin advertises on a node with these GPU facts (C(nvidia.com/gpu),
    C(nvidia.com/gpu.shared), C(nvidia.com/mig-<profile>)), following k8s-device-plugin's rules
    (docs/contracts.md); C(gpu_resource_problems(allocatable)) and C(gpu_resource_summary(allocatable))
    compare a node's allocatable with them (input the expected resources).
  - >-
    C(gpu_job_resource(extended, expected)) gives the resource a validate test Job requests (input
    C(validate_gpu_resource)): that one when set, else the first of C(expected) the node advertises (C(extended),
    its allocatable), else its first C(nvidia.com/mig-<profile>), else C(nvidia.com/gpu).
  - >-
    GPU Operator mode (roles/gpu_operator, plugins/plugin_utils/_gpu_operator.py) - C(release) is the role's
    C(_gpu_operator_release_spec) (C(name), C(chart), C(version), C(namespace), C(values_file), C(values),
    C(timeout), C(repo_url)). C(gpu_operator_installed_release) is the release C(helm list --output json) shows
    (input its output), {} when none. C(gpu_operator_upgrade_argv(release)) gives the C(helm upgrade --install) command
    (input the helm program and its global options); C(gpu_operator_release_differs(current_values, release))
    is true where that command must run (input C(helm list --output json)'s output; C(current_values) the
    registered C(helm get values --output json)): the release is missing, not deployed, of another chart
    version or has other values.
author: kubegpu maintainers
options:
  _input:
    description: The kubegpu_gpu facts (the expected resources, the helm command or helm list's output where the
      filter's line above says so).
    type: raw
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
  description: Label name to value (all strings), a driver plan, the expected resources, problem lines, a summary,
    a helm command (list of arguments) or a boolean, as each filter's line above says.
  type: raw
"""

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_driver_plan = _lazy.Module("plugin_utils._driver_plan")
_gpu_labels = _lazy.Module("plugin_utils._gpu_labels")
_gpu_operator = _lazy.Module("plugin_utils._gpu_operator")
_gpu_resources = _lazy.Module("plugin_utils._gpu_resources")


def gpu_node_labels(facts, label_sets=None, strategy="first"):
    """Node labels for a host's kubegpu_gpu facts."""
    try:
        return _gpu_labels.node_labels(facts, label_sets=label_sets or ["gfd"], strategy=strategy)
    except ValueError as exc:
        raise AnsibleFilterError("gpu_node_labels: %s" % exc) from exc


def gpu_node_desired_labels(facts, label_sets=None, strategy="first", gpu_node=True, mig_layout=None, mig_state=None,
                            extra=None):
    """Every label stage 8 wants on the node (see _gpu_labels.desired_labels)."""
    try:
        return _gpu_labels.desired_labels(facts, label_sets=label_sets or ["gfd"], strategy=strategy,
                                          gpu_node=boolean(gpu_node, strict=False), mig_layout=mig_layout or None,
                                          mig_state=mig_state or None, extra=extra)
    except ValueError as exc:
        raise AnsibleFilterError("gpu_node_desired_labels: %s" % exc) from exc


def gpu_driver_plan(facts, branch="auto", flavour="auto"):
    """Driver branch and kernel-module flavour that drive every GPU on the host."""
    try:
        return _driver_plan.plan(facts, branch=branch, flavour=flavour)
    except _driver_plan.DriverPlanError as exc:
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


def gpu_job_resource(requested, extended, expected):
    """The resource a validate test Job requests on a node (see _gpu_resources.job_resource)."""
    return _gpu_resources.job_resource(requested, extended, expected)


def gpu_operator_upgrade_argv(helm, release):
    """The helm upgrade --install command of the GPU Operator release (see _gpu_operator.upgrade_argv)."""
    return _gpu_operator.upgrade_argv(helm, release)


def gpu_operator_installed_release(list_stdout):
    """The release helm list shows, {} when none (see _gpu_operator.installed_release)."""
    try:
        return _gpu_operator.installed_release(list_stdout)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise AnsibleFilterError("gpu_operator_installed_release: helm's answer could not be read: %s" % exc) from exc


def gpu_operator_release_differs(list_stdout, current_values, release):
    """Whether the installed GPU Operator release differs from the wanted one (see _gpu_operator.release_differs)."""
    try:
        return _gpu_operator.release_differs(list_stdout, current_values, release)
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise AnsibleFilterError("gpu_operator_release_differs: helm's answer could not be read: %s" % exc) from exc


class FilterModule:
    """kubegpu GPU filters."""

    def filters(self):
        return {
            "gpu_node_labels": gpu_node_labels,
            "gpu_node_desired_labels": gpu_node_desired_labels,
            "gpu_driver_plan": gpu_driver_plan,
            "gpu_expected_resources": gpu_expected_resources,
            "gpu_resource_problems": gpu_resource_problems,
            "gpu_resource_summary": gpu_resource_summary,
            "gpu_job_resource": gpu_job_resource,
            "gpu_operator_installed_release": gpu_operator_installed_release,
            "gpu_operator_upgrade_argv": gpu_operator_upgrade_argv,
            "gpu_operator_release_differs": gpu_operator_release_differs,
        }
