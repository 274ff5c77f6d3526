# SPDX-License-Identifier: Apache-2.0
"""NVML layer through a fake library at the ctypes seam (read_nvml(lib))."""

import ctypes
import importlib.util
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu, _gpu_data, _gpu_health, _gpu_nvml

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
_spec = importlib.util.spec_from_file_location("kubegpu_fakehost", FIXTURES / "fakehost.py")
fakehost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakehost)

H100 = {
    "name": b"NVIDIA H100 80GB HBM3",
    "uuid": b"GPU-e11c404d-6750-e350-11fd-766aebec6e70",
    "bus_id": b"00000000:00:06.0",
    "pci_device_id": 0x233010DE,
    "pci_subsystem_id": 0x16C110DE,
    "memory": 85520809984,  # bytes, measured on the H100 host
    "cc": (9, 0),
    "mig": (0, 0),
    "arch": 9,
    "minor": 0,
    "persistence": 1,
}


def _target(ref):
    """The ctypes object behind a byref() argument."""
    return ref._obj


class FakeNvml:
    """Behaves like ctypes.CDLL('libnvidia-ml.so.1') for the calls _gpu_nvml makes.

    errors: {function name: return code}; missing: symbols the library lacks.
    """

    def __init__(self, devices, driver=b"580.159.04", cuda=13000, errors=None, missing=()):
        self.devices = devices
        self.driver = driver
        self.cuda = cuda
        self.errors = dict(errors or {})
        self.missing = set(missing)
        self.calls = []

    def __getattribute__(self, name):
        if name.startswith("nvml") and name in object.__getattribute__(self, "missing"):
            raise AttributeError(name)
        return object.__getattribute__(self, name)

    def _rc(self, name):
        self.calls.append(name)
        return self.errors.get(name, 0)

    def _dev(self, handle):
        return self.devices[handle.value - 1]

    # library
    def nvmlInit_v2(self):
        return self._rc("nvmlInit_v2")

    def nvmlShutdown(self):
        return self._rc("nvmlShutdown")

    def nvmlErrorString(self, code):
        return {9: b"Driver Not Loaded", 3: b"Not Supported", 18: b"RM has detected an NVML/RM version mismatch."}.get(code, b"Unknown Error")

    def nvmlSystemGetDriverVersion(self, buf, length):
        buf.value = self.driver
        return self._rc("nvmlSystemGetDriverVersion")

    def nvmlSystemGetCudaDriverVersion_v2(self, ref):
        _target(ref).value = self.cuda
        return self._rc("nvmlSystemGetCudaDriverVersion_v2")

    def nvmlDeviceGetCount_v2(self, ref):
        _target(ref).value = len(self.devices)
        return self._rc("nvmlDeviceGetCount_v2")

    def nvmlDeviceGetHandleByIndex_v2(self, index, ref):
        _target(ref).value = index.value + 1
        return self._rc("nvmlDeviceGetHandleByIndex_v2")

    # device
    def nvmlDeviceGetName(self, handle, buf, length):
        assert length.value == 96
        buf.value = self._dev(handle)["name"]
        return self._rc("nvmlDeviceGetName")

    def nvmlDeviceGetUUID(self, handle, buf, length):
        buf.value = self._dev(handle)["uuid"]
        return self._rc("nvmlDeviceGetUUID")

    def nvmlDeviceGetMemoryInfo(self, handle, ref):
        _target(ref).total = self._dev(handle)["memory"]
        return self._rc("nvmlDeviceGetMemoryInfo")

    def nvmlDeviceGetPciInfo_v3(self, handle, ref):
        info = _target(ref)
        assert isinstance(info, _gpu_nvml.NvmlPciInfo)
        dev = self._dev(handle)
        info.busId = dev["bus_id"]
        info.busIdLegacy = dev["bus_id"][4:]
        info.pciDeviceId = dev["pci_device_id"]
        info.pciSubSystemId = dev["pci_subsystem_id"]
        return self._rc("nvmlDeviceGetPciInfo_v3")

    def nvmlDeviceGetCudaComputeCapability(self, handle, major, minor):
        _target(major).value, _target(minor).value = self._dev(handle)["cc"]
        return self._rc("nvmlDeviceGetCudaComputeCapability")

    def nvmlDeviceGetMigMode(self, handle, current, pending):
        mig = self._dev(handle)["mig"]
        if mig is None:
            return 3  # NVML_ERROR_NOT_SUPPORTED
        _target(current).value, _target(pending).value = mig
        return self._rc("nvmlDeviceGetMigMode")

    def nvmlDeviceGetArchitecture(self, handle, ref):
        _target(ref).value = self._dev(handle)["arch"]
        return self._rc("nvmlDeviceGetArchitecture")

    def nvmlDeviceGetMinorNumber(self, handle, ref):
        _target(ref).value = self._dev(handle)["minor"]
        return self._rc("nvmlDeviceGetMinorNumber")

    def nvmlDeviceGetPersistenceMode(self, handle, ref):
        _target(ref).value = self._dev(handle)["persistence"]
        return self._rc("nvmlDeviceGetPersistenceMode")

    def nvmlDeviceGetNumaNodeId(self, handle, ref):
        return self._rc("nvmlDeviceGetNumaNodeId") or 3

    # health (nvml.h); a device's "health" dict overrides the healthy H100 defaults below
    def _health(self, handle, key, default):
        return self._dev(handle).get("health", {}).get(key, default)

    def nvmlDeviceGetTotalEccErrors(self, handle, kind, counter, ref):
        _target(ref).value = self._health(handle, "ecc", {}).get((kind.value, counter.value), 0)
        return self._rc("nvmlDeviceGetTotalEccErrors")

    def nvmlDeviceGetRetiredPages(self, handle, cause, count, addresses):
        assert _target(count).value == 0 and addresses is None     # the count-only form
        pages = self._health(handle, "retired", None)
        if pages is None:
            return 3    # NOT_SUPPORTED: Hopper remaps rows instead of retiring pages
        _target(count).value = pages.get(cause.value, 0)
        return self._rc("nvmlDeviceGetRetiredPages")

    def nvmlDeviceGetRetiredPagesPendingStatus(self, handle, ref):
        pending = self._health(handle, "retired_pending", None)
        if pending is None:
            return 3
        _target(ref).value = pending
        return self._rc("nvmlDeviceGetRetiredPagesPendingStatus")

    def nvmlDeviceGetRemappedRows(self, handle, corr, unc, pending, failure):
        values = self._health(handle, "remapped", (0, 0, 0, 0))
        for ref, value in zip((corr, unc, pending, failure), values):
            _target(ref).value = value
        return self._rc("nvmlDeviceGetRemappedRows")

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle, ref):
        _target(ref).value = self._health(handle, "reasons", 0x1)     # GPU idle
        return self._rc("nvmlDeviceGetCurrentClocksEventReasons")

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle, ref):
        _target(ref).value = self._health(handle, "reasons", 0x1)
        return self._rc("nvmlDeviceGetCurrentClocksThrottleReasons")

    def nvmlDeviceGetEccMode(self, handle, current, pending):
        _target(current).value = _target(pending).value = self._health(handle, "ecc_mode", 1)
        return self._rc("nvmlDeviceGetEccMode")


