# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the kubegpu.cluster network filters (plugins/filter/network.py)."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter.network import FilterModule

F = FilterModule().filters()


def test_filters_exposed():
    assert set(F) == {"cidr_problems", "host_networks", "host_network_problems",
                      "node_name_problem", "duplicate_values", "format_problems",
                      "kubeadm_cidr_problems", "calico_pool_problems", "iptables_without_kubernetes",
                      "vip_problems", "vip_in_use_problems", "vip_holders", "control_plane_endpoint", "endpoint_host",
                      "kube_vip_kubeconfig", "kube_vip_pod", "metallb_pool_problems", "metallb_pool_objects",
                      "metallb_pool_manifest"}


def test_metallb_filters_take_ansible_booleans_and_give_a_manifest():
    cidrs = {"kubegpu_pod_cidr": "192.168.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12"}
    assert [p["variable"] for p in F["metallb_pool_problems"]([], True, cidrs)] == ["metallb_address_pools"]
    assert F["metallb_pool_problems"]([], False, cidrs) == []
    text = F["metallb_pool_manifest"]([{"name": "default", "addresses": ["10.0.0.240/29"]}])
    assert text.count("---\n") == 2 and '"kind": "L2Advertisement"' in text


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


# --- kubeadm's CIDR limits and kubegpu's IPv4 Calico pool (preflight, kubernetes and calico roles) ---

def _cidrs(pod="192.168.0.0/16", service="10.96.0.0/12"):
    return {"kubegpu_pod_cidr": pod, "kubegpu_service_cidr": service}


def _kubeadm(**kwargs):
    return F["format_problems"](F["kubeadm_cidr_problems"](_cidrs(**kwargs)), "cp1")


@pytest.mark.parametrize("pod", ["192.168.0.0/16", "10.244.0.0/24", "10.0.0.0/8", "fd00:10:244::/56",
                                 "fd00:10::/48"])
def test_kubeadm_accepts_pod_subnets_from_8_to_24_bits(pod):
    assert _kubeadm(pod=pod) == []


def test_pod_cidr_smaller_than_the_node_mask():
    """kubeadm ValidatePodSubnetNodeMask: the pod subnet's mask must not be above the
    node-cidr-mask-size (24 for IPv4 by default, 64 for IPv6)."""
    assert _kubeadm(pod="10.244.0.0/25") == [
        "host cp1: variable kubegpu_pod_cidr: 10.244.0.0/25 is smaller than one node's share: kube-controller-manager"
        " gives every node a /24 of the pod CIDR, and kubeadm refuses a pod subnet with a mask above /24; fix: set"
        " kubegpu_pod_cidr to a /24 or larger range (prefix length 8 to 24), e.g. 10.244.0.0/16"]
    [line] = _kubeadm(pod="fd00:10:244::/80")
    assert "gives every node a /64" in line and "fd00:10:244::/56" in line


def test_pod_cidr_more_than_16_bits_above_the_node_mask():
    """kubeadm PodSubnetNodeMaskMaxDiff = 16."""
    [line] = _kubeadm(pod="8.0.0.0/7")
    assert "8.0.0.0/7 is too large: kubeadm allows at most 16 bits" in line
    assert "prefix length from 8 to 24" in line


@pytest.mark.parametrize("service", ["10.96.0.0/12", "10.96.0.0/16", "10.96.0.0/28", "fd00:10:96::/108",
                                     "fd00:10:96::/112"])
def test_kubeadm_accepts_service_subnets_of_20_host_bits_or_fewer(service):
    assert _kubeadm(service=service) == []


@pytest.mark.parametrize("service, mask", [("10.0.0.0/11", 12), ("10.0.0.0/8", 12), ("fd00::/64", 108)])
def test_service_cidr_larger_than_the_api_server_allows(service, mask):
    """kubeadm ValidateServiceSubnetSize = kube-apiserver validateMaxCIDRRange: 20 host bits at most."""
    [line] = _kubeadm(service=service)
    assert "is larger than kubeadm and kube-apiserver allow for services: at most 2^20 addresses, a mask of /%d" \
           % mask in line
    assert "fix: set kubegpu_service_cidr to a /%d or smaller range" % mask in line


def test_service_cidr_with_fewer_than_ten_addresses():
    [line] = _kubeadm(service="10.96.0.0/29")
    assert "10.96.0.0/29 has 8 address(es), kubeadm needs at least 10" in line


def test_invalid_cidrs_are_left_to_cidr_problems():
    assert F["kubeadm_cidr_problems"](_cidrs(pod="banana", service=12)) == []
    assert F["calico_pool_problems"](_cidrs(pod="banana", service=None)) == []


def _calico(block_size=26, **kwargs):
    return F["format_problems"](F["calico_pool_problems"](_cidrs(**kwargs), block_size), "cp1")


def test_calico_pool_accepts_ipv4_ranges():
    assert _calico() == []
    assert _calico(pod="10.244.0.0/26") == []
    assert _calico(block_size="24", pod="10.244.0.0/24") == []


def test_ipv6_pod_cidr_is_refused_for_the_ipv4_pool():
    [line] = _calico(pod="fd00:10:244::/56")
    assert line.startswith("host cp1: variable kubegpu_pod_cidr: fd00:10:244::/56 is IPv6, but kubegpu's Calico stage"
                           " makes one IPv4 pool")
    assert "fix: set kubegpu_pod_cidr to an IPv4 range such as 10.244.0.0/16" in line


def test_ipv6_service_cidr_with_ipv4_pods_is_refused():
    [line] = _calico(service="fd00:10:96::/112")
    assert "fd00:10:96::/112 is IPv6 while the pod network is IPv4" in line


def test_pod_cidr_smaller_than_one_calico_block():
    """libcalico-go ippool.go: "IP pool size is too small for use with Calico IPAM"."""
    [line] = _calico(block_size=22, pod="10.244.0.0/24")
    assert "10.244.0.0/24 is smaller than one Calico block (/22, calico_block_size)" in line
    assert "or calico_block_size to 24 or more" in line
    # A block size out of Calico's range is the argument spec check's to report.
    assert _calico(block_size=16, pod="10.244.0.0/24") == []
    assert _calico(block_size="abc") == []
