# SPDX-License-Identifier: Apache-2.0
"""The seams between stages: a value one stage decides and another reads (docs/contracts.md).

A value crosses from one stage (or host) to another only as a fact published with
set_fact in this run - visible in ``hostvars`` - never as another role's default (role
defaults stay inside the play that runs the role) and never from an earlier run's fact
cache. The Renderer (test_k8s_render.py) builds ``hostvars`` as Ansible does: inventory
variables, facts and what was published; playbook-level behaviour runs the real
ansible-playbook against localhost.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_rules
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs
from ansible_collections.kubegpu.cluster.tests.unit.compat import edit_cached_facts, trust_as_template

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("kubegpu_test_k8s_render", HERE / "test_k8s_render.py")
k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s)

ROOT = HERE.parents[1]
EXAMPLE, HA, H100_FACTS = k8s.EXAMPLE, k8s.HA, k8s.H100_FACTS
CONTAINERD = ROOT / "tests" / "fixtures" / "containerd"
VENV_BIN = Path(sys.executable).parent


# --- 1. RuntimeClass nvidia from the containerd config stage 4 wrote -----------------

def _stage4_publishes(config_text, **overrides):
    """What container_runtime publishes for gpu1 after merging its settings into config_text."""
    from ansible_collections.kubegpu.cluster.plugins.module_utils import _containerd

    published = {"kubegpu_gpu_node": True}
    renderer = k8s.Renderer(EXAMPLE, "container_runtime", overrides=overrides, published={"gpu1": published})
    settings = renderer.expr("gpu1", "_container_runtime_config_settings")
    merged = _containerd.merge(config_text, **_containerd.merge_settings(settings))
    # The merge task's result (tasks/containerd.yml registers _container_runtime_config).
    result = {"changed": merged.changed, "runtimes": merged.runtimes, "default_runtime": merged.default_runtime}
    tasks = yaml.safe_load((k8s.ROLES / "container_runtime" / "tasks" / "containerd.yml").read_text(encoding="utf-8"))
    publish = next(t for t in tasks if "container_runtime_cri_handlers" in str(t.get("ansible.builtin.set_fact", "")))
    expression = publish["ansible.builtin.set_fact"]["container_runtime_cri_handlers"]
    renderer.overrides.update({"_container_runtime_config": result})
    return {**published, "container_runtime_cri_handlers": renderer.templar("gpu1").template(trust_as_template(expression))}


def test_runtime_class_not_created_where_stage_4_made_nvidia_the_default():
    """container_runtime_nvidia_default (true by default) makes nvidia containerd's default:
    stage 7 must then not create RuntimeClass nvidia - from what stage 4 published."""
    gpu1 = _stage4_publishes((CONTAINERD / "default-1.7.24.toml").read_text(encoding="utf-8"))
    assert gpu1["container_runtime_cri_handlers"]["default"] == "nvidia"
    renderer = k8s.Renderer(EXAMPLE, "nvidia_device_plugin", facts={"gpu1": H100_FACTS},
                            published={"gpu1": gpu1, "cp1": {"kubegpu_gpu_node": False},
                                       "cpu1": {"kubegpu_gpu_node": False}})
    assert renderer.expr("cp1", "_nvidia_device_plugin_use_runtime_class") is False
    assert "runtimeclass.yaml" not in renderer.expr("cp1", "_nvidia_device_plugin_manifests")


def test_runtime_class_created_where_stage_4_left_runc_the_default():
    gpu1 = _stage4_publishes((CONTAINERD / "default-1.7.24.toml").read_text(encoding="utf-8"),
                             container_runtime_nvidia_default=False)
    assert gpu1["container_runtime_cri_handlers"]["default"] == "runc"
    assert "nvidia" in gpu1["container_runtime_cri_handlers"]["names"]
    renderer = k8s.Renderer(EXAMPLE, "nvidia_device_plugin", facts={"gpu1": H100_FACTS},
                            published={"gpu1": gpu1, "cp1": {"kubegpu_gpu_node": False},
                                       "cpu1": {"kubegpu_gpu_node": False}})
    assert renderer.expr("cp1", "_nvidia_device_plugin_use_runtime_class") is True


def test_runtime_class_is_created_for_a_gpu_node_that_published_no_handlers():
    """Unknown (nothing read in this run) counts as 'nvidia is not the default'."""
    renderer = k8s.Renderer(EXAMPLE, "nvidia_device_plugin", facts={"gpu1": H100_FACTS},
                            published={"gpu1": {"kubegpu_gpu_node": True}, "cp1": {"kubegpu_gpu_node": False},
                                       "cpu1": {"kubegpu_gpu_node": False}})
    assert renderer.expr("cp1", "_nvidia_device_plugin_use_runtime_class") is True


def test_container_runtime_publishes_nothing_nobody_reads():
    text = (k8s.ROLES / "container_runtime" / "tasks" / "containerd.yml").read_text(encoding="utf-8")
    text += (k8s.ROLES / "container_runtime" / "tasks" / "docker.yml").read_text(encoding="utf-8")
    assert "container_runtime_nvidia_runtimeclass_needed" not in text


# --- 2. kubegpu_gpu_node is published, and every reader uses the published value -----

def test_stage_7_gpu_hosts_are_the_published_gpu_nodes():
    """cpu1's cached facts say 8 GPUs (stale); this run published cpu1 as no GPU node."""
    renderer = k8s.Renderer(EXAMPLE, "nvidia_device_plugin", facts={"cpu1": H100_FACTS},
                            published={"gpu1": {"kubegpu_gpu_node": True}, "cp1": {"kubegpu_gpu_node": False},
                                       "cpu1": {"kubegpu_gpu_node": False}})
    assert renderer.expr("cp1", "_nvidia_device_plugin_gpu_hosts") == ["gpu1"]


