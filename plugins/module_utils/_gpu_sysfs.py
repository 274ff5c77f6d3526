# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Host facts read from /sys and /proc: PCI scan, driver, nouveau, Secure Boot.

Standard library only, no ansible import. Every path is joined under a root
directory so tests can point the functions at a fake tree.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import (
    INFINIBAND_CLASS,
    MELLANOX_VENDOR,
    NVIDIA_VENDOR,
    NVLINK5_VPD_MARKER,
    VENDOR_NAMES,
)

PCI_DEVICES = "sys/bus/pci/devices"
EFI_DIR = "sys/firmware/efi"
SECURE_BOOT_VAR = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def _read(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError, UnicodeDecodeError):
        return None


def _read_hex(path):
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text.strip(), 16)
    except ValueError:
        return None


def normalise_bus_id(bus_id):
    """'00000000:00:06.0' / '0000:0A:00.0' / '0A:00.0' -> '0000:0a:00.0'."""
    if not bus_id:
        return None
    text = bus_id.strip().lower()
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0000"] + parts
    if len(parts) != 3:
        return text
    domain, bus, devfn = parts
    try:
        domain = "%04x" % int(domain, 16)
        bus = "%02x" % int(bus, 16)
        if "." in devfn:
            dev, fn = devfn.split(".", 1)
            devfn = "%02x.%x" % (int(dev, 16), int(fn, 16))
        else:
            devfn = "%02x.0" % int(devfn, 16)
    except ValueError:
        return text
    return "%s:%s:%s" % (domain, bus, devfn)


def scan_pci(sysfs_root):
    """All PCI functions of interest: display-class (0x03xxxx) functions of
    NVIDIA, AMD and Intel, and NVIDIA bridge-class (0x0680) functions, i.e.
    NVSwitches. Other display devices (BMC VGA such as ASPEED, virtual VGA)
    are not GPUs and are skipped.

    Returns a list of dicts sorted by bus id:
    bus_id, vendor, device, class, subsystem_vendor, subsystem_device,
    numa_node, driver.
    """
    base = os.path.join(sysfs_root, PCI_DEVICES)
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    found = []
    for name in names:
        path = os.path.join(base, name)
        pci_class = _read_hex(os.path.join(path, "class"))
        if pci_class is None:
            continue
        vendor = _read_hex(os.path.join(path, "vendor"))
        is_display = (pci_class >> 16) == 0x03 and vendor in VENDOR_NAMES
        is_nvswitch = vendor == NVIDIA_VENDOR and (pci_class >> 8) == 0x0680
        if not (is_display or is_nvswitch):
            continue
        numa = _read(os.path.join(path, "numa_node"))
        try:
            numa_node = int(numa.strip()) if numa is not None else None
        except ValueError:
            numa_node = None
        if numa_node is not None and numa_node < 0:
            numa_node = None
        driver = None
        try:
            driver = os.path.basename(os.readlink(os.path.join(path, "driver")))
        except OSError:
            driver = None
        found.append(
            {
                "bus_id": normalise_bus_id(name),
                "vendor": vendor,
                "device": _read_hex(os.path.join(path, "device")),
                "class": pci_class,
                "subsystem_vendor": _read_hex(os.path.join(path, "subsystem_vendor")),
                "subsystem_device": _read_hex(os.path.join(path, "subsystem_device")),
                "numa_node": numa_node,
                "driver": driver,
                "kind": "nvswitch" if is_nvswitch else "gpu",
            }
        )
    return found


def _numa(path):
    text = _read(os.path.join(path, "numa_node"))
    try:
        node = int(text.strip()) if text is not None else None
    except ValueError:
        return None
    return None if node is None or node < 0 else node


def _driver(path):
    try:
        return os.path.basename(os.readlink(os.path.join(path, "driver")))
    except OSError:
        return None


def scan_nvlink5_switches(sysfs_root):
    """The PCI functions through which this host manages NVLink5 switch trays.

    A function counts when it is a Mellanox (0x15b3) InfiniBand (class 0x0207xx)
    physical function (no ``physfn``: SR-IOV VFs are skipped) whose ``vpd`` holds
    NVLINK5_VPD_MARKER (see _gpu_data). Reading ``vpd`` needs root; functions whose VPD
    could not be read are returned apart, so the caller can say the answer is incomplete.

    Returns {"switches": [{bus_id, device, driver, numa_node, infiniband}], "unreadable":
    [bus ids]}; ``infiniband`` lists the RDMA devices (mlx5_0, ...) bound to the function,
    empty while mlx5_ib is not loaded.
    """
    base = os.path.join(sysfs_root, PCI_DEVICES)
    found = {"switches": [], "unreadable": []}
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return found
    for name in names:
        path = os.path.join(base, name)
        if _read_hex(os.path.join(path, "vendor")) != MELLANOX_VENDOR:
            continue
        pci_class = _read_hex(os.path.join(path, "class"))
        if pci_class is None or (pci_class >> 8) != INFINIBAND_CLASS or os.path.exists(os.path.join(path, "physfn")):
            continue
        vpd_path = os.path.join(path, "vpd")
        if not os.path.exists(vpd_path):
            continue
        try:
            with open(vpd_path, "rb") as handle:
                vpd = handle.read()
        except (IOError, OSError):
            found["unreadable"].append(normalise_bus_id(name))
            continue
        if NVLINK5_VPD_MARKER not in vpd:
            continue
        try:
            infiniband = sorted(os.listdir(os.path.join(path, "infiniband")))
        except OSError:
            infiniband = []
        found["switches"].append({
            "bus_id": normalise_bus_id(name),
            "device": _read_hex(os.path.join(path, "device")),
            "driver": _driver(path),
            "numa_node": _numa(path),
            "infiniband": infiniband,
        })
    return found


