# SPDX-License-Identifier: Apache-2.0
"""Unit tests of the control-plane VIP rules (plugins/plugin_utils/_network.py vip_*), on facts in
the shape Ansible's setup module gathers them."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network as n
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_rules as pr

CIDRS = {"kubegpu_pod_cidr": "10.244.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12"}


def facts(address="192.168.1.11", prefix="24", iface="eth0", secondaries=()):
    data = {"device": iface, "ipv4": {"address": address, "prefix": prefix}}
    if secondaries:
        data["ipv4_secondaries"] = [{"address": a, "prefix": p} for a, p in secondaries]
    return {"interfaces": ["lo", iface], iface: data,
            "lo": {"device": "lo", "ipv4": {"address": "127.0.0.1", "prefix": "8"}},
            "default_ipv4": {"interface": iface, "address": address}}


def variables(records):
    return [(r["variable"], r["problem"]) for r in records]


def test_free_address_of_the_subnet_passes():
    assert n.vip_problems("192.168.1.250", "", facts(), CIDRS, True) == []
    assert n.vip_problems("", "", facts(), CIDRS, True) == []
    assert n.vip_problems(None, "", facts(), CIDRS, True) == []


def test_workers_are_not_asked_for_the_subnet():
    assert n.vip_problems("172.16.0.5", "", facts(), CIDRS, False) == []
    assert [v for v, _fix in variables(n.vip_problems("172.16.0.5", "", facts(), CIDRS, True))] == [n.VIP]


@pytest.mark.parametrize("vip, fragment", [
    ("192.168.1.300", "'192.168.1.300' is not an IP address"),
    ("192.168.1.250/32", "is not an IP address (a name or a CIDR is not accepted)"),
    ("vip.example.com", "is not an IP address"),
    (12, "must be a string holding one IP address, got int 12"),
])
def test_invalid_vip(vip, fragment):
    found = n.vip_problems(vip, "", facts(), CIDRS, True)
    assert len(found) == 1 and found[0]["variable"] == n.VIP and fragment in found[0]["problem"]
    assert "192.168.1.250" in found[0]["fix"]


def test_vip_in_the_service_cidr():
    found = n.vip_problems("10.96.0.10", "", facts("10.96.0.2", "12"), CIDRS, False)
    assert variables(found) == [(n.VIP, "10.96.0.10 is inside kubegpu_service_cidr 10.96.0.0/12: that range is"
                                 " routed inside the cluster")]


def test_vip_in_the_pod_cidr():
    found = n.vip_problems("10.244.3.1", "", facts(), CIDRS, True)
    assert found[0]["problem"].startswith("10.244.3.1 is inside kubegpu_pod_cidr 10.244.0.0/16")


def test_vip_that_is_a_hosts_address():
    found = n.vip_problems("192.168.1.11", "", facts(), CIDRS, True)
    assert variables(found) == [(n.VIP, "192.168.1.11 is this host's own address (192.168.1.11/24 on eth0)")]
    # a worker's address too
    assert n.vip_problems("192.168.1.11", "", facts(), CIDRS, False)[0]["problem"].endswith("on eth0)")


def test_kube_vips_own_host_route_address_on_a_control_plane_is_accepted():
    """A re-run: kube-vip's leader holds the VIP as a /32 (kube-vip pkg/vip/address.go)."""
    held = facts(secondaries=[("192.168.1.250", "32")])
    assert n.vip_problems("192.168.1.250", "", held, CIDRS, True) == []
    # ...but on a worker a /32 of the VIP is still an address someone gave it
    assert n.vip_problems("192.168.1.250", "", held, CIDRS, False)[0]["variable"] == n.VIP
    assert n.vip_holders("192.168.1.250", {"cp1": held, "cp2": facts("192.168.1.12")}) == ["cp1"]


def test_vip_outside_the_interface_subnet():
    found = n.vip_problems("192.168.2.250", "", facts(), CIDRS, True)
    assert variables(found) == [(n.VIP, "192.168.2.250 is not in a subnet of interface eth0 (192.168.1.0/24):"
                                 " kube-vip's ARP answers reach only that link")]


def test_named_interface_is_used_instead_of_the_default_route():
    two = facts()
    two["interfaces"].append("bond0")
    two["bond0"] = {"device": "bond0", "ipv4": {"address": "10.20.0.11", "prefix": "16"}}
    assert n.vip_problems("10.20.0.250", "bond0", two, CIDRS, True) == []
    assert n.vip_problems("10.20.0.250", "", two, CIDRS, True)[0]["problem"].startswith(
        "10.20.0.250 is not in a subnet of interface eth0")


def test_unknown_interface_and_no_default_route():
    found = n.vip_problems("192.168.1.250", "ens9", facts(), CIDRS, True)
    assert variables(found) == [(n.VIP_INTERFACE, "ens9 is not an interface of this host (it has: eth0)")]
    bare = facts()
    del bare["default_ipv4"]
    assert n.vip_problems("192.168.1.250", "", bare, CIDRS, True)[0]["variable"] == n.VIP_INTERFACE


def test_vip_in_use_by_another_machine():
    record = n.vip_in_use_problem("192.168.1.250", True, [])
    assert record["problem"] == "192.168.1.250 answers on the network but no control plane holds it: another machine uses it"
    assert n.vip_in_use_problem("192.168.1.250", True, ["cp1"]) is None
    assert n.vip_in_use_problem("192.168.1.250", False, []) is None
    assert n.vip_in_use_problem("", True, []) is None


def test_ha_needs_an_endpoint_or_a_vip():
    assert pr.ha_endpoint_problem("", ["cp1", "cp2", "cp3"])["variable"] == pr.ENDPOINT
    assert pr.ha_endpoint_problem("", ["cp1", "cp2"], "192.168.1.250") is None
    assert pr.ha_endpoint_problem(None, 1) is None


def test_the_kubernetes_role_accepts_ha_with_a_vip():
    """roles/kubernetes 'Check the settings kubeadm is given' (kubernetes_setting_problems)."""
    settings = {"kubernetes_version": "1.35.4", "kubernetes_control_plane_endpoint": "",
                "kubegpu_pod_cidr": "10.244.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12"}
    assert [p["variable"] for p in pr.kubernetes_problems(settings, ["cp1", "cp2", "cp3"])] == [pr.ENDPOINT]
    assert pr.kubernetes_problems(dict(settings, kubegpu_control_plane_vip="192.168.1.250"),
                                  ["cp1", "cp2", "cp3"]) == []
