# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters over containerd's runtime handlers (container_runtime_cri_handlers)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: runtime
short_description: containerd's CRI runtime handlers and the RuntimeClass decision
description:
  - C(containerd_cri_handlers(merged=None)) turns the text of containerd's config.toml (read in this run)
    into a dict with C(default), the default runtime handler (C(runc) when the file sets none), and
    C(names), the configured handlers. With C(merged), the registered result of
    M(kubegpu.cluster.containerd_config) when it ran. Null when there is no file or it does not parse
    (unknown).
  - C(nvidia_runtime_class_needed(handler='nvidia')) takes a list of such answers (one per node, null
    for a node that published none) and is true when pods on any of them need
    C(runtimeClassName) C(handler), that is when it is not that node's default or is unknown. Stage 7 and validate
    both decide with it (docs/contracts.md).
  - C(reading_path_exists(path, results=[])) takes a registered result of M(kubegpu.cluster.host_state)
    (option C(paths)) read before a stage's installs, and returns whether C(path) exists, or null where the
    reading cannot tell - it did not run or did not read C(path), or one of C(results) (the installs since)
    changed something; the caller then looks again (container_runtime's containerd program).
author: kubegpu maintainers
options:
  _input:
    description: config.toml text (containerd_cri_handlers), a list of handler answers, or a host_state
      result (reading_path_exists).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Publish the handlers
  ansible.builtin.set_fact:
    container_runtime_cri_handlers: "{{ _text | kubegpu.cluster.containerd_cri_handlers }}"
"""

RETURN = r"""
_value:
  description: C({default, names}) or null; or a boolean (or null, reading_path_exists).
  type: raw
"""

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_packages = _lazy.Module("plugin_utils._packages")
_runtime_class = _lazy.Module("plugin_utils._runtime_class")


def containerd_cri_handlers(text, merged=None):
    """The runtime handlers of a containerd config (see the module docstring)."""
    return _runtime_class.cri_handlers(text, merged=merged)


def nvidia_runtime_class_needed(nodes, handler="nvidia"):
    """Whether pods on any of the nodes need runtimeClassName handler."""
    return _runtime_class.runtime_class_needed(nodes, handler=handler)


def reading_path_exists(reading, path, results=None):
    """Whether path exists per a reading taken before the installs in results; None: look again."""
    return _packages.path_exists_after(reading, str(path), list(results or []))


class FilterModule:
    """kubegpu runtime filters."""

    def filters(self):
        return {
            "containerd_cri_handlers": containerd_cri_handlers,
            "nvidia_runtime_class_needed": nvidia_runtime_class_needed,
            "reading_path_exists": reading_path_exists,
        }
