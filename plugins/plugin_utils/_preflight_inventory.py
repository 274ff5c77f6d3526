# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: preflight's inventory-level rules (stage 1, docs/preflight.md).

Pure functions over plain data: ``groups`` (group -> hosts, as Ansible's ``groups``) and
``hosts`` (host -> {variable: value}: what the inventory, group_vars, host_vars and
``-e`` set for that host, never role defaults). They return problem lines (fatal) and
warning lines, each naming the hosts or the group, the variable and the fix:

    inventory: group <G>: <problem>; fix: <fix>
    hosts <a, b>: <variable>: <problem>; fix: <fix>

The filter ``kubegpu.cluster.preflight_inventory`` (plugins/filter/preflight.py) builds
``hosts`` from ``hostvars`` and hands the lines to roles/preflight/tasks/inventory.yml.

Booleans are read as Ansible's argument spec reads them
(``ansible.module_utils.parsing.convert_bool.boolean``): ``"false"``, ``"no"``, ``"off"``,
``"0"`` from ``-e`` or an INI inventory are false, ``"on"``, ``"yes"`` true.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from pathlib import Path

from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean as _convert_bool

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _yaml
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_rules

CONTROL_PLANE, WORKERS, CLUSTER, ETCD = "kube_control_plane", "kube_node", "k8s_cluster", "etcd"

# A Kubernetes node name is a DNS-1123 subdomain (kubeadm validates nodeRegistration.name
# with IsDNS1123Subdomain, cmd/kubeadm/app/apis/kubeadm/validation), but kubelet can only
# register it when it is at most 63 characters: kubeadm passes the node name to kubelet as
# --hostname-override when it differs from the hostname
# (cmd/kubeadm/app/phases/kubelet/flags.go, buildKubeletArgMapCommon), kubelet labels its
# Node kubernetes.io/hostname=<that name> (pkg/kubelet/kubelet_node_status.go,
# initialNode), and the API server refuses a label value longer than 63 characters
# (staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go, IsValidLabelValue,
# LabelValueMaxLength = 63; https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#syntax-and-character-set).
NODE_NAME_MAX = 63

# DeepOps/kubespray-era group names and the kubegpu group that replaces each (kubespray
# renamed kube-master -> kube_master -> kube_control_plane, kube-node -> kube_node and
# k8s-cluster -> k8s_cluster; DeepOps' config.example/inventory used the dashed names).
# etcd keeps its name.
LEGACY_GROUPS = {
    "kube-master": CONTROL_PLANE,
    "kube_master": CONTROL_PLANE,
    "kube-node": WORKERS,
    "k8s-cluster": CLUSTER,
}


def _strip_v(value):
    return str(value).strip().lstrip("vV")


def _as_bool_text(value):
    try:
        return "true" if boolean(value) else "false"
    except TypeError:
        return None


def _address_port(value):
    if isinstance(value, dict) and value.get("address"):
        return "%s:%s" % (value["address"], value.get("port", 6443))
    return None


def _same(value):
    return value


def _containerd_only(value):
    return "containerd" if str(value).strip() == "containerd" else None


# Variables of DeepOps (config.example/group_vars) and kubespray (inventory/sample,
# roles/kubespray_defaults) that kubegpu does not read, each with the kubegpu variable
# that does the same thing (None: there is none), a note on its values, and how to turn
# the old value into the new one (None: the user has to choose). Every kubegpu name here
# is an option of a role's meta/argument_specs.yml (tests check it).
LEGACY_VARIABLES = {
    "kube_pods_subnet": ("kubegpu_pod_cidr", "", _same),
    "kube_service_addresses": ("kubegpu_service_cidr", "", _same),
    "kube_version": ("kubernetes_version", "the exact version without the leading v, e.g. 1.35.4", _strip_v),
    "container_manager": ("kubegpu_container_runtime",
                          "containerd on Kubernetes nodes; kubegpu has no CRI-O", _containerd_only),
    "deepops_gpu_operator_enabled": ("kubegpu_gpu_operator", "", _as_bool_text),
    "k8s_gpu_mig_strategy": ("nvidia_device_plugin_mig_strategy",
                             "gpu_operator_mig_strategy in GPU Operator mode", _same),
    "http_proxy": ("kubegpu_http_proxy", "", _same),
    "https_proxy": ("kubegpu_https_proxy", "", _same),
    "no_proxy": ("kubegpu_no_proxy", "", _same),
    "kube_proxy_mode": ("kubernetes_kube_proxy_mode", "", _same),
    "kube_apiserver_port": ("kubernetes_apiserver_port", "", _same),
    "kube_image_repo": ("kubernetes_image_repository", "", _same),
    "kubeconfig_localhost": ("kubernetes_fetch_kubeconfig", "", _as_bool_text),
    "supplementary_addresses_in_ssl_keys": ("kubernetes_apiserver_cert_sans", "", _same),
    "apiserver_loadbalancer_domain_name": ("kubernetes_control_plane_endpoint",
                                           "host[:port] of the load balancer", None),
    "loadbalancer_apiserver": ("kubernetes_control_plane_endpoint", "address:port of the load balancer",
                               _address_port),
    "calico_pool_blocksize": ("calico_block_size", "", _same),
    "calico_ipip_mode": ("calico_encapsulation",
                         "one of IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None", None),
    "calico_vxlan_mode": ("calico_encapsulation",
                          "one of IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None", None),
    "calico_network_backend": ("calico_encapsulation",
                               "one of IPIP, IPIPCrossSubnet, VXLAN, VXLANCrossSubnet, None", None),
    "kube_network_plugin": (None, "kubegpu installs Calico (stage 6, the calico_* settings) and no other"
                                  " network plugin", None),
    "gpu_operator_preinstalled_nvidia_software": (
        None, "kubegpu keeps the host driver in GPU Operator mode (nvidia_driver stage) unless"
              " nvidia_driver_mode is container (the Operator's driver containers);"
              " gpu_operator_toolkit_enabled chooses who installs the container toolkit", None),
}

# Settings that have one value for the whole cluster: kubeadm init renders them once on
# the first control plane, or stages 6-7 and the GPU Operator run on kube_control_plane[0]
# only (playbooks/calico.yml, nvidia_device_plugin.yml, gpu_operator.yml), so a value set
# for some hosts or groups only is silently not the one the cluster gets.
CLUSTER_WIDE = (
    "kubegpu_pod_cidr",
    "kubegpu_service_cidr",
    "kubegpu_gpu_operator",
    "kubernetes_version",
    "kubernetes_control_plane_endpoint",
    "kubegpu_control_plane_vip",
    "kubernetes_apiserver_port",
    "kubernetes_cluster_name",
    "kubernetes_dns_domain",
    "kubernetes_image_repository",
    "kubernetes_kube_proxy_mode",
    "kubernetes_control_plane_group",
    "kubernetes_node_group",
    "calico_version",
    "metallb_enabled",
    "metallb_version",
    "metallb_address_pools",
    "calico_install_method",
    "calico_encapsulation",
    "calico_bgp",
    "calico_block_size",
    "calico_mtu",
    "calico_nat_outgoing",
    "nvidia_device_plugin_version",
    "nvidia_device_plugin_mig_strategy",
    "nvidia_device_plugin_time_slicing_replicas",
    "nvidia_device_plugin_time_slicing_rename_by_default",
    "nvidia_device_plugin_gfd_enabled",
    "nvidia_device_plugin_dcgm_exporter_enabled",
    "gpu_operator_chart_version",
    "gpu_operator_device_plugin_enabled",
    "gpu_operator_toolkit_enabled",
    "gpu_operator_mig_strategy",
    "gpu_operator_values",
    "nvidia_driver_mode",
    "gpu_operator_driver_version",
    "gpu_operator_driver_precompiled",
    "gpu_operator_driver_upgrade_auto",
    "gpu_operator_driver_upgrade_max_parallel",
    "gpu_operator_driver_upgrade_max_unavailable",
    "gpu_operator_driver_upgrade_drain",
)

# Variables the inventory rules read besides CLUSTER_WIDE, LEGACY_VARIABLES and kubegpu_*.
HOST_VARIABLES = ("ansible_host", "ansible_port", "kubernetes_node_name")

_HOSTS_SHOWN = 10
_UNSET = object()


# --- booleans --------------------------------------------------------------------------

def boolean(value):
    """A boolean setting read as Ansible's argument spec reads it (``type: bool``).

    ``True``/``False`` and the strings and numbers of convert_bool (``yes``/``no``,
    ``on``/``off``, ``true``/``false``, ``1``/``0``, ``y``/``n``, ``t``/``f``, any case);
    None (an empty YAML value) is false, as ``| bool`` has it. Anything else raises
    TypeError.
    """
    if value is None:
        return False
    return _convert_bool(value, strict=True)


def boolean_problem(value, variable):
    """'' when ``value`` is a boolean to Ansible, else a problem line for ``variable``."""
    try:
        boolean(value)
        return ""
    except TypeError:
        return ("%s: %s is not a boolean (Ansible reads %s); fix: true or false"
                % (variable, _show(value), "/".join(sorted(str(b) for b in BOOLEANS if isinstance(b, str)))))


# --- node names ------------------------------------------------------------------------

def node_name(host, variables):
    """(node name, variable it comes from): kubernetes_node_name | default(inventory_hostname)."""
    name = (variables or {}).get("kubernetes_node_name")
    if name is None or name == "":
        return host, "inventory_hostname"
    return name, "kubernetes_node_name"


def node_name_problem(name):
    """'' when kubeadm can register ``name`` as a node, else why not."""
    if isinstance(name, str) and len(name) > NODE_NAME_MAX:
        return ("%r is %d characters long, at most %d are allowed (kubelet labels its Node"
                " kubernetes.io/hostname=<node name>, and a label value has at most 63 characters)"
                % (name, len(name), NODE_NAME_MAX))
    return _network.dns1123_subdomain_problem(name)


def node_name_problems(host, kubernetes_node_name=None):
    """Problem records for the node name of ``host`` (roles/preflight/tasks/host.yml)."""
    name, variable = node_name(host, {"kubernetes_node_name": kubernetes_node_name})
    why = node_name_problem(name)
    if not why:
        return []
    if variable == "inventory_hostname":
        fix = ("name the host in the inventory with a lower-case DNS name such as gpu-node-1"
               " (ansible_host can keep its address), or set kubernetes_node_name to one")
    else:
        fix = ("set kubernetes_node_name to a lower-case DNS name of at most %d characters,"
               " such as gpu-node-1" % NODE_NAME_MAX)
    return [_network.problem(variable, "node name " + why, fix)]


# --- helpers ---------------------------------------------------------------------------

def _show(value):
    if value is _UNSET:
        return "the default"
    if isinstance(value, str):
        return repr(value)
    try:
        text = json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain(value):
    """A value as it would be written in group_vars (strings unquoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return json.dumps(value, sort_keys=True, default=str)


def _hosts(names):
    names = list(names)
    if len(names) <= _HOSTS_SHOWN:
        return ", ".join(names)
    return "%s, ... (%d hosts)" % (", ".join(names[:_HOSTS_SHOWN]), len(names))


def _normalise(value, kind):
    """A value compared the way its argument spec types it (bool, int); else as it is."""
    if kind == "bool":
        try:
            return boolean(value)
        except TypeError:
            return value
    if kind == "int" and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return value
    return value


def _same_value(a, b):
    if a is _UNSET or b is _UNSET:
        return a is b
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def _groups_problems(groups):
    problems = []
    control_planes = list(groups.get(CONTROL_PLANE) or [])
    workers = list(groups.get(WORKERS) or [])
    cluster = list(groups.get(CLUSTER) or [])
    kube_hosts = control_planes + [h for h in workers if h not in control_planes]
    if not control_planes:
        problems.append("inventory: group kube_control_plane: missing or empty; fix: list the control-plane"
                        " host(s) (1, or 3/5 for HA) under kube_control_plane and make it a child of k8s_cluster")
    elif len(control_planes) % 2 == 0:
        problems.append("inventory: group kube_control_plane: has %d hosts (%s), an even number: etcd needs an"
                        " odd number for quorum; fix: use 1, 3 or 5 control planes"
                        % (len(control_planes), ", ".join(control_planes)))
    if not cluster:
        problems.append("inventory: group k8s_cluster: missing or empty; fix: make kube_control_plane and"
                        " kube_node children of k8s_cluster")
    outside = [h for h in kube_hosts if h not in cluster]
    if outside:
        problems.append("hosts %s: group k8s_cluster: in kube_control_plane or kube_node but not in k8s_cluster;"
                        " fix: make kube_control_plane and kube_node children of k8s_cluster" % _hosts(outside))
    neither = [h for h in cluster if h not in kube_hosts]
    if neither:
        problems.append("hosts %s: group k8s_cluster: in k8s_cluster but in neither kube_control_plane nor"
                        " kube_node; fix: add them to kube_node (workers) or kube_control_plane" % _hosts(neither))
    if ETCD in groups and len(groups[ETCD] or []) % 2 == 0:
        etcd = list(groups[ETCD] or [])
        problems.append("inventory: group etcd: has %d hosts (%s), an even number or none: etcd needs an odd"
                        " number for quorum; fix: list 1, 3 or 5 hosts under etcd, or remove the group"
                        % (len(etcd), ", ".join(etcd)))
    return problems


def _legacy_groups(groups):
    problems, warnings = [], []
    for old, new in LEGACY_GROUPS.items():
        members = list(groups.get(old) or [])
        if not members:
            continue
        missing = [h for h in members if h not in (groups.get(new) or [])]
        if missing:
            problems.append(
                "inventory: group %s: the DeepOps/kubespray name of %s; kubegpu reads only %s, so hosts %s"
                " would be left out of it; fix: rename group %s to %s (with its group_vars file or directory)"
                % (old, new, new, _hosts(missing), old, new))
        else:
            warnings.append(
                "inventory: group %s: the DeepOps/kubespray name of %s; kubegpu reads only %s, which already"
                " has all its hosts; fix: remove group %s (move its group_vars to %s)" % (old, new, new, old, new))
    return problems, warnings


def _duplicate_node_names(cluster, hosts):
    by_name = {}
    for host in cluster:
        name, variable = node_name(host, hosts.get(host))
        by_name.setdefault(str(name).lower(), []).append((host, variable))
    problems = []
    for name, entries in sorted(by_name.items()):
        if len(entries) < 2:
            continue
        names = sorted(h for h, _v in entries)
        from_variable = any(v == "kubernetes_node_name" for _h, v in entries)
        if from_variable:
            problems.append("hosts %s: kubernetes_node_name: the same node name %r (kubernetes_node_name, or the"
                            " inventory name where it is not set; names compare case-insensitively); fix: give"
                            " every host a unique lower-case node name" % (_hosts(names), name))
        else:
            problems.append("hosts %s: inventory_hostname: the same node name %r (names compare"
                            " case-insensitively); fix: give every host a unique lower-case name"
                            % (_hosts(names), name))
    return problems


def _duplicate_addresses(cluster, hosts):
    """Hosts that reach the same machine: the same ansible_host AND the same ansible_port.
    Hosts behind one address on different ports (NAT, Vagrant) are different machines."""
    by_address = {}
    for host in cluster:
        variables = hosts.get(host) or {}
        address = variables.get("ansible_host")
        if address is None or address == "":
            continue
        port = variables.get("ansible_port")
        port = None if port is None or port == "" else str(port).strip()
        by_address.setdefault((str(address), port), []).append(host)
    problems = []
    for (address, port), names in sorted(by_address.items(), key=lambda item: (item[0][0], item[0][1] or "")):
        if len(names) < 2:
            continue
        where = address if port is None else "%s, ansible_port %s" % (address, port)
        problems.append("hosts %s: ansible_host: the same address, one machine listed twice (%s); fix: list every"
                        " machine once, or correct ansible_host (machines behind one address, such as NAT or"
                        " Vagrant, need their own ansible_port)" % (_hosts(sorted(names)), where))
    return problems


def _duplicate_machine_ids(machine_ids):
    by_id = {}
    for host, machine_id in (machine_ids or {}).items():
        if machine_id:
            by_id.setdefault(str(machine_id), []).append(host)
    return ["hosts %s: /etc/machine-id: the same machine id (cloned image, or one machine listed twice); fix: on"
            " each clone run rm /etc/machine-id && systemd-machine-id-setup, then reboot" % _hosts(sorted(names))
            for _id, names in sorted(by_id.items()) if len(names) > 1]


def _legacy_variables(cluster, hosts):
    problems, warnings = [], []
    for old, (new, note, convert) in LEGACY_VARIABLES.items():
        found = {}
        for host in cluster:
            variables = hosts.get(host) or {}
            if old not in variables:
                continue
            key = (new is not None and new in variables, _show(variables[old]))
            found.setdefault(key, []).append(host)
        for (new_set, shown), names in found.items():
            who = "hosts %s: variable %s" % (_hosts(names), old)
            if new is None:
                problems.append("%s: a DeepOps/kubespray setting with no kubegpu equivalent (%s); fix: remove %s"
                                % (who, note, old))
                continue
            if new_set:
                warnings.append("%s: a DeepOps/kubespray setting that kubegpu does not read (kubegpu reads %s,"
                                " which is set); fix: remove %s unless something else uses it" % (who, new, old))
                continue
            value = hosts[names[0]][old]
            suggested = None
            if convert is not None and not (isinstance(value, str) and "{{" in value):
                try:
                    suggested = convert(value)
                except (TypeError, ValueError):
                    suggested = None
            setting = "%s: %s" % (new, _plain(suggested)) if suggested not in (None, "") else new
            problems.append("%s: a DeepOps/kubespray setting that kubegpu does not read (it is %s here, and %s"
                            " keeps its default); fix: set %s in group_vars/all instead%s, and remove %s"
                            % (who, shown, new, setting, " (%s)" % note if note else "", old))
    return problems, warnings


def _cluster_wide(cluster, hosts, specs):
    problems = []
    for variable in CLUSTER_WIDE:
        kind = (specs or {}).get(variable)
        values = []          # [(normalised, shown, [hosts])]
        for host in cluster:
            raw = (hosts.get(host) or {}).get(variable, _UNSET)
            norm = raw if raw is _UNSET else _normalise(raw, kind)
            for entry in values:
                if _same_value(entry[0], norm):
                    entry[2].append(host)
                    break
            else:
                values.append((norm, _show(raw), [host]))
        if len(values) < 2:
            continue
        detail = "; ".join("%s on %s" % (shown, _hosts(names)) for _n, shown, names in values)
        problems.append("hosts %s: variable %s: one setting for the whole cluster, but it differs between hosts"
                        " (%s); fix: set %s once, in group_vars/all, and remove it from host_vars and the"
                        " group_vars of other groups" % (_hosts(cluster), variable, detail, variable))
    return problems


def _ha_endpoint(groups, hosts):
    """More than one control plane needs kubernetes_control_plane_endpoint, the rule the
    kubernetes role checks too (_preflight_rules.ha_endpoint_problem). The value of the first
    control plane counts: kubeadm init runs there (a value that differs between hosts is
    refused by the cluster-wide check)."""
    cluster = list(groups.get(CLUSTER) or [])
    group = (hosts.get(cluster[0]) or {}).get("kubernetes_control_plane_group") if cluster else None
    control_planes = list(groups.get(str(group or CONTROL_PLANE)) or [])
    if len(control_planes) < 2:
        return []
    endpoint = (hosts.get(control_planes[0]) or {}).get(_preflight_rules.ENDPOINT)
    vip = (hosts.get(control_planes[0]) or {}).get(_network.VIP)
    record = _preflight_rules.ha_endpoint_problem(endpoint, control_planes, vip)
    if not record:
        return []
    return ["hosts %s: variable %s: %s; fix: %s" % (_hosts(control_planes), record["variable"], record["problem"],
                                                    record["fix"])]


def _unknown_kubegpu(cluster, hosts, specs, known):
    if not specs:
        return []
    names = set(specs) | set(known or ())
    settable = sorted(specs)
    found = {}
    for host in cluster:
        for variable in (hosts.get(host) or {}):
            if variable.startswith("kubegpu_") and variable not in names:
                found.setdefault(variable, []).append(host)
    warnings = []
    for variable, owners in sorted(found.items()):
        close = difflib.get_close_matches(variable, settable, n=1, cutoff=0.6)
        fix = ("rename it to %s if that is what you meant" % close[0] if close
               else "remove it (ansible-doc -t role kubegpu.cluster.kubegpu lists the kubegpu_* settings)")
        warnings.append("hosts %s: variable %s: not a kubegpu setting, so nothing reads it%s; fix: %s"
                        % (_hosts(owners), variable, " (closest known name: %s)" % close[0] if close else "", fix))
    return warnings


# --- the report ------------------------------------------------------------------------

def inventory_report(groups, hosts, machine_ids=None, specs=None, known=()):
    """Problems and warnings of an inventory: ``{"problems": [...], "warnings": [...]}``.

    Besides the rules above: more than one control plane without
    ``kubernetes_control_plane_endpoint`` (_preflight_rules.ha_endpoint_problem).

    ``groups``: group -> hosts (Ansible's ``groups``). ``hosts``: host -> {variable: value}
    for the cluster's hosts, holding at least the variables of HOST_VARIABLES,
    CLUSTER_WIDE and LEGACY_VARIABLES that are set and every ``kubegpu_*`` variable.
    ``machine_ids``: host -> /etc/machine-id of the reachable hosts. ``specs``: variable
    -> argument-spec type of every role option of the collection (for booleans/ints and
    the unknown-name check, skipped without it); ``known``: other kubegpu_* names the
    collection sets itself (published facts).
    """
    groups = dict(groups or {})
    hosts = dict(hosts or {})
    cluster = list(groups.get(CLUSTER) or [])
    kube_hosts = list(groups.get(CONTROL_PLANE) or []) + list(groups.get(WORKERS) or [])
    everyone = cluster + [h for h in kube_hosts if h not in cluster]
    everyone = list(dict.fromkeys(everyone))

    legacy_problems, legacy_warnings = _legacy_groups(groups)
    variable_problems, variable_warnings = _legacy_variables(everyone, hosts)
    problems = (legacy_problems
                + _groups_problems(groups)
                + _duplicate_node_names(cluster, hosts)
                + _duplicate_addresses(cluster, hosts)
                + variable_problems
                + _cluster_wide(cluster, hosts, specs)
                + _ha_endpoint(groups, hosts))
    warnings = (legacy_warnings
                + variable_warnings
                + _unknown_kubegpu(everyone, hosts, specs, known)
                + _duplicate_machine_ids(machine_ids))
    return {"problems": problems, "warnings": warnings}


def variables_of_interest():
    """The variable names inventory_report() reads (besides every kubegpu_* name)."""
    return frozenset(HOST_VARIABLES) | frozenset(CLUSTER_WIDE) | frozenset(LEGACY_VARIABLES)


# --- what the collection defines -------------------------------------------------------

_KUBEGPU_NAME = re.compile(r"\bkubegpu_[a-z0-9_]*[a-z0-9]")


@functools.lru_cache(maxsize=4)
def collection_variables(root=None):
    """(specs, referenced) of the collection at ``root`` (default: this file's collection).

    ``specs``: every option of every role's meta/argument_specs.yml (all entry points) and
    every key of its defaults/main.yml -> its spec type (``raw`` when it has none).
    ``referenced``: the kubegpu_* names the roles and playbooks mention (facts they
    publish, such as kubegpu_gpu_facts_fresh). Empty when the roles are not there.
    """
    base = Path(root) if root else Path(__file__).resolve().parents[2]
    specs, referenced = {}, set()
    for path in sorted(base.glob("roles/*/meta/argument_specs.yml")):
        data = _yaml.load(path) or {}
        for entry in (data.get("argument_specs") or {}).values():
            for name, option in ((entry or {}).get("options") or {}).items():
                specs[name] = (option or {}).get("type", "str")
    for path in sorted(base.glob("roles/*/defaults/main.yml")):
        data = _yaml.load(path) or {}
        for name in data if isinstance(data, dict) else ():
            specs.setdefault(name, "raw")
    for pattern in ("roles/*/*/*.yml", "roles/*/templates/*.j2", "playbooks/*.yml"):
        for path in base.glob(pattern):
            referenced |= set(_KUBEGPU_NAME.findall(path.read_text(encoding="utf-8")))
    return specs, frozenset(referenced)
