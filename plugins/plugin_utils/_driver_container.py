# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: containerized driver mode (``nvidia_driver_mode: container``), decided once, here.

In container mode NVIDIA's GPU Operator installs the driver on every GPU node from its driver
containers (``driver.enabled=true`` in the chart values roles/gpu_operator renders, see
_gpu_operator.driver_values) and stage 3 (nvidia_driver) installs no driver package on the host.
Preflight (stage 1, _preflight_host.host_report), stage 3 (roles/nvidia_driver/tasks/container.yml)
and the gpu_operator stage call these functions; the refusals are problem records
``{"variable", "problem", "fix"}`` (plugins/plugin_utils/_network.py ``problem``):

- mode_problems: the settings alone - container mode needs GPU Operator mode and the
  Operator's toolkit, a driver container version, an upgrade policy the Operator accepts;
- host_problems: one GPU node, from this run's facts - the host's own driver already there,
  Secure Boot without signed modules, precompiled driver containers asked for where NVIDIA
  builds none, a driver branch that cannot drive the host's GPUs;
- host_plan: what stage 3 does on a GPU node in container mode (no package; nouveau unloaded
  where it is loaded; the kernel headers are the driver container's own business);
- precompiled_problem / use_precompiled: whether NVIDIA publishes precompiled driver
  containers for a host, and whether the cluster uses them (``driver.usePrecompiled`` is one
  ClusterPolicy setting for every GPU node).

Upstream facts (GPU Operator v25.10.1, the chart roles/gpu_operator pins):
- the chart's driver values and their defaults: ``driver.enabled``, ``usePrecompiled``,
  ``version`` "580.105.08", ``upgradePolicy.autoUpgrade`` true, ``maxParallelUpgrades`` 1,
  ``maxUnavailable`` "25%", ``drain.enable`` false, ``drain.timeoutSeconds`` 300
  (NVIDIA/gpu-operator deployments/gpu-operator/values.yaml at v25.10.1; 580.105.08 is the
  default driver of release 25.10.1 in NVIDIA/cloud-native-docs gpu-operator/release-notes.rst);
- precompiled driver containers: ``driver.usePrecompiled=true`` with ``driver.version`` the
  driver BRANCH (e.g. 580); images named ``<branch>-<kernel release>-<os tag>``; x86_64 only;
  kernel variants aws, azure, generic, nvidia, oracle; validated with Ubuntu 22.04 (kernels 5.15
  and 6.8) and 24.04 (6.8) for R535/R570/R580 (NVIDIA/cloud-native-docs
  gpu-operator/precompiled-drivers.rst and platform-support.rst "Supported Precompiled Drivers",
  as published for 25.10, commit c248ec5b);
- the Ubuntu precompiled images install Canonical's signed modules (``linux-signatures-nvidia-<kernel>``,
  NVIDIA/gpu-driver-container ubuntu22.04/precompiled/nvidia-driver ``_install_driver``); the
  conventional images build the modules on the node and install ``linux-headers-<kernel>``
  (Ubuntu) or ``kernel-devel-<kernel>`` (RHEL) INSIDE the container from the distribution's
  archive (ubuntu24.04/nvidia-driver and rhel9/nvidia-driver ``_install_prerequisites``), unsigned:
  Secure Boot is not supported for them (NVIDIA/gpu-operator#141, #497, #1142);
- conventional driver containers (``nvcr.io/nvidia/driver:<version>-<os tag>``, the tag from
  the node's os-release as NFD labels it) are published for Ubuntu 22.04 and 24.04, RHEL 8 and
  9 (even minor releases only: platform-support.rst "RHEL"; NVIDIA/gpu-operator#1895, no
  ``-rhel9.7`` tag) and Rocky Linux 8 and 9 (``-rocky8``/``-rocky9`` tags, NVIDIA/gpu-operator#2336,
  NVIDIA/cloud-native-docs#399); none for Debian (NVIDIA/gpu-operator#2225: a
  ``580.105.08-debian13`` driver pod stays in ImagePullBackOff) or other distributions: there
  the driver DaemonSet can only run images of one's own (``driver.repository``);
- the Operator takes a host with its own driver for "pre-installed": its validator looks for
  the host's ``/usr/bin/nvidia-smi`` (cmd/nvidia-validator/main.go ``validateHostDriver``); a
  driver container's user space stays under ``/run/nvidia/driver``.
"""

from __future__ import annotations

import re

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_plan as _plan
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as _specs
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_packages import kernel_flavour

problem = _network.problem

MODE = "nvidia_driver_mode"
MODES = ("host", "container")
VERSION = "gpu_operator_driver_version"
PRECOMPILED = "gpu_operator_driver_precompiled"
SIGNED = "gpu_operator_driver_signed_modules"
MAX_PARALLEL = "gpu_operator_driver_upgrade_max_parallel"
MAX_UNAVAILABLE = "gpu_operator_driver_upgrade_max_unavailable"

# Settings these rules read (the value set for the host, else the role default).
SETTINGS = (
    MODE, "kubegpu_gpu_operator", "container_runtime_nvidia_toolkit_install", "gpu_operator_values",
    VERSION, PRECOMPILED, SIGNED, "gpu_operator_driver_upgrade_auto", MAX_PARALLEL, MAX_UNAVAILABLE,
    "gpu_operator_driver_upgrade_drain", "gpu_operator_driver_upgrade_drain_timeout",
)

# Precompiled driver containers NVIDIA validated with GPU Operator 25.10 (module docstring):
# (distribution, version) -> kernel major.minor lines and driver branches.
PRECOMPILED_SUPPORT = {
    ("Ubuntu", "22.04"): {"kernels": ("5.15", "6.8"), "branches": ("535", "570", "580")},
    ("Ubuntu", "24.04"): {"kernels": ("6.8",), "branches": ("570", "580")},
}
# Conventional driver containers NVIDIA publishes (module docstring): distribution -> major
# releases, and whether only even minor releases have images (RHEL).
IMAGE_SUPPORT = {
    "Ubuntu": {"versions": ("22.04", "24.04"), "even_minor": False},
    "RedHat": {"versions": ("8", "9"), "even_minor": True},
    "Rocky": {"versions": ("8", "9"), "even_minor": False},
}
NVIDIA_REPOSITORY = "nvcr.io/nvidia"
PRECOMPILED_FLAVOURS = ("generic", "nvidia", "azure", "aws", "oracle")
PRECOMPILED_ARCHITECTURES = ("x86_64",)

# A driver container version: an exact driver release (580.105.08; the conventional images
# are tagged <version>-<os tag>), or with precompiled containers the branch (580).
_VERSION = re.compile(r"^(\d{3})(\.\d+){1,2}$")
_BRANCH = re.compile(r"^(\d{3})$")
_PERCENT = re.compile(r"^(\d{1,3})%$")


# The setting readers every rule module shares (one reading of booleans and integers).
flag = _gpu_sharing.flag_value
integer = _gpu_sharing._int


def is_container(settings):
    """Whether ``nvidia_driver_mode`` is container (anything else is the host driver)."""
    return str((settings or {}).get(MODE) or "host").strip().lower() == "container"


def precompiled_setting(settings, boolean):
    """``gpu_operator_driver_precompiled`` as True, False or "auto"."""
    value = (settings or {}).get(PRECOMPILED)
    if value is None or str(value).strip().lower() in ("", "auto"):
        return "auto"
    return flag(value, boolean, "auto")


def branch_of(version, precompiled=False):
    """The driver branch of a driver container version ("580.105.08" -> "580"), or None when
    the version is none kubegpu accepts (an exact release; with precompiled containers the
    branch alone too)."""
    text = str(version if version is not None else "").strip()
    match = _VERSION.match(text) or (_BRANCH.match(text) if precompiled else None)
    return match.group(1) if match else None


def precompiled_problem(os_facts, branch):
    """Why NVIDIA publishes no precompiled driver container for this host and driver branch
    (its OS, kernel line, kernel variant, architecture), or None when it does.

    ``os_facts``: the host's ansible_facts of this run (distribution, distribution_version,
    kernel, architecture); facts this run did not gather count as "cannot tell"."""
    facts = os_facts or {}
    if not facts.get("distribution") or not facts.get("kernel"):
        return "this run gathered no OS facts of the host, so its kernel cannot be matched to an image"
    distribution, version = str(facts.get("distribution")), str(facts.get("distribution_version") or "")
    support = PRECOMPILED_SUPPORT.get((distribution, version))
    if support is None:
        return ("NVIDIA builds precompiled driver containers for %s only, not for %s %s"
                % (" and ".join("%s %s" % key for key in sorted(PRECOMPILED_SUPPORT)), distribution, version))
    architecture = str(facts.get("architecture") or "")
    if architecture not in PRECOMPILED_ARCHITECTURES:
        return "precompiled driver containers are x86_64 only, this host is %s" % architecture
    kernel = str(facts.get("kernel"))
    line = ".".join(kernel.split(".")[:2])
    if line not in support["kernels"]:
        return ("kernel %s: the precompiled driver containers for %s %s are built for kernels %s"
                % (kernel, distribution, version, ", ".join(support["kernels"])))
    flavour = kernel_flavour(kernel)
    if flavour not in PRECOMPILED_FLAVOURS:
        return ("kernel %s is of the %s variant; NVIDIA builds precompiled driver containers for the %s variants"
                % (kernel, flavour or "unknown", ", ".join(PRECOMPILED_FLAVOURS)))
    if branch is not None and str(branch) not in support["branches"]:
        return ("driver branch R%s has no precompiled driver containers for %s %s (branches: %s)"
                % (branch, distribution, version, ", ".join("R" + b for b in support["branches"])))
    return None


def own_driver_images(settings):
    """The registry of driver images of the user's own (``gpu_operator_values``'
    ``driver.repository`` other than NVIDIA's), or None when NVIDIA's images are used."""
    values = (settings or {}).get("gpu_operator_values")
    driver = values.get("driver") if isinstance(values, dict) else None
    repository = str((driver or {}).get("repository") or "").strip().rstrip("/") if isinstance(driver, dict) else ""
    return repository if repository and repository != NVIDIA_REPOSITORY else None


def image_problem(os_facts):
    """Why NVIDIA publishes no conventional driver container for this host's OS, or None
    when it does (IMAGE_SUPPORT). Facts this run did not gather count as "cannot tell"."""
    facts = os_facts or {}
    distribution = str(facts.get("distribution") or "")
    if not distribution:
        return "this run gathered no OS facts of the host, so its OS cannot be matched to a driver image"
    version = str(facts.get("distribution_version") or "")
    support = IMAGE_SUPPORT.get(distribution)
    published = "Ubuntu 22.04/24.04, RHEL 8/9 (even minor releases) and Rocky Linux 8/9"
    if support is None:
        return "NVIDIA publishes driver containers for %s, none for %s %s" % (published, distribution, version)
    major = str(facts.get("distribution_major_version") or version.split(".", maxsplit=1)[0])
    key = version if distribution == "Ubuntu" else major
    if key not in support["versions"]:
        return "NVIDIA publishes driver containers for %s, none for %s %s" % (published, distribution, version)
    minor = version.split(".")[1] if "." in version else ""
    if support["even_minor"] and minor.isdigit() and int(minor) % 2:
        return ("NVIDIA publishes RHEL driver containers for even minor releases only (8.8, 8.10, 9.4, 9.6),"
                " none for %s %s" % (distribution, version))
    return None


def use_precompiled(settings, gpu_nodes_os, boolean):
    """Whether the cluster's ClusterPolicy uses precompiled driver containers
    (``driver.usePrecompiled``, one setting for every GPU node): true/false as set, else (auto)
    only when there are GPU nodes and NVIDIA publishes them for every one of them.

    ``gpu_nodes_os``: the ansible_facts of this run of every GPU node."""
    setting = precompiled_setting(settings, boolean)
    if setting != "auto":
        return bool(setting)
    nodes = list(gpu_nodes_os or [])
    branch = branch_of((settings or {}).get(VERSION))
    return bool(nodes) and branch is not None and all(precompiled_problem(facts, branch) is None for facts in nodes)


def max_unavailable(value):
    """``gpu_operator_driver_upgrade_max_unavailable`` as the chart takes it: an int, or a
    percentage string "N%"; None when it is neither, or zero (no node may go: every upgrade
    would wait forever, and the chart turns 0 into its default 25%)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    text = str(value if value is not None else "").strip()
    if text.isdigit():
        return int(text) if int(text) > 0 else None
    match = _PERCENT.match(text)
    if match and 0 < int(match.group(1)) <= 100:
        return text
    return None


def mode_problems(settings, boolean):
    """Problem records of the driver mode's settings; [] in host mode.

    ``settings``: SETTINGS (missing ones take their defaults); ``boolean``: how the argument
    specs read a boolean."""
    settings = settings or {}
    if not is_container(settings):
        return []
    records = []
    if not flag(settings.get("kubegpu_gpu_operator"), boolean, False):
        records.append(problem(
            MODE, "container while kubegpu_gpu_operator is false: in container mode NVIDIA's GPU Operator installs"
            " the driver, and without it no driver would be installed anywhere (stage 3 installs none)",
            "kubegpu_gpu_operator: true in group_vars/all, or nvidia_driver_mode: host"))
    if flag(settings.get("container_runtime_nvidia_toolkit_install"), boolean, True):
        records.append(problem(
            "container_runtime_nvidia_toolkit_install", "true while nvidia_driver_mode is container: stage 4 would"
            " install the NVIDIA Container Toolkit and generate its CDI spec before any driver is on the host, and"
            " its runtime would look for the driver in / instead of the driver container's /run/nvidia/driver",
            "container_runtime_nvidia_toolkit_install: false (the GPU Operator's toolkit, gpu_operator_toolkit_enabled:"
            " auto, is then set up for the driver container)"))
    setting = precompiled_setting(settings, boolean)
    version = settings.get(VERSION)
    branch = branch_of(version, precompiled=setting is True)
    if isinstance(version, float):
        records.append(problem(
            VERSION, "%s is a number, not a driver version (YAML reads an unquoted 580.10 as 580.1)" % version,
            "quote it: gpu_operator_driver_version: \"580.105.08\""))
    elif branch is None:
        records.append(problem(
            VERSION, "%s is not a driver container version (accepted: an exact driver release such as 580.105.08;"
            " the branch alone, 580, with gpu_operator_driver_precompiled: true)" % _specs.show(version),
            "gpu_operator_driver_version: \"580.105.08\" (a tag of nvcr.io/nvidia/driver, quoted)"))
    elif setting is True and not any(branch in s["branches"] for s in PRECOMPILED_SUPPORT.values()):
        branches = sorted(set(b for support in PRECOMPILED_SUPPORT.values() for b in support["branches"]))
        records.append(problem(
            PRECOMPILED, "true, but NVIDIA builds no precompiled driver containers of branch R%s (branches: %s)"
            % (branch, ", ".join("R" + b for b in branches)),
            "gpu_operator_driver_version of a branch with precompiled containers (580), or"
            " gpu_operator_driver_precompiled: auto"))
    if max_unavailable(settings.get(MAX_UNAVAILABLE)) is None:
        records.append(problem(
            MAX_UNAVAILABLE, "%s is neither a number of nodes nor a percentage above 0 (accepted: 1, 2, \"25%%\")"
            % _specs.show(settings.get(MAX_UNAVAILABLE)),
            "gpu_operator_driver_upgrade_max_unavailable: \"25%\" (the chart's default)"))
    parallel = integer(settings.get(MAX_PARALLEL), 0)
    if parallel < 0:
        records.append(problem(
            MAX_PARALLEL, "%s is negative (0 means no limit)" % _specs.show(settings.get(MAX_PARALLEL)),
            "gpu_operator_driver_upgrade_max_parallel: 1"))
    values = settings.get("gpu_operator_values")
    driver = (values or {}).get("driver") if isinstance(values, dict) else None
    for key in ("enabled", "version", "usePrecompiled"):
        if isinstance(driver, dict) and key in driver:
            records.append(problem(
                "gpu_operator_values", "driver.%s is set: in container mode kubegpu sets it from nvidia_driver_mode,"
                " gpu_operator_driver_version and gpu_operator_driver_precompiled (which preflight and"
                " upgrade_driver.yml read)" % key,
                "remove driver.%s from gpu_operator_values and set the gpu_operator_driver_* variable" % key))
    return records


def host_driver(gpu_facts):
    """The host's OWN NVIDIA driver, told apart from one a driver container loaded, as the GPU
    Operator tells them apart (its user space on the host): a description, or None.

    Loaded, with the host's user space answering (gpu_facts read it through NVML or
    nvidia-smi, or found them at odds with the module), or installed and not loaded (a
    module under /lib/modules or nvidia-smi on the host: it loads at the next boot)."""
    facts = gpu_facts or {}
    driver = facts.get("driver") or {}
    if driver.get("loaded"):
        if facts.get("source") in ("nvml", "nvidia_smi") or driver.get("library_mismatch"):
            return "the host's own NVIDIA driver %s is loaded (its user space answers on the host)" % (
                driver.get("version") or "")
        return None
    hints = list(driver.get("install_hints") or [])
    if hints:
        return "a host NVIDIA driver is installed, not loaded, and would load at the next boot (%s)" % "; ".join(
            str(h) for h in hints)
    return None


def host_problems(gpu_facts, os_facts, settings, boolean):
    """Problem records of one GPU node in container mode, from this run's facts; [] in host mode.

    ``gpu_facts``: ansible_facts.kubegpu_gpu; ``os_facts``: ansible_facts (distribution,
    distribution_version, kernel, architecture)."""
    settings = settings or {}
    if not is_container(settings):
        return []
    facts = gpu_facts or {}
    records = []
    found = host_driver(facts)
    if found:
        records.append(problem(
            MODE, "container, but %s: the GPU Operator's driver container would not install its own (the Operator"
            " treats the node as pre-installed) and the two drivers' modules would compete at the next boot" % found,
            "remove the host driver (apt purge 'nvidia-*' 'libnvidia-*', or dnf module remove --all nvidia-driver)"
            " and reboot before stage 3, or nvidia_driver_mode: host"))
    setting = precompiled_setting(settings, boolean)
    branch = branch_of(settings.get(VERSION), precompiled=setting is True)
    why_not = precompiled_problem(os_facts, branch)
    no_image = image_problem(os_facts)
    if no_image and setting is not True and not own_driver_images(settings):
        records.append(problem(
            MODE, "container, but %s: the GPU Operator's driver pod on this node would stay in ImagePullBackOff"
            " and the node would get no driver" % no_image,
            "nvidia_driver_mode: host (stage 3 installs the driver on the host), or driver images of your own"
            " for this OS: gpu_operator_values: {driver: {repository: <your registry>}}"))
    if setting is True and why_not:
        records.append(problem(
            PRECOMPILED, "true, but %s" % why_not,
            "gpu_operator_driver_precompiled: auto (precompiled only where every GPU node has them), or a kernel"
            " NVIDIA builds them for"))
    if facts.get("secure_boot") == "enabled" and not flag(settings.get(SIGNED), boolean, False) \
            and not (setting is True and why_not is None):
        records.append(problem(
            MODE, "container on a Secure Boot host: the GPU Operator's conventional driver container builds the"
            " NVIDIA modules on the node, unsigned, and the kernel would refuse to load them",
            "on Ubuntu 22.04/24.04 with a generic, nvidia, aws, azure or oracle kernel set"
            " gpu_operator_driver_precompiled: true (NVIDIA's precompiled images carry Canonical's signed modules);"
            " with a driver image of your own whose modules are signed by an enrolled key set"
            " gpu_operator_driver_signed_modules: true; or nvidia_driver_mode: host; or disable Secure Boot"))
    if branch is not None and facts.get("gpus"):
        # The branch window of the host's GPUs, as stage 3 plans a host driver (_driver_plan.plan).
        try:
            _plan.plan(facts, branch=str(settings.get(VERSION)).strip())
        except _plan.DriverPlanError as exc:
            text = str(exc).split(". ", maxsplit=1)[0].replace(_plan.BRANCH_VAR, VERSION).rstrip(".")
            records.append(problem(
                VERSION, text,
                "gpu_operator_driver_version of a branch that drives them (docs/gpu_facts.md lists the branches of"
                " each architecture), or nvidia_driver_mode: host for this cluster"))
    return records


def host_plan(gpu_facts, os_facts, settings, boolean):
    """What stage 3 does on a GPU node in container mode (roles/nvidia_driver/tasks/container.yml):

    ``packages``: none - the driver container brings the driver and, where it builds the
    modules, installs the kernel headers inside itself; ``unload_nouveau``: nouveau is
    loaded and the host is no container (os_prereqs blacklisted it; unloading it now lets the
    driver container's module bind without a reboot); ``precompiled_available``: NVIDIA
    publishes a precompiled driver container for this host; ``problems``: host_problems;
    ``summary``: one line for the run's output."""
    settings = settings or {}
    facts = gpu_facts or {}
    os_facts = os_facts or {}
    in_container = (os_facts.get("virtualization_role") == "guest"
                    and os_facts.get("virtualization_type") in _specs.container_types())
    setting = precompiled_setting(settings, boolean)
    branch = branch_of(settings.get(VERSION), precompiled=setting is True)
    why_not = precompiled_problem(os_facts, branch)
    if setting is False:
        modules = "the driver container builds the modules (gpu_operator_driver_precompiled: false)"
    elif why_not is None:
        modules = ("precompiled modules from NVIDIA's image" if setting is True
                   else "precompiled modules if every GPU node has them (auto), else built by the driver container")
    else:
        modules = "the driver container builds the modules (no precompiled image: %s)" % why_not
    unload = bool(facts.get("nouveau_loaded")) and not in_container
    return {
        "packages": [],
        "unload_nouveau": unload,
        "precompiled_available": why_not is None,
        "problems": host_problems(facts, os_facts, settings, boolean),
        "summary": "nvidia_driver_mode container: the GPU Operator's driver container %s installs the driver;"
                   " %s; no driver package and no kernel headers on the host%s."
                   % (settings.get(VERSION), modules, "; nouveau is unloaded first" if unload else ""),
    }
