# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Docker Engine's daemon.json merged, never templated (the docker_daemon_json module).

The file is read, the wanted keys are combined into it (the rest of the file is kept),
and it is written back only when the result differs, as a JSON object. Pure functions
(parse, combine, settings, merge, render) and the module's run(). Runs on the managed
host: Python 3.8, standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import tempfile

# The exec-opts entry that sets the cgroup driver; every other entry is the user's.
CGROUP_DRIVER_OPT = 'native.cgroupdriver='

REFUSED_MSG = ('{path} is not a valid JSON object ({reason}). It was NOT changed. Fix: repair it by '
               'hand (`python3 -m json.tool {path}` shows where it breaks) or move it away, then '
               're-run the container_runtime stage.')


class DaemonJsonError(Exception):
    """The file is not a JSON object; nothing may be written over it."""


def parse(text):
    """The JSON object of daemon.json's text; an empty (or blank) file is an empty object."""
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise DaemonJsonError(str(exc))
    if not isinstance(value, dict):
        raise DaemonJsonError('daemon.json is JSON but not an object')
    return value


def combine(base, other):
    """``other`` over ``base``, recursively: where both hold an object under a key, the
    objects are combined; any other value of ``other`` (a list included) replaces
    ``base``'s. Ansible's ``combine(recursive=true)``. Neither argument is changed."""
    result = dict(base)
    for key, value in other.items():
        if isinstance(result.get(key), dict) and isinstance(value, dict):
            result[key] = combine(result[key], value)
        else:
            result[key] = value
    return result


def exec_opts(current, cgroup_driver):
    """``current``'s exec-opts with its cgroup driver entry replaced by ``cgroup_driver``'s;
    the other entries are kept in their order (a value that is not a list is replaced)."""
    have = current.get('exec-opts', [])
    kept = [entry for entry in have if not (isinstance(entry, str) and entry.startswith(CGROUP_DRIVER_OPT))] \
        if isinstance(have, list) else []
    return kept + [CGROUP_DRIVER_OPT + cgroup_driver]


def settings(current, cgroup_driver=None, log_driver=None, log_opts=None, live_restore=None,
             registry_mirrors=None, runtimes=None, default_runtime=None):
    """The keys this module sets, given the file's object ``current``. An option left as
    None (or an empty list of mirrors, an empty dict of runtimes) sets nothing."""
    ours = {}
    if cgroup_driver:
        ours['exec-opts'] = exec_opts(current, cgroup_driver)
    if log_driver:
        ours['log-driver'] = log_driver
    if log_opts:
        ours['log-opts'] = dict((key, str(value)) for key, value in log_opts.items())
    if live_restore is not None:
        ours['live-restore'] = bool(live_restore)
    if registry_mirrors:
        ours['registry-mirrors'] = list(registry_mirrors)
    if runtimes:
        ours['runtimes'] = runtimes
    if default_runtime:
        ours['default-runtime'] = default_runtime
    return ours


def merge(current, extra=None, **options):
    """The object to write: ``current``, our keys (settings()) combined in, then ``extra``."""
    return combine(combine(current, settings(current, **options)), extra or {})


def render(value):
    """The file's text: 2-space indented, keys sorted, a final newline (to_nice_json)."""
    return json.dumps(value, indent=2, sort_keys=True, separators=(',', ': ')) + '\n'


def _read(path):
    try:
        with open(path, 'rb') as stream:
            return stream.read().decode('utf-8')
    except (IOError, OSError) as exc:
        if not os.path.exists(path):
            return None
        raise DaemonJsonError('cannot read it: %s' % exc)
    except UnicodeDecodeError as exc:
        raise DaemonJsonError(str(exc))


OPTIONS = ('cgroup_driver', 'log_driver', 'log_opts', 'live_restore', 'registry_mirrors',
           'runtimes', 'default_runtime')


def run(module):
    """Read, merge, compare; write (atomically, after a backup) unless check mode."""
    params = module.params
    path = params['path']
    # A symbolic link is kept: the file it leads to is the one read and written.
    target = os.path.realpath(path) if os.path.islink(path) else path
    try:
        before = _read(target)
        current = parse(before or '')
    except DaemonJsonError as exc:
        module.fail_json(msg=REFUSED_MSG.format(path=path, reason=str(exc)[:300]), path=path)
    wanted = merge(current, params['extra'], **dict((name, params[name]) for name in OPTIONS))
    after = render(wanted)
    changed = before is None or wanted != current
    result = dict(changed=changed, target=target, created=before is None, config=wanted)
    if changed and not module.check_mode:
        directory = os.path.dirname(target) or '.'
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        if params['backup'] and before is not None:
            result['backup_file'] = module.backup_local(target)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(target), dir=directory)
        with os.fdopen(fd, 'wb') as stream:
            stream.write(after.encode('utf-8'))
        module.atomic_move(tmp, target)
        if before is None and params['mode'] is None:
            os.chmod(target, 0o644)
    if os.path.exists(target):
        file_args = module.load_file_common_arguments(params, path=target)
        result['changed'] = module.set_fs_attributes_if_different(file_args, result['changed'])
    if module._diff:
        result['diff'] = dict(before=before or '', after=after if changed else before,
                              before_header=target, after_header=target)
    module.exit_json(**result)
