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
  - C(vip_problems(interface, facts, cidrs, control_plane)) reports what is wrong with
    C(kubegpu_control_plane_vip) on one host (address, pod/service CIDR, the host's own address, the
    control planes' subnet); preflight and the kubernetes role call it.
  - C(vip_in_use_problems(answered, holders)) reports a VIP that answers a probe while no control plane
    holds it; C(vip_holders(facts_by_host)) lists the hosts whose facts show the VIP.
  - C(control_plane_endpoint(vip, port)) gives kubeadm's controlPlaneEndpoint from
    C(kubernetes_control_plane_endpoint), else the VIP and port; C(endpoint_host) its host part.
  - C(kube_vip_kubeconfig(initialised, version)) and C(kube_vip_pod(interface, port, image, kubeconfig))
    give kube-vip's static Pod.
  - C(metallb_pool_problems(enabled, cidrs, vip)) reports what is wrong with C(metallb_address_pools) (ranges,
    names, overlaps with each other, the pod/service CIDR or the VIP; no pool while enabled); preflight and
    the metallb role call it. C(metallb_pool_objects(interfaces)) gives the IPAddressPool and L2Advertisement
    objects, C(metallb_pool_manifest(interfaces)) the same as one multi-document manifest.
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

import json

from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_network = _lazy.Module("plugin_utils._network")
_kubeadm = _lazy.Module("plugin_utils._kubeadm")


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


def vip_problems(vip, interface, facts, cidrs, control_plane):
    """Problem records of kubegpu_control_plane_vip on one host (this run's facts)."""
    return _network.vip_problems(vip, interface, dict(facts or {}), _mapping(cidrs, "vip_problems"),
                                 bool(control_plane))


def vip_in_use_problems(vip, answered, holders=()):
    """[problem record] when the VIP answers a probe and no control plane holds it, else []."""
    record = _network.vip_in_use_problem(vip, bool(answered), list(holders or []))
    return [record] if record else []


def vip_holders(vip, facts_by_host):
    """Hosts whose facts (host -> ansible_facts) show the VIP on an interface."""
    return _network.vip_holders(vip, dict(facts_by_host or {}))


def control_plane_endpoint(endpoint, vip, port):
    """kubeadm's controlPlaneEndpoint: the endpoint, else vip:port, else ''."""
    return _kubeadm.control_plane_endpoint(endpoint, vip, port)


def endpoint_host(endpoint):
    """The host part of host[:port]."""
    return _kubeadm.endpoint_host(endpoint)


def kube_vip_kubeconfig(first_control_plane, initialised, version):
    """super-admin.conf on the first control plane before init (kubeadm >= 1.29), else admin.conf."""
    return _kubeadm.kube_vip_kubeconfig(bool(first_control_plane), bool(initialised), version)


def kube_vip_pod(vip, interface, port, image, kubeconfig):
    """kube-vip's static Pod (a mapping) for the control-plane VIP."""
    return _kubeadm.kube_vip_pod(vip, interface, port, image, kubeconfig)


def metallb_pool_problems(pools, enabled, cidrs, vip=None):
    """Problem records of metallb_address_pools (and of MetalLB enabled without pools)."""
    return (_network.metallb_enabled_problems(bool(enabled), pools)
            + _network.metallb_pool_problems(pools, _mapping(cidrs, "metallb_pool_problems"), vip or None))


def metallb_pool_objects(pools, interfaces=()):
    """IPAddressPool objects of the pools and one L2Advertisement of them."""
    return _network.metallb_pool_objects(list(pools or []), list(interfaces or []))


def metallb_pool_manifest(pools, interfaces=()):
    """The same objects as one multi-document manifest (each document JSON, which is YAML)."""
    return "".join("---\n%s\n" % json.dumps(obj, indent=2)
                   for obj in _network.metallb_pool_objects(list(pools or []), list(interfaces or [])))


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
            "vip_problems": vip_problems,
            "vip_in_use_problems": vip_in_use_problems,
            "vip_holders": vip_holders,
            "control_plane_endpoint": control_plane_endpoint,
            "endpoint_host": endpoint_host,
            "kube_vip_kubeconfig": kube_vip_kubeconfig,
            "kube_vip_pod": kube_vip_pod,
            "metallb_pool_problems": metallb_pool_problems,
            "metallb_pool_objects": metallb_pool_objects,
            "metallb_pool_manifest": metallb_pool_manifest,
        }
