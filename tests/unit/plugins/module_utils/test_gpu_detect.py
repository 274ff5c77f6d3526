# SPDX-License-Identifier: Apache-2.0
"""GPU detection: pure helpers and collect() against fake hosts (tests/fixtures/gpu)."""

import importlib.util
import json
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu, _gpu_data, _gpu_smi, _gpu_sysfs
from ansible_collections.kubegpu.cluster.plugins.module_utils._gpu_nvml import NvmlError

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
H100 = FIXTURES / "h100-80gb-hbm3-ubuntu2404"

_spec = importlib.util.spec_from_file_location("kubegpu_fakehost", FIXTURES / "fakehost.py")
fakehost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakehost)


def _no_nvml():
    raise NvmlError("dlopen(libnvidia-ml.so.1)", 12, "libnvidia-ml.so.1: cannot open shared object file")


def run_case(tmp_path, case, sources=None, smi=True, smi_path="/usr/bin/nvidia-smi", runner=None):
    """collect() on a fixture case: NVML absent, nvidia-smi fake (the case's XML)."""
    case_dir = FIXTURES / case
    root = fakehost.build(str(case_dir), str(tmp_path / "root"))
    xml = fakehost.smi_xml(str(case_dir))
    calls = []

    def fake_runner(argv, timeout):
        calls.append((argv, timeout))
        return (0, xml, "")

    kwargs = dict(
        sysfs_root=root,
        proc_root=root,
        nvml_loader=_no_nvml,
        smi_finder=lambda path: smi_path if smi else None,
        smi_runner=runner or fake_runner,
    )
    if sources is not None:
        kwargs["sources"] = sources
    facts = _gpu.collect(**kwargs)
    json.dumps(facts)  # facts must be JSON-serialisable
    return facts, calls


# --- pure helpers -----------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("00000000:00:06.0", "0000:00:06.0"),
        ("0000:0A:00.0", "0000:0a:00.0"),
        ("00000001:DB:00.1", "0001:db:00.1"),
        ("3b:00.0", "0000:3b:00.0"),
        (" 0000:c3:00.0\n", "0000:c3:00.0"),
        ("", None),
        (None, None),
    ],
)
def test_normalise_bus_id(raw, expected):
    assert _gpu_sysfs.normalise_bus_id(raw) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build  (nixbld@)\n",
            ("580.159.04", "open"),
        ),
        (
            "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed Jul 16 01:02:56 UTC 2025\n",
            ("535.261.03", "proprietary"),
        ),
        ("NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.86.15  Release Build\n", ("570.86.15", "open")),
        ("", (None, None)),
        ("garbage\n", (None, None)),
    ],
)
def test_parse_proc_version(text, expected):
    assert _gpu_sysfs.parse_proc_version(text) == expected


def test_parse_proc_version_real_capture():
    assert _gpu_sysfs.parse_proc_version((H100 / "proc-driver-nvidia.txt").read_text()) == ("580.159.04", "open")


@pytest.mark.parametrize(
    "cc, family",
    [
        ((3, 7), "kepler"),
        ((5, 2), "maxwell"),
        ((6, 0), "pascal"),
        ((6, 1), "pascal"),
        ((7, 0), "volta"),
        ((7, 2), "volta"),
        ((7, 5), "turing"),
        ((8, 0), "ampere"),
        ((8, 6), "ampere"),
        ((8, 7), "ampere"),
        ((8, 9), "ada-lovelace"),
        ((9, 0), "hopper"),
        ((10, 0), "blackwell"),
        ((12, 0), "blackwell"),
        ((13, 0), "rubin"),
        ((4, 0), None),
        ((None, None), None),
    ],
)
def test_family_from_compute_capability(cc, family):
    assert _gpu_data.family_from_compute_capability(*cc) == family


@pytest.mark.parametrize(
    "device, family",
    [
        (0x102D, "kepler"),
        (0x13F2, "maxwell"),
        (0x17FD, "maxwell"),
        (0x15F8, "pascal"),
        (0x1BB3, "pascal"),
        (0x1DB4, "volta"),
        (0x1EB8, "turing"),
        (0x2184, "turing"),
        (0x20B2, "ampere"),
        (0x2236, "ampere"),
        (0x25B6, "ampere"),
        (0x2330, "hopper"),
        (0x26B9, "ada-lovelace"),
        (0x27B8, "ada-lovelace"),
        (0x2901, "blackwell"),
        (0x2BB5, "blackwell"),
        (0x3182, "blackwell"),
        (0x0001, None),
    ],
)
def test_family_from_device_id(device, family):
    assert _gpu_data.family_from_device_id(device) == family


