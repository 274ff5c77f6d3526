# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""GPU detection: one call, `collect()`, returns the kubegpu_gpu facts.

Layers, tried in the order given (default nvml, nvidia_smi, sysfs); the
first that answers provides the GPU list:

- nvml: libnvidia-ml.so.1 through ctypes (_gpu_nvml), needs a loaded driver.
- nvidia_smi: `nvidia-smi -q -x` parsed (_gpu_smi), needs a loaded driver.
- sysfs: a scan of /sys/bus/pci/devices (_gpu_sysfs), needs nothing.

Whatever layer answers, the sysfs scan (cheap) adds NUMA node, bound kernel
driver, NVSwitches, NVLink5 switch trays (Mellanox InfiniBand functions whose VPD
says SW_MNG, _gpu_sysfs.scan_nvlink5_switches) and non-NVIDIA GPUs; /proc adds
the kernel-module flavour.
Where a GPU has MIG enabled (and only then), one `nvidia-smi -L` call lists its
MIG devices (`mig_devices`, parsed by _mig.parse_list).
A layer that fails is recorded in `errors` and the next one is tried; this
function never raises for a broken or missing driver.

Standard library only, no ansible import (bench/gpu_facts_bench.py runs it
with plain python3).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu_nvml, _gpu_smi, _gpu_sysfs, _mig
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import (
    FAMILY_ORDER,
    MELLANOX_VENDOR,
    NVIDIA_VENDOR,
    NVLINK5_KERNEL_MODULES,
    NVSWITCH_DEVICES,
    NVSWITCH_NVLINK_GENERATION,
    family_from_compute_capability,
    family_from_device_id,
    lookup_model,
    pci_ids_names,
)

SOURCES = ("nvml", "nvidia_smi", "sysfs")
FACTS_VERSION = 1

GPU_KEYS = (
    "index",
    "name",
    "uuid",
    "pci_bus_id",
    "pci_vendor_id",
    "pci_device_id",
    "pci_subsystem_id",
    "memory_mib",
    "architecture",
    "compute_capability",
    "compute_capability_major",
    "compute_capability_minor",
    "mig_capable",
    "mig_mode_current",
    "mig_mode_pending",
    "numa_node",
    "kernel_driver",
    "minor_number",
    "persistence_mode",
    "health",
)


def _hex4(value):
    return None if value is None else "%04x" % value


def _subsystem(vendor, device):
    if vendor is None or device is None:
        return None
    return "%04x:%04x" % (vendor, device)


def _finish_gpu(raw, pci_entry):
    """Fill a layer's GPU dict from the PCI scan and our table; fixed keys."""
    gpu = dict((key, None) for key in GPU_KEYS)
    gpu.update(dict((k, v) for k, v in raw.items() if k in GPU_KEYS))
    device = raw.get("device")
    vendor = raw.get("vendor")
    sub_vendor = raw.get("subsystem_vendor")
    sub_device = raw.get("subsystem_device")
    if pci_entry is not None:
        device = device if device is not None else pci_entry["device"]
        vendor = vendor if vendor is not None else pci_entry["vendor"]
        sub_vendor = sub_vendor if sub_vendor is not None else pci_entry["subsystem_vendor"]
        sub_device = sub_device if sub_device is not None else pci_entry["subsystem_device"]
        gpu["numa_node"] = pci_entry["numa_node"]
        gpu["kernel_driver"] = pci_entry["driver"]
    if gpu["numa_node"] is None and raw.get("nvml_numa_node") is not None:
        gpu["numa_node"] = raw["nvml_numa_node"]
    gpu["pci_vendor_id"] = _hex4(vendor)
    gpu["pci_device_id"] = _hex4(device)
    gpu["pci_subsystem_id"] = _subsystem(sub_vendor, sub_device)

    model = lookup_model(device, sub_vendor, sub_device) if device is not None else None
    major = gpu["compute_capability_major"]
    if not major and model is not None:
        major = model["compute_capability_major"]
        gpu["compute_capability_minor"] = model["compute_capability_minor"]
    if major:
        gpu["compute_capability_major"] = major
        gpu["compute_capability"] = "%d.%d" % (major, gpu["compute_capability_minor"] or 0)
    else:
        gpu["compute_capability_major"] = None
        gpu["compute_capability_minor"] = None
    if gpu["architecture"] is None:
        gpu["architecture"] = family_from_compute_capability(major, gpu["compute_capability_minor"]) if major else None
    if gpu["architecture"] is None and model is not None:
        gpu["architecture"] = model["architecture"]
    if gpu["architecture"] is None and device is not None:
        gpu["architecture"] = family_from_device_id(device)
    if gpu["name"] is None and model is not None:
        gpu["name"] = model["name"]
    if gpu["memory_mib"] is None and model is not None:
        gpu["memory_mib"] = model["memory_mib"]
    if gpu["mig_capable"] is None and model is not None:
        gpu["mig_capable"] = model["mig_capable"]
    return gpu


