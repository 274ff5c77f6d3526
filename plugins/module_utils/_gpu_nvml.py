# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""The NVML layer: libnvidia-ml.so.1 through ctypes, no extra package.

Standard library only, no ansible import. The seam for tests is
`read_nvml(lib)`: it takes any object whose attributes are the NVML C
functions (the ctypes CDLL in production, a fake in tests) and calls them
with ctypes arguments exactly as the C API defines them (nvml.h).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes

from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_data import NVML_ARCHITECTURES
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_health import nvml_gpu_health
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_sysfs import normalise_bus_id

LIBRARY = "libnvidia-ml.so.1"

NVML_SUCCESS = 0
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_FUNCTION_NOT_FOUND = 13
NVML_DEVICE_MIG_ENABLE = 1

# nvml.h buffer sizes.
NVML_DEVICE_NAME_V2_BUFFER_SIZE = 96
NVML_DEVICE_UUID_V2_BUFFER_SIZE = 96
NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE = 80
NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE = 32
NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE = 16

# Short names for the errors we expect to see (nvml.h nvmlReturn_t).
_ERRORS = {
    1: "NVML_ERROR_UNINITIALIZED",
    2: "NVML_ERROR_INVALID_ARGUMENT",
    3: "NVML_ERROR_NOT_SUPPORTED",
    4: "NVML_ERROR_NO_PERMISSION",
    6: "NVML_ERROR_NOT_FOUND",
    9: "NVML_ERROR_DRIVER_NOT_LOADED",
    12: "NVML_ERROR_LIBRARY_NOT_FOUND",
    13: "NVML_ERROR_FUNCTION_NOT_FOUND",
    15: "NVML_ERROR_GPU_IS_LOST",
    18: "NVML_ERROR_LIB_RM_VERSION_MISMATCH",
    999: "NVML_ERROR_UNKNOWN",
}


class NvmlPciInfo(ctypes.Structure):
    """nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v3."""

    _fields_ = [
        ("busIdLegacy", ctypes.c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE),
        ("domain", ctypes.c_uint),
        ("bus", ctypes.c_uint),
        ("device", ctypes.c_uint),
        ("pciDeviceId", ctypes.c_uint),  # device id << 16 | vendor id
        ("pciSubSystemId", ctypes.c_uint),  # subsystem device << 16 | subsystem vendor
        ("busId", ctypes.c_char * NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE),
    ]


class NvmlMemory(ctypes.Structure):
    """nvmlMemory_t (v1): bytes."""

    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


class NvmlError(Exception):
    def __init__(self, function, code, text=None):
        self.function = function
        self.code = code
        name = _ERRORS.get(code, "error %s" % code)
        detail = "%s: %s" % (name, text) if text else name
        super(NvmlError, self).__init__("%s failed: %s" % (function, detail))


def load_library(name=LIBRARY):
    """ctypes.CDLL of libnvidia-ml, or raise NvmlError."""
    try:
        return ctypes.CDLL(name)
    except OSError as exc:
        raise NvmlError("dlopen(%s)" % name, 12, str(exc))


class _Nvml:
    def __init__(self, lib):
        self.lib = lib

    def has(self, name):
        try:
            return getattr(self.lib, name) is not None
        except AttributeError:
            return False

    def call(self, name, *args):
        try:
            function = getattr(self.lib, name)
        except AttributeError:
            raise NvmlError(name, NVML_ERROR_FUNCTION_NOT_FOUND)
        code = function(*args)
        if code != NVML_SUCCESS:
            raise NvmlError(name, code, self.error_string(code))

    def error_string(self, code):
        try:
            function = self.lib.nvmlErrorString
        except AttributeError:
            return None
        try:
            function.restype = ctypes.c_char_p
        except AttributeError:
            pass
        try:
            text = function(code)
        except Exception:  # noqa: BLE001 - a broken error string is not worth failing for
            return None
        if isinstance(text, bytes):
            return text.decode("utf-8", "replace")
        return text


def _decode(buf):
    """A ctypes char buffer (or the bytes a char-array struct field reads as) -> str."""
    raw = buf if isinstance(buf, bytes) else buf.value
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip()


