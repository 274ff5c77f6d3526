# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Files a stage owns on a host, its directories, and lines it owns in a shared file, in
one pass (the host_files module).

Each directory is created or given its mode and owner only where that differs; each file
is read, compared with what it should be (content, mode, owner, or absent) and written
only where it differs; each line is added to or removed from its file only where that is
needed. One module run per host for all of a stage's files, instead of one
module run per file behind a Jinja condition. Runs on the managed host: Python 3.8,
standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import stat
import tempfile


def _read(path):
    try:
        with open(path, 'rb') as stream:
            return stream.read()
    except (IOError, OSError):
        return None


def _ids(owner, group):
    return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid


def _mode(value):
    return int(str(value), 8) if not isinstance(value, int) else value


def _attrs_differ(path, mode, uid, gid):
    st = os.stat(path)
    return stat.S_IMODE(st.st_mode) != mode or st.st_uid != uid or st.st_gid != gid


def plan_file(spec):
    """What to do with one file spec: ('write'|'attrs'|'remove'|None, before bytes or None, after bytes)."""
    path = spec['path']
    before = _read(path)
    if spec.get('state', 'present') == 'absent':
        return ('remove' if os.path.lexists(path) else None), before, None
    after = (spec.get('content') or '').encode('utf-8')
    if before != after:
        return 'write', before, after
    uid, gid = _ids(spec.get('owner') or 'root', spec.get('group') or 'root')
    if _attrs_differ(path, _mode(spec.get('mode') or '0644'), uid, gid):
        return 'attrs', before, after
    return None, before, after


def _dir_text(path):
    """A directory as the diff shows it: its mode and owner, or nothing where it is absent."""
    if not os.path.isdir(path):
        return ''
    st = os.stat(path)
    return 'directory %04o %d:%d\n' % (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def plan_directory(spec):
    """('mkdir'|'attrs'|None, before text, after text) for one directory spec. A path
    that exists and is not a directory is an error (ValueError): nothing is replaced."""
    path = spec['path']
    mode = _mode(spec.get('mode') or '0755')
    uid, gid = _ids(spec.get('owner') or 'root', spec.get('group') or 'root')
    after = 'directory %04o %d:%d\n' % (mode, uid, gid)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise ValueError('%s exists and is not a directory; it was NOT changed. Fix: move it away, '
                         'then run again.' % path)
    if not os.path.isdir(path):
        return 'mkdir', '', after
    if _attrs_differ(path, mode, uid, gid):
        return 'attrs', _dir_text(path), after
    return None, after, after


def line_text(before, line, state):
    """The file's text with `line` present once at least (appended) or absent; None when
    nothing changes."""
    text = (before or b'').decode('utf-8')
    lines = text.splitlines()
    if state == 'absent':
        if line not in lines:
            return None
        kept = [entry for entry in lines if entry != line]
        return ''.join(entry + '\n' for entry in kept)
    if line in lines:
        return None
    if text and not text.endswith('\n'):
        text += '\n'
    return text + line + '\n'


def plan_line(spec):
    """('write'|'attrs'|None, before bytes or None, after bytes or None) for one line spec."""
    path, state = spec['path'], spec.get('state', 'present')
    before = _read(path)
    if before is None and state == 'absent':
        return None, None, None
    text = line_text(before, spec['line'], state)
    if text is not None:
        return 'write', before, text.encode('utf-8')
    if state == 'present':
        uid, gid = _ids(spec.get('owner') or 'root', spec.get('group') or 'root')
        if _attrs_differ(path, _mode(spec.get('mode') or '0644'), uid, gid):
            return 'attrs', before, before
    return None, before, before


def _write(module, path, data, spec):
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        os.makedirs(directory, _mode(spec.get('directory_mode') or '0755'))
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), suffix='.kubegpu-tmp', dir=directory)
    with os.fdopen(fd, 'wb') as stream:
        stream.write(data)
    validate = spec.get('validate')
    if validate:
        rc, out, err = module.run_command(validate % tmp if '%s' in validate else validate + ' ' + tmp,
                                          use_unsafe_shell=False)
        if rc != 0:
            os.unlink(tmp)
            module.fail_json(msg='%s: the new content failed validation (%s, rc=%d): %s'
                                 % (path, validate, rc, (err or out).strip()))
    _set_attrs(tmp, spec)
    module.atomic_move(tmp, path)
    _set_attrs(path, spec)


def _set_attrs(path, spec):
    uid, gid = _ids(spec.get('owner') or 'root', spec.get('group') or 'root')
    os.chown(path, uid, gid)
    os.chmod(path, _mode(spec.get('mode') or '0644'))


def _text(data):
    if data is None:
        return ''
    return data if isinstance(data, str) else data.decode('utf-8', 'replace')


def run(module):
    result = {'changed': False, 'changed_paths': [], 'diff': []}
    actions = []
    for spec in module.params['directories']:
        try:
            actions.append((spec,) + plan_directory(spec))
        except ValueError as exc:
            module.fail_json(msg=str(exc))
    for spec in module.params['files']:
        actions.append((spec,) + plan_file(spec))
    for spec in module.params['lines']:
        actions.append((spec,) + plan_line(spec))
    for spec, action, before, after in actions:
        if not action:
            continue
        path = spec['path']
        if path not in result['changed_paths']:
            result['changed_paths'].append(path)
        if not spec.get('no_diff'):
            result['diff'].append({'before_header': path, 'after_header': path,
                                   'before': _text(before), 'after': _text(after)})
    result['changed'] = bool(result['changed_paths'])
    if not module._diff:
        result.pop('diff')
    if module.check_mode:
        module.exit_json(**result)
    for spec, action, before, after in actions:
        path = spec['path']
        if action == 'mkdir':
            os.makedirs(path, _mode(spec['mode']))
            _set_attrs(path, spec)
        elif action == 'remove':
            if spec.get('backup'):
                result.setdefault('backup_files', []).append(module.backup_local(path))
            os.unlink(path)
        elif action == 'write':
            if spec.get('backup') and before is not None:
                result.setdefault('backup_files', []).append(module.backup_local(path))
            _write(module, path, after, spec)
        elif action == 'attrs':
            _set_attrs(path, spec)
    module.exit_json(**result)
