# SPDX-License-Identifier: Apache-2.0
"""Filters for network and node-identity checks (used by the preflight role).

The logic lives in plugins/plugin_utils/_network.py (pure, unit-tested); this file
only exposes it to Jinja. Python's ipaddress does the work, so no netaddr is needed.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: network
short_description: Network checks for kubegpu preflight
description:
  - C(cidr_problems) validates a mapping of variable name to CIDR (valid, no host bits,
    no overlap between them).
  - C(host_networks) lists the networks of a host from its facts, skipping ignored
    interfaces (CNI, docker, loopback).
  - C(host_network_problems) reports CIDRs that overlap a host network.
  - C(kubeadm_cidr_problems) reports what kubeadm init refuses in C(kubegpu_pod_cidr) and
    C(kubegpu_service_cidr) (pod CIDR smaller than the per-node mask, service CIDR above 20 host
    bits); preflight and the kubernetes role call it.
  - C(calico_pool_problems(block_size)) reports what kubegpu's IPv4 Calico pool cannot take (IPv6
    ranges, a pod CIDR smaller than one Calico block); preflight and the calico role call it.
  - C(node_name_problem) says why a name is not a valid Kubernetes node name.
  - C(duplicate_values) maps each value shared by several keys to those keys.
  - "C(format_problems) turns problem records into
    C(host H: variable V: problem; fix: F) lines."
  - >-
    C(iptables_without_kubernetes) takes the registered results of C(iptables-save) and C(ip6tables-save) (a
    loop over the families) and gives, per family whose rules name Kubernetes' chains (C(KUBE-*), C(cali-*)),
    C(family) and the C(rules) without those chains, their rules, the jumps to them and comments: what a node
    reset restores (roles/node).
author:
  - kubegpu maintainers (@kubegpu)
options:
  _input:
    description: A mapping of variable to CIDR, a host's facts, a node name, a mapping, problem records or registered
      results, as each filter's line says.
    type: raw
    required: true
"""

RETURN = r"""
_value:
  description: Problem records (C(variable), C(problem), C(fix)), a host's networks, a node-name problem, values
    shared by several keys, problem lines, or rules per family, as each filter's line above says.
  type: raw
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_network = _lazy.Module("plugin_utils._network")


def _mapping(value, name):
    if not isinstance(value, dict):
        raise AnsibleFilterError("%s expects a mapping of variable name to CIDR, got %s"
                                 % (name, type(value).__name__))
    return dict(value)


def cidr_problems(cidrs):
    """Problems of {variable: cidr}: invalid values and overlaps between them."""
    return _network.cidr_problems(_mapping(cidrs, "cidr_problems"))


def host_networks(facts, ignored=None):
    """Networks of a host from ansible_facts, minus ignored interfaces (glob patterns)."""
    if not isinstance(facts, dict):
        raise AnsibleFilterError("host_networks expects ansible_facts (a mapping)")
    if ignored is None:
        ignored = _network.DEFAULT_IGNORED_INTERFACES
    return _network.host_networks(facts, list(ignored))


def host_network_problems(networks, cidrs):
    """Problems where one of {variable: cidr} overlaps one of the host networks."""
    return _network.host_network_problems(list(networks or []),
                                          _mapping(cidrs, "host_network_problems"))


def kubeadm_cidr_problems(cidrs):
    """Problems kubeadm init refuses in {kubegpu_pod_cidr, kubegpu_service_cidr}."""
    return _network.kubeadm_cidr_problems(_mapping(cidrs, "kubeadm_cidr_problems"))


def calico_pool_problems(cidrs, block_size=26):
    """Problems of {kubegpu_pod_cidr, kubegpu_service_cidr} for kubegpu's IPv4 Calico pool."""
    return _network.calico_pool_problems(_mapping(cidrs, "calico_pool_problems"), block_size)


def node_name_problem(name):
    """'' when name is a valid node name (DNS-1123 subdomain), else why not."""
    return _network.dns1123_subdomain_problem(name)


def duplicate_values(mapping, normalise_case=False):
    """{value: [keys]} for every value shared by more than one key."""
    if not isinstance(mapping, dict):
        raise AnsibleFilterError("duplicate_values expects a mapping")
    return _network.duplicate_values(mapping, normalise_case=bool(normalise_case))


def format_problems(problems, host):
    """Problem records as 'host H: variable V: problem; fix: F' lines."""
    return ["host %s: variable %s: %s; fix: %s"
            % (host, p.get("variable"), p.get("problem"), p.get("fix"))
            for p in (problems or [])]


def iptables_without_kubernetes(saved):
    """[{family, rules}]: the saved rules without Kubernetes' chains, per family that has them."""
    return _network.rules_without_kubernetes(list(saved or []))


class FilterModule:
    """kubegpu.cluster network filters."""

    def filters(self):
        return {
            "cidr_problems": cidr_problems,
            "host_networks": host_networks,
            "host_network_problems": host_network_problems,
            "kubeadm_cidr_problems": kubeadm_cidr_problems,
            "calico_pool_problems": calico_pool_problems,
            "node_name_problem": node_name_problem,
            "duplicate_values": duplicate_values,
            "format_problems": format_problems,
            "iptables_without_kubernetes": iptables_without_kubernetes,
        }
