# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Installed kernels, the kernel that boots next, and which of them have the NVIDIA module.

Host side of "kernels that keep their driver" (kernel_modules module): one reading of
/boot, /lib/modules, the boot loader's default and ``dkms status``; optionally a DKMS
build for each installed kernel that lacks the module. The decisions made from this
reading (which packages each kernel needs, may the host reboot) are the controller's:
plugins/plugin_utils/_driver_packages.py ``kernel_packages`` and _driver_plan.py
``boot_kernel_problem``.

Facts this follows (docs/nvidia_driver.md, "Kernels that keep their driver"):

- ``dkms status`` prints one line per module/version/kernel/arch. DKMS 3.x writes
  ``<module>/<version>, <kernel>, <arch>: <state>``, DKMS 2.x wrote
  ``<module>, <version>, <kernel>, <arch>: <state>``; a module only added has no kernel
  and arch (``<module>/<version>: added``); an installed one may carry notes in
  parentheses (``installed (original_module exists)``); a weak install (RHEL's
  weak-updates) reads ``<module>, <version>, <kernel>, <arch>: installed-weak from
  <kernel>`` in both. ``do_status``/``do_status_weak`` in https://github.com/dell/dkms
  (``dkms`` at tag v2.8.5, ``dkms.in`` on master); checked with Debian 12's dkms 3.0.10.
- GRUB's default entry (``GRUB_DEFAULT=0``, Debian's and Ubuntu's default) is the newest
  kernel: grub-mkconfig's 10_linux lists the /boot/vmlinuz-* images sorted by
  ``version_sort`` (sort -V), newest first
  (https://git.savannah.gnu.org/cgit/grub.git/tree/util/grub.d/10_linux.in).
  On RHEL the default is what ``grubby --default-kernel`` prints (grubby(8)).
- A kernel's headers are there when /lib/modules/<kernel>/build resolves (Debian's and
  Ubuntu's linux-headers-<kernel> ship that link; on RHEL kernel-core ships it and
  kernel-devel-<kernel> gives its target).

Pure functions take what was read as arguments; ``read`` and ``apply`` touch the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

# dkms status, DKMS 3.x and 2.x (see the module docstring).
_STATUS_NEW = re.compile(
    r"^(?P<module>[^/,\s]+)/(?P<version>[^,:\s]+)(?:,\s*(?P<kernel>[^,:\s]+),\s*(?P<arch>[^,:\s]+))?"
    r":\s*(?P<state>[A-Za-z-]+)(?P<note>.*)$")
_STATUS_OLD = re.compile(
    r"^(?P<module>[^/,\s]+),\s*(?P<version>[^,:\s]+)(?:,\s*(?P<kernel>[^,:\s]+),\s*(?P<arch>[^,:\s]+))?"
    r":\s*(?P<state>[A-Za-z-]+)(?P<note>.*)$")
KO_SUFFIXES = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")
# Not kernel images: grub's and RHEL's rescue images, backup copies.
_SKIP_IMAGE = re.compile(r"^(0-rescue-|.*\.old$|.*\.bak$)")


def parse_status(text):
    """``dkms status`` output -> [{'module', 'version', 'kernel', 'arch', 'state', 'note'}].

    Both formats; lines that are neither (warnings DKMS prints on the same stream) are
    left out. kernel and arch are None for a module only added."""
    entries = []
    for line in (text or "").splitlines():
        line = line.strip()
        match = _STATUS_NEW.match(line) or _STATUS_OLD.match(line)
        if not match:
            continue
        entry = match.groupdict()
        entry["state"] = entry["state"].lower()
        # " (original_module exists)", " (WARNING! ...)", " from <kernel>" (installed-weak)
        entry["note"] = (entry.get("note") or "").strip()
        if entry["note"].startswith("(") and entry["note"].endswith(")") and entry["note"].count("(") == 1:
            entry["note"] = entry["note"][1:-1]
        entries.append(entry)
    return entries


def version_key(release):
    """A sort key for kernel releases as ``sort -V`` orders them: digit runs compare as
    numbers, other runs as text (6.1.0-9 < 6.1.0-10 < 6.12.38+deb12)."""
    key = []
    for chunk in re.findall(r"\d+|\D+", str(release or "")):
        key.append((1, int(chunk), "") if chunk.isdigit() else (0, 0, chunk))
    return tuple(key)


def newest(releases):
    """The newest of the kernel releases (sort -V), or None."""
    releases = [r for r in releases or [] if r]
    return max(releases, key=version_key) if releases else None


