# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""What a stage needs to know about a host, read in one module run (host_state module).

A stage used to ask the host one question per task: is this file there, with which
mode and content; is this package installed, at which version, held; is this unit
active and enabled; is the host a container. Each question was a module run (a Python
start on the host, a round trip from the controller). ``read_state`` answers all of
them at once and changes nothing; the stage's tasks then run only where the answer
differs from what they would make, and each task still does its own check when it runs.

Pure functions take what they parse as arguments so unit tests need no host; ``read_state``
is the part that touches the host (through the callables it is given).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import glob
import hashlib
import os
import re
import stat

# Files larger than this are not hashed (the stages manage small config files).
CHECKSUM_LIMIT = 4 * 1024 * 1024
# Files larger than this are not returned by ``read``.
READ_LIMIT = 1024 * 1024
DPKG_STATUS = "/var/lib/dpkg/status"
UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "UnitFileState")


def path_state(path):
    """stat of one path, without following a last-component symlink for the type."""
    try:
        lst = os.lstat(path)
    except OSError:
        return {"exists": False}
    try:
        st = os.stat(path)
    except OSError:
        st = lst  # a dangling symlink
    info = {
        "exists": True,
        "islnk": stat.S_ISLNK(lst.st_mode),
        "isdir": stat.S_ISDIR(st.st_mode),
        "isreg": stat.S_ISREG(st.st_mode),
        "mode": "%04o" % stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "size": st.st_size,
        "checksum": None,
    }
    if info["isreg"] and st.st_size <= CHECKSUM_LIMIT:
        digest = hashlib.sha1()
        try:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(65536), b""):
                    digest.update(block)
            info["checksum"] = digest.hexdigest()
        except OSError:
            pass
    return info


