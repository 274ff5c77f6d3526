# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Driver plan: which branch and kernel-module flavour drive every GPU of a host.

Input: the kubegpu_gpu facts. Output: a dict (see plan()). A request that
cannot work raises DriverPlanError naming the GPU, the branch/flavour and the
variable to change (nvidia_driver_branch / nvidia_driver_flavour).

The compatibility data is in _gpu_data (FAMILY_DRIVER_SUPPORT, BRANCHES),
once, with its sources. Standard library only.
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import (
    BRANCHES,
    DEFAULT_BRANCH,
    FAMILY_DRIVER_SUPPORT,
    FAMILY_ORDER,
    OPEN_MODULES_FIRST_BRANCH,
    OPEN_REQUIRED_DEVICES,
)

FLAVOURS = ("auto", "open", "proprietary")
BRANCH_VAR = "nvidia_driver_branch"
FLAVOUR_VAR = "nvidia_driver_flavour"


class DriverPlanError(ValueError):
    pass


def _describe(gpu):
    return "GPU %s %s (%s, %s)" % (
        gpu.get("index"),
        gpu.get("name") or "unknown model",
        gpu.get("architecture") or "unknown architecture",
        gpu.get("pci_bus_id") or "no bus id",
    )


def _open_required(gpu):
    device = gpu.get("pci_device_id")
    try:
        device_id = int(device, 16) if device else None
    except ValueError:
        device_id = None
    support = FAMILY_DRIVER_SUPPORT.get(gpu.get("architecture") or "")
    if support is not None and not support["proprietary"]:
        return True
    return device_id in OPEN_REQUIRED_DEVICES


def _open_supported(gpu):
    support = FAMILY_DRIVER_SUPPORT.get(gpu.get("architecture") or "")
    # Unknown architecture: assume modern (open supported) rather than block.
    return True if support is None else support["open"]


def parse_branch(branch):
    """'auto' / 580 / '580' / 'R580' / '580.95.05' -> (branch int or None, exact version or None)."""
    if branch is None:
        return None, None
    text = str(branch).strip()
    if text.lower() in ("", "auto"):
        return None, None
    if text[:1] in ("R", "r"):
        text = text[1:]
    parts = text.split(".")
    if not all(p.isdigit() for p in parts):
        raise DriverPlanError(
            "%s=%r is not a driver branch: use 'auto', a branch such as 580, or a full version such as 580.95.05"
            % (BRANCH_VAR, branch)
        )
    return int(parts[0]), (text if len(parts) > 1 else None)


def _version_tuple(version):
    out = []
    for part in (version or "").split("."):
        try:
            out.append(int(part))
        except ValueError:
            out.append(0)
    return tuple(out)


