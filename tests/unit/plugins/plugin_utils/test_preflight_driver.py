# SPDX-License-Identifier: Apache-2.0
"""Stage 3's driver decision made in stage 1 (plugins/plugin_utils/_preflight_driver.py), on GPU
facts gathered from the fixture hosts (tests/fixtures/gpu, tests/fixtures/preflight/gpu) by
gpu_facts' own sysfs layer - and checked against roles/nvidia_driver/tasks/plan.yml itself."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.module_utils import _gpu
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver as pd
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps
from ansible_collections.kubegpu.cluster.tests.unit.compat import load_trusted, trust_as_template

ROOT = Path(__file__).resolve().parents[4]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(FIXTURES / "gpu"))
import fakehost  # noqa: E402

DEBIAN_12 = {"os_family": "Debian", "distribution": "Debian", "distribution_version": "12.7",
             "distribution_major_version": "12", "kernel": "6.1.0-26-amd64", "architecture": "x86_64"}
UBUNTU_24 = {"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "24.04",
             "distribution_major_version": "24", "kernel": "6.8.0-45-generic", "architecture": "x86_64"}


@pytest.fixture(scope="module")
def facts(tmp_path_factory):
    cache = {}

    def gather(fixture):
        if fixture not in cache:
            root = tmp_path_factory.mktemp("gpu")
            fakehost.build(str(FIXTURES / fixture), str(root))
            cache[fixture] = _gpu.collect(sources=["sysfs"], sysfs_root=str(root), proc_root=str(root))
        return cache[fixture]
    return gather


def settings(**values):
    result = ps.settings({}, pd.SETTINGS, str(ROOT))
    result.update(values)
    return result


def lines(found):
    problems, _warnings = found
    return format_problems(problems, "gpu1")


def test_a_host_without_gpus_that_is_no_gpu_node_is_left_alone(facts):
    assert pd.driver_problems(facts("gpu/amd-gpu"), DEBIAN_12, settings(), gpu_node=False) == ([], [])


def test_a_pinned_gpu_node_without_a_gpu_is_refused(facts):
    [line] = lines(pd.driver_problems(facts("gpu/amd-gpu"), DEBIAN_12, settings(), gpu_node=True, in_gpu_group=True))
    assert line.startswith("host gpu1: variable kubegpu_gpu_group: in group gpu (a GPU node), but no NVIDIA GPU was"
                           " detected on it in this run")
    assert "fix: take the host out of group gpu if it has no GPU" in line
    [line] = lines(pd.driver_problems(facts("gpu/amd-gpu"), DEBIAN_12, settings(), gpu_node="true"))
    assert line.startswith("host gpu1: variable kubegpu_gpu_node: kubegpu_gpu_node is true, but no NVIDIA GPU")
    assert "fix: remove kubegpu_gpu_node if it has no GPU" in line


def test_a_loaded_driver_that_satisfies_the_plan_needs_nothing(facts):
    assert pd.driver_problems(facts("gpu/h100-80gb-hbm3-ubuntu2404"), DEBIAN_12, settings(), gpu_node=True) == ([], [])
    # Even on an NVSwitch system with the Debian source: stage 3 selects no package there.
    assert pd.driver_problems(facts("gpu/hgx-h100-8gpu-nvswitch"), DEBIAN_12, settings(), gpu_node=True) == ([], [])


def test_debian_gives_a_hopper_host_its_535(facts):
    assert pd.driver_problems(facts("preflight/gpu/h100-no-secure-boot"), DEBIAN_12, settings(), gpu_node=True) \
        == ([], [])


def test_a_branch_debian_does_not_ship(facts):
    found = pd.driver_problems(facts("preflight/gpu/h100-no-secure-boot"), DEBIAN_12,
                               settings(nvidia_driver_branch=550), gpu_node=True)
    [line] = lines(found)
    assert line.startswith("host gpu1: variable nvidia_driver_branch: Debian 12 (bookworm) non-free ships driver"
                           " branch R535 only, the plan wants R550; fix: set nvidia_driver_branch: 535 on this host")
    assert found[1] == ["branch R550 is end of life; R580 is the long-term support branch"]


@pytest.mark.parametrize("os_facts, source", [(UBUNTU_24, None), (UBUNTU_24, "cuda"), (DEBIAN_12, "cuda"),
                                              (DEBIAN_12, None)])
def test_a_branch_too_old_for_hopper(facts, os_facts, source):
    """Hopper's floor (R520, the driver of CUDA 11.8, the first toolkit for Hopper) is refused on every
    source, before the source's own packages are looked at (Debian's 535 included)."""
    overrides = {"nvidia_driver_branch": 470}
    if source:
        overrides["nvidia_driver_source"] = source
    [line] = lines(pd.driver_problems(facts("preflight/gpu/h100-no-secure-boot"), os_facts, settings(**overrides),
                                      gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_branch: nvidia_driver_branch=470 cannot drive GPU 0 NVIDIA H100"
                    " PCIe (hopper, 0000:17:00.0): hopper GPUs need branch R520 or newer; fix: set"
                    " nvidia_driver_branch to 520 or newer (580 recommended) or 'auto'")


def test_a_branch_too_old_for_blackwell(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/b200-no-driver"), UBUNTU_24,
                                      settings(nvidia_driver_branch="550"), gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_branch: nvidia_driver_branch=550 cannot drive GPU 0 NVIDIA B200"
                    " (blackwell, 0000:17:00.0): blackwell GPUs need branch R570 or newer; fix: set nvidia_driver_branch"
                    " to 570 or newer (580 recommended) or 'auto'")


def test_the_debian_branch_is_too_old_for_blackwell(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/b200-no-driver"), DEBIAN_12, settings(), gpu_node=True))
    assert line.startswith("host gpu1: variable nvidia_driver_source: nvidia_driver_branch=535 cannot drive GPU 0"
                           " NVIDIA B200")
    assert "(Debian 12 (bookworm) non-free ships branch 535 only); fix: set nvidia_driver_source: cuda" in line
    assert pd.driver_problems(facts("preflight/gpu/b200-no-driver"), DEBIAN_12, settings(nvidia_driver_source="cuda"),
                              gpu_node=True) == ([], [])


def test_a_branch_too_new_for_kepler(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/k80-no-driver"), UBUNTU_24,
                                      settings(nvidia_driver_branch="580"), gpu_node=True))
    assert "the last branch for kepler GPUs is R470; fix: set nvidia_driver_branch to 470 (or 'auto')" in line


def test_flavours(facts):
    [line] = lines(pd.driver_problems(facts("gpu/mixed-v100-t4"), UBUNTU_24, settings(nvidia_driver_flavour="open"),
                                      gpu_node=True))
    assert line.startswith("host gpu1: variable nvidia_driver_flavour: nvidia_driver_flavour=open cannot drive GPU 0"
                           " Tesla V100-PCIE-16GB")
    [line] = lines(pd.driver_problems(facts("preflight/gpu/b200-no-driver"), UBUNTU_24,
                                      settings(nvidia_driver_flavour="proprietary"), gpu_node=True))
    assert "fix: set nvidia_driver_flavour to open (or 'auto')" in line


def test_not_a_branch(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/h100-no-secure-boot"), UBUNTU_24,
                                      settings(nvidia_driver_branch="latest"), gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_branch: nvidia_driver_branch='latest' is not a driver branch;"
                    " fix: set nvidia_driver_branch to 'auto', a branch such as 580, or a full version such as"
                    " 580.95.05")


def test_a_source_for_another_os(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/h100-no-secure-boot"), DEBIAN_12,
                                      settings(nvidia_driver_source="ubuntu"), gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_source: nvidia_driver_source=ubuntu needs Ubuntu (this host runs"
                    " Debian); fix: set nvidia_driver_source to debian or cuda")


def test_nvswitch_without_a_fabric_manager_package(facts):
    [line] = lines(pd.driver_problems(facts("preflight/gpu/hgx-no-driver"), DEBIAN_12, settings(), gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_source: Debian does not package the NVIDIA fabric manager this"
                    " NVSwitch host needs; fix: set nvidia_driver_source: cuda (nvidia-fabricmanager-<branch> from"
                    " NVIDIA's CUDA repository)")
    assert pd.driver_problems(facts("preflight/gpu/hgx-no-driver"), DEBIAN_12, settings(nvidia_driver_source="cuda"),
                              gpu_node=True) == ([], [])


def _no_driver(found):
    """The same host before stage 3 installed a driver."""
    return dict(found, driver=dict(found["driver"], loaded=False, version=None, branch=None, flavour=None))


def test_nvlink5_host_needs_fabric_manager_and_nvlsm_packages(facts):
    """HGX B200 (tests/fixtures/gpu/hgx-b200-nvlink5): no NVIDIA NVSwitch function, the switch
    trays found behind InfiniBand functions; Debian and Canonical's archive cannot give it what
    it needs, NVIDIA's CUDA repository can."""
    b200 = _no_driver(facts("gpu/hgx-b200-nvlink5"))
    assert (b200["nvswitch_count"], b200["nvlink5_switch_count"]) == (0, 4)
    assert b200["fabric_manager_needed"] is True and b200["nvlsm_needed"] is True
    debian = settings(nvidia_driver_source="debian", nvidia_driver_branch=535)
    [line] = lines(pd.driver_problems(b200, DEBIAN_12, debian, gpu_node=True))
    assert line.startswith("host gpu1: variable nvidia_driver_branch: nvidia_driver_branch=535 cannot drive GPU 0"
                           " NVIDIA B200")     # Debian 12's only branch cannot drive Blackwell at all
    [line] = lines(pd.driver_problems(b200, UBUNTU_24, settings(), gpu_node=True))
    assert line == ("host gpu1: variable nvidia_driver_source: Canonical's Ubuntu archive has no NVLSM (nvlsm), which"
                    " this NVLink5 host (HGX B200/B300) needs beside the fabric manager; fix: set nvidia_driver_source:"
                    " cuda (NVIDIA's CUDA repository has nvlsm and the fabric manager)")
    assert pd.driver_problems(b200, UBUNTU_24, settings(nvidia_driver_source="cuda"), gpu_node=True) == ([], [])
    source, _constraints, plan = pd.plan_for_host(b200, UBUNTU_24, settings(nvidia_driver_source="cuda"))
    selection = pd.selection_for_host(plan, source, UBUNTU_24, settings(nvidia_driver_source="cuda"))
    assert selection["fabric_manager_packages"] == ["nvidia-fabricmanager", "libnvidia-nscq"]
    assert selection["nvlsm_packages"] == ["nvlsm", "infiniband-diags"]
    assert selection["fabric_kernel_modules"] == ["mlx5_ib", "ib_umad"]