def _sysfs_gpus(pci_gpus, root):
    """GPU dicts from the PCI scan alone (no driver)."""
    unknown = [e["device"] for e in pci_gpus if lookup_model(e["device"], e["subsystem_vendor"], e["subsystem_device"]) is None]
    names = pci_ids_names(root, unknown) if unknown else {}
    gpus = []
    for index, entry in enumerate(pci_gpus):
        raw = {"index": index, "pci_bus_id": entry["bus_id"]}
        if entry["device"] in names:
            raw["name"] = "NVIDIA %s" % names[entry["device"]]
        gpu = _finish_gpu(raw, entry)
        if gpu["name"] is None:
            gpu["name"] = "NVIDIA device %s" % gpu["pci_device_id"]
        gpus.append(gpu)
    return gpus


def _unique(values):
    seen = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def add_mig_devices(gpus, smi_path, runner=None, timeout=10):
    """Set ``mig_devices`` on the GPUs that have MIG enabled, from one ``nvidia-smi -L``.

    Each entry: profile (C(1g.10gb), or C(1c.3g.20gb) for a compute instance smaller than
    its GPU instance), uuid, device (the -L device number), gi_id and ci_id (None: -L does
    not give them). Left None, with a returned warning, when nvidia-smi cannot tell.
    GPUs without MIG get no key; nothing is run when no GPU has MIG enabled."""
    enabled = [g for g in gpus if g.get("mig_mode_current") == "enabled"]
    if not enabled:
        return []
    for gpu in enabled:
        gpu["mig_devices"] = None
    if smi_path is None:
        return ["MIG is enabled but nvidia-smi is not found: the MIG devices are not reported"]
    argv = [smi_path, "-L"]
    try:
        rc, out, err = (runner or _gpu_smi.run_command)(argv, timeout)
    except Exception as exc:  # noqa: BLE001 - a broken extra call must not fail fact gathering
        return ["%s: %s; the MIG devices are not reported" % (" ".join(argv), exc)]
    if rc != 0:
        return ["%s exited %s; the MIG devices are not reported" % (" ".join(argv), rc)]
    listed = _mig.parse_list(out)
    by_uuid = dict((g["uuid"], g) for g in listed)
    by_index = dict((g["index"], g) for g in listed)
    missing = []
    for gpu in enabled:
        entry = by_uuid.get(gpu["uuid"]) if gpu.get("uuid") else by_index.get(gpu.get("index"))
        if entry is None:
            missing.append(str(gpu.get("index")))
            continue
        gpu["mig_devices"] = [
            {"profile": d["profile"], "uuid": d["uuid"], "device": d["device"], "gi_id": d["gi_id"], "ci_id": d["ci_id"]}
            for d in entry["mig_devices"]
        ]
    if missing:
        return ["%s did not list GPU(s) %s; their MIG devices are not reported" % (" ".join(argv), ", ".join(missing))]
    return []


def nvlink_facts(nvswitches, nvlink5, gpus, sysfs_root, proc_root):
    """The NVLink fabric keys of the facts and their warnings: (dict, [warning]).

    ``nvswitches``: the NVIDIA class-0x0680 functions of the PCI scan; ``nvlink5``:
    _gpu_sysfs.scan_nvlink5_switches' answer; ``gpus``: the GPU list."""
    switches = nvlink5["switches"]
    generations = [NVSWITCH_NVLINK_GENERATION.get(e["device"]) for e in nvswitches]
    if switches:
        generation = 5
    elif generations and None not in generations:
        generation = max(generations)
    else:
        generation = None
    missing = [m for m in NVLINK5_KERNEL_MODULES if not _gpu_sysfs.module_loaded(sysfs_root, proc_root, m)] \
        if switches else []
    warnings = []
    if switches and gpus and missing:
        warnings.append(
            "NVLink5 switch trays (%s) but kernel module(s) %s not loaded: the fabric manager and NVLSM cannot reach"
            " them and the GPUs' fabric stays In Progress (modprobe %s; stage 3 loads them)"
            % (", ".join(e["bus_id"] for e in switches), ", ".join(missing), " ".join(missing)))
    if nvlink5["unreadable"] and gpus and not switches:
        warnings.append(
            "could not read the VPD of InfiniBand function(s) %s (gather facts as root): NVLink5 switch trays there"
            " would not be seen" % ", ".join(nvlink5["unreadable"]))
    return {
        "nvlink_generation": generation,
        "nvlink5_switch_count": len(switches),
        "nvlink5_switches": [
            {
                "pci_bus_id": e["bus_id"],
                "pci_vendor_id": _hex4(MELLANOX_VENDOR),
                "pci_device_id": _hex4(e["device"]),
                "kernel_driver": e["driver"],
                "numa_node": e["numa_node"],
                "infiniband_devices": e["infiniband"],
            }
            for e in switches
        ],
        "nvlink5_kernel_modules_missing": missing,
        "fabric_manager_needed": bool(nvswitches or switches) and bool(gpus),
        "nvlsm_needed": bool(switches) and bool(gpus),
    }, warnings


