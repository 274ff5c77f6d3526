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


# --- control-plane virtual IP (kube-vip) ----------------------------------------------------

VIP, VIP_INTERFACE = "kubegpu_control_plane_vip", "kubegpu_control_plane_vip_interface"
# kube-vip's ARP mode puts the VIP on the leader's interface with the host-route mask
# (vip_subnet defaults to /32 for IPv4 and /128 for IPv6: kube-vip pkg/vip/address.go
# NewConfig -> SelectSubnet, then AddIP's netlink.AddrReplace), so a host that holds the VIP
# for kube-vip shows it with that prefix; any other prefix is an address the host was given.
VIP_HOST_PREFIX = {4: 32, 6: 128}


def parse_address(value):
    """``(ip_address, None)`` or ``(None, reason)`` of a single address (no prefix)."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "must be a string holding one IP address, got %s %r" % (_type_name(value), value)
    try:
        return ipaddress.ip_address(value.strip()), None
    except ValueError:
        return None, "%r is not an IP address (a name or a CIDR is not accepted)" % (value,)


def _addresses(facts, name):
    """(address, prefix) of one interface in ``facts`` (IPv4 primary and secondaries, IPv6)."""
    data = _interface_facts(facts, name) or {}
    found = []
    entries = [data["ipv4"]] if isinstance(data.get("ipv4"), dict) else []
    for key in ("ipv4_secondaries", "ipv6"):
        entries.extend(a for a in (data.get(key) or []) if isinstance(a, dict))
    for entry in entries:
        prefix = entry.get("prefix") or entry.get("netmask")
        try:
            found.append(ipaddress.ip_interface("%s/%s" % (str(entry.get("address")).split("%", maxsplit=1)[0], prefix)))
        except ValueError:
            continue
    return found


def vip_interface(facts, interface=""):
    """The interface kube-vip serves the VIP on: ``interface`` when set, else the interface of
    the default IPv4 route in this run's facts (what kube-vip itself picks without vip_interface:
    pkg/kubevip config, autodetection of the default gateway's interface). '' when unknown."""
    if interface:
        return str(interface)
    return str(((facts or {}).get("default_ipv4") or {}).get("interface") or "")


def vip_problems(vip, interface, facts, cidrs, control_plane):
    """Problems of ``kubegpu_control_plane_vip`` on one host, from this run's facts.

    On every host: a valid address, not inside ``cidrs`` (the pod and service CIDR: routed
    inside the cluster), not an address the host was given (only kube-vip's own host-route
    address, VIP_HOST_PREFIX, may sit on a control plane). On a control plane also: the
    interface (``interface``, else the default IPv4 route's) exists and one of its networks
    holds the VIP, since ARP answers only reach hosts on that link. ``''``/None: no VIP, none."""
    if vip is None or vip == "":
        return []
    address, reason = parse_address(vip)
    if address is None:
        return [problem(VIP, reason, "set %s to one free address of the control planes' subnet, e.g. 192.168.1.250"
                        % VIP)]
    problems = []
    for name, value in (cidrs or {}).items():
        net, _reason = parse_cidr(value)
        if net is not None and net.version == address.version and address in net:
            problems.append(problem(VIP, "%s is inside %s %s: that range is routed inside the cluster"
                                    % (address, name, net),
                                    "choose an address of the control planes' own subnet for %s" % VIP))
    facts = facts or {}
    for name in facts.get("interfaces", facts.get("ansible_interfaces")) or []:
        for iface in _addresses(facts, name):
            if iface.ip == address and (not control_plane or iface.network.prefixlen != VIP_HOST_PREFIX[address.version]):
                problems.append(problem(VIP, "%s is this host's own address (%s on %s)" % (address, iface, name),
                                        "choose an address no host has for %s (kube-vip adds it itself)" % VIP))
    if not control_plane:
        return problems
    chosen = vip_interface(facts, interface)
    if not chosen:
        return problems + [problem(VIP_INTERFACE, "empty, and this run's facts have no default IPv4 route to take"
                                   " the interface from", "set %s to the control planes' interface, e.g. eth0"
                                   % VIP_INTERFACE)]
    data = _interface_facts(facts, chosen)
    if data is None:
        names = ", ".join(n for n in (facts.get("interfaces") or []) if n != "lo") or "none"
        return problems + [problem(VIP_INTERFACE, "%s is not an interface of this host (it has: %s)" % (chosen, names),
                                   "set %s to the interface that carries the control planes' subnet"
                                   % VIP_INTERFACE)]
    networks = [i.network for i in _addresses(facts, chosen)
                if i.version == address.version and i.network.prefixlen != VIP_HOST_PREFIX[address.version]]
    if not any(address in net for net in networks):
        problems.append(problem(VIP, "%s is not in a subnet of interface %s (%s): kube-vip's ARP answers reach"
                                " only that link" % (address, chosen, ", ".join(str(n) for n in networks) or "none"),
                                "choose a free address of %s for %s, or set %s to the interface of its subnet"
                                % (", ".join(str(n) for n in networks) or "that subnet", VIP, VIP_INTERFACE)))
    return problems


