#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: systemd_units
short_description: Enable and start a stage's systemd units where they are not, then wait until the daemon answers
version_added: "0.5.0"
description:
  - Reads every unit of O(units) in one C(systemctl show), then runs C(systemctl enable) for the units that
    should be enabled and are not, C(systemctl start) for those that should run and do not, and
    C(systemctl restart) for those asked to restart - one call each, none on a host where everything is as asked.
  - A unit counts as enabled when C(systemctl is-enabled) would exit 0 for its unit file state (enabled,
    enabled-runtime, static, indirect, generated, transient, alias), and as running while its ActiveState is
    active, activating or reloading.
  - After the units run, O(ready) is run until it exits 0 (e.g. C(ctr plugins ls), which answers only once
    containerd serves its socket), so the daemon a later task needs is really there. Its output is returned.
  - A unit started or restarted is read again and must be running.
  - Where a start, or the readiness check, fails, the message carries the last lines of each unit's journal.
  - One module run replaces a C(systemd_service) run per unit and the readiness C(command) after them.
    Restarts after a configuration change stay with the stages' handlers.
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description:
      - Reports which units would be enabled and started; changes nothing.
      - O(ready) is read-only and runs in check mode too, except where a unit would be started (nothing could
        answer yet); RV(ready) is then null.
  diff_mode:
    support: full
    description: Each unit's unit file state and ActiveState, before and after.
  idempotent:
    support: full
    description: Reports C(changed=false) when every unit is enabled and running as asked.
options:
  units:
    description: The units, in order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The unit's name, with its suffix (C(containerd.service), C(nvidia-cdi-refresh.path)).
        type: str
        required: true
      enabled:
        description: Enable it at boot where it is not.
        type: bool
        default: true
      started:
        description: Start it where it does not run.
        type: bool
        default: true
      restarted:
        description:
          - Restart it (start it where it does not run), whatever its state - for a unit whose files this run
            changed; with O(daemon_reload) where a unit file or drop-in changed.
        type: bool
        default: false
      optional:
        description: A unit systemd does not know is skipped (RV(skipped)) instead of failing the module.
        type: bool
        default: false
  daemon_reload:
    description: Run C(systemctl daemon-reload) first (not in check mode).
    type: bool
    default: false
  ready:
    description: A read-only command that exits 0 once the daemon answers; retried.
    type: dict
    suboptions:
      argv:
        description: The command.
        type: list
        elements: str
        required: true
      retries:
        description: How many more times it is run after the first failure.
        type: int
        default: 15
      delay:
        description: Seconds between tries.
        type: float
        default: 2
"""

EXAMPLES = r"""
- name: Start containerd and enable it at boot, then wait for its socket
  kubegpu.cluster.systemd_units:
    units:
      - name: containerd.service
    ready:
      argv: [/usr/bin/ctr, --address, /run/containerd/containerd.sock, plugins, ls]
  register: containerd_run

- name: Enable the CDI refresh units the toolkit ships, where it ships them
  kubegpu.cluster.systemd_units:
    units:
      - {name: nvidia-cdi-refresh.service, started: false, optional: true}
      - {name: nvidia-cdi-refresh.path, optional: true}
"""

RETURN = r"""
enabled:
  description: The units this run enabled (would, in check mode).
  returned: always
  type: list
  elements: str
started:
  description: The units this run started (would, in check mode).
  returned: always
  type: list
  elements: str
restarted:
  description: The units this run restarted (would, in check mode).
  returned: always
  type: list
  elements: str
skipped:
  description: The optional units systemd does not know on this host.
  returned: always
  type: list
  elements: str
status:
  description: Per unit, what systemd said (after the start, where this run started any).
  returned: always
  type: dict
  sample: {"containerd.service": {"load": "loaded", "active": "active", "sub": "running", "unit_file": "enabled"}}
ready:
  description: The last try of O(ready) (rc, stdout, stderr, attempts); null where there is none or check mode would
    have started a unit.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.kubegpu.cluster.plugins.module_utils import _systemd_units


def main():
    module = AnsibleModule(
        argument_spec=dict(
            units=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                enabled=dict(type='bool', default=True),
                started=dict(type='bool', default=True),
                restarted=dict(type='bool', default=False),
                optional=dict(type='bool', default=False),
            )),
            daemon_reload=dict(type='bool', default=False),
            ready=dict(type='dict', options=dict(
                argv=dict(type='list', elements='str', required=True),
                retries=dict(type='int', default=15),
                delay=dict(type='float', default=2),
            )),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**_systemd_units.run(module))


if __name__ == '__main__':
    main()