# --- playbook level: ansible-playbook against localhost --------------------------------

def _run(tmp_path, plays, cache=None, extra_vars=None, **env_vars):
    """Run plays on localhost (connection local) with a jsonfile fact cache; return the
    published JSON each play wrote to out-<n>.json and the output."""
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {
        "k8s_cluster": {"hosts": {"localhost": {"ansible_connection": "local",
                                                "ansible_python_interpreter": sys.executable}}}}}}),
        encoding="utf-8")
    cache = cache or tmp_path / "cache"
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache),
               ANSIBLE_CACHE_PLUGIN_TIMEOUT="7200", ANSIBLE_GATHERING="smart",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""), **env_vars)
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")]
    for key, value in (extra_vars or {}).items():
        argv += ["-e", json.dumps({key: value})]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env)
    return done


def _write_out(name, expression):
    return {"name": "Write " + name, "ansible.builtin.copy": {
        "content": "{{ %s | to_json }}" % expression, "dest": "{{ playbook_dir }}/%s.json" % name, "mode": "0644"}}


def _stale_cache(tmp_path):
    """A fact cache written by an earlier run (within fact_caching_timeout) that saw 8 GPUs."""
    cache = tmp_path / "cache"
    done = _run(tmp_path, [{"name": "Fill the cache", "hosts": "k8s_cluster", "gather_facts": False,
                            "tasks": [{"name": "Gather", "kubegpu.cluster.gpu_facts": None}]}], cache=cache)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (entry,) = [p for p in cache.iterdir() if p.name.endswith("localhost")]
    edit_cached_facts(entry, lambda facts: facts.update(
        kubegpu_gpu=dict(facts["kubegpu_gpu"], count=8, present=True, gpus=H100_FACTS["gpus"])))
    return cache


def test_kubegpu_gpu_node_is_published_in_hostvars(tmp_path):
    plays = [
        {"name": "Stage", "hosts": "k8s_cluster", "gather_facts": False,
         "roles": [{"role": "kubegpu.cluster.kubegpu"}]},
        {"name": "Another stage reads it", "hosts": "localhost", "gather_facts": False,
         "tasks": [_write_out("gpu_node", "hostvars['localhost'].kubegpu_gpu_node")]},
    ]
    done = _run(tmp_path, plays)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tmp_path / "gpu_node.json").read_text()) is False


def test_gpu_facts_come_from_this_run_not_from_the_fact_cache(tmp_path):
    cache = _stale_cache(tmp_path)
    plays = [
        {"name": "Stage", "hosts": "k8s_cluster", "gather_facts": True,
         "roles": [{"role": "kubegpu.cluster.kubegpu"}],
         "tasks": [_write_out("count", "ansible_facts.kubegpu_gpu.count"),
                   _write_out("gpu_node", "hostvars[inventory_hostname].kubegpu_gpu_node")]},
    ]
    done = _run(tmp_path, plays, cache=cache)
    assert json.loads((tmp_path / "count.json").read_text()) == 0, "GPU facts from the cache of an earlier run"
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tmp_path / "gpu_node.json").read_text()) is False