def test_nvlink5_host_on_debian_13(facts):
    b200 = _no_driver(facts("gpu/hgx-b200-nvlink5"))
    debian_13 = dict(DEBIAN_12, distribution_version="13.1", distribution_major_version="13")
    [line] = lines(pd.driver_problems(b200, debian_13, settings(nvidia_driver_branch=550), gpu_node=True))
    assert "variable nvidia_driver_branch" in line and "blackwell GPUs need branch R570 or newer" in line
    [line] = lines(pd.driver_problems(b200, debian_13, settings(), gpu_node=True))
    assert line.startswith("host gpu1: variable nvidia_driver_source: ") and "cuda" in line


def test_secure_boot_with_dkms(facts):
    no_driver = facts("gpu/no-driver")
    assert no_driver["secure_boot"] == "enabled"
    [line] = lines(pd.driver_problems(no_driver, DEBIAN_12, settings(), gpu_node=True))
    assert line.startswith("host gpu1: variable nvidia_driver_source: Secure Boot is enabled and"
                           " nvidia_driver_source=debian builds the NVIDIA kernel modules with DKMS, unsigned")
    for fine in (settings(nvidia_driver_dkms_mok_signing=True), settings(nvidia_driver_dkms_mok_signing="yes")):
        assert pd.driver_problems(no_driver, DEBIAN_12, fine, gpu_node=True) == ([], [])
    # Ubuntu's signed precompiled modules need no key; its DKMS packages do.
    assert pd.driver_problems(no_driver, UBUNTU_24, settings(), gpu_node=True) == ([], [])
    [line] = lines(pd.driver_problems(no_driver, UBUNTU_24, settings(nvidia_driver_ubuntu_precompiled="false"),
                                      gpu_node=True))
    assert "Secure Boot is enabled and nvidia_driver_source=ubuntu builds" in line


