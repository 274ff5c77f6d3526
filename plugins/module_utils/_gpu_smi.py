# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""The nvidia-smi layer: run `nvidia-smi -q -x` and parse its XML.

Standard library only, no ansible import. nvidia-smi output is not
guaranteed stable (NVML is), so every element is optional and "N/A" reads
as unknown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import xml.etree.ElementTree as ET

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import family_from_smi
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_sysfs import normalise_bus_id

DEFAULT_SMI_PATHS = ("/usr/bin/nvidia-smi",)


class SmiError(Exception):
    pass


def find_nvidia_smi(path=None):
    """The nvidia-smi to use: the given path, else PATH, else /usr/bin."""
    if path:
        return path if os.access(path, os.X_OK) else None
    for directory in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
        if not directory:
            continue
        candidate = os.path.join(directory, "nvidia-smi")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def run_command(argv, timeout):
    """Default runner: (rc, stdout, stderr) as text."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise SmiError("%s timed out after %ss" % (argv[0], timeout))
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _text(node, path):
    if node is None:
        return None
    child = node.find(path)
    if child is None or child.text is None:
        return None
    value = child.text.strip()
    if not value or value in ("N/A", "[N/A]", "Not Supported", "[Not Supported]"):
        return None
    return value


def _mib(text):
    """'81559 MiB' -> 81559."""
    if not text:
        return None
    parts = text.split()
    try:
        value = int(parts[0])
    except (ValueError, IndexError):
        return None
    unit = parts[1] if len(parts) > 1 else "MiB"
    if unit == "GiB":
        value *= 1024
    elif unit == "KiB":
        value //= 1024
    return value


def _mode(text):
    if text is None:
        return None
    low = text.lower()
    if low == "enabled":
        return "enabled"
    if low == "disabled":
        return "disabled"
    return low


def _int(text):
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _split_id(text):
    """'233010DE' -> (0x10de, 0x2330): NVIDIA writes device then vendor."""
    if not text:
        return None, None
    value = text.lower()
    if value.startswith("0x"):
        value = value[2:]
    try:
        number = int(value, 16)
    except ValueError:
        return None, None
    return number & 0xFFFF, number >> 16


def parse_smi_xml(text):
    """Parse `nvidia-smi -q -x` output into a host dict and a GPU list."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SmiError("cannot parse nvidia-smi XML: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise SmiError("unexpected nvidia-smi XML root <%s>" % root.tag)
    host = {
        "driver_version": _text(root, "driver_version"),
        "cuda_driver_version": _text(root, "cuda_version"),
        "attached_gpus": _int(_text(root, "attached_gpus")),
    }
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        pci = gpu.find("pci")
        bus_id = _text(pci, "pci_bus_id") or gpu.get("id")
        vendor, device = _split_id(_text(pci, "pci_device_id"))
        sub_vendor, sub_device = _split_id(_text(pci, "pci_sub_system_id"))
        current = _mode(_text(gpu, "mig_mode/current_mig"))
        pending = _mode(_text(gpu, "mig_mode/pending_mig"))
        persistence = _mode(_text(gpu, "persistence_mode"))
        gpus.append(
            {
                "index": index,
                "uuid": _text(gpu, "uuid"),
                "name": _text(gpu, "product_name"),
                "pci_bus_id": normalise_bus_id(bus_id),
                "vendor": vendor,
                "device": device,
                "subsystem_vendor": sub_vendor,
                "subsystem_device": sub_device,
                "memory_mib": _mib(_text(gpu, "fb_memory_usage/total")),
                "architecture": family_from_smi(_text(gpu, "product_architecture")),
                "mig_capable": current is not None,
                "mig_mode_current": current,
                "mig_mode_pending": pending,
                "minor_number": _int(_text(gpu, "minor_number")),
                "persistence_mode": None if persistence is None else persistence == "enabled",
            }
        )
    return host, gpus


def query(smi_path, timeout=10, runner=None):
    """Run nvidia-smi -q -x and parse it. Raises SmiError on any failure."""
    runner = runner or run_command
    try:
        rc, out, err = runner([smi_path, "-q", "-x"], timeout)
    except SmiError:
        raise
    except (OSError, ValueError) as exc:
        raise SmiError("cannot run %s: %s" % (smi_path, exc))
    if rc != 0:
        message = (err or out or "").strip().splitlines()
        raise SmiError("%s -q -x exited %s: %s" % (smi_path, rc, message[0] if message else "no output"))
    return parse_smi_xml(out)
