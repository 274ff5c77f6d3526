# SPDX-License-Identifier: Apache-2.0
"""gpu_facts module: main() against fake hosts, exact facts asserted."""

import importlib.util
import os
import signal
import time
from pathlib import Path

import pytest
from ansible.module_utils import basic
from ansible_collections.kubegpu.cluster.tests.unit.compat import patch_module_args

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu_nvml
from ansible_collections.kubegpu.cluster.plugins.modules import gpu_facts

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
_spec = importlib.util.spec_from_file_location("kubegpu_fakehost", FIXTURES / "fakehost.py")
fakehost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakehost)


class ExitJson(Exception):
    pass


class FailJson(Exception):
    pass


@pytest.fixture(autouse=True)
def module_exits(monkeypatch):
    def exit_json(self, **kwargs):
        raise ExitJson(kwargs)

    def fail_json(self, **kwargs):
        raise FailJson(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


@pytest.fixture(autouse=True)
def no_host_nvml(monkeypatch):
    """Never touch this machine's NVML (there may be one)."""

    def fail(name=_gpu_nvml.LIBRARY):
        raise _gpu_nvml.NvmlError("dlopen(%s)" % name, 12, "not in unit tests")

    monkeypatch.setattr(_gpu_nvml, "load_library", fail)


def run(args):
    with patch_module_args(args):
        with pytest.raises(ExitJson) as info:
            gpu_facts.main()
    return info.value.args[0]


def test_no_driver_host(tmp_path):
    root = fakehost.build(str(FIXTURES / "no-driver"), str(tmp_path))
    result = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(tmp_path / "none"),
                  "_ansible_check_mode": True})
    assert result["changed"] is False
    facts = result["ansible_facts"]["kubegpu_gpu"]
    assert facts == {
        "facts_version": 1,
        "present": True,
        "count": 3,
        "source": "sysfs",
        "gpus": [
            {
                "index": i,
                "name": name,
                "uuid": None,
                "pci_bus_id": bus,
                "pci_vendor_id": "10de",
                "pci_device_id": dev,
                "pci_subsystem_id": sub,
                "memory_mib": mem,
                "architecture": arch,
                "compute_capability": cc,
                "compute_capability_major": int(cc[0]),
                "compute_capability_minor": int(cc[2]),
                "mig_capable": mig,
                "mig_mode_current": None,
                "mig_mode_pending": None,
                "numa_node": numa,
                "kernel_driver": None,
                "minor_number": None,
                "persistence_mode": None,
                "health": None,     # the PCI bus tells nothing of a GPU's health
            }
            for i, (name, bus, dev, sub, mem, arch, cc, mig, numa) in enumerate([
                ("NVIDIA H100 PCIe", "0000:17:00.0", "2331", "10de:1626", 81920, "hopper", "9.0", True, 0),
                ("NVIDIA H100 PCIe", "0000:65:00.0", "2331", "10de:1626", 81920, "hopper", "9.0", True, 0),
                ("NVIDIA L4", "0000:ca:00.0", "27b8", "10de:16ca", 24576, "ada-lovelace", "8.9", False, 1),
            ])
        ],
        "models": ["NVIDIA H100 PCIe", "NVIDIA L4"],
        "heterogeneous": True,
        "architectures": ["ada-lovelace", "hopper"],
        "mig_capable": True,
        "mig_enabled": False,
        "vendors": ["NVIDIA"],
        "unsupported_gpus": [],
        "driver": {"loaded": False, "version": None, "branch": None, "flavour": None, "installed": False,
                   "install_hints": [], "library_mismatch": False},
        "cuda_driver_version": None,
        "nouveau_loaded": False,
        "nvswitch_count": 0,
        "nvswitches": [],
        "fabric_manager_needed": False,
        "nvlink_generation": None,
        "nvlink5_switch_count": 0,
        "nvlink5_switches": [],
        "nvlink5_kernel_modules_missing": [],
        "nvlsm_needed": False,
        "secure_boot": "enabled",
        "layers": [
            {"source": "nvml", "status": "skipped", "message": "nvidia kernel module not loaded"},
            {"source": "nvidia_smi", "status": "skipped", "message": "nvidia-smi not found at %s" % (tmp_path / "none")},
            {"source": "sysfs", "status": "ok", "message": None},
        ],
        "errors": [],
        "warnings": [],
    }


def test_h100_with_fake_nvidia_smi(tmp_path):
    """The nvidia-smi layer end to end: a real executable printing the real capture."""
    case = FIXTURES / "h100-80gb-hbm3-ubuntu2404"
    root = fakehost.build(str(case), str(tmp_path / "root"))
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\n[ \"$1 $2\" = \"-q -x\" ] || exit 2\ncat '%s'\n" % (case / "nvidia-smi-q-x.xml"))
    smi.chmod(0o755)
    result = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi),
                  "gather_subset": ["!all", "min"], "gather_timeout": 5})
    facts = result["ansible_facts"]["kubegpu_gpu"]
    assert facts["source"] == "nvidia_smi"
    assert facts["gpus"][0]["uuid"] == "GPU-e11c404d-6750-e350-11fd-766aebec6e70"
    assert facts["errors"] == ["nvml: dlopen(libnvidia-ml.so.1) failed: NVML_ERROR_LIBRARY_NOT_FOUND: not in unit tests"]
    assert facts["driver"]["version"] == "580.159.04"


