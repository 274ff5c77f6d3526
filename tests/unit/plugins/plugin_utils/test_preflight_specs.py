# SPDX-License-Identifier: Apache-2.0
"""Every stage's argument spec checked in stage 1 (plugins/plugin_utils/_preflight_specs.py)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps

ROOT = Path(__file__).resolve().parents[4]
SPECS = ps.collection_specs(str(ROOT))


def lines(variables):
    return format_problems(ps.spec_problems(variables, SPECS), "cp1")


def test_every_role_main_entry_point_is_loaded():
    roles = set(role for entries in SPECS.values() for role, _option in entries)
    on_disk = set(p.parent.parent.name for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
    assert roles == on_disk
    assert "kubegpu_apply_source" not in SPECS      # kubegpu's task entry points are not settings
    choices = SPECS["calico_encapsulation"][0][1]["choices"]
    assert choices == ["IPIP", "IPIPCrossSubnet", "VXLAN", "VXLANCrossSubnet", "None"]


def test_every_role_default_passes_its_own_spec():
    """The collection's own defaults are values the check accepts (templates aside)."""
    defaults = ps.collection_defaults(str(ROOT))
    plain = dict((name, value) for name, value in defaults.items()
                 if name in SPECS and not (isinstance(value, str) and "{{" in value))
    assert ps.spec_problems(plain, SPECS) == []


@pytest.mark.parametrize("name", ["all.yml", "k8s_cluster.yml"])
def test_the_example_inventory_passes(name):
    data = yaml.safe_load((ROOT / "inventory" / "example" / "group_vars" / name).read_text(encoding="utf-8")) or {}
    assert ps.spec_problems(dict((k, v) for k, v in data.items() if k in SPECS), SPECS) == []


def test_only_variables_with_a_spec_are_checked():
    assert lines({"my_own_variable": ["anything"], "ansible_host": 12}) == []


def test_choices_are_case_sensitive_with_the_exact_spelling_as_fix():
    assert lines({"calico_encapsulation": "vxlan"}) == [
        "host cp1: variable calico_encapsulation: 'vxlan' is not one of the accepted values (accepted: IPIP,"
        " IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None; exact spelling, case matters); fix: calico_encapsulation:"
        " VXLAN"]
    assert lines({"calico_encapsulation": "VXLAN"}) == []


def test_a_choice_with_no_near_spelling_lists_them():
    [line] = lines({"kubernetes_package_source": "apt"})
    assert line.endswith("fix: set kubernetes_package_source to one of: repo, local, none")


def test_an_empty_choice_is_shown_quoted():
    [line] = lines({"kubernetes_kube_proxy_mode": "userspace"})
    assert "(accepted: '', iptables, ipvs, nftables;" in line


def test_list_choices_name_the_element():
    [line] = lines({"gpu_node_labels_label_sets": ["gfd", "nfd"]})
    assert "'nfd' is not one of the accepted values (accepted: a list of: gfd, aliyun, kubegpu" in line
    [line] = lines({"gpu_node_labels_label_sets": ["GFD"]})
    assert line.endswith("fix: gpu_node_labels_label_sets: [gfd]")


@pytest.mark.parametrize("value", [True, False, "on", "off", "yes", "no", "1", "0", 1, 0, "True", None])
def test_booleans_are_read_as_the_spec_reads_them(value):
    assert lines({"kubegpu_offline": value}) == []


def test_not_a_boolean():
    assert lines({"kubegpu_offline": "maybe"}) == [
        "host cp1: variable kubegpu_offline: 'maybe' is not a boolean (accepted: true or false; Ansible also reads"
        " yes/no, on/off, 1/0); fix: kubegpu_offline: true or false"]


def test_a_string_where_a_list_is_expected():
    """Ansible's check would split 'a,b' into a list, but the role reads the string."""
    [line] = lines({"kubernetes_apiserver_cert_sans": "a.example.com,b.example.com"})
    assert line.startswith("host cp1: variable kubernetes_apiserver_cert_sans: 'a.example.com,b.example.com' is a"
                           " string, not a list (accepted: a list of strings); fix: write kubernetes_apiserver_cert_sans"
                           " as a YAML list")
    assert "or with -e as JSON (-e '{\"kubernetes_apiserver_cert_sans\": [\"a\", \"b\"]}')" in line


