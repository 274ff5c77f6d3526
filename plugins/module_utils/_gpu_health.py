# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""GPU health, read on the host: the kernel log's Xid events and each GPU's error counters.

Pure functions over text (the kernel log, ``nvidia-smi -q -x``) and over NVML (ctypes, the
same library handle the nvml layer of gpu_facts opened), used by gpu_facts (the ``health``
key of each GPU) and by playbooks/doctor.yml. Standard library only.

Xid meanings and what to do follow NVIDIA's Xid catalog ("Xid Errors", docs.nvidia.com/
deploy/xid-errors: "Analyzing Xid Errors with the Xid Catalog", its "Resolution Bucket
(Immediate Action)" column: RESTART_APP, RESET_GPU, RESTART_BM, CONTACT_SUPPORT, IGNORE) and
NVIDIA's "Dynamic Page Retirement" guide for Xid 48/63/64. The counters are the fields of
``nvidia-smi -q -x`` (<ecc_errors>, <retired_pages>, <remapped_rows>, <clocks_event_reasons>,
<fabric>) and the NVML calls of the same data (nvml.h: nvmlDeviceGetTotalEccErrors,
nvmlDeviceGetRetiredPages, nvmlDeviceGetRetiredPagesPendingStatus, nvmlDeviceGetRemappedRows,
nvmlDeviceGetCurrentClocksEventReasons / ...ThrottleReasons).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import re

# Xid -> (what it means, the immediate action of NVIDIA's catalog, severity here).
# severity "fail": the GPU needs a reset, the node a reboot or service; "warn": an
# application fault or a recorded event that needs attention but leaves the GPU usable.
XID_TABLE = {
    8: ("GPU stopped processing (channel idle timeout)", "RESTART_APP", "warn"),
    13: ("Graphics engine exception (often an application fault)", "RESTART_APP", "warn"),
    31: ("GPU memory page fault (often an application fault)", "RESTART_APP", "warn"),
    32: ("Invalid or corrupted push buffer stream", "RESTART_APP", "warn"),
    43: ("GPU stopped processing", "RESTART_APP", "warn"),
    45: ("Preemptive cleanup, due to previous errors", "IGNORE", "warn"),
    48: ("Double-bit (uncorrectable) ECC error", "RESET_GPU", "fail"),
    61: ("Internal micro-controller breakpoint/warning", "CONTACT_SUPPORT", "warn"),
    62: ("Internal micro-controller halt", "RESET_GPU", "fail"),
    63: ("ECC page retirement or row remapping recorded; a GPU reset activates it", "RESET_GPU", "warn"),
    64: ("ECC page retirement or row remapping failed to record", "RESET_GPU", "fail"),
    68: ("Video decoder (NVDEC) exception", "RESTART_APP", "warn"),
    69: ("Graphics engine class error", "RESTART_APP", "warn"),
    74: ("NVLink error", "RESET_GPU", "fail"),
    79: ("GPU has fallen off the bus", "RESTART_BM", "fail"),
    92: ("High single-bit ECC error rate", "CONTACT_SUPPORT", "warn"),
    94: ("Contained ECC error (the affected application was stopped)", "RESTART_APP", "warn"),
    95: ("Uncontained ECC error", "RESET_GPU", "fail"),
    109: ("Context switch timeout", "RESTART_APP", "warn"),
    119: ("GSP RPC timeout", "RESET_GPU", "fail"),
    120: ("GSP error", "RESET_GPU", "fail"),
    121: ("C2C link error", "RESET_GPU", "fail"),
    140: ("Unrecovered ECC error", "RESET_GPU", "fail"),
    154: ("GPU recovery action changed (the action is in the message)", "CONTACT_SUPPORT", "warn"),
}
ACTIONS = {
    "RESTART_APP": "restart the application",
    "RESET_GPU": "drain the node and reset the GPU (nvidia-smi -r) or reboot",
    "RESTART_BM": "drain the node and reboot it; if it recurs, service the hardware",
    "CONTACT_SUPPORT": "collect nvidia-bug-report.sh and contact support if it recurs",
    "IGNORE": "none (a consequence of an earlier error)",
}

# "NVRM: Xid (PCI:0000:3b:00): 79, pid='<unknown>', name=<unknown>, GPU has fallen off the bus."
# Older drivers: "NVRM: Xid (0000:01:00): 3, C 00000005 ..." (no PCI: prefix).
_XID = re.compile(r"NVRM: Xid \((?:PCI:)?(?P<pci>[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})(?:\.\d)?\):\s*"
                  r"(?P<xid>\d+)\s*,?\s*(?P<rest>.*)$")