def test_model_table_is_consistent():
    """Every table entry: family agrees with its compute capability and with the id range."""
    for device, (name, family, cc, mem, mig) in _gpu_data.GPU_MODELS.items():
        major, minor = (int(p) for p in cc.split("."))
        assert _gpu_data.family_from_compute_capability(major, minor) == family, name
        assert _gpu_data.family_from_device_id(device) == family, name
        assert mem > 0 and isinstance(mig, bool)


@pytest.mark.parametrize(
    "ids, name",
    [
        ((0x25B6, 0x10DE, 0x14A9), "NVIDIA A16"),
        ((0x25B6, 0x10DE, 0x157E), "NVIDIA A2"),
        ((0x2330, 0x10DE, 0x16C1), "NVIDIA H100 80GB HBM3"),
        ((0x1EB8, None, None), "Tesla T4"),
    ],
)
def test_lookup_model(ids, name):
    assert _gpu_data.lookup_model(*ids)["name"] == name


def test_lookup_model_flags():
    assert _gpu_data.lookup_model(0x2342)["open_required"] is True  # GH200
    assert _gpu_data.lookup_model(0x2901)["open_required"] is True  # B200
    assert _gpu_data.lookup_model(0x2330)["open_required"] is False
    assert _gpu_data.lookup_model(0x9999) is None


@pytest.mark.parametrize(
    "text, expected",
    [("233010DE", (0x10DE, 0x2330)), ("0x16C110DE", (0x10DE, 0x16C1)), ("", (None, None)), ("zz", (None, None))],
)
def test_split_pci_id(text, expected):
    assert _gpu_smi._split_id(text) == expected


@pytest.mark.parametrize("text, mib", [("81559 MiB", 81559), ("80 GiB", 81920), ("2048 KiB", 2), (None, None), ("N/A", None)])
def test_mib(text, mib):
    assert _gpu_smi._mib(text) == mib


@pytest.mark.parametrize(
    "efi, value, state",
    [(False, None, "unsupported"), (True, None, "unknown"), (True, 1, "enabled"), (True, 0, "disabled"), (True, 7, "unknown")],
)
def test_secure_boot_state(tmp_path, efi, value, state):
    if efi:
        (tmp_path / "sys/firmware/efi/efivars").mkdir(parents=True)
    if value is not None:
        (tmp_path / _gpu_sysfs.SECURE_BOOT_VAR).write_bytes(b"\x06\x00\x00\x00" + bytes([value]))
    assert _gpu_sysfs.secure_boot_state(str(tmp_path)) == state


# --- nvidia-smi XML -----------------------------------------------------------


def test_parse_real_h100_xml():
    host, gpus = _gpu_smi.parse_smi_xml((H100 / "nvidia-smi-q-x.xml").read_text())
    assert host == {"driver_version": "580.159.04", "cuda_driver_version": "13.0", "attached_gpus": 1}
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
            "architecture": "hopper",
            "mig_capable": True,
            "mig_mode_current": "disabled",
            "mig_mode_pending": "disabled",
            "minor_number": 0,
            "persistence_mode": True,
            "health": {
                "ecc_mode": "enabled",
                "ecc": {"volatile": {"correctable": 0, "uncorrectable": 0},
                        "aggregate": {"correctable": 0, "uncorrectable": 0}},
                # R580 on an H100: page retirement is replaced by row remapping (N/A).
                "retired_pages": {"single_bit": None, "double_bit": None, "pending": None},
                "remapped_rows": {"correctable": 0, "uncorrectable": 0, "pending": False, "failure": False},
                "throttle_reasons": [],
                "persistence_mode": True,
                "fabric": {"state": None, "status": None},
                "source": "nvidia_smi",
            },
        }
    ]


@pytest.mark.parametrize("text", ["", "<html/>", "<nvidia_smi_log><gpu>"])
def test_parse_bad_xml(text):
    with pytest.raises(_gpu_smi.SmiError):
        _gpu_smi.parse_smi_xml(text)


def test_smi_query_nonzero_exit():
    def runner(argv, timeout):
        return 9, "", "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"

    with pytest.raises(_gpu_smi.SmiError, match="exited 9: NVIDIA-SMI has failed"):
        _gpu_smi.query("/usr/bin/nvidia-smi", runner=runner)


