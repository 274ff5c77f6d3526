# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Static GPU data: PCI device ids, architectures, driver branches.

Standard library only, no ansible import: runs on Python 3.8+ targets and in
bench/gpu_facts_bench.py without ansible installed.

Everything that says "which GPU is this" or "which driver can drive it" lives
here, once. Sources are cited next to each table; an id we could not confirm
from a source is left out rather than guessed (the sysfs layer then falls back
to the system's pci.ids and to the device-id ranges below).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

NVIDIA_VENDOR = 0x10DE
AMD_VENDOR = 0x1002
INTEL_VENDOR = 0x8086
VENDOR_NAMES = {NVIDIA_VENDOR: "NVIDIA", AMD_VENDOR: "AMD", INTEL_VENDOR: "Intel"}

# Architecture families, named as GPU Feature Discovery names them
# (k8s-device-plugin internal/lm/resource.go getArchFamily), oldest first.
# "order" lets callers compare generations.
FAMILIES = (
    "kepler",
    "maxwell",
    "pascal",
    "volta",
    "turing",
    "ampere",
    "ada-lovelace",
    "hopper",
    "blackwell",
    "rubin",
)
FAMILY_ORDER = dict((name, i) for i, name in enumerate(FAMILIES))


def family_from_compute_capability(major, minor):
    """Architecture family for a CUDA compute capability, as GFD labels it.

    3.x kepler, 5.x maxwell, 6.x pascal, 7.0-7.4 volta, 7.5 turing,
    8.0-8.8 ampere, 8.9 ada-lovelace, 9.x hopper, 10.x/11.x/12.x blackwell,
    13.x rubin (shared/UPSTREAM.md; GFD getArchFamily for 3.x-9.x).
    Returns None when unknown.
    """
    if major is None:
        return None
    major = int(major)
    minor = int(minor or 0)
    if major == 3:
        return "kepler"
    if major == 5:
        return "maxwell"
    if major == 6:
        return "pascal"
    if major == 7:
        return "volta" if minor < 5 else "turing"
    if major == 8:
        return "ampere" if minor < 9 else "ada-lovelace"
    if major == 9:
        return "hopper"
    if major in (10, 11, 12):
        return "blackwell"
    if major == 13:
        return "rubin"
    return None


# NVML nvmlDeviceArchitecture_t values (nvml.h: NVML_DEVICE_ARCH_KEPLER 2 ...
# NVML_DEVICE_ARCH_HOPPER 9, NVML_DEVICE_ARCH_BLACKWELL 10; 11 is T23X/Orin).
NVML_ARCHITECTURES = {
    2: "kepler",
    3: "maxwell",
    4: "pascal",
    5: "volta",
    6: "turing",
    7: "ampere",
    8: "ada-lovelace",
    9: "hopper",
    10: "blackwell",
}

# nvidia-smi -q -x <product_architecture> text -> family.
SMI_ARCHITECTURES = {
    "kepler": "kepler",
    "maxwell": "maxwell",
    "pascal": "pascal",
    "volta": "volta",
    "turing": "turing",
    "ampere": "ampere",
    "ada lovelace": "ada-lovelace",
    "ada": "ada-lovelace",
    "hopper": "hopper",
    "blackwell": "blackwell",
    "rubin": "rubin",
}


def family_from_smi(text):
    if not text:
        return None
    return SMI_ARCHITECTURES.get(" ".join(text.strip().lower().split()))


# Data-center and workstation GPUs: device id -> (name, family, compute
# capability, nominal memory GiB, MIG capable).
#
# Device ids: pci.ids (pciutils/pciids, NVIDIA section; e.g. "2330 GH100
# [H100 SXM5 80GB]", "26b9 AD102GL [L40S]", "2901 GB100 [B200]", "2941 GB100
# [HGX GB200]", "2bb5 GB202GL [RTX PRO 6000 Blackwell Server Edition]") and
# NVIDIA's open-gpu-kernel-modules README "Compatible GPUs" table for
# Turing and later. The H100 SXM id 0x2330 / subsystem 0x16c1 is also in
# tests/fixtures/gpu/h100-80gb-hbm3-ubuntu2404.
# Names: the product name the driver reports (NVML / nvidia-smi), so that
# labels from a driver-less host match the labels after the driver is in.
# Compute capability: NVIDIA "CUDA GPUs" compute capability list.
# Memory: the nominal size of the product; the driver reports a little less
# (an H100 80GB reports 81559 MiB), so it is only used when no driver answers.
_M = {}


def _add(device_id, name, family, cc, mem_gib, mig=False):
    _M[device_id] = (name, family, cc, mem_gib, mig)


# Kepler
_add(0x102D, "Tesla K80", "kepler", "3.7", 12)
# Pascal
_add(0x15F7, "Tesla P100-PCIE-12GB", "pascal", "6.0", 12)
_add(0x15F8, "Tesla P100-PCIE-16GB", "pascal", "6.0", 16)
_add(0x15F9, "Tesla P100-SXM2-16GB", "pascal", "6.0", 16)
_add(0x1B38, "Tesla P40", "pascal", "6.1", 24)
_add(0x1BB3, "Tesla P4", "pascal", "6.1", 8)
# Volta
_add(0x1DB1, "Tesla V100-SXM2-16GB", "volta", "7.0", 16)
_add(0x1DB4, "Tesla V100-PCIE-16GB", "volta", "7.0", 16)
_add(0x1DB5, "Tesla V100-SXM2-32GB", "volta", "7.0", 32)
_add(0x1DB6, "Tesla V100-PCIE-32GB", "volta", "7.0", 32)
_add(0x1DF6, "Tesla V100S-PCIE-32GB", "volta", "7.0", 32)
# Turing
_add(0x1EB8, "Tesla T4", "turing", "7.5", 16)
# Ampere
_add(0x20B0, "NVIDIA A100-SXM4-40GB", "ampere", "8.0", 40, True)
_add(0x20B1, "NVIDIA A100-PCIE-40GB", "ampere", "8.0", 40, True)
_add(0x20F1, "NVIDIA A100-PCIE-40GB", "ampere", "8.0", 40, True)
_add(0x20B2, "NVIDIA A100-SXM4-80GB", "ampere", "8.0", 80, True)
_add(0x20B5, "NVIDIA A100 80GB PCIe", "ampere", "8.0", 80, True)
_add(0x20B7, "NVIDIA A30", "ampere", "8.0", 24, True)
_add(0x2230, "NVIDIA RTX A6000", "ampere", "8.6", 48)
_add(0x2235, "NVIDIA A40", "ampere", "8.6", 48)
_add(0x2236, "NVIDIA A10", "ampere", "8.6", 24)
# 0x25b6 is both A2 and A16; the subsystem id tells them apart (below).
_add(0x25B6, "NVIDIA A2", "ampere", "8.6", 16)
# Ada Lovelace
_add(0x26B1, "NVIDIA RTX 6000 Ada Generation", "ada-lovelace", "8.9", 48)
_add(0x26B5, "NVIDIA L40", "ada-lovelace", "8.9", 48)
_add(0x26B9, "NVIDIA L40S", "ada-lovelace", "8.9", 48)
_add(0x27B8, "NVIDIA L4", "ada-lovelace", "8.9", 24)
# Hopper
_add(0x2330, "NVIDIA H100 80GB HBM3", "hopper", "9.0", 80, True)
_add(0x2331, "NVIDIA H100 PCIe", "hopper", "9.0", 80, True)
_add(0x2321, "NVIDIA H100 NVL", "hopper", "9.0", 94, True)
_add(0x2335, "NVIDIA H200", "hopper", "9.0", 141, True)
_add(0x233B, "NVIDIA H200 NVL", "hopper", "9.0", 141, True)
_add(0x2342, "NVIDIA GH200 480GB", "hopper", "9.0", 96, True)
_add(0x2348, "NVIDIA GH200 144G HBM3e", "hopper", "9.0", 144, True)
# Blackwell
_add(0x2901, "NVIDIA B200", "blackwell", "10.0", 180, True)
_add(0x2941, "NVIDIA GB200", "blackwell", "10.0", 186, True)
_add(0x2BB1, "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "blackwell", "12.0", 96, True)
_add(0x2BB4, "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "blackwell", "12.0", 96, True)
_add(0x2BB5, "NVIDIA RTX PRO 6000 Blackwell Server Edition", "blackwell", "12.0", 96, True)

GPU_MODELS = _M

# (device, subsystem vendor, subsystem device) overrides. pci.ids comment:
# "A16 - 25B6 10DE 14A9 / A2 - 25B6 10DE 157E".
GPU_MODELS_BY_SUBSYSTEM = {
    (0x25B6, 0x10DE, 0x14A9): ("NVIDIA A16", "ampere", "8.6", 16, False),
    (0x25B6, 0x10DE, 0x157E): ("NVIDIA A2", "ampere", "8.6", 16, False),
}

# Models that only run with the open kernel modules (Grace Hopper: NVIDIA
# open-gpu-kernel-modules / driver README "open kernel modules are required
# for Grace Hopper"; Blackwell is handled by its family).
OPEN_REQUIRED_DEVICES = frozenset([0x2342, 0x2348])

# NVSwitch PCI functions (class 0x0680 bridge): pci.ids "1af1 GA100 [A100
# NVSwitch]", "22a3 GH100 [H100 NVSwitch]". Any NVIDIA device of class
# 0x0680 counts as an NVSwitch; the ids only name it.
NVSWITCH_DEVICES = {0x1AF1: "A100 NVSwitch", 0x22A3: "H100 NVSwitch"}
# The NVLink generation each of those NVSwitches switches (NVIDIA Fabric Manager user
# guide, "NVSwitch-Based Systems": HGX A100 second generation NVSwitch, NVLink3; HGX H100
# third generation, NVLink4).
NVSWITCH_NVLINK_GENERATION = {0x1AF1: 3, 0x22A3: 4}

# NVLink5 switch trays (HGX B200/B300 and later) are not NVIDIA PCI functions: the host
# reaches them through Mellanox (vendor 0x15b3) InfiniBand functions (class 0x0207) whose
# Vital Product Data carries the marker SW_MNG. The rule is NVIDIA's own, in the GPU
# Operator's driver container (github.com/NVIDIA/gpu-driver-container, nvidia-driver
# script, _assert_nvlink5_system: "SW_MNG" in /sys/class/infiniband/*/device/vpd; the same
# file as /sys/bus/pci/devices/<bus id>/vpd). The device id does not tell them apart:
# ConnectX-7 NICs share it, and no NVIDIA document we found lists one for the switch tray.
MELLANOX_VENDOR = 0x15B3
INFINIBAND_CLASS = 0x0207
NVLINK5_VPD_MARKER = b"SW_MNG"
# What the fabric manager needs loaded on an NVLink5 system besides the NVIDIA driver: the
# switch trays' InfiniBand devices (mlx5_ib) and the umad interface NVLSM, a subnet manager,
# talks through (ib_umad). NVIDIA's driver container waits for mlx5_core and ib_umad before it
# starts the fabric manager (gpu-driver-container, _ensure_nvlink5_prerequisites); without
# them the GPUs' fabric stays "In Progress" (NVIDIA/gpu-operator#2781).
NVLINK5_KERNEL_MODULES = ("mlx5_ib", "ib_umad")

# Fallback: architecture from device-id ranges, from the chip names in
# pci.ids (GK.. kepler, GM.. maxwell, GP.. pascal, GV.. volta, TU.. turing,
# GA.. ampere, AD.. ada, GH.. hopper, GB.. blackwell). Only applied to
# display-class functions (0x03xxxx); audio/USB/NVSwitch ids inside these
# ranges are never looked up.
DEVICE_ID_RANGES = (
    (0x0FC0, 0x0FFF, "kepler"),  # GK107
    (0x1000, 0x103F, "kepler"),  # GK110/GK110B/GK180/GK210
    (0x1180, 0x11FF, "kepler"),  # GK104/GK106
    (0x1280, 0x12FF, "kepler"),  # GK208
    (0x1340, 0x13FF, "maxwell"),  # GM108/GM107/GM204
    (0x1400, 0x143F, "maxwell"),  # GM206
    (0x15F0, 0x15FF, "pascal"),  # GP100
    (0x1740, 0x17FF, "maxwell"),  # GM108/GM107/GM200
    (0x1B00, 0x1D7F, "pascal"),  # GP102/GP104/GP106/GP107/GP108
    (0x1D80, 0x1DFF, "volta"),  # GV100
    (0x1E00, 0x1FFF, "turing"),  # TU102/TU104/TU106/TU117
    (0x2080, 0x20FF, "ampere"),  # GA100
    (0x2180, 0x21FF, "turing"),  # TU116
    (0x2200, 0x223F, "ampere"),  # GA102
    (0x2300, 0x23FF, "hopper"),  # GH100
    (0x2400, 0x25FF, "ampere"),  # GA103/GA104/GA106/GA107
    (0x2680, 0x28FF, "ada-lovelace"),  # AD102/AD103/AD104/AD106/AD107
    (0x2900, 0x29FF, "blackwell"),  # GB100/GB102
    (0x2B80, 0x2FFF, "blackwell"),  # GB202/GB203/GB205/GB206/GB207/GB20B
    (0x3180, 0x31FF, "blackwell"),  # GB110 (B300/GB300)
)


def family_from_device_id(device_id):
    for low, high, family in DEVICE_ID_RANGES:
        if low <= device_id <= high:
            return family
    return None


def lookup_model(device_id, subsystem_vendor=None, subsystem_device=None):
    """Return a dict for a known NVIDIA device id, or None."""
    entry = GPU_MODELS_BY_SUBSYSTEM.get((device_id, subsystem_vendor, subsystem_device))
    if entry is None:
        entry = GPU_MODELS.get(device_id)
    if entry is None:
        return None
    name, family, cc, mem_gib, mig = entry
    major, minor = (int(p) for p in cc.split("."))
    return {
        "name": name,
        "architecture": family,
        "compute_capability": cc,
        "compute_capability_major": major,
        "compute_capability_minor": minor,
        "memory_mib": mem_gib * 1024,
        "mig_capable": mig,
        "open_required": family == "blackwell" or device_id in OPEN_REQUIRED_DEVICES,
    }


# System pci.ids locations (pciutils / hwdata packages).
PCI_IDS_PATHS = ("usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids", "usr/share/pci.ids")


def pci_ids_names(root, wanted, vendor=NVIDIA_VENDOR):
    """Names of the wanted device ids of one vendor from the system's pci.ids.

    Reads only up to the end of that vendor's section. Returns {id: name};
    the name is the bracketed marketing name when there is one
    ("GH100 [H100 SXM5 80GB]" -> "H100 SXM5 80GB").
    """
    wanted = set(wanted)
    found = {}
    if not wanted:
        return found
    head = "%04x  " % vendor
    for rel in PCI_IDS_PATHS:
        path = os.path.join(root, rel)
        try:
            handle = open(path, "rb")
        except (IOError, OSError):
            continue
        with handle:
            in_vendor = False
            for raw in handle:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if not in_vendor:
                    if line.startswith(head):
                        in_vendor = True
                    continue
                if line and not line.startswith("\t") and not line.startswith("#"):
                    break
                if line.startswith("\t\t") or not line.startswith("\t"):
                    continue
                parts = line[1:].split(None, 1)
                if len(parts) != 2:
                    continue
                try:
                    dev = int(parts[0], 16)
                except ValueError:
                    continue
                if dev in wanted:
                    text = parts[1].strip()
                    if "[" in text and text.endswith("]"):
                        text = text[text.index("[") + 1:-1]
                    found[dev] = text
        return found
    return found


# ---------------------------------------------------------------------------
# Driver branches. One table, used by plugin_utils/_driver_plan.
#
# Sources (shared/UPSTREAM.md, NVIDIA "supported drivers and CUDA toolkit
# versions" and the CUDA toolkit release notes, table "CUDA Toolkit and
# Corresponding Driver Versions"):
# - R580 LTSB (to Aug 2028), R535 LTSB (to Jun 2026), R570 production branch
#   (to Feb 2026); all other branches are end of life.
# - cuda_max: newest CUDA the branch's driver supports (13.0 needs >= 580.65.06,
#   12.8 >= 570.26, 12.0 >= 525.60.13, 11.x >= 450).
# - Last branch per architecture: Kepler R470; Maxwell, Pascal, Volta R580.
#   Blackwell needs >= R570.
# - Open kernel modules: Turing and newer only (GSP); first shipped in R515,
#   default from R560, required for Blackwell and Grace Hopper.
# ---------------------------------------------------------------------------
BRANCHES = {
    470: {"cuda_max": "11.4", "support": "eol"},
    510: {"cuda_max": "11.6", "support": "eol"},
    515: {"cuda_max": "11.7", "support": "eol"},
    520: {"cuda_max": "11.8", "support": "eol"},
    525: {"cuda_max": "12.0", "support": "eol"},
    530: {"cuda_max": "12.1", "support": "eol"},
    535: {"cuda_max": "12.2", "support": "ltsb", "eol": "2026-06"},
    545: {"cuda_max": "12.3", "support": "eol"},
    550: {"cuda_max": "12.4", "support": "eol"},
    555: {"cuda_max": "12.5", "support": "eol"},
    560: {"cuda_max": "12.6", "support": "eol"},
    565: {"cuda_max": "12.7", "support": "eol"},
    570: {"cuda_max": "12.8", "support": "production", "eol": "2026-02"},
    575: {"cuda_max": "12.9", "support": "eol"},
    580: {"cuda_max": "13.0", "support": "ltsb", "eol": "2028-08"},
}
DEFAULT_BRANCH = 580
OPEN_MODULES_FIRST_BRANCH = 515

# Per family: newest branch that still drives it (None: no limit known),
# oldest branch that drives it (None: no floor we enforce), and whether the
# open / proprietary kernel modules can drive it.
#
# Floors (min_branch): the branch of the minimum Linux driver of the FIRST CUDA
# toolkit that supports the architecture. Two NVIDIA tables, read together:
# - "CUDA Toolkit, Driver, and Architecture Matrix" (NVIDIA Data Center Drivers,
#   https://docs.nvidia.com/datacenter/tesla/drivers/cuda-toolkit-driver-and-architecture-matrix.html),
#   column "First CUDA Toolkit Support": Blackwell (10.0, 12.0) CUDA 12.8; Hopper
#   (9.0) CUDA 11.8; Ada (8.9) CUDA 11.8; Ampere (8.0, 8.6) CUDA 11.0; Turing (7.5)
#   CUDA 10.0.
# - CUDA toolkit release notes, table "CUDA Toolkit and Corresponding Driver
#   Versions" (https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html):
#   CUDA 12.8 GA >= 570.26, CUDA 11.8 GA >= 520.61.05, CUDA 11.0.1 RC >= 450.36.06
#   (11.0.2 GA >= 450.51.05), CUDA 10.0.130 >= 410.48.
# So: Ampere R450, Ada R520, Hopper R520, Blackwell R570. Cross-check for Hopper:
# NVIDIA AI Enterprise 2.3's release notes add "Support for the NVIDIA H100 GPU"
# with the bare-metal driver 520.61.05 (https://docs.nvidia.com/ai-enterprise/2.3/
# release-notes/index.html). NOT R525: that is CUDA 12.0's floor, not Hopper's;
# no NVIDIA page found here names R525 as Hopper's or Ada's first branch. These
# are architecture floors: a product launched later than its architecture (L4,
# H200, GH200) may need a later release of a newer branch - that is not checked
# here. Turing's floor (R410) and older ones lie below every branch in BRANCHES
# and are not enforced.
FAMILY_DRIVER_SUPPORT = {
    "kepler": {"max_branch": 470, "min_branch": None, "open": False, "proprietary": True},
    "maxwell": {"max_branch": 580, "min_branch": None, "open": False, "proprietary": True},
    "pascal": {"max_branch": 580, "min_branch": None, "open": False, "proprietary": True},
    "volta": {"max_branch": 580, "min_branch": None, "open": False, "proprietary": True},
    "turing": {"max_branch": None, "min_branch": None, "open": True, "proprietary": True},
    # CUDA 11.0 (first for Ampere) needs >= 450.36.06.
    "ampere": {"max_branch": None, "min_branch": 450, "open": True, "proprietary": True},
    # CUDA 11.8 (first for Ada) needs >= 520.61.05.
    "ada-lovelace": {"max_branch": None, "min_branch": 520, "open": True, "proprietary": True},
    # CUDA 11.8 (first for Hopper) needs >= 520.61.05; AI Enterprise 2.3 shipped H100 with 520.61.05.
    "hopper": {"max_branch": None, "min_branch": 520, "open": True, "proprietary": True},
    # CUDA 12.8 (first for Blackwell) needs >= 570.26 (shared/UPSTREAM.md, and the tables above).
    "blackwell": {"max_branch": None, "min_branch": 570, "open": True, "proprietary": False},
    # Rubin: open only (GSP); its branch floor is not confirmed here.
    "rubin": {"max_branch": None, "min_branch": None, "open": True, "proprietary": False},
}
