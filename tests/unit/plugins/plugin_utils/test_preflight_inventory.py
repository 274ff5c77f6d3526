# SPDX-License-Identifier: Apache-2.0
"""Preflight's inventory rules as pure functions (plugins/plugin_utils/_preflight_inventory.py).

Every message the role printed before the rules moved to Python is asserted here word for
word where tests/integration/test_preflight_matrix.py or docs/preflight.md quote it."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter import preflight as flt
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_inventory as pi

ROOT = Path(__file__).resolve().parents[4]
SPECS, REFERENCED = pi.collection_variables(str(ROOT))


def groups(control_planes=("cp1",), workers=("w1",), cluster=None, **extra):
    result = {"all": [], "ungrouped": []}
    if control_planes is not None:
        result["kube_control_plane"] = list(control_planes)
    if workers is not None:
        result["kube_node"] = list(workers)
    members = list(dict.fromkeys(list(control_planes or []) + list(workers or [])))
    result["k8s_cluster"] = list(cluster) if cluster is not None else members
    result.update(extra)
    result["all"] = sorted(set(h for hosts in result.values() for h in hosts))
    return result


def report(grp, hosts=None, machine_ids=None):
    hosts = dict(hosts or {})
    for host in grp.get("all", []):
        hosts.setdefault(host, {})
    return pi.inventory_report(grp, hosts, machine_ids, specs=SPECS, known=REFERENCED)


def test_a_good_inventory_has_no_problems():
    assert report(groups(control_planes=("cp1",), workers=("gpu1", "cpu1"))) == {"problems": [], "warnings": []}


def test_single_node_cluster_is_valid():
    assert report(groups(control_planes=("cp1",), workers=None))["problems"] == []


# --- the messages kept from the Jinja version ------------------------------------------

def test_missing_control_plane():
    problems = report(groups(control_planes=None, workers=("w1",)))["problems"]
    assert problems == ["inventory: group kube_control_plane: missing or empty; fix: list the control-plane"
                        " host(s) (1, or 3/5 for HA) under kube_control_plane and make it a child of k8s_cluster"]


def test_even_control_planes_and_etcd():
    problems = report(groups(control_planes=("cp1", "cp2"), workers=(), etcd=["cp1", "cp2"]))["problems"]
    assert "inventory: group kube_control_plane: has 2 hosts (cp1, cp2), an even number: etcd needs an odd" \
           " number for quorum; fix: use 1, 3 or 5 control planes" in problems
    assert "inventory: group etcd: has 2 hosts (cp1, cp2), an even number or none: etcd needs an odd number" \
           " for quorum; fix: list 1, 3 or 5 hosts under etcd, or remove the group" in problems


def test_empty_etcd_group_and_empty_cluster():
    problems = report(groups(cluster=[], etcd=[]))["problems"]
    assert any(p.startswith("inventory: group etcd: has 0 hosts ()") for p in problems)
    assert "inventory: group k8s_cluster: missing or empty; fix: make kube_control_plane and kube_node" \
           " children of k8s_cluster" in problems


def test_hosts_outside_and_inside_k8s_cluster():
    problems = report(groups(cluster=["cp1", "stray"]))["problems"]
    assert "hosts w1: group k8s_cluster: in kube_control_plane or kube_node but not in k8s_cluster; fix: make" \
           " kube_control_plane and kube_node children of k8s_cluster" in problems
    assert "hosts stray: group k8s_cluster: in k8s_cluster but in neither kube_control_plane nor kube_node;" \
           " fix: add them to kube_node (workers) or kube_control_plane" in problems


def test_same_inventory_names_case_insensitively():
    problems = report(groups(workers=("W1", "w1")))["problems"]
    assert problems == ["hosts W1, w1: inventory_hostname: the same node name 'w1' (names compare"
                        " case-insensitively); fix: give every host a unique lower-case name"]


def test_same_address_is_one_machine_listed_twice():
    hosts = {"w1": {"ansible_host": "10.0.0.5"}, "w1-again": {"ansible_host": "10.0.0.5"}}
    problems = report(groups(workers=("w1", "w1-again")), hosts)["problems"]
    assert len(problems) == 1
    assert problems[0].startswith("hosts w1, w1-again: ansible_host: the same address, one machine listed twice")
    assert "fix: list every machine once" in problems[0]


def test_same_machine_id_is_a_warning():
    result = report(groups(workers=("w1", "w2")), machine_ids={"cp1": "a", "w1": "b", "w2": "b"})
    assert result["problems"] == []
    assert result["warnings"] == ["hosts w1, w2: /etc/machine-id: the same machine id (cloned image, or one machine"
                                  " listed twice); fix: on each clone run rm /etc/machine-id &&"
                                  " systemd-machine-id-setup, then reboot"]


# --- a. node names are what kubeadm registers --------------------------------------------

def test_node_name_comes_from_kubernetes_node_name():
    assert pi.node_name("gpu_1", {"kubernetes_node_name": "gpu-1"}) == ("gpu-1", "kubernetes_node_name")
    assert pi.node_name("gpu-1", {}) == ("gpu-1", "inventory_hostname")
    assert pi.node_name("gpu-1", {"kubernetes_node_name": ""}) == ("gpu-1", "inventory_hostname")


def test_underscore_inventory_name_with_a_valid_node_name_passes():
    assert pi.node_name_problems("gpu_1", "gpu-1") == []


def test_invalid_inventory_name_keeps_its_message():
    [record] = pi.node_name_problems("Bad_Name")
    assert record["variable"] == "inventory_hostname"
    assert record["problem"].startswith("node name 'Bad_Name' has upper-case letters")
    assert record["fix"].startswith("name the host in the inventory with a lower-case DNS name")


def test_invalid_kubernetes_node_name_is_refused_even_with_a_valid_inventory_name():
    [record] = pi.node_name_problems("gpu-1", "GPU_1")
    assert record["variable"] == "kubernetes_node_name"
    assert "'GPU_1' has upper-case letters" in record["problem"]
    assert record["fix"].startswith("set kubernetes_node_name to a lower-case DNS name")


@pytest.mark.parametrize("length, ok", [(63, True), (64, False), (254, False)])
def test_node_names_over_63_characters_are_refused(length, ok):
    name = ("a" * (length - 4)) + ".b-c"
    assert (pi.node_name_problem(name) == "") is ok
    if not ok:
        assert "is %d characters long, at most 63 are allowed" % length in pi.node_name_problem(name)
        assert "kubernetes.io/hostname" in pi.node_name_problem(name)
        [record] = pi.node_name_problems("gpu1", name)
        assert record["variable"] == "kubernetes_node_name"


def test_fqdn_node_names_are_valid():
    assert pi.node_name_problem("gpu-1.lab.example.com") == ""


def test_colliding_kubernetes_node_names_are_refused():
    hosts = {"gpu_a": {"kubernetes_node_name": "gpu-1"}, "gpu_b": {"kubernetes_node_name": "GPU-1"}}
    problems = report(groups(workers=("gpu_a", "gpu_b")), hosts)["problems"]
    assert problems == ["hosts gpu_a, gpu_b: kubernetes_node_name: the same node name 'gpu-1' (kubernetes_node_name,"
                        " or the inventory name where it is not set; names compare case-insensitively); fix: give"
                        " every host a unique lower-case node name"]


def test_a_node_name_colliding_with_another_hosts_inventory_name_is_refused():
    problems = report(groups(workers=("w1", "w2")), {"w2": {"kubernetes_node_name": "w1"}})["problems"]
    assert len(problems) == 1 and problems[0].startswith("hosts w1, w2: kubernetes_node_name: the same node name 'w1'")


def test_distinct_node_names_for_colliding_inventory_names_in_other_case():
    hosts = {"W1": {"kubernetes_node_name": "w1-upper"}}
    assert report(groups(workers=("W1", "w1")), hosts)["problems"] == []


# --- b. one address, several ports -------------------------------------------------------

def test_same_address_on_different_ports_is_not_listed_twice():
    hosts = {"cp1": {"ansible_host": "127.0.0.1", "ansible_port": 2222},
             "w1": {"ansible_host": "127.0.0.1", "ansible_port": "2200"},
             "w2": {"ansible_host": "127.0.0.1", "ansible_port": 2201}}
    assert report(groups(workers=("w1", "w2")), hosts)["problems"] == []


def test_same_address_and_port_is_listed_twice():
    hosts = {"w1": {"ansible_host": "127.0.0.1", "ansible_port": 2200},
             "w2": {"ansible_host": "127.0.0.1", "ansible_port": "2200"}}
    [problem] = report(groups(workers=("w1", "w2")), hosts)["problems"]
    assert problem.startswith("hosts w1, w2: ansible_host: the same address, one machine listed twice"
                              " (127.0.0.1, ansible_port 2200)")
    assert "need their own ansible_port" in problem


# --- c. migration from DeepOps and kubespray -------------------------------------------

@pytest.mark.parametrize("old, new", sorted(pi.LEGACY_GROUPS.items()))
def test_old_group_names_are_refused_with_the_rename(old, new):
    grp = groups(control_planes=None, workers=None, cluster=[])
    grp[old] = ["cp1"]
    problems = report(grp)["problems"]
    assert ("inventory: group %s: the DeepOps/kubespray name of %s" % (old, new)) in problems[0]
    assert "fix: rename group %s to %s" % (old, new) in problems[0]


def test_deepops_inventory_is_refused_with_every_rename():
    grp = {"all": ["mgmt01", "gpu01"], "ungrouped": [], "kube-master": ["mgmt01"], "etcd": ["mgmt01"],
           "kube-node": ["gpu01"], "k8s-cluster": ["mgmt01", "gpu01"]}
    problems = report(grp)["problems"]
    text = "\n".join(problems)
    for rename in ("rename group kube-master to kube_control_plane", "rename group kube-node to kube_node",
                   "rename group k8s-cluster to k8s_cluster"):
        assert rename in text
    assert "group etcd" not in text   # etcd keeps its name and has one host


def test_old_group_repeating_the_new_one_is_only_a_warning():
    grp = groups()
    grp["kube-master"] = ["cp1"]
    result = report(grp)
    assert result["problems"] == []
    assert result["warnings"] == ["inventory: group kube-master: the DeepOps/kubespray name of kube_control_plane;"
                                  " kubegpu reads only kube_control_plane, which already has all its hosts; fix:"
                                  " remove group kube-master (move its group_vars to kube_control_plane)"]


def test_empty_old_group_is_ignored():
    grp = groups()
    grp["kube-node"] = []
    assert report(grp) == {"problems": [], "warnings": []}


@pytest.mark.parametrize("old, value, fix", [
    ("kube_pods_subnet", "10.233.64.0/18", "fix: set kubegpu_pod_cidr: 10.233.64.0/18 in group_vars/all instead,"
                                           " and remove kube_pods_subnet"),
    ("kube_service_addresses", "10.233.0.0/18", "fix: set kubegpu_service_cidr: 10.233.0.0/18"),
    ("kube_version", "v1.28.3", "fix: set kubernetes_version: 1.28.3 in group_vars/all instead (the exact version"
                                " without the leading v, e.g. 1.35.4)"),
    ("container_manager", "containerd", "fix: set kubegpu_container_runtime: containerd"),
    ("container_manager", "crio", "fix: set kubegpu_container_runtime in group_vars/all instead (containerd on"
                                  " Kubernetes nodes; kubegpu has no CRI-O)"),
    ("deepops_gpu_operator_enabled", "yes", "fix: set kubegpu_gpu_operator: true"),
    ("k8s_gpu_mig_strategy", "mixed", "fix: set nvidia_device_plugin_mig_strategy: mixed"),
    ("http_proxy", "http://proxy:3128", "fix: set kubegpu_http_proxy: http://proxy:3128"),
    ("https_proxy", "http://proxy:3128", "fix: set kubegpu_https_proxy: http://proxy:3128"),
    ("no_proxy", "localhost", "fix: set kubegpu_no_proxy: localhost"),
    ("loadbalancer_apiserver", {"address": "10.0.0.9", "port": 8443},
     "fix: set kubernetes_control_plane_endpoint: 10.0.0.9:8443"),
    ("kubeconfig_localhost", True, "fix: set kubernetes_fetch_kubeconfig: true"),
    ("calico_ipip_mode", "Always", "fix: set calico_encapsulation in group_vars/all instead (one of IPIP,"),
    ("kube_network_plugin", "calico", "a DeepOps/kubespray setting with no kubegpu equivalent (kubegpu installs"
                                      " Calico"),
    ("gpu_operator_preinstalled_nvidia_software", True, "fix: remove gpu_operator_preinstalled_nvidia_software"),
])
def test_old_variables_are_refused_with_the_kubegpu_name(old, value, fix):
    hosts = dict((h, {old: value}) for h in ("cp1", "w1"))
    [problem] = report(groups(), hosts)["problems"]
    assert problem.startswith("hosts cp1, w1: variable %s: a DeepOps/kubespray setting" % old)
    assert fix in problem


def test_old_variable_beside_its_kubegpu_variable_is_a_warning():
    hosts = {"cp1": {"http_proxy": "http://p:3128", "kubegpu_http_proxy": "http://p:3128"}}
    result = report(groups(), hosts)
    assert result["problems"] == []
    assert result["warnings"] == ["hosts cp1: variable http_proxy: a DeepOps/kubespray setting that kubegpu does"
                                  " not read (kubegpu reads kubegpu_http_proxy, which is set); fix: remove"
                                  " http_proxy unless something else uses it"]


def test_old_variable_as_an_unresolved_template_gets_no_value_suggested():
    hosts = {"cp1": {"kube_version": "{{ deepops_kube_version }}"}}
    [problem] = report(groups(), hosts)["problems"]
    assert "fix: set kubernetes_version in group_vars/all instead" in problem


def test_every_kubegpu_name_the_migration_and_cluster_rules_use_is_a_real_option():
    """Never invent a variable: each replacement and each cluster-wide name is an option of a
    role's meta/argument_specs.yml."""
    options = {}
    for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["argument_specs"].values():
            options.update(entry.get("options") or {})
    replacements = set(new for new, _note, _convert in pi.LEGACY_VARIABLES.values() if new)
    assert sorted(replacements - set(options)) == []
    assert sorted(set(pi.CLUSTER_WIDE) - set(options)) == []
    assert not set(pi.LEGACY_VARIABLES) & set(options), "a legacy name is a kubegpu option"
    assert set(pi.LEGACY_GROUPS.values()) == {"kube_control_plane", "kube_node", "k8s_cluster"}