def test_dgx_os_is_left_to_itself(facts):
    found = pd.driver_problems(facts("preflight/gpu/hgx-no-driver"), DEBIAN_12, settings(), gpu_node=True, dgx=True)
    assert found == ([], [])
    found = pd.driver_problems(facts("preflight/gpu/hgx-no-driver"), DEBIAN_12,
                               settings(nvidia_driver_manage_dgx=True), gpu_node=True, dgx=True)
    assert found[0][0]["variable"] == "nvidia_driver_source"


# --- the same decision as roles/nvidia_driver/tasks/plan.yml ----------------------------------

_spec = importlib.util.spec_from_file_location("kubegpu_test_k8s_render_driver", ROOT / "tests" / "unit" /
                                               "test_k8s_render.py")
k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s)


def _stage3_plan(gpu_facts, os_facts, overrides):
    """_nvidia_driver_plan as plan.yml's first task computes it (its set_fact and vars)."""
    renderer = k8s.Renderer(k8s.EXAMPLE, "nvidia_driver", overrides=overrides, facts={"gpu1": gpu_facts},
                            host_facts={"gpu1": os_facts})
    task = load_trusted(renderer.loader, str(ROOT / "roles" / "nvidia_driver" / "tasks" / "plan.yml"))[0]
    templar = renderer.templar("gpu1")
    templar = templar.copy_with_new_env(available_variables={**templar.available_variables, **task["vars"]})
    return templar.template(trust_as_template(task["ansible.builtin.set_fact"]["_nvidia_driver_plan"]))