def plan(facts, branch="auto", flavour="auto"):
    """Plan the driver for a host. Raises DriverPlanError for impossible requests.

    Returns: needed, branch (str), version (exact pin or None), flavour,
    branch_source/flavour_source ('auto' or 'requested'), support (ltsb,
    production, eol, unknown), cuda_max, fabric_manager, nvlsm (NVLink5: NVLSM
    beside the fabric manager), architectures, satisfied, reason, warnings.
    """
    if not isinstance(facts, dict):
        raise DriverPlanError("expected the kubegpu_gpu facts (a dict), got %s" % type(facts).__name__)
    if flavour is None or str(flavour).strip() == "":
        flavour = "auto"
    flavour = str(flavour).strip().lower()
    if flavour not in FLAVOURS:
        raise DriverPlanError("%s=%r is not one of %s" % (FLAVOUR_VAR, flavour, ", ".join(FLAVOURS)))
    requested_branch, pinned = parse_branch(branch)
    gpus = facts.get("gpus") or []
    driver = facts.get("driver") or {}
    warnings = []

    if not gpus:
        return {
            "needed": False,
            "branch": None,
            "version": None,
            "flavour": None,
            "branch_source": "auto",
            "flavour_source": "auto",
            "support": None,
            "cuda_max": None,
            "fabric_manager": False,
            "nvlsm": False,
            "architectures": [],
            "satisfied": True,
            "reason": "no NVIDIA GPU detected; no driver needed",
            "warnings": warnings,
        }

    archs = sorted(set(g.get("architecture") for g in gpus if g.get("architecture")), key=lambda a: FAMILY_ORDER.get(a, 99))
    unknown = [g for g in gpus if not g.get("architecture")]
    if unknown:
        warnings.append("architecture unknown for %s; assuming it is supported" % ", ".join(_describe(g) for g in unknown))

    # Branch window every GPU accepts.
    ceiling, ceiling_gpu, floor, floor_gpu = None, None, None, None
    for gpu in gpus:
        support = FAMILY_DRIVER_SUPPORT.get(gpu.get("architecture") or "")
        if support is None:
            continue
        if support["max_branch"] is not None and (ceiling is None or support["max_branch"] < ceiling):
            ceiling, ceiling_gpu = support["max_branch"], gpu
        if support["min_branch"] is not None and (floor is None or support["min_branch"] > floor):
            floor, floor_gpu = support["min_branch"], gpu
    if ceiling is not None and floor is not None and floor > ceiling:
        raise DriverPlanError(
            "no driver branch drives every GPU on this host: %s needs branch %d or older, %s needs %d or newer. "
            "Put these GPUs in different hosts." % (_describe(ceiling_gpu), ceiling, _describe(floor_gpu), floor)
        )

    needs_open = [g for g in gpus if _open_required(g)]
    no_open = [g for g in gpus if not _open_supported(g)]
    if needs_open and no_open:
        raise DriverPlanError(
            "no kernel-module flavour drives every GPU on this host: %s needs the open modules, %s only runs with the "
            "proprietary modules. Put these GPUs in different hosts." % (_describe(needs_open[0]), _describe(no_open[0]))
        )

    # Branch.
    if requested_branch is None:
        chosen = DEFAULT_BRANCH
        if ceiling is not None and chosen > ceiling:
            chosen = ceiling
            warnings.append(
                "branch %d chosen because %s is not supported by newer drivers; it is end of life" % (chosen, _describe(ceiling_gpu))
            )
        branch_source = "auto"
    else:
        chosen = requested_branch
        branch_source = "requested"
        if ceiling is not None and chosen > ceiling:
            raise DriverPlanError(
                "%s=%s cannot drive %s: the last branch for %s GPUs is R%d. Set %s to %d (or 'auto')."
                % (BRANCH_VAR, branch, _describe(ceiling_gpu), ceiling_gpu.get("architecture"), ceiling, BRANCH_VAR, ceiling)
            )
        if floor is not None and chosen < floor:
            raise DriverPlanError(
                "%s=%s cannot drive %s: %s GPUs need branch R%d or newer. Set %s to %d or newer (%d recommended) or 'auto'."
                % (BRANCH_VAR, branch, _describe(floor_gpu), floor_gpu.get("architecture"), floor, BRANCH_VAR, floor, DEFAULT_BRANCH)
            )

    # Flavour.
    if flavour == "auto":
        chosen_flavour = "proprietary" if no_open else "open"
        if chosen_flavour == "open" and chosen < OPEN_MODULES_FIRST_BRANCH:
            chosen_flavour = "proprietary"
        flavour_source = "auto"
    else:
        chosen_flavour = flavour
        flavour_source = "requested"
        if flavour == "open" and no_open:
            raise DriverPlanError(
                "%s=open cannot drive %s: the open kernel modules need Turing or newer (GSP). Set %s to proprietary "
                "(or 'auto')." % (FLAVOUR_VAR, _describe(no_open[0]), FLAVOUR_VAR)
            )
        if flavour == "proprietary" and needs_open:
            raise DriverPlanError(
                "%s=proprietary cannot drive %s: it needs the open kernel modules. Set %s to open (or 'auto')."
                % (FLAVOUR_VAR, _describe(needs_open[0]), FLAVOUR_VAR)
            )
        if flavour == "open" and chosen < OPEN_MODULES_FIRST_BRANCH:
            raise DriverPlanError(
                "%s=open needs branch R%d or newer, but %s=%s. Set %s to %d or newer."
                % (FLAVOUR_VAR, OPEN_MODULES_FIRST_BRANCH, BRANCH_VAR, branch, BRANCH_VAR, DEFAULT_BRANCH)
            )

    info = BRANCHES.get(chosen)
    support = info["support"] if info else "unknown"
    if support == "eol" and branch_source == "requested":
        warnings.append("branch R%d is end of life; R%d is the long-term support branch" % (chosen, DEFAULT_BRANCH))
    elif info is None:
        warnings.append("branch R%d is not in our table; its CUDA version and support window are unknown" % chosen)

    # Does the loaded driver satisfy the plan?
    satisfied, reason = loaded_check(driver, {"branch": str(chosen), "version": pinned, "flavour": chosen_flavour})

    cuda_max = info["cuda_max"] if info else None
    if satisfied and facts.get("cuda_driver_version"):
        cuda_max = facts["cuda_driver_version"]

    return {
        "needed": True,
        "branch": str(chosen),
        "version": pinned,
        "flavour": chosen_flavour,
        "branch_source": branch_source,
        "flavour_source": flavour_source,
        "support": support,
        "cuda_max": cuda_max,
        "fabric_manager": bool(facts.get("nvswitch_count")) or bool(facts.get("fabric_manager_needed")),
        # NVLink5 switch trays (HGX B200/B300): NVLSM beside the fabric manager (gpu_facts nvlsm_needed).
        "nvlsm": bool(facts.get("nvlsm_needed")),
        "architectures": archs,
        "satisfied": satisfied,
        "reason": reason,
        "warnings": warnings,
    }


