# SPDX-License-Identifier: Apache-2.0
"""Stages 5-9 on the Molecule fleet: the end state, asked of the cluster.

The cluster is the simulated control plane of tests/sim (API server, controllers,
kubelets and kubeadm simulated; kubectl real). Every question goes through the REAL
kubectl on the first control plane with the admin kubeconfig kubeadm wrote, as an
operator would ask it:

- every inventory host is a Node and Ready;
- every GPU node's allocatable nvidia.com/gpu equals the GPUs gpu_facts detects on that
  host in this run (and a host without GPUs advertises none);
- GPU nodes carry the GFD-compatible labels of what they hold, other nodes none;
- RuntimeClass `nvidia` exists exactly when nvidia is not containerd's default runtime
  on some GPU node (asked of each GPU node's containerd);
- the device plugin's ConfigMap holds the settings of the inventory;
- the validate stage's smoke Job of every GPU node succeeded;
- `--check --diff` on the converged fleet reports nothing to change (changed=0).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib

import pytest
import testinfra

ADMIN = ["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"]


def _inventory():
    return os.environ["MOLECULE_INVENTORY_FILE"]


@pytest.fixture(scope="module")
def hostvars(host):
    return host.ansible.get_variables()


@pytest.fixture(scope="module")
def first_cp(hostvars):
    name = hostvars["groups"]["kube_control_plane"][0]
    return testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, _inventory()))


def kubectl_json(cp, *args):
    result = cp.run(" ".join(ADMIN + list(args) + ["-o", "json"]))
    assert result.rc == 0, "kubectl %s failed: %s" % (" ".join(args), result.stderr)
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def node(host, hostvars, first_cp):
    name = hostvars["inventory_hostname"]
    return kubectl_json(first_cp, "get", "node", name)


@pytest.fixture(scope="module")
def gpu_facts(host):
    return host.ansible("kubegpu.cluster.gpu_facts", check=False)["ansible_facts"]["kubegpu_gpu"]


def _is_gpu_node(hostvars, gpu_facts):
    return gpu_facts.get("count", 0) > 0 or "gpu" in hostvars.get("group_names", [])


def test_node_registered_and_ready(node):
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True", ready
    assert not node["spec"].get("unschedulable"), "node left cordoned"


def test_allocatable_gpus_equal_detected(node, gpu_facts, hostvars):
    allocatable = int(node["status"].get("allocatable", {}).get("nvidia.com/gpu", "0"))
    if _is_gpu_node(hostvars, gpu_facts):
        assert gpu_facts["count"] > 0, "a GPU node of this fleet has the simulated GPU"
    assert allocatable == gpu_facts.get("count", 0), (allocatable, gpu_facts.get("count"))


def test_gpu_labels(node, gpu_facts, hostvars):
    labels = node["metadata"].get("labels", {})
    ours = {k: v for k, v in labels.items() if k.startswith("nvidia.com/")}
    if not _is_gpu_node(hostvars, gpu_facts):
        assert ours == {}, ours
        return
    assert labels.get("nvidia.com/gpu.present") == "true"
    assert labels.get("nvidia.com/gpu.count") == str(gpu_facts["count"])
    product = gpu_facts["gpus"][0]["name"].replace(" ", "-")
    assert labels.get("nvidia.com/gpu.product") == product


def test_runtime_class_exactly_when_needed(host, hostvars, first_cp):
    if hostvars["inventory_hostname"] != hostvars["groups"]["kube_control_plane"][0]:
        pytest.skip("cluster-wide: asked once, on the first control plane")
    not_default = []
    for name in hostvars["groups"].get("gpu", []):
        gpu_host = testinfra.get_host("ansible://%s?ansible_inventory=%s" % (name, _inventory()))
        dump = tomllib.loads(gpu_host.check_output("containerd config dump"))
        plugins = dump["plugins"]
        cri = plugins.get("io.containerd.cri.v1.runtime") or plugins["io.containerd.grpc.v1.cri"]
        if cri["containerd"].get("default_runtime_name") != "nvidia":
            not_default.append(name)
    present = first_cp.run(" ".join(ADMIN + ["get", "runtimeclass", "nvidia", "--ignore-not-found", "-o", "name"]))
    assert present.rc == 0, present.stderr
    assert bool(present.stdout.strip()) == bool(not_default), (present.stdout, not_default)


def test_device_plugin_config(host, hostvars, first_cp):
    if hostvars["inventory_hostname"] != hostvars["groups"]["kube_control_plane"][0]:
        pytest.skip("cluster-wide: asked once, on the first control plane")
    maps = kubectl_json(first_cp, "get", "configmap", "-n", "kube-system",
                        "-l", "app.kubernetes.io/name=nvidia-device-plugin")
    texts = [text for cm in maps["items"] for text in cm.get("data", {}).values()]
    assert texts, "no device plugin ConfigMap"
    assert any(re.search(r"migStrategy:\s*none", t) for t in texts), texts
    daemonsets = kubectl_json(first_cp, "get", "daemonset", "-n", "kube-system",
                              "-l", "app.kubernetes.io/name=nvidia-device-plugin")
    assert len(daemonsets["items"]) == 1
    status = daemonsets["items"][0]["status"]
    gpu_nodes = len(hostvars["groups"].get("gpu", []))
    assert status.get("numberReady") == status.get("desiredNumberScheduled") == gpu_nodes, status


def test_validate_job_succeeded(node, host, hostvars, gpu_facts, first_cp):
    if not _is_gpu_node(hostvars, gpu_facts):
        pytest.skip("no smoke test on a node without GPUs")
    jobs = kubectl_json(first_cp, "get", "jobs", "-A", "-l",
                        "app.kubernetes.io/name=kubegpu-validate,app.kubernetes.io/component=nvidia-smi")
    mine = [j for j in jobs["items"]
            if j["spec"]["template"]["spec"].get("nodeSelector", {}).get("kubernetes.io/hostname")
            == node["metadata"]["labels"]["kubernetes.io/hostname"]]
    assert mine, "no nvidia-smi Job for this node"
    assert all(j["status"].get("succeeded") == 1 for j in mine), [j["status"] for j in mine]


def test_check_mode_on_converged_fleet_changes_nothing(hostvars):
    if hostvars["inventory_hostname"] != hostvars["groups"]["kube_control_plane"][0]:
        pytest.skip("one run for the fleet")
    env = dict(os.environ)
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if ephemeral and os.path.exists(os.path.join(ephemeral, "ansible.cfg")):
        env["ANSIBLE_CONFIG"] = os.path.join(ephemeral, "ansible.cfg")
    converge = os.path.join(os.environ["MOLECULE_PROJECT_DIRECTORY"], "molecule", "shared", "converge.yml")
    run_json = os.path.join(ephemeral or "/tmp", "kubegpu-check-run.json")
    env["KUBEGPU_CALLBACK_JSON_FILE"] = run_json
    result = subprocess.run(["ansible-playbook", "-i", _inventory(), converge, "--check", "--diff"],
                            capture_output=True, text=True, env=env, timeout=900, check=False)
    # Without colour codes (ANSIBLE_FORCE_COLOR may come from Molecule's environment).
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-4000:]
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M)
    assert recap, output[-2000:]
    changed = {h: int(n) for h, n in recap if int(n)}
    assert not changed, "check mode would change: %s\n%s" % (changed, output[-4000:])

    # The collection's callback (enabled in this scenario's ansible.cfg, docs/callback.md):
    # its hosts x stages table after the recap, and its JSON file, agree with the recap.
    hosts = sorted(h for h, _n in recap)
    assert re.search(r"^kubegpu: %d hosts x \d+ stages \(converge.yml\) \[check mode" % len(hosts), output, re.M), \
        output[-3000:]
    assert re.search(r"^kubegpu: ok - %d hosts(: [^\n]*)? - total \S+ \[check mode\]$" % len(hosts), output, re.M), \
        output[-1500:]
    with open(run_json, encoding="utf-8") as stream:
        run = json.load(stream)
    assert run["schema"] == "kubegpu.cluster.callback/v1" and run["check_mode"] is True and run["result"] == "ok"
    assert sorted(run["totals"]) == hosts
    assert all(t["changed"] == 0 and t["failed"] == 0 for t in run["totals"].values()), run["totals"]
    stages = [s["id"] for s in run["stages"]]
    assert stages[:4] == ["preflight", "os_prereqs", "nvidia_driver", "container_runtime"], stages


def test_validate_wrote_its_reports(hostvars):
    """Stage 9's JSON report (docs/validate.schema.json) and Markdown table, on the
    controller where validate_report_file says (the scenario's directory: .config/molecule/config.yml)."""
    if hostvars["inventory_hostname"] != hostvars["groups"]["kube_control_plane"][0]:
        pytest.skip("one report for the fleet")
    project = os.environ["MOLECULE_PROJECT_DIRECTORY"]
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "kubegpu-validate.json")
    assert hostvars["validate_report_file"] == path
    with open(path, encoding="utf-8") as stream:
        report = json.load(stream)
    with open(os.path.join(project, "docs", "validate.schema.json"), encoding="utf-8") as stream:
        schema = json.load(stream)
    import jsonschema  # noqa: E402 - the project's venv has it (requirements-dev.txt)
    jsonschema.validate(report, schema)
    assert report["passed"] is True
    assert sorted(n["node"] for n in report["nodes"]) == sorted(hostvars["groups"]["k8s_cluster"])
    with open(path[:-len(".json")] + ".md", encoding="utf-8") as stream:
        markdown = stream.read()
    assert markdown.splitlines()[0] == "## kubegpu validate (%d node(s), all passed)" % len(report["nodes"])
