# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kubegpu.cluster network filters (plugins/filter/network.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter.network import FilterModule

F = FilterModule().filters()


def test_filters_exposed():
    assert set(F) == {"cidr_problems", "host_networks", "host_network_problems",
                      "node_name_problem", "duplicate_values", "format_problems"}


def test_cidr_problems_and_format():
    problems = F["cidr_problems"]({"kubegpu_pod_cidr": "10.96.0.0/16",
                                   "kubegpu_service_cidr": "10.96.0.0/12"})
    lines = F["format_problems"](problems, "cp1")
    assert lines == ["host cp1: variable kubegpu_service_cidr: 10.96.0.0/12 overlaps "
                     "kubegpu_pod_cidr 10.96.0.0/16; fix: choose non-overlapping ranges for "
                     "kubegpu_pod_cidr and kubegpu_service_cidr"]


def test_format_problems_empty():
    assert F["format_problems"]([], "cp1") == []
    assert F["format_problems"](None, "cp1") == []


@pytest.mark.parametrize("name", ["cidr_problems", "host_network_problems"])
def test_mapping_required(name):
    with pytest.raises(AnsibleFilterError, match="expects a mapping"):
        if name == "cidr_problems":
            F[name](["10.0.0.0/8"])
        else:
            F[name]([], "10.0.0.0/8")


def test_host_networks_default_and_custom_ignore():
    facts = {"interfaces": ["eth0", "docker0"],
             "eth0": {"ipv4": {"address": "172.17.0.3", "prefix": "16"}},
             "docker0": {"ipv4": {"address": "172.18.0.1", "prefix": "16"}}}
    assert F["host_networks"](facts) == [{"interface": "eth0", "network": "172.17.0.0/16"}]
    assert F["host_networks"](facts, []) == [{"interface": "eth0", "network": "172.17.0.0/16"},
                                             {"interface": "docker0", "network": "172.18.0.0/16"}]
    with pytest.raises(AnsibleFilterError):
        F["host_networks"]("eth0")


def test_host_network_problems_filter():
    nets = [{"interface": "eth0", "network": "172.17.0.0/16"}]
    problems = F["host_network_problems"](nets, {"kubegpu_pod_cidr": "172.16.0.0/12"})
    assert [p["variable"] for p in problems] == ["kubegpu_pod_cidr"]


def test_node_name_and_duplicates():
    assert F["node_name_problem"]("gpu-1") == ""
    assert "upper-case" in F["node_name_problem"]("GPU-1")
    assert F["duplicate_values"]({"a": "x", "b": "X"}, True) == {"x": ["a", "b"]}
    with pytest.raises(AnsibleFilterError):
        F["duplicate_values"](["a"])