def loaded_check(driver, plan_):
    """Does the loaded driver satisfy a plan? (satisfied, reason).

    driver: gpu_facts' driver dict (loaded, version, flavour); plan_: a plan's branch,
    version (an exact pin or None) and flavour. The one test of "the planned driver is
    loaded": planning (a host whose driver is satisfied is left alone), stage 3 after
    it loaded the module, and after a reboot.
    """
    driver = driver or {}
    branch, pinned, flavour = str(plan_.get("branch")), plan_.get("version"), plan_.get("flavour")
    loaded_version = driver.get("version")
    loaded_flavour = driver.get("flavour")
    if not driver.get("loaded") or not loaded_version:
        return False, "no NVIDIA driver is loaded"
    loaded_version = str(loaded_version)
    if loaded_version.partition(".")[0] != branch:
        return False, "loaded driver %s is not branch R%s" % (loaded_version, branch)
    if pinned and _version_tuple(loaded_version) != _version_tuple(pinned):
        return False, "loaded driver %s is not the pinned version %s" % (loaded_version, pinned)
    if loaded_flavour and loaded_flavour != flavour:
        return False, "loaded driver %s uses the %s kernel modules, the plan wants %s" % (
            loaded_version, loaded_flavour, flavour)
    return True, "loaded driver %s (%s) matches R%s/%s" % (
        loaded_version, loaded_flavour or "flavour unknown", branch, flavour)


def _plan_text(plan_):
    return "R%s%s %s" % (plan_.get("branch"), ("/" + plan_["version"]) if plan_.get("version") else "",
                         plan_.get("flavour"))


def reboot_decision(gpu_facts, plan_, was_loaded, in_container, check_mode, reboot_allowed, reboot_on_upgrade,
                    host="this host", virtualization_type="", load_error=""):
    """After stage 3 installed packages and tried to load the module: is the planned
    driver loaded, and if not, may this host reboot to load it?

    Returns loaded_ok, reason (loaded_check's), reboot_needed, reboot_ok (needed and
    allowed), and message: why a needed reboot does not happen here ("" otherwise; a
    string either way, which Jinja on every ansible-core reads alike).
    A reboot is allowed when nvidia_driver_reboot_allowed is true and, where a driver
    was loaded before this run (an upgrade), nvidia_driver_reboot_on_upgrade too; never
    in a container (it uses the host kernel's modules) and never in check mode.
    ``load_error`` is what modprobe said when it could not load the module in this run
    (e.g. a key Secure Boot rejects): the message repeats it, since a reboot that does
    not happen here is the user's to do, and it may not help.
    """
    ok, reason = loaded_check((gpu_facts or {}).get("driver"), plan_)
    allowed = bool(reboot_allowed) and (not was_loaded or bool(reboot_on_upgrade))
    possible = not in_container and not check_mode
    message = ""
    if not ok and not (allowed and possible):
        if in_container:
            why = ("not possible here: this host is a container (%s), which cannot load kernel modules or reboot"
                   % (virtualization_type or "container"))
        elif check_mode:
            why = "check mode"
        else:
            why = "not allowed: set nvidia_driver_reboot_allowed%s or reboot the host yourself (drain it first)" % (
                " and nvidia_driver_reboot_on_upgrade (a driver was loaded before this run)" if was_loaded else "")
        message = "%s: reboot required to load driver %s (%s), %s." % (host, _plan_text(plan_), reason, why)
        if load_error:
            message += " modprobe said: %s" % load_error
    return {"loaded_ok": ok, "reason": reason, "reboot_needed": not ok,
            "reboot_ok": (not ok) and allowed and possible, "message": message}


def after_reboot_problem(gpu_facts, plan_, host="this host"):
    """"" when the planned driver is loaded after the reboot, else what to tell the user."""
    gpu_facts = gpu_facts or {}
    driver = gpu_facts.get("driver") or {}
    ok, reason = loaded_check(driver, plan_)
    if ok:
        return ""
    now = ("loaded at %s (%s)" % (driver.get("version"), driver.get("flavour") or "flavour unknown")
           if driver.get("loaded") else "not loaded")
    return ("%s: after the reboot the NVIDIA driver is %s, the plan is %s (%s). Detection says: %s; hints: %s. "
            "Check `dkms status`, `journalctl -k | grep -i nvrm`, Secure Boot (mokutil --sb-state) and that nouveau "
            "is blacklisted." % (host, now, _plan_text(plan_), reason,
                                 "; ".join(gpu_facts.get("warnings") or []) or "no warnings",
                                 "; ".join(driver.get("install_hints") or []) or "none"))