def grub_setting(text, name="GRUB_DEFAULT"):
    """The value /etc/default/grub gives a variable (last assignment, quotes removed), or None."""
    value = None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("#") or not line.startswith(name + "="):
            continue
        value = line.split("=", 1)[1].strip().strip("'\"")
    return value


def _release_in(text, releases):
    """The longest kernel release written inside ``text`` (a menu entry title or id), or None."""
    found = [r for r in releases if r and r in (text or "")]
    return max(found, key=len) if found else None


def next_boot(images, grub_default=None, grubenv_saved=None, grubby_default=None):
    """(kernel, rule): the kernel the next boot starts, or (None, why it is unknown).

    images: releases with a /boot/vmlinuz-<release>; grubby_default: what
    ``grubby --default-kernel`` printed (RHEL); grub_default: GRUB_DEFAULT from
    /etc/default/grub; grubenv_saved: saved_entry from /boot/grub/grubenv."""
    images = sorted(set(images or []), key=version_key, reverse=True)
    if grubby_default:
        path = grubby_default.strip().splitlines()[0].strip() if grubby_default.strip() else ""
        release = os.path.basename(path)
        release = release[len("vmlinuz-"):] if release.startswith("vmlinuz-") else release
        if release:
            return release, "grubby --default-kernel"
    if not images:
        return None, "no kernel image in /boot"
    value = "0" if grub_default in (None, "") else str(grub_default)
    if value == "0":
        return images[0], "GRUB_DEFAULT=0: the newest kernel in /boot"
    if value == "saved":
        release = _release_in(grubenv_saved, images)
        if release:
            return release, "GRUB_DEFAULT=saved: saved_entry %s" % grubenv_saved
        if not grubenv_saved:
            return images[0], "GRUB_DEFAULT=saved, no saved_entry: the first entry, the newest kernel in /boot"
        return None, "GRUB_DEFAULT=saved, saved_entry %r names no installed kernel" % grubenv_saved
    release = _release_in(value, images)
    if release:
        return release, "GRUB_DEFAULT=%s" % value
    return None, "GRUB_DEFAULT=%s does not name an installed kernel" % value


def kernel_rows(installed, headers, module_files, entries, dkms_module):
    """{release: {'headers', 'module', 'module_files', 'dkms_state'}} for each installed kernel.

    A kernel has the module when DKMS says ``installed`` for ``dkms_module`` on it, or a
    kernel object of the NVIDIA module was found in its module tree (precompiled
    packages, kmod packages, a module installed by hand)."""
    rows = {}
    for release in installed:
        states = [e for e in entries if e["module"] == dkms_module and e.get("kernel") == release]
        state = None
        if states:
            # installed beats built beats anything else, whatever the version order.
            rank = {"installed": 3, "installed-weak": 3, "built": 2}
            state = max(states, key=lambda e: (rank.get(e["state"], 1), version_key(e["version"])))["state"]
        files = sorted(module_files.get(release) or [])
        rows[release] = {
            "headers": bool(headers.get(release)),
            "module": state in ("installed", "installed-weak") or bool(files),
            "module_files": files,
            "dkms_state": state,
        }
    return rows


def dkms_version(entries, dkms_module):
    """The newest version of ``dkms_module`` DKMS knows (added, built or installed), or None."""
    versions = [e["version"] for e in entries if e["module"] == dkms_module]
    return newest(versions)


def to_build(rows, entries, dkms_module):
    """(build, no_headers): kernels DKMS can give the module now, and those that need headers first."""
    if dkms_version(entries, dkms_module) is None:
        return [], []
    build = [k for k, row in sorted(rows.items()) if not row["module"] and row["headers"]]
    no_headers = [k for k, row in sorted(rows.items()) if not row["module"] and not row["headers"]]
    return build, no_headers


# ---------------------------------------------------------------------------
# On the host.

def _listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def find_module_files(modules_dir, release, names):
    """Paths (relative to /lib/modules/<release>) of kernel objects named ``names`` (any
    compression); the build and source links are not followed."""
    wanted = set()
    for name in names or []:
        for suffix in KO_SUFFIXES:
            wanted.add(name + suffix)
            wanted.add(name.replace("-", "_") + suffix)
    top = os.path.join(modules_dir, release)
    found = []
    for root, dirs, files in os.walk(top):
        if root == top:
            dirs[:] = [d for d in dirs if d not in ("build", "source")]
        for name in files:
            if name in wanted:
                found.append(os.path.relpath(os.path.join(root, name), top))
    return found


