#!/usr/bin/python
# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mig_layout
short_description: Set the MIG layout (GPU and compute instances) of a host's GPUs
version_added: "0.2.0"
description:
  - Reads the MIG mode of every GPU (C(nvidia-smi --query-gpu=index,name,pci.device_id,uuid,mig.mode.current,mig.mode.pending
    --format=csv,noheader)) and, where MIG is on, its GPU and compute instances (C(nvidia-smi mig -lgi), C(-lci),
    C(-lgip)); compares them with O(layout); changes only the GPUs that differ.
  - A GPU that differs has its compute and GPU instances destroyed (C(nvidia-smi mig -i N -dci), C(-dgi)), its
    MIG mode set (C(nvidia-smi -i N -mig 1|0)) when needed, and the wanted instances created, each with one
    compute instance spanning it (C(nvidia-smi mig -i N -cgi <profiles> -C)), largest first.
  - Refuses, before changing anything, a layout a GPU cannot hold (unknown profile, more instances of a profile
    than the product has, more than its compute or memory slices, no placement that fits them all), from the
    profiles of NVIDIA's MIG User Guide "Supported MIG Profiles". The same check runs in preflight.
  - When the driver cannot reset a GPU after a MIG mode change (VM passthrough, a process holding the GPU),
    the mode stays pending; the module then reports C(state=pending) and the GPUs in C(reset_required) and does
    not create instances on them. Reboot the node and run it again.
  - Stop the GPU's clients first (device plugin, DCGM, nvidia-persistenced); nvidia-smi refuses to change a GPU
    in use. C(playbooks/mig_layout.yml) does this around the role C(kubegpu.cluster.nvidia_mig).
author:
  - kubegpu maintainers (@kubegpu)
options:
  layout:
    description:
      - The wanted layout. A name, for every GPU - C(all-disabled), C(all-enabled) (MIG on, no instances),
        C(all-balanced), or C(all-<profile>) (that profile as many times as the GPU holds it, C(+) written C(.)
        as in C(all-1g.10gb.me)); the names of NVIDIA mig-parted's default configuration.
      - >-
        Or a list with one entry per GPU, in index order; an entry is such a name, C(disabled), a list of
        profiles (C([3g.40gb, 2g.20gb, 1g.10gb, 1g.10gb])), or a mapping of profile to count
        (C({1g.10gb: 2, 2g.20gb: 1, 3g.40gb: 1})).
    type: raw
    required: true
  layout_name:
    description: Name of the layout, shown in the diff header (the node label C(nvidia.com/mig.config)).
    type: str
    default: custom
  nvidia_smi_path:
    description: Path of nvidia-smi; default from C(PATH), else C(/usr/bin/nvidia-smi).
    type: path
attributes:
  check_mode:
    description: Reads the GPUs and reports what it would run (C(planned)); changes nothing.
    support: full
  diff_mode:
    description: Returns the layout read and the layout wanted (or reached), one line per GPU.
    support: full
  idempotent:
    description: A GPU already in the wanted layout is left alone; a second run reports C(changed=false).
    support: full
notes:
  - MIG devices do not survive a reboot or GPU reset (MIG User Guide, "Getting Started with MIG"); run the
    playbook again after one, or keep the layout in the inventory so every C(mig_layout.yml) run restores it.
  - Never run it against a GPU that others share at that moment; it destroys every instance of a GPU it changes.
seealso:
  - name: NVIDIA MIG User Guide, Supported MIG Profiles
    description: The profiles and instance counts per product that the layout is checked against.
    link: https://docs.nvidia.com/datacenter/tesla/mig-user-guide/supported-mig-profiles.html
  - name: NVIDIA mig-parted
    description: The configuration names C(all-*) follow its default configuration.
    link: https://github.com/NVIDIA/mig-parted
"""

EXAMPLES = r"""
- name: Split every GPU into seven 1g.10gb instances (A100 80GB / H100 80GB)
  kubegpu.cluster.mig_layout:
    layout: all-1g.10gb

- name: One layout per GPU
  kubegpu.cluster.mig_layout:
    layout:
      - [3g.40gb, 2g.20gb, 1g.10gb, 1g.10gb]
      - {4g.40gb: 1, 3g.40gb: 1}
      - disabled
      - all-7g.80gb

- name: Turn MIG off
  kubegpu.cluster.mig_layout:
    layout: all-disabled
"""

RETURN = r"""
state:
  description:
    - For the node label C(nvidia.com/mig.config.state), with mig-manager's values - C(success) (every GPU in the
      layout), C(pending) (a MIG mode change waits for a GPU reset or reboot; in check mode, changes are due),
      C(failed) (also returned when the module fails).
  returned: always
  type: str
  sample: success
reset_required:
  description: GPU indexes whose MIG mode change waits for a reset or reboot.
  returned: always
  type: list
  elements: int
  sample: []
layout_before:
  description: The layout read before any change, per GPU (index, name, uuid, mig_mode_current, mig_mode_pending,
    mig_devices with profile, gpu_instance_profile, gi_id, ci_id, placement).
  returned: always
  type: list
  elements: dict
layout:
  description: The layout read at the end (same shape as layout_before; in check mode, the layout read).
  returned: success
  type: list
  elements: dict
commands:
  description: The nvidia-smi commands that changed something (argv lists).
  returned: always
  type: list
  elements: list
planned:
  description: In check mode or when nothing is due, the commands a run would make, per GPU index.
  returned: when nothing was changed
  type: dict
  sample: {"0": [["/usr/bin/nvidia-smi", "-i", "0", "-mig", "1"], ["/usr/bin/nvidia-smi", "mig", "-i", "0", "-cgi", "3g.40gb,3g.40gb", "-C"]]}
problems:
  description: Why the layout was refused.
  returned: when refused
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._mig import run_module


def main():
    module = AnsibleModule(
        argument_spec=dict(
            layout=dict(type="raw", required=True),
            layout_name=dict(type="str", default="custom"),
            nvidia_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