def test_gpu_facts_are_gathered_once_per_run(tmp_path):
    plays = [{"name": "Stage %d" % n, "hosts": "k8s_cluster", "gather_facts": False,
              "roles": [{"role": "kubegpu.cluster.kubegpu"}]} for n in (1, 2, 3)]
    done = _run(tmp_path, plays)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # One gathering (ok) in the first play; the include that holds it is skipped in the
    # two after it (one skipped task per play).
    blocks = done.stdout.split("TASK [")
    includes = [b for b in blocks if b.startswith("kubegpu.cluster.kubegpu : Gather GPU facts and publish")]
    assert [("included:" in b, "skipping" in b) for b in includes] == [(True, False), (False, True), (False, True)], \
        done.stdout
    gathers = [b for b in blocks if b.startswith("kubegpu.cluster.kubegpu : Gather GPU facts with")]
    assert len(gathers) == 1 and "ok: [" in gathers[0] and "skipping" not in gathers[0], done.stdout


# --- 4. expected extended resources follow the device plugin's MIG and sharing rules ---

def _mig_facts(n=1, profiles=None):
    gpus = [{"index": i, "name": "NVIDIA A100-SXM4-80GB", "mig_capable": True, "mig_mode_current": "enabled"}
            for i in range(n)]
    if profiles is not None:
        for gpu in gpus:
            gpu["mig_devices"] = list(profiles)
    return {"count": n, "gpus": gpus, "driver": {"loaded": True, "version": "535.261.03"}}


def _validate_problems(facts, allocatable, **settings):
    renderer = k8s.Renderer(EXAMPLE, "validate", overrides=settings, facts={"gpu1": facts})
    return renderer.expr("gpu1", "validate_expected_resources | kubegpu.cluster.gpu_resource_problems(%s)"
                         % json.dumps(allocatable))


@pytest.mark.parametrize("settings, allocatable", [
    ({"validate_mig_strategy": "mixed"}, {"nvidia.com/mig-1g.10gb": "7"}),
    ({"validate_mig_strategy": "single"}, {"nvidia.com/gpu": "7"}),
])
def test_validate_expects_mig_devices_not_whole_gpus(settings, allocatable):
    assert _validate_problems(_mig_facts(), allocatable, **settings) == []


def test_validate_counts_mig_devices_when_the_facts_list_them():
    facts = _mig_facts(2, profiles=["3g.40gb", "3g.40gb"])
    assert _validate_problems(facts, {"nvidia.com/gpu": "4"}, validate_mig_strategy="single") == []
    assert _validate_problems(facts, {"nvidia.com/gpu": "2"}, validate_mig_strategy="single") == [
        "allocatable nvidia.com/gpu is 2, expected 4"]
    assert _validate_problems(facts, {"nvidia.com/mig-3g.40gb": "4"}, validate_mig_strategy="mixed") == []


def test_validate_expects_renamed_shared_gpus():
    problems = _validate_problems(H100_FACTS, {"nvidia.com/gpu.shared": "32"}, validate_gpu_replicas=4,
                                  validate_gpu_rename_by_default=True)
    assert problems == []
    assert _validate_problems(H100_FACTS, {"nvidia.com/gpu": "32"}, validate_gpu_replicas=4) == []
    assert _validate_problems(H100_FACTS, {"nvidia.com/gpu": "8"}, validate_gpu_replicas=4) == [
        "allocatable nvidia.com/gpu is 8, expected 32"]


def test_validate_reads_the_device_plugin_settings_from_the_inventory():
    """validate's defaults follow the nvidia_device_plugin variables the inventory sets."""
    renderer = k8s.Renderer(EXAMPLE, "validate", facts={"gpu1": _mig_facts()}, overrides={
        "nvidia_device_plugin_mig_strategy": "mixed"})
    assert renderer.expr("gpu1", "validate_expected_resources")["resources"] == {
        "nvidia.com/mig-*": {"count": 1, "exact": False}}


# --- 5 and 10. validate waits for the device plugin, and reads the reboot marker -------

FAKE_KUBECTL = r'''#!{python}
"""Answers validate's kubectl reads: the node advertises its GPUs from the 3rd read on."""
import json, sys
from pathlib import Path
args = sys.argv[1:]
count = Path(__file__).with_suffix(".count")
if "runtimeclass" in args:
    print("runtimeclass.node.k8s.io/nvidia")
    sys.exit(0)
if "nodes" in args:
    reads = int(count.read_text()) + 1 if count.exists() else 1
    count.write_text(str(reads))
    allocatable = {{"cpu": "4", "nvidia.com/gpu": "8" if reads >= 3 else "0"}}
    node = {{"kind": "Node", "metadata": {{"name": "localhost", "labels": {{}}}},
             "status": {{"allocatable": allocatable, "conditions": [{{"type": "Ready", "status": "True"}}]}}}}
    print(json.dumps({{"kind": "List", "items": [node]}}))
    sys.exit(0)
sys.exit("unexpected: %s" % args)
'''