@pytest.mark.parametrize("typo, closest", [
    ("kubegpu_pod_cdir", "kubegpu_pod_cidr"),
    ("kubegpu_gpu_operater", "kubegpu_gpu_operator"),
    ("kubegpu_http_prox", "kubegpu_http_proxy"),
])
def test_unknown_kubegpu_names_get_a_warning_with_the_closest_name(typo, closest):
    result = report(groups(), {"cp1": {typo: "x"}, "w1": {typo: "x"}})
    assert result["problems"] == []
    assert result["warnings"] == ["hosts cp1, w1: variable %s: not a kubegpu setting, so nothing reads it (closest"
                                  " known name: %s); fix: rename it to %s if that is what you meant"
                                  % (typo, closest, closest)]


def test_unknown_kubegpu_name_without_a_close_one():
    [warning] = report(groups(), {"cp1": {"kubegpu_zzzzzzzz": 1}})["warnings"]
    assert "fix: remove it (ansible-doc -t role kubegpu.cluster.kubegpu lists the kubegpu_* settings)" in warning


def test_kubegpu_names_the_collection_publishes_are_known():
    hosts = {"cp1": {"kubegpu_gpu_node": False, "kubegpu_gpu_facts_fresh": True, "kubegpu_pod_cidr": "10.1.0.0/16"}}
    hosts["w1"] = dict(hosts["cp1"])
    assert report(groups(), hosts) == {"problems": [], "warnings": []}


