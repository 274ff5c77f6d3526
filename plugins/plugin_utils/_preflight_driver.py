# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: what stage 3 (nvidia_driver) would refuse on a GPU node, decided in stage 1.

Stage 3 plans the driver (roles/nvidia_driver/tasks/plan.yml), selects its packages and
refuses unsigned modules on a Secure Boot host (tasks/install.yml). ``driver_problems``
walks the same steps with the same functions (plugins/plugin_utils/_driver_plan.py
``plan``, _driver_packages.py ``default_source``, ``source_constraints``, ``pinned_plan``,
``select``), on the GPU facts gathered in THIS run, and turns their refusals into problem
records ``{"variable", "problem", "fix"}`` - never a filter traceback:

- a branch or flavour that cannot drive the host's GPUs (``nvidia_driver_branch``,
  ``nvidia_driver_flavour``; with the Debian source, the branch its archive ships);
- a package source that cannot give the plan (Debian's one branch, no fabric manager
  for an NVSwitch system, no NVLSM for an NVLink5 system - Debian, Canonical's Ubuntu
  archive -, an OS the source does not serve: ``nvidia_driver_source``);
- DKMS-built, unsigned modules on a Secure Boot host (``secure_boot_problem``);
- a host pinned as a GPU node (group ``kubegpu_gpu_group``, or ``kubegpu_gpu_node: true``)
  on which no NVIDIA GPU was detected (``pinned_without_gpu_problem``): stages 3 and 4 would
  install a driver and the nvidia runtime, stage 8 label the node as a GPU node, and stage
  9's GPU test Job would wait for a GPU the node never advertises and fail.

A host whose loaded driver already satisfies the plan gets no package selection in stage 3,
and none here.
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_packages as _dp
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_plan as _plan
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

# The nvidia_driver settings the decision reads (role defaults where the inventory sets none).
SETTINGS = (
    "nvidia_driver_source", "nvidia_driver_branch", "nvidia_driver_flavour", "nvidia_driver_headless",
    "nvidia_driver_ubuntu_precompiled", "nvidia_driver_ubuntu_kernel_flavour", "nvidia_driver_dkms_mok_signing",
    "nvidia_driver_cuda_repo_base_url", "nvidia_driver_manage_dgx", "nvidia_driver_cuda_toolkit",
    "nvidia_driver_cuda_toolkit_version",
)
# The variables a pinned GPU node without a GPU is named by (pinned_without_gpu_problem).
PINNED_VARIABLES = ("kubegpu_gpu_group", "kubegpu_gpu_node")
_NAMED = ("nvidia_driver_source", "nvidia_driver_flavour", "nvidia_driver_cuda_toolkit_version",
          "nvidia_driver_ubuntu_kernel_flavour", "nvidia_driver_ubuntu_precompiled", "nvidia_driver_branch")


def _as_bool(value, default=False):
    try:
        return boolean(value)
    except TypeError:
        return default      # the argument spec check names it


def _record(message):
    """A refusal of the driver functions as a problem record: the variable it names first,
    the sentence that says what to set as the fix."""
    text = str(message).strip()
    positions = [(text.find(name), name) for name in _NAMED if name in text]
    variable = min(positions)[1] if positions else "nvidia_driver_branch"
    for marker in (" Set ", " Put ", " Fix: ", ": use "):
        cut = text.find(marker)
        if cut > 0:
            what, fix = text[:cut].rstrip(" ."), text[cut + 1:].lstrip(": ").rstrip(".")
            break
    else:
        what, fix = text.rstrip("."), ("change nvidia_driver_branch, nvidia_driver_flavour or nvidia_driver_source"
                                       " for this host")
    if variable == "nvidia_driver_branch" and fix.startswith("use "):
        fix = "set nvidia_driver_branch to " + fix[4:]
    return _network.problem(variable, what, fix[:1].lower() + fix[1:] if fix[:4] in ("Set ", "Put ") else fix)


