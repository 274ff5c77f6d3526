# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Action of kubegpu.cluster.packages (documentation: plugins/modules/packages.py).

One task per package call: the reading (kubegpu.cluster.host_state), an apt index where the
host has none, the distribution's package module and the holds, run from here in the
order the entry point `package` of the kubegpu role ran them as seven tasks. What to read,
install and hold is decided by plugins/plugin_utils/_packages.py.
"""

from __future__ import annotations

import time

from ansible.plugins.action import ActionBase

from ansible_collections.kubegpu.cluster.plugins.modules.packages import ARGUMENT_SPEC
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _packages

DEFAULT_LOCK_TIMEOUT = 180
LOCK_RETRY_DELAY = 10
LOCK_MESSAGE = "Could not get lock"
# ansible.builtin.apt in check mode where python3-apt is missing: it cannot simulate.
NO_PYTHON_APT = "must be installed to use check mode"
# This module's options -> the package module's, where set.
APT_OPTIONS = {"update_cache": "update_cache", "cache_valid_time": "cache_valid_time",
               "install_recommends": "install_recommends", "allow_downgrade": "allow_downgrade",
               "allow_change_held_packages": "allow_change_held_packages"}
DNF_OPTIONS = {"install_recommends": "install_weak_deps", "allow_downgrade": "allow_downgrade",
               "disable_excludes": "disable_excludes"}


def _options(args, names):
    """The options of ``names`` (ours -> the package module's) that the call sets."""
    return dict((theirs, args[ours]) for ours, theirs in names.items() if args.get(ours) is not None)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        if args.get("lock_timeout") is None:
            args["lock_timeout"] = int(self._templar.template(task_vars.get("kubegpu_package_lock_timeout", DEFAULT_LOCK_TIMEOUT)))
        self._runs = 0
        self._task_vars = task_vars
        manager = _packages.manager(args.get("manager"), task_vars.get("ansible_facts"))
        if args.get("debs") and manager != "apt":
            return dict(result, failed=True, msg="packages: debs are installed with apt only; give dnf the files as names")
        try:
            if manager == "apt":
                outcome = self._apt(args)
            else:
                outcome = self._dnf(args)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        result.update(outcome)
        result["module_runs"] = self._runs
        return result

    # --- the module runs -------------------------------------------------------------
    def _module(self, name, module_args, check_mode=None):
        """One module run on the host; ``check_mode=False`` runs it for real in check mode too."""
        self._runs += 1
        saved = self._task.check_mode
        if check_mode is not None:
            self._task.check_mode = check_mode
        try:
            return self._execute_module(module_name=name, module_args=module_args, task_vars=self._task_vars)
        finally:
            self._task.check_mode = saved

    def _locked(self, name, module_args, lock_timeout, check_mode=None):
        """A package module run; apt's lists and archives locks waited out, as long again."""
        attempts = max(int(lock_timeout) // LOCK_RETRY_DELAY, 0) + 1
        for attempt in range(attempts):
            outcome = self._module(name, module_args, check_mode)
            # The package modules say it in msg, apt-get run as a command on stderr.
            said = "%s %s" % (outcome.get("msg", ""), outcome.get("stderr", ""))
            if not outcome.get("failed") or LOCK_MESSAGE not in said:
                break
            if attempt + 1 < attempts:
                time.sleep(LOCK_RETRY_DELAY)
        outcome["attempts"] = attempt + 1
        return outcome

    # --- apt ---------------------------------------------------------------------------
    def _apt(self, args):
        if args.get("debs"):
            return self._apt_debs(args)
        names = args.get("names")
        reading = None
        if _packages.reads_first(args, "apt"):
            request = _packages.read_request(args)
            reading = _packages.handed_reading(args.get("reading"), request)
            if reading is None:
                reading = self._module("kubegpu.cluster.host_state", request)
                if reading.get("failed"):
                    return dict(reading, msg="packages: reading dpkg's status failed: %s" % reading.get("msg", ""))
        to_install = _packages.to_install(names, reading) if names is not None else []
        refresh_only = names is None and bool(args.get("update_cache"))
        outcome = {"changed": False, "installed": list(to_install), "held_now": [], "index_downloaded": False,
                   "msg": "nothing to install: every package asked for is installed" if names else "nothing to install"}
        # Without an index apt cannot even say what it would install.
        if to_install and _packages.no_index(reading):
            index = self._index(args["lock_timeout"])
            if index.get("failed"):
                return dict(index, msg="packages: downloading the apt package index failed: %s" % index.get("msg", ""))
            outcome["index_downloaded"] = True
        if to_install or refresh_only:
            module_args = {"state": args["state"], "lock_timeout": args["lock_timeout"]}
            if to_install:
                module_args["name"] = to_install
            module_args.update(_options(args, APT_OPTIONS))
            install = self._locked("ansible.builtin.apt", module_args, args["lock_timeout"])
            if install.get("failed") and self._task.check_mode and NO_PYTHON_APT in str(install.get("msg", "")):
                install = self._simulate(args, to_install)
            if install.get("failed"):
                return install
            outcome.update(install)
        return self._with_holds(args, outcome, reading, "apt")

    def _index(self, lock_timeout):
        """Download apt's package index, for real in check mode too (a host with no lists).

        In check mode with ``apt-get update``: ansible.builtin.apt, not in check mode, would
        first install python3-apt where it is missing (a real install during a check run)."""
        if self._task.check_mode:
            return self._locked("ansible.builtin.command", {"argv": ["apt-get", "update", "-q"]},
                                lock_timeout, check_mode=False)
        return self._locked("ansible.builtin.apt", {"update_cache": True, "cache_valid_time": 0,
                                                    "lock_timeout": lock_timeout}, lock_timeout, check_mode=False)

    def _simulate(self, args, to_install):
        """Check mode where python3-apt is missing (ansible.builtin.apt cannot simulate without
        it): ``apt-get install`` (``remove`` for state absent) ``--simulate``, a read, says what
        would be installed or removed, or fails with apt's reason (no such package, no
        installation candidate)."""
        if not to_install:
            # An index refresh alone: check mode does not refresh it.
            return {"changed": False, "msg": "check mode: apt's package index is not refreshed"}
        verb = "remove" if args.get("state") == "absent" else "install"
        argv = ["apt-get", verb, "--simulate", "-q"]
        if args.get("install_recommends") is False:
            argv.append("--no-install-recommends")
        if args.get("allow_downgrade"):
            argv.append("--allow-downgrades")
        if args.get("allow_change_held_packages"):
            argv.append("--allow-change-held-packages")
        run = self._locked("ansible.builtin.command", {"argv": argv + list(to_install)}, args["lock_timeout"],
                           check_mode=False)
        if run.get("failed"):
            return dict(run, msg="packages: apt-get %s --simulate %s failed: %s"
                        % (verb, " ".join(to_install), (run.get("stderr") or run.get("msg", "")).strip()))
        # apt-get's simulation: one "Inst <package> ..." or "Remv <package> ..." line per change.
        would = [line.split()[1] for line in run.get("stdout_lines", []) if line.startswith(("Inst ", "Remv "))]
        return {"changed": bool(would), "stdout": run.get("stdout", ""), "stdout_lines": run.get("stdout_lines", []),
                "msg": "check mode: apt-get would %s %s (simulated with apt-get: python3-apt, which"
                       " ansible.builtin.apt needs to simulate, is not installed)"
                       % (verb, ", ".join(would) if would else "nothing")}

    def _apt_debs(self, args):
        results = []
        for deb in args["debs"]:
            module_args = dict({"deb": deb, "lock_timeout": args["lock_timeout"]},
                               **_options(args, {"allow_downgrade": "allow_downgrade",
                                                 "allow_change_held_packages": "allow_change_held_packages"}))
            one = self._locked("ansible.builtin.apt", module_args, args["lock_timeout"])
            one["item"] = deb
            results.append(one)
            if one.get("failed"):
                return {"failed": True, "changed": any(r.get("changed") for r in results), "results": results,
                        "msg": "packages: installing %s failed: %s" % (deb, one.get("msg", ""))}
        outcome = {"changed": any(r.get("changed") for r in results), "results": results,
                   "installed": list(args["debs"]), "held_now": [], "index_downloaded": False,
                   "msg": "installed %d package files" % len(results)}
        return self._with_holds(args, outcome, None, "apt")

    # --- dnf ---------------------------------------------------------------------------
    def _dnf(self, args):
        names = args.get("names") or []
        outcome = {"changed": False, "installed": list(names), "held_now": [], "index_downloaded": False,
                   "msg": "nothing to install"}
        if names:
            module_args = dict({"name": names, "state": args["state"], "lock_timeout": args["lock_timeout"]},
                               **_options(args, DNF_OPTIONS))
            install = self._module("ansible.builtin.dnf", module_args)
            if install.get("failed"):
                return install
            outcome.update(install)
        return self._with_holds(args, outcome, None, "dnf")

    # --- holds -------------------------------------------------------------------------
    def _with_holds(self, args, outcome, reading, manager):
        """The install's outcome, then the holds: the call's result."""
        holds = self._holds(args, bool(outcome.get("changed")), reading, manager)
        if holds.get("failed"):
            return holds
        outcome["held_now"] = holds["held_now"]
        outcome["changed"] = bool(outcome.get("changed")) or holds["changed"]
        return outcome

    def _holds(self, args, installed, reading, manager):
        """Hold what is not held yet; not in check mode where the install would change
        something (the packages are not there yet to hold)."""
        names = _packages.to_hold(args.get("hold"), args.get("held"), installed, reading)
        if not names or (self._task.check_mode and installed):
            return {"changed": False, "held_now": []}
        if manager == "dnf":
            # The versionlock plugin first: the first hold of a fresh host (stage 3's driver, before
            # any stage installed it) needs it; a no-op where it is there.
            plugin = self._module("ansible.builtin.dnf", {"name": [_packages.DNF_LOCK_PLUGIN], "state": "present",
                                                          "lock_timeout": args.get("lock_timeout", 30)})
            if plugin.get("failed"):
                return dict(plugin, msg="packages: installing %s, which dnf's version locks need, failed: %s"
                            % (_packages.DNF_LOCK_PLUGIN, plugin.get("msg", "")))
            lock = self._module("community.general.dnf_versionlock", {"name": names, "state": "present"})
            if lock.get("failed"):
                return lock
            return {"changed": bool(plugin.get("changed") or lock.get("changed")),
                    "held_now": names if lock.get("changed") else []}
        changed = []
        for name in names:
            one = self._module("ansible.builtin.dpkg_selections", {"name": name, "selection": "hold"})
            if one.get("failed"):
                return dict(one, msg="packages: holding %s failed: %s" % (name, one.get("msg", "")))
            if one.get("changed"):
                changed.append(name)
        return {"changed": bool(changed), "held_now": changed}