def installed_kernels(modules_dir, boot_dir):
    """(installed, images): releases with a kernel image in /boot or an installed module tree
    (/lib/modules/<release>/modules.order or kernel/); releases with a /boot/vmlinuz-<release>.
    A /lib/modules/<release> holding only the headers' build link is not a kernel."""
    images = []
    for name in _listdir(boot_dir):
        if name.startswith("vmlinuz-"):
            release = name[len("vmlinuz-"):]
            if release and not _SKIP_IMAGE.match(release):
                images.append(release)
    trees = [r for r in _listdir(modules_dir)
             if os.path.exists(os.path.join(modules_dir, r, "modules.order"))
             or os.path.isdir(os.path.join(modules_dir, r, "kernel"))]
    installed = sorted(set(images) | set(trees), key=version_key, reverse=True)
    return installed, sorted(images, key=version_key, reverse=True)


def read(params, run_command, which):
    """The host's kernels and their NVIDIA module (the module's RETURN, without changes)."""
    modules_dir, boot_dir = params["modules_dir"], params["boot_dir"]
    installed, images = installed_kernels(modules_dir, boot_dir)
    running = os.uname()[2]
    dkms = which("dkms") if params.get("dkms_bin") is None else params["dkms_bin"]
    status_text, dkms_error = "", ""
    if dkms:
        rc, out, err = run_command([dkms, "status"])
        if rc == 0:
            status_text = out
        else:
            dkms_error = (err or out).strip()
    entries = parse_status(status_text)
    grubby = which("grubby")
    grubby_default = None
    if grubby:
        rc, out, _err = run_command([grubby, "--default-kernel"])
        grubby_default = out if rc == 0 else None
    grub_text = _read(params["grub_default_file"])
    grubenv = _read(params["grubenv_file"]) or ""
    saved = None
    for line in grubenv.splitlines():
        if line.startswith("saved_entry="):
            saved = line.split("=", 1)[1].strip()
    boot, rule = next_boot(images, grub_setting(grub_text), saved, grubby_default)
    headers = dict((r, os.path.exists(os.path.join(modules_dir, r, "build"))) for r in installed)
    names = list(params.get("module_names") or []) or [params["dkms_module"]]
    module_files = dict((r, find_module_files(modules_dir, r, names)) for r in installed)
    rows = kernel_rows(installed, headers, module_files, entries, params["dkms_module"])
    return {
        "running": running,
        "installed": installed,
        "images": images,
        "boot_kernel": boot,
        "boot_rule": rule,
        "kernels": rows,
        "dkms": entries,
        "dkms_available": bool(dkms),
        "dkms_error": dkms_error,
        "dkms_module": params["dkms_module"],
        "dkms_version": dkms_version(entries, params["dkms_module"]),
    }


def apply(module, params):
    """read, then (``build``) ``dkms install`` the module for every installed kernel that has
    headers and lacks it; read again. Fails naming the kernel and DKMS' output when a build fails."""
    state = read(params, module.run_command, module.get_bin_path)
    build, no_headers = to_build(state["kernels"], state["dkms"], params["dkms_module"])
    state["built"] = []
    state["no_headers"] = no_headers
    if not params["build"] or not build:
        state["changed"] = False
        return state
    dkms = params.get("dkms_bin") or module.get_bin_path("dkms", required=True)
    version = state["dkms_version"]
    if not module.check_mode:
        for release in build:
            cmd = [dkms, "install", "-m", params["dkms_module"], "-v", version, "-k", release]
            rc, out, err = module.run_command(cmd)
            if rc != 0:
                module.fail_json(
                    msg="DKMS could not build %s/%s for kernel %s (rc %d): %s. Fix the build (its log is under "
                        "/var/lib/dkms/%s/%s/build/make.log), or remove that kernel, before rebooting into it."
                    % (params["dkms_module"], version, release, rc, (err or out).strip()[-800:],
                       params["dkms_module"], version),
                    cmd=cmd, kernel=release, **state)
        state.update(read(params, module.run_command, module.get_bin_path))
    state["built"] = build
    state["changed"] = True
    if module._diff:
        state["diff"] = {"before": "".join("%s: no %s module\n" % (k, params["dkms_module"]) for k in build),
                         "after": "".join("%s: %s/%s installed\n" % (k, params["dkms_module"], version) for k in build)}
    return state