_PID = re.compile(r"pid=(?P<pid>'?[^,' ]+'?)")
_RECOVERY = re.compile(r"GPU recovery action changed from \S+ \(([^)]*)\) to \S+ \(([^)]*)\)")


def xid_meaning(xid):
    """{"meaning", "action", "severity"} of an Xid (an unknown one: warn, see NVIDIA's catalog)."""
    unknown = ("Xid %s (not in kubegpu's table; see NVIDIA's Xid catalog)" % xid, "CONTACT_SUPPORT", "warn")
    meaning, action, severity = XID_TABLE.get(int(xid), unknown)
    return {"meaning": meaning, "action": action, "what_to_do": ACTIONS[action], "severity": severity}


def parse_xid_lines(text, limit=200):
    """Xid events in kernel-log text (dmesg, journalctl -k): a list of {xid, pci_bus_id,
    pid, message, meaning, action, what_to_do, severity}, oldest first, at most `limit`
    (the newest kept)."""
    events = []
    for line in (text or "").splitlines():
        found = _XID.search(line)
        if not found:
            continue
        rest = found.group("rest").strip()
        pid = _PID.search(rest)
        event = {
            "xid": int(found.group("xid")),
            "pci_bus_id": found.group("pci").lower() + ".0",
            "pid": pid.group("pid").strip("'") if pid else None,
            "message": rest[:300],
        }
        event.update(xid_meaning(event["xid"]))
        recovery = _RECOVERY.search(rest)
        if recovery and event["xid"] == 154:
            event["severity"] = "warn" if recovery.group(2).strip().lower() == "none" else "fail"
            event["what_to_do"] = "the driver asks for: %s" % recovery.group(2)
        events.append(event)
    return events[-limit:] if limit else events


def xid_summary(events):
    """{pci bus id: {xid: count}} and the worst severity, of parsed events."""
    per_gpu = {}
    worst = "ok"
    for event in events or []:
        counts = per_gpu.setdefault(event["pci_bus_id"], {})
        counts[str(event["xid"])] = counts.get(str(event["xid"]), 0) + 1
        if event["severity"] == "fail" or (event["severity"] == "warn" and worst == "ok"):
            worst = event["severity"]
    return {"per_gpu": per_gpu, "worst": worst}


# --- nvidia-smi -q -x -----------------------------------------------------------------------

# <clocks_event_reasons> (older drivers: <clocks_throttle_reasons>, elements
# clocks_throttle_reason_*): the reasons that mean the GPU is held below its clocks by
# power or heat. gpu_idle, applications_clocks_setting, display_clocks_setting and
# sync_boost are normal operation.
THROTTLE_REASONS = ("sw_power_cap", "hw_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
                    "sw_thermal_slowdown")


def xml_text(node, path):
    """The text of node/path in nvidia-smi's XML; None when missing, empty, N/A or Not Supported."""
    if node is None:
        return None
    child = node.find(path)
    if child is None or child.text is None:
        return None
    value = child.text.strip()
    if not value or value in ("N/A", "[N/A]", "Not Supported", "[Not Supported]"):
        return None
    return value


def _count(text):
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def _yes(text):
    return None if text is None else text.strip().lower() in ("yes", "true", "pending")


