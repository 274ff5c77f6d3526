# SPDX-License-Identifier: Apache-2.0
"""The kubegpu role's `apply` entry point (roles/kubegpu/tasks/apply.yml), the one way
stages 6 and 7 apply objects, run by ansible-playbook with the REAL kubectl against the
simulated API server.

The seam it covers was found when the simulation first ran stage 6: `kubectl diff
--server-side` of a manifest that creates a namespace and objects in it is refused with
NotFound (the API server's NamespaceLifecycle admission runs for dry runs too,
kubernetes/kubernetes#83562), and the old apply task failed the first Calico install on a
fresh cluster. Asserts: first run creates (changed), second run changes nothing, an
edit is applied, check mode reports nothing and changes nothing.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VENV_BIN = os.path.dirname(sys.executable)

MANIFEST = """---
apiVersion: v1
kind: Namespace
metadata:
  name: kubegpu-apply-test
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: kubegpu-apply-test
data:
  mode: "%s"
"""

PLAYBOOK = """---
- name: Apply through the kubegpu role's entry point
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Apply the manifest
      ansible.builtin.include_role:
        name: kubegpu.cluster.kubegpu
        tasks_from: apply
      vars:
        kubegpu_apply_source: "{{ manifest }}"
        kubegpu_apply_kubectl: ["{{ kubectl }}", --kubeconfig, "{{ kubeconfig }}"]
"""


def _run(cluster, tmp_path, *extra):
    playbook = tmp_path / "apply.yml"
    playbook.write_text(PLAYBOOK)
    env = dict(cluster.env(),
               PATH="%s:%s" % (VENV_BIN, os.environ.get("PATH", "")),
               ANSIBLE_COLLECTIONS_PATH="%s:%s" % (os.path.join(ROOT, ".collections"),
                                                   os.path.join(os.path.dirname(VENV_BIN), "lib",
                                                                "python%d.%d" % sys.version_info[:2],
                                                                "site-packages", "ansible_collections")),
               ANSIBLE_NOCOLOR="1", ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0")
    result = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", str(playbook),
         "-e", "manifest=%s" % (tmp_path / "manifest.yaml"), "-e", "kubectl=%s" % os.path.abspath(cluster.kubectl_bin),
         "-e", "kubeconfig=%s" % cluster.kubeconfig, "-e", "ansible_python_interpreter=%s" % sys.executable, *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    changed = [int(n) for n in __import__("re").findall(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", output)]
    assert changed, output[-2000:]
    return changed[0]


def _mode(cluster):
    proc = cluster.kubectl("get", "configmap", "settings", "-n", "kubegpu-apply-test", "-o", "json", check=False)
    return json.loads(proc.stdout)["data"]["mode"] if proc.returncode == 0 else None


def test_apply_creates_then_changes_nothing_then_follows_an_edit(cluster, tmp_path):
    if not cluster.kubectl_bin:
        pytest.skip("kubectl 1.35 not found: run scripts/fetch-helm.sh or set KUBEGPU_KUBECTL")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST % "one")

    # Check mode on a cluster without the namespace: would change, changes nothing.
    _run(cluster, tmp_path, "--check")
    assert _mode(cluster) is None

    assert _run(cluster, tmp_path) == 1          # namespace + ConfigMap created
    assert _mode(cluster) == "one"
    assert _run(cluster, tmp_path) == 0          # nothing differs: nothing applied

    manifest.write_text(MANIFEST % "two")
    assert _run(cluster, tmp_path, "--check") == 0   # check mode: the apply is not run
    assert _mode(cluster) == "one"
    assert _run(cluster, tmp_path) == 1
    assert _mode(cluster) == "two"