def vip_in_use_problem(vip, answered, holders=()):
    """The problem record when the VIP answers on the network but no control plane holds it.

    ``answered``: whether a probe from the first control plane (one ICMP echo) got a reply;
    ``holders``: control planes whose facts of this run show the VIP (kube-vip's leader on a
    re-run). Another machine answering would take the control plane's traffic."""
    if not vip or not answered or holders:
        return None
    return problem(VIP, "%s answers on the network but no control plane holds it: another machine uses it" % vip,
                   "choose a free address for %s, or free %s" % (VIP, vip))


def vip_holders(vip, facts_by_host):
    """Hosts of ``facts_by_host`` (host -> ansible_facts) that have ``vip`` on an interface."""
    address, _reason = parse_address(vip) if vip else (None, None)
    if address is None:
        return []
    holders = []
    for host, facts in (facts_by_host or {}).items():
        facts = facts or {}
        for name in facts.get("interfaces") or []:
            if any(i.ip == address for i in _addresses(facts, name)):
                holders.append(host)
                break
    return holders


# --- MetalLB address pools (L2 mode) ----------------------------------------------------------

METALLB_POOLS = "metallb_address_pools"
# MetalLB accepts a pool address as a CIDR or an explicit "first-last" range (metallb v0.16.1
# api/v1beta1/ipaddresspool_types.go Addresses; internal/config/config.go ParseCIDR: without '-'
# a CIDR, else two addresses with start <= end) and refuses a pool name defined twice and a
# range that overlaps another pool's (config.go poolsFor: "duplicate definition of pool",
# "overlaps with already defined CIDR"). kubegpu is stricter in one point: a CIDR must have zero
# host bits, as kubegpu_pod_cidr must (parse_cidr), where Go's net.ParseCIDR drops them.


def parse_address_range(value):
    """``((first, last), None)`` or ``(None, reason)`` of a MetalLB pool address: CIDR or a-b."""
    if isinstance(value, bool) or not isinstance(value, str):
        return None, "must be a string (a CIDR or first-last range), got %s %r" % (_type_name(value), value)
    text = value.strip()
    if "-" in text:
        start, _sep, end = text.partition("-")
        first, why_first = parse_address(start.strip())
        last, why_last = parse_address(end.strip())
        if first is None or last is None:
            return None, "%r is not a range of two IP addresses (%s)" % (value, why_first or why_last)
        if first.version != last.version:
            return None, "%r mixes IPv4 and IPv6" % (value,)
        if first > last:
            return None, "%r starts after it ends" % (value,)
        return (first, last), None
    net, reason = parse_cidr(text)
    if net is None:
        return None, reason
    return (net.network_address, net.broadcast_address), None


def _range_text(first, last):
    return str(first) if first == last else "%s-%s" % (first, last)


def _overlap(a, b):
    return a[0].version == b[0].version and a[0] <= b[1] and b[0] <= a[1]