def _sum(values):
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def smi_gpu_health(gpu):
    """The health of one <gpu> element of `nvidia-smi -q -x` (an ElementTree node)."""
    ecc = {}
    for scope in ("volatile", "aggregate"):
        node = gpu.find("ecc_errors/" + scope)
        if node is None:
            ecc[scope] = {"correctable": None, "uncorrectable": None}
            continue
        # R535+: sram_*/dram_* counters; older: single_bit/double_bit/total.
        corrected = _sum([_count(xml_text(node, "sram_correctable")), _count(xml_text(node, "dram_correctable"))])
        uncorrected = _sum([_count(xml_text(node, "sram_uncorrectable_parity")),
                            _count(xml_text(node, "sram_uncorrectable_secded")),
                            _count(xml_text(node, "dram_uncorrectable"))])
        if corrected is None:
            corrected = _count(xml_text(node, "single_bit/total"))
        if uncorrected is None:
            uncorrected = _count(xml_text(node, "double_bit/total"))
        ecc[scope] = {"correctable": corrected, "uncorrectable": uncorrected}
    retired = {
        "single_bit": _count(xml_text(gpu, "retired_pages/multiple_single_bit_retirement/retired_count")),
        "double_bit": _count(xml_text(gpu, "retired_pages/double_bit_retirement/retired_count")),
        "pending": _yes(xml_text(gpu, "retired_pages/pending_retirement")),
    }
    remapped = {
        "correctable": _count(xml_text(gpu, "remapped_rows/remapped_row_corr")),
        "uncorrectable": _count(xml_text(gpu, "remapped_rows/remapped_row_unc")),
        "pending": _yes(xml_text(gpu, "remapped_rows/remapped_row_pending")),
        "failure": _yes(xml_text(gpu, "remapped_rows/remapped_row_failure")),
    }
    throttle = []
    for parent, prefix in (("clocks_event_reasons", "clocks_event_reason_"),
                           ("clocks_throttle_reasons", "clocks_throttle_reason_")):
        node = gpu.find(parent)
        if node is None:
            continue
        for reason in THROTTLE_REASONS:
            if (xml_text(node, prefix + reason) or "").lower() == "active":
                throttle.append(reason)
        break
    persistence = xml_text(gpu, "persistence_mode")
    return {
        "ecc_mode": (xml_text(gpu, "ecc_mode/current_ecc") or "").lower() or None,
        "ecc": ecc,
        "retired_pages": retired,
        "remapped_rows": remapped,
        "throttle_reasons": throttle,
        "persistence_mode": None if persistence is None else persistence.lower() == "enabled",
        "fabric": {"state": xml_text(gpu, "fabric/state"), "status": xml_text(gpu, "fabric/status")},
        "source": "nvidia_smi",
    }


# --- NVML -------------------------------------------------------------------------------------

NVML_MEMORY_ERROR_TYPE_CORRECTED = 0
NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1
NVML_VOLATILE_ECC = 0
NVML_AGGREGATE_ECC = 1
NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0
NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1
# nvml.h nvmlClocksEventReason* (formerly nvmlClocksThrottleReason*), the bits of THROTTLE_REASONS.
NVML_CLOCK_REASON_BITS = {
    0x4: "sw_power_cap", 0x8: "hw_slowdown", 0x20: "sw_thermal_slowdown", 0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}


# nvml.h (NVIDIA/go-nvml pkg/nvml/nvml.h; NVML API reference "nvmlGpuFabricInfo_t",
# "nvmlGpuFabricInfo_v2_t"): the GPU's registration with the NVLink fabric.
# NVML_GPU_FABRIC_STATE_NOT_SUPPORTED (0) is what nvidia-smi prints as N/A (a GPU without a
# fabric, e.g. the H100 VM capture), so it reads None here as it does from the XML.
# "In Progress" and "Completed" are nvidia-smi's words (NVIDIA Fabric Manager user guide, as
# quoted in siderolabs/extensions#717); "Not Started" is ours for state 1.
NVML_FABRIC_STATES = {1: "Not Started", 2: "In Progress", 3: "Completed"}
NVML_FABRIC_STATE_COMPLETED = 3
NVML_GPU_FABRIC_UUID_LEN = 16


class NvmlGpuFabricInfo(ctypes.Structure):
    """nvmlGpuFabricInfo_t (nvmlDeviceGetGpuFabricInfo, deprecated in CUDA 13 but present)."""

    _fields_ = [
        ("clusterUuid", ctypes.c_ubyte * NVML_GPU_FABRIC_UUID_LEN),
        ("status", ctypes.c_int),
        ("cliqueId", ctypes.c_uint),
        ("state", ctypes.c_ubyte),
    ]


class NvmlGpuFabricInfoV2(ctypes.Structure):
    """nvmlGpuFabricInfo_v2_t (nvmlDeviceGetGpuFabricInfoV, R550+): version first, healthMask last."""

    _fields_ = [
        ("version", ctypes.c_uint),
        ("clusterUuid", ctypes.c_ubyte * NVML_GPU_FABRIC_UUID_LEN),
        ("status", ctypes.c_int),
        ("cliqueId", ctypes.c_uint),
        ("state", ctypes.c_ubyte),
        ("healthMask", ctypes.c_uint),
    ]


# NVML_STRUCT_VERSION(GpuFabricInfo, 2): sizeof | 2 << 24.
NVML_GPU_FABRIC_INFO_V2 = ctypes.sizeof(NvmlGpuFabricInfoV2) | (2 << 24)