def _read_device(nvml, index):
    handle = ctypes.c_void_p()
    nvml.call("nvmlDeviceGetHandleByIndex_v2", ctypes.c_uint(index), ctypes.byref(handle))
    name = ctypes.create_string_buffer(NVML_DEVICE_NAME_V2_BUFFER_SIZE)
    nvml.call("nvmlDeviceGetName", handle, name, ctypes.c_uint(NVML_DEVICE_NAME_V2_BUFFER_SIZE))
    uuid = ctypes.create_string_buffer(NVML_DEVICE_UUID_V2_BUFFER_SIZE)
    nvml.call("nvmlDeviceGetUUID", handle, uuid, ctypes.c_uint(NVML_DEVICE_UUID_V2_BUFFER_SIZE))
    memory = NvmlMemory()
    nvml.call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory))
    pci = NvmlPciInfo()
    nvml.call("nvmlDeviceGetPciInfo_v3", handle, ctypes.byref(pci))
    major, minor = ctypes.c_int(), ctypes.c_int()
    nvml.call("nvmlDeviceGetCudaComputeCapability", handle, ctypes.byref(major), ctypes.byref(minor))

    gpu = {
        "index": index,
        "uuid": _decode(uuid) or None,
        "name": _decode(name) or None,
        "pci_bus_id": normalise_bus_id(_decode(pci.busId)),
        "vendor": pci.pciDeviceId & 0xFFFF,
        "device": pci.pciDeviceId >> 16,
        "subsystem_vendor": pci.pciSubSystemId & 0xFFFF,
        "subsystem_device": pci.pciSubSystemId >> 16,
        "memory_mib": int(memory.total // (1024 * 1024)),
        "compute_capability_major": major.value,
        "compute_capability_minor": minor.value,
        "architecture": None,
        "mig_capable": False,
        "mig_mode_current": None,
        "mig_mode_pending": None,
        "minor_number": None,
        "persistence_mode": None,
    }

    current, pending = ctypes.c_uint(), ctypes.c_uint()
    try:
        nvml.call("nvmlDeviceGetMigMode", handle, ctypes.byref(current), ctypes.byref(pending))
    except NvmlError as exc:
        if exc.code not in (NVML_ERROR_NOT_SUPPORTED, NVML_ERROR_FUNCTION_NOT_FOUND):
            raise
    else:
        gpu["mig_capable"] = True
        gpu["mig_mode_current"] = "enabled" if current.value == NVML_DEVICE_MIG_ENABLE else "disabled"
        gpu["mig_mode_pending"] = "enabled" if pending.value == NVML_DEVICE_MIG_ENABLE else "disabled"

    # Optional: older libraries lack some symbols, some GPUs answer NOT_SUPPORTED.
    arch = ctypes.c_uint()
    if _optional(nvml, "nvmlDeviceGetArchitecture", handle, ctypes.byref(arch)):
        gpu["architecture"] = NVML_ARCHITECTURES.get(arch.value)
    minor_number = ctypes.c_uint()
    if _optional(nvml, "nvmlDeviceGetMinorNumber", handle, ctypes.byref(minor_number)):
        gpu["minor_number"] = minor_number.value
    persistence = ctypes.c_uint()
    if _optional(nvml, "nvmlDeviceGetPersistenceMode", handle, ctypes.byref(persistence)):
        gpu["persistence_mode"] = persistence.value == 1
    numa = ctypes.c_uint()
    if _optional(nvml, "nvmlDeviceGetNumaNodeId", handle, ctypes.byref(numa)):
        gpu["nvml_numa_node"] = numa.value
    gpu["health"] = nvml_gpu_health(lambda name, *args: _optional(nvml, name, *args), handle, gpu["persistence_mode"])
    return gpu


def _optional(nvml, name, *args):
    if not nvml.has(name):
        return False
    try:
        nvml.call(name, *args)
    except NvmlError:
        return False
    return True


def read_nvml(lib):
    """Query NVML through `lib`. Returns (host dict, gpu list); raises NvmlError.

    nvmlShutdown is always called once nvmlInit_v2 succeeded.
    """
    nvml = _Nvml(lib)
    nvml.call("nvmlInit_v2")
    try:
        version = ctypes.create_string_buffer(NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE)
        nvml.call("nvmlSystemGetDriverVersion", version, ctypes.c_uint(NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE))
        cuda = ctypes.c_int()
        cuda_version = None
        if _optional(nvml, "nvmlSystemGetCudaDriverVersion_v2", ctypes.byref(cuda)) and cuda.value > 0:
            cuda_version = "%d.%d" % (cuda.value // 1000, (cuda.value % 1000) // 10)
        count = ctypes.c_uint()
        nvml.call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        gpus = [_read_device(nvml, i) for i in range(count.value)]
        host = {"driver_version": _decode(version) or None, "cuda_driver_version": cuda_version}
        return host, gpus
    finally:
        try:
            nvml.call("nvmlShutdown")
        except NvmlError:
            pass


def query(library=LIBRARY, loader=None):
    """Load the library (or use loader()) and read it."""
    lib = loader() if loader is not None else load_library(library)
    return read_nvml(lib)
