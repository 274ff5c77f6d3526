# SPDX-License-Identifier: Apache-2.0
"""Filters for kernels that keep their NVIDIA driver: the packages each installed kernel
needs, and the reboot guard.

The logic lives in plugins/plugin_utils/_driver_packages.py (kernel_packages) and
_driver_plan.py (boot_kernel_problem); this file only exposes it to Jinja.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel
short_description: Packages per installed kernel and the reboot guard for the NVIDIA module
description:
  - >-
    C(nvidia_driver_kernel_rule(source, os_facts, settings)) - input a driver plan; how the host's installed kernels
    keep the NVIDIA module - C(dkms_module), C(module_names), C(per_kernel) package templates, C(manager) (the rule
    stage 3's package selection carries, also for a host whose loaded driver satisfies the plan).
  - >-
    C(nvidia_driver_kernel_packages(kernels, dkms_module)) - input a selection's C(kernel_rule) (or {}); C(kernels)
    the reading of M(kubegpu.cluster.kernel_modules) or a list of releases; C(dkms_module) overrides the rule's
    DKMS module (C(nvidia_driver_dkms_module)). Returns C(packages) (every installed kernel's headers on DKMS
    paths, C(linux-modules-nvidia-*-<kernel>) on Ubuntu's precompiled path), C(by_kernel), C(dkms_module),
    C(module_names), C(manager).
  - >-
    C(nvidia_driver_kernel_meta_packages) - input ansible_facts (os_family, distribution, kernel, architecture); the
    distribution's kernel meta package for the running kernel's flavour (Debian and Ubuntu C(linux-image-<flavour>),
    RHEL C(kernel)), which C(playbooks/kernel_update.yml) moves to its latest version.
  - >-
    C(nvidia_driver_boot_kernel_problem(plan, host)) - input the reading of M(kubegpu.cluster.kernel_modules); empty
    when the kernel that boots next has the NVIDIA module (every installed kernel, where the next one cannot be
    told), else the refusal naming the host, the kernel and the fix (C(plan) the result of
    C(nvidia_driver_kernel_packages), for the package names).
  - >-
    C(node_reboot_reasons(state, new_kernel)) - input the reboot marker's text; the reasons for a reboot, one per
    line of the marker, and with C(new_kernel) a kernel other than the running one booting next (C(state) the reading
    of M(kubegpu.cluster.kernel_modules)).
author: kubegpu maintainers
options:
  _input:
    description: A driver plan, a kernel rule, ansible_facts or a kernel_modules reading, as each filter's line says.
    type: raw
    required: true
"""

RETURN = r"""
_value:
  description:
    - The kernel rule, the packages per kernel (dicts), the kernel meta packages (a list) or the refusal message (empty
      when none), as each filter's line says.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_dp = _lazy.Module("plugin_utils._driver_packages")
_plan = _lazy.Module("plugin_utils._driver_plan")
_pd = _lazy.Module("plugin_utils._preflight_driver")


def nvidia_driver_kernel_rule(plan, source, os_facts, settings):
    """How the host's installed kernels keep the module (see _preflight_driver.kernel_rule_for_host)."""
    if not isinstance(plan, dict) or not plan.get("branch"):
        raise AnsibleFilterError("nvidia_driver_kernel_rule: expected a driver plan with a branch, got %r" % (plan,))
    try:
        return _pd.kernel_rule_for_host(plan, source, os_facts or {}, settings or {})
    except _dp.DriverPackagesError as exc:
        raise AnsibleFilterError("nvidia_driver_kernel_rule: %s" % exc) from exc


def nvidia_driver_kernel_packages(rule, kernels, dkms_module=""):
    """Packages per installed kernel (see _driver_packages.kernel_packages)."""
    return _dp.kernel_packages(rule, kernels, dkms_module or "")


def nvidia_driver_kernel_meta_packages(os_facts):
    """The kernel meta package(s) of the running kernel's flavour (see _driver_packages.kernel_meta_packages)."""
    os_facts = os_facts or {}
    try:
        return _dp.kernel_meta_packages(os_facts.get("os_family"), os_facts.get("distribution"), os_facts.get("kernel"),
                                        os_facts.get("architecture") or "x86_64")
    except _dp.DriverPackagesError as exc:
        raise AnsibleFilterError("nvidia_driver_kernel_meta_packages: %s" % exc) from exc


def nvidia_driver_boot_kernel_problem(state, plan=None, host="this host"):
    """Empty when the kernel that boots next has the module, else the refusal
    (see _driver_plan.boot_kernel_problem)."""
    return _plan.boot_kernel_problem(state, plan, host=host)


def node_reboot_reasons(marker, state=None, new_kernel=False):
    """The reasons for a reboot (see _driver_plan.reboot_reasons)."""
    return _plan.reboot_reasons(marker, state, new_kernel=bool(new_kernel))


class FilterModule:
    """kubegpu kernel filters."""

    def filters(self):
        return {
            "nvidia_driver_kernel_rule": nvidia_driver_kernel_rule,
            "nvidia_driver_kernel_packages": nvidia_driver_kernel_packages,
            "nvidia_driver_kernel_meta_packages": nvidia_driver_kernel_meta_packages,
            "nvidia_driver_boot_kernel_problem": nvidia_driver_boot_kernel_problem,
            "node_reboot_reasons": node_reboot_reasons,
        }
