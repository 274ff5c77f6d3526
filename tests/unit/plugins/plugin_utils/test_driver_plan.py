# SPDX-License-Identifier: Apache-2.0
"""Driver plan: branch and flavour choice, refusals and their messages, satisfied check."""

import json
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._driver_plan import (
    DriverPlanError, after_reboot_problem, loaded_check, parse_branch, plan, reboot_decision, upgrade_problem)

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
H100_FACTS = json.loads((FIXTURES / "h100-device-nvml" / "facts-nvml.json").read_text())

MODELS = {
    "K80": ("Tesla K80", "kepler", "102d"),
    "P100": ("Tesla P100-PCIE-16GB", "pascal", "15f8"),
    "V100": ("Tesla V100-PCIE-16GB", "volta", "1db4"),
    "T4": ("Tesla T4", "turing", "1eb8"),
    "A100": ("NVIDIA A100-SXM4-80GB", "ampere", "20b2"),
    "L40S": ("NVIDIA L40S", "ada-lovelace", "26b9"),
    "H100": ("NVIDIA H100 80GB HBM3", "hopper", "2330"),
    "GH200": ("NVIDIA GH200 480GB", "hopper", "2342"),
    "B200": ("NVIDIA B200", "blackwell", "2901"),
    "PRO6000": ("NVIDIA RTX PRO 6000 Blackwell Server Edition", "blackwell", "2bb5"),
}


def host(*models, version=None, flavour=None, nvswitch=0, cuda=None):
    gpus = []
    for i, key in enumerate(models):
        name, arch, dev = MODELS[key]
        gpus.append({"index": i, "name": name, "architecture": arch, "pci_device_id": dev,
                     "pci_bus_id": "0000:%02x:00.0" % (0x10 + i)})
    return {
        "gpus": gpus,
        "count": len(gpus),
        "driver": {"loaded": version is not None, "version": version, "flavour": flavour},
        "nvswitch_count": nvswitch,
        "fabric_manager_needed": bool(nvswitch and gpus),
        "cuda_driver_version": cuda,
    }


@pytest.mark.parametrize(
    "models, branch, flavour",
    [
        (("H100",), "580", "open"),
        (("T4",), "580", "open"),
        (("A100", "L40S"), "580", "open"),
        (("V100",), "580", "proprietary"),
        (("P100",), "580", "proprietary"),
        (("V100", "T4"), "580", "proprietary"),  # mixed: pre-Turing forces proprietary
        (("K80",), "470", "proprietary"),
        (("B200",), "580", "open"),
        (("PRO6000",), "580", "open"),
        (("GH200",), "580", "open"),
    ],
)
def test_auto_plan(models, branch, flavour):
    result = plan(host(*models))
    assert (result["branch"], result["flavour"]) == (branch, flavour)
    assert result["branch_source"] == result["flavour_source"] == "auto"
    assert result["needed"] is True


def test_kepler_auto_warns_eol():
    result = plan(host("K80"))
    assert result["support"] == "eol"
    assert result["cuda_max"] == "11.4"
    assert "branch 470 chosen because GPU 0 Tesla K80 (kepler, 0000:10:00.0)" in result["warnings"][0]