def test_sources_option_restricts_layers(tmp_path):
    root = fakehost.build(str(FIXTURES / "h100-80gb-hbm3-ubuntu2404"), str(tmp_path))
    facts = run({"sysfs_root": root, "proc_root": root, "sources": ["sysfs"]})["ansible_facts"]["kubegpu_gpu"]
    assert facts["layers"] == [{"source": "sysfs", "status": "ok", "message": None}]
    assert facts["count"] == 1


def test_bad_source_is_rejected(tmp_path):
    with patch_module_args({"sources": ["dcgm"]}):
        with pytest.raises(FailJson) as info:
            gpu_facts.main()
    assert "dcgm" in info.value.args[0]["msg"]


def test_gather_timeout_bounds_a_hanging_nvidia_smi(tmp_path):
    """gather_timeout reaches the runner: a wrapper whose child hangs costs the timeout,
    not the child's lifetime, and the facts still come from the next layer."""
    root = fakehost.build(str(FIXTURES / "h100-80gb-hbm3-ubuntu2404"), str(tmp_path / "root"))
    pids = tmp_path / "pids"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nsleep 30 &\necho $! >> '%s'\nwait\n" % pids)
    smi.chmod(0o755)
    start = time.monotonic()
    try:
        result = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi), "gather_timeout": 1})
        elapsed = time.monotonic() - start
    finally:
        child = int(pids.read_text()) if pids.exists() else None
        if child is not None and os.path.exists("/proc/%d" % child) and " Z " not in open("/proc/%d/stat" % child).read():
            os.kill(child, signal.SIGKILL)  # the test's own process, left behind by a broken runner
    facts = result["ansible_facts"]["kubegpu_gpu"]
    assert elapsed < 2.5, elapsed
    assert facts["layers"][1] == {"source": "nvidia_smi", "status": "failed",
                                  "message": "%s -q -x timed out after 1s; its process group was killed" % smi}
    assert facts["source"] == "sysfs" and facts["count"] == 1


def _smi_script(tmp_path, case, listing):
    """An nvidia-smi printing the case's XML for -q -x and `listing` for -L; logs its calls."""
    log = tmp_path / "calls"
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho \"$*\" >> '%s'\n"
                   "case \"$1\" in -q) cat '%s' ;; -L) cat '%s' ;; *) exit 2 ;; esac\n"
                   % (log, case / "nvidia-smi-q-x.xml", listing))
    smi.chmod(0o755)
    return smi, log


def test_mig_devices_reported_when_mig_is_enabled(tmp_path):
    """MIG enabled: one more call, nvidia-smi -L, gives each GPU's MIG devices in the shape
    plugins/plugin_utils/_gpu_resources.py reads (dicts with profile)."""
    case = FIXTURES / "a100-mig-enabled"
    root = fakehost.build(str(case), str(tmp_path / "root"))
    smi, log = _smi_script(tmp_path, case, case / "nvidia-smi-L.txt")
    facts = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi)})["ansible_facts"]["kubegpu_gpu"]
    assert facts["mig_enabled"] is True
    assert facts["gpus"][0]["mig_devices"] == [
        {"profile": "3g.40gb", "uuid": "MIG-a1000000-0000-5000-8000-000000000002", "device": 0, "gi_id": None, "ci_id": None},
        {"profile": "2g.20gb", "uuid": "MIG-a1000000-0000-5000-8000-000000000003", "device": 1, "gi_id": None, "ci_id": None},
        {"profile": "1g.10gb", "uuid": "MIG-a1000000-0000-5000-8000-000000000009", "device": 2, "gi_id": None, "ci_id": None},
        {"profile": "1g.10gb", "uuid": "MIG-a1000000-0000-5000-8000-00000000000a", "device": 3, "gi_id": None, "ci_id": None},
    ]
    assert log.read_text().splitlines() == ["-q -x", "-L"]
    assert facts["warnings"] == []
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources
    expected = _gpu_resources.expected_resources(facts, mig_strategy="mixed")["resources"]
    assert expected["nvidia.com/mig-1g.10gb"] == {"count": 2, "exact": True}
    assert expected["nvidia.com/mig-3g.40gb"] == {"count": 1, "exact": True}


def test_no_extra_call_without_mig(tmp_path):
    """MIG disabled (the real H100 capture): no -L call, no mig_devices key."""
    case = FIXTURES / "h100-80gb-hbm3-ubuntu2404"
    root = fakehost.build(str(case), str(tmp_path / "root"))
    smi, log = _smi_script(tmp_path, case, FIXTURES / "mig" / "h100-nvl-L.txt")
    facts = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi)})["ansible_facts"]["kubegpu_gpu"]
    assert log.read_text().splitlines() == ["-q -x"]
    assert "mig_devices" not in facts["gpus"][0]


def test_mig_devices_unknown_when_listing_fails(tmp_path):
    """-L failing, or listing another GPU (matched by UUID): mig_devices null, a warning."""
    case = FIXTURES / "a100-mig-enabled"
    root = fakehost.build(str(case), str(tmp_path / "root"))
    smi, _log = _smi_script(tmp_path, case, tmp_path / "missing-file")
    facts = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi)})["ansible_facts"]["kubegpu_gpu"]
    assert facts["gpus"][0]["mig_devices"] is None
    assert facts["warnings"] == ["%s -L exited 1; the MIG devices are not reported" % smi]
    smi, _log = _smi_script(tmp_path, case, FIXTURES / "mig" / "h100-nvl-L.txt")
    facts = run({"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi)})["ansible_facts"]["kubegpu_gpu"]
    assert facts["gpus"][0]["mig_devices"] is None
    assert facts["warnings"] == ["%s -L did not list GPU(s) 0; their MIG devices are not reported" % smi]
