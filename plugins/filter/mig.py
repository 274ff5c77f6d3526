# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters over MIG layouts: the mig.config node labels and preflight's check."""

from __future__ import annotations

DOCUMENTATION = r"""
name: mig
short_description: MIG layout labels and checks
description:
  - C(mig_config_labels(layout, state=None)) gives the node labels C(nvidia.com/mig.config) (the layout's name,
    C(custom) for a per-GPU list) and C(nvidia.com/mig.config.state) (C(success), C(pending), C(failed), mig-manager's
    values) for a host, from its C(ansible_facts.kubegpu_gpu); an empty dict when the layout is unset.
  - C(mig_layout_problems(layout)) gives the preflight problem records (variable, problem, fix) of a layout the
    host's GPUs cannot hold, from the same check as M(kubegpu.cluster.mig_layout).
options:
  _input:
    description: The host's C(ansible_facts.kubegpu_gpu).
    type: dict
    required: true
  layout:
    description: The value of C(nvidia_mig_layout).
    type: raw
  state:
    description: C(mig_config_labels) only; overrides the state the facts give.
    type: str
"""

EXAMPLES = r"""
- name: MIG labels of the host
  ansible.builtin.debug:
    msg: "{{ ansible_facts.kubegpu_gpu | kubegpu.cluster.mig_config_labels(nvidia_mig_layout) }}"
"""

RETURN = r"""
_value:
  description: A dict of labels (C(mig_config_labels)) or a list of problem records (C(mig_layout_problems)).
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_mig_plan = _lazy.Module("plugin_utils._mig_plan")


def mig_config_labels(facts, layout=None, state=None):
    try:
        return _mig_plan.config_labels(facts, layout, state=state)
    except ValueError as exc:
        raise AnsibleFilterError("mig_config_labels: %s" % exc) from exc


def mig_layout_problems(facts, layout=None):
    return _mig_plan.layout_problems(facts, layout)


class FilterModule:
    """kubegpu MIG filters."""

    def filters(self):
        return {"mig_config_labels": mig_config_labels, "mig_layout_problems": mig_layout_problems}