def test_collection_variables_reads_the_roles():
    assert SPECS["kubegpu_gpu_operator"] == "bool"
    assert SPECS["calico_block_size"] == "int"
    assert "kubegpu_gpu_facts_fresh" in REFERENCED and "kubegpu_gpu_facts_fresh" not in SPECS
    assert pi.collection_variables(str(ROOT / "nowhere")) == ({}, frozenset())


def test_unknown_names_are_not_judged_without_the_collection_specs():
    result = pi.inventory_report(groups(), {"cp1": {"kubegpu_pod_cdir": "x"}}, specs=None)
    assert result["warnings"] == []


# --- d. one value across the cluster -----------------------------------------------------

def test_pod_cidr_in_one_hosts_host_vars_is_refused():
    hosts = {"gpu1": {"kubegpu_pod_cidr": "10.244.0.0/16"}}
    [problem] = report(groups(workers=("gpu1", "cpu1")), hosts)["problems"]
    assert problem == ("hosts cp1, gpu1, cpu1: variable kubegpu_pod_cidr: one setting for the whole cluster, but it"
                       " differs between hosts (the default on cp1, cpu1; '10.244.0.0/16' on gpu1); fix: set"
                       " kubegpu_pod_cidr once, in group_vars/all, and remove it from host_vars and the group_vars"
                       " of other groups")