def test_pci_info_struct_layout():
    """nvmlPciInfo_t: busIdLegacy[16], domain, bus, device, pciDeviceId, pciSubSystemId, busId[32]."""
    fields = dict((name, getattr(_gpu_nvml.NvmlPciInfo, name).offset) for name, _unused in _gpu_nvml.NvmlPciInfo._fields_)
    assert fields == {"busIdLegacy": 0, "domain": 16, "bus": 20, "device": 24, "pciDeviceId": 28,
                      "pciSubSystemId": 32, "busId": 36}
    assert ctypes.sizeof(_gpu_nvml.NvmlPciInfo) == 68
    assert ctypes.sizeof(_gpu_nvml.NvmlMemory) == 24


def test_read_h100():
    lib = FakeNvml([H100])
    host, gpus = _gpu_nvml.read_nvml(lib)
    assert host == {"driver_version": "580.159.04", "cuda_driver_version": "13.0"}
    assert gpus == [
        {
            "index": 0,
            "uuid": "GPU-e11c404d-6750-e350-11fd-766aebec6e70",
            "name": "NVIDIA H100 80GB HBM3",
            "pci_bus_id": "0000:00:06.0",
            "vendor": 0x10DE,
            "device": 0x2330,
            "subsystem_vendor": 0x10DE,
            "subsystem_device": 0x16C1,
            "memory_mib": 81559,
            "compute_capability_major": 9,
            "compute_capability_minor": 0,
            "architecture": "hopper",
            "mig_capable": True,
            "mig_mode_current": "disabled",
            "mig_mode_pending": "disabled",
            "minor_number": 0,
            "persistence_mode": True,
            "health": HEALTHY,
        }
    ]
    assert lib.calls[0] == "nvmlInit_v2" and lib.calls[-1] == "nvmlShutdown"