def module_loaded(sysfs_root, proc_root, name):
    """Whether kernel module ``name`` is loaded (/sys/module/<name>, else /proc/modules)."""
    if os.path.isdir(os.path.join(sysfs_root, "sys/module", name)):
        return True
    modules = _read(os.path.join(proc_root, "proc/modules"))
    return any(line.split(" ", 1)[0] == name for line in (modules or "").splitlines())


def vendor_name(vendor_id):
    if vendor_id is None:
        return "unknown"
    return VENDOR_NAMES.get(vendor_id, "0x%04x" % vendor_id)


def parse_proc_version(text):
    """/proc/driver/nvidia/version -> (version, flavour) or (None, None).

    'NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04 ...'
    -> ('580.159.04', 'open'); 'NVIDIA UNIX x86_64 Kernel Module  535.x ...'
    -> ('535.x', 'proprietary').
    """
    if not text:
        return None, None
    for line in text.splitlines():
        if not line.startswith("NVRM version:"):
            continue
        flavour = "open" if "Open Kernel Module" in line else "proprietary"
        version = None
        for token in line.split():
            pieces = token.split(".")
            if len(pieces) >= 2 and all(p.isdigit() for p in pieces):
                version = token
                break
        return version, flavour
    return None, None


def driver_state(sysfs_root, proc_root):
    """Whether the nvidia kernel module is loaded, its version and flavour."""
    text = _read(os.path.join(proc_root, "proc/driver/nvidia/version"))
    version, flavour = parse_proc_version(text)
    loaded = text is not None or os.path.isdir(os.path.join(sysfs_root, "sys/module/nvidia"))
    return {"loaded": loaded, "version": version, "flavour": flavour}


def nouveau_loaded(sysfs_root, proc_root):
    if os.path.isdir(os.path.join(sysfs_root, "sys/module/nouveau")):
        return True
    modules = _read(os.path.join(proc_root, "proc/modules"))
    if modules:
        for line in modules.splitlines():
            if line.split(" ", 1)[0] == "nouveau":
                return True
    return False


def kernel_release(proc_root):
    text = _read(os.path.join(proc_root, "proc/sys/kernel/osrelease"))
    if text and text.strip():
        return text.strip()
    if proc_root in ("/", ""):
        return os.uname()[2]
    return None


# Where distributions put nvidia.ko (DKMS, Ubuntu's signed precompiled
# linux-modules-nvidia-*, RHEL kmod/precompiled, the .run installer).
_MODULE_GLOBS = (
    "updates/dkms/nvidia.ko*",
    "kernel/nvidia-*/nvidia.ko*",
    "kernel/drivers/video/nvidia.ko*",
    "extra/nvidia.ko*",
    "extra/nvidia/nvidia.ko*",
    "extra/drivers/video/nvidia/nvidia.ko*",
    "video/nvidia.ko*",
)


def install_hints(root, proc_root, smi_path):
    """Cheap signs that a driver is installed even if not loaded."""
    hints = []
    if smi_path:
        hints.append("nvidia-smi at %s" % smi_path)
    release = kernel_release(proc_root)
    if release:
        moddir = os.path.join(root, "lib/modules", release)
        for pattern in _MODULE_GLOBS:
            matches = sorted(glob.glob(os.path.join(moddir, pattern)))
            if matches:
                rel = os.path.relpath(matches[0], root)
                hints.append("kernel module /%s" % rel)
                break
    return hints


def secure_boot_state(sysfs_root):
    """'enabled', 'disabled', 'unsupported' (no EFI) or 'unknown'.

    The efivar holds 4 bytes of attributes followed by the value byte.
    """
    if not os.path.isdir(os.path.join(sysfs_root, EFI_DIR)):
        return "unsupported"
    try:
        with open(os.path.join(sysfs_root, SECURE_BOOT_VAR), "rb") as handle:
            data = handle.read()
    except (IOError, OSError):
        return "unknown"
    if not data:
        return "unknown"
    value = data[-1]
    if not isinstance(value, int):  # pragma: no cover - Python 2 only
        value = ord(value)
    if value == 1:
        return "enabled"
    if value == 0:
        return "disabled"
    return "unknown"