# --- collect() on fixture hosts -------------------------------------------------


def test_h100_capture_via_nvidia_smi_matches_real_nvml(tmp_path):
    facts, calls = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404")
    assert calls == [(["/usr/bin/nvidia-smi", "-q", "-x"], 10)]
    assert facts["source"] == "nvidia_smi"
    assert facts["errors"] == ["nvml: dlopen(libnvidia-ml.so.1) failed: NVML_ERROR_LIBRARY_NOT_FOUND: "
                               "libnvidia-ml.so.1: cannot open shared object file"]
    assert [layer["status"] for layer in facts["layers"]] == ["failed", "ok"]
    nvml = json.loads((FIXTURES / "h100-device-nvml" / "facts-nvml.json").read_text())
    # Same GPU model on another VM: everything but the UUID agrees with real NVML output.
    ours, theirs = dict(facts["gpus"][0]), dict(nvml["gpus"][0])
    assert ours.pop("uuid") == "GPU-e11c404d-6750-e350-11fd-766aebec6e70"
    theirs.pop("uuid")
    # The device capture predates the health fields (tested on the XML above).
    assert ours.pop("health")["source"] == "nvidia_smi" and "health" not in theirs
    assert ours == theirs
    assert facts["driver"].pop("library_mismatch") is False
    for key in ("count", "models", "architectures", "mig_capable", "driver", "cuda_driver_version",
                "nvswitch_count", "fabric_manager_needed", "secure_boot", "vendors", "unsupported_gpus"):
        assert facts[key] == nvml[key], key


def test_h100_capture_sysfs_only(tmp_path):
    facts, _unused = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", sources=["sysfs"])
    gpu = facts["gpus"][0]
    assert facts["source"] == "sysfs"
    assert gpu["name"] == "NVIDIA H100 80GB HBM3"
    assert gpu["uuid"] is None
    assert gpu["memory_mib"] == 80 * 1024  # nominal, from the table
    assert gpu["compute_capability"] == "9.0"
    assert gpu["kernel_driver"] == "nvidia"
    assert gpu["mig_capable"] is True and gpu["mig_mode_current"] is None
    assert facts["driver"]["version"] == "580.159.04" and facts["driver"]["flavour"] == "open"
    assert facts["cuda_driver_version"] is None


def test_hgx_h100_nvswitch(tmp_path):
    facts, _unused = run_case(tmp_path, "hgx-h100-8gpu-nvswitch")
    assert facts["count"] == 8
    assert facts["source"] == "nvidia_smi"
    assert [g["pci_bus_id"] for g in facts["gpus"]][:2] == ["0000:18:00.0", "0000:2a:00.0"]
    assert [g["numa_node"] for g in facts["gpus"]] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [g["index"] for g in facts["gpus"]] == list(range(8))
    assert facts["nvswitch_count"] == 4
    assert facts["nvswitches"][0] == {
        "pci_bus_id": "0000:05:00.0",
        "pci_device_id": "22a3",
        "name": "H100 NVSwitch",
        "kernel_driver": "nvidia-nvswitch",
    }
    assert facts["fabric_manager_needed"] is True
    assert facts["vendors"] == ["NVIDIA"]  # the ASPEED BMC VGA is not a GPU
    assert facts["unsupported_gpus"] == []
    assert facts["secure_boot"] == "disabled"
    assert facts["driver"] == {
        "loaded": True,
        "version": "580.95.05",
        "branch": "580",
        "flavour": "open",
        "installed": True,
        "install_hints": [],
        "library_mismatch": False,
    }
    assert facts["heterogeneous"] is False and facts["models"] == ["NVIDIA H100 80GB HBM3"]


def test_a100_mig_enabled(tmp_path):
    facts, _unused = run_case(tmp_path, "a100-mig-enabled")
    gpu = facts["gpus"][0]
    assert (gpu["mig_capable"], gpu["mig_mode_current"], gpu["mig_mode_pending"]) == (True, "enabled", "enabled")
    assert facts["mig_enabled"] is True
    assert gpu["compute_capability"] == "8.0" and gpu["architecture"] == "ampere"
    assert facts["driver"]["flavour"] == "proprietary"
    assert facts["cuda_driver_version"] == "12.2"
    assert facts["secure_boot"] == "enabled"


