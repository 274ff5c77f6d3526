# SPDX-License-Identifier: Apache-2.0
"""Unit tests of plugins/plugin_utils/_network.py (pure functions)."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network as n


@pytest.mark.parametrize("value, network", [
    ("192.168.0.0/16", "192.168.0.0/16"),
    ("10.96.0.0/12", "10.96.0.0/12"),
    (" 10.244.0.0/16 ", "10.244.0.0/16"),
    ("fd00:10:244::/56", "fd00:10:244::/56"),
    ("10.0.0.1/32", "10.0.0.1/32"),
])
def test_parse_cidr_valid(value, network):
    net, reason = n.parse_cidr(value)
    assert reason is None
    assert str(net) == network


@pytest.mark.parametrize("value, fragment", [
    (12, "must be a string in CIDR notation, got int 12"),
    (True, "got bool True"),
    (None, "got null None"),
    (["10.0.0.0/8"], "got list"),
    ("10.0.0.0", "has no prefix length"),
    ("10.0.0.0/33", "is not a valid CIDR"),
    ("10.300.0.0/16", "is not a valid CIDR"),
    ("banana/8", "is not a valid CIDR"),
    ("", "has no prefix length"),
    ("10.96.0.5/12", "has host bits set (the network is 10.96.0.0/12)"),
    ("fd00::1/64", "has host bits set (the network is fd00::/64)"),
])
def test_parse_cidr_invalid(value, fragment):
    net, reason = n.parse_cidr(value)
    assert net is None
    assert fragment in reason


@pytest.mark.parametrize("pod, svc, expected", [
    ("192.168.0.0/16", "10.96.0.0/12", []),
    ("10.0.0.0/8", "10.96.0.0/12",
     [("kubegpu_service_cidr", "10.96.0.0/12 overlaps kubegpu_pod_cidr 10.0.0.0/8")]),
    ("10.96.0.0/12", "10.96.0.0/12",
     [("kubegpu_service_cidr", "10.96.0.0/12 overlaps kubegpu_pod_cidr 10.96.0.0/12")]),
    ("10.100.0.0/16", "10.96.0.0/12",
     [("kubegpu_service_cidr", "overlaps kubegpu_pod_cidr 10.100.0.0/16")]),
    # Different IP versions never overlap (dual-stack is two CIDRs per kind).
    ("fd00:10:244::/56", "10.96.0.0/12", []),
    ("fd00::/8", "fd00:10:96::/108",
     [("kubegpu_service_cidr", "fd00:10:96::/108 overlaps kubegpu_pod_cidr fd00::/8")]),
    ("nonsense/16", "10.96.0.0/12", [("kubegpu_pod_cidr", "'nonsense/16' is not a valid CIDR")]),
    (12, "10.96.0.5/12", [("kubegpu_pod_cidr", "got int 12"),
                          ("kubegpu_service_cidr", "has host bits set")]),
])
def test_cidr_problems(pod, svc, expected):
    problems = n.cidr_problems({"kubegpu_pod_cidr": pod, "kubegpu_service_cidr": svc})
    assert len(problems) == len(expected)
    for got, (variable, fragment) in zip(problems, expected):
        assert got["variable"] == variable
        assert fragment in got["problem"]
        assert variable in got["fix"]


# Shaped like ansible_facts from `setup` (a docker test host plus what a node of a
# running cluster has: calico, cni0, kube-ipvs0, flannel, a bridge with '-' in its name).
FACTS = {
    "interfaces": ["lo", "eth0", "docker0", "cali1234", "tunl0", "kube-ipvs0", "cni0",
                   "flannel.1", "vethabc", "br-5f3e", "ib0", "nodelocaldns", "down0"],
    "lo": {"device": "lo", "ipv4": {"address": "127.0.0.1", "prefix": "8", "network": "127.0.0.0"},
           "ipv6": [{"address": "::1", "prefix": "128", "scope": "host"}]},
    "eth0": {"device": "eth0",
             "ipv4": {"address": "172.17.0.3", "netmask": "255.255.0.0", "network": "172.17.0.0",
                      "prefix": "16"},
             "ipv4_secondaries": [{"address": "10.20.30.40", "prefix": "24"}],
             "ipv6": [{"address": "fe80::42:acff:fe11:3", "prefix": "64", "scope": "link"},
                      {"address": "2001:db8:1::5", "prefix": "64", "scope": "global"}]},
    "docker0": {"device": "docker0", "ipv4": {"address": "172.18.0.1", "prefix": "16"}},
    "cali1234": {"device": "cali1234", "ipv4": {"address": "192.168.5.1", "prefix": "32"}},
    "tunl0": {"device": "tunl0", "ipv4": {"address": "192.168.5.0", "prefix": "32"}},
    "kube_ipvs0": {"device": "kube-ipvs0", "ipv4": {"address": "10.96.0.1", "prefix": "32"}},
    "cni0": {"device": "cni0", "ipv4": {"address": "10.244.0.1", "prefix": "24"}},
    "flannel.1": {"device": "flannel.1", "ipv4": {"address": "10.244.0.0", "prefix": "32"}},
    "vethabc": {"device": "vethabc"},
    "br_5f3e": {"device": "br-5f3e", "ipv4": {"address": "172.20.0.1", "prefix": "16"}},
    "ib0": {"device": "ib0", "ipv4": {"address": "10.10.0.5", "netmask": "255.255.254.0"}},
    "nodelocaldns": {"device": "nodelocaldns", "ipv4": {"address": "169.254.25.10", "prefix": "32"}},
    "down0": {"device": "down0", "active": False},
}


def test_host_networks_default_ignores():
    assert n.host_networks(FACTS) == [
        {"interface": "eth0", "network": "172.17.0.0/16"},
        {"interface": "eth0", "network": "10.20.30.0/24"},
        {"interface": "eth0", "network": "2001:db8:1::/64"},
        {"interface": "br-5f3e", "network": "172.20.0.0/16"},
        {"interface": "ib0", "network": "10.10.0.0/23"},
    ]


def test_host_networks_custom_ignore_list_and_prefixed_keys():
    prefixed = dict(("ansible_" + k, v) for k, v in FACTS.items())
    nets = n.host_networks(prefixed, ignored=["lo", "eth*", "br-*", "ib0", "cali*", "tunl*",
                                              "cni*", "flannel*", "kube-ipvs*", "nodelocaldns"])
    assert nets == [{"interface": "docker0", "network": "172.18.0.0/16"}]


def test_host_networks_empty_facts():
    assert n.host_networks({}) == []


@pytest.mark.parametrize("pod, svc, expected", [
    ("192.168.0.0/16", "10.96.0.0/12", []),
    # The docker bridge network of the test hosts, inside 172.16.0.0/12.
    ("172.16.0.0/12", "10.96.0.0/12",
     ["kubegpu_pod_cidr: 172.16.0.0/12 overlaps the host network 172.17.0.0/16 on interface eth0",
      "kubegpu_pod_cidr: 172.16.0.0/12 overlaps the host network 172.20.0.0/16 on interface br-5f3e"]),
    ("192.168.0.0/16", "10.0.0.0/8",
     ["kubegpu_service_cidr: 10.0.0.0/8 overlaps the host network 10.20.30.0/24 on interface eth0",
      "kubegpu_service_cidr: 10.0.0.0/8 overlaps the host network 10.10.0.0/23 on interface ib0"]),
    ("2001:db8::/32", "10.96.0.0/12",
     ["kubegpu_pod_cidr: 2001:db8::/32 overlaps the host network 2001:db8:1::/64 on interface eth0"]),
    # Invalid CIDRs are cidr_problems()' business, not reported twice.
    ("not-a-cidr", 12, []),
])
def test_host_network_problems(pod, svc, expected):
    nets = n.host_networks(FACTS)
    problems = n.host_network_problems(nets, {"kubegpu_pod_cidr": pod, "kubegpu_service_cidr": svc})
    assert ["%s: %s" % (p["variable"], p["problem"]) for p in problems] == expected
    assert all("preflight_ignored_interfaces" in p["fix"] for p in problems)


@pytest.mark.parametrize("name", ["cp1", "gpu-node-01", "node1.example.com", "a", "0", "a" * 253])
def test_node_name_valid(name):
    assert n.dns1123_subdomain_problem(name) == ""


@pytest.mark.parametrize("name, fragment", [
    ("Bad_Name", "upper-case"),
    ("gpu_node", "is not a DNS-1123 subdomain"),
    ("-node", "is not a DNS-1123 subdomain"),
    ("node-", "is not a DNS-1123 subdomain"),
    ("node..a", "is not a DNS-1123 subdomain"),
    ("10.0.0.1:22", "is not a DNS-1123 subdomain"),
    ("", "non-empty"),
    (None, "non-empty"),
    ("a" * 254, "at most 253"),
])
def test_node_name_invalid(name, fragment):
    assert fragment in n.dns1123_subdomain_problem(name)


def test_duplicate_values():
    mapping = {"cp1": "10.0.0.1", "gpu1": "10.0.0.2", "old": "10.0.0.1", "x": "", "y": None, "z": ""}
    assert n.duplicate_values(mapping) == {"10.0.0.1": ["cp1", "old"]}
    assert n.duplicate_values({"CP1": "CP1", "cp1": "cp1"}) == {}
    assert n.duplicate_values({"CP1": "CP1", "cp1": "cp1"}, normalise_case=True) == {"cp1": ["CP1", "cp1"]}


# --- node reset: iptables rules without Kubernetes' chains ------------------------------------

SAVED_V4 = ["# Generated by iptables-save", "*filter", ":INPUT ACCEPT [0:0]", ":KUBE-FORWARD - [0:0]",
            ":cali-INPUT - [0:0]", "-A INPUT -m comment --comment \"cali:x\" -j cali-INPUT",
            "-A FORWARD -j KUBE-FORWARD", "-A FORWARD -g cali-FORWARD", "-A INPUT -p tcp --dport 22 -j ACCEPT",
            "-A KUBE-FORWARD -j ACCEPT", "-A cali-INPUT -j ACCEPT", "-A DOCKER -j RETURN", "COMMIT",
            "# Completed"]
HOST_V6 = ["*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp --dport 22 -j ACCEPT", "COMMIT"]


def _saved(family, lines=None):
    result = {"item": {"item": family, "stat": {"exists": True}}, "changed": False}
    if lines is None:
        result["skipped"] = True
    else:
        result.update(stdout_lines=lines, stdout="\n".join(lines))
    return result


@pytest.mark.parametrize("saved, expected", [
    ([], []),
    (None, []),
    # Only the families whose rules name Kubernetes' chains; comments go, the host's rules stay in order.
    ([_saved("iptables", SAVED_V4), _saved("ip6tables", HOST_V6)],
     [{"family": "iptables", "rules": ["*filter", ":INPUT ACCEPT [0:0]", "-A INPUT -p tcp --dport 22 -j ACCEPT",
                                       "-A DOCKER -j RETURN", "COMMIT"]}]),
    # A skipped run (no ip[6]tables-save on the host) is left out.
    ([_saved("iptables"), _saved("ip6tables", ["*nat", ":cali-PREROUTING - [0:0]", "-A PREROUTING -g cali-PREROUTING",
                                               "COMMIT"])],
     [{"family": "ip6tables", "rules": ["*nat", "COMMIT"]}]),
    # KUBE- or cali- elsewhere in a rule (a comment, a chain named MY-KUBE-x) is the host's.
    ([_saved("iptables", ["*filter", "-A INPUT -m comment --comment \"KUBE-x\" -j ACCEPT", ":MY-KUBE-X - [0:0]"])], []),
])
def test_rules_without_kubernetes(saved, expected):
    assert n.rules_without_kubernetes(saved) == expected
