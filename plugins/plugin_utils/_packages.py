# SPDX-License-Identifier: Apache-2.0
"""What a call of kubegpu.cluster.packages (the one package plumbing) reads, installs and holds.

The module (an action plugin, plugins/action/packages.py) reads the requested packages first (kubegpu.cluster.host_state: dpkg's
status, in Python, with the pinned versions) and runs apt only for those not installed or
not at their version, so a converged host gets one light read instead of apt opening its
cache, and apt's lists are not refreshed where nothing is to be installed. These
functions are the only place that splits a request and compares it with the reading.
"""

from __future__ import annotations

# What dnf's version locks need (community.general.dnf_versionlock): a hold on a RHEL-family
# host installs it first (plugins/action/packages.py), and the offline bundle carries it.
DNF_LOCK_PLUGIN = "python3-dnf-plugin-versionlock"


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


APT_LISTS = "/var/lib/apt/lists/*_Packages*"


def manager(requested, facts):
    """apt or dnf: ``requested`` where given; else apt where the host's package manager is
    apt (without that fact: the Debian family), dnf otherwise (dnf, dnf5)."""
    if requested:
        return requested
    facts = facts or {}
    pkg_mgr = facts.get("pkg_mgr") or ("apt" if facts.get("os_family", "") == "Debian" else "dnf")
    return "apt" if pkg_mgr == "apt" else "dnf"


def reads_first(args, pkg_manager):
    """Whether a call reads dpkg's status before it runs apt: apt, names (no package
    files), state present, and names to compare or holds the caller has not read."""
    return (pkg_manager == "apt" and not args.get("debs")
            and (args.get("state") or "present") == "present"
            and bool(args.get("names") or (args.get("hold") and args.get("held") is None)))


def read_request(args):
    """host_state's options for the reading: every name asked or to hold, the pinned
    versions, and apt's lists (whether the host has an index at all)."""
    request = split_request(args.get("names"))
    names = []
    for name in request["names"] + list(args.get("hold") or []):
        if name not in names:
            names.append(name)
    return {"packages": names, "package_versions": request["versions"], "globs": [APT_LISTS]}


def handed_reading(reading, request):
    """A reading the caller hands over (its own host_state result), as this call's own
    reading of ``request`` (read_request's) would be; None where it does not answer it:
    a package not read, read at another pinned version, or apt's lists not looked at."""
    if not isinstance(reading, dict) or reading.get("failed") or reading.get("skipped"):
        return None
    packages = reading.get("packages") or {}
    globs = reading.get("globs") or {}
    if APT_LISTS not in globs or any(name not in packages for name in request["packages"]):
        return None
    if any((packages[name] or {}).get("wanted_version") != request["package_versions"].get(name)
           for name in request["packages"]):
        return None
    return {"packages": {name: packages[name] for name in request["packages"]},
            "packages_missing": [name for name in request["packages"]
                                 if not (packages[name] or {}).get("satisfied")],
            "globs": {APT_LISTS: globs[APT_LISTS]}}


def no_index(reading):
    """The reading found no apt index at all (a fresh minimal image)."""
    return bool(reading) and not (reading.get("globs") or {}).get(APT_LISTS, [None])


def to_hold(hold, held_known, installed, reading):
    """The names of ``hold`` to hold now: all where this call installed something;
    else those the caller does not know to be held (``held_known``, None: not given),
    else those the reading does not report held."""
    hold = list(hold or [])
    if installed:
        return hold
    already = held_known if held_known is not None else held(hold, reading)
    return [name for name in hold if name not in already]


def path_exists_after(reading, path, results=()):
    """Whether ``path`` exists, from a host_state reading taken before a stage's installs;
    None where the reading cannot tell and the caller must look again.

    The reading tells when it read ``path`` and none of ``results`` (the registered
    results of the installs run since) changed anything: then the host is as it was read.
    A reading that is missing, skipped, failed or without ``path`` cannot tell, nor can one
    taken before an install that changed something (even in check mode, where the install
    only would have)."""
    if not isinstance(reading, dict) or reading.get("failed") or reading.get("skipped"):
        return None
    found = (reading.get("paths") or {}).get(path)
    if not isinstance(found, dict) or "exists" not in found:
        return None
    if any(isinstance(result, dict) and result.get("changed") for result in results or ()):
        return None
    return bool(found["exists"])
