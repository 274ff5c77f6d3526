# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Kernel modules and parameters of a Kubernetes node, in one pass (kernel_prereqs module).

One module run does what used to take a task per module and per parameter: probe
which modules are active, write the modules-load.d file, load what is missing, merge
the parameters into their sysctl.d file and set them in /proc/sys where the kernel
lets this host. Nothing the host refuses is faked: a module a container cannot load,
a parameter /proc/sys lacks or will not let us write, each becomes a note.

Pure functions take their file system reads as arguments so unit tests need no host;
``run`` is the part that touches the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

MODULES_HEADER = (
    "# Managed by kubegpu (os_prereqs): kernel modules Kubernetes nodes need at boot.\n"
    "# Changes here are replaced on the next run; set os_prereqs_kernel_modules instead.\n"
)


def module_probe_path(name, probes=None):
    """The path that exists when module ``name`` is active (loaded or built in)."""
    probes = probes or {}
    return probes.get(name) or "/sys/module/%s" % name.replace("-", "_")


def proc_path(key):
    """/proc/sys path of a sysctl key written with dots (net.ipv4.ip_forward)."""
    return "/proc/sys/" + key.replace(".", "/")


def _value(value):
    """A sysctl value as sysctl.d and /proc/sys write it (booleans as 0/1)."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value).strip()


def same_value(current, wanted):
    """/proc/sys and sysctl.d compare values by whitespace-separated fields."""
    return str(current).split() == _value(wanted).split()


def render_modules_file(modules):
    return MODULES_HEADER + "".join("%s\n" % name for name in modules)


def _line_key(line):
    """The key a sysctl.d line sets, or None (comment, blank, not key=value)."""
    stripped = line.strip()
    if not stripped or stripped[0] in "#;" or "=" not in stripped:
        return None
    key = stripped.split("=", 1)[0].strip().lstrip("-")
    return key.replace("/", ".")


def merge_sysctl(text, settings):
    """``text`` (a sysctl.d file) with every key of ``settings`` set to its value.

    Lines for other keys, comments and order are kept; a key set more than once keeps
    its first line (updated only when its value differs) and loses the later ones,
    which would win at boot; missing keys are appended in the order of ``settings``.
    """
    wanted = dict((key, _value(value)) for key, value in settings.items())
    seen = set()
    out = []
    for line in text.splitlines():
        key = _line_key(line)
        if key in wanted:
            if key in seen:
                continue
            seen.add(key)
            if not same_value(line.split("=", 1)[1], wanted[key]):
                line = "%s = %s" % (key, wanted[key])
        out.append(line)
    out.extend("%s = %s" % (key, value) for key, value in wanted.items() if key not in seen)
    return "\n".join(out) + "\n" if out else ""


def plan(modules, settings, active, proc, sysctl_text):
    """What to do, from what was read.

    active: module name -> bool (probe path exists).
    proc: key -> None (no /proc/sys entry) or (current value, writable).
    Returns dict: load (modules to load), set (key -> value to write to /proc/sys),
    missing (keys without /proc/sys entry), readonly (key -> current, for differing
    values /proc/sys will not take), sysctl_text (new file content).
    """
    result = {"load": [m for m in modules if not active.get(m)], "set": {}, "missing": [], "readonly": {}}
    for key, value in settings.items():
        entry = proc.get(key)
        if entry is None:
            result["missing"].append(key)
            continue
        current, writable = entry
        if same_value(current, value):
            continue
        if writable:
            result["set"][key] = _value(value)
        else:
            result["readonly"][key] = current.strip()
    result["sysctl_text"] = merge_sysctl(sysctl_text, settings)
    return result


def notes(planned, settings, sysctl_file, modules_file, container_type, check_mode, loaded_later=()):
    """The reasons, one line each, for what this host did not take."""
    out = []
    if container_type:
        for name in planned["load"]:
            out.append("kernel module %s: not active, and this host is a %s container, which shares the host"
                       " kernel and cannot load modules into it. Load it on the host (%s is in place for a real"
                       " host)." % (name, container_type, modules_file))
    for key in planned["missing"]:
        if key in loaded_later:
            continue
        out.append("sysctl %s: /proc/sys has no such key (the module behind it is not loaded%s); persisted in"
                   " %s for the next boot." % (key, " - check mode loads nothing" if check_mode else "", sysctl_file))
    for key, current in planned["readonly"].items():
        out.append("sysctl %s is %s, wanted %s: /proc/sys is read-only on this host%s; persisted in %s for the"
                   " next boot." % (key, current, _value(settings[key]),
                                    " (%s container: the key belongs to the host kernel)" % container_type
                                    if container_type else "", sysctl_file))
    return out


def _read(path):
    try:
        with open(path) as stream:
            return stream.read()
    except (IOError, OSError):
        return None


def writable(path):
    """Whether this process may write ``path`` (False on a read-only /proc/sys)."""
    return os.access(path, os.W_OK)


def read_proc(keys):
    out = {}
    for key in keys:
        path = proc_path(key)
        current = _read(path)
        out[key] = None if current is None else (current, writable(path))
    return out


def _write_file(module, path, content, mode, backup):
    """Write ``content`` to ``path`` atomically; returns the backup file or None."""
    backup_file = None
    if backup and os.path.exists(path):
        backup_file = module.backup_local(path)
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory, 0o755)
    tmp = os.path.join(directory, ".%s.kubegpu-tmp" % os.path.basename(path))
    with open(tmp, "w") as stream:
        stream.write(content)
    os.chmod(tmp, mode)
    module.atomic_move(tmp, path)
    return backup_file


def apply(module, p):
    """Read, compare and act (kernel_prereqs' options in ``p``); returns the result."""
    modules, settings = p["modules"], p["sysctl"]
    container_type = p["container_type"] or ""
    active = dict((name, os.path.exists(module_probe_path(name, p["module_probes"]))) for name in modules)
    sysctl_before = _read(p["sysctl_file"])
    modules_before = _read(p["modules_file"])
    planned = plan(modules, settings, active, read_proc(settings), sysctl_before or "")
    modules_text = render_modules_file(modules)

    result = {"changed": False, "loaded": [], "set": {}, "files": []}
    if modules_before != modules_text:
        result["files"].append(p["modules_file"])
    if sysctl_before != planned["sysctl_text"]:
        result["files"].append(p["sysctl_file"])
    loadable = [] if container_type else planned["load"]
    result["changed"] = bool(result["files"] or loadable or planned["set"])
    if module._diff:
        result["diff"] = [
            {"before_header": path, "after_header": path, "before": before or "", "after": after}
            for path, before, after in ((p["modules_file"], modules_before, modules_text),
                                        (p["sysctl_file"], sysctl_before, planned["sysctl_text"]))
            if before != after]

    loaded_later = []
    if not module.check_mode:
        if p["modules_file"] in result["files"]:
            _write_file(module, p["modules_file"], modules_text, 0o644, False)
        if p["sysctl_file"] in result["files"]:
            backup = _write_file(module, p["sysctl_file"], planned["sysctl_text"], 0o644, p["backup"])
            if backup:
                result["backup_file"] = backup
        for name in loadable:
            rc, out, err = module.run_command([p["modprobe"], name])
            if rc != 0:
                module.fail_json(msg="kernel module %s: modprobe failed (rc=%d): %s. Install the module for this"
                                     " kernel or remove it from os_prereqs_kernel_modules." % (name, rc, (err or out).strip()),
                                 **result)
            result["loaded"].append(name)
        if loadable:
            # Loading a module (br_netfilter) brings the keys it provides into /proc/sys.
            again = read_proc(planned["missing"])
            for key in planned["missing"]:
                if again[key] is None:
                    continue
                loaded_later.append(key)
                current, writable = again[key]
                if same_value(current, settings[key]):
                    continue
                if writable:
                    planned["set"][key] = _value(settings[key])
                else:
                    planned["readonly"][key] = current.strip()
        for key, value in planned["set"].items():
            try:
                with open(proc_path(key), "w") as stream:
                    stream.write(value)
            except (IOError, OSError) as exc:
                module.fail_json(msg="sysctl %s=%s: cannot write %s: %s" % (key, value, proc_path(key), exc), **result)
            result["set"][key] = value
        result["changed"] = bool(result["files"] or result["loaded"] or result["set"])
    else:
        result["loaded"] = loadable
        result["set"] = planned["set"]
    result["notes"] = notes(planned, settings, p["sysctl_file"], p["modules_file"], container_type,
                            module.check_mode, loaded_later)
    return result


def with_swap(result, swap):
    """kernel_prereqs' result with the swap_off part's (its swap_off option): the swap
    result under ``swap``, its notes first, changed where either changed, its diff first."""
    if swap is None:
        return result
    result = dict(result)
    result["swap"] = dict((key, value) for key, value in swap.items() if key not in ("changed", "notes", "diff"))
    result["notes"] = swap["notes"] + result["notes"]
    result["changed"] = bool(result["changed"] or swap["changed"])
    if swap.get("diff"):
        result["diff"] = swap["diff"] + result.get("diff", [])
    return result
