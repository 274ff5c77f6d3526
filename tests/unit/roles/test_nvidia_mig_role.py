# SPDX-License-Identifier: Apache-2.0
"""roles/nvidia_mig through ansible-playbook (connection local): the entry points main,
pause_clients and resume_clients against a fake nvidia-smi (tests/fixtures/gpu/
fake_nvidia_smi.py, the recorded formats) and a fake kubectl holding one Node object
(fake_kubectl.py). gpu_facts reads a fake host (fakehost.py, the a100-mig-enabled PCI
layout) and the fake nvidia-smi. Checked: apply, the mig.config labels through
roles/gpu_node_labels, the second run changes nothing, check mode changes nothing, the pause
label set then removed. No real GPU is touched."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# Tens of seconds of ansible-playbook runs: on .venv's ansible-core only; the ansible-core
# matrix leaves it out (marker flow, pytest.ini).
pytestmark = pytest.mark.flow

ROOT = Path(__file__).resolve().parents[3]
GPU = ROOT / "tests" / "fixtures" / "gpu"
VENV_BIN = Path(sys.executable).parent


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fakehost = _load("kubegpu_fakehost_mig", GPU / "fakehost.py")
fake_smi = _load("kubegpu_fake_smi", GPU / "fake_nvidia_smi.py")


class Lab:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.root = fakehost.build(str(GPU / "a100-mig-enabled"), str(tmp_path / "root"))
        self.smi_state = tmp_path / "smi.json"
        self.smi_state.write_text(json.dumps(fake_smi.new_state([fake_smi.a100_80gb(0)])))
        self.kubectl_state = tmp_path / "kubectl.json"
        self.kubectl_state.write_text(json.dumps({
            "node": {"metadata": {"name": "gpu1", "labels": {"kubernetes.io/hostname": "gpu1"}, "annotations": {},
                                  "resourceVersion": "1"}, "spec": {}},
            "pods": [{"name": "nvidia-device-plugin-daemonset-x1", "labels": {"app.kubernetes.io/name": "nvidia-device-plugin"},
                      "gone_after": 1}]}))
        self.kubeconfig = tmp_path / "admin.conf"
        self.kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
        inventory = {"all": {"children": {
            "k8s_cluster": {"children": {"kube_control_plane": {"hosts": {"gpu1": None}}}},
            "gpu": {"hosts": {"gpu1": None}}},
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                     "kubegpu_kubectl_bin": str(GPU / "fake_kubectl.py"), "kubegpu_kubeconfig": str(self.kubeconfig),
                     "nvidia_mig_nvidia_smi_path": str(GPU / "fake_nvidia_smi.py")}}}
        self.inventory = tmp_path / "hosts.yml"
        self.inventory.write_text(yaml.safe_dump(inventory))

    def play(self, tasks, layout, check=False):
        play = [{"hosts": "gpu1", "gather_facts": False,
                 "module_defaults": {"kubegpu.cluster.gpu_facts": {
                     "sysfs_root": self.root, "proc_root": self.root, "sources": ["nvidia_smi"],
                     "nvidia_smi_path": str(GPU / "fake_nvidia_smi.py")}},
                 "vars": {"nvidia_mig_layout": layout},
                 "tasks": tasks}]
        path = self.tmp / "play.yml"
        path.write_text(yaml.safe_dump(play, sort_keys=False))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_NOCOLOR="1",
                   KUBEGPU_FAKE_SMI_STATE=str(self.smi_state), KUBEGPU_FAKE_KUBECTL_STATE=str(self.kubectl_state),
                   PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(self.inventory), str(path)] + (["--check"] if check else [])
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=str(self.tmp), timeout=300, check=False)
        recap = re.search(r"gpu1\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", done.stdout)
        assert recap, done.stdout[-4000:] + done.stderr[-2000:]
        return {"rc": done.returncode, "changed": int(recap.group(2)), "failed": int(recap.group(4)),
                "out": done.stdout}

    @property
    def labels(self):
        return json.loads(self.kubectl_state.read_text())["node"]["metadata"]["labels"]

    @property
    def gpu(self):
        return json.loads(self.smi_state.read_text())["gpus"][0]


MAIN = [{"name": "Apply", "ansible.builtin.import_role": {"name": "kubegpu.cluster.nvidia_mig"}}]


def test_main_applies_labels_and_is_idempotent(tmp_path):
    lab = Lab(tmp_path)
    check = lab.play(MAIN, "all-balanced", check=True)
    assert check["rc"] == 0, check["out"][-3000:]
    assert lab.gpu["mode_current"] == "disabled" and lab.gpu["instances"] == []
    assert "nvidia.com/mig.config" not in lab.labels

    first = lab.play(MAIN, "all-balanced")
    assert first["rc"] == 0, first["out"][-4000:]
    assert sorted(i["profile"] for i in lab.gpu["instances"]) == ["1g.10gb", "1g.10gb", "2g.20gb", "3g.40gb"]
    assert lab.labels["nvidia.com/mig.config"] == "all-balanced"
    assert lab.labels["nvidia.com/mig.config.state"] == "success"
    assert lab.labels["nvidia.com/mig.capable"] == "true"

    second = lab.play(MAIN, "all-balanced")
    assert second["rc"] == 0 and second["changed"] == 0, second["out"][-4000:]


def test_refused_layout_fails_before_any_change(tmp_path):
    lab = Lab(tmp_path)
    result = lab.play(MAIN, [["1g.10gb"] * 8])
    assert result["rc"] != 0 and "holds at most 7" in result["out"]
    assert lab.gpu["mode_current"] == "disabled"


def test_pause_and_resume_clients(tmp_path):
    lab = Lab(tmp_path)
    pause = [{"name": "Pause",
              "ansible.builtin.import_role": {"name": "kubegpu.cluster.nvidia_mig", "tasks_from": "pause_clients"}}]
    result = lab.play(pause + [{"name": "Show", "ansible.builtin.copy": {
        "content": "{{ _nvidia_mig_pause_before | to_json }}", "dest": str(tmp_path / "before.json")}}], "all-balanced")
    assert result["rc"] == 0, result["out"][-4000:]
    assert lab.labels["nvidia.com/gpu.deploy.device-plugin"] == "paused-for-mig-change"
    assert json.loads((tmp_path / "before.json").read_text()) == ""
    both = pause + [{"name": "Resume",
                     "ansible.builtin.import_role": {"name": "kubegpu.cluster.nvidia_mig", "tasks_from": "resume_clients"}}]
    result = lab.play(both, "all-balanced")
    assert result["rc"] == 0, result["out"][-4000:]
    assert "nvidia.com/gpu.deploy.device-plugin" not in lab.labels
