# SPDX-License-Identifier: Apache-2.0
"""Filters comparing what kubegpu.cluster.host_state read with what a task would make."""

from __future__ import annotations

DOCUMENTATION = r"""
name: host_state
short_description: Compare a file host_state read with the content a task would write
description:
  - C(host_file_differs(have, content, mode='0644', uid=0, gid=0)) is true when the path
    C(have) (one entry of host_state's C(paths)) is absent, or its SHA-1, mode or owner
    differs from C(content) (the rendered template) and the wanted mode and owner.
  - C(kernel_prereqs_reads(modules, probes, sysctl)) is what host_state must read for
    C(kernel_prereqs_pending) (a dict of C(read) files and C(paths) to stat).
  - C(kernel_prereqs_pending(state, modules, probes, sysctl, modules_file, sysctl_file))
    is true when kubegpu.cluster.kernel_prereqs with these options would change anything
    or report anything, by the same functions the module plans with.
  - C(containerd_config_pending(state, path, settings, mode='0644', uid=0, gid=0)) is true
    when kubegpu.cluster.containerd_config with these merge settings would change the file
    host_state read (or create it, or stop on it). It merges with the module's own code,
    which needs tomlkit on the controller; without tomlkit the answer is always true.
author: kubegpu maintainers
options:
  _input:
    description: What kubegpu.cluster.host_state read (a file's or unit's state), as each filter's line says.
    type: raw
    required: true
"""

RETURN = r"""
_value:
  description: Whether a file or unit differs from what the task would make, or what differs, as each filter's
    line above says.
  type: raw
"""

import hashlib

from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd, _kernel


def host_file_differs(have, content, mode="0644", uid=0, gid=0):
    """True when the task that writes `content` with `mode`/`uid`/`gid` has work to do."""
    have = have or {}
    if not have.get("exists"):
        return True
    return (have.get("checksum") != hashlib.sha1(to_bytes(content)).hexdigest()
            or have.get("mode") != mode or have.get("uid") != uid or have.get("gid") != gid)


def kernel_prereqs_reads(modules, probes, sysctl):
    """The files (``read``) and paths (``paths``) host_state reads for kernel_prereqs_pending."""
    return {"read": [_kernel.proc_path(key) for key in sysctl],
            "paths": [_kernel.module_probe_path(name, probes) for name in modules]}


def kernel_prereqs_pending(state, modules, probes, sysctl, modules_file, sysctl_file):
    """True when kernel_prereqs has work or notes for this host, as host_state read it.

    A module not active, a /proc/sys key absent or at another value, or either file not
    as the module would write it: the module runs (and reports what the host refuses).
    Otherwise it would change nothing and say nothing.
    """
    files = state.get("files") or {}
    paths = state.get("paths") or {}
    if files.get(modules_file) != _kernel.render_modules_file(modules):
        return True
    sysctl_text = files.get(sysctl_file)
    if sysctl_text != _kernel.merge_sysctl(sysctl_text or "", sysctl):
        return True
    if not all((paths.get(_kernel.module_probe_path(name, probes)) or {}).get("exists") for name in modules):
        return True
    for key, value in sysctl.items():
        current = files.get(_kernel.proc_path(key))
        if current is None or not _kernel.same_value(current, value):
            return True
    return False


def containerd_config_pending(state, path, settings, mode="0644", uid=0, gid=0):
    """True unless containerd_config with ``settings`` would leave ``path`` as host_state read it.

    True where the file is absent (the module creates it), not a readable regular file,
    of config version 1 (the module checks containerd's version first), not parseable
    (the module says why), or when its mode or owner differ; and wherever the controller
    has no tomlkit to merge with.
    """
    have = (state.get("paths") or {}).get(path) or {}
    text = (state.get("files") or {}).get(path)
    if not have.get("exists") or not have.get("isreg") or text is None:
        return True
    if have.get("mode") != mode or have.get("uid") != uid or have.get("gid") != gid:
        return True
    if not _containerd.HAS_TOMLKIT:
        return True
    try:
        result = _containerd.merge(text, source=path, **_containerd.merge_settings(settings))
    except _containerd.ContainerdConfigError:
        return True
    return bool(result.changed or result.version == 1)


class FilterModule:
    """kubegpu host_state filters."""

    def filters(self):
        return {"host_file_differs": host_file_differs,
                "kernel_prereqs_reads": kernel_prereqs_reads,
                "kernel_prereqs_pending": kernel_prereqs_pending,
                "containerd_config_pending": containerd_config_pending}