def collect(
    sources=SOURCES,
    nvidia_smi_path=None,
    sysfs_root="/",
    proc_root="/",
    timeout=10,
    nvml_loader=None,
    smi_runner=None,
    smi_finder=None,
):
    """Detect GPUs. Returns the `kubegpu_gpu` facts dict (see docs/gpu_facts.md).

    nvml_loader, smi_runner and smi_finder are seams for tests and the bench:
    nvml_loader() returns the NVML library object, smi_runner(argv, timeout)
    returns (rc, stdout, stderr), smi_finder(path) returns nvidia-smi's path.
    """
    errors = []
    warnings = []
    layers = []

    pci = _gpu_sysfs.scan_pci(sysfs_root)
    pci_by_bus = dict((e["bus_id"], e) for e in pci)
    nvidia_pci_gpus = [e for e in pci if e["kind"] == "gpu" and e["vendor"] == NVIDIA_VENDOR]
    other_gpus = [e for e in pci if e["kind"] == "gpu" and e["vendor"] != NVIDIA_VENDOR]
    nvswitches = [e for e in pci if e["kind"] == "nvswitch"]
    nvlink5 = _gpu_sysfs.scan_nvlink5_switches(sysfs_root)

    kmod = _gpu_sysfs.driver_state(sysfs_root, proc_root)
    finder = smi_finder or _gpu_smi.find_nvidia_smi
    smi_path = finder(nvidia_smi_path)

    source = "none"
    host = {}
    raw_gpus = None
    for layer in sources:
        if layer == "nvml":
            if not kmod["loaded"]:
                layers.append({"source": layer, "status": "skipped", "message": "nvidia kernel module not loaded"})
                continue
            try:
                host, raw_gpus = _gpu_nvml.query(loader=nvml_loader)
            except Exception as exc:  # noqa: BLE001 - a broken NVML must never fail fact gathering
                errors.append("nvml: %s" % exc)
                layers.append({"source": layer, "status": "failed", "message": str(exc)})
                continue
        elif layer == "nvidia_smi":
            if smi_path is None:
                message = "nvidia-smi not found" + (" at %s" % nvidia_smi_path if nvidia_smi_path else " (PATH, /usr/bin)")
                layers.append({"source": layer, "status": "failed" if kmod["loaded"] else "skipped", "message": message})
                if kmod["loaded"]:
                    errors.append("nvidia_smi: %s" % message)
                continue
            if not kmod["loaded"]:
                layers.append({"source": layer, "status": "skipped", "message": "nvidia kernel module not loaded"})
                continue
            try:
                host, raw_gpus = _gpu_smi.query(smi_path, timeout=timeout, runner=smi_runner)
            except Exception as exc:  # noqa: BLE001 - a broken nvidia-smi must never fail fact gathering
                errors.append("nvidia_smi: %s" % exc)
                layers.append({"source": layer, "status": "failed", "message": str(exc)})
                continue
            warnings.extend("nvidia_smi: %s" % warning for warning in host.get("warnings", ()))
        elif layer == "sysfs":
            host = {}
            raw_gpus = None
        else:
            errors.append("%s: unknown source" % layer)
            layers.append({"source": layer, "status": "failed", "message": "unknown source"})
            continue
        layers.append({"source": layer, "status": "ok", "message": None})
        source = layer
        break

    if source in ("nvml", "nvidia_smi"):
        gpus = [_finish_gpu(raw, pci_by_bus.get(raw.get("pci_bus_id"))) for raw in raw_gpus]
        if len(nvidia_pci_gpus) > len(gpus):
            missing = sorted(set(e["bus_id"] for e in nvidia_pci_gpus) - set(g["pci_bus_id"] for g in gpus))
            warnings.append(
                "%s reports %d GPU(s) but the PCI bus has %d NVIDIA GPU(s); not seen by the driver: %s"
                % (source, len(gpus), len(nvidia_pci_gpus), ", ".join(missing))
            )
    elif source == "sysfs":
        gpus = _sysfs_gpus(nvidia_pci_gpus, sysfs_root)
    else:
        gpus = []
        if nvidia_pci_gpus:
            warnings.append("no layer answered; %d NVIDIA GPU(s) on the PCI bus are not reported" % len(nvidia_pci_gpus))

    if source in ("nvml", "nvidia_smi"):
        warnings.extend(add_mig_devices(gpus, smi_path, smi_runner, timeout))

    version = host.get("driver_version") or kmod["version"]
    # The loaded kernel module and the user-space library disagree (an upgrade installed
    # without a reboot): NVML refuses to start (NVML_ERROR_LIB_RM_VERSION_MISMATCH,
    # nvidia-smi "Failed to initialize NVML: Driver/library version mismatch"), or a layer
    # reports another version than /proc/driver/nvidia/version.
    mismatch = bool(kmod["loaded"] and kmod["version"] and host.get("driver_version")
                    and kmod["version"] != host["driver_version"]) \
        or any("mismatch" in str(error).lower() for error in errors)
    if kmod["loaded"] and kmod["version"] and host.get("driver_version") and kmod["version"] != host["driver_version"]:
        warnings.append(
            "loaded kernel module %s differs from user-space driver %s (reboot or reload pending)"
            % (kmod["version"], host["driver_version"])
        )
    hints = [] if kmod["loaded"] else _gpu_sysfs.install_hints(sysfs_root, proc_root, smi_path)
    driver = {
        "loaded": kmod["loaded"],
        "version": version if kmod["loaded"] else None,
        "branch": version.split(".")[0] if (version and kmod["loaded"]) else None,
        "flavour": kmod["flavour"],
        "installed": bool(kmod["loaded"] or hints),
        "install_hints": hints,
        "library_mismatch": mismatch,
    }
    if nvidia_pci_gpus and not kmod["loaded"] and hints:
        warnings.append("an NVIDIA driver looks installed (%s) but is not loaded" % "; ".join(hints))

    architectures = sorted(_unique(g["architecture"] for g in gpus), key=lambda a: FAMILY_ORDER.get(a, 99))
    models = _unique(g["name"] for g in gpus)
    vendors = _unique(_gpu_sysfs.vendor_name(e["vendor"]) for e in pci if e["kind"] == "gpu")
    if gpus and "NVIDIA" not in vendors:
        vendors.insert(0, "NVIDIA")
    unsupported = [
        {
            "vendor": _gpu_sysfs.vendor_name(e["vendor"]),
            "pci_bus_id": e["bus_id"],
            "pci_vendor_id": _hex4(e["vendor"]),
            "pci_device_id": _hex4(e["device"]),
            "kernel_driver": e["driver"],
        }
        for e in other_gpus
    ]
    nouveau = _gpu_sysfs.nouveau_loaded(sysfs_root, proc_root)
    if nouveau and gpus:
        warnings.append("nouveau is loaded; it must be blacklisted before the NVIDIA driver can bind")
    fabric, fabric_warnings = nvlink_facts(nvswitches, nvlink5, gpus, sysfs_root, proc_root)
    warnings.extend(fabric_warnings)

    return {
        "facts_version": FACTS_VERSION,
        "present": bool(gpus),
        "count": len(gpus),
        "source": source,
        "gpus": gpus,
        "models": models,
        "heterogeneous": len(models) > 1,
        "architectures": architectures,
        "mig_capable": any(g["mig_capable"] for g in gpus),
        "mig_enabled": any(g["mig_mode_current"] == "enabled" for g in gpus),
        "vendors": vendors,
        "unsupported_gpus": unsupported,
        "driver": driver,
        "cuda_driver_version": host.get("cuda_driver_version"),
        "nouveau_loaded": nouveau,
        "nvswitch_count": len(nvswitches),
        "nvswitches": [
            {
                "pci_bus_id": e["bus_id"],
                "pci_device_id": _hex4(e["device"]),
                "name": NVSWITCH_DEVICES.get(e["device"], "NVSwitch"),
                "kernel_driver": e["driver"],
            }
            for e in nvswitches
        ],
        "fabric_manager_needed": fabric["fabric_manager_needed"],
        "nvlink_generation": fabric["nvlink_generation"],
        "nvlink5_switch_count": fabric["nvlink5_switch_count"],
        "nvlink5_switches": fabric["nvlink5_switches"],
        "nvlink5_kernel_modules_missing": fabric["nvlink5_kernel_modules_missing"],
        "nvlsm_needed": fabric["nvlsm_needed"],
        "secure_boot": _gpu_sysfs.secure_boot_state(sysfs_root),
        "layers": layers,
        "errors": errors,
        "warnings": warnings,
    }