def read_text(path):
    """Content of a small text file, or None when it is absent, unreadable or too big."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(READ_LIMIT + 1)
    except OSError:
        return None
    if len(data) > READ_LIMIT:
        return None
    return data.decode("utf-8", errors="replace")


def parse_dpkg_status(text, names, match=None):
    """Installed version and hold of each package in ``names`` (and each whose name the
    compiled regex ``match`` matches) from dpkg's status file.

    A package counts as installed when dpkg says so for any of its architectures
    ("install ok installed", "hold ok installed"); a removed package whose config files
    remain ("deinstall ok config-files") or one left half-installed does not.
    """
    wanted = set(names)
    found = {}
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            if key in ("Package", "Status", "Version"):
                fields[key] = value.strip()
        name = fields.get("Package")
        if name not in wanted and not (match and name and match.search(name)):
            continue
        status = fields.get("Status", "").split()
        installed = len(status) == 3 and status[2] == "installed"
        entry = found.setdefault(name, {"installed": False, "version": None, "held": False})
        if installed:
            entry["installed"] = True
            entry["version"] = fields.get("Version")
        if status and status[0] == "hold":
            entry["held"] = True
    return found


def parse_rpm_query(text):
    """Lines of ``rpm -q --qf '%{NAME} %{VERSION}-%{RELEASE}\\n'`` (no epoch, as
    package_facts gives rpm versions); "package x is not installed" lines are skipped."""
    found = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2 or parts[1].startswith("package"):
            continue
        name, version = parts
        found[name] = {"installed": True, "version": version, "held": None}
    return found


def version_matches(installed, wanted, release_optional=False):
    """A version pin: the version exactly (epoch optional), or a glob with '*' (1.7.*).

    apt pins the whole version (name=1.7.24-1); dnf's name-version also matches any
    release (containerd.io-1.7.24 is 1.7.24-3.1.el9): ``release_optional``.
    """
    if not wanted:
        return True
    if installed is None:
        return False
    if "*" in wanted:
        return fnmatch.fnmatchcase(installed, wanted)
    for version in (installed, installed.split(":", 1)[-1]):
        if version == wanted or (release_optional and version.startswith(wanted + "-")):
            return True
    return False


def package_report(found, names, versions):
    """Per package: installed, version, held, and whether it satisfies its pin."""
    report = {}
    missing = []
    for name in list(names) + sorted(set(found) - set(names)):
        entry = dict(found.get(name) or {"installed": False, "version": None, "held": False})
        entry["wanted_version"] = versions.get(name) or None
        # rpm has no holds (held is None): its pins are dnf's name-version.
        entry["satisfied"] = entry["installed"] and version_matches(
            entry["version"], entry["wanted_version"], release_optional=entry["held"] is None)
        report[name] = entry
        if not entry["satisfied"] and name in names:
            missing.append(name)
    return report, missing


def parse_systemctl_show(text, units):
    """Blocks of ``systemctl show -p Id,LoadState,... unit...``, in the order asked."""
    blocks = text.strip("\n").split("\n\n") if text.strip() else []
    result = {}
    for unit, block in zip(units, blocks):
        props = {}
        for line in block.splitlines():
            if "=" in line:
                key, value = line.split("=", 1)
                props[key] = value
        result[unit] = {
            "load": props.get("LoadState", ""),
            "active": props.get("ActiveState", ""),
            "sub": props.get("SubState", ""),
            "unit_file": props.get("UnitFileState", ""),
        }
    return result


def parse_list_units(text):
    """Lines of ``systemctl list-units --all --plain --no-legend``: unit load active sub."""
    units = []
    for line in text.splitlines():
        parts = line.split(None, 4)
        if len(parts) >= 4:
            units.append({"unit": parts[0], "load": parts[1], "active": parts[2], "sub": parts[3]})
    return units


def read_state(params, run_command, which):
    """Everything ``params`` asks for. ``run_command(argv)`` -> (rc, out, err);
    ``which(name)`` -> path or None."""
    result = {
        "paths": {p: path_state(p) for p in params.get("paths") or []},
        "files": {p: read_text(p) for p in params.get("read") or []},
        "globs": {g: sorted(glob.glob(g)) for g in params.get("globs") or []},
        "packages": {},
        "packages_missing": [],
        "units": {},
        "unit_lists": {},
        "container_type": None,
    }

    names = params.get("packages") or []
    match = re.compile(params["package_match"]) if params.get("package_match") else None
    if names or match:
        versions = params.get("package_versions") or {}
        if os.path.exists(DPKG_STATUS):
            found = parse_dpkg_status(read_text(DPKG_STATUS) or "", names, match)
        elif which("rpm"):
            query = ["-qa"] if match else ["-q"]
            _rc, out, _err = run_command(
                [which("rpm")] + query + ["--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n"] + ([] if match else list(names)))
            found = parse_rpm_query(out)
            if match:
                found = dict((n, e) for n, e in found.items() if n in names or match.search(n))
        else:
            found = {}
        result["packages"], result["packages_missing"] = package_report(found, names, versions)

    units = params.get("units") or []
    types = params.get("unit_types") or []
    systemctl = which("systemctl") if (units or types) else None
    if units and systemctl:
        rc, out, _err = run_command(
            [systemctl, "show", "--property=" + ",".join(UNIT_PROPERTIES), "--"] + list(units))
        if rc == 0:
            result["units"] = parse_systemctl_show(out, units)
    for unit_type in types:
        if not systemctl:
            break
        rc, out, _err = run_command(
            [systemctl, "list-units", "--type=" + unit_type, "--all", "--plain", "--no-legend", "--no-pager"])
        result["unit_lists"][unit_type] = parse_list_units(out) if rc == 0 else []

    if params.get("container"):
        detect = which("systemd-detect-virt")
        if detect:
            rc, out, _err = run_command([detect, "--container"])
            # Exit status 1 with "none": not a container.
            result["container_type"] = out.strip() if rc == 0 else ""
        else:
            result["container_type"] = ""
    return result
