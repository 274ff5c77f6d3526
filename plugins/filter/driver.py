# SPDX-License-Identifier: Apache-2.0
"""Filters for the nvidia_driver role: package, source and repository selection.

The logic lives in plugins/plugin_utils/_driver_packages.py (pure, unit-tested);
this file only exposes it to Jinja and turns its refusals into filter errors.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: driver
short_description: NVIDIA driver package selection for kubegpu
description:
  - C(nvidia_driver_default_source) gives the per-OS default source (ubuntu, debian, rhel).
  - C(nvidia_driver_source_constraints) says what a source fixes on an OS (Debian's one branch per release).
  - C(nvidia_driver_pinned_plan) plans a host pinned as a GPU node on which no GPU was detected.
  - C(nvidia_driver_host_plan) is stage 3's whole decision for a host (source, its constraints, the plan), the
    function preflight calls too.
  - C(nvidia_driver_host_selection) is stage 3's package selection for that plan on the host, the function
    preflight calls too.
  - C(nvidia_driver_secure_boot_problems) refuses DKMS-built unsigned modules on a Secure Boot host (the rule
    preflight applies), as problem records.
  - C(nvidia_driver_packages) maps (OS, branch, flavour, source, kernel) to packages, repository and holds.
  - C(nvidia_driver_package_changes) compares that selection with ansible_facts.packages.
  - C(nvidia_driver_reboot_decision) says, after stage 3 loaded what it could, whether the planned driver is
    loaded and whether this host may reboot to load it (with the reason when it may not).
  - C(nvidia_driver_after_reboot_problem) is empty when the planned driver is loaded after the reboot, else the
    message for the user.
  - C(nvidia_driver_upgrade_problem(after, in_container)) is empty when a driver upgrade kept every GPU of the
    input (the GPU facts before it) and left the driver loaded, else the message.
  - >-
    C(nvidia_driver_state_packages) lists the packages the stage reads on the host (input a selection, or {}):
    the selection's, then C(gnupg) and C(ca-certificates), each once, without dnf's @module profiles.
  - >-
    C(nvidia_driver_unit_needs_enabling(host_state, unit)) is true where C(systemctl enable) must run for the
    service C(unit) (input the package changes): packages are installed in this run, or host_state found the
    unit not enabled.
  - >-
    C(nvidia_driver_merge_apt_components) adds components to the distribution's apt entries;
    C(nvidia_driver_merge_apt_sources(host_state, repo, release)) does it for each of the distribution's apt
    source files (input C(_nvidia_driver_apt_sources)) that host_state read, keeping each file's mode.
author: kubegpu maintainers
options:
  _input:
    description: The GPU facts, an OS family, a source, a plan or a selection, as each filter's line says.
    type: raw
    required: true
"""

RETURN = r"""
_value:
  description: A source name, the source's constraints, a driver plan, the host's decision
    (C(source), C(constraints), C(plan)), a package selection, package changes, problem records, merged apt
    entries, a reboot decision or a message, as each filter's line above says.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_dp = _lazy.Module("plugin_utils._driver_packages")
_plan = _lazy.Module("plugin_utils._driver_plan")
_pd = _lazy.Module("plugin_utils._preflight_driver")


def _call(name, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except _dp.DriverPackagesError as exc:
        raise AnsibleFilterError("%s: %s" % (name, exc)) from exc


def nvidia_driver_default_source(os_family, distribution):
    """Default nvidia_driver_source for an OS."""
    return _call("nvidia_driver_default_source", _dp.default_source, os_family, distribution)


def nvidia_driver_source_constraints(source, os_family, distribution, version):
    """{'branch', 'flavour', 'reason'} a source fixes on this OS."""
    return _call("nvidia_driver_source_constraints", _dp.source_constraints, source, os_family, distribution, version)


def nvidia_driver_pinned_plan(facts, branch="auto", flavour="auto", constraints=None):
    """Plan for a host pinned as a GPU node without a detected GPU."""
    return _call("nvidia_driver_pinned_plan", _dp.pinned_plan, facts, branch, flavour, constraints)


def nvidia_driver_host_plan(gpu_facts, os_facts, settings):
    """{'source', 'constraints', 'plan'}: the driver stage's decision for one host.

    gpu_facts: ansible_facts.kubegpu_gpu; os_facts: ansible_facts; settings: the
    nvidia_driver_source/_branch/_flavour variables. The same function preflight calls
    (plugin_utils/_preflight_driver.plan_for_host), so what preflight let through is what
    the stage plans."""
    try:
        source, constraints, plan = _pd.plan_for_host(gpu_facts or {}, os_facts or {}, settings or {})
    except (_plan.DriverPlanError, _dp.DriverPackagesError) as exc:
        raise AnsibleFilterError("nvidia_driver_host_plan: %s" % exc) from exc
    return {"source": source, "constraints": constraints, "plan": plan}


def nvidia_driver_host_selection(plan, source, os_facts, settings):
    """Packages, repository and holds for the host's plan (_preflight_driver.selection_for_host)."""
    if not isinstance(plan, dict) or not plan.get("branch"):
        raise AnsibleFilterError("nvidia_driver_host_selection: expected a driver plan with a branch, got %r" % (plan,))
    return _call("nvidia_driver_host_selection", _pd.selection_for_host, plan, source, os_facts or {}, settings or {})


