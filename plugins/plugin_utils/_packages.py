# SPDX-License-Identifier: Apache-2.0
"""What a call of the kubegpu role's entry point `package` installs and holds.

The entry point reads the requested packages first (kubegpu.cluster.host_state: dpkg's
status, in Python, with the pinned versions) and runs apt only for those not installed or
not at their version, so a converged host gets one light read instead of apt opening its
cache, and apt's lists are not refreshed where nothing is to be installed. These
functions are the only place that splits a request and compares it with the reading.
"""

from __future__ import annotations


def split_request(names):
    """``['a', 'b=1.7.*']`` -> ``{'names': ['a', 'b'], 'versions': {'b': '1.7.*'}}`` (apt's name=version)."""
    plain, versions = [], {}
    for entry in names or []:
        name, sep, version = str(entry).partition("=")
        plain.append(name)
        if sep and version:
            versions[name] = version
    return {"names": plain, "versions": versions}


def to_install(names, state):
    """The entries of ``names`` (as asked, name=version kept) whose package the reading reports missing.

    ``state`` is host_state's result for the names of split_request; without a reading
    (None, or a skipped result) every entry is to install.
    """
    if not state or "packages_missing" not in state:
        return list(names or [])
    missing = set(state.get("packages_missing") or [])
    return [entry for entry in names or [] if str(entry).partition("=")[0] in missing]


def held(names, state):
    """The names in ``names`` the reading reports held (dpkg's hold selection)."""
    packages = (state or {}).get("packages") or {}
    return [name for name in names or [] if (packages.get(name) or {}).get("held")]