HEALTHY = {
    "ecc_mode": "enabled",
    "ecc": {"volatile": {"correctable": 0, "uncorrectable": 0}, "aggregate": {"correctable": 0, "uncorrectable": 0}},
    "retired_pages": {"single_bit": None, "double_bit": None, "pending": None},
    "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
    "throttle_reasons": [],
    "persistence_mode": True,
    "fabric": {"state": None, "status": None},
    "source": "nvml",
}


def test_health_counters_read_through_nvml():
    """Uncorrectable volatile ECC errors (type 1, counter 0), retired pages on an A100, rows
    pending remap, and a GPU held back by heat (0x40) while idle (0x1: not a throttle)."""
    sick = dict(H100, health={"ecc": {(1, 0): 2, (1, 1): 5, (0, 1): 40}, "retired": {0: 1, 1: 2},
                              "retired_pending": 1, "remapped": (3, 1, 1, 0), "reasons": 0x41})
    _unused, gpus = _gpu_nvml.read_nvml(FakeNvml([sick]))
    health = gpus[0]["health"]
    assert health["ecc"] == {"volatile": {"correctable": 0, "uncorrectable": 2},
                             "aggregate": {"correctable": 40, "uncorrectable": 5}}
    assert health["retired_pages"] == {"single_bit": 1, "double_bit": 2, "pending": True}
    assert health["remapped_rows"] == {"correctable": 3, "uncorrectable": 1, "pending": True, "failure": False}
    assert health["throttle_reasons"] == ["hw_thermal_slowdown"]


def test_health_of_an_old_library_falls_back_or_stays_unknown():
    lib = FakeNvml([dict(H100, health={"reasons": 0x4})],
                   missing={"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetRemappedRows",
                            "nvmlDeviceGetTotalEccErrors", "nvmlDeviceGetEccMode"})
    _unused, gpus = _gpu_nvml.read_nvml(lib)
    health = gpus[0]["health"]
    assert health["throttle_reasons"] == ["sw_power_cap"]     # the older ...ThrottleReasons symbol
    assert health["remapped_rows"] == {"correctable": None, "uncorrectable": None, "pending": None, "failure": None}
    assert health["ecc"]["volatile"] == {"correctable": None, "uncorrectable": None}
    assert health["ecc_mode"] is None


@pytest.mark.parametrize(
    "cuda, expected",
    [(13000, "13.0"), (12020, "12.2"), (12080, "12.8"), (11040, "11.4"), (0, None)],
)
def test_cuda_driver_version(cuda, expected):
    host, _unused = _gpu_nvml.read_nvml(FakeNvml([], cuda=cuda))
    assert host["cuda_driver_version"] == expected