def test_mixed_v100_t4(tmp_path):
    facts, _unused = run_case(tmp_path, "mixed-v100-t4")
    assert [(g["name"], g["architecture"], g["compute_capability"], g["mig_capable"]) for g in facts["gpus"]] == [
        ("Tesla V100-PCIE-16GB", "volta", "7.0", False),
        ("Tesla T4", "turing", "7.5", False),
    ]
    assert facts["heterogeneous"] is True
    assert facts["architectures"] == ["volta", "turing"]
    assert [g["persistence_mode"] for g in facts["gpus"]] == [False, False]


def test_no_driver(tmp_path):
    facts, calls = run_case(tmp_path, "no-driver", smi=False)
    assert calls == []
    assert facts["source"] == "sysfs"
    assert facts["count"] == 3
    assert [g["name"] for g in facts["gpus"]] == ["NVIDIA H100 PCIe", "NVIDIA H100 PCIe", "NVIDIA L4"]
    assert [g["kernel_driver"] for g in facts["gpus"]] == [None, None, None]
    assert facts["driver"] == {
        "loaded": False,
        "version": None,
        "branch": None,
        "flavour": None,
        "installed": False,
        "install_hints": [],
        "library_mismatch": False,
    }
    assert [layer["status"] for layer in facts["layers"]] == ["skipped", "skipped", "ok"]
    assert facts["errors"] == [] and facts["warnings"] == []
    assert facts["secure_boot"] == "enabled"
    assert facts["architectures"] == ["ada-lovelace", "hopper"]


def test_nouveau_bound(tmp_path):
    facts, _unused = run_case(tmp_path, "nouveau-bound", smi=False)
    assert facts["nouveau_loaded"] is True
    assert facts["gpus"][0]["kernel_driver"] == "nouveau"
    assert facts["gpus"][0]["name"] == "Tesla T4"
    assert any("nouveau is loaded" in w for w in facts["warnings"])


def test_installed_not_loaded(tmp_path):
    root = tmp_path / "root"
    facts, _unused = run_case(tmp_path, "installed-not-loaded", smi=True, smi_path=str(root / "usr/bin/nvidia-smi"))
    driver = facts["driver"]
    assert driver["loaded"] is False and driver["installed"] is True
    assert driver["install_hints"] == [
        "nvidia-smi at %s" % (root / "usr/bin/nvidia-smi"),
        "kernel module /lib/modules/6.8.0-45-generic/updates/dkms/nvidia.ko.zst",
    ]
    assert facts["source"] == "sysfs"
    assert facts["gpus"][0]["name"] == "NVIDIA L40S"
    assert any("looks installed" in w and "not loaded" in w for w in facts["warnings"])


def test_nvidia_smi_missing_with_driver_loaded(tmp_path):
    facts, calls = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", smi=False)
    assert calls == []
    assert facts["source"] == "sysfs"
    assert facts["count"] == 1
    assert facts["errors"][1] == "nvidia_smi: nvidia-smi not found (PATH, /usr/bin)"
    assert [layer["status"] for layer in facts["layers"]] == ["failed", "failed", "ok"]


def test_nvidia_smi_fails_falls_through(tmp_path):
    def broken(argv, timeout):
        return 255, "", "Failed to initialize NVML: Driver/library version mismatch\n"

    facts, _unused = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", runner=broken)
    assert facts["source"] == "sysfs"
    assert facts["errors"][1] == (
        "nvidia_smi: /usr/bin/nvidia-smi -q -x exited 255: Failed to initialize NVML: Driver/library version mismatch"
    )


def test_nvidia_smi_runner_crash_never_raises(tmp_path):
    def crash(argv, timeout):
        raise RuntimeError("boom")

    facts, _unused = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", runner=crash)
    assert facts["source"] == "sysfs"
    assert facts["errors"][-1] == "nvidia_smi: boom"


def test_amd_gpu_seen_not_counted(tmp_path):
    facts, _unused = run_case(tmp_path, "amd-gpu", smi=False)
    assert facts["count"] == 0 and facts["present"] is False
    assert facts["vendors"] == ["Intel", "AMD"]
    assert facts["unsupported_gpus"] == [
        {"vendor": "Intel", "pci_bus_id": "0000:00:02.0", "pci_vendor_id": "8086", "pci_device_id": "a780", "kernel_driver": "i915"},
        {"vendor": "AMD", "pci_bus_id": "0000:c3:00.0", "pci_vendor_id": "1002", "pci_device_id": "740f", "kernel_driver": "amdgpu"},
    ]
    assert facts["fabric_manager_needed"] is False