@pytest.mark.parametrize("fixture, os_facts, overrides", [
    ("preflight/gpu/h100-no-secure-boot", DEBIAN_12, {}),
    ("preflight/gpu/h100-no-secure-boot", UBUNTU_24, {}),
    ("preflight/gpu/h100-no-secure-boot", UBUNTU_24, {"nvidia_driver_branch": "570", "nvidia_driver_flavour": "open"}),
    ("gpu/h100-80gb-hbm3-ubuntu2404", DEBIAN_12, {}),
    ("gpu/mixed-v100-t4", UBUNTU_24, {}),
    ("preflight/gpu/b200-no-driver", DEBIAN_12, {"nvidia_driver_source": "cuda"}),
    ("preflight/gpu/hgx-no-driver", UBUNTU_24, {}),
])
def test_the_plan_is_stage_3s(facts, fixture, os_facts, overrides):
    gpu_facts = facts(fixture)
    _source, _constraints, plan = pd.plan_for_host(gpu_facts, os_facts, settings(**overrides))
    assert plan == _stage3_plan(gpu_facts, os_facts, overrides)


def test_stage_3_refuses_a_branch_below_hoppers_floor_the_same_way(facts):
    gpu_facts = facts("preflight/gpu/h100-no-secure-boot")
    overrides = {"nvidia_driver_branch": "470"}
    with pytest.raises(Exception) as preflight:
        pd.plan_for_host(gpu_facts, UBUNTU_24, settings(**overrides))
    with pytest.raises(Exception) as stage3:
        _stage3_plan(gpu_facts, UBUNTU_24, overrides)
    assert "hopper GPUs need branch R520 or newer" in str(preflight.value)
    assert str(preflight.value) in str(stage3.value)
