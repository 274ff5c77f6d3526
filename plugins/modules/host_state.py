#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_state
short_description: Read what a stage needs to know about a host, in one module run
version_added: "0.3.0"
description:
  - Answers, in one run, the questions a stage used to ask with a task each - stat and
    checksum of paths, the content of small files, glob matches, installed packages
    (version, hold, pin satisfied), systemd unit states, the units of a type, and
    whether the host is a container.
  - Changes nothing. The stages run their changing tasks only where the answer differs
    from what the task would make; every such task still checks for itself when it runs.
  - The result is meant to be registered, not cached as a fact - it describes the host
    at this moment.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Changes nothing, so there is nothing to show.
  idempotent:
    support: full
    description: Never changes anything.
options:
  paths:
    description: Paths to stat (type, mode, owner, SHA-1 of regular files up to 4 MiB).
    type: list
    elements: path
    default: []
  read:
    description: Small files (up to 1 MiB) whose content is returned, null when absent.
    type: list
    elements: path
    default: []
  globs:
    description: Glob patterns whose matches are returned, sorted.
    type: list
    elements: str
    default: []
  packages:
    description:
      - Package names to look up in dpkg's status file, or with rpm where there is none.
    type: list
    elements: str
    default: []
  package_match:
    description:
      - A regular expression; every installed package whose name it matches is
        returned in RV(packages) too (a stage's packages of another version or branch).
    type: str
  package_versions:
    description:
      - Package name to the version it must have (as apt pins it, C(*) as a wildcard).
        A package at another version is reported in RV(packages_missing).
    type: dict
    default: {}
  units:
    description: systemd units whose load, active, sub and unit-file states are returned.
    type: list
    elements: str
    default: []
  unit_types:
    description: Unit types (C(swap), C(mount)) whose units, all of them, are listed.
    type: list
    elements: str
    default: []
  container:
    description: Ask C(systemd-detect-virt --container) whether the host is a container.
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Read the state this stage acts on
  kubegpu.cluster.host_state:
    paths: [/etc/crictl.yaml]
    packages: [containerd]
    package_versions: {containerd: "1.7.*"}
    units: [containerd.service]
    container: true
  register: state

- name: Install containerd only where it is missing
  ansible.builtin.apt:
    name: containerd
  when: "'containerd' in state.packages_missing"
"""

RETURN = r"""
paths:
  description: Path to C(exists), C(isdir), C(isreg), C(islnk), C(mode) (octal string), C(uid), C(gid), C(size), C(checksum) (SHA-1).
  returned: always
  type: dict
files:
  description: Path to its content, or null.
  returned: always
  type: dict
globs:
  description: Pattern to its sorted matches.
  returned: always
  type: dict
packages:
  description:
    - Name to C(installed), C(version), C(held) (null where the package manager has no
      holds), C(wanted_version), C(satisfied); for the names in O(packages) and the
      installed packages O(package_match) matches.
  returned: always
  type: dict
packages_missing:
  description: The names in O(packages) not installed, or not at the pinned version.
  returned: always
  type: list
  elements: str
units:
  description: Unit to C(load), C(active), C(sub), C(unit_file); empty without systemd.
  returned: always
  type: dict
unit_lists:
  description: Unit type to a list of C(unit), C(load), C(active), C(sub).
  returned: always
  type: dict
container_type:
  description: What C(systemd-detect-virt --container) printed; empty when not a container; null unless O(container).
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._host_state import read_state


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type='list', elements='path', default=[]),
            read=dict(type='list', elements='path', default=[]),
            globs=dict(type='list', elements='str', default=[]),
            packages=dict(type='list', elements='str', default=[]),
            package_match=dict(type='str'),
            package_versions=dict(type='dict', default={}),
            units=dict(type='list', elements='str', default=[]),
            unit_types=dict(type='list', elements='str', default=[]),
            container=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    state = read_state(module.params, run_command=module.run_command, which=module.get_bin_path)
    module.exit_json(changed=False, **state)


if __name__ == '__main__':
    main()
