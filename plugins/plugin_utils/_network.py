# SPDX-License-Identifier: Apache-2.0
"""Network and node-identity checks used by the preflight role (pure functions).

Everything here works on plain data (strings, dicts of Ansible facts) and returns
problem records ``{"variable": ..., "problem": ..., "fix": ...}`` so the role can put
them into one message per host. Only the standard library (``ipaddress``) is used:
the ``ansible.utils`` ipaddr filters need netaddr, which we do not want to require.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import re

# Interfaces whose networks belong to container runtimes, CNIs or kube-proxy (they
# carry pod/service addresses on a node that is already part of a cluster) or to the
# host itself (loopback). Overridable through the role variable
# preflight_ignored_interfaces.
DEFAULT_IGNORED_INTERFACES = (
    "lo",
    "docker0",
    "cni*",
    "cali*",
    "tunl*",
    "vxlan.calico",
    "vxlan-v6.calico",
    "flannel*",
    "veth*",
    "kube-ipvs*",
    "nodelocaldns",
)

_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_RE = re.compile(r"^%s(\.%s)*$" % (_DNS1123_LABEL, _DNS1123_LABEL))
DNS1123_SUBDOMAIN_MAX = 253


def problem(variable, text, fix):
    """One problem record, the unit every check here returns."""
    return {"variable": variable, "problem": text, "fix": fix}


def _type_name(value):
    """YAML-level type name (Ansible wraps values in tagged subclasses)."""
    for kind, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str"),
                       (dict, "dict"), (list, "list"), (tuple, "list")):
        if isinstance(value, kind):
            return name
    return "null" if value is None else type(value).__name__


def parse_cidr(value):
    """Parse a network in CIDR notation.

    Returns ``(network, None)`` or ``(None, reason)``. Only strings are accepted
    (``ipaddress`` would happily turn the integer 12 into 0.0.0.12/32), the prefix
    length is required and host bits must be zero.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "must be a string in CIDR notation, got %s %r" % (_type_name(value), value)
    text = value.strip()
    if "/" not in text:
        return None, "%r has no prefix length" % (value,)
    try:
        return ipaddress.ip_network(text, strict=True), None
    except ValueError as exc:
        if "has host bits set" in str(exc):
            base = ipaddress.ip_network(text, strict=False)
            return None, "%r has host bits set (the network is %s)" % (value, base)
        return None, "%r is not a valid CIDR (%s)" % (value, exc)


def cidr_problems(cidrs):
    """Problems of a mapping of variable name -> CIDR value.

    Each value must be a valid network; valid networks of the same IP version must not
    overlap each other. Order of the mapping is the order of the messages.
    """
    problems = []
    parsed = []
    for name, value in cidrs.items():
        net, reason = parse_cidr(value)
        if net is None:
            problems.append(problem(
                name, reason,
                "set %s to a network in CIDR notation with zero host bits, "
                "e.g. 10.244.0.0/16" % name))
        else:
            parsed.append((name, net))
    for i, (name_a, net_a) in enumerate(parsed):
        for name_b, net_b in parsed[i + 1:]:
            if net_a.version == net_b.version and net_a.overlaps(net_b):
                problems.append(problem(
                    name_b,
                    "%s overlaps %s %s" % (net_b, name_a, net_a),
                    "choose non-overlapping ranges for %s and %s" % (name_a, name_b)))
    return problems