def metallb_pool_problems(pools, cidrs, vip=None):
    """Problems of ``metallb_address_pools`` (a list of {name, addresses}): each pool a valid name
    and at least one valid address range, names unique, no range overlapping another, the pod or
    service CIDR (``cidrs``) or the control-plane VIP. ``[]``/None: MetalLB without pools (the
    metallb role refuses that when it is enabled: enabled_problems)."""
    if pools is None or pools == []:
        return []
    fix = ("set %s to a list of {name: <name>, addresses: [<CIDR or first-last>]}, e.g."
           " [{name: default, addresses: [192.168.1.240-192.168.1.250]}]" % METALLB_POOLS)
    if not isinstance(pools, (list, tuple)):
        return [problem(METALLB_POOLS, "must be a list of pools, got %s" % _type_name(pools), fix)]
    problems, seen, ranges = [], {}, []
    for index, pool in enumerate(pools):
        where = "pool %d" % (index + 1)
        if not isinstance(pool, dict):
            problems.append(problem(METALLB_POOLS, "%s is a %s, not a mapping" % (where, _type_name(pool)), fix))
            continue
        name = pool.get("name")
        why = dns1123_subdomain_problem(name)
        if why:
            problems.append(problem(METALLB_POOLS, "%s: name %s" % (where, why), fix))
        else:
            where = "pool %s" % name
            if name in seen:
                problems.append(problem(METALLB_POOLS, "%s is listed twice" % where,
                                        "give every pool of %s its own name" % METALLB_POOLS))
            seen[name] = True
        unknown = sorted(set(pool) - {"name", "addresses", "auto_assign"})
        if unknown:
            problems.append(problem(METALLB_POOLS, "%s: unknown key(s) %s (accepted: name, addresses, auto_assign)"
                                    % (where, ", ".join(unknown)), fix))
        addresses = pool.get("addresses")
        if not isinstance(addresses, (list, tuple)) or not addresses:
            problems.append(problem(METALLB_POOLS, "%s: addresses must be a non-empty list" % where, fix))
            continue
        for value in addresses:
            span, reason = parse_address_range(value)
            if span is None:
                problems.append(problem(METALLB_POOLS, "%s: %s" % (where, reason), fix))
                continue
            for other_where, other_value, other in ranges:
                if _overlap(span, other):
                    text = "%s: %s overlaps %s of %s" % (where, value, other_value, other_where)
                    problems.append(problem(METALLB_POOLS, text,
                                            "give every pool range of %s its own addresses" % METALLB_POOLS))
            ranges.append((where, value, span))
            for cidr_name, cidr_value in (cidrs or {}).items():
                net, _reason = parse_cidr(cidr_value)
                if net is not None and _overlap(span, (net.network_address, net.broadcast_address)):
                    problems.append(problem(METALLB_POOLS, "%s: %s overlaps %s %s" % (where, value, cidr_name, net),
                                            "take the pool's addresses from the nodes' own subnet, outside %s"
                                            % cidr_name))
            address, _reason = parse_address(vip) if vip else (None, None)
            if address is not None and _overlap(span, (address, address)):
                problems.append(problem(METALLB_POOLS, "%s: %s holds the control-plane VIP %s (%s)"
                                        % (where, value, address, VIP),
                                        "leave %s out of the pool" % address))
    return problems


def metallb_enabled_problems(enabled, pools):
    """MetalLB on without a pool gives no Service an address: refused."""
    if enabled and not pools:
        return [problem(METALLB_POOLS, "empty while metallb_enabled is true: MetalLB would give no Service an"
                        " address", "set %s, e.g. [{name: default, addresses: [192.168.1.240-192.168.1.250]}],"
                        " or metallb_enabled: false" % METALLB_POOLS)]
    return []


def metallb_pool_objects(pools, interfaces=()):
    """The IPAddressPool of every pool and one L2Advertisement of them all (metallb.io/v1beta1,
    namespace metallb-system): MetalLB's L2 mode announces a pool's addresses only where an
    L2Advertisement selects the pool (metallb api/v1beta1/l2advertisement_types.go
    IPAddressPools; an empty list would select every pool). ``interfaces``: the nodes'
    interfaces to announce on (L2AdvertisementSpec.Interfaces), empty for all."""
    objects = []
    for pool in pools or []:
        spec = {"addresses": [str(a).strip() for a in pool["addresses"]]}
        if "auto_assign" in pool:
            spec["autoAssign"] = bool(pool["auto_assign"])
        objects.append({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                        "metadata": {"name": pool["name"], "namespace": "metallb-system"}, "spec": spec})
    advert = {"ipAddressPools": [p["name"] for p in pools or []]}
    if interfaces:
        advert["interfaces"] = [str(i) for i in interfaces]
    objects.append({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                    "metadata": {"name": "kubegpu", "namespace": "metallb-system"}, "spec": advert})
    return objects