def test_pci_ids_fallback(tmp_path):
    facts, _unused = run_case(tmp_path, "pciids-fallback", smi=False)
    by_id = dict((g["pci_device_id"], g) for g in facts["gpus"])
    assert by_id["2bb9"]["name"] == "NVIDIA RTX 6000D"
    assert by_id["2bb9"]["architecture"] == "blackwell"  # from the id range
    assert by_id["2bb9"]["compute_capability"] is None and by_id["2bb9"]["memory_mib"] is None
    assert by_id["1023"]["name"] == "NVIDIA Tesla K40m"
    assert by_id["1023"]["architecture"] == "kepler"
    # 2c3a only appears under another vendor in the excerpt: not named from it.
    assert by_id["2c3a"]["name"] == "NVIDIA device 2c3a"
    assert by_id["2c3a"]["architecture"] == "blackwell"


def test_empty_host(tmp_path):
    facts = _gpu.collect(sysfs_root=str(tmp_path), proc_root=str(tmp_path), nvml_loader=_no_nvml,
                         smi_finder=lambda path: None)
    assert facts["count"] == 0 and facts["gpus"] == [] and facts["source"] == "sysfs"
    assert facts["secure_boot"] == "unsupported"
    assert facts["nouveau_loaded"] is False


def test_sources_order_and_unknown(tmp_path):
    facts, _unused = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", sources=["bogus", "nvidia_smi"])
    assert facts["source"] == "nvidia_smi"
    assert facts["errors"] == ["bogus: unknown source"]


def test_no_layer_answers(tmp_path):
    facts, _unused = run_case(tmp_path, "h100-80gb-hbm3-ubuntu2404", sources=["nvml"])
    assert facts["source"] == "none" and facts["count"] == 0
    assert facts["warnings"] == ["no layer answered; 1 NVIDIA GPU(s) on the PCI bus are not reported"]


def test_driver_sees_fewer_gpus_than_the_bus(tmp_path):
    case_dir = FIXTURES / "hgx-h100-8gpu-nvswitch"
    xml = fakehost.smi_xml(str(case_dir))
    head, _unused, rest = xml.partition("\t<gpu ")
    one_gpu = head + "\t<gpu " + rest.split("\t</gpu>\n", 1)[0] + "\t</gpu>\n</nvidia_smi_log>\n"
    facts, _unused = run_case(tmp_path, "hgx-h100-8gpu-nvswitch", runner=lambda argv, timeout: (0, one_gpu, ""))
    assert facts["count"] == 1
    assert facts["warnings"][0].startswith("nvidia_smi reports 1 GPU(s) but the PCI bus has 8 NVIDIA GPU(s)")


# --- NVLink5 switch trays (HGX B200/B300) ----------------------------------------------------

B200_CASE = "hgx-b200-nvlink5"


def test_hgx_b200_nvlink5_switch_trays(tmp_path):
    """No NVIDIA class-0x0680 function: the four switch-tray functions are found by the SW_MNG
    marker in their VPD; the two ConnectX-7 NICs of the same PCI id are not switches."""
    facts, _unused = run_case(tmp_path, B200_CASE)
    assert facts["count"] == 8 and facts["models"] == ["NVIDIA B200"] and facts["architectures"] == ["blackwell"]
    assert facts["nvswitch_count"] == 0 and facts["nvswitches"] == []
    assert facts["nvlink5_switch_count"] == 4
    assert [s["pci_bus_id"] for s in facts["nvlink5_switches"]] == [
        "0000:0f:00.0", "0000:0f:00.1", "0000:8f:00.0", "0000:8f:00.1"]
    assert facts["nvlink5_switches"][0] == {"pci_bus_id": "0000:0f:00.0", "pci_vendor_id": "15b3",
                                            "pci_device_id": "1021", "kernel_driver": "mlx5_core",
                                            "numa_node": 0, "infiniband_devices": ["mlx5_0"]}
    assert facts["nvlink_generation"] == 5
    assert facts["fabric_manager_needed"] is True and facts["nvlsm_needed"] is True
    assert facts["nvlink5_kernel_modules_missing"] == [] and facts["warnings"] == []
    assert {g["health"]["fabric"]["state"] for g in facts["gpus"]} == {"Completed"}
    assert {g["health"]["fabric"]["status"] for g in facts["gpus"]} == {"Success"}


