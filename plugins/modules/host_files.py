#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_files
short_description: The files and directories a stage owns and its lines in shared files, in one pass
version_added: "0.3.0"
description:
  - Creates each directory of O(directories) that is missing and gives it its mode and owner where they
    differ. A path there that is not a directory is refused and left alone.
  - Reads each file of O(files), compares it with what it should be (its content, mode and owner; or absent)
    and writes or removes it only where it differs, atomically.
  - Adds each line of O(lines) to its file, or removes it, only where that is needed; the rest of the file is kept.
  - Directories first, then files, then lines. One module run for all of a stage's files, instead of one
    module run per file behind a condition that reads the host first.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: Reports what would be written and removed; changes nothing.
  diff_mode:
    support: full
    description:
      - Returns each changed file before and after (not for an entry with O(files[].no_diff)).
      - A directory shows as C(directory <mode> <uid>:<gid>), empty where it is absent.
  idempotent:
    support: full
    description: Reports C(changed=false) when every directory, file and line is as it should be.
options:
  directories:
    description: Directories this stage owns (missing parents are created too).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The directory.
        type: path
        required: true
      mode:
        description: The directory's mode (octal, as a string).
        type: str
        default: "0755"
      owner:
        description: The directory's owner.
        type: str
        default: root
      group:
        description: The directory's group.
        type: str
        default: root
  files:
    description: Files this stage owns.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      state:
        description: V(present) with O(files[].content), or V(absent).
        type: str
        choices: [present, absent]
        default: present
      content:
        description: The whole content of the file.
        type: str
        default: ""
      mode:
        description: The file's mode (octal, as a string).
        type: str
        default: "0644"
      owner:
        description: The file's owner.
        type: str
        default: root
      group:
        description: The file's group.
        type: str
        default: root
      directory_mode:
        description: Mode of the parent directory where it has to be created.
        type: str
        default: "0755"
      validate:
        description: A command that checks the new content before it replaces the file; C(%s) is the new file.
        type: str
      backup:
        description: Keep a timestamped copy of the file before changing or removing it.
        type: bool
        default: false
      no_diff:
        description: Leave this file out of the diff (its content may hold a secret).
        type: bool
        default: false
  lines:
    description: Lines this stage owns in a file that others write to as well.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: The file.
        type: path
        required: true
      line:
        description: The whole line.
        type: str
        required: true
      state:
        description: V(present) (appended when missing; the file is created) or V(absent) (every copy removed).
        type: str
        choices: [present, absent]
        default: present
      mode:
        description: The file's mode where it is created or its line is present.
        type: str
        default: "0644"
      owner:
        description: The file's owner where it is created or its line is present.
        type: str
        default: root
      group:
        description: The file's group where it is created or its line is present.
        type: str
        default: root
      directory_mode:
        description: Mode of the parent directory where it has to be created.
        type: str
        default: "0755"
      backup:
        description: Keep a timestamped copy of the file before changing it.
        type: bool
        default: false
      no_diff:
        description: Leave this file out of the diff.
        type: bool
        default: false
"""

EXAMPLES = r"""
- name: Write crictl's config and a registry's hosts.toml, with containerd's drop-in directory
  kubegpu.cluster.host_files:
    directories:
      - path: /etc/containerd/conf.d
    files:
      - path: /etc/crictl.yaml
        content: "runtime-endpoint: unix:///run/containerd/containerd.sock\n"
      - path: /etc/containerd/certs.d/docker.io/hosts.toml
        content: "server = \"https://registry-1.docker.io\"\n"

- name: Blacklist nouveau and record the reboot it needs
  kubegpu.cluster.host_files:
    files:
      - path: /etc/modprobe.d/kubegpu-blacklist-nouveau.conf
        content: "blacklist nouveau\noptions nouveau modeset=0\n"
    lines:
      - path: /var/lib/kubegpu/reboot-required
        line: "os_prereqs: nouveau is loaded and now blacklisted"
"""

RETURN = r"""
changed_paths:
  description: The directories and files this run changed, created or removed (would, in check mode).
  returned: always
  type: list
  elements: str
backup_files:
  description: The copies made before files changed.
  returned: when a backup was made
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._host_files import run

_COMMON = dict(
    path=dict(type='path', required=True),
    state=dict(type='str', choices=['present', 'absent'], default='present'),
    mode=dict(type='str', default='0644'),
    owner=dict(type='str', default='root'),
    group=dict(type='str', default='root'),
    directory_mode=dict(type='str', default='0755'),
    backup=dict(type='bool', default=False),
    no_diff=dict(type='bool', default=False),
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            directories=dict(type='list', elements='dict', default=[],
                             options=dict(path=dict(type='path', required=True),
                                          mode=dict(type='str', default='0755'),
                                          owner=dict(type='str', default='root'),
                                          group=dict(type='str', default='root'))),
            files=dict(type='list', elements='dict', default=[],
                       options=dict(_COMMON, content=dict(type='str', default=''),
                                    validate=dict(type='str'))),
            lines=dict(type='list', elements='dict', default=[],
                       options=dict(_COMMON, line=dict(type='str', required=True))),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == '__main__':
    main()
