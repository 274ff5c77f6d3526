# SPDX-License-Identifier: Apache-2.0
"""nvidia_driver's reboot context, rendered as Ansible does (the Renderer of
test_k8s_render.py): what modprobe said in tasks/run.yml reaches the reboot decision's
message, whether it could not unload nouveau or not load the NVIDIA modules."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

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