def upgrade_problem(before, after, in_container=False):
    """"" when a driver upgrade kept every GPU and left the driver loaded, else the message.

    ``before`` and ``after`` are the GPU facts (kubegpu_gpu) read before and after the
    upgrade. A host with no GPU before (pinned by the gpu group) has nothing to compare;
    a container loads no kernel module of its own, so only the GPU count is compared
    there (whether the host kernel's module serves it is the smoke Job's to prove).
    """
    before = before or {}
    after = after or {}
    count_before = int(before.get("count") or 0)
    count_after = int(after.get("count") or 0)
    driver = after.get("driver") or {}
    loaded = bool(driver.get("loaded"))
    if count_after >= count_before and (count_before == 0 or loaded or in_container):
        return ""
    return ("GPU facts after the upgrade: %d GPU(s) (before: %d), driver loaded: %s (%s); warnings: %s"
            % (count_after, count_before, loaded, driver.get("version") or "-",
               "; ".join(after.get("warnings") or []) or "-"))


def _kernel_fix(kernel, plan_, host):
    """The fix for a kernel without the NVIDIA module: its packages, then the DKMS build."""
    plan_ = plan_ or {}
    packages = plan_.get("by_kernel", {}).get(kernel) or []
    module = plan_.get("dkms_module")
    steps = []
    if packages:
        steps.append("install %s" % " ".join(packages))
    if module:
        steps.append("build the module for it (dkms autoinstall -k %s; `dkms status -m %s` must say installed)"
                     % (kernel, module))
    how = (" on %s" % host) if host else ""
    do = ", then ".join(steps) if steps else (
        "install its headers and build the module (dkms autoinstall -k %s), or install its precompiled NVIDIA module "
        "package" % kernel)
    return ("%s%s - playbooks/nvidia_driver.yml (or playbooks/kernel_update.yml) -l %s does that for every installed "
            "kernel - or remove that kernel" % (do, how, host or "<host>"))


def reboot_reasons(marker, state=None, new_kernel=False):
    """Why roles/node reboot_pending reboots: one reason per line of the reboot marker
    (``marker``, its text; other stages record a reason per line), and with ``new_kernel``
    (kernel_update.yml) a kernel other than the running one booting next, from
    kubegpu.cluster.kernel_modules' reading ``state``."""
    reasons = [line.strip() for line in (marker or "").splitlines() if line.strip()]
    state = state or {}
    boot, running = state.get("boot_kernel"), state.get("running")
    if new_kernel and boot and boot != running:
        reasons.append("kernel %s boots next, %s runs" % (boot, running))
    return reasons


def boot_kernel_problem(state, plan_=None, host="this host"):
    """"" when the kernel the host boots next has the NVIDIA module, else why a reboot is refused.

    ``state``: kubegpu.cluster.kernel_modules' reading (boot_kernel, boot_rule, installed,
    kernels: {release: {module, headers, dkms_state}}); ``plan_``: _driver_packages.kernel_packages'
    result for that reading (by_kernel, dkms_module), for the fix; None: a fix without package
    names. Where the kernel that boots cannot be told, every installed kernel must have the
    module. A host with no installed kernel of its own (a container) has nothing to check.
    The one rule of every reboot kubegpu causes (roles/node reboot_pending, roles/nvidia_driver
    run.yml)."""
    state = state or {}
    rows = state.get("kernels") or {}
    boot = state.get("boot_kernel")
    if not rows and not boot:
        return ""
    if boot:
        row = rows.get(boot)
        if row and row.get("module"):
            return ""
        missing = [boot]
        which = "the kernel that boots next, %s (%s)," % (boot, state.get("boot_rule") or "boot loader default")
    else:
        missing = [k for k in state.get("installed") or sorted(rows) if not (rows.get(k) or {}).get("module")]
        if not missing:
            return ""
        which = ("the kernel that boots next cannot be told (%s), and installed kernel(s) %s"
                 % (state.get("boot_rule") or "unknown", ", ".join(missing)))
    details = []
    for kernel in missing:
        row = rows.get(kernel) or {}
        if not row:
            details.append("%s: not an installed kernel with a module tree" % kernel)
            continue
        details.append("%s: %s, DKMS %s" % (
            kernel, "headers installed" if row.get("headers") else "no headers",
            row.get("dkms_state") or "has not built it"))
    return ("%s: reboot refused: %s has no NVIDIA kernel module (%s); the node would come back without its GPUs. "
            "Fix: %s." % (host, which, "; ".join(details), "; ".join(_kernel_fix(k, plan_, host) for k in missing)))
