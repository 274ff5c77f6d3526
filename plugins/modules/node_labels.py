#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: node_labels
short_description: Reconcile the kubegpu labels and taints of one Kubernetes node
version_added: "0.1.0"
description:
  - Reads the node with C(kubectl get node -o json), sets the labels in O(labels),
    removes labels under O(prefixes) that an earlier run of this module set and that
    no longer hold, and makes the taints whose keys are in O(managed_taint_keys) (or in
    O(taints)) exactly O(taints). Every other label and taint is kept.
  - Labels this module set are recorded in the node annotation
    C(kubegpu.io/managed-labels); labels set by others (GPU Feature Discovery, the GPU
    Operator, people) are never removed.
  - One C(kubectl patch --type merge) carries the change, with the node's
    C(resourceVersion) so a concurrent change is never overwritten; on a 409 Conflict
    (the kubelet writes its node every few seconds) the node is read and compared again,
    up to five attempts in all.
  - Runs where kubectl and an admin kubeconfig are (use C(delegate_to) to the first
    control plane).
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Computes the change and reports it; patches nothing.
  diff_mode:
    support: full
    description: Returns the labels and taints before and after.
  idempotent:
    support: full
    description: Reports C(changed=false) when labels, bookkeeping and taints already match.
options:
  name:
    description: The node name.
    type: str
    required: true
  labels:
    description: Labels the node must carry; every key must start with one of O(prefixes).
    type: dict
    default: {}
  prefixes:
    description: Label key prefixes this module manages.
    type: list
    elements: str
    default: [nvidia.com/gpu., nvidia.com/cuda., nvidia.com/mig., aliyun.accelerator/, kubegpu.io/]
  taints:
    description: Taints the node must carry among the managed keys (key, value, effect).
    type: list
    elements: dict
    default: []
  managed_taint_keys:
    description: Taint keys this module owns; a taint with such a key that is not in O(taints) is removed.
    type: list
    elements: str
    default: []
  kubectl:
    description: The kubectl program.
    type: str
    default: kubectl
  kubeconfig:
    description: Kubeconfig file passed to kubectl; kubectl's own default when unset.
    type: path
"""

EXAMPLES = r"""
- name: Label a GPU node from its GPU facts
  kubegpu.cluster.node_labels:
    name: gpu1
    labels: "{{ ansible_facts.kubegpu_gpu | kubegpu.cluster.gpu_node_labels(label_sets=['gfd']) }}"
    taints:
      - {key: nvidia.com/gpu, value: present, effect: NoSchedule}
    managed_taint_keys: [nvidia.com/gpu]
    kubeconfig: /etc/kubernetes/admin.conf
  delegate_to: cp1
"""

RETURN = r"""
node:
  description: The node name.
  returned: always
  type: str
added:
  description: Labels added.
  returned: always
  type: dict
updated:
  description: Labels whose value changed (new values).
  returned: always
  type: dict
removed:
  description: Label keys removed.
  returned: always
  type: list
  elements: str
taints_changed:
  description: Whether the managed taints changed.
  returned: always
  type: bool
patch:
  description: The JSON merge patch sent (or that would be sent in check mode).
  returned: changed
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._labels_diff import DEFAULT_PREFIXES, run_node_labels


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True),
            labels=dict(type='dict', default={}),
            prefixes=dict(type='list', elements='str', default=list(DEFAULT_PREFIXES)),
            taints=dict(type='list', elements='dict', default=[]),
            managed_taint_keys=dict(type='list', elements='str', default=[], no_log=False),
            kubectl=dict(type='str', default='kubectl'),
            kubeconfig=dict(type='path'),
        ),
        supports_check_mode=True,
    )
    run_node_labels(module)


if __name__ == '__main__':
    main()
