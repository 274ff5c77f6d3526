# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters for the preflight role's rules and booleans, and the stages that share them (docs/preflight.md)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: preflight
short_description: Preflight's inventory rules, node names and booleans
description:
  - C(preflight_inventory(hostvars, play_hosts=None)) takes C(groups) and returns C(problems) and C(warnings),
    lists of lines that name the hosts or group, the variable and the fix - groups and their sizes, the
    DeepOps/kubespray group and variable names, node names (C(kubernetes_node_name) or the inventory name)
    shared by several hosts, one machine listed twice (the same C(ansible_host) and C(ansible_port)),
    cluster-wide settings that differ between hosts, unknown C(kubegpu_*) names, and hosts of C(play_hosts)
    sharing C(/etc/machine-id) (a warning). The rules are in plugins/plugin_utils/_preflight_inventory.py.
  - C(preflight_node_name_problems(kubernetes_node_name=None)) takes C(inventory_hostname) and returns the
    problem records of the host's node name (C(kubernetes_node_name) when set, else the inventory name), which
    must be a DNS-1123 subdomain of at most 63 characters.
  - >-
    C(preflight_host_problems(hostvars, groups, probe=None, cgroup_v1_fatal=None, gpu_node_without_gpu_fatal=None))
    takes C(inventory_hostname) and
    returns C(problems) and C(warnings), problem records of what a later stage would refuse on this host - every
    stage's argument spec for the variables SET for it, the Kubernetes version, the control-plane endpoint, proxy
    URLs, kubeadm's CIDR limits, kubegpu's IPv4 Calico pool, cgroup v1 with a kubelet that refuses it, and the
    NVIDIA driver stage's decision on the GPU facts of this run (plugins/plugin_utils/_preflight_host.py). C(probe)
    is the registered result of C(kubegpu.cluster.host_state) with C(paths) /sys/fs/cgroup,
    /sys/fs/cgroup/cgroup.controllers and /etc/dgx-release. The two severities are the preflight settings of those
    names (null when unset: fatal on machines and VMs, a warning in containers).
  - >-
    C(settings_problems(hostvars)) takes C(inventory_hostname) and returns the problem records of the settings SET
    for it that a stage run without preflight refuses before it acts (the C(kubegpu) role, once per run) - every
    role's argument spec and the proxy URLs, with the functions and words of C(preflight_host_problems).
  - >-
    C(kubernetes_setting_problems(control_planes)) takes C({kubernetes_version, kubernetes_control_plane_endpoint,
    kubegpu_pod_cidr, kubegpu_service_cidr}) and the control-plane hosts and returns the problem records the
    kubernetes role refuses before it installs anything (the same functions preflight calls).
  - >-
    C(container_runtime_problems(kubernetes_node=True)) takes C(kubegpu_container_runtime) and returns the problem
    record of a runtime kubelet cannot use (a list, empty when fine).
  - >-
    C(runtime_source_problems(packages, os_name)) takes C({kubegpu_container_runtime,
    container_runtime_containerd_source, container_runtime_docker_source}), the container_runtime role's
    packages for the host's OS (C({containerd: {source: [package]}, docker: {source: [package]}})) and the OS's
    name, and returns the problem record of a source with no package there (preflight's rule).
  - >-
    C(proxy_problems) takes C({kubegpu_http_proxy, kubegpu_https_proxy}) and returns the problem records of proxy
    URLs apt and dnf cannot use (no http:// or https:// scheme, no host, a path): preflight's rule, which
    os_prereqs checks too before it writes them into apt's or dnf's configuration.
  - >-
    C(gpu_mode_problems) takes the GPU software mode settings (C(kubegpu_gpu_operator),
    C(gpu_operator_device_plugin_enabled), C(kubegpu_container_runtime), C(gpu_operator_values),
    C(gpu_operator_toolkit_enabled), C(container_runtime_nvidia_toolkit_install), C(nvidia_device_plugin_mig_strategy),
    C(nvidia_device_plugin_time_slicing_replicas), C(nvidia_driver_mode)) and returns the problem records of a mode the gpu_operator or
    nvidia_device_plugin stage cannot run (preflight's rule; booleans read as the argument specs read them).
  - >-
    C(nfs_mount_problems) takes C(nfs_client_mounts) and returns a problem record per entry the nfs_client stage
    cannot mount; C(nfs_provisioner_problems) takes C(nfs_client_storage_class_enabled),
    C(nfs_client_provisioner_server), C(nfs_client_provisioner_path), C(nfs_client_storage_class_reclaim_policy)
    and returns the problem records of the provisioner's settings (preflight's rules).
  - >-
    C(preflight_python_probe(fallback=None, discovered=None)) takes C(ansible_python_interpreter) (or the configured
    C(interpreter_python)) and returns the /bin/sh command for C(ansible.builtin.raw) that prints the version of the
    Python Ansible will run modules with (the set interpreter, else the discovered one, else the first of
    C(fallback) found, as Ansible's interpreter discovery picks it).
  - >-
    C(preflight_python_problems(interpreter=None, minimum=None, discovered=None)) takes that command's stdout and
    returns the problem records of a Python that cannot run kubegpu's modules (older than C(minimum),
    C(preflight_min_python_version) or its role default, and never below 3.8; missing).
  - C(spec_bool(name='value')) reads a boolean setting as the role argument spec does (C(yes)/C(no),
    C(on)/C(off), C(true)/C(false), C(1)/C(0), any case; null is false) and fails naming the variable
    otherwise. C(spec_bool_problem(name)) returns the problem line instead ('' for a boolean).
author: kubegpu maintainers
options:
  _input:
    description: C(groups), C(inventory_hostname), the kubernetes settings, the container runtime, or the value of a
      boolean setting.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Fail when the inventory has problems
  ansible.builtin.fail:
    msg: "{{ (groups | kubegpu.cluster.preflight_inventory(hostvars, ansible_play_hosts)).problems | join('\n') }}"

- name: Warn only
  ansible.builtin.debug:
    msg: resources are not checked
  when: not (preflight_resources_fatal | kubegpu.cluster.spec_bool('preflight_resources_fatal'))
"""

RETURN = r"""
_value:
  description: C({problems, warnings}), a list of problem records, a boolean or a problem line.
  type: raw
"""

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError
from jinja2 import Undefined

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _lazy

_host = _lazy.Module("plugin_utils._preflight_host")
_inventory = _lazy.Module("plugin_utils._preflight_inventory")
_network = _lazy.Module("plugin_utils._network")
_rules = _lazy.Module("plugin_utils._preflight_rules")
_specs = _lazy.Module("plugin_utils._preflight_specs")


def _plain(value):
    """``value`` with its mappings and lists as plain dicts and lists.

    ansible-core 2.19 hands a variable's containers over as lazy templating containers;
    each deep copy of one (the argument spec validator copies what it validates) templates
    it again. Rendered once here, the rules work on plain data."""
    if isinstance(value, Mapping):
        return dict((key, _plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _host_variables(hostvars, host, wanted, variables=None):
    """{variable: value} of one host: the wanted names it has, and every kubegpu_* name it has
    (None as value: only the name is judged).

    Values are templated as hostvars[host][name] does; a DeepOps/kubespray variable whose
    template does not resolve without DeepOps' own variables is taken as written.
    ``variables``: hostvars[host] when the caller has it already (each lookup copies the
    host's facts).
    """
    variables = hostvars[host] if variables is None else variables
    values = {}
    for name in list(variables):
        name = str(name)
        if name not in wanted:
            if name.startswith("kubegpu_"):
                values[name] = None     # only its name is judged (unknown kubegpu_* names)
            continue
        try:
            value = variables[name]
            error = "undefined" if isinstance(value, Undefined) else ""
            value = value if error else _plain(value)
        except Exception as exc:  # pylint: disable=broad-except
            error = str(exc)
        if error and name in _inventory.LEGACY_VARIABLES and hasattr(hostvars, "raw_get"):
            # Someone else's variable whose template does not resolve here: taken as written.
            value = hostvars.raw_get(host).get(name)
        elif error:
            raise AnsibleFilterError("host %s: variable %s: its value does not resolve (%s); fix: define what it"
                                     " refers to, or set it to a plain value" % (host, name, error))
        values[name] = value
    return values


def preflight_inventory(groups, hostvars, play_hosts=None):
    """Problems and warnings of the inventory (see the module docstring)."""
    if not isinstance(groups, dict):
        raise AnsibleFilterError("preflight_inventory expects groups (a mapping of group to hosts)")
    wanted = _inventory.variables_of_interest()
    members = []
    for group in (_inventory.CLUSTER, _inventory.CONTROL_PLANE, _inventory.WORKERS):
        members.extend(groups.get(group) or [])
    hosts = dict((host, _host_variables(hostvars, host, wanted)) for host in dict.fromkeys(members))
    machine_ids = {}
    for host in play_hosts or []:
        variables = hostvars[host]
        facts = variables["ansible_facts"] if "ansible_facts" in variables else None
        machine_ids[host] = (facts or {}).get("machine_id", "")
    specs, referenced = _inventory.collection_variables()
    return _inventory.inventory_report(dict(groups), hosts, machine_ids, specs=specs, known=referenced)


def preflight_node_name_problems(host, kubernetes_node_name=None):
    """Problem records of the host's node name (kubernetes_node_name | default(inventory_hostname))."""
    return _inventory.node_name_problems(str(host), kubernetes_node_name)


def _probe(result):
    """{cgroup_version, dgx} from a registered host_state result (paths)."""
    paths = (result or {}).get("paths") if isinstance(result, dict) else None
    if not isinstance(paths, dict):
        return {}

    def stat(path):     # the path under the root the probe was given (tests use one)
        found = [value for key, value in paths.items() if str(key).endswith(path)]
        return (found[0] if found else None) or {}

    cgroup = 2 if stat("/sys/fs/cgroup/cgroup.controllers").get("exists") else (
        1 if stat("/sys/fs/cgroup").get("exists") else None)
    return {"cgroup_version": cgroup, "dgx": bool(stat("/etc/dgx-release").get("exists"))}


def _vip_probe(host, hostvars, groups, variables):
    """{vip_answered, vip_holders} on the first control plane, from its VIP probe of this run
    (roles/preflight/tasks/facts.yml) and this run's facts of the control planes; {} elsewhere."""
    control_planes = list((groups or {}).get("kube_control_plane") or [])
    vip = variables.get(_network.VIP)
    if not vip or not control_planes or host != str(control_planes[0]):
        return {}
    result = hostvars[host]["_preflight_vip_probe"] if "_preflight_vip_probe" in hostvars[host] else {}
    if not isinstance(result, Mapping) or result.get("skipped") or "rc" not in result:
        return {}
    facts = dict((str(cp), _plain(hostvars[cp]["ansible_facts"]) if "ansible_facts" in hostvars[cp] else {})
                 for cp in control_planes if cp in hostvars)
    return {"vip_answered": result.get("rc") == 0, "vip_holders": _network.vip_holders(str(vip), facts)}


def _severity(value, name):
    """A preflight_*_fatal setting: None (unset) or a boolean read as the spec reads it."""
    return None if value is None or isinstance(value, Undefined) else spec_bool(value, name)


def preflight_host_problems(host, hostvars, groups, probe=None, cgroup_v1_fatal=None, gpu_node_without_gpu_fatal=None):
    """Problem and warning records of what a later stage would refuse on this host."""
    host = str(host)
    wanted = frozenset(_specs.collection_specs())
    host_vars = hostvars[host]
    variables = _host_variables(hostvars, host, wanted, host_vars)
    variables = dict((name, value) for name, value in variables.items() if name in wanted)
    facts = host_vars["ansible_facts"] if "ansible_facts" in host_vars else {}
    probe = _probe(probe)
    probe.update(_vip_probe(host, hostvars, groups, variables))
    return _host.host_report(
        host, variables, dict(facts or {}), dict(groups or {}), probe,
        cgroup_v1_fatal=_severity(cgroup_v1_fatal, "preflight_cgroup_v1_fatal"),
        gpu_node_without_gpu_fatal=_severity(gpu_node_without_gpu_fatal, "preflight_gpu_node_without_gpu_fatal"))


def settings_problems(host, hostvars):
    """Problem records of the settings SET for the host that a stage run without preflight
    checks first: every role's argument spec, the proxy URLs (_preflight_host.settings_problems)."""
    host = str(host)
    wanted = frozenset(_specs.collection_specs())
    variables = _host_variables(hostvars, host, wanted)
    return _host.settings_problems(dict((name, value) for name, value in variables.items() if name in wanted))


def kubernetes_setting_problems(settings, control_planes=None):
    """Problem records of the settings kubeadm is given (version, endpoint, CIDRs)."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("kubernetes_setting_problems expects a mapping of setting to value")
    return _rules.kubernetes_problems(dict(settings), list(control_planes or []))


def container_runtime_problems(runtime, kubernetes_node=True):
    """[problem record] of a container runtime kubelet cannot use, or []."""
    record = _rules.container_runtime_problem(runtime, spec_bool(kubernetes_node, "kubernetes_node"))
    return [record] if record else []


def runtime_source_problems(settings, packages, os_name):
    """Problem records of a containerd or Docker Engine source with no package for the host's OS
    (``packages``: the container_runtime role's lists for it), or []."""
    if not isinstance(settings, dict) or not isinstance(packages, dict):
        raise AnsibleFilterError("runtime_source_problems expects the settings and the packages as mappings")
    return _rules.runtime_source_problems(dict(settings), dict(packages), str(os_name))


def proxy_problems(settings):
    """Problem records of kubegpu_http_proxy / kubegpu_https_proxy apt and dnf cannot use, or []."""
    if not isinstance(settings, dict):
        raise AnsibleFilterError("proxy_problems expects a mapping of setting to value")
    return _rules.proxy_problems(dict(settings))


def _settings(settings, name):
    if not isinstance(settings, dict):
        raise AnsibleFilterError("%s expects a mapping of setting to value" % name)
    return dict(settings)


def gpu_mode_problems(settings):
    """Problem records of the GPU software mode settings, or []."""
    return _rules.gpu_mode_problems(_settings(settings, "gpu_mode_problems"), _inventory.boolean)


def nfs_mount_problems(mounts):
    """Problem records of nfs_client_mounts, one per bad entry, or []."""
    return _rules.nfs_mount_problems(mounts)


def nfs_provisioner_problems(settings):
    """Problem records of the NFS provisioner's settings, or []."""
    return _rules.nfs_provisioner_problems(_settings(settings, "nfs_provisioner_problems"), _inventory.boolean)


def preflight_python_probe(interpreter=None, fallback=None, discovered=None):
    """The raw command that prints the version of the Python Ansible will use on the host."""
    return _rules.python_probe_command(interpreter, list(fallback) if fallback else None, discovered)


def preflight_python_problems(stdout, interpreter=None, minimum=None, discovered=None):
    """[problem record] of a host whose Python cannot run kubegpu's modules, or []."""
    record = _rules.python_problem(stdout, interpreter, minimum, discovered)
    return [record] if record else []


def spec_bool(value, name="value"):
    """A boolean setting read as its argument spec reads it."""
    try:
        return _inventory.boolean(value)
    except TypeError:
        raise AnsibleFilterError(_inventory.boolean_problem(value, name)) from None


def spec_bool_problem(value, name="value"):
    """'' when value is a boolean, else a line naming the variable and the fix."""
    return _inventory.boolean_problem(value, name)


class FilterModule:
    """kubegpu preflight filters."""

    def filters(self):
        return {
            "preflight_inventory": preflight_inventory,
            "preflight_node_name_problems": preflight_node_name_problems,
            "preflight_host_problems": preflight_host_problems,
            "settings_problems": settings_problems,
            "kubernetes_setting_problems": kubernetes_setting_problems,
            "container_runtime_problems": container_runtime_problems,
            "runtime_source_problems": runtime_source_problems,
            "proxy_problems": proxy_problems,
            "gpu_mode_problems": gpu_mode_problems,
            "nfs_mount_problems": nfs_mount_problems,
            "nfs_provisioner_problems": nfs_provisioner_problems,
            "preflight_python_probe": preflight_python_probe,
            "preflight_python_problems": preflight_python_problems,
            "spec_bool": spec_bool,
            "spec_bool_problem": spec_bool_problem,
        }