def test_mig_not_supported_and_enabled():
    t4 = dict(H100, name=b"Tesla T4", pci_device_id=0x1EB810DE, mig=None, arch=6, cc=(7, 5))
    a100 = dict(H100, name=b"NVIDIA A100-SXM4-80GB", pci_device_id=0x20B210DE, mig=(1, 0), arch=7, cc=(8, 0))
    _unused, gpus = _gpu_nvml.read_nvml(FakeNvml([t4, a100]))
    assert [(g["mig_capable"], g["mig_mode_current"], g["mig_mode_pending"]) for g in gpus] == [
        (False, None, None),
        (True, "enabled", "disabled"),
    ]


def test_old_library_without_optional_symbols():
    lib = FakeNvml(
        [H100],
        missing={"nvmlDeviceGetArchitecture", "nvmlDeviceGetNumaNodeId", "nvmlSystemGetCudaDriverVersion_v2",
                 "nvmlDeviceGetMinorNumber", "nvmlDeviceGetPersistenceMode"},
    )
    host, gpus = _gpu_nvml.read_nvml(lib)
    assert host["cuda_driver_version"] is None
    assert gpus[0]["architecture"] is None and gpus[0]["minor_number"] is None
    assert gpus[0]["name"] == "NVIDIA H100 80GB HBM3"


def test_missing_required_symbol():
    with pytest.raises(_gpu_nvml.NvmlError, match="nvmlDeviceGetPciInfo_v3 failed: NVML_ERROR_FUNCTION_NOT_FOUND"):
        _gpu_nvml.read_nvml(FakeNvml([H100], missing={"nvmlDeviceGetPciInfo_v3"}))


@pytest.mark.parametrize(
    "function, code, message",
    [
        ("nvmlInit_v2", 9, "nvmlInit_v2 failed: NVML_ERROR_DRIVER_NOT_LOADED: Driver Not Loaded"),
        ("nvmlInit_v2", 18, "nvmlInit_v2 failed: NVML_ERROR_LIB_RM_VERSION_MISMATCH: RM has detected an NVML/RM version mismatch."),
        ("nvmlDeviceGetCount_v2", 999, "nvmlDeviceGetCount_v2 failed: NVML_ERROR_UNKNOWN: Unknown Error"),
        ("nvmlDeviceGetName", 15, "nvmlDeviceGetName failed: NVML_ERROR_GPU_IS_LOST: Unknown Error"),
        ("nvmlDeviceGetMigMode", 4, "nvmlDeviceGetMigMode failed: NVML_ERROR_NO_PERMISSION: Unknown Error"),
    ],
)
def test_errors(function, code, message):
    lib = FakeNvml([H100], errors={function: code})
    with pytest.raises(_gpu_nvml.NvmlError) as info:
        _gpu_nvml.read_nvml(lib)
    assert str(info.value) == message
    # Shutdown follows a successful init, never a failed one.
    assert ("nvmlShutdown" in lib.calls) == (function != "nvmlInit_v2")


def test_load_library_missing():
    with pytest.raises(_gpu_nvml.NvmlError, match="NVML_ERROR_LIBRARY_NOT_FOUND"):
        _gpu_nvml.load_library("libkubegpu-does-not-exist.so.1")


def _host(tmp_path, case="h100-80gb-hbm3-ubuntu2404"):
    return fakehost.build(str(FIXTURES / case), str(tmp_path / "root"))


def test_collect_prefers_nvml(tmp_path):
    root = _host(tmp_path)
    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=lambda: FakeNvml([H100]),
                         smi_finder=lambda p: None)
    assert facts["source"] == "nvml"
    assert facts["layers"] == [{"source": "nvml", "status": "ok", "message": None}]
    assert facts["gpus"][0]["kernel_driver"] == "nvidia"  # from the PCI scan
    assert facts["gpus"][0]["compute_capability"] == "9.0"
    assert facts["driver"]["flavour"] == "open"
    assert facts["cuda_driver_version"] == "13.0"