# kube-controller-manager gives every node a slice of the pod CIDR of this prefix length
# (--node-cidr-mask-size-ipv4 / -ipv6, default 24 / 64), and kubeadm refuses a pod subnet
# smaller than one slice or more than 16 bits larger than it: ValidatePodSubnetNodeMask and
# getClusterNodeMask in cmd/kubeadm/app/apis/kubeadm/validation/validation.go,
# PodSubnetNodeMaskMaxDiff = 16 in cmd/kubeadm/app/constants/constants.go.
NODE_CIDR_MASK = {4: 24, 6: 64}
POD_SUBNET_NODE_MASK_MAX_DIFF = 16
# kubeadm ValidateServiceSubnetSize (same file; "identical to validation performed in the
# apiserver": validateMaxCIDRRange in cmd/kube-apiserver/app/options/validation.go) allows
# at most MaximumBitsForServiceSubnet = 20 host bits: IPv4 /12, IPv6 /108; and
# MinimumAddressesInServiceSubnet = 10 addresses (the DNS service is the tenth).
SERVICE_SUBNET_MAX_BITS = 20
SERVICE_SUBNET_MIN_ADDRESSES = 10
POD_CIDR, SERVICE_CIDR = "kubegpu_pod_cidr", "kubegpu_service_cidr"


def kubeadm_cidr_problems(cidrs):
    """Problems kubeadm init would refuse in ``{kubegpu_pod_cidr, kubegpu_service_cidr}``:
    a pod CIDR smaller than the per-node mask (or more than 16 bits larger), a service CIDR
    larger than 20 host bits or smaller than 10 addresses. Invalid CIDRs are skipped
    (cidr_problems() reports them). The kubernetes role checks the same before kubeadm init."""
    problems = []
    pod, _reason = parse_cidr(cidrs.get(POD_CIDR))
    if pod is not None:
        node_mask = NODE_CIDR_MASK[pod.version]
        if pod.prefixlen > node_mask:
            problems.append(problem(
                POD_CIDR,
                "%s is smaller than one node's share: kube-controller-manager gives every node a /%d of the pod"
                " CIDR, and kubeadm refuses a pod subnet with a mask above /%d" % (pod, node_mask, node_mask),
                "set %s to a /%d or larger range (prefix length %d to %d), e.g. %s"
                % (POD_CIDR, node_mask, node_mask - POD_SUBNET_NODE_MASK_MAX_DIFF, node_mask,
                   "10.244.0.0/16" if pod.version == 4 else "fd00:10:244::/56")))
        elif node_mask - pod.prefixlen > POD_SUBNET_NODE_MASK_MAX_DIFF:
            problems.append(problem(
                POD_CIDR,
                "%s is too large: kubeadm allows at most %d bits between the pod subnet mask and the node mask /%d"
                % (pod, POD_SUBNET_NODE_MASK_MAX_DIFF, node_mask),
                "set %s to a range with a prefix length from %d to %d"
                % (POD_CIDR, node_mask - POD_SUBNET_NODE_MASK_MAX_DIFF, node_mask)))
    service, _reason = parse_cidr(cidrs.get(SERVICE_CIDR))
    if service is not None:
        host_bits = service.max_prefixlen - service.prefixlen
        if host_bits > SERVICE_SUBNET_MAX_BITS:
            problems.append(problem(
                SERVICE_CIDR,
                "%s is larger than kubeadm and kube-apiserver allow for services: at most 2^%d addresses, a mask"
                " of /%d or longer for IPv%d" % (service, SERVICE_SUBNET_MAX_BITS,
                                                 service.max_prefixlen - SERVICE_SUBNET_MAX_BITS, service.version),
                "set %s to a /%d or smaller range, e.g. %s"
                % (SERVICE_CIDR, service.max_prefixlen - SERVICE_SUBNET_MAX_BITS,
                   "10.96.0.0/12" if service.version == 4 else "fd00:10:96::/112")))
        elif service.num_addresses < SERVICE_SUBNET_MIN_ADDRESSES:
            problems.append(problem(
                SERVICE_CIDR,
                "%s has %d address(es), kubeadm needs at least %d (the DNS service takes the tenth)"
                % (service, service.num_addresses, SERVICE_SUBNET_MIN_ADDRESSES),
                "set %s to a larger range, e.g. 10.96.0.0/12" % SERVICE_CIDR))
    return problems


