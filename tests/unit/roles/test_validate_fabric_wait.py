# SPDX-License-Identifier: Apache-2.0
"""validate's wait (roles/validate/tasks/wait.yml) on an NVLink5 host: ansible-playbook runs
against localhost, gpu_facts pointed (module_defaults) at the HGX B200 fixture host and at a
fake nvidia-smi that answers with the fixture's XML - GPUs 6 and 7 "In Progress" until its
Nth call, then every GPU "Completed". kubectl is a fake that shows the node Ready with 8 GPUs.

The wait must keep reading the GPU facts until the fabric is complete (main: the report's
PASS), and the entry point `wait` with validate_wait_must_pass (what add_node.yml and
upgrade_driver.yml run before they uncordon) must fail with the host, the GPUs and the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

# Tens of seconds of ansible-playbook runs: on .venv's ansible-core only; the ansible-core
# matrix leaves it out (marker flow, pytest.ini).
pytestmark = pytest.mark.flow

ROOT = Path(__file__).resolve().parents[3]
FIXTURES = ROOT / "tests" / "fixtures" / "gpu"
CASE = FIXTURES / "hgx-b200-nvlink5"
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(FIXTURES))
import fakehost  # noqa: E402  (tests/fixtures/gpu/fakehost.py)

FAKE_SMI = r'''#!{python}
"""nvidia-smi -q -x: the fabric in progress for the first {busy} calls, then complete."""
import sys
from pathlib import Path
if sys.argv[1:] != ["-q", "-x"]:
    sys.exit("unexpected: %s" % sys.argv[1:])
count = Path(__file__).with_suffix(".count")
calls = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(calls))
name = "nvidia-smi-q-x-in-progress.xml" if calls <= {busy} else "nvidia-smi-q-x.xml"
sys.stdout.write(Path("{case}", name).read_text())
'''

FAKE_KUBECTL = r'''#!{python}
import json, sys
args = sys.argv[1:]
if "runtimeclass" in args:
    print("runtimeclass.node.k8s.io/nvidia")
    sys.exit(0)
if "nodes" in args:
    node = {{"kind": "Node", "metadata": {{"name": "localhost", "labels": {{}}}},
             "status": {{"allocatable": {{"nvidia.com/gpu": "8"}}, "conditions": [{{"type": "Ready", "status": "True"}}]}}}}
    print(json.dumps({{"kind": "List", "items": [node]}}))
    sys.exit(0)
sys.exit("unexpected: %s" % args)
'''


def _script(path, text):
    path.write_text(text, encoding="utf-8")
    path.chmod(0o755)
    return path


def _run(tmp_path, plays, extra_vars):
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "k8s_cluster": {"hosts": {"localhost": {"ansible_connection": "local",
                                                "ansible_python_interpreter": sys.executable}}}}}}),
        encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_CACHE_PLUGIN="memory",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")]
    for key, value in extra_vars.items():
        argv += ["-e", json.dumps({key: value})]
    return subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env, timeout=300)


def _setup(tmp_path, busy):
    root = fakehost.build(str(CASE), str(tmp_path / "root"))
    smi = _script(tmp_path / "nvidia-smi", FAKE_SMI.format(python=sys.executable, busy=busy, case=CASE))
    kubectl = _script(tmp_path / "kubectl", FAKE_KUBECTL.format(python=sys.executable))
    defaults = {"kubegpu.cluster.gpu_facts": {"sysfs_root": root, "proc_root": root, "nvidia_smi_path": str(smi),
                                              "sources": ["nvidia_smi"]}}
    extra = {"kubegpu_gpu_node": True, "validate_kubectl_bin": str(kubectl), "validate_kubeconfig": "/dev/null",
             "validate_control_plane_group": "k8s_cluster", "validate_smoke_test": False,
             "validate_runtime_class": "", "validate_fail_on_error": False,
             "validate_expected_resources": {"resources": {"nvidia.com/gpu": {"count": 8, "exact": True}},
                                             "problems": [], "notes": []},
             "validate_reboot_marker": str(tmp_path / "reboot-required")}
    return defaults, extra


def _write_out(name, expression):
    return {"name": "Write " + name, "ansible.builtin.copy": {
        "content": "{{ %s | to_json }}" % expression, "dest": "{{ playbook_dir }}/%s.json" % name, "mode": "0644"}}


def test_validate_waits_for_the_fabric_before_it_passes(tmp_path):
    defaults, extra = _setup(tmp_path, busy=3)
    plays = [{"name": "Validate", "hosts": "k8s_cluster", "gather_facts": False, "module_defaults": defaults,
              "roles": [{"role": "kubegpu.cluster.validate"}],
              "post_tasks": [_write_out("row", "_validate_row"),
                             _write_out("facts", "ansible_facts.kubegpu_gpu")]}]
    done = _run(tmp_path, plays, dict(extra, validate_ready_timeout=60))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["result"] == "PASS", row
    # 1: the kubegpu role's facts; 2 and 3: the wait still sees GPUs 6 and 7 In Progress; 4: Completed.
    assert int((tmp_path / "nvidia-smi.count").read_text()) == 4
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert {g["health"]["fabric"]["state"] for g in facts["gpus"]} == {"Completed"}


def test_the_wait_before_uncordon_fails_with_the_gpus_and_the_fix(tmp_path):
    defaults, extra = _setup(tmp_path, busy=1000)
    plays = [{"name": "Wait", "hosts": "k8s_cluster", "gather_facts": False, "module_defaults": defaults,
              "roles": [{"role": "kubegpu.cluster.kubegpu"}],
              "tasks": [{"name": "Wait as add_node.yml does", "ansible.builtin.import_role": {
                  "name": "kubegpu.cluster.validate", "tasks_from": "wait"},
                  "vars": {"validate_wait_must_pass": True}}]}]
    done = _run(tmp_path, plays, dict(extra, validate_ready_timeout=5))
    assert done.returncode != 0
    # The callback folds long messages where its ansible-core release chooses: compare words.
    said = " ".join(done.stdout.split())
    assert ("localhost: NVLink fabric not ready on localhost after 5 s - GPU 6 (0000:d1:00.0) In Progress, GPU 7"
            " (0000:df:00.0) In Progress; CUDA cannot use these GPUs until the fabric manager registers them"
            in said), done.stdout[-3000:]
    assert "systemctl status nvidia-fabricmanager" in said and "NVLSM" in said