@pytest.mark.parametrize(
    "models, branch, flavour, message",
    [
        (("K80",), "580", "auto",
         "nvidia_driver_branch=580 cannot drive GPU 0 Tesla K80 (kepler, 0000:10:00.0): the last branch for kepler "
         "GPUs is R470. Set nvidia_driver_branch to 470 (or 'auto')."),
        (("V100",), "590", "auto",
         "nvidia_driver_branch=590 cannot drive GPU 0 Tesla V100-PCIE-16GB (volta, 0000:10:00.0): the last branch for "
         "volta GPUs is R580. Set nvidia_driver_branch to 580 (or 'auto')."),
        (("T4", "P100"), "595", "auto",
         "nvidia_driver_branch=595 cannot drive GPU 1 Tesla P100-PCIE-16GB (pascal, 0000:11:00.0): the last branch for "
         "pascal GPUs is R580. Set nvidia_driver_branch to 580 (or 'auto')."),
        (("B200",), "535", "auto",
         "nvidia_driver_branch=535 cannot drive GPU 0 NVIDIA B200 (blackwell, 0000:10:00.0): blackwell GPUs need "
         "branch R570 or newer. Set nvidia_driver_branch to 570 or newer (580 recommended) or 'auto'."),
        (("P100",), "auto", "open",
         "nvidia_driver_flavour=open cannot drive GPU 0 Tesla P100-PCIE-16GB (pascal, 0000:10:00.0): the open kernel "
         "modules need Turing or newer (GSP). Set nvidia_driver_flavour to proprietary (or 'auto')."),
        (("H100", "V100"), "580", "open",
         "nvidia_driver_flavour=open cannot drive GPU 1 Tesla V100-PCIE-16GB (volta, 0000:11:00.0): the open kernel "
         "modules need Turing or newer (GSP). Set nvidia_driver_flavour to proprietary (or 'auto')."),
        (("B200",), "580", "proprietary",
         "nvidia_driver_flavour=proprietary cannot drive GPU 0 NVIDIA B200 (blackwell, 0000:10:00.0): it needs the "
         "open kernel modules. Set nvidia_driver_flavour to open (or 'auto')."),
        (("GH200",), "580", "proprietary",
         "nvidia_driver_flavour=proprietary cannot drive GPU 0 NVIDIA GH200 480GB (hopper, 0000:10:00.0): it needs "
         "the open kernel modules. Set nvidia_driver_flavour to open (or 'auto')."),
        (("T4",), "470", "open",
         "nvidia_driver_flavour=open needs branch R515 or newer, but nvidia_driver_branch=470. Set "
         "nvidia_driver_branch to 580 or newer."),
        (("K80", "B200"), "auto", "auto",
         "no driver branch drives every GPU on this host: GPU 0 Tesla K80 (kepler, 0000:10:00.0) needs branch 470 or "
         "older, GPU 1 NVIDIA B200 (blackwell, 0000:11:00.0) needs 570 or newer. Put these GPUs in different hosts."),
        (("V100", "B200"), "auto", "auto",
         "no kernel-module flavour drives every GPU on this host: GPU 1 NVIDIA B200 (blackwell, 0000:11:00.0) needs "
         "the open modules, GPU 0 Tesla V100-PCIE-16GB (volta, 0000:10:00.0) only runs with the proprietary modules. "
         "Put these GPUs in different hosts."),
        (("H100",), "latest", "auto",
         "nvidia_driver_branch='latest' is not a driver branch: use 'auto', a branch such as 580, or a full version "
         "such as 580.95.05"),
        (("H100",), "580", "closed", "nvidia_driver_flavour='closed' is not one of auto, open, proprietary"),
    ],
)
def test_refusals(models, branch, flavour, message):
    with pytest.raises(DriverPlanError) as info:
        plan(host(*models), branch=branch, flavour=flavour)
    assert str(info.value) == message


# Branch floors per architecture: the first CUDA toolkit that supports the architecture
# (NVIDIA "CUDA Toolkit, Driver, and Architecture Matrix") and that toolkit's minimum
# Linux driver (CUDA toolkit release notes, "CUDA Toolkit and Corresponding Driver
# Versions"): Ampere CUDA 11.0 (>= 450.36.06), Ada and Hopper CUDA 11.8 (>= 520.61.05),
# Blackwell CUDA 12.8 (>= 570.26). See _gpu_data.FAMILY_DRIVER_SUPPORT.
@pytest.mark.parametrize(
    "model, branch, floor",
    [("H100", "470", 520), ("GH200", "515", 520), ("L40S", "470", 520), ("A100", "440", 450), ("B200", "565", 570)],
)
def test_branch_floors(model, branch, floor):
    name, arch, _dev = MODELS[model]
    with pytest.raises(DriverPlanError) as info:
        plan(host(model), branch=branch)
    assert str(info.value) == (
        "nvidia_driver_branch=%s cannot drive GPU 0 %s (%s, 0000:10:00.0): %s GPUs need branch R%d or newer. "
        "Set nvidia_driver_branch to %d or newer (580 recommended) or 'auto'." % (branch, name, arch, arch, floor, floor))
    # The floor itself is accepted.
    assert plan(host(model), branch=str(floor))["branch"] == str(floor)