def test_fabric_excerpt_agrees_with_the_xml_fixture():
    """The documented `nvidia-smi -q` Fabric lines (README.md) and the XML the tests parse say the same."""
    text = (FIXTURES / B200_CASE / "nvidia-smi-q-fabric.txt").read_text()
    lines = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    documented = {key.strip(): value.strip() for key, value in lines.items()}
    assert documented == {"State": "Completed", "Status": "Success"}


def test_nvlink5_fabric_in_progress(tmp_path):
    xml = (FIXTURES / B200_CASE / "nvidia-smi-q-x-in-progress.xml").read_text()
    facts, _unused = run_case(tmp_path, B200_CASE, runner=lambda argv, timeout: (0, xml, ""))
    fabric = [(g["index"], g["health"]["fabric"]["state"], g["health"]["fabric"]["status"]) for g in facts["gpus"]]
    assert fabric[5:] == [(5, "Completed", "Success"), (6, "In Progress", None), (7, "In Progress", None)]


def test_nvlink5_without_the_infiniband_modules_warns(tmp_path):
    """NVIDIA/gpu-operator#2781: mlx5_ib / ib_umad not loaded, the fabric never completes."""
    case_dir = FIXTURES / B200_CASE
    root = Path(fakehost.build(str(case_dir), str(tmp_path / "root")))
    (root / "sys" / "module" / "ib_umad").rmdir()
    (root / "proc" / "modules").write_text("nvidia 1 0 - Live 0x0\nmlx5_core 1 0 - Live 0x0\nmlx5_ib 1 0 - Live 0x0\n")
    facts = _gpu.collect(sysfs_root=str(root), proc_root=str(root), nvml_loader=_no_nvml,
                         smi_finder=lambda path: None)
    assert facts["source"] == "sysfs" and facts["nvlsm_needed"] is True
    assert facts["nvlink5_kernel_modules_missing"] == ["ib_umad"]
    assert facts["warnings"] == [
        "NVLink5 switch trays (0000:0f:00.0, 0000:0f:00.1, 0000:8f:00.0, 0000:8f:00.1) but kernel module(s) ib_umad"
        " not loaded: the fabric manager and NVLSM cannot reach them and the GPUs' fabric stays In Progress"
        " (modprobe ib_umad; stage 3 loads them)"]


def test_nvlink5_vpd_unreadable_and_virtual_functions(tmp_path):
    """A VPD that cannot be read (not root) makes the answer incomplete, and says so; an
    SR-IOV virtual function (physfn) is never a switch tray, whatever its VPD says."""
    root = Path(fakehost.build(str(FIXTURES / B200_CASE), str(tmp_path / "root")))
    devices = root / "sys" / "bus" / "pci" / "devices"
    for bus in ("0000:0f:00.0", "0000:0f:00.1", "0000:8f:00.0"):
        (devices / bus / "vpd").unlink()
        (devices / bus / "vpd").mkdir()          # open() fails as on a vpd only root may read
    (devices / "0000:8f:00.1" / "physfn").symlink_to(devices / "0000:8f:00.0")
    found = _gpu_sysfs.scan_nvlink5_switches(str(root))
    assert found == {"switches": [], "unreadable": ["0000:0f:00.0", "0000:0f:00.1", "0000:8f:00.0"]}
    facts = _gpu.collect(sources=["sysfs"], sysfs_root=str(root), proc_root=str(root))
    assert facts["nvlsm_needed"] is False and facts["fabric_manager_needed"] is False
    assert facts["warnings"] == ["could not read the VPD of InfiniBand function(s) 0000:0f:00.0, 0000:0f:00.1,"
                                 " 0000:8f:00.0 (gather facts as root): NVLink5 switch trays there would not be seen"]


def test_nvlink_generation_of_nvswitch_systems(tmp_path):
    facts, _unused = run_case(tmp_path, "hgx-h100-8gpu-nvswitch")
    assert facts["nvlink_generation"] == 4
    assert (facts["nvlink5_switch_count"], facts["nvlsm_needed"], facts["fabric_manager_needed"]) == (0, False, True)
    facts, _unused = run_case(tmp_path / "h100", "h100-80gb-hbm3-ubuntu2404")
    assert (facts["nvlink_generation"], facts["fabric_manager_needed"], facts["nvlsm_needed"]) == (None, False, False)
