# SPDX-License-Identifier: Apache-2.0
"""Filters of the kubegpu role's entry point `package` (logic in plugins/plugin_utils/_packages.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: packages
short_description: What a package call installs and holds, from a reading of the host
description:
  - C(package_request(names)) splits apt's C(name=version) entries into C(names) and C(versions), the options
    kubegpu.cluster.host_state reads them with.
  - C(package_to_install(names, state)) is the entries of C(names) whose package host_state's reading C(state)
    reports missing or at another version; every entry where there is no reading.
  - C(package_held(names, state)) is the names the reading reports held.
author:
  - kubegpu maintainers (@kubegpu)
options:
  _input:
    description: Package names as the caller gives them (apt's C(name=version) allowed).
    type: list
    elements: str
    required: true
"""

RETURN = r"""
_value:
  description: A dict (C(package_request)) or a list of names, as each filter's line says.
  type: raw
"""

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _packages


def package_request(names):
    """Names and pinned versions of a request (see _packages.split_request)."""
    return _packages.split_request(names)


def package_to_install(names, state=None):
    """The entries still to install (see _packages.to_install)."""
    return _packages.to_install(names, state)


def package_held(names, state=None):
    """The names held already (see _packages.held)."""
    return _packages.held(names, state)


class FilterModule:
    """kubegpu package filters."""

    def filters(self):
        return {"package_request": package_request,
                "package_to_install": package_to_install,
                "package_held": package_held}