def test_a_floor_and_a_ceiling_that_meet_nowhere():
    with pytest.raises(DriverPlanError, match="GPU 0 Tesla K80 .* needs branch 470 or older, GPU 1 NVIDIA H100 80GB HBM3"
                                              r" \(hopper, 0000:11:00.0\) needs 520 or newer"):
        plan(host("K80", "H100"))


@pytest.mark.parametrize(
    "models, branch, flavour, expected",
    [
        (("K80",), "470", "auto", ("470", "proprietary")),
        (("V100",), "580", "proprietary", ("580", "proprietary")),
        (("T4",), 535, "proprietary", ("535", "proprietary")),
        (("B200",), "R570", "auto", ("570", "open")),
        (("H100",), "580.95.05", "open", ("580", "open")),
        (("L40S",), "595", "auto", ("595", "open")),
    ],
)
def test_accepted_requests(models, branch, flavour, expected):
    result = plan(host(*models), branch=branch, flavour=flavour)
    assert (result["branch"], result["flavour"]) == expected
    assert result["branch_source"] == "requested"


def test_unknown_branch_warns():
    result = plan(host("L40S"), branch="595")
    assert result["support"] == "unknown" and result["cuda_max"] is None
    assert result["warnings"] == ["branch R595 is not in our table; its CUDA version and support window are unknown"]


def test_eol_requested_branch_warns():
    assert plan(host("T4"), branch="550")["warnings"] == [
        "branch R550 is end of life; R580 is the long-term support branch"
    ]


@pytest.mark.parametrize(
    "version, flavour, branch, satisfied, reason",
    [
        ("580.159.04", "open", "auto", True, "loaded driver 580.159.04 (open) matches R580/open"),
        (None, None, "auto", False, "no NVIDIA driver is loaded"),
        ("535.261.03", "open", "auto", False, "loaded driver 535.261.03 is not branch R580"),
        ("580.159.04", "proprietary", "auto", False,
         "loaded driver 580.159.04 uses the proprietary kernel modules, the plan wants open"),
        ("580.159.04", "open", "580.95.05", False, "loaded driver 580.159.04 is not the pinned version 580.95.05"),
        ("580.95.05", "open", "580.95.05", True, "loaded driver 580.95.05 (open) matches R580/open"),
    ],
)
def test_satisfied(version, flavour, branch, satisfied, reason):
    result = plan(host("H100", version=version, flavour=flavour, cuda="13.0"), branch=branch)
    assert (result["satisfied"], result["reason"]) == (satisfied, reason)


R580_OPEN = {"branch": "580", "version": None, "flavour": "open"}


@pytest.mark.parametrize("driver, plan_, expected", [
    ({"loaded": True, "version": "580.159.04", "flavour": "open"}, R580_OPEN, True),
    ({"loaded": True, "version": "580.159.04", "flavour": None}, R580_OPEN, True),    # flavour not read: accepted
    ({"loaded": False, "version": "580.159.04"}, R580_OPEN, False),
    ({"loaded": True, "version": "570.195.03", "flavour": "open"}, R580_OPEN, False),
    ({"loaded": True, "version": "580.159.04", "flavour": "open"}, dict(R580_OPEN, version="580.95.05"), False),
    ({"loaded": True, "version": "580.95.05", "flavour": "open"}, dict(R580_OPEN, version="580.95.05"), True),
    ({}, R580_OPEN, False),
    (None, R580_OPEN, False),
])
def test_loaded_check_is_the_test_planning_uses(driver, plan_, expected):
    satisfied, reason = loaded_check(driver, plan_)
    assert satisfied is expected, reason
    if driver and driver.get("version"):
        # plan() of a host with this driver loaded says the same for the same request.
        requested = plan_["version"] or "auto"
        facts = host("H100", version=driver["version"], flavour=driver.get("flavour"), cuda="13.0")
        facts["driver"]["loaded"] = bool(driver.get("loaded"))
        assert (plan(facts, branch=requested)["satisfied"], plan(facts, branch=requested)["reason"]) == (satisfied, reason)