def test_gpu_operator_mode_only_in_group_vars_kube_node_is_refused():
    hosts = {"gpu1": {"kubegpu_gpu_operator": True}, "cpu1": {"kubegpu_gpu_operator": True}}
    [problem] = report(groups(workers=("gpu1", "cpu1")), hosts)["problems"]
    assert problem.startswith("hosts cp1, gpu1, cpu1: variable kubegpu_gpu_operator: one setting for the whole"
                              " cluster, but it differs between hosts (the default on cp1; true on gpu1, cpu1)")


@pytest.mark.parametrize("variable, values", [
    ("kubegpu_service_cidr", ("10.96.0.0/12", "10.97.0.0/16", "10.96.0.0/12")),
    ("kubernetes_version", ("1.35.4", "1.35.4", "1.34.1")),
    ("kubernetes_control_plane_endpoint", ("lb:6443", "lb:6443", "10.0.0.1:6443")),
    ("nvidia_device_plugin_mig_strategy", ("single", "mixed", "single")),
    ("gpu_operator_values", ({"nfd": {"enabled": False}}, {}, {})),
])
def test_cluster_wide_settings_must_agree(variable, values):
    hosts = dict((h, {variable: v}) for h, v in zip(("cp1", "gpu1", "cpu1"), values))
    [problem] = report(groups(workers=("gpu1", "cpu1")), hosts)["problems"]
    assert "variable %s: one setting for the whole cluster" % variable in problem
    assert "fix: set %s once, in group_vars/all" % variable in problem


