# SPDX-License-Identifier: Apache-2.0
"""nvidia_driver's reboot context, rendered as Ansible does (the Renderer of
test_k8s_render.py): what modprobe said in tasks/run.yml reaches the reboot decision's
message, whether it could not unload nouveau or not load the NVIDIA modules. And the
plan of tasks/container.yml (nvidia_driver_mode container), rendered from the task file."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location(
    "kubegpu_test_k8s_render", Path(__file__).resolve().parents[1] / "test_k8s_render.py")
_k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_k8s)

IN_USE = {"rc": 1, "stderr": "modprobe: FATAL: Module nouveau is in use.\n", "changed": False}
NO_KERNEL = {"rc": 1, "stderr": "modprobe: FATAL: Module nvidia not found in directory /lib/modules/6.1.0-28\n"}
SKIPPED = {"skipped": True, "changed": False}


@pytest.mark.parametrize("nouveau, modprobe, said", [
    (SKIPPED, {"rc": 0, "stderr": ""}, ""),
    (SKIPPED, NO_KERNEL, "modprobe: FATAL: Module nvidia not found in directory /lib/modules/6.1.0-28"),
    # nouveau stayed, so the NVIDIA modules were not tried
    (IN_USE, SKIPPED, "modprobe: FATAL: Module nouveau is in use."),
    (None, None, ""),
])
def test_what_modprobe_said_reaches_the_reboot_decision(nouveau, modprobe, said):
    registered = {name: value for name, value in (("_nvidia_driver_nouveau", nouveau),
                                                  ("_nvidia_driver_modprobe", modprobe)) if value is not None}
    # the context's other entries, as tasks/run.yml has them (ansible-core 2.17 renders the
    # whole mapping at once)
    registered.update(_nvidia_driver_was_loaded=False, _nvidia_driver_in_container=False, ansible_check_mode=False)
    render = _k8s.Renderer(_k8s.EXAMPLE, "nvidia_driver", overrides=registered)
    assert render.expr("gpu1", "_nvidia_driver_reboot_context.load_error") == said


# --- nvidia_driver_mode: container (tasks/container.yml) ----------------------------------------

def _container_plan(gpu_facts, **overrides):
    """tasks/container.yml's plan, its own expression rendered for gpu1 as Ansible renders it: the
    gpu_operator role's defaults are not visible to this stage, the filter reads them as preflight does."""
    tasks = yaml.safe_load((_k8s.ROLES / "nvidia_driver" / "tasks" / "container.yml").read_text(encoding="utf-8"))
    expression = tasks[0]["ansible.builtin.set_fact"]["_nvidia_driver_container_plan"].strip()
    assert expression.startswith("{{") and expression.endswith("}}")
    render = _k8s.Renderer(_k8s.EXAMPLE, "nvidia_driver", facts={"gpu1": gpu_facts},
                           host_facts={"gpu1": {"distribution": "Ubuntu", "distribution_version": "24.04",
                                                "kernel": "6.8.0-51-generic", "architecture": "x86_64"}},
                           overrides=dict({"nvidia_driver_mode": "container"}, **overrides))
    return render.expr("gpu1", expression[2:-2].strip())


def test_container_mode_plan_installs_nothing_and_reads_the_operators_settings():
    facts = dict(_k8s.H100_FACTS, driver={"loaded": False, "install_hints": []}, source="sysfs",
                 secure_boot="disabled", nouveau_loaded=True)
    plan = _container_plan(facts)
    assert plan["packages"] == [] and plan["problems"] == [] and plan["unload_nouveau"] is True
    assert "driver container 580.105.08 installs the driver" in plan["summary"]
    assert "driver container 580.126.09" in _container_plan(facts, gpu_operator_driver_version="580.126.09")["summary"]


def test_container_mode_plan_refuses_the_hosts_own_driver():
    facts = dict(_k8s.H100_FACTS, source="nvml", secure_boot="disabled")
    plan = _container_plan(facts)
    assert [p["variable"] for p in plan["problems"]] == ["nvidia_driver_mode"]
    assert "own NVIDIA driver 580.159.04 is loaded" in plan["problems"][0]["problem"]