def nvidia_driver_secure_boot_problems(selection, gpu_facts, mok_signing=False):
    """[] or the one problem record of unsigned DKMS modules on a Secure Boot host."""
    found = _pd.secure_boot_problem(selection, gpu_facts, mok_signing)
    return [found] if found else []


def nvidia_driver_packages(plan, os_family, distribution, version, source, **kwargs):
    """Packages, repository and holds for a driver plan on one host.

    plan: the output of gpu_driver_plan (or nvidia_driver_pinned_plan); its branch,
    flavour, version, fabric_manager and nvlsm are used. kwargs go to select().
    """
    if not isinstance(plan, dict) or not plan.get("branch"):
        raise AnsibleFilterError("nvidia_driver_packages: expected a driver plan with a branch, got %r" % (plan,))
    kwargs.setdefault("fabric_manager", bool(plan.get("fabric_manager")))
    kwargs.setdefault("nvlsm", bool(plan.get("nvlsm")))
    return _call(
        "nvidia_driver_packages",
        _dp.select,
        os_family,
        distribution,
        version,
        plan["branch"],
        plan.get("flavour"),
        source,
        version_pin=plan.get("version"),
        **kwargs,
    )


def nvidia_driver_package_changes(installed, selection):
    """Stale, outdated and missing packages (see _driver_packages.package_changes)."""
    return _call("nvidia_driver_package_changes", _dp.package_changes, installed, selection)


def nvidia_driver_merge_apt_components(text, fmt, components, codename):
    """{'content', 'matched', 'changed'}: components added to the release's apt entries."""
    return _call("nvidia_driver_merge_apt_components", _dp.merge_apt_components, text, fmt, components, codename)


def nvidia_driver_state_packages(selection):
    """The packages the stage reads on the host (see _driver_packages.state_packages)."""
    return _dp.state_packages(selection)


def nvidia_driver_unit_needs_enabling(changes, host_state, unit):
    """Whether systemctl enable must run for the service (see _driver_packages.unit_needs_enabling)."""
    return _dp.unit_needs_enabling(changes, host_state, unit)


def nvidia_driver_merge_apt_sources(sources, host_state, repo, release):
    """[{'path', 'mode', 'merge'}]: the repo's components merged into each apt source file host_state read."""
    return _call("nvidia_driver_merge_apt_sources", _dp.merge_apt_sources, sources, host_state, repo, release)


def nvidia_driver_reboot_decision(gpu_facts, plan, context):
    """loaded_ok, reason, reboot_needed, reboot_ok, message (see _driver_plan.reboot_decision).

    context: was_loaded, in_container, check_mode, reboot_allowed, reboot_on_upgrade (booleans
    as Ansible may pass them), host, virtualization_type, load_error (modprobe's refusal)."""
    return _plan.reboot_decision(gpu_facts, plan, _pd._as_bool(context.get("was_loaded")),
                                 _pd._as_bool(context.get("in_container")), _pd._as_bool(context.get("check_mode")),
                                 _pd._as_bool(context.get("reboot_allowed")),
                                 _pd._as_bool(context.get("reboot_on_upgrade")),
                                 host=context.get("host") or "this host",
                                 virtualization_type=context.get("virtualization_type") or "",
                                 load_error=context.get("load_error") or "")


def nvidia_driver_after_reboot_problem(gpu_facts, plan, host="this host"):
    """Empty when the planned driver is loaded, else the message (see _driver_plan.after_reboot_problem)."""
    return _plan.after_reboot_problem(gpu_facts, plan, host=host)


def nvidia_driver_upgrade_problem(before, after, in_container=False):
    """Empty when the upgrade kept every GPU and the driver is loaded (see _driver_plan.upgrade_problem)."""
    return _plan.upgrade_problem(before, after, in_container=bool(in_container))


class FilterModule:
    """kubegpu NVIDIA driver filters."""

    def filters(self):
        return {
            "nvidia_driver_default_source": nvidia_driver_default_source,
            "nvidia_driver_source_constraints": nvidia_driver_source_constraints,
            "nvidia_driver_pinned_plan": nvidia_driver_pinned_plan,
            "nvidia_driver_host_plan": nvidia_driver_host_plan,
            "nvidia_driver_host_selection": nvidia_driver_host_selection,
            "nvidia_driver_secure_boot_problems": nvidia_driver_secure_boot_problems,
            "nvidia_driver_packages": nvidia_driver_packages,
            "nvidia_driver_package_changes": nvidia_driver_package_changes,
            "nvidia_driver_merge_apt_components": nvidia_driver_merge_apt_components,
            "nvidia_driver_merge_apt_sources": nvidia_driver_merge_apt_sources,
            "nvidia_driver_state_packages": nvidia_driver_state_packages,
            "nvidia_driver_unit_needs_enabling": nvidia_driver_unit_needs_enabling,
            "nvidia_driver_reboot_decision": nvidia_driver_reboot_decision,
            "nvidia_driver_after_reboot_problem": nvidia_driver_after_reboot_problem,
            "nvidia_driver_upgrade_problem": nvidia_driver_upgrade_problem,
        }