def test_collect_nvml_error_falls_through_to_smi(tmp_path):
    root = _host(tmp_path)
    xml = fakehost.smi_xml(str(FIXTURES / "h100-80gb-hbm3-ubuntu2404"))
    facts = _gpu.collect(
        sysfs_root=root,
        proc_root=root,
        nvml_loader=lambda: FakeNvml([H100], errors={"nvmlInit_v2": 18}),
        smi_finder=lambda p: "/usr/bin/nvidia-smi",
        smi_runner=lambda argv, timeout: (0, xml, ""),
    )
    assert facts["source"] == "nvidia_smi"
    assert facts["errors"] == [
        "nvml: nvmlInit_v2 failed: NVML_ERROR_LIB_RM_VERSION_MISMATCH: RM has detected an NVML/RM version mismatch."
    ]
    assert facts["driver"]["library_mismatch"] is True     # doctor's driver/library mismatch


def test_collect_nvml_crash_never_raises(tmp_path):
    root = _host(tmp_path)

    class Broken(FakeNvml):
        def nvmlDeviceGetUUID(self, handle, buf, length):
            raise ValueError("segfault-ish")

    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=lambda: Broken([H100]),
                         smi_finder=lambda p: None)
    assert facts["source"] == "sysfs"
    assert facts["errors"][0] == "nvml: segfault-ish"


def test_collect_version_mismatch_warning(tmp_path):
    root = _host(tmp_path)
    facts = _gpu.collect(sysfs_root=root, proc_root=root,
                         nvml_loader=lambda: FakeNvml([H100], driver=b"580.160.01"), smi_finder=lambda p: None)
    assert facts["warnings"] == [
        "loaded kernel module 580.159.04 differs from user-space driver 580.160.01 (reboot or reload pending)"
    ]
    assert facts["driver"]["library_mismatch"] is True


def test_collect_nvml_gives_compute_capability_the_table_lacks(tmp_path, monkeypatch):
    """NVML answers nvmlDeviceGetCudaComputeCapability for every GPU, so a GPU missing
    from our table still gets its compute capability (and architecture) on this layer."""
    monkeypatch.delitem(_gpu_data.GPU_MODELS, 0x2330)
    root = _host(tmp_path)
    nvml_cc = (12, 0)  # not the table's H100 value: the figure must come from NVML
    lib = FakeNvml([dict(H100, cc=nvml_cc, arch=None)], missing={"nvmlDeviceGetArchitecture"})
    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=lambda: lib, smi_finder=lambda p: None)
    gpu = facts["gpus"][0]
    assert (gpu["compute_capability_major"], gpu["compute_capability_minor"]) == nvml_cc
    assert gpu["compute_capability"] == "%d.%d" % nvml_cc
    assert gpu["architecture"] == _gpu_data.family_from_compute_capability(*nvml_cc)
    assert "nvmlDeviceGetCudaComputeCapability" in lib.calls


# --- NVLink fabric state (nvml.h nvmlGpuFabricInfo_t / _v2_t) ---------------------------------

B200 = dict(H100, name=b"NVIDIA B200", bus_id=b"00000000:1B:00.0", pci_device_id=0x290110DE,
            pci_subsystem_id=0x199910DE, cc=(10, 0), arch=10, memory=192265846784)


class FabricNvml(FakeNvml):
    """A library with the fabric calls: each device's "fabric" is (state, status); V answers
    only a caller that set the v2 version, as NVML checks it."""

    def nvmlDeviceGetGpuFabricInfoV(self, handle, ref):
        info = _target(ref)
        if info.version != _gpu_health.NVML_GPU_FABRIC_INFO_V2:
            return 25   # NVML_ERROR_ARGUMENT_VERSION_MISMATCH
        info.state, info.status = self._dev(handle)["fabric"]
        return self._rc("nvmlDeviceGetGpuFabricInfoV")

    def nvmlDeviceGetGpuFabricInfo(self, handle, ref):
        info = _target(ref)
        assert isinstance(info, _gpu_health.NvmlGpuFabricInfo)
        info.state, info.status = self._dev(handle)["fabric"]
        return self._rc("nvmlDeviceGetGpuFabricInfo")