# kubegpu's Calico stage creates ONE IPv4 pool (roles/calico/templates: default-ipv4-ippool)
# and kubeadm a single-stack cluster. Calico's own pool rules (libcalico-go
# lib/clientv3/ippool.go, validateAndSetDefaults): an IPv4 block size from 20 to 32, IPv6
# from 116 to 128, no IPIP on IPv6, and a pool at least one block large ("IP pool size is
# too small for use with Calico IPAM").
CALICO_BLOCK_SIZE = {4: (20, 32), 6: (116, 128)}


def calico_pool_problems(cidrs, block_size=26):
    """Problems of the pod and service CIDRs for kubegpu's IPv4 Calico pool: IPv6 ranges,
    and a pod CIDR smaller than one Calico block (``calico_block_size``). Invalid CIDRs are
    skipped. The calico role checks the same before it applies the pool."""
    problems = []
    pod, _reason = parse_cidr(cidrs.get(POD_CIDR))
    service, _reason = parse_cidr(cidrs.get(SERVICE_CIDR))
    if pod is not None and pod.version == 6:
        problems.append(problem(
            POD_CIDR,
            "%s is IPv6, but kubegpu's Calico stage makes one IPv4 pool (default-ipv4-ippool, block size 20-32,"
            " IPv4 address detection) and kubeadm a single-stack IPv4 cluster" % pod,
            "set %s to an IPv4 range such as 10.244.0.0/16" % POD_CIDR))
    if service is not None and service.version == 6 and (pod is None or pod.version == 4):
        problems.append(problem(
            SERVICE_CIDR,
            "%s is IPv6 while the pod network is IPv4: kubegpu builds single-stack IPv4 clusters" % service,
            "set %s to an IPv4 range such as 10.96.0.0/12" % SERVICE_CIDR))
    try:
        size = int(block_size)
    except (TypeError, ValueError):
        size = None
    if pod is not None and pod.version == 4 and size is not None:
        least, greatest = CALICO_BLOCK_SIZE[4]
        if least <= size <= greatest and pod.prefixlen > size:
            problems.append(problem(
                POD_CIDR,
                "%s is smaller than one Calico block (/%d, calico_block_size): Calico refuses a pool smaller than"
                " its block size" % (pod, size),
                "set %s to a /%d or larger range, or calico_block_size to %d or more"
                % (POD_CIDR, size, pod.prefixlen)))
    return problems


def _interface_is_ignored(name, ignored):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in ignored)


def _interface_facts(facts, name):
    """The fact dict of one interface (Ansible turns '-' and ':' into '_' in keys)."""
    for key in (name, name.replace("-", "_").replace(":", "_"),
                re.sub(r"[^A-Za-z0-9_]", "_", name)):
        for candidate in (key, "ansible_" + key):
            data = facts.get(candidate)
            if isinstance(data, dict) and ("ipv4" in data or "ipv6" in data or "device" in data):
                return data
    return None


def host_networks(facts, ignored=DEFAULT_IGNORED_INTERFACES):
    """Networks a host is attached to, from its Ansible facts.

    ``facts`` is ``ansible_facts`` (keys without the ``ansible_`` prefix; prefixed keys
    work too). Interfaces matching one of the ``ignored`` glob patterns are skipped, as
    are IPv6 link-local and loopback addresses. Returns a list of
    ``{"interface": name, "network": "a.b.c.d/len"}`` without duplicates, in interface
    order.
    """
    names = facts.get("interfaces", facts.get("ansible_interfaces")) or []
    result = []
    seen = set()
    for name in names:
        if _interface_is_ignored(name, ignored):
            continue
        data = _interface_facts(facts, name)
        if data is None:
            continue
        addresses = []
        for key in ("ipv4",):
            if isinstance(data.get(key), dict):
                addresses.append(data[key])
        for key in ("ipv4_secondaries", "ipv6"):
            if isinstance(data.get(key), list):
                addresses.extend(a for a in data[key] if isinstance(a, dict))
        for addr in addresses:
            address = addr.get("address")
            prefix = addr.get("prefix") or addr.get("netmask")
            if not address or prefix in (None, ""):
                continue
            try:
                net = ipaddress.ip_interface("%s/%s" % (address.split("%")[0], prefix)).network
            except ValueError:
                continue
            if net.is_loopback or (net.version == 6 and net.is_link_local):
                continue
            key = (name, str(net))
            if key not in seen:
                seen.add(key)
                result.append({"interface": name, "network": str(net)})
    return result


