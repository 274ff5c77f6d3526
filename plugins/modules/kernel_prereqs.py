#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kernel_prereqs
short_description: Kernel modules and parameters of a Kubernetes node in one pass
version_added: "0.2.0"
description:
  - Writes O(modules_file) (one module per line) and loads the modules in O(modules)
    that are not active. A module counts as active when its path in O(module_probes)
    exists, else when C(/sys/module/<name>) exists.
  - Merges O(sysctl) into O(sysctl_file) (other lines and comments kept, a repeated key
    reduced to its first line) and writes each value to C(/proc/sys) where it differs
    and C(/proc/sys) lets this host write it.
  - What the host does not allow is reported in RV(notes), never faked - a module a
    container cannot load, a key C(/proc/sys) lacks, a read-only key that differs.
  - One module run replaces a probe, a load and a write task per module and parameter.
  - With O(swap_off), first what M(kubegpu.cluster.swap_off) does (active swap off, its fstab lines commented
    out with a backup, swap units masked; in a container reported instead), in the same module run.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reports what would be written, loaded, set and (O(swap_off)) turned off; changes nothing.
  diff_mode:
    support: full
    description: Returns the two files before and after, and O(swap_fstab) where swap lines are commented out.
  idempotent:
    support: full
    description: Reports C(changed=false) when the files, modules and values already match.
options:
  modules:
    description: Kernel modules to load now and at boot.
    type: list
    elements: str
    default: []
  module_probes:
    description: Module name to a path that exists when the module is active (for modules built in without C(/sys/module/<name>)).
    type: dict
    default: {}
  sysctl:
    description: Kernel parameters (dotted keys) and their values.
    type: dict
    default: {}
  modules_file:
    description: The modules-load.d file this module owns.
    type: path
    default: /etc/modules-load.d/kubegpu.conf
  sysctl_file:
    description: The sysctl.d file the parameters are merged into.
    type: path
    default: /etc/sysctl.d/99-kubegpu.conf
  container_type:
    description:
      - What C(systemd-detect-virt --container) printed; empty on a host that is not a container.
      - In a container no module is loaded (the kernel is the host's); the missing ones are reported.
    type: str
    default: ""
  backup:
    description: Keep a timestamped copy of O(sysctl_file) before changing it.
    type: bool
    default: true
  modprobe:
    description: The modprobe program.
    type: str
    default: modprobe
  swap_off:
    description:
      - Also turn swap off, now and at boot, as M(kubegpu.cluster.swap_off) does (its result in RV(swap), its notes
        in RV(notes)); O(backup) applies to O(swap_fstab) too.
    type: bool
    default: false
  swap_fstab:
    description: The fstab whose swap lines are commented out (O(swap_off)).
    type: path
    default: /etc/fstab
  swap_proc_swaps:
    description: Where the active swap areas are read (O(swap_off)).
    type: path
    default: /proc/swaps
  swap_mask_units:
    description: Mask the systemd swap units too (O(swap_off)).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Load the kernel modules and set the kernel parameters
  kubegpu.cluster.kernel_prereqs:
    modules: [overlay, br_netfilter]
    module_probes:
      br_netfilter: /proc/sys/net/bridge/bridge-nf-call-iptables
    sysctl:
      net.bridge.bridge-nf-call-iptables: 1
      net.ipv4.ip_forward: 1
  register: kernel
"""

RETURN = r"""
loaded:
  description: Modules loaded by this run (would be, in check mode).
  returned: always
  type: list
  elements: str
set:
  description: Parameters written to /proc/sys by this run (would be, in check mode).
  returned: always
  type: dict
files:
  description: The files this run changed (would change, in check mode).
  returned: always
  type: list
  elements: str
notes:
  description: One line per thing this host did not allow, with the reason.
  returned: always
  type: list
  elements: str
backup_file:
  description: The copy of O(sysctl_file) made before it changed.
  returned: when a backup was made
  type: str
swap:
  description:
    - With O(swap_off), what M(kubegpu.cluster.swap_off) returns (C(swapoff), C(active), C(fstab_commented),
      C(masked), C(backup_file) of O(swap_fstab)); its notes are in RV(notes).
  returned: when O(swap_off) is set
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils import _kernel, _swap


def main():
    module = AnsibleModule(
        argument_spec=dict(
            modules=dict(type='list', elements='str', default=[]),
            module_probes=dict(type='dict', default={}),
            sysctl=dict(type='dict', default={}),
            modules_file=dict(type='path', default='/etc/modules-load.d/kubegpu.conf'),
            sysctl_file=dict(type='path', default='/etc/sysctl.d/99-kubegpu.conf'),
            container_type=dict(type='str', default=''),
            backup=dict(type='bool', default=True),
            modprobe=dict(type='str', default='modprobe'),
            swap_off=dict(type='bool', default=False),
            swap_fstab=dict(type='path', default='/etc/fstab'),
            swap_proc_swaps=dict(type='path', default='/proc/swaps'),
            swap_mask_units=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    # Swap first (kubelet's prerequisite), as the swap_off module does it: one module run
    # for both where swap_off is set.
    swap = None
    if p['swap_off']:
        swap = _swap.apply(module, {'fstab': p['swap_fstab'], 'proc_swaps': p['swap_proc_swaps'],
                                    'mask_units': p['swap_mask_units'], 'container_type': p['container_type'],
                                    'backup': p['backup']})
    module.exit_json(**_kernel.with_swap(_kernel.apply(module, p), swap))


if __name__ == '__main__':
    main()
