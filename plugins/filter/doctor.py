# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters of playbooks/doctor.yml: Xid events, a node's checks, the fleet report and its table."""

from __future__ import annotations

DOCUMENTATION = r"""
name: doctor
short_description: GPU node health checks of playbooks/doctor.yml
description:
  - C(gpu_xid_events) takes kernel-log text (C(journalctl -k), C(dmesg)) and returns the NVIDIA Xid events in it,
    each with its code, GPU (PCI bus id), pid, message, meaning, NVIDIA's immediate action and a severity
    (C(fail) where the GPU needs a reset or the node a reboot, else C(warn)).
  - >-
    C(doctor_node_report(context)) takes this run's C(ansible_facts.kubegpu_gpu) and, in C(context), what the
    doctor role read for the host (C(host), C(node_name), C(gpu_node), C(kubernetes_nodes), the registered
    results C(kernel_log) and C(host_state), the C(reboot_marker) path, C(first_control_plane) and its two
    kubectl answers C(nodes) and C(pods), and the settings C(mig_strategy), C(replicas), C(rename_by_default),
    C(label_sets); the role's C(_doctor_node_context)) and returns the node's report - every check of
    docs/doctor.md with status C(ok), C(warn), C(fail) or C(skip) - and whether the node is healthy (no check
    failed).
  - C(doctor_fleet_report) takes the node reports and returns the JSON document of
    docs/doctor.schema.json; C(doctor_table) renders it as text.
  - The rules are in plugins/plugin_utils/_doctor.py and plugins/module_utils/_gpu_health.py.
author: kubegpu maintainers
options:
  _input:
    description: Kernel-log text, the GPU facts, the node reports or the fleet report.
    type: raw
    required: true
"""

RETURN = r"""
_value:
  description: Xid events, a node report, the fleet report, or a text table.
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_gpu_health = _lazy.Module("module_utils._gpu_health")
_doctor = _lazy.Module("plugin_utils._doctor")
_preflight_inventory = _lazy.Module("plugin_utils._preflight_inventory")


def gpu_xid_events(text):
    """Xid events of kernel-log text, oldest first."""
    return _gpu_health.parse_xid_lines(str(text or ""))


def doctor_node_report(facts, context):
    """One node's doctor report from what the doctor role read (see _doctor.node_report_from_context)."""
    if not isinstance(facts, Mapping):
        raise AnsibleFilterError("doctor_node_report expects the kubegpu_gpu facts (a mapping)")
    if not isinstance(context, Mapping):
        raise AnsibleFilterError("doctor_node_report expects the doctor role's context (a mapping)")
    try:
        return _doctor.node_report_from_context(facts, context, boolean=_preflight_inventory.boolean)
    except TypeError as exc:
        raise AnsibleFilterError("doctor_node_report: %s" % exc) from exc


def doctor_fleet_report(nodes):
    """The fleet report (docs/doctor.schema.json), with this collection's version."""
    if not isinstance(nodes, (list, tuple)):
        raise AnsibleFilterError("doctor_fleet_report expects a list of node reports")
    return _doctor.fleet_report(list(nodes), _doctor.collection_version())


def doctor_table(report):
    """The fleet report as a text table."""
    return _doctor.table(report)


class FilterModule:
    """kubegpu doctor filters."""

    def filters(self):
        return {
            "gpu_xid_events": gpu_xid_events,
            "doctor_node_report": doctor_node_report,
            "doctor_fleet_report": doctor_fleet_report,
            "doctor_table": doctor_table,
        }