def pinned_without_gpu_problem(facts, gpu_node, in_gpu_group, gpu_group="gpu"):
    """The problem record of a host that is a GPU node by the inventory alone, without a GPU."""
    count = int((facts or {}).get("count") or len((facts or {}).get("gpus") or []))
    if not gpu_node or count > 0:
        return None
    if in_gpu_group:
        variable, why = "kubegpu_gpu_group", "in group %s (a GPU node)" % gpu_group
        undo = "take the host out of group %s" % gpu_group
    else:
        variable, why, undo = "kubegpu_gpu_node", "kubegpu_gpu_node is true", "remove kubegpu_gpu_node"
    return _network.problem(
        variable,
        "%s, but no NVIDIA GPU was detected on it in this run: stages 3-4 would install a driver and the nvidia"
        " runtime for it, and stage 9's GPU test would fail" % why,
        "%s if it has no GPU, or make its GPUs visible (lspci -d 10de: lists them; a VM needs them passed"
        " through) and run again" % undo)


def secure_boot_problem(selection, facts, mok_signing):
    """The problem record of DKMS-built, unsigned NVIDIA modules on a Secure Boot host, or None
    (the rule of roles/nvidia_driver/tasks/install.yml "Refuse to build unsigned kernel modules")."""
    if not (selection or {}).get("builds_modules") or (facts or {}).get("secure_boot") != "enabled":
        return None
    if _as_bool(mok_signing):
        return None
    return _network.problem(
        "nvidia_driver_source",
        "Secure Boot is enabled and nvidia_driver_source=%s builds the NVIDIA kernel modules with DKMS, unsigned:"
        " the kernel would refuse to load them" % (selection or {}).get("source"),
        "on Ubuntu use nvidia_driver_source: ubuntu with nvidia_driver_ubuntu_precompiled: true (Canonical's"
        " signed modules); or enroll a Machine Owner Key that DKMS signs with (mokutil --import"
        " /var/lib/dkms/mok.pub, reboot, confirm) and set nvidia_driver_dkms_mok_signing: true; or disable Secure"
        " Boot in the firmware")


def plan_for_host(facts, os_facts, settings):
    """(source, constraints, plan) as stage 3 decides them (roles/nvidia_driver/tasks/plan.yml).

    Raises _driver_plan.DriverPlanError / _driver_packages.DriverPackagesError as stage 3 would."""
    settings = settings or {}
    os_family, distribution = os_facts.get("os_family"), os_facts.get("distribution")
    source = settings.get("nvidia_driver_source") or _dp.default_source(os_family, distribution)
    constraints = _dp.source_constraints(source, os_family, distribution, os_facts.get("distribution_version"))
    branch = settings.get("nvidia_driver_branch")
    branch = "auto" if branch is None else branch
    flavour = settings.get("nvidia_driver_flavour")
    flavour = "auto" if flavour is None else flavour
    source_branch = constraints["branch"] if (str(branch).lower() in ("auto", "") and constraints["branch"]) else branch
    source_flavour = constraints["flavour"] if (flavour in ("auto", "") and constraints["flavour"]) else flavour
    # plan.yml evaluates the user's own request first (a loaded driver that satisfies it is
    # kept), then the plan with the source's branch and flavour.
    auto_plan = _plan.plan(facts, branch=branch, flavour=flavour)
    if auto_plan["needed"] and auto_plan["satisfied"]:
        return source, constraints, auto_plan
    try:
        gpu_plan = _plan.plan(facts, branch=source_branch, flavour=source_flavour)
    except _plan.DriverPlanError as exc:
        if source_branch != branch and constraints.get("reason"):
            raise _plan.DriverPlanError("%s [%s]" % (exc, constraints["reason"])) from exc
        raise
    if gpu_plan["needed"]:
        return source, constraints, gpu_plan
    return source, constraints, _dp.pinned_plan(facts, branch, flavour, constraints)


