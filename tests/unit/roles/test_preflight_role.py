# SPDX-License-Identifier: Apache-2.0
"""roles/preflight wired to plugins/plugin_utils/_preflight_inventory.py (docs/preflight.md).

Two levels:
- the role's variables rendered as Ansible renders them (the Renderer of
  test_k8s_render.py: role defaults + role vars + an inventory's variables, hostvars as
  Ansible builds them): booleans given as strings, node names, the inventory report;
- the real ansible-playbook against several localhost aliases (connection local, no
  docker): playbooks/preflight.yml with `-e key=value` booleans and an INI inventory,
  and the inventory check alone (`--tags preflight_inventory`) on a bad inventory.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.tests.unit.compat import cached_facts, edit_cached_facts

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("kubegpu_test_k8s_render", HERE.parent / "test_k8s_render.py")
k8s = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(k8s)

ROOT = HERE.parents[2]
VENV_BIN = Path(sys.executable).parent
MODE_SETTINGS = ("kubegpu_gpu_operator", "gpu_operator_device_plugin_enabled", "kubegpu_container_runtime",
                 "gpu_operator_values", "gpu_operator_toolkit_enabled", "container_runtime_nvidia_toolkit_install",
                 "nvidia_device_plugin_mig_strategy", "nvidia_device_plugin_time_slicing_replicas")

DEBIAN_12 = {"python_version": "3.11.2", "distribution": "Debian", "distribution_version": "12.7",
             "distribution_major_version": "12", "architecture": "x86_64", "memtotal_mb": 1024,
             "processor_vcpus": 4, "interfaces": []}


def _inventory(tmp_path, text):
    path = tmp_path / "hosts.yml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


SMALL = """
    all:
      children:
        kube_control_plane:
          hosts:
            cp1:
        kube_node:
          hosts:
            gpu_1:
              kubernetes_node_name: gpu-1
        k8s_cluster:
          children:
            kube_control_plane:
            kube_node:
    """


def _renderer(tmp_path, overrides=None, text=SMALL):
    facts = {"cp1": DEBIAN_12, "gpu_1": DEBIAN_12}
    return k8s.Renderer(_inventory(tmp_path, text), "preflight", overrides=overrides or {}, host_facts=facts)


def _variables(problems):
    return [p["variable"] for p in problems]


# --- e. booleans from -e / INI: read as the argument spec reads them -----------------

@pytest.mark.parametrize("value", [False, "false", "no", "off", "0", "False", "n"])
def test_unsupported_os_is_refused_when_not_allowed_whatever_the_spelling(tmp_path, value):
    renderer = _renderer(tmp_path, {"preflight_allow_unsupported_os": value,
                                    "preflight_supported_os": {"Ubuntu": ["24.04"]}})
    assert "preflight_supported_os" in _variables(renderer.expr("cp1", "_preflight_host_problems"))
    assert renderer.expr("cp1", "_preflight_host_warnings") == []


@pytest.mark.parametrize("value", [True, "true", "yes", "on", "1", "y"])
def test_unsupported_os_is_a_warning_when_allowed(tmp_path, value):
    renderer = _renderer(tmp_path, {"preflight_allow_unsupported_os": value,
                                    "preflight_supported_os": {"Ubuntu": ["24.04"]}})
    assert "preflight_supported_os" not in _variables(renderer.expr("cp1", "_preflight_host_problems"))
    assert "preflight_supported_os" in _variables(renderer.expr("cp1", "_preflight_host_warnings"))


@pytest.mark.parametrize("value", [False, "false", "no", "off", "0"])
def test_resources_fatal_false_turns_the_resource_check_into_a_warning(tmp_path, value):
    renderer = _renderer(tmp_path, {"preflight_resources_fatal": value})   # cp1 has 1024 MB < 1700 MB
    assert "preflight_min_memory_mb_control_plane" not in _variables(renderer.expr("cp1", "_preflight_host_problems"))
    assert "preflight_min_memory_mb_control_plane" in _variables(renderer.expr("cp1", "_preflight_host_warnings"))


@pytest.mark.parametrize("value", [True, "true", "yes", "on"])
def test_resources_fatal_true_refuses(tmp_path, value):
    renderer = _renderer(tmp_path, {"preflight_resources_fatal": value})
    assert "preflight_min_memory_mb_control_plane" in _variables(renderer.expr("cp1", "_preflight_host_problems"))


def _mode_problems(**variables):
    """The GPU software mode lines of preflight's stage report for gpu1 (plugin_utils/
    _preflight_rules.gpu_mode_problems and the argument specs), the variables given as -e."""
    renderer = k8s.Renderer(k8s.EXAMPLE, "preflight", overrides=variables)
    report = renderer.expr("gpu1", "_preflight_stage_report")
    return ["%s: %s; fix: %s" % (p["variable"], p["problem"], p["fix"]) for p in report["problems"]
            if p["variable"] in MODE_SETTINGS]


@pytest.mark.parametrize("value", ["on", "yes", "True", "1", True])
def test_gpu_operator_on_is_accepted_as_true(value):
    assert _mode_problems(kubegpu_gpu_operator=value) == []
    # ... and read as true: the operator-mode contradictions are checked.
    problems = _mode_problems(kubegpu_gpu_operator=value, gpu_operator_device_plugin_enabled="off")
    assert len(problems) == 1 and "no device plugin" in problems[0], problems


@pytest.mark.parametrize("value", ["off", "no", "false", "0", False])
def test_gpu_operator_off_is_false(value):
    assert _mode_problems(kubegpu_gpu_operator=value, gpu_operator_device_plugin_enabled=False) == []


def test_gpu_operator_toolkit_spelled_on_is_true():
    problems = _mode_problems(kubegpu_gpu_operator="yes", gpu_operator_toolkit_enabled="on")
    assert len(problems) == 1 and "two NVIDIA Container" in problems[0], problems


def test_gpu_operator_not_a_boolean_is_named():
    [problem] = _mode_problems(kubegpu_gpu_operator="maybe")
    assert problem.startswith("kubegpu_gpu_operator: 'maybe' is not a boolean") and problem.endswith("true or false")


# --- a. node names from kubernetes_node_name -----------------------------------------------

def test_underscore_inventory_name_with_a_valid_node_name_passes(tmp_path):
    renderer = _renderer(tmp_path)
    assert "inventory_hostname" not in _variables(renderer.expr("gpu_1", "_preflight_host_problems"))
    assert "kubernetes_node_name" not in _variables(renderer.expr("gpu_1", "_preflight_host_problems"))


def test_invalid_kubernetes_node_name_is_refused(tmp_path):
    renderer = _renderer(tmp_path, {"kubernetes_node_name": "n" * 64})
    [record] = [p for p in renderer.expr("cp1", "_preflight_host_problems") if p["variable"] == "kubernetes_node_name"]
    assert "is 64 characters long, at most 63 are allowed" in record["problem"]


def test_invalid_inventory_name_keeps_its_message(tmp_path):
    renderer = _renderer(tmp_path, text=SMALL.replace("cp1", "Bad_Name"))
    renderer.host_facts = {"Bad_Name": DEBIAN_12}
    [record] = [p for p in renderer.expr("Bad_Name", "_preflight_host_problems")
                if p["variable"] == "inventory_hostname"]
    line = renderer.expr("Bad_Name", "[%r] | kubegpu.cluster.format_problems('Bad_Name')" % record)[0]
    assert line.startswith("host Bad_Name: variable inventory_hostname: node name 'Bad_Name' has upper-case letters")
    assert "fix: name the host in the inventory with a lower-case DNS name" in line


# --- the inventory report through the role's variables ---------------------------------------

def test_inventory_problems_through_the_role_variables(tmp_path):
    renderer = _renderer(tmp_path, {"ansible_play_hosts": ["cp1", "gpu_1"]}, text="""
        all:
          children:
            kube-master:
              hosts:
                cp1:
            kube_node:
              hosts:
                gpu_1:
                  kubernetes_node_name: cp1
                  kubegpu_pod_cidr: 10.244.0.0/16
                  kubegpu_pod_cdir: 10.244.0.0/16
            k8s_cluster:
              children:
                kube-master:
                kube_node:
              vars:
                kube_version: v1.31.2
        """)
    problems = renderer.expr("cp1", "_preflight_inventory_problems")
    text = "\n".join(problems)
    assert "fix: rename group kube-master to kube_control_plane" in text
    assert "hosts cp1, gpu_1: kubernetes_node_name: the same node name 'cp1'" in text
    assert "variable kube_version: a DeepOps/kubespray setting" in text and "kubernetes_version: 1.31.2" in text
    assert "variable kubegpu_pod_cidr: one setting for the whole cluster" in text
    warnings = renderer.expr("cp1", "_preflight_inventory_warnings")
    assert any("variable kubegpu_pod_cdir: not a kubegpu setting" in w for w in warnings), warnings


def test_the_example_inventory_has_no_inventory_problems():
    renderer = k8s.Renderer(k8s.EXAMPLE, "preflight", overrides={"ansible_play_hosts": ["cp1", "gpu1", "cpu1"]})
    assert renderer.expr("cp1", "_preflight_inventory_problems") == []
    assert renderer.expr("cp1", "_preflight_inventory_warnings") == []


def test_no_long_inventory_jinja_is_left_in_the_role():
    """The inventory rules are Python (plugins/plugin_utils/_preflight_inventory.py); the role's
    variables only call the filter."""
    variables = yaml.safe_load((ROOT / "roles" / "preflight" / "vars" / "main.yml").read_text(encoding="utf-8"))
    for name in ("_preflight_inventory", "_preflight_inventory_problems", "_preflight_inventory_warnings",
                 "_preflight_node_name_problems"):
        assert len(str(variables[name])) < 200, name
    for gone in ("_preflight_dup_node_names", "_preflight_dup_addresses", "_preflight_dup_machine_ids",
                 "_preflight_node_name_problem"):
        assert gone not in variables


# --- playbook level: ansible-playbook against localhost aliases --------------------------------

def _playbook(tmp_path, inventory_text, *args, playbook=None, inventory_name="hosts.ini"):
    inventory = tmp_path / inventory_name
    inventory.write_text(textwrap.dedent(inventory_text), encoding="utf-8")
    if playbook is None:
        playbook = tmp_path / "play.yml"
        playbook.write_text(yaml.safe_dump([{"name": "Preflight inventory check", "hosts": "k8s_cluster",
                                             "gather_facts": False,
                                             "roles": [{"role": "kubegpu.cluster.preflight"}]}]),
                            encoding="utf-8")
    env = dict(os.environ,
               ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_GATHERING="implicit",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="4",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env,
                          timeout=600)
    return done, done.stdout + done.stderr


LOCAL = "ansible_connection=local ansible_python_interpreter=%s" % sys.executable
# Whatever networks and cgroup hierarchy the machine running the tests has: not what these
# tests are about (tests/unit/roles/test_preflight_cases.py covers cgroup v1).
NO_NETWORKS = ["-e", json.dumps({"preflight_ignored_interfaces": ["*"], "preflight_cgroup_v1_fatal": False})]


def test_playbook_bad_inventory_is_refused_with_every_rule(tmp_path):
    done, out = _playbook(tmp_path, """
        [kube_control_plane]
        cp1 %(local)s

        [kube_node]
        gpu_1 %(local)s kubernetes_node_name=gpu-1 kubegpu_pod_cidr=10.244.0.0/16
        w1 %(local)s ansible_host=127.0.0.1 ansible_port=2201 kubegpu_pod_cdir=10.1.0.0/16
        w2 %(local)s ansible_host=127.0.0.1 ansible_port=2201 kubernetes_node_name=gpu-1

        [kube-master]
        old1 %(local)s

        [k8s_cluster:children]
        kube_control_plane
        kube_node

        [k8s_cluster:vars]
        kube_pods_subnet=10.233.64.0/18
        kube_version="{{ deepops_kube_version }}"
        """ % {"local": LOCAL}, "--tags", "preflight_inventory")
    assert done.returncode != 0, out[-4000:]
    assert "Preflight: the inventory has 6 problem(s); nothing was changed on any host:" in out, out[-4000:]
    for fragment in (
            "inventory: group kube-master: the DeepOps/kubespray name of kube_control_plane",
            "fix: rename group kube-master to kube_control_plane",
            "hosts gpu_1, w2: kubernetes_node_name: the same node name 'gpu-1'",
            "hosts w1, w2: ansible_host: the same address, one machine listed twice (127.0.0.1, ansible_port 2201)",
            "variable kube_pods_subnet: a DeepOps/kubespray setting that kubegpu does not read",
            "fix: set kubegpu_pod_cidr: 10.233.64.0/18 in group_vars/all instead, and remove kube_pods_subnet",
            # A DeepOps template that cannot resolve without DeepOps: named as written.
            "variable kube_version: a DeepOps/kubespray setting that kubegpu does not read (it is"
            " '{{ deepops_kube_version }}' here, and kubernetes_version keeps its default); fix: set kubernetes_version"
            " in group_vars/all instead",
            "variable kubegpu_pod_cidr: one setting for the whole cluster, but it differs between hosts"
            " (the default on cp1, w1, w2; '10.244.0.0/16' on gpu_1)",
            "Preflight WARNING (not fatal):",
            "hosts w1: variable kubegpu_pod_cdir: not a kubegpu setting, so nothing reads it (closest known name:"
            " kubegpu_pod_cidr)"):
        assert fragment in out, "missing %r in:\n%s" % (fragment, out[-4000:])
    # --tags preflight_inventory: the inventory check alone, no host check ran.
    assert "Fail when this host has problems" not in out


def test_playbook_booleans_from_extra_vars_are_read_as_booleans(tmp_path):
    """-e key=value gives strings: 'false' must not let an unsupported OS through, and
    preflight_resources_fatal=false must turn the too-small control plane into a warning."""
    done, out = _playbook(
        tmp_path, """
        [kube_control_plane]
        cp1 %s

        [k8s_cluster:children]
        kube_control_plane
        """ % LOCAL, *NO_NETWORKS,
        "-e", "preflight_allow_unsupported_os=false", "-e", json.dumps({"preflight_supported_os": {"Ubuntu": ["24.04"]}}),
        "-e", "preflight_resources_fatal=false", "-e", "preflight_min_memory_mb_control_plane=100000000",
        playbook=ROOT / "playbooks" / "preflight.yml")
    assert done.returncode != 0, out[-4000:]
    failure = out[out.index("Preflight: host cp1 has"):]
    assert "host cp1: variable preflight_supported_os:" in failure and "is not a supported OS" in failure
    assert "preflight_min_memory_mb_control_plane" not in failure.split("PLAY RECAP")[0], failure
    warning = out[out.index("Preflight WARNING on host cp1"):out.index("Preflight: host cp1 has")]
    assert "host cp1: variable preflight_min_memory_mb_control_plane: control plane has" in warning


def test_playbook_nat_ports_node_names_and_on_pass(tmp_path):
    """Hosts behind one address on different ports, an inventory name with an underscore and
    a valid kubernetes_node_name, and kubegpu_gpu_operator=on from an INI inventory: the whole
    stage 1 passes."""
    done, out = _playbook(tmp_path, """
        [kube_control_plane]
        cp1 %(local)s ansible_host=127.0.0.1 ansible_port=2222

        [kube_node]
        gpu_1 %(local)s ansible_host=127.0.0.1 ansible_port=2200 kubernetes_node_name=gpu-1

        [k8s_cluster:children]
        kube_control_plane
        kube_node

        [k8s_cluster:vars]
        kubegpu_gpu_operator=on
        """ % {"local": LOCAL}, *NO_NETWORKS, playbook=ROOT / "playbooks" / "preflight.yml")
    assert done.returncode == 0, out[-4000:]
    assert "host gpu_1: variable gpu_node_labels_label_sets: includes gfd while kubegpu_gpu_operator is true" in out, \
        out[-3000:]


def test_playbook_deepops_group_names_get_their_renames(tmp_path):
    """Only DeepOps' group names, no k8s_cluster: the first play of playbooks/preflight.yml
    stops, and names each rename with the inventory's other problems."""
    done, out = _playbook(tmp_path, """
        [kube-master]
        cp1 %(local)s

        [kube-node]
        w1 %(local)s

        [k8s-cluster:children]
        kube-master
        kube-node
        """ % {"local": LOCAL}, playbook=ROOT / "playbooks" / "preflight.yml")
    assert done.returncode != 0, out[-3000:]
    assert "inventory: group k8s_cluster: missing or empty (no host would be prepared)" in out
    for old, new in (("kube-master", "kube_control_plane"), ("kube-node", "kube_node"), ("k8s-cluster", "k8s_cluster")):
        assert "fix: rename group %s to %s" % (old, new) in out, out[-3000:]
    assert "group kube_control_plane: missing or empty" in out
    assert "PLAY [Stage 1 - preflight - find the reachable hosts]" not in out