def host_network_problems(networks, cidrs):
    """Problems where a CIDR of ``cidrs`` (name -> value) overlaps a host network.

    ``networks`` is the output of host_networks(). Invalid CIDRs are skipped (
    cidr_problems() reports them).
    """
    problems = []
    for name, value in cidrs.items():
        net, reason = parse_cidr(value)
        if net is None:
            continue
        for entry in networks:
            try:
                host_net = ipaddress.ip_network(entry["network"], strict=False)
            except (KeyError, TypeError, ValueError):
                continue
            if host_net.version == net.version and host_net.overlaps(net):
                problems.append(problem(
                    name,
                    "%s overlaps the host network %s on interface %s"
                    % (net, host_net, entry.get("interface", "?")),
                    "choose a range for %s that no host is attached to "
                    "(or list the interface in preflight_ignored_interfaces if it "
                    "belongs to a CNI)" % name))
    return problems


def dns1123_subdomain_problem(name):
    """Why ``name`` is not a valid Kubernetes node name (DNS-1123 subdomain), or ''."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty string"
    if len(name) > DNS1123_SUBDOMAIN_MAX:
        return "is %d characters long, at most %d are allowed" % (len(name), DNS1123_SUBDOMAIN_MAX)
    if name != name.lower():
        return "%r has upper-case letters (Kubernetes node names are lower-case)" % name
    if not _DNS1123_SUBDOMAIN_RE.match(name):
        return ("%r is not a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
                "starting and ending with a letter or digit)" % name)
    return ""


def duplicate_values(mapping, normalise_case=False):
    """Values shared by more than one key: {value: [keys...]}, keys sorted.

    Empty/None values are ignored. With ``normalise_case`` values compare
    case-insensitively (node names).
    """
    groups = {}
    for key, value in mapping.items():
        if value is None or value == "":
            continue
        value = str(value)
        if normalise_case:
            value = value.lower()
        groups.setdefault(value, []).append(key)
    return dict((value, sorted(keys)) for value, keys in sorted(groups.items()) if len(keys) > 1)


# iptables-save lines of Kubernetes' chains: KUBE-* (kube-proxy, kubelet) and cali-*
# (Calico), declared, appended to, or jumped or gone to from another chain.
KUBERNETES_RULE_RE = re.compile(r"^:(KUBE-|cali-)|^-A (KUBE-|cali-)| -[jg] (KUBE-|cali-)")


def rules_without_kubernetes(saved):
    """What a node reset restores per family (roles/node, tasks/reset.yml): for each
    ``iptables-save``/``ip6tables-save`` run (``saved``: the registered loop results, each
    with ``stdout_lines`` and ``item.item``, the family) whose rules name Kubernetes' chains,
    {"family", "rules"}: its lines without comments and without KUBERNETES_RULE_RE's (the
    host's other rules, unchanged). A run without Kubernetes' chains, or skipped, is left out."""
    restore = []
    for result in saved or []:
        lines = result.get("stdout_lines")
        if lines is None or not any(KUBERNETES_RULE_RE.search(line) for line in lines):
            continue
        restore.append({"family": result["item"]["item"],
                        "rules": [line for line in lines if not line.startswith("#")
                                  and not KUBERNETES_RULE_RE.search(line)]})
    return restore
