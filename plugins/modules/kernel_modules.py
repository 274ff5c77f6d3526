#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: kernel_modules
short_description: Installed kernels, the kernel that boots next, and which of them have the NVIDIA module
version_added: "0.4.0"
description:
  - Reads, in one run, the kernels installed on the host (a C(/boot/vmlinuz-<release>) or an installed module tree
    under O(modules_dir)), the kernel the next boot starts (C(grubby --default-kernel) where grubby exists, else
    C(GRUB_DEFAULT) in O(grub_default_file) - C(0), the default, boots the newest kernel, as grub-mkconfig sorts
    them - and C(saved_entry) in O(grubenv_file)), C(dkms status) (DKMS 2.x and 3.x formats), and for each kernel
    whether its headers are there (C(/lib/modules/<release>/build) resolves) and whether it has the NVIDIA kernel
    module (DKMS says C(installed) for O(dkms_module), or a kernel object named in O(module_names) is in its tree).
  - With O(build), runs C(dkms install -m <dkms_module> -v <version> -k <release>) for every installed kernel that
    has its headers and lacks the module, then reads again. Kernels without headers are listed in RV(no_headers);
    installing them is the package step of role C(kubegpu.cluster.nvidia_driver).
  - In a container the kernel that runs is the host's, not one of the container's; only the kernels installed in
    the container's own C(/boot) and O(modules_dir) are listed.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reads, and reports which kernels a build would give the module to; builds nothing.
  diff_mode:
    support: full
    description: Lists the kernels before (no module) and after (module installed) a build.
  idempotent:
    support: full
    description: Builds only for kernels without the module, so a second run reports C(changed=false).
options:
  dkms_module:
    description:
      - The DKMS module (its C(PACKAGE_NAME)) of the NVIDIA driver - C(nvidia-current) for Debian's
        C(nvidia-kernel-dkms), C(nvidia) for Ubuntu's, NVIDIA's CUDA repository's and RHEL's DKMS packages.
    type: str
    default: nvidia
  module_names:
    description:
      - Kernel object names (without C(.ko)) whose presence in a kernel's module tree counts as the NVIDIA module
        (precompiled and kmod packages). Default O(dkms_module).
    type: list
    elements: str
    default: []
  build:
    description: Build and install O(dkms_module) for every installed kernel that has its headers and lacks it.
    type: bool
    default: false
  modules_dir:
    description: Where the kernels' module trees are.
    type: path
    default: /lib/modules
  boot_dir:
    description: Where the kernel images (C(vmlinuz-<release>)) are.
    type: path
    default: /boot
  grub_default_file:
    description: The GRUB settings file whose C(GRUB_DEFAULT) says which entry boots.
    type: path
    default: /etc/default/grub
  grubenv_file:
    description: GRUB's environment block, whose C(saved_entry) C(GRUB_DEFAULT=saved) boots.
    type: path
    default: /boot/grub/grubenv
  dkms_bin:
    description: The dkms program (default C(dkms) on the PATH; none installed - no DKMS modules).
    type: str
"""

EXAMPLES = r"""
- name: Read the kernels and their NVIDIA module
  kubegpu.cluster.kernel_modules:
    dkms_module: nvidia-current
  register: kernels

- name: Build the NVIDIA module for every installed kernel that has headers
  kubegpu.cluster.kernel_modules:
    dkms_module: nvidia
    build: true
"""

RETURN = r"""
running:
  description: The running kernel (C(uname -r)); in a container, the host's.
  returned: always
  type: str
installed:
  description: Installed kernel releases, newest first (sort -V).
  returned: always
  type: list
  elements: str
images:
  description: The releases with a kernel image in O(boot_dir), newest first.
  returned: always
  type: list
  elements: str
boot_kernel:
  description: The kernel the next boot starts; null when it cannot be told (RV(boot_rule) says why).
  returned: always
  type: str
boot_rule:
  description: How RV(boot_kernel) was found, or why it is unknown.
  returned: always
  type: str
kernels:
  description:
    - Per installed release - C(headers) (bool), C(module) (bool, the NVIDIA module is there), C(module_files)
      (kernel objects found, relative to its module tree), C(dkms_state) (what DKMS says for O(dkms_module), or null).
  returned: always
  type: dict
dkms:
  description: C(dkms status) parsed - C(module), C(version), C(kernel), C(arch), C(state), C(note).
  returned: always
  type: list
  elements: dict
dkms_available:
  description: Whether a dkms program was found.
  returned: always
  type: bool
dkms_error:
  description: What C(dkms status) said when it failed; empty otherwise.
  returned: always
  type: str
dkms_module:
  description: O(dkms_module).
  returned: always
  type: str
dkms_version:
  description: The newest version of O(dkms_module) DKMS knows; null when it knows none.
  returned: always
  type: str
built:
  description: Kernels this run gave the module with DKMS (would give, in check mode).
  returned: always
  type: list
  elements: str
no_headers:
  description: Installed kernels without the module whose headers are missing (DKMS cannot build for them yet).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils import _dkms


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dkms_module=dict(type='str', default='nvidia'),
            module_names=dict(type='list', elements='str', default=[]),
            build=dict(type='bool', default=False),
            modules_dir=dict(type='path', default='/lib/modules'),
            boot_dir=dict(type='path', default='/boot'),
            grub_default_file=dict(type='path', default='/etc/default/grub'),
            grubenv_file=dict(type='path', default='/boot/grub/grubenv'),
            dkms_bin=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**_dkms.apply(module, module.params))


if __name__ == '__main__':
    main()