def selection_for_host(plan, source, os_facts, settings):
    """The packages, repository and holds stage 3 installs for a plan on this host
    (roles/nvidia_driver/tasks/install.yml); booleans typed as the argument spec types them.

    Raises _driver_packages.DriverPackagesError as stage 3 would."""
    settings = settings or {}
    return _dp.select(
        os_facts.get("os_family"), os_facts.get("distribution"), os_facts.get("distribution_version"),
        plan["branch"], plan.get("flavour"), source,
        kernel_release=os_facts.get("kernel") or "",
        kernel_flavour_name=settings.get("nvidia_driver_ubuntu_kernel_flavour") or "",
        architecture=os_facts.get("architecture") or "x86_64",
        precompiled=_as_bool(settings.get("nvidia_driver_ubuntu_precompiled"), True),
        headless=_as_bool(settings.get("nvidia_driver_headless"), True),
        fabric_manager=bool(plan.get("fabric_manager")),
        nvlsm=bool(plan.get("nvlsm")),
        cuda_toolkit=_as_bool(settings.get("nvidia_driver_cuda_toolkit")),
        cuda_toolkit_version=settings.get("nvidia_driver_cuda_toolkit_version") or "",
        version_pin=plan.get("version"),
        cuda_repo_base_url=settings.get("nvidia_driver_cuda_repo_base_url") or _dp.CUDA_REPO_BASE_URL,
    )


def driver_problems(facts, os_facts, settings, gpu_node=False, in_gpu_group=False, gpu_group="gpu", dgx=False):
    """(problems, warnings) of a host for stage 3: records and warning lines.

    ``facts``: ansible_facts.kubegpu_gpu of this run; ``os_facts``: ansible_facts (os_family,
    distribution, distribution_version, kernel, architecture); ``settings``: the nvidia_driver
    settings (SETTINGS, set or default); ``gpu_node``: kubegpu_gpu_node as the kubegpu role
    published it; ``dgx``: /etc/dgx-release exists (stage 3 leaves DGX OS alone unless
    nvidia_driver_manage_dgx)."""
    settings = settings or {}
    facts = facts or {}
    if not _as_bool(gpu_node):
        return [], []
    pinned = pinned_without_gpu_problem(facts, True, in_gpu_group, gpu_group)
    if pinned:
        return [pinned], []
    if dgx and not _as_bool(settings.get("nvidia_driver_manage_dgx")):
        return [], []
    try:
        source, _constraints, plan = plan_for_host(facts, os_facts, settings)
    except (_plan.DriverPlanError, _dp.DriverPackagesError) as exc:
        text = str(exc)
        if text.endswith("]") and " [" in text:
            # The branch the source's archive ships cannot drive these GPUs.
            text, context = text[:-1].split(" [", 1)
            what = _record(text)["problem"]
            return [_network.problem("nvidia_driver_source", "%s (%s)" % (what, context),
                                     "set nvidia_driver_source: cuda (NVIDIA's CUDA repository has every branch)"
                                     " and leave nvidia_driver_branch on auto")], []
        return [_record(text)], []
    warnings = list(plan.get("warnings") or [])
    if plan.get("satisfied"):
        return [], warnings
    try:
        selection = selection_for_host(plan, source, os_facts, settings)
    except _dp.DriverPackagesError as exc:
        return [_record(exc)], warnings
    secure = secure_boot_problem(selection, facts, settings.get("nvidia_driver_dkms_mok_signing"))
    return ([secure] if secure else []), warnings


def kernel_rule_for_host(plan, source, os_facts, settings):
    """How stage 3 keeps the NVIDIA module on every installed kernel of this host
    (_driver_packages.kernel_rule): the same rule select() puts in a selection, without the
    rest of the selection, so a host whose loaded driver satisfies the plan (and gets no
    selection) has it too."""
    settings = settings or {}
    family = _dp.default_source(os_facts.get("os_family"), os_facts.get("distribution"))
    builds = not (source == "ubuntu" and _as_bool(settings.get("nvidia_driver_ubuntu_precompiled"), True))
    return _dp.kernel_rule(source, family, _dp._branch_int(plan["branch"]), plan.get("flavour") == "open", builds,
                           "dnf" if family == "rhel" else "apt")
