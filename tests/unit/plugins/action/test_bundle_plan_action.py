# SPDX-License-Identifier: Apache-2.0
"""kubegpu.cluster.bundle_plan run by a real ansible-playbook on the controller, with declared
targets (no host reached): in GPU Operator mode it hands playbooks/bundle.yml the chart values the
gpu_operator stage would give helm, templated from the role's own _gpu_operator_values, and the OS
of the GPU nodes (the driver container's tag). The operand images read from a chart with them are
tested in tests/unit/plugins/plugin_utils/test_bundle.py; the whole path in
tests/integration/test_airgap.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[4]
VENV_BIN = Path(sys.executable).parent

PLAYBOOK = [{"hosts": "builder", "gather_facts": False, "tasks": [
    {"kubegpu.cluster.bundle_plan": {"hosts": [], "cluster_hosts": [], "control_plane_hosts": [], "server_hosts": [],
                                     "targets": "{{ bundle_targets }}"},
     "register": "plan"},
    {"ansible.builtin.copy": {"content": "{{ plan | to_json }}", "dest": "{{ out }}", "mode": "0644"}}]}]


def _plan(tmp_path, **variables):
    inventory = {"all": {"hosts": {"builder": {"ansible_connection": "local",
                                               "ansible_python_interpreter": sys.executable}},
                         "vars": dict(variables, out=str(tmp_path / "plan.json"))}}
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(yaml.safe_dump(PLAYBOOK))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CACHE_PLUGIN="memory")
    done = subprocess.run([str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml")], cwd=str(tmp_path), env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads((tmp_path / "plan.json").read_text())


UBUNTU_GPU = {"distribution": "Ubuntu", "version": "22.04", "kernel": "5.15.0-126-generic", "gpus": ["hopper"]}
UBUNTU_CPU = {"distribution": "Ubuntu", "version": "22.04", "gpus": []}


def test_container_driver_values_as_the_stage_decides_them_for_the_declared_gpu_nodes(tmp_path):
    plan = _plan(tmp_path, kubegpu_gpu_operator=True, nvidia_driver_mode="container",
                 container_runtime_nvidia_toolkit_install=False, bundle_targets=[UBUNTU_GPU, UBUNTU_CPU])
    operator = plan["gpu_operator"]
    assert plan["unresolved"] == {}, plan["unresolved"]
    # Ubuntu 22.04 with a 5.15 generic kernel: precompiled driver containers (auto), the branch as version
    assert operator["chart_values"]["driver"]["enabled"] is True
    assert operator["chart_values"]["driver"]["usePrecompiled"] is True
    assert operator["chart_values"]["driver"]["version"] == "580"
    # the toolkit from the Operator, as the host has none; the device plugin and GFD on
    assert operator["chart_values"]["toolkit"] == {"enabled": True}
    assert operator["chart_values"]["devicePlugin"] == {"enabled": True}
    # one GPU node: the declared CPU host is not one
    assert operator["gpu_nodes_os"] == [{"distribution": "Ubuntu", "distribution_version": "22.04",
                                         "distribution_major_version": "22", "kernel": "5.15.0-126-generic",
                                         "architecture": "x86_64"}]


def test_host_driver_and_the_users_values_merged_over_kubegpus(tmp_path):
    plan = _plan(tmp_path, kubegpu_gpu_operator=True, bundle_targets=[UBUNTU_GPU],
                 gpu_operator_values={"dcgmExporter": {"enabled": False}, "migManager": {"enabled": False}})
    values = plan["gpu_operator"]["chart_values"]
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"] == {"enabled": False}         # container_runtime installs it on the host
    assert values["dcgmExporter"] == {"enabled": False} and values["migManager"] == {"enabled": False}


def test_without_the_gpu_operator_nothing_of_it(tmp_path):
    plan = _plan(tmp_path, bundle_targets=[UBUNTU_GPU])
    assert plan["gpu_operator"] == {} and plan["charts"] == []