LOADED_580 = {"driver": {"loaded": True, "version": "580.159.04", "flavour": "open"}}
NOT_LOADED = {"driver": {"loaded": False}, "warnings": ["nvidia.ko not loaded"]}


@pytest.mark.parametrize("facts, kwargs, loaded_ok, reboot_ok, says", [
    # Loaded: nothing to do, nothing to say.
    (LOADED_580, dict(was_loaded=False, in_container=False, check_mode=False, reboot_allowed=False,
                      reboot_on_upgrade=False), True, False, ""),
    # First install, reboots allowed: reboot.
    (NOT_LOADED, dict(was_loaded=False, in_container=False, check_mode=False, reboot_allowed=True,
                      reboot_on_upgrade=False), False, True, ""),
    # Upgrade (a driver was loaded before): needs reboot_on_upgrade too.
    (NOT_LOADED, dict(was_loaded=True, in_container=False, check_mode=False, reboot_allowed=True,
                      reboot_on_upgrade=False), False, False,
     "not allowed: set nvidia_driver_reboot_allowed and nvidia_driver_reboot_on_upgrade (a driver was loaded"),
    (NOT_LOADED, dict(was_loaded=True, in_container=False, check_mode=False, reboot_allowed=True,
                      reboot_on_upgrade=True), False, True, ""),
    (NOT_LOADED, dict(was_loaded=False, in_container=False, check_mode=False, reboot_allowed=False,
                      reboot_on_upgrade=True), False, False,
     "not allowed: set nvidia_driver_reboot_allowed or reboot the host yourself (drain it first)."),
    # A container never reboots; check mode never does.
    (NOT_LOADED, dict(was_loaded=False, in_container=True, check_mode=False, reboot_allowed=True,
                      reboot_on_upgrade=True, virtualization_type="docker"), False, False,
     "not possible here: this host is a container (docker)"),
    (NOT_LOADED, dict(was_loaded=False, in_container=False, check_mode=True, reboot_allowed=True,
                      reboot_on_upgrade=True), False, False, "check mode."),
])
def test_reboot_decision(facts, kwargs, loaded_ok, reboot_ok, says):
    decision = reboot_decision(facts, R580_OPEN, host="gpu1", **kwargs)
    assert decision["loaded_ok"] is loaded_ok
    assert decision["reboot_needed"] is (not loaded_ok)
    assert decision["reboot_ok"] is reboot_ok
    if says:
        assert decision["message"].startswith("gpu1: reboot required to load driver R580 open (no NVIDIA driver is loaded), ")
        assert says in decision["message"]
    else:
        assert decision["message"] == ""


def test_a_reboot_left_to_the_user_repeats_what_modprobe_said():
    refusal = "modprobe: ERROR: could not insert 'nvidia': Key was rejected by service"
    decision = reboot_decision(NOT_LOADED, R580_OPEN, was_loaded=False, in_container=False, check_mode=False,
                               reboot_allowed=False, reboot_on_upgrade=True, host="gpu1", load_error=refusal)
    assert decision["message"].endswith("(drain it first). modprobe said: " + refusal)
    # A reboot that happens says nothing here; after it, after_reboot_problem judges.
    assert reboot_decision(NOT_LOADED, R580_OPEN, was_loaded=False, in_container=False, check_mode=False,
                           reboot_allowed=True, reboot_on_upgrade=True, load_error=refusal)["message"] == ""


