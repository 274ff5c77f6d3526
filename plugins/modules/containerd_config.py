#!/usr/bin/python
# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: containerd_config
short_description: Edit containerd's config.toml in place, keeping what it does not own
version_added: "0.1.0"
description:
  - Makes the settings a Kubernetes GPU node needs true in containerd's C(config.toml)
    by editing the TOML document, not by templating it. Comments, key order, unknown
    keys and tables the module does not own (registry mirrors, other runtimes, other
    plugins) are kept.
  - "Owned settings: C(SystemdCgroup) in the options of C(runc) and of every runtime
    whose C(runtime_type) is C(io.containerd.runc.v2); the runtimes listed in
    O(runtimes); the CRI default runtime; the sandbox (pause) image; CDI; the registry
    hosts directory (C(config_path)); entries of the top-level C(imports) list; the
    CRI plugin's entries of the top-level C(disabled_plugins) list."
  - "The CRI plugin is always turned back on: C(cri), C(io.containerd.grpc.v1.cri) and
    containerd 2.x's C(io.containerd.cri.v1.runtime) and C(io.containerd.cri.v1.images)
    are removed from C(disabled_plugins) (Docker's C(containerd.io) package ships
    C(disabled_plugins = [\"cri\"]), which keeps kubelet from using containerd).
    Other entries are kept. RV(reenabled_plugins) lists what was removed."
  - Knows the CRI plugin layout of config versions 1 (no C(version) key, plugin
    C(cri)), 2 (C(io.containerd.grpc.v1.cri), containerd 1.x), 3 (containerd 2.x,
    C(io.containerd.cri.v1.runtime) and C(io.containerd.cri.v1.images)) and 4
    (treated like 3). See C(docs/containerd.md) for the table of paths.
  - When the file does not exist it starts from the installed containerd's own
    defaults (C(containerd config default)), never from an empty file, so runc keeps
    all its defaults and gets C(SystemdCgroup = true).
  - A file that configures nothing (empty, comments only, or nothing but an empty
    C(disabled_plugins) list once CRI is back on, like Docker's file) is filled in the
    layout the installed containerd reads, learnt from C(containerd --version) -
    C(version = 2) for containerd 1.x, C(version = 3) for 2.x - never in the version 1
    layout, whose CRI settings containerd 2.x ignores. When containerd does not report
    its version, version 2 is written (1.x reads it, 2.x migrates it on load) and a
    warning says so. Its comments are kept.
  - When O(path) is a symbolic link (an admin or config management pointing
    C(/etc/containerd/config.toml) at the file they manage) the link's target is edited
    in place; the link is kept. The backup, the temporary file of O(validate), the file
    attributes (O(mode), O(owner), ...) and the diff are those of the target. A link
    whose target does not exist is refused; nothing is created or replaced.
  - A file that is not valid TOML is refused and left untouched.
  - A file without a C(version) key (version 1) that sets anything else is refused when
    the installed containerd is 2.x or newer, because containerd 2.x ignores the CRI
    settings of a version 1 file; run C(containerd config migrate) first.
author:
  - kubegpu maintainers (@kubegpu)
requirements:
  - tomlkit >= 0.11 on the target host (Debian/Ubuntu/RHEL package C(python3-tomlkit)).
  - containerd on the target host when O(path) does not exist or has no C(version) key.
extends_documentation_fragment:
  - ansible.builtin.files
attributes:
  check_mode:
    support: full
    description: Computes the edit and reports it; writes nothing.
  diff_mode:
    support: full
    description: Returns the file's text before and after.
  idempotent:
    support: full
    description: A second run with the same options changes nothing (byte-identical file).
options:
  path:
    description:
      - The containerd config file. A symbolic link is followed; its target is edited
        (see RV(target)).
    type: path
    default: /etc/containerd/config.toml
  containerd_bin:
    description:
      - The containerd program, run as C(<containerd_bin> config default) when O(path)
        does not exist and as C(<containerd_bin> --version) when O(path) has no
        C(version) key.
    type: str
    default: containerd
  systemd_cgroup:
    description:
      - Value of C(SystemdCgroup) in the options of C(runc) and of every runtime of type
        C(io.containerd.runc.v2). V(true) is what kubelet's systemd cgroup driver needs.
      - When V(false), the key is set to false only where it is present.
    type: bool
    default: true
  sandbox_image:
    description:
      - The pod sandbox (pause) image. Version 1/2 C(sandbox_image), version 3/4
        C(pinned_images.sandbox) of the images plugin. Left alone when omitted.
    type: str
  runtimes:
    description:
      - Extra runtimes to have in the CRI plugin, for example C(nvidia).
      - A runtime that does not exist yet starts as a copy of the runtime named by
        O(runtimes[].inherit_from) (its options included, so C(SystemdCgroup) holds),
        like C(nvidia-ctk runtime configure) does. An existing one keeps its keys; the
        module only sets C(runtime_type), C(options.BinaryName) and O(runtimes[].options).
      - Runtimes that are not listed are never removed.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the runtime (the key under C(runtimes), the RuntimeClass handler).
        type: str
        required: true
      runtime_type:
        description: The shim.
        type: str
        default: io.containerd.runc.v2
      binary_name:
        description: C(options.BinaryName), the OCI runtime the runc shim runs.
        type: str
      options:
        description: Further keys to set in the runtime's C(options) table.
        type: dict
      inherit_from:
        description: Runtime to copy a new runtime from. Empty to start from nothing.
        type: str
        default: runc
  default_runtime:
    description:
      - The CRI C(default_runtime_name). Must be C(runc) or a runtime present in the
        file after the merge. Left alone when omitted.
    type: str
  cdi:
    description:
      - Value of the CRI C(enable_cdi) key. Left alone when omitted.
      - containerd 1.6 has no CDI support and ignores the key.
    type: bool
  cdi_spec_dirs:
    description: Value of the CRI C(cdi_spec_dirs) list. Left alone when omitted.
    type: list
    elements: str
  registry_config_path:
    description:
      - The registry hosts directory (C(certs.d/<host>/hosts.toml)), the C(config_path)
        of the CRI registry settings. Left alone when omitted.
      - Refused when the file still configures legacy C(registry.mirrors), which
        containerd does not accept together with C(config_path).
    type: str
  imports:
    description:
      - Entries (files or globs of drop-ins) the top-level C(imports) list must contain.
        Missing entries are appended; the user's entries are kept.
    type: list
    elements: str
  backup:
    description: Keep a timestamped copy of the file before changing it.
    type: bool
    default: true
  validate:
    description:
      - Command that checks the new file before it replaces O(path); C(%s) is the
        path of the temporary file, for example C(containerd --config %s config dump).
      - The file is not replaced when the command exits non-zero.
    type: str
  validate_requires:
    description:
      - A word that C(<containerd_bin> config --help) must print for O(validate) to run
        (C(dump) for C(config dump), which older containerd releases lack). Asked only
        when the file is about to change; without the word the file is written
        unvalidated and a warning says so.
    type: str
    version_added: "0.3.0"
notes:
  - A new file gets mode C(0644) unless O(mode) is given; an existing file keeps its
    mode, owner and group unless they are given. With a symbolic link these apply to its
    target.
  - With a symbolic link, O(validate) runs on a temporary file next to the target, so
    relative O(imports) entries are resolved from the target's directory there, while
    containerd resolves them from the directory of the path it is started with.
  - containerd reads its config at start; restart it after a change (the role's
    C(Restart containerd) handler).
  - Settings in drop-in files named by C(imports) can override this file; containerd
    older than 2.1 replaces a whole plugin table from an import instead of merging it.
seealso:
  - name: containerd configuration (CRI plugin)
    description: The CRI plugin's settings per config version.
    link: https://github.com/containerd/containerd/blob/main/docs/cri/config.md
"""

EXAMPLES = r"""
- name: Configure containerd for kubelet and the NVIDIA runtime
  kubegpu.cluster.containerd_config:
    path: /etc/containerd/config.toml
    systemd_cgroup: true
    sandbox_image: registry.k8s.io/pause:3.10
    runtimes:
      - name: nvidia
        binary_name: /usr/bin/nvidia-container-runtime
    default_runtime: nvidia
    cdi: true
    registry_config_path: /etc/containerd/certs.d
    validate: containerd --config %s config dump
  notify: Restart containerd

- name: Make sure drop-ins are read, without making nvidia the default
  kubegpu.cluster.containerd_config:
    imports:
      - /etc/containerd/conf.d/*.toml
    runtimes:
      - name: nvidia
        binary_name: /usr/bin/nvidia-container-runtime
    backup: false
"""

RETURN = r"""
version:
  description:
    - The config version of the file after the edit (1 when it has no C(version) key).
    - For a file that configured nothing, the version the module gave it.
  returned: always
  type: int
  sample: 2
target:
  description: The file edited - O(path), or the target of the symbolic link O(path).
  returned: always
  type: str
  sample: /srv/cfg/containerd.toml
reenabled_plugins:
  description: Entries removed from the top-level C(disabled_plugins) list to turn the CRI plugin back on (empty when none).
  returned: always
  type: list
  elements: str
  sample: [cri]
containerd_version:
  description: The installed containerd's version, from C(<containerd_bin> --version).
  returned: when the file has no C(version) key and containerd reported its version
  type: str
  sample: 1.7.24
created:
  description: Whether the file did not exist and was (or would be) created from C(containerd config default).
  returned: always
  type: bool
  sample: false
runtimes:
  description: Names of the CRI runtimes in the file after the edit.
  returned: always
  type: list
  elements: str
  sample: [runc, nvidia]
default_runtime:
  description: The CRI C(default_runtime_name) in the file after the edit (null when the file does not set it).
  returned: always
  type: str
  sample: nvidia
backup_file:
  description: Path of the backup made before the change (next to RV(target), a copy of its content).
  returned: when O(backup=true) and an existing file was changed
  type: str
  sample: /etc/containerd/config.toml.12345.2025-01-01@00:00:00~
diff:
  description: The text of RV(target) before and after (before is empty when the file did not exist); the headers name RV(target).
  returned: when diff mode is on
  type: dict
  sample: {before: "version = 2\n", after: "version = 2\n...", before_header: /etc/containerd/config.toml}
"""

import os
import tempfile
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text

from ansible_collections.kubegpu.cluster.plugins.module_utils._containerd import (
    HAS_TOMLKIT,
    TOMLKIT_IMPORT_ERROR,
    TOMLKIT_MISSING_MSG,
    RUNTIME_DEFAULTS,
    ContainerdConfigError,
    lacks_version_key,
    layout_for,
    merge,
    merge_settings,
    parse_containerd_version,
)


def _fail(module, msg, **kwargs):
    module.fail_json(msg=msg, **kwargs)


def _target(module, path):
    """The file to edit: ``path``, or the file a symbolic link at ``path`` leads to.

    The link itself is kept (it is how an admin or config management points containerd
    at the file they manage); a link that leads nowhere is refused, never replaced.
    """
    if not os.path.islink(path):
        return path
    target = os.path.realpath(path)
    if not os.path.exists(target):
        _fail(module, '%s is a symbolic link to %s, which does not exist (a dangling link, or a '
                      'loop of links); refusing to replace the link with a regular file. Fix: '
                      'create %s, or point the link at the config file containerd should read, '
                      'or remove the link so that the module creates %s from `containerd config '
                      'default`.' % (path, target, target, path))
    return target


def _read_or_default(module, path, target, containerd_bin):
    """(text, created): the text of ``target`` (``path`` or the file its link leads to),
    or containerd's defaults when there is no file."""
    if os.path.exists(target):
        if not os.path.isfile(target):
            where = target if target == path else '%s (the target of the symbolic link %s)' % (target, path)
            _fail(module, '%s exists and is not a regular file' % where)
        try:
            with open(target, 'rb') as handle:
                data = handle.read()
        except (IOError, OSError) as exc:
            _fail(module, 'cannot read %s: %s' % (target, to_native(exc)))
        try:
            return data.decode('utf-8'), False
        except UnicodeDecodeError as exc:
            _fail(module, '%s is not UTF-8 text, refusing to edit it: %s' % (target, to_native(exc)))
    command = [containerd_bin, 'config', 'default']
    rc, out, err = module.run_command(command)
    if rc != 0 or not out.strip():
        _fail(module, '%s does not exist and `%s` failed (is containerd installed?)'
              % (path, ' '.join(command)), rc=rc, stdout=out, stderr=err)
    return to_text(out), True


def _installed_version(module, containerd_bin):
    """(major, minor, patch) of the installed containerd, or None when it does not say."""
    rc, out, err = module.run_command([containerd_bin, '--version'])
    return parse_containerd_version(out) if rc == 0 else None


def _check_layout(module, result, installed, path):
    """Warn or refuse where the file's layout may not be the one containerd reads."""
    command = '%s --version' % module.params['containerd_bin']
    if result.filled and installed is None:
        module.warn('%s configures nothing and `%s` did not report a version; wrote the '
                    'version %d layout, which containerd 1.x reads and 2.x migrates on load'
                    % (path, command, result.version))
    if result.version != 1:
        return
    if installed is None:
        module.warn('%s has no "version" key (config version 1) and `%s` did not report a '
                    'version; editing it as version 1' % (path, command))
        return
    if installed[0] >= 2:
        _fail(module, '%s has no "version" key (config version 1); containerd %s ignores '
                      'the CRI settings of a version 1 file. Migrate it first '
                      '(`containerd config migrate`) or remove it to start from '
                      '`containerd config default`.' % (path, '.'.join(str(p) for p in installed)))


def _can_validate(module):
    """Whether this containerd has what O(validate) runs (O(validate_requires))."""
    word = module.params['validate_requires']
    if not word:
        return True
    rc, out, err = module.run_command([module.params['containerd_bin'], 'config', '--help'])
    if rc == 0 and word in out + err:
        return True
    module.warn('%s config --help does not mention "%s": the new config was not validated'
                % (module.params['containerd_bin'], word))
    return False


def _write(module, path, text, created):
    """Backup, validate on a temporary file, replace atomically. Returns backup path.

    ``path`` is the file itself (a symbolic link's target, never the link): the
    temporary file and the backup are made next to it."""
    params = module.params
    directory = os.path.dirname(path) or '.'
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o755)
        except OSError as exc:
            _fail(module, 'cannot create %s: %s' % (directory, to_native(exc)))
    backup_file = None
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, 'wb') as handle:
            handle.write(to_bytes(text))
        if params['validate'] and _can_validate(module):
            rc, out, err = module.run_command(params['validate'] % tmp)
            if rc != 0:
                _fail(module, 'failed to validate the new config: %s' % params['validate'],
                      rc=rc, stdout=out, stderr=err)
        if params['backup'] and not created:
            backup_file = module.backup_local(path)
        module.atomic_move(tmp, path, unsafe_writes=params['unsafe_writes'])
        if created and params['mode'] is None:
            os.chmod(path, 0o644)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return backup_file


def run_module(module):
    params = module.params
    path = params['path']
    if not HAS_TOMLKIT:
        module.fail_json(msg=TOMLKIT_MISSING_MSG, exception=to_native(TOMLKIT_IMPORT_ERROR))

    if params['validate'] and '%s' not in params['validate']:
        module.fail_json(msg='validate must contain %%s: %s' % params['validate'])

    target = _target(module, path)
    text, created = _read_or_default(module, path, target, params['containerd_bin'])
    # Without a version key the layout depends on the installed containerd: a file that
    # configures nothing gets the layout it reads, a version 1 file is refused on 2.x.
    installed = None
    asked = not created and lacks_version_key(text)
    if asked:
        installed = _installed_version(module, params['containerd_bin'])
    try:
        result = merge(
            text,
            source=target if not created else '`%s config default`' % params['containerd_bin'],
            blank_version=layout_for(installed) if asked else None,
            **merge_settings(params)
        )
    except ContainerdConfigError as exc:
        module.fail_json(msg=to_native(exc))

    if asked:
        _check_layout(module, result, installed, target)

    changed = result.changed or created
    backup_file = None
    if changed and not module.check_mode:
        backup_file = _write(module, target, result.after, created)

    if os.path.exists(target):
        file_args = module.load_file_common_arguments(params, path=target)
        changed = module.set_fs_attributes_if_different(file_args, changed)

    output = dict(
        changed=changed,
        created=created,
        target=target,
        version=result.version,
        runtimes=result.runtimes,
        default_runtime=result.default_runtime,
        reenabled_plugins=result.reenabled_plugins,
    )
    if installed is not None:
        output['containerd_version'] = '.'.join(str(part) for part in installed)
    if backup_file:
        output['backup_file'] = backup_file
    if module._diff:
        output['diff'] = dict(
            before='' if created else result.before,
            after=result.after,
            before_header=target,
            after_header=target,
        )
    module.exit_json(**output)


def main():
    argument_spec = dict(
        path=dict(type='path', default='/etc/containerd/config.toml'),
        containerd_bin=dict(type='str', default='containerd'),
        systemd_cgroup=dict(type='bool', default=True),
        sandbox_image=dict(type='str'),
        runtimes=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            runtime_type=dict(type='str', default=RUNTIME_DEFAULTS['runtime_type']),
            binary_name=dict(type='str'),
            options=dict(type='dict'),
            inherit_from=dict(type='str', default=RUNTIME_DEFAULTS['inherit_from']),
        )),
        default_runtime=dict(type='str'),
        cdi=dict(type='bool'),
        cdi_spec_dirs=dict(type='list', elements='str'),
        registry_config_path=dict(type='str'),
        imports=dict(type='list', elements='str'),
        backup=dict(type='bool', default=True),
        validate=dict(type='str'),
        validate_requires=dict(type='str'),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        add_file_common_args=True,
        supports_check_mode=True,
    )
    try:
        run_module(module)
    except ContainerdConfigError as exc:  # pragma: no cover - merge errors are caught above
        module.fail_json(msg=to_native(exc), exception=traceback.format_exc())


if __name__ == '__main__':
    main()
