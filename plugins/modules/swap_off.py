#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: swap_off
short_description: Swap off on a Kubernetes node, now and at boot, in one pass
version_added: "0.3.0"
description:
  - Reads C(/proc/swaps), O(fstab) and systemd's swap units, and changes only what differs.
  - Runs C(swapoff -a) while swap is active, except in a container, where swap belongs to
    the host kernel; that is reported in RV(notes), never faked.
  - Comments out every uncommented line of O(fstab) whose file system type is C(swap)
    (a backup first, where O(backup)), so swap stays off after a reboot.
  - Masks the systemd swap units that are not masked yet (systemd's fstab generator and
    units of their own would turn swap on again).
  - One module run replaces the read, compare and act tasks of each of the three.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reports what would be turned off, commented out and masked; changes nothing.
  diff_mode:
    support: full
    description: Returns O(fstab) before and after.
  idempotent:
    support: full
    description: Reports C(changed=false) when no swap is active (or the host is a container), no swap line is left
      in O(fstab) and every swap unit is masked.
options:
  fstab:
    description: The fstab file.
    type: path
    default: /etc/fstab
  proc_swaps:
    description: Where the kernel lists the active swap areas.
    type: path
    default: /proc/swaps
  mask_units:
    description: Mask the systemd swap units (needs systemctl; without it nothing is masked).
    type: bool
    default: true
  container_type:
    description:
      - What C(systemd-detect-virt --container) printed; empty on a host that is not a container.
      - In a container swap is not turned off (it is the host kernel's); active swap is reported in RV(notes).
    type: str
    default: ""
  backup:
    description: Keep a timestamped copy of O(fstab) before changing it.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Turn swap off now and at boot
  kubegpu.cluster.swap_off:
  register: swap
"""

RETURN = r"""
swapoff:
  description: Whether this run turned active swap off (would, in check mode).
  returned: always
  type: bool
active:
  description: The swap areas /proc/swaps listed when the module read it.
  returned: always
  type: list
  elements: str
fstab_commented:
  description: The fstab lines this run commented out (would, in check mode).
  returned: always
  type: list
  elements: str
masked:
  description: The swap units this run masked (would, in check mode).
  returned: always
  type: list
  elements: str
notes:
  description: One line per thing this host did not allow, with the reason.
  returned: always
  type: list
  elements: str
backup_file:
  description: The copy of O(fstab) made before it changed.
  returned: when a backup was made
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._swap import run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            fstab=dict(type='path', default='/etc/fstab'),
            proc_swaps=dict(type='path', default='/proc/swaps'),
            mask_units=dict(type='bool', default=True),
            container_type=dict(type='str', default=''),
            backup=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == '__main__':
    main()