def _validate_run(tmp_path, marker_text=None):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL.format(python=sys.executable), encoding="utf-8")
    kubectl.chmod(0o755)
    marker = tmp_path / "reboot-required"
    if marker_text is not None:
        marker.write_text(marker_text, encoding="utf-8")
    expected = {"resources": {"nvidia.com/gpu": {"count": 8, "exact": True}}, "problems": [], "notes": []}
    plays = [{"name": "Validate", "hosts": "k8s_cluster", "gather_facts": False,
              "roles": [{"role": "kubegpu.cluster.validate"}],
              "post_tasks": [_write_out("row", "_validate_row")]}]
    return _run(tmp_path, plays, extra_vars={
        "kubegpu_gpu_node": True, "validate_kubectl_bin": str(kubectl), "validate_kubeconfig": "/dev/null",
        "validate_control_plane_group": "k8s_cluster", "validate_smoke_test": False,
        "validate_runtime_class": "", "validate_fail_on_error": False, "validate_ready_timeout": 30,
        "validate_expected_resources": expected, "validate_expected_gpus": 8,
        "validate_reboot_marker": str(marker)})


def test_validate_waits_until_the_device_plugin_advertises_the_gpus(tmp_path):
    done = _validate_run(tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["result"] == "PASS", row
    assert int((tmp_path / "kubectl.count").read_text()) >= 3


def test_validate_reports_a_node_that_needs_a_reboot(tmp_path):
    done = _validate_run(tmp_path, marker_text="os_prereqs: nouveau is loaded; reboot to unload it\n")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    row = json.loads((tmp_path / "row.json").read_text())
    assert row["result"].startswith("REBOOT REQUIRED"), row
    assert "nouveau" in row["result"]


# --- 1 (stage run alone). stage 7 and validate read the handlers from the host ---------

def test_a_stage_run_alone_reads_the_handlers_from_the_host(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text((CONTAINERD / "nvidia-ctk-configured-1.7.24.toml").read_text(encoding="utf-8"), encoding="utf-8")
    plays = [{"name": "Stage 7 alone", "hosts": "k8s_cluster", "gather_facts": False,
              "roles": [{"role": "kubegpu.cluster.kubegpu"}],
              "tasks": [{"name": "Read", "ansible.builtin.include_role": {
                  "name": "kubegpu.cluster.container_runtime", "tasks_from": "cri_handlers.yml"}},
                  _write_out("handlers", "hostvars[inventory_hostname].container_runtime_cri_handlers")]}]
    done = _run(tmp_path, plays, extra_vars={"container_runtime_containerd_config_path": str(config)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    handlers = json.loads((tmp_path / "handlers.json").read_text())
    assert "nvidia" in handlers["names"]
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _runtime_class
    assert handlers == _runtime_class.cri_handlers(config.read_text(encoding="utf-8"))


# --- 6. docker is refused for Kubernetes nodes -------------------------------------------

def test_preflight_refuses_docker_on_a_kubernetes_node():
    renderer = k8s.Renderer(EXAMPLE, "preflight", overrides={"kubegpu_container_runtime": "docker"})
    problems = renderer.expr("gpu1", "_preflight_runtime_problems")
    assert len(problems) == 1 and problems[0]["variable"] == "kubegpu_container_runtime"
    assert "cri-dockerd" in problems[0]["problem"] and "containerd" in problems[0]["fix"]
    assert k8s.Renderer(EXAMPLE, "preflight").expr("gpu1", "_preflight_runtime_problems") == []


def test_kubernetes_role_refuses_docker_in_preflights_words(tmp_path):
    """Stage 5's first task, run alone: docker refused with the record preflight gives
    (_preflight_rules.container_runtime_problem through the same filter); containerd passes."""
    tasks = yaml.safe_load((k8s.ROLES / "kubernetes" / "tasks" / "main.yml").read_text(encoding="utf-8"))[:1]
    assert "container_runtime_problems" in str(tasks[0])
    plays = [{"name": "check", "hosts": "all", "gather_facts": False,
              "vars_files": [str(k8s.ROLES / "kubegpu" / "defaults" / "main.yml")], "tasks": tasks}]
    # JSON results: the message as written (the YAML format folds long strings and doubles
    # quotes, differently from one ansible-core to another).
    done = _run(tmp_path, plays, extra_vars={"kubegpu_container_runtime": "docker"},
                ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output[-3000:]
    record = _preflight_rules.container_runtime_problem("docker")
    assert json.dumps("localhost: variable kubegpu_container_runtime: %s; fix: %s" % (record["problem"], record["fix"]))[1:-1] \
        in output, output[-3000:]
    done = _run(tmp_path, plays)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


# --- 7. GPU Operator values: no removed values, CDI as the containerd stage has it ------

@pytest.mark.parametrize("inventory, cdi", [({}, True), ({"kubegpu_cdi": False}, False),
                                            ({"kubegpu_cdi": False, "container_runtime_cdi": True}, True),
                                            ({"kubegpu_cdi": False, "container_runtime_nvidia_cdi": True}, True)])
def test_operator_values_follow_the_containerd_cdi_setting(inventory, cdi):
    renderer = k8s.Renderer(EXAMPLE, "gpu_operator", overrides=inventory)
    _text, (values,) = renderer.render("cp1", "values.yaml.j2")
    assert "defaultRuntime" not in values.get("operator", {})
    assert values["cdi"] == {"enabled": cdi}


# --- 8. preflight refers only to variables some role defines -----------------------------

def test_preflight_refers_only_to_real_variables():
    defined = set()
    for role in k8s.ROLES.iterdir():
        specs = role / "meta" / "argument_specs.yml"
        if specs.is_file():
            defined |= set(_preflight_specs.settings_entry_point(yaml.safe_load(specs.read_text(encoding="utf-8")))
                           .get("options") or {})
    import re
    # The facts one stage publishes for another (docs/contracts.md, first column) are real too.
    contracts = (k8s.ROLES.parent / "docs" / "contracts.md").read_text(encoding="utf-8")
    defined |= {name for row in contracts.splitlines() if row.startswith("| `")
                for name in re.findall(r"`([a-z0-9_]+)`", row.split("|")[1])}
    prefixes = "|".join(sorted(p.name for p in k8s.ROLES.iterdir() if p.is_dir() and p.name != "preflight"))
    used = set()
    for path in (k8s.ROLES / "preflight").rglob("*.yml"):
        if "meta" in path.parts:
            continue
        used |= set(re.findall(r"(?<![.\w])((?:%s)_[a-z0-9_]+)\b" % prefixes, path.read_text(encoding="utf-8")))
    assert sorted(used - defined) == []


# --- 9. the kubernetes install is check-mode safe on a host without the key --------------

def test_kubernetes_install_reads_the_key_only_where_it_was_written():
    tasks = yaml.safe_load((k8s.ROLES / "kubernetes" / "tasks" / "install.yml").read_text(encoding="utf-8"))

    def flat(items):
        for task in items:
            if "block" in task:
                yield from flat(task["block"])
            else:
                yield task
    block = list(flat(tasks[0]["block"]))
    for task in block:
        text = json.dumps({k: v for k, v in task.items() if k not in ("name", "when")})
        # An apt call that refreshes the lists: the kubegpu role's entry point `package`.
        refreshes = (task.get("ansible.builtin.apt", {}).get("update_cache")
                     or (task.get("vars") or {}).get("kubegpu_package_update_cache"))
        if "kubernetes-apt-keyring.asc" in text and "get_url" not in text and "deb822" not in text \
                or "_kubernetes_key_show" in text or refreshes:
            assert "ansible_check_mode" in str(task.get("when")), task["name"]
    assert any(task.get("name") == "Download the repository signing key" for task in block)


def test_kubeadm_init_output_with_its_token_stays_out_of_ansible_output():
    """kubeadm init prints the default bootstrap token it creates (valid 24 h) and a join
    command carrying it. Found when the orchestration ran against the simulated kubeadm,
    which prints what kubeadm prints: `-v` showed the token. Both init tasks are no_log;
    the failure message is built from stderr."""
    tasks = yaml.safe_load((ROOT / "roles" / "kubernetes" / "tasks" / "init.yml").read_text())
    found = {}

    def walk(items):
        for task in items or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key))
            argv = (task.get("ansible.builtin.command") or {}).get("argv") or []
            if "init" in argv and "phase" not in argv and "reset" not in argv:
                found[task["name"]] = task.get("no_log")

    walk(tasks)
    assert set(found) == {"Run kubeadm init", "Retry kubeadm init once"}, found
    assert all(value is True for value in found.values()), found