def test_playbook_decides_from_facts_gathered_in_this_run(tmp_path):
    """The fact cache of an earlier run (gathering = smart keeps it two hours) says the host
    runs Ubuntu 18.04 with Python 3.6: the play's own fact gathering takes the cache and runs
    nothing, preflight gathers again and judges the host as it is now (issue #16: a user who
    applied the fix preflight named is not refused again until the cache expires)."""
    cache = tmp_path / "facts"
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("[kube_control_plane]\ncp1 %s\n\n[k8s_cluster:children]\nkube_control_plane\n" % LOCAL,
                         encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="jsonfile", ANSIBLE_CACHE_PLUGIN_CONNECTION=str(cache),
               ANSIBLE_GATHERING="smart", ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / "preflight.yml"),
            *NO_NETWORKS, "-e", json.dumps({"preflight_supported_os": {"Debian": ["12", "13"], "Ubuntu": ["24.04"]}})]

    def run():
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env,
                              timeout=600)
        return done, done.stdout + done.stderr

    done, out = run()
    assert done.returncode == 0, out[-4000:]
    [entry] = list(cache.iterdir())          # the jsonfile cache entry of cp1
    edit_cached_facts(entry, lambda facts: facts.update(
        ansible_distribution="Ubuntu", ansible_distribution_version="18.04",
        ansible_distribution_major_version="18", ansible_python_version="3.6.8"))

    done, out = run()
    assert done.returncode == 0, out[-4000:]
    assert "TASK [Gathering Facts]" not in out       # the play took the (stale) cache
    assert "Ubuntu 18.04" not in out and "3.6.8" not in out
    facts = cached_facts(entry)
    assert facts["ansible_distribution"] == "Debian"     # this run's facts replaced them
