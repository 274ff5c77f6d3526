# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Swap off on a Kubernetes node, in one pass (the swap_off module).

Reads /proc/swaps, /etc/fstab and systemd's swap units; plans what differs; acts only
there: swapoff -a while swap is active (never in a container: swap belongs to the host
kernel there, which is reported instead), the fstab lines whose file system type is
swap commented out (backup first), swap units not masked yet masked. Runs on the
managed host: Python 3.8, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.kubegpu.cluster.plugins.module_utils._kernel import _read

# An uncommented /etc/fstab line whose third field (the file system type) is swap.
FSTAB_SWAP = re.compile(r'^([ \t]*[^#\s][^ \t]*[ \t]+[^ \t]+[ \t]+swap(?:[ \t].*)?)$')
COMMENT = '# kubegpu: swap off for kubelet: '


def active_swaps(proc_swaps_text):
    """The swap areas /proc/swaps lists (its first line is the header)."""
    lines = (proc_swaps_text or '').splitlines()[1:]
    return [line.split()[0] for line in lines if line.split()]


def comment_fstab(text, comment=COMMENT):
    """(new text, the lines commented out): every uncommented swap line of fstab text."""
    out, commented = [], []
    for line in (text or '').splitlines(True):
        body = line.rstrip('\r\n')
        if FSTAB_SWAP.match(body):
            commented.append(body)
            out.append(comment + body + line[len(body):])
        else:
            out.append(line)
    return ''.join(out), commented


def swap_units(list_units_text):
    """Swap units of `systemctl list-units --type=swap --all --plain --no-legend`, with
    their load state: [{"unit", "load"}]."""
    units = []
    for line in (list_units_text or '').splitlines():
        parts = line.split(None, 4)
        if len(parts) >= 2 and parts[0].endswith('.swap'):
            units.append({'unit': parts[0], 'load': parts[1]})
    return units


def plan(proc_swaps_text, fstab_text, list_units_text, container_type, mask_units=True, comment=COMMENT):
    """What is left to do, from what was read: swapoff (bool), the new fstab text and the
    lines it comments out, the units to mask, and notes (what this host does not allow)."""
    active = active_swaps(proc_swaps_text)
    new_fstab, commented = comment_fstab(fstab_text, comment)
    units = [u['unit'] for u in swap_units(list_units_text) if u['load'] != 'masked'] if mask_units else []
    notes = []
    if active and container_type:
        notes.append('swap: %s is active, but this host is a %s container: swap belongs to the host kernel, so '
                     'swapoff here is refused or would act on the host. Turn swap off on the host itself.'
                     % (', '.join(active), container_type))
    return {'active': active, 'swapoff': bool(active) and not container_type, 'fstab': new_fstab,
            'commented': commented, 'mask': sorted(set(units)), 'notes': notes}


def run(module):
    """The swap_off module: apply() with its own options, then exit."""
    module.exit_json(**apply(module, module.params))


def apply(module, p):
    """Read, compare and act (swap_off's options in ``p``: fstab, proc_swaps, mask_units,
    container_type, backup); returns the result. kernel_prereqs calls it too (its
    swap_off option), so one module run does both."""
    fstab_path = p['fstab']
    fstab_before = _read(fstab_path)
    systemctl = module.get_bin_path('systemctl') if p['mask_units'] else None
    units_text = ''
    if systemctl:
        rc, out, _err = module.run_command([systemctl, 'list-units', '--type=swap', '--all', '--plain',
                                            '--no-legend', '--no-pager'])
        units_text = out if rc == 0 else ''
    planned = plan(_read(p['proc_swaps']), fstab_before or '', units_text, p['container_type'] or '',
                   mask_units=bool(systemctl))
    result = {'changed': False, 'swapoff': planned['swapoff'], 'active': planned['active'],
              'fstab_commented': planned['commented'], 'masked': planned['mask'], 'notes': planned['notes']}
    result['changed'] = bool(planned['swapoff'] or planned['commented'] or planned['mask'])
    if module._diff and planned['commented']:
        result['diff'] = [{'before_header': fstab_path, 'after_header': fstab_path,
                           'before': fstab_before, 'after': planned['fstab']}]
    if module.check_mode or not result['changed']:
        return result

    if planned['swapoff']:
        rc, out, err = module.run_command([module.get_bin_path('swapoff', required=True), '-a'])
        if rc != 0:
            module.fail_json(msg='swapoff -a failed (rc=%d): %s' % (rc, (err or out).strip()), **result)
    if planned['commented']:
        if p['backup']:
            result['backup_file'] = module.backup_local(fstab_path)
        directory = os.path.dirname(fstab_path) or '.'
        tmp = os.path.join(directory, '.%s.kubegpu-tmp' % os.path.basename(fstab_path))
        with open(tmp, 'w') as stream:
            stream.write(planned['fstab'])
        os.chmod(tmp, os.stat(fstab_path).st_mode & 0o7777)
        module.atomic_move(tmp, fstab_path)
    if planned['mask']:
        rc, out, err = module.run_command([systemctl, 'mask', '--'] + planned['mask'])
        if rc != 0:
            units = ' '.join(planned['mask'])
            module.fail_json(msg='systemctl mask %s failed (rc=%d): %s' % (units, rc, (err or out).strip()), **result)
    return result