def test_a_string_where_a_mapping_is_expected():
    [line] = lines({"os_prereqs_sysctl": "net.ipv4.ip_forward=1"})
    assert "is a string, not a mapping (accepted: a mapping); fix: write os_prereqs_sysctl as a YAML mapping" in line


def test_a_list_where_a_string_is_expected():
    [line] = lines({"kubernetes_cluster_name": ["a"]})
    assert line == ("host cp1: variable kubernetes_cluster_name: [\"a\"] is a list, not a string (accepted: a string);"
                    " fix: set kubernetes_cluster_name to a string")


def test_list_elements():
    [line] = lines({"container_runtime_registry_mirrors": [{"registry": "docker.io"}, "mirror.gcr.io"]})
    assert "element 1 ('mirror.gcr.io') is a string, not a mapping (accepted: a list of mappings)" in line
    [line] = lines({"kubernetes_packages": ["kubelet", ["kubeadm"]]})
    assert "element 1 ([\"kubeadm\"]) is a list (accepted: a list of strings)" in line


@pytest.mark.parametrize("value", [26, "26", " 26"])
def test_numbers_from_extra_vars_are_numbers(value):
    assert lines({"calico_block_size": value}) == []


def test_not_a_number():
    [line] = lines({"calico_mtu": "jumbo"})
    assert line == ("host cp1: variable calico_mtu: 'jumbo' is a string, not an int (accepted: a whole number);"
                    " fix: set calico_mtu to a whole number")
    [line] = lines({"kubernetes_join_retries": True})
    assert "true is a boolean, not a whole number" in line


@pytest.mark.parametrize("name, value, accepted", [
    ("calico_block_size", 40, "20 to 32"), ("calico_block_size", 19, "20 to 32"),
    ("kubernetes_apiserver_port", 0, "1 to 65535"), ("kubernetes_apiserver_port", "70000", "1 to 65535"),
    ("nvidia_device_plugin_dcgm_exporter_port", 99999, "1 to 65535"),
    ("nvidia_device_plugin_time_slicing_replicas", -1, "0 or more"), ("validate_gpu_replicas", 0, "1 or more"),
    ("kubegpu_package_lock_timeout", -5, "0 or more"), ("kubernetes_join_retries", -1, "0 or more"),
])
def test_numbers_out_of_range(name, value, accepted):
    [line] = lines({name: value})
    assert "is out of range (accepted: %s" % accepted in line, line


@pytest.mark.parametrize("name, value", [("calico_block_size", 20), ("calico_block_size", 32),
                                         ("kubernetes_apiserver_port", 6443),
                                         ("nvidia_device_plugin_time_slicing_replicas", 0),
                                         ("kubegpu_package_lock_timeout", 0)])
def test_numbers_in_range(name, value):
    assert lines({name: value}) == []


def test_null_for_an_option_with_a_default():
    [line] = lines({"kubernetes_dns_domain": None})
    assert line == ("host cp1: variable kubernetes_dns_domain: is empty (null) (accepted: a string); fix: give"
                    " kubernetes_dns_domain a value, or remove it to keep the default 'cluster.local'")
    assert lines({"kubernetes_node_name": None}) == []        # no default: null is "not set"


def test_raw_options_take_anything():
    assert lines({"gpu_operator_toolkit_enabled": "maybe"}) == []   # _preflight_rules names it


def test_every_problem_of_every_variable_is_reported_once():
    result = lines({"calico_encapsulation": "vxlan", "kubegpu_offline": "maybe", "calico_block_size": 99})
    assert [line.split(": variable ")[1].split(":")[0] for line in result] == [
        "calico_encapsulation", "kubegpu_offline", "calico_block_size"]


def test_a_password_in_a_value_is_masked():
    assert ps.show("http://user:s3cret@proxy:3128") == "'http://user:***@proxy:3128'"
    assert ps.show("user:s3cret@proxy:3128") == "'user:***@proxy:3128'"
    assert ps.show(["http://u:p@h"]) == '["http://u:***@h"]'
    assert ps.show("lb.example.com:6443") == "'lb.example.com:6443'"


def test_settings_take_the_role_default_where_nothing_is_set():
    values = ps.settings({"calico_block_size": 24}, ["calico_block_size", "kubernetes_version", "nope"], str(ROOT))
    assert values["calico_block_size"] == 24
    assert values["kubernetes_version"] == ps.collection_defaults(str(ROOT))["kubernetes_version"]
    assert values["nope"] is None