def test_the_same_value_everywhere_passes_whatever_its_spelling():
    """'on' from an INI group and true from YAML are the same boolean; '26' and 26 the same int."""
    hosts = {"cp1": {"kubegpu_gpu_operator": True, "calico_block_size": 26, "kubegpu_pod_cidr": "10.1.0.0/16"},
             "w1": {"kubegpu_gpu_operator": "on", "calico_block_size": "26", "kubegpu_pod_cidr": "10.1.0.0/16"}}
    assert report(groups(), hosts)["problems"] == []


def test_a_difference_outside_k8s_cluster_does_not_count():
    grp = groups()
    grp["bastion"] = ["jump"]
    assert report(grp, {"jump": {"kubegpu_pod_cidr": "10.9.0.0/16"}})["problems"] == []


def test_long_host_lists_are_shortened():
    workers = ["w%02d" % i for i in range(20)]
    hosts = dict((w, {"kubegpu_pod_cidr": "10.9.0.0/16"}) for w in workers)
    [problem] = report(groups(workers=workers), hosts)["problems"]
    assert "... (21 hosts)" in problem and "w19" not in problem


# --- e. booleans typed once --------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("false", False), ("False", False), ("no", False), ("off", False),
    ("0", False), (0, False), ("n", False), ("on", True), ("yes", True), ("1", True), ("TRUE", True),
    (1, True), ("y", True), ("t", True), (None, False),
])
def test_booleans_are_read_as_the_argument_spec_reads_them(value, expected):
    assert pi.boolean(value) is expected
    assert pi.boolean_problem(value, "preflight_resources_fatal") == ""