def test_after_reboot_problem_names_what_is_loaded_and_what_to_check():
    assert after_reboot_problem(LOADED_580, R580_OPEN, "gpu1") == ""
    message = after_reboot_problem({"driver": {"loaded": True, "version": "570.195.03", "flavour": "open",
                                               "install_hints": ["run dkms status"]}}, R580_OPEN, "gpu1")
    assert message.startswith("gpu1: after the reboot the NVIDIA driver is loaded at 570.195.03 (open), "
                              "the plan is R580 open (loaded driver 570.195.03 is not branch R580).")
    assert "hints: run dkms status" in message and "mokutil --sb-state" in message
    assert "is not loaded" in after_reboot_problem(NOT_LOADED, R580_OPEN, "gpu1")
    assert "Detection says: nvidia.ko not loaded" in after_reboot_problem(NOT_LOADED, R580_OPEN, "gpu1")


def test_real_h100_facts():
    result = plan(H100_FACTS)
    assert result == {
        "needed": True,
        "branch": "580",
        "version": None,
        "flavour": "open",
        "branch_source": "auto",
        "flavour_source": "auto",
        "support": "ltsb",
        "cuda_max": "13.0",
        "fabric_manager": False,
        "nvlsm": False,
        "architectures": ["hopper"],
        "satisfied": True,
        "reason": "loaded driver 580.159.04 (open) matches R580/open",
        "warnings": [],
    }


def test_nvswitch_needs_fabric_manager():
    assert plan(host("H100", "H100", nvswitch=4))["fabric_manager"] is True


def test_nvlink5_switch_trays_need_fabric_manager_and_nvlsm():
    """HGX B200: no NVIDIA class-0x0680 function, the switch trays behind InfiniBand functions
    (gpu_facts: fabric_manager_needed and nvlsm_needed)."""
    facts = dict(host(*["B200"] * 8), fabric_manager_needed=True, nvlsm_needed=True)
    result = plan(facts)
    assert (result["fabric_manager"], result["nvlsm"]) == (True, True)
    assert plan(host("H100", "H100", nvswitch=4))["nvlsm"] is False
    assert plan({"gpus": [], "count": 0})["nvlsm"] is False


def test_no_gpus():
    result = plan({"gpus": [], "count": 0})
    assert result["needed"] is False and result["satisfied"] is True and result["branch"] is None
    assert result["reason"] == "no NVIDIA GPU detected; no driver needed"


def test_unknown_architecture_assumed_supported():
    facts = host("H100")
    facts["gpus"][0]["architecture"] = None
    result = plan(facts)
    assert (result["branch"], result["flavour"]) == ("580", "open")
    assert "architecture unknown for GPU 0" in result["warnings"][0]


@pytest.mark.parametrize(
    "raw, parsed",
    [("auto", (None, None)), (None, (None, None)), ("", (None, None)), (580, (580, None)), ("R535", (535, None)),
     ("580.95.05", (580, "580.95.05"))],
)
def test_parse_branch(raw, parsed):
    assert parse_branch(raw) == parsed


@pytest.mark.parametrize("before, after, in_container, ok", [
    ({"count": 2}, {"count": 2, "driver": {"loaded": True, "version": "580.95.05"}}, False, True),
    ({"count": 2}, {"count": 1, "driver": {"loaded": True}}, False, False),
    ({"count": 2}, {"count": 2, "driver": {"loaded": False}}, False, False),
    # a container loads no module of its own: only the count is compared
    ({"count": 2}, {"count": 2, "driver": {"loaded": False}}, True, True),
    ({"count": 2}, {"count": 1, "driver": {"loaded": False}}, True, False),
    # pinned by the gpu group without detected GPUs: nothing to compare
    ({}, {"count": 0}, False, True),
    (None, None, False, True),
])
def test_upgrade_problem(before, after, in_container, ok):
    problem = upgrade_problem(before, after, in_container)
    assert (problem == "") is ok


def test_upgrade_problem_says_what_it_saw():
    problem = upgrade_problem({"count": 8}, {"count": 7, "driver": {"loaded": True, "version": "580.95.05"},
                                             "warnings": ["GPU 0000:1b:00.0 fell off the bus"]})
    assert problem == ("GPU facts after the upgrade: 7 GPU(s) (before: 8), driver loaded: True (580.95.05); "
                       "warnings: GPU 0000:1b:00.0 fell off the bus")