def fabric_from_nvml(state, status):
    """{"state", "status"} as the XML layer reports them, from NVML's state and status
    codes: the status counts only once the state is Completed (nvml.h), 0 reads Success."""
    text = NVML_FABRIC_STATES.get(state)
    if text is None:
        return {"state": None, "status": None}
    if state != NVML_FABRIC_STATE_COMPLETED:
        return {"state": text, "status": None}
    return {"state": text, "status": "Success" if status == 0 else "NVML error %d" % status}


def nvml_fabric(optional, handle):
    """The GPU's fabric state through NVML: nvmlDeviceGetGpuFabricInfoV (v2 structure), else
    the older nvmlDeviceGetGpuFabricInfo; {"state": None, "status": None} where neither answers."""
    info = NvmlGpuFabricInfoV2(version=NVML_GPU_FABRIC_INFO_V2)
    if optional("nvmlDeviceGetGpuFabricInfoV", handle, ctypes.byref(info)):
        return fabric_from_nvml(info.state, info.status)
    old = NvmlGpuFabricInfo()
    if optional("nvmlDeviceGetGpuFabricInfo", handle, ctypes.byref(old)):
        return fabric_from_nvml(old.state, old.status)
    return {"state": None, "status": None}


def nvml_gpu_health(optional, handle, persistence_mode=None):
    """The health of one GPU through NVML. ``optional(name, *args)`` calls an NVML function
    and says whether it answered (a missing symbol, NOT_SUPPORTED or any error: False), as
    the nvml layer's _optional does; every counter it cannot read stays None."""
    ecc = {}
    for scope, counter in (("volatile", NVML_VOLATILE_ECC), ("aggregate", NVML_AGGREGATE_ECC)):
        values = {}
        for key, kind in (("correctable", NVML_MEMORY_ERROR_TYPE_CORRECTED),
                          ("uncorrectable", NVML_MEMORY_ERROR_TYPE_UNCORRECTED)):
            count = ctypes.c_ulonglong()
            values[key] = count.value if optional("nvmlDeviceGetTotalEccErrors", handle, ctypes.c_int(kind),
                                                  ctypes.c_int(counter), ctypes.byref(count)) else None
        ecc[scope] = values
    retired = {"single_bit": None, "double_bit": None, "pending": None}
    for key, cause in (("single_bit", NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS),
                       ("double_bit", NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)):
        pages = ctypes.c_uint(0)    # 0 and NULL: the count only
        if optional("nvmlDeviceGetRetiredPages", handle, ctypes.c_int(cause), ctypes.byref(pages), None):
            retired[key] = pages.value
    pending = ctypes.c_int()
    if optional("nvmlDeviceGetRetiredPagesPendingStatus", handle, ctypes.byref(pending)):
        retired["pending"] = pending.value == 1
    corr, unc, is_pending, failure = ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint(), ctypes.c_uint()
    remapped = {"correctable": None, "uncorrectable": None, "pending": None, "failure": None}
    if optional("nvmlDeviceGetRemappedRows", handle, ctypes.byref(corr), ctypes.byref(unc), ctypes.byref(is_pending),
                ctypes.byref(failure)):
        remapped = {"correctable": corr.value, "uncorrectable": unc.value, "pending": bool(is_pending.value),
                    "failure": bool(failure.value)}
    reasons = ctypes.c_ulonglong()
    throttle = []
    if optional("nvmlDeviceGetCurrentClocksEventReasons", handle, ctypes.byref(reasons)) or \
            optional("nvmlDeviceGetCurrentClocksThrottleReasons", handle, ctypes.byref(reasons)):
        throttle = [name for bit, name in sorted(NVML_CLOCK_REASON_BITS.items()) if reasons.value & bit]
    mode = ctypes.c_int()
    current_ecc = None
    pending_ecc = ctypes.c_int()
    if optional("nvmlDeviceGetEccMode", handle, ctypes.byref(mode), ctypes.byref(pending_ecc)):
        current_ecc = "enabled" if mode.value == 1 else "disabled"
    return {
        "ecc_mode": current_ecc,
        "ecc": ecc,
        "retired_pages": retired,
        "remapped_rows": remapped,
        "throttle_reasons": throttle,
        "persistence_mode": persistence_mode,
        "fabric": nvml_fabric(optional, handle),
        "source": "nvml",
    }
