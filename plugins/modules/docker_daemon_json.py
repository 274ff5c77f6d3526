#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: docker_daemon_json
short_description: Merge settings into Docker Engine's daemon.json, keeping the rest of the file
version_added: "0.3.0"
description:
  - Reads O(path) (a missing or empty file is an empty object), combines the wanted keys into it and
    writes it back only when the resulting object differs from the file's, atomically, after a backup
    of the previous file (O(backup)). Keys the module does not set are kept.
  - "Combined recursively: where the file and the wanted value both hold an object (C(log-opts),
    C(runtimes)), their keys are combined; any other value (lists included) replaces the file's.
    Then O(extra) is combined in the same way, last, so its keys win."
  - C(exec-opts) keeps the file's entries except its C(native.cgroupdriver=) one, which becomes
    O(cgroup_driver)'s.
  - The file is written as 2-space indented JSON with sorted keys. A file that holds the same object
    in another layout is left as it is.
  - A file that is not valid JSON, or is JSON but not an object, is refused with the path and the fix,
    and left untouched.
author:
  - kubegpu maintainers (@kubegpu)
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Computes the merged file and reports whether it would change; writes nothing.
  diff_mode:
    support: full
    description: Returns the file's text before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing.
options:
  path:
    description:
      - The daemon.json file. Its directory is created (mode 0755) when missing.
      - A symbolic link is followed; its target is read and written (RV(target)).
    type: path
    default: /etc/docker/daemon.json
  cgroup_driver:
    description: The cgroup driver, as the C(native.cgroupdriver=) entry of C(exec-opts). Left alone when omitted.
    type: str
  log_driver:
    description: C(log-driver). Left alone when omitted.
    type: str
  log_opts:
    description: Keys of C(log-opts), combined with the file's (values written as strings). Left alone when omitted.
    type: dict
  live_restore:
    description: C(live-restore). Left alone when omitted.
    type: bool
  registry_mirrors:
    description: C(registry-mirrors), replacing the file's list. Omitted or empty, the file's list is left alone.
    type: list
    elements: str
  runtimes:
    description:
      - "Runtimes by name, for example C({\"nvidia\": {\"path\": \"/usr/bin/nvidia-container-runtime\",
        \"runtimeArgs\": []}}), combined with the file's C(runtimes); runtimes not named are kept."
    type: dict
  default_runtime:
    description: C(default-runtime). Left alone when omitted.
    type: str
  extra:
    description: Further keys, combined in last (recursively), so they win over the options above and the file.
    type: dict
    default: {}
  backup:
    description: Keep a timestamped copy of the previous file next to it before changing it.
    type: bool
    default: true
seealso:
  - name: dockerd configuration file
    description: The keys of daemon.json.
    link: https://docs.docker.com/reference/cli/dockerd/#daemon-configuration-file
"""

EXAMPLES = r"""
- name: Merge the settings kubegpu needs into daemon.json
  kubegpu.cluster.docker_daemon_json:
    cgroup_driver: systemd
    log_driver: json-file
    log_opts:
      max-size: 100m
      max-file: "3"
    live_restore: true
    runtimes:
      nvidia:
        path: /usr/bin/nvidia-container-runtime
        runtimeArgs: []
    default_runtime: nvidia
    owner: root
    group: root
    mode: "0644"
  notify: Restart docker
"""

RETURN = r"""
target:
  description: The file read and written - O(path), or the target of the symbolic link O(path).
  returned: always
  type: str
  sample: /etc/docker/daemon.json
created:
  description: Whether the file did not exist and was (or would be) created.
  returned: always
  type: bool
  sample: false
config:
  description: The object the file holds after the merge (would hold, in check mode).
  returned: always
  type: dict
  sample: {exec-opts: [native.cgroupdriver=systemd], live-restore: true, log-driver: json-file}
backup_file:
  description: The copy of the previous file made before the change.
  returned: when O(backup=true) and an existing file was changed
  type: str
  sample: /etc/docker/daemon.json.12345.2026-12-02@10:00:00~
diff:
  description: The file's text before and after (before is empty when the file did not exist).
  returned: when diff mode is on
  type: dict
  sample: {before: "{}\n", after: "{\n  \"live-restore\": true\n}\n", before_header: /etc/docker/daemon.json}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils._docker_daemon import run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type='path', default='/etc/docker/daemon.json'),
            cgroup_driver=dict(type='str'),
            log_driver=dict(type='str'),
            log_opts=dict(type='dict'),
            live_restore=dict(type='bool'),
            registry_mirrors=dict(type='list', elements='str'),
            runtimes=dict(type='dict'),
            default_runtime=dict(type='str'),
            extra=dict(type='dict', default={}),
            backup=dict(type='bool', default=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    run(module)


if __name__ == '__main__':
    main()
