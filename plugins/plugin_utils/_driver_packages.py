# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Driver packages: which packages, repository and holds give a planned driver.

Pure functions, no I/O. The nvidia_driver role calls them through the filters in
plugins/filter/driver.py:

- default_source(os_family, distribution): the per-OS default source.
- source_constraints(source, distribution, version): what a source fixes
  (Debian's non-free archive has exactly one branch per release).
- pinned_plan(facts, branch, flavour, constraints): a plan for a host pinned as a
  GPU node on which detection found no GPU (the driver plan returns
  needed=False there).
- select(...): package list, repository, hold list, units, module build facts.
- package_changes(installed, selection): what to remove, install, unhold.
- merge_apt_components(text, fmt, components, codename): add components to the
  distribution's own apt entries (one-line sources.list or deb822 .sources),
  leaving every other byte alone.

A request no source can satisfy raises DriverPackagesError, whose message names
the host variable to change and the fix.
"""

from __future__ import annotations

import re

# The kernel modules an NVLink5 system's fabric manager needs (one definition, host side).
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import NVLINK5_KERNEL_MODULES

SOURCES = ("ubuntu", "debian", "rhel", "cuda")
SOURCE_VAR = "nvidia_driver_source"
BRANCH_VAR = "nvidia_driver_branch"
FLAVOUR_VAR = "nvidia_driver_flavour"
TOOLKIT_VAR = "nvidia_driver_cuda_toolkit_version"

# NVIDIA's default flavour when nothing says otherwise (open from R560).
OPEN_DEFAULT_FROM = 560
DEFAULT_BRANCH = 580

# Debian non-free ships one branch per release (checked with apt-cache policy,
# 2026: bookworm 535.261.03 + bookworm-security 535.309.01, trixie 550.163.01).
DEBIAN_BRANCHES = {"12": 535, "13": 550}
DEBIAN_CODENAMES = {"12": "bookworm", "13": "trixie"}
# nvidia-cuda-toolkit in each release's non-free / multiverse.
DISTRO_CUDA_TOOLKIT = {
    ("debian", "12"): "11.8",
    ("debian", "13"): "12.4",
    ("ubuntu", "22"): "11.5",
    ("ubuntu", "24"): "12.0",
}
UBUNTU_VERSIONS = ("22", "24")

# NVLink5 systems (HGX B200/B300) need NVLSM beside the fabric manager: "On NVIDIA DGX-B200,
# HGX-B200, and HGX-B100 systems and later, the FabricManager package needs an additional
# NVLSM dependency" (NVIDIA Fabric Manager user guide, "Systems Using Fourth Generation
# NVSwitches", https://docs.nvidia.com/datacenter/tesla/fabric-manager-user-guide/).
# NVIDIA's CUDA repository ships nvlsm (not versioned with the driver) and NVIDIA's driver
# container installs it with infiniband-diags (github.com/NVIDIA/gpu-driver-container:
# ubuntu24.04/install.sh and rhel9/install.sh, nvlink5_pkgs_install). Canonical's archive
# and Debian have no nvlsm package (packages.ubuntu.com lists none). There is no NVLSM
# service: nvidia-fabricmanager.service runs nvidia-fabricmanager-start.sh, which starts
# NVLSM and the fabric manager on an NVLink5 system (siderolabs/extensions#717).
NVLSM_PACKAGES = ("nvlsm", "infiniband-diags")
# From R580 NVIDIA's CUDA repository names the fabric manager and NSCQ without the branch
# (nvidia-fabricmanager, libnvidia-nscq; RHEL's nvidia-fabric-manager became
# nvidia-fabricmanager), R570 and older with it (nvidia-fabricmanager-570): NVIDIA's driver
# container, ubuntu24.04/precompiled/nvidia-driver fabricmanager_install / nscq_install.
# Canonical's archive keeps the branch in the name (nvidia-fabricmanager-580, multiverse).
CUDA_UNSUFFIXED_FM_FROM = 580
RHEL_VERSIONS = ("8", "9")

# NVIDIA CUDA repository: directory per OS, signing key file and its full
# fingerprint (the key is refused unless it has exactly this fingerprint).
CUDA_REPO_BASE_URL = "https://developer.download.nvidia.com/compute/cuda/repos"
CUDA_KEYS = {
    "3bf863cc.pub": "EB693B3035CD5710E231E123A4B469963BF863CC",
    "8793F200.pub": "02182E60104FCDC26EAE1B8597A5D4CB8793F200",
    "D42D0685.pub": "610C7B14E068A878070DA4E99CD0A493D42D0685",
}
CUDA_REPO_DIRS = {
    ("ubuntu", "22"): ("ubuntu2204", "3bf863cc.pub"),
    ("ubuntu", "24"): ("ubuntu2404", "3bf863cc.pub"),
    ("debian", "12"): ("debian12", "3bf863cc.pub"),
    ("debian", "13"): ("debian13", "8793F200.pub"),
    ("rhel", "8"): ("rhel8", "D42D0685.pub"),
    ("rhel", "9"): ("rhel9", "D42D0685.pub"),
}
CUDA_ARCH_DIRS = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "sbsa", "arm64": "sbsa"}

# Names that belong to an NVIDIA driver installation (any source). Used to find
# packages of another branch to remove, and for the unattended-upgrades blacklist.
DRIVER_PACKAGE_RE = re.compile(
    r"^(nvidia-|libnvidia-|libcuda1|linux-modules-nvidia-|linux-objects-nvidia-|"
    r"linux-signatures-nvidia-|cuda-drivers|xserver-xorg-video-nvidia|firmware-nvidia-gsp|kmod-nvidia)"
)
# A branch number inside a package name: nvidia-utils-580-server, cuda-drivers-580.
NAME_BRANCH_RE = re.compile(r"-(\d{3})(?:-|$)")
UNATTENDED_BLACKLIST = (
    "^nvidia-",
    "^libnvidia-",
    "^libcuda1",
    "^linux-modules-nvidia-",
    "^linux-objects-nvidia-",
    "^linux-signatures-nvidia-",
    "^firmware-nvidia-",
    "^xserver-xorg-video-nvidia",
    "^cuda-",
)


class DriverPackagesError(ValueError):
    pass


def _major(version):
    return str(version or "").split(".", maxsplit=1)[0]


def _family(os_family, distribution):
    """Normalise to ubuntu / debian / rhel (RHEL and its rebuilds)."""
    dist = str(distribution or "").lower()
    fam = str(os_family or "").lower()
    if dist == "ubuntu":
        return "ubuntu"
    if dist == "debian":
        return "debian"
    if fam == "redhat" or dist in ("redhat", "rhel", "rocky", "almalinux", "centos", "oraclelinux"):
        return "rhel"
    raise DriverPackagesError(
        "distribution %s (os family %s) is not supported by the nvidia_driver role: "
        "supported are Ubuntu 22.04/24.04, Debian 12/13 and RHEL/Rocky/Alma 8/9" % (distribution, os_family)
    )


def default_source(os_family, distribution):
    """ubuntu on Ubuntu, debian on Debian, rhel on the RHEL family."""
    return _family(os_family, distribution)


def _branch_int(branch):
    text = str(branch if branch is not None else "").strip()
    if text[:1] in ("R", "r"):
        text = text[1:]
    head = text.split(".", maxsplit=1)[0]
    if not head.isdigit():
        raise DriverPackagesError("%s=%r is not a driver branch such as 580" % (BRANCH_VAR, branch))
    return int(head)


def source_constraints(source, os_family, distribution, version):
    """What a source fixes on this OS: {'branch': int or None, 'flavour': str or None, 'reason': str}.

    'branch' is the only branch the source has (Debian non-free); 'flavour' is the
    flavour to prefer when the user left it on auto (bookworm's open modules are
    not installable next to its security update, see select()).
    """
    family = _family(os_family, distribution)
    major = _major(version)
    if source == "debian" and family == "debian" and major in DEBIAN_BRANCHES:
        branch = DEBIAN_BRANCHES[major]
        flavour = "proprietary" if major == "12" else None
        return {
            "branch": branch,
            "flavour": flavour,
            "reason": "Debian %s (%s) non-free ships branch %d only" % (major, DEBIAN_CODENAMES[major], branch),
        }
    return {"branch": None, "flavour": None, "reason": ""}


def pinned_plan(facts, branch="auto", flavour="auto", constraints=None):
    """Plan for a host pinned as a GPU node where detection found no GPU.

    The driver plan returns needed=False without GPUs; a pinned host still gets
    a driver: the requested branch, else the source's fixed branch, else the
    default LTSB; the requested flavour, else open from R560, proprietary before.
    'satisfied' follows the loaded driver the same way the plan does.
    """
    constraints = constraints or {}
    facts = facts or {}
    text = str(branch if branch is not None else "auto").strip()
    pinned_version = None
    if text.lower() in ("", "auto"):
        chosen = constraints.get("branch") or DEFAULT_BRANCH
        branch_source = "source" if constraints.get("branch") else "auto"
    else:
        chosen = _branch_int(text)
        if "." in text.lstrip("Rr"):
            pinned_version = text.lstrip("Rr")
        branch_source = "requested"
    fl = str(flavour or "auto").strip().lower()
    if fl == "auto":
        fl = constraints.get("flavour") or ("open" if chosen >= OPEN_DEFAULT_FROM else "proprietary")
        flavour_source = "auto"
    elif fl in ("open", "proprietary"):
        flavour_source = "requested"
    else:
        raise DriverPackagesError("%s=%r is not one of auto, open, proprietary" % (FLAVOUR_VAR, flavour))
    driver = facts.get("driver") or {}
    loaded = driver.get("version") if driver.get("loaded") else None
    if not loaded:
        satisfied, reason = False, "no NVIDIA driver is loaded (host pinned as a GPU node, no GPU detected)"
    elif _major(loaded) != str(chosen):
        satisfied, reason = False, "loaded driver %s is not branch R%d" % (loaded, chosen)
    elif pinned_version and loaded != pinned_version:
        satisfied, reason = False, "loaded driver %s is not the pinned version %s" % (loaded, pinned_version)
    elif driver.get("flavour") and driver.get("flavour") != fl:
        satisfied, reason = False, "loaded driver %s uses the %s kernel modules, the plan wants %s" % (
            loaded, driver.get("flavour"), fl)
    else:
        satisfied, reason = True, "loaded driver %s matches R%d/%s" % (loaded, chosen, fl)
    return {
        "needed": True,
        "branch": str(chosen),
        "version": pinned_version,
        "flavour": fl,
        "branch_source": branch_source,
        "flavour_source": flavour_source,
        "support": None,
        "cuda_max": None,
        "fabric_manager": bool(facts.get("fabric_manager_needed")),
        "nvlsm": bool(facts.get("nvlsm_needed")),
        "architectures": [],
        "satisfied": satisfied,
        "reason": reason,
        "warnings": ["no NVIDIA GPU detected; the host is a GPU node because it is pinned (group or kubegpu_gpu_node)"],
    }


def kernel_flavour(kernel_release):
    """Ubuntu kernel flavour from `uname -r`: 6.8.0-51-generic -> generic, 6.8.0-1015-aws -> aws."""
    match = re.match(r"^\d+\.\d+\.\d+-\d+-(.+)$", str(kernel_release or ""))
    return match.group(1) if match else ""


def _toolkit(family, major, source, branch, cuda_toolkit, toolkit_version):
    if not cuda_toolkit:
        return []
    ver = str(toolkit_version or "").strip()
    if not re.match(r"^\d+\.\d+$", ver):
        raise DriverPackagesError("%s=%r must be a CUDA major.minor such as 12.8" % (TOOLKIT_VAR, toolkit_version))
    if int(ver.split(".", maxsplit=1)[0]) >= 13 and branch < 580:
        raise DriverPackagesError(
            "%s=%s needs driver branch R580 or newer, the plan has R%d. Set %s to a 12.x release or %s to 580."
            % (TOOLKIT_VAR, ver, branch, TOOLKIT_VAR, BRANCH_VAR)
        )
    if source in ("cuda", "rhel"):
        return ["cuda-toolkit-%s" % ver.replace(".", "-")]
    distro_ver = DISTRO_CUDA_TOOLKIT.get((family, major))
    if distro_ver != ver:
        raise DriverPackagesError(
            "%s %s packages CUDA toolkit %s (nvidia-cuda-toolkit), not %s. Set %s to %r, or %s: cuda "
            "for NVIDIA's pinned cuda-toolkit-X-Y packages."
            % (family.capitalize(), major, distro_ver, ver, TOOLKIT_VAR, distro_ver, SOURCE_VAR)
        )
    return ["nvidia-cuda-toolkit"]


def _spec(manager, name, branch, version):
    """apt: name=580.* / name=580.95.05-* ; dnf: the bare name (module stream or versionlock pins)."""
    if manager != "apt":
        return name
    if version:
        return "%s=%s-*" % (name, version)
    return "%s=%d.*" % (name, branch)


def select(
    os_family,
    distribution,
    version,
    branch,
    flavour,
    source,
    kernel_release="",
    kernel_flavour_name="",
    architecture="x86_64",
    precompiled=True,
    headless=True,
    fabric_manager=False,
    nvlsm=False,
    cuda_toolkit=False,
    cuda_toolkit_version="",
    version_pin=None,
    cuda_repo_base_url=CUDA_REPO_BASE_URL,
):
    """Package selection for one host. Raises DriverPackagesError for an impossible request.

    Returns a dict:
      source, family, manager (apt|dnf), branch, flavour, version,
      packages          specs to install (apt: name=580.* style where the version
                        starts with the branch), in install order,
      names             the bare package names of `packages`,
      fabric_manager_packages, cuda_toolkit_packages (also in packages/names),
      nvlsm_packages    NVLSM and the InfiniBand tools it needs (also in packages/names,
                        not held: not versioned with the driver),
      fabric_kernel_modules  kernel modules the fabric manager needs loaded (NVLink5:
                        mlx5_ib, ib_umad; empty elsewhere),
      headers_packages  kernel headers for a local module build (empty when none),
      builds_modules    True when DKMS builds the kernel module on the host,
      signed_modules    True when the modules come signed (Ubuntu precompiled),
      hold              names to hold (apt) / versionlock (dnf),
      conflicts         names of the other flavour that must go before install,
      repo              {'kind': 'apt_components'|'apt_repo'|'dnf_repo', ...},
      dnf_module        {'name','stream','profile'} or None,
      persistenced_unit, fabric_manager_unit, unattended_blacklist,
      kernel_rule       how every installed kernel gets the module (kernel_rule()).
    """
    family = _family(os_family, distribution)
    major = _major(version)
    if source not in SOURCES:
        raise DriverPackagesError("%s=%r is not one of %s" % (SOURCE_VAR, source, ", ".join(SOURCES)))
    b = _branch_int(branch)
    fl = str(flavour or "").lower()
    if fl not in ("open", "proprietary"):
        raise DriverPackagesError("%s=%r: the plan must resolve the flavour to open or proprietary" % (FLAVOUR_VAR, flavour))
    is_open = fl == "open"
    pin = str(version_pin) if version_pin else None
    if pin and _major(pin) != str(b):
        raise DriverPackagesError("pinned version %s is not in branch R%d (%s)" % (pin, b, BRANCH_VAR))
    arch = CUDA_ARCH_DIRS.get(str(architecture or "x86_64").lower())
    if arch is None:
        raise DriverPackagesError("architecture %s is not supported (x86_64, aarch64)" % architecture)

    manager = "dnf" if family == "rhel" else "apt"
    result = {
        "source": source,
        "family": family,
        "manager": manager,
        "branch": str(b),
        "flavour": fl,
        "version": pin,
        "packages": [],
        "names": [],
        "fabric_manager_packages": [],
        "nvlsm_packages": [],
        "fabric_kernel_modules": [],
        "cuda_toolkit_packages": [],
        "headers_packages": [],
        "builds_modules": True,
        "signed_modules": False,
        "hold": [],
        "conflicts": [],
        "repo": {"kind": "none"},
        "dnf_module": None,
        "persistenced_unit": "nvidia-persistenced",
        "fabric_manager_unit": "nvidia-fabricmanager",
        "unattended_blacklist": list(UNATTENDED_BLACKLIST) if manager == "apt" else [],
        # Installed packages whose names match may be stale (package_changes).
        "installed_match": DRIVER_PACKAGE_RE.pattern,
    }
    driver, fm, other, sm = [], [], [], []
    unversioned = set()  # names whose package version does not start with the branch

    if source == "ubuntu":
        if family != "ubuntu":
            raise DriverPackagesError(
                "%s=ubuntu needs Ubuntu (this host runs %s). Set %s to %s or cuda."
                % (SOURCE_VAR, distribution, SOURCE_VAR, default_source(os_family, distribution))
            )
        if major not in UBUNTU_VERSIONS:
            raise DriverPackagesError("Ubuntu %s is not supported (22.04, 24.04)" % version)
        o = "-open" if is_open else ""
        no = "" if is_open else "-open"
        kflav = kernel_flavour_name or kernel_flavour(kernel_release)
        if precompiled:
            if not kflav or not kernel_release:
                raise DriverPackagesError(
                    "cannot tell the kernel flavour of kernel %r for Ubuntu's precompiled modules. Set "
                    "nvidia_driver_ubuntu_kernel_flavour (e.g. generic) or nvidia_driver_ubuntu_precompiled: false."
                    % kernel_release
                )
            main = "nvidia-headless-no-dkms-%d-server%s" % (b, o) if headless else "nvidia-driver-%d-server%s" % (b, o)
            mods = ["linux-modules-nvidia-%d-server%s-%s" % (b, o, kflav),
                    "linux-modules-nvidia-%d-server%s-%s" % (b, o, kernel_release)]
            driver = [main, "nvidia-utils-%d-server" % b] + mods
            unversioned.update(mods)
            other = ["nvidia-headless-no-dkms-%d-server%s" % (b, no), "nvidia-driver-%d-server%s" % (b, no),
                     "linux-modules-nvidia-%d-server%s-%s" % (b, no, kflav),
                     "linux-modules-nvidia-%d-server%s-%s" % (b, no, kernel_release)]
            result["builds_modules"] = False
            result["signed_modules"] = True
        else:
            main = "nvidia-headless-%d-server%s" % (b, o) if headless else "nvidia-driver-%d-server%s" % (b, o)
            driver = [main, "nvidia-utils-%d-server" % b]
            other = ["nvidia-headless-%d-server%s" % (b, no), "nvidia-driver-%d-server%s" % (b, no),
                     "nvidia-dkms-%d-server%s" % (b, no)]
            result["headers_packages"] = ["linux-headers-%s" % kernel_release] if kernel_release else []
        if fabric_manager:
            fm = ["nvidia-fabricmanager-%d" % b, "libnvidia-nscq-%d" % b]
        if nvlsm:
            raise DriverPackagesError(
                "Canonical's Ubuntu archive has no NVLSM (nvlsm), which this NVLink5 host (HGX B200/B300) needs beside "
                "the fabric manager. Set %s: cuda (NVIDIA's CUDA repository has nvlsm and the fabric manager)."
                % SOURCE_VAR
            )
        result["repo"] = {"kind": "apt_components", "components": ["restricted"]}

    elif source == "debian":
        if family != "debian":
            raise DriverPackagesError(
                "%s=debian needs Debian (this host runs %s). Set %s to %s or cuda."
                % (SOURCE_VAR, distribution, SOURCE_VAR, default_source(os_family, distribution))
            )
        if major not in DEBIAN_BRANCHES:
            raise DriverPackagesError("Debian %s is not supported (12, 13)" % version)
        have = DEBIAN_BRANCHES[major]
        codename = DEBIAN_CODENAMES[major]
        if b != have:
            raise DriverPackagesError(
                "Debian %s (%s) non-free ships driver branch R%d only, the plan wants R%d. Set %s: %d on this host "
                "(if its GPUs allow it), or %s: cuda to install R%d from NVIDIA's CUDA repository."
                % (major, codename, have, b, BRANCH_VAR, have, SOURCE_VAR, b)
            )
        if pin:
            raise DriverPackagesError(
                "Debian's non-free archive has one version per branch; %s=%s cannot be pinned there. Set %s: %d, "
                "or %s: cuda for an exact version." % (BRANCH_VAR, pin, BRANCH_VAR, have, SOURCE_VAR)
            )
        if is_open and major == "12":
            raise DriverPackagesError(
                "Debian 12's nvidia-open-kernel-dkms 535.261.03 depends on firmware-nvidia-gsp (= 535.261.03) and "
                "nvidia-open-kernel-support, but bookworm-security moved the driver and firmware to 535.309.01 "
                "without an open-module build: apt cannot install it. Set %s: proprietary (Turing to Hopper run "
                "on it), or %s: cuda for the open modules." % (FLAVOUR_VAR, SOURCE_VAR)
            )
        if fabric_manager:
            raise DriverPackagesError(
                "Debian does not package the NVIDIA fabric manager this NVSwitch host needs%s. Set %s: cuda "
                "(nvidia-fabricmanager-<branch>%s from NVIDIA's CUDA repository)."
                % (" (nor NVLSM, which its NVLink5 switch trays need)" if nvlsm else "", SOURCE_VAR,
                   " and nvlsm" if nvlsm else "")
            )
        kernel_pkg = "nvidia-open-kernel-dkms" if is_open else "nvidia-kernel-dkms"
        other = ["nvidia-kernel-dkms" if is_open else "nvidia-open-kernel-dkms"]
        if headless:
            driver = [kernel_pkg, "firmware-nvidia-gsp", "nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced"]
        else:
            driver = [kernel_pkg, "firmware-nvidia-gsp", "nvidia-driver", "nvidia-smi", "libnvidia-ml1", "libcuda1",
                      "nvidia-persistenced"]
        result["headers_packages"] = ["linux-headers-%s" % kernel_release] if kernel_release else []
        result["repo"] = {"kind": "apt_components", "components": ["contrib", "non-free", "non-free-firmware"],
                          "codename": codename}

    elif source in ("rhel",) or (source == "cuda" and family == "rhel"):
        if family != "rhel":
            raise DriverPackagesError(
                "%s=rhel needs RHEL, Rocky or Alma Linux (this host runs %s). Set %s to %s or cuda."
                % (SOURCE_VAR, distribution, SOURCE_VAR, default_source(os_family, distribution))
            )
        if major not in RHEL_VERSIONS:
            raise DriverPackagesError(
                "RHEL %s has no nvidia-driver module streams here (supported: 8, 9)" % version
            )
        if pin:
            raise DriverPackagesError(
                "dnf module streams follow a branch; %s=%s cannot be pinned to an exact version there. Set %s: %d."
                % (BRANCH_VAR, pin, BRANCH_VAR, b)
            )
        stream = "%d-open" % b if is_open else "%d-dkms" % b
        result["dnf_module"] = {"name": "nvidia-driver", "stream": stream, "profile": "fm" if fabric_manager else "default"}
        driver = ["@nvidia-driver:%s/%s" % (stream, result["dnf_module"]["profile"]), "nvidia-persistenced"]
        if fabric_manager:
            fm = ["nvidia-fabricmanager" if b >= CUDA_UNSUFFIXED_FM_FROM else "nvidia-fabric-manager"]
        if nvlsm:
            sm = list(NVLSM_PACKAGES)
        result["headers_packages"] = (["kernel-devel-%s" % kernel_release] if kernel_release else []) + ["kernel-headers"]
        result["hold"] = ["nvidia-driver", "nvidia-driver-libs", "nvidia-driver-cuda", "nvidia-driver-cuda-libs",
                          "nvidia-kmod-common", "nvidia-modprobe", "nvidia-persistenced",
                          "kmod-nvidia-open-dkms" if is_open else "kmod-nvidia-latest-dkms"] + fm
        result["conflicts"] = ["kmod-nvidia-latest-dkms" if is_open else "kmod-nvidia-open-dkms"]
        repo_dir, key = CUDA_REPO_DIRS[("rhel", major)]
        url = "%s/%s/%s/" % (cuda_repo_base_url.rstrip("/"), repo_dir, arch)
        result["repo"] = {"kind": "dnf_repo", "name": "cuda-%s-%s" % (repo_dir, arch), "url": url,
                          "key_url": url + key, "fingerprint": CUDA_KEYS[key]}
        result["fabric_manager_unit"] = "nvidia-fabricmanager"

    else:  # cuda on Ubuntu / Debian
        if (family, major) not in CUDA_REPO_DIRS:
            raise DriverPackagesError("NVIDIA's CUDA repository has no directory for %s %s" % (distribution, version))
        main = "nvidia-open-%d" % b if is_open else "cuda-drivers-%d" % b
        driver = [main]
        other = ["cuda-drivers-%d" % b if is_open else "nvidia-open-%d" % b]
        if fabric_manager and b >= CUDA_UNSUFFIXED_FM_FROM:
            fm = ["nvidia-fabricmanager", "libnvidia-nscq"]
        elif fabric_manager:
            fm = ["nvidia-fabricmanager-%d" % b, "libnvidia-nscq-%d" % b]
        if nvlsm:
            sm = list(NVLSM_PACKAGES)
        result["headers_packages"] = ["linux-headers-%s" % kernel_release] if kernel_release else []
        repo_dir, key = CUDA_REPO_DIRS[(family, major)]
        url = "%s/%s/%s/" % (cuda_repo_base_url.rstrip("/"), repo_dir, arch)
        result["repo"] = {"kind": "apt_repo", "name": "kubegpu-cuda", "url": url, "suites": "/",
                          "key_url": url + key, "fingerprint": CUDA_KEYS[key]}

    result["kernel_rule"] = kernel_rule(source, family, b, is_open, result["builds_modules"], manager)
    toolkit = _toolkit(family, major, source, b, cuda_toolkit, cuda_toolkit_version)
    names = driver + fm + sm + toolkit
    result["fabric_manager_packages"] = fm
    result["nvlsm_packages"] = sm
    result["fabric_kernel_modules"] = list(NVLINK5_KERNEL_MODULES) if sm else []
    result["cuda_toolkit_packages"] = toolkit
    result["names"] = names
    if manager == "apt":
        unversioned.update(toolkit)
        unversioned.update(sm)
        result["packages"] = [n if n in unversioned else _spec("apt", n, b, pin) for n in names]
        result["hold"] = [n for n in names if n not in sm]
        result["conflicts"] = [n for n in other if n not in names]
    else:
        result["packages"] = list(names)
        result["hold"] = result["hold"] + toolkit
    return result


# The DKMS module (dkms.conf PACKAGE_NAME) each source's DKMS package registers, and the
# kernel objects it installs. Debian's nvidia-kernel-dkms 535.309.01-0+deb12u1:
# /usr/src/nvidia-current-535.309.01/dkms.conf, PACKAGE_NAME="nvidia-current", modules
# renamed to nvidia-current*.ko in /updates/dkms (checked with dpkg-deb, 2026-12;
# https://salsa.debian.org/nvidia-team/nvidia-graphics-drivers). Ubuntu's nvidia-dkms-*,
# NVIDIA's CUDA repository and RHEL's kmod-nvidia-*-dkms register "nvidia".
DEBIAN_DKMS_MODULES = {"proprietary": "nvidia-current", "open": "nvidia-current-open"}
KERNEL_VAR = "nvidia_driver_dkms_module"


def kernel_rule(source, family, branch, is_open, builds_modules, manager):
    """How a selection keeps every installed kernel's module: ``dkms_module`` (None where
    nothing is built), ``module_names`` (kernel objects that count as the NVIDIA module),
    ``per_kernel`` (package name templates, ``{kernel}`` replaced by each release),
    ``manager``. Headers for DKMS (linux-headers-<k>, RHEL kernel-devel-<k>); Ubuntu's
    precompiled path: linux-modules-nvidia-<b>-server[-open]-<k> (Canonical's signed
    modules are one package per kernel release, built from linux-restricted-modules, e.g.
    https://packages.ubuntu.com/source/stonking/linux-restricted-signatures lists
    linux-modules-nvidia-580-server-open-7.0.0-14-generic; NVIDIA's note "before upgrading
    kernel ... ensure that above packages are available for that kernel version",
    https://docs.nvidia.com/datacenter/cloud-native/gpu-operator/install-precompiled-signed-drivers.html)."""
    flavour = "open" if is_open else "proprietary"
    if not builds_modules:
        return {"dkms_module": None, "module_names": ["nvidia"], "manager": manager, "per_kernel": [
            "linux-modules-nvidia-%d-server%s-{kernel}" % (branch, "-open" if is_open else "")]}
    if source == "debian":
        dkms_module = DEBIAN_DKMS_MODULES[flavour]
        names = [dkms_module, "nvidia"]
    else:
        dkms_module, names = "nvidia", ["nvidia"]
    headers = "kernel-devel-{kernel}" if family == "rhel" else "linux-headers-{kernel}"
    return {"dkms_module": dkms_module, "module_names": names, "manager": manager, "per_kernel": [headers]}


def kernel_packages(rule, kernels, dkms_module=""):
    """The packages that give each installed kernel the NVIDIA module, from ``rule``
    (a selection's ``kernel_rule``) and ``kernels`` (kernel_modules' reading, or a list of
    releases). ``dkms_module`` overrides the rule's DKMS module (nvidia_driver_dkms_module).

    Returns {'packages': [...] (every kernel's, in the reading's order), 'by_kernel':
    {release: [...]}, 'dkms_module', 'module_names', 'manager'}."""
    rule = rule or {}
    if isinstance(kernels, dict):
        releases = list(kernels.get("installed") or [])
    else:
        releases = list(kernels or [])
    by_kernel, packages = {}, []
    for release in releases:
        names = [t.replace("{kernel}", release) for t in rule.get("per_kernel") or []]
        by_kernel[release] = names
        packages.extend(n for n in names if n not in packages)
    module = dkms_module or rule.get("dkms_module")
    names = list(rule.get("module_names") or ["nvidia"])
    if dkms_module and dkms_module not in names:
        names.insert(0, dkms_module)
    return {"packages": packages, "by_kernel": by_kernel, "dkms_module": module, "module_names": names,
            "manager": rule.get("manager") or "apt"}


def _installed_versions(installed, name):
    """package_facts style {name: [{'version': ..}]} -> list of versions."""
    entries = (installed or {}).get(name) or []
    return [e.get("version") for e in entries if isinstance(e, dict) and e.get("version")]


def installed_packages(packages):
    """package_facts style {name: [{'version': ..}]} from either package_facts or
    kubegpu.cluster.host_state's ``packages`` ({name: {'installed', 'version', ...}}),
    where only the installed ones count."""
    result = {}
    for name, entry in (packages or {}).items():
        if isinstance(entry, dict):
            if entry.get("installed") and entry.get("version"):
                result[name] = [{"name": name, "version": entry["version"]}]
        else:
            result[name] = entry
    return result


def package_changes(installed, selection):
    """What the role must do to reach the selection from the installed packages.

    installed: ansible_facts.packages (package_facts), or host_state's packages (only
    the installed ones count). Returns a dict:
      stale     installed driver packages of another branch or the other flavour:
                unhold, then remove (upgrade / flavour switch),
      outdated  wanted packages installed at another branch: unhold, then install,
      missing   wanted package specs to install (includes outdated),
      unhold    names whose hold must be released before apt/dnf may touch them,
      install   True when the package manager has something to do.
    """
    installed = installed_packages(installed)
    branch = str(selection["branch"])
    manager = selection["manager"]
    wanted = set(selection["names"])
    stale = []
    for name in sorted(installed):
        if name in wanted or not DRIVER_PACKAGE_RE.match(name):
            continue
        if name in selection.get("conflicts", []):
            stale.append(name)
            continue
        match = NAME_BRANCH_RE.search(name)
        if match and match.group(1) != branch and not name.startswith("cuda-"):
            stale.append(name)
            continue
        if manager == "dnf" and name.startswith(("kmod-nvidia", "nvidia-driver")):
            if any(_major(v) != branch for v in _installed_versions(installed, name)):
                stale.append(name)
    outdated, missing = [], []
    for name, spec in zip(selection["names"], selection["packages"]):
        if name.startswith("@"):
            # dnf module profile: installed when the stream's driver package is there at the branch.
            versions = _installed_versions(installed, "nvidia-driver")
            if not versions or any(_major(v) != branch for v in versions):
                missing.append(spec)
            continue
        versions = _installed_versions(installed, name)
        if not versions:
            missing.append(spec)
            continue
        if "=" in spec:
            want = spec.split("=", 1)[1].rstrip("*").rstrip(".-")
            if not any(v == want or v.startswith(want + ".") or v.startswith(want + "-") for v in versions):
                outdated.append(name)
                missing.append(spec)
    return {
        "stale": stale,
        "outdated": outdated,
        "missing": missing,
        "unhold": sorted(set(stale + outdated)),
        "install": bool(missing),
    }


_ONE_LINE_RE = re.compile(r"^(\s*)(deb|deb-src)(\s+)(\[[^\]]*\]\s+)?(\S+)(\s+)(\S+)(.*)$")


# Packages host_state reads besides the selection's: what the CUDA repository's key needs.
REPO_KEY_PACKAGES = ("gnupg", "ca-certificates")
# systemd UnitFileState values of a unit that needs no systemctl enable.
UNIT_FILE_ENABLED = ("enabled", "static", "enabled-runtime", "alias", "indirect", "generated")


def state_packages(selection):
    """The packages the stage reads on the host (host_state, tasks/install.yml): the
    selection's names, kernel headers, conflicts and holds, then REPO_KEY_PACKAGES, each once
    in that order, without dnf's @module profiles. ``selection`` may be {} (a run whose tags
    skip the selection): REPO_KEY_PACKAGES alone."""
    selection = selection or {}
    names = []
    for key in ("names", "headers_packages", "conflicts", "hold"):
        names.extend(selection.get(key) or [])
    names.extend(REPO_KEY_PACKAGES)
    found = []
    for name in names:
        if not str(name).startswith("@") and name not in found:
            found.append(name)
    return found


def unit_needs_enabling(changes, host_state, unit):
    """Whether ``systemctl enable`` must run for the service ``unit`` (its name without
    .service): this run installs packages (``changes['install']``; a package may ship the
    unit disabled), or host_state found the unit's file state other than UNIT_FILE_ENABLED
    (not installed yet included)."""
    if (changes or {}).get("install"):
        return True
    found = (((host_state or {}).get("units") or {}).get("%s.service" % unit) or {}).get("unit_file") or ""
    return found not in UNIT_FILE_ENABLED


def _suite_matches(suite, codename):
    return suite == codename or suite.startswith(codename + "-")


def merge_apt_components(text, fmt, components, codename):
    """Add components to the distribution's apt entries; returns {'content', 'matched', 'changed'}.

    fmt: 'list' (one-line sources.list) or 'deb822' (.sources). Only entries whose
    suite is the release codename or codename-<pocket> and that carry 'main' are
    touched; comments, other entries and ordering stay as they are.
    """
    components = list(components)
    lines = (text or "").split("\n")
    matched = 0
    out = []
    if fmt == "list":
        for line in lines:
            m = _ONE_LINE_RE.match(line)
            if m and not line.lstrip().startswith("#"):
                rest = m.group(8)
                comment = ""
                if "#" in rest:
                    rest, comment = rest[: rest.index("#")], rest[rest.index("#"):]
                comps = rest.split()
                if _suite_matches(m.group(7), codename) and "main" in comps:
                    matched += 1
                    new = comps + [c for c in components if c not in comps]
                    if new != comps:
                        line = "%s%s%s%s%s%s%s %s%s" % (
                            m.group(1), m.group(2), m.group(3), m.group(4) or "", m.group(5), m.group(6), m.group(7),
                            " ".join(new), (" " + comment) if comment else "")
            out.append(line)
    elif fmt == "deb822":
        # Split into stanzas separated by blank lines; edit the Components field.
        stanza = []

        def flush(stanza):
            fields = {}
            for ln in stanza:
                if ln[:1] not in (" ", "\t", "#") and ":" in ln:
                    key, value = ln.split(":", 1)
                    fields[key.strip().lower()] = value.strip()
            enabled = fields.get("enabled", "yes").lower() != "no"
            suites = fields.get("suites", "").split()
            comps = fields.get("components", "").split()
            hit = enabled and "main" in comps and any(_suite_matches(s, codename) for s in suites)
            if not hit:
                return stanza, 0
            new = comps + [c for c in components if c not in comps]
            edited = []
            for ln in stanza:
                if ln[:1] not in (" ", "\t", "#") and ln.split(":", 1)[0].strip().lower() == "components":
                    ln = "Components: %s" % " ".join(new)
                edited.append(ln)
            return edited, 1

        for line in lines + [""]:
            if line.strip() == "":
                if stanza:
                    edited, hit = flush(stanza)
                    out.extend(edited)
                    matched += hit
                    stanza = []
                out.append(line)
            else:
                stanza.append(line)
        out = out[:-1]  # the sentinel
    else:
        raise DriverPackagesError("unknown apt sources format %r (list, deb822)" % fmt)
    content = "\n".join(out)
    return {"content": content, "matched": matched, "changed": content != (text or "")}


def merge_apt_sources(sources, host_state, repo, release):
    """The components of ``repo`` merged into each of the distribution's apt source files
    (``sources``: [{'path', 'format'}]) that host_state read on the host (``host_state``:
    its registered result; a file it did not find reads None and is left out), in the order
    of ``sources``: [{'path', 'mode' (the file's, kept when it is rewritten), 'merge'
    (merge_apt_components' result)}]. The release codename is ``repo['codename']`` where the
    selection names one, else ``release`` (the host's distribution_release)."""
    host_state = host_state or {}
    files = host_state.get("files") or {}
    paths = host_state.get("paths") or {}
    repo = repo or {}
    codename = repo["codename"] if "codename" in repo else release
    merged = []
    for source in sources or []:
        text = files.get(source["path"])
        if text is None:
            continue
        merged.append({"path": source["path"], "mode": (paths.get(source["path"]) or {}).get("mode"),
                       "merge": merge_apt_components(text, source["format"], repo.get("components") or [], codename)})
    return merged


def kernel_meta_packages(os_family, distribution, kernel_release, architecture="x86_64"):
    """The distribution's kernel meta package for the running kernel's flavour, which
    playbooks/kernel_update.yml moves to its latest version: Debian linux-image-<flavour>
    (6.1.0-28-cloud-amd64 -> linux-image-cloud-amd64; 6.12.38+deb12-amd64 -> linux-image-amd64),
    Ubuntu linux-image-<flavour> (6.8.0-51-generic -> linux-image-generic), RHEL kernel."""
    family = _family(os_family, distribution)
    if family == "rhel":
        return ["kernel"]
    release = str(kernel_release or "")
    if family == "ubuntu":
        flavour = kernel_flavour(release)
        if not flavour:
            raise DriverPackagesError("cannot tell the Ubuntu kernel flavour of %r: set kernel_update_packages "
                                      "(e.g. [linux-image-generic])" % release)
        return ["linux-image-%s" % flavour]
    match = re.match(r"^\d+\.\d+(?:\.\d+)?(?:-\d+|\+deb\d+)-(.+)$", release)
    if match:
        return ["linux-image-%s" % match.group(1)]
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(str(architecture), str(architecture))
    return ["linux-image-%s" % arch]