def test_fabric_struct_layouts():
    """nvmlGpuFabricInfo_t: clusterUuid[16], status, cliqueId, state (unsigned char); v2 adds
    version first and healthMask last; NVML_STRUCT_VERSION(GpuFabricInfo, 2) = sizeof | 2 << 24."""
    v1 = dict((name, getattr(_gpu_health.NvmlGpuFabricInfo, name).offset)
              for name, _unused in _gpu_health.NvmlGpuFabricInfo._fields_)
    assert v1 == {"clusterUuid": 0, "status": 16, "cliqueId": 20, "state": 24}
    v2 = dict((name, getattr(_gpu_health.NvmlGpuFabricInfoV2, name).offset)
              for name, _unused in _gpu_health.NvmlGpuFabricInfoV2._fields_)
    assert v2 == {"version": 0, "clusterUuid": 4, "status": 20, "cliqueId": 24, "state": 28, "healthMask": 32}
    assert ctypes.sizeof(_gpu_health.NvmlGpuFabricInfoV2) == 36
    assert _gpu_health.NVML_GPU_FABRIC_INFO_V2 == 0x02000024


@pytest.mark.parametrize("fabric, expected", [
    ((3, 0), {"state": "Completed", "status": "Success"}),
    ((3, 999), {"state": "Completed", "status": "NVML error 999"}),
    ((2, 0), {"state": "In Progress", "status": None}),      # status counts only once completed (nvml.h)
    ((1, 0), {"state": "Not Started", "status": None}),
    ((0, 0), {"state": None, "status": None}),               # NOT_SUPPORTED: nvidia-smi's N/A
])
def test_fabric_state_through_nvml(fabric, expected):
    lib = FabricNvml([dict(B200, fabric=fabric)])
    _unused, gpus = _gpu_nvml.read_nvml(lib)
    assert gpus[0]["health"]["fabric"] == expected
    assert "nvmlDeviceGetGpuFabricInfoV" in lib.calls and "nvmlDeviceGetGpuFabricInfo" not in lib.calls


def test_fabric_state_of_an_older_library_and_of_none():
    lib = FabricNvml([dict(B200, fabric=(2, 0))], missing={"nvmlDeviceGetGpuFabricInfoV"})
    _unused, gpus = _gpu_nvml.read_nvml(lib)
    assert gpus[0]["health"]["fabric"] == {"state": "In Progress", "status": None}
    errors = {"nvmlDeviceGetGpuFabricInfoV": 3, "nvmlDeviceGetGpuFabricInfo": 3}
    lib = FabricNvml([dict(B200, fabric=(3, 0))], errors=errors)
    _unused, gpus = _gpu_nvml.read_nvml(lib)
    assert gpus[0]["health"]["fabric"] == {"state": None, "status": None}


def test_collect_nvlink5_host_through_nvml(tmp_path):
    """gpu_facts' default layer on the HGX B200 fixture: the fabric state per GPU from NVML,
    the switch trays from the PCI scan."""
    devices = [dict(B200, bus_id=("00000000:%s:00.0" % bus).encode(), uuid=b"GPU-b200-%d" % i,
                    fabric=(2, 0) if i == 7 else (3, 0))
               for i, bus in enumerate(["1B", "43", "52", "61", "9D", "C3", "D1", "DF"])]
    root = _host(tmp_path, "hgx-b200-nvlink5")
    facts = _gpu.collect(sysfs_root=root, proc_root=root, nvml_loader=lambda: FabricNvml(devices, driver=b"580.95.05"),
                         smi_finder=lambda path: None)
    assert facts["source"] == "nvml" and facts["count"] == 8
    assert [g["health"]["fabric"]["state"] for g in facts["gpus"]] == ["Completed"] * 7 + ["In Progress"]
    assert facts["nvlsm_needed"] is True and facts["nvlink5_switch_count"] == 4