@pytest.mark.parametrize("value", ["maybe", "", "2", [], {}])
def test_non_booleans_are_named(value):
    with pytest.raises(TypeError):
        pi.boolean(value)
    problem = pi.boolean_problem(value, "kubegpu_gpu_operator")
    assert problem.startswith("kubegpu_gpu_operator: ") and "is not a boolean" in problem
    assert problem.endswith("fix: true or false")


# --- the filter (plugins/filter/preflight.py) ---------------------------------------------


class _HostVars(dict):
    """hostvars as Ansible hands it over: per host a mapping that templates on access, and
    raw_get for the variables as written."""

    def __init__(self, hosts, failing=()):
        super().__init__((h, _Vars(v, failing)) for h, v in hosts.items())
        self.raw = hosts

    def raw_get(self, host):
        return self.raw[host]


class _Vars(dict):
    def __init__(self, values, failing):
        super().__init__(values)
        self.failing = failing

    def __getitem__(self, key):
        if key in self.failing:
            raise RuntimeError("'deepops_thing' is undefined")
        return super().__getitem__(key)


def test_filter_reads_hostvars_and_the_collection():
    grp = groups()
    hostvars = _HostVars({"cp1": {"kubegpu_pod_cidr": "10.1.0.0/16", "kubegpu_pod_cdir": "x", "other": 1,
                                  "ansible_facts": {"machine_id": "m"}},
                          "w1": {"ansible_facts": {"machine_id": "m"}}})
    result = flt.preflight_inventory(grp, hostvars, ["cp1", "w1"])
    assert [p.split(":")[1].strip() for p in result["problems"]] == ["variable kubegpu_pod_cidr"]
    assert any("variable kubegpu_pod_cdir: not a kubegpu setting" in w for w in result["warnings"])
    assert any("/etc/machine-id" in w for w in result["warnings"])


def test_filter_takes_an_unresolvable_deepops_template_as_written():
    hostvars = _HostVars({"cp1": {"kube_version": "{{ deepops_thing }}"}, "w1": {}}, failing=("kube_version",))
    [problem] = flt.preflight_inventory(groups(), hostvars)["problems"]
    assert "(it is '{{ deepops_thing }}' here" in problem


def test_filter_names_an_unresolvable_cluster_wide_value():
    hostvars = _HostVars({"cp1": {"kubegpu_pod_cidr": "{{ nope }}"}, "w1": {}}, failing=("kubegpu_pod_cidr",))
    with pytest.raises(AnsibleFilterError, match=r"host cp1: variable kubegpu_pod_cidr: its value does not resolve"):
        flt.preflight_inventory(groups(), hostvars)


def test_filter_booleans():
    assert flt.spec_bool("false", "preflight_allow_unsupported_os") is False
    assert flt.spec_bool("on") is True
    assert flt.spec_bool_problem("on", "kubegpu_gpu_operator") == ""
    with pytest.raises(AnsibleFilterError, match=r"^preflight_resources_fatal: 'maybe' is not a boolean"):
        flt.spec_bool("maybe", "preflight_resources_fatal")


def test_filter_node_name_problems():
    assert flt.preflight_node_name_problems("gpu_1", "gpu-1") == []
    assert flt.preflight_node_name_problems("gpu_1")[0]["variable"] == "inventory_hostname"
