#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: packages
short_description: Install, remove or hold packages with apt or dnf, reading first and waiting out the package lock
version_added: "0.3.0"
description:
  - The one way kubegpu's stages install, upgrade or remove distribution packages, refresh apt's lists and
    hold packages. An action plugin on the controller; on the host it runs C(kubegpu.cluster.host_state),
    the distribution's own package modules (C(ansible.builtin.apt), C(ansible.builtin.dnf)) and the hold
    modules (C(ansible.builtin.dpkg_selections), C(community.general.dnf_versionlock)), one task for all of it.
  - apt, O(state=present) - dpkg's status is read first (one light C(host_state) run, the pinned versions
    compared in Python) and apt runs only for the packages missing or at another version. A converged host
    neither opens apt's cache nor refreshes its lists. A caller that has read the same packages already
    hands its reading over with O(reading), and nothing is read again.
  - apt - a host without any apt index (a fresh minimal image) gets one before the install, in check mode
    too (it downloads the index into apt's cache and changes no configuration). In check mode with
    C(apt-get update), not C(ansible.builtin.apt), which would first install python3-apt where it is missing.
  - apt, check mode on a host without python3-apt (C(ansible.builtin.apt) cannot simulate without it) -
    C(apt-get install --simulate) (C(remove) for O(state=absent)) says what would change, or fails with apt's reason.
  - The lock - O(lock_timeout) makes apt wait for the dpkg frontend lock itself (C(DPkg::Lock::Timeout)) and
    dnf for its own. apt's lists and archives locks (apt-daily at boot, hosts sharing an archive cache) fail
    at once with C(Could not get lock) - those are retried every 10 s for as long again; any other failure
    stops at once.
  - Then the holds of O(hold) not held yet (apt C(dpkg --set-selections), dnf versionlock). Not in check
    mode where the install would change something (the packages are not there yet).
author:
  - kubegpu maintainers (@kubegpu)
attributes:
  check_mode:
    support: full
    description: The package modules' check mode; the hold is skipped where the packages are not there yet.
  diff_mode:
    support: full
    description: The package module's diff (apt's C(prepared) list).
  idempotent:
    support: full
    description: Reports C(changed=false) where every package is installed as asked and every hold is in place.
options:
  names:
    description:
      - Package names or specs (apt C(name=version), dnf C(name-version)); for dnf also package files on the host.
      - An empty list installs nothing (a call with only holds to do).
      - Left out with O(update_cache) set, the call only refreshes apt's lists.
    type: list
    elements: str
  debs:
    description: Package files on the host (apt only), installed one by one in this order, instead of names.
    type: list
    elements: path
  state:
    description: The packages' state.
    type: str
    default: present
    choices: [present, latest, absent]
  manager:
    description:
      - The package manager. Not set, apt where C(ansible_facts.pkg_mgr) is C(apt) (without that fact, the Debian
        family) and dnf otherwise.
    type: str
    choices: [apt, dnf]
  update_cache:
    description:
      - apt only. Refresh the package lists before an install (C(update_cache)); not where nothing is to be installed.
    type: bool
  cache_valid_time:
    description: apt only. Refresh the lists only when older than this many seconds (C(cache_valid_time)).
    type: int
  install_recommends:
    description:
      - Install recommended packages (apt C(install_recommends), dnf C(install_weak_deps)). Not set, the package
        manager's own default.
    type: bool
  allow_downgrade:
    description: Allow installing an older version than the installed one. Not set, the module's default (no).
    type: bool
  allow_change_held_packages:
    description: apt only. Allow moving a held package to the version asked for (C(allow_change_held_packages)).
    type: bool
  disable_excludes:
    description: dnf only. Repositories whose C(exclude=) list is ignored for this call (C(disable_excludes)).
    type: str
  hold:
    description:
      - Package names to hold after the install (apt C(dpkg --set-selections) hold, dnf versionlock).
      - apt - held only where the reading (or O(held)) does not find them held, so a converged host runs no hold.
    type: list
    elements: str
    default: []
  held:
    description:
      - Those of O(hold) the caller already knows to be held (from its own reading of the host); not held again
        unless this call installed something. Not set, the reading tells.
    type: list
    elements: str
  reading:
    description:
      - The caller's own C(kubegpu.cluster.host_state) result, where it read these packages (O(names) and O(hold),
        at the same pinned versions) and apt's lists (C(globs) with C(/var/lib/apt/lists/*_Packages*)) already
        in this run, after anything that may have installed them. Used instead of a second read; a reading that
        does not answer all of that (or a skipped or failed one) is ignored and the packages are read again.
    type: dict
  lock_timeout:
    description:
      - Seconds apt and dnf wait for the package manager's lock; apt's lists and archives locks are retried
        for as long again. Not set, the inventory's C(kubegpu_package_lock_timeout), else 180.
    type: int
notes:
  - Runs on the controller as an action plugin; the module itself only carries this documentation.
seealso:
  - module: kubegpu.cluster.host_state
"""

EXAMPLES = r"""
- name: Install containerd at 1.7 and hold it
  kubegpu.cluster.packages:
    names: [containerd=1.7.*]
    update_cache: true
    cache_valid_time: 3600
    allow_change_held_packages: true
    hold: [containerd]
  register: containerd_install

- name: Install the base packages, with the stage's own reading of them
  kubegpu.cluster.packages:
    names: [curl, jq]
    reading: "{{ stage_state }}"
"""

RETURN = r"""
installed:
  description: The entries of O(names) this call gave the package manager (after the reading, only the missing ones).
  returned: always
  type: list
  elements: str
held_now:
  description: The names this call held (none on a converged host).
  returned: always
  type: list
  elements: str
index_downloaded:
  description: Whether the call downloaded an apt index first, on a host that had none.
  returned: always
  type: bool
module_runs:
  description: How many modules the call ran on the host (the reading, the index, the install, each hold).
  returned: always
  type: int
msg:
  description: The package module's message, or why nothing was installed.
  returned: always
  type: str
results:
  description: With O(debs), one apt result per file.
  returned: when O(debs) is given
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    names=dict(type="list", elements="str"),
    debs=dict(type="list", elements="path"),
    state=dict(type="str", default="present", choices=["present", "latest", "absent"]),
    manager=dict(type="str", choices=["apt", "dnf"]),
    update_cache=dict(type="bool"),
    cache_valid_time=dict(type="int"),
    install_recommends=dict(type="bool"),
    allow_downgrade=dict(type="bool"),
    allow_change_held_packages=dict(type="bool"),
    disable_excludes=dict(type="str"),
    hold=dict(type="list", elements="str", default=[]),
    held=dict(type="list", elements="str"),
    reading=dict(type="dict"),
    lock_timeout=dict(type="int"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="kubegpu.cluster.packages runs on the controller (an action plugin); "
                         "it was run as a module on the host")


if __name__ == "__main__":
    main()
