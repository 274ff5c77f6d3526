# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: what every later stage would refuse on one host, asked in stage 1.

``host_report`` puts together, for one host, from what its inventory SETS and the facts
gathered in this run:

- every stage's argument spec (_preflight_specs.spec_problems);
- the OS, architecture, Python and control-plane resources of this run's facts against
  preflight's settings (_preflight_rules.host_fact_problems);
- the rules later stages enforce (_preflight_rules: the Kubernetes version, the control-plane
  endpoint's form, the container runtime's source for the host's OS, proxy URLs, the GPU
  Operator toolkit setting, the GPU software mode, the NFS mounts and provisioner, cgroup v1
  with a kubelet that refuses it; plugins/plugin_utils/_network.py: kubeadm's CIDR limits and
  kubegpu's IPv4 Calico pool);
- with ``kubegpu_offline: true``, every URL and image the stages would fetch inside the
  mirrors (_offline.problems);
- the NVIDIA driver stage's decision on this host's GPUs (_preflight_driver.driver_problems), or
  with ``nvidia_driver_mode: container`` what the GPU Operator's driver container needs
  (_driver_container.mode_problems, host_problems).

It returns ``{"problems": [records], "warnings": [records]}``; roles/preflight formats them
with the host's other problems into one failure (docs/preflight.md). ``settings_problems`` is
its part that needs no facts: what a stage run without preflight checks first.
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _dra
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_container
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _mig_plan
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _offline
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver as _driver
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_rules as _rules
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as _specs
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

# Settings the rules read: the value set for the host, else the role default.
RULE_SETTINGS = (
    "kubernetes_version", "kubernetes_control_plane_endpoint", "kubegpu_pod_cidr", "kubegpu_service_cidr",
    "calico_block_size", "kubegpu_http_proxy", "kubegpu_https_proxy", "gpu_operator_toolkit_enabled",
    "kubegpu_gpu_group", "nfs_client_mounts", "gpu_node_labels_label_sets", _network.VIP, _network.VIP_INTERFACE,
    "metallb_enabled", _network.METALLB_POOLS,
) + _rules.RUNTIME_SOURCE_SETTINGS + _rules.HOST_FACT_SETTINGS + _driver.SETTINGS + _rules.GPU_MODE_SETTINGS \
    + _rules.NFS_PROVISIONER_SETTINGS + _dra.SETTINGS + _gpu_sharing.SETTINGS + _driver_container.SETTINGS + _offline.SETTINGS
# Typed by their own rule in roles/preflight (cidr_problems: "must be a string in CIDR notation").
_OWN_CHECK = (_network.POD_CIDR, _network.SERVICE_CIDR)


def _record(variable, text, fix):
    return _network.problem(variable, text, fix)


def is_container(facts, root=None):
    """The host is a container, as stage 3 tells (roles/nvidia_driver/vars/main.yml
    _nvidia_driver_container_types, read from that file: one list): virtualization role
    guest and a container virtualization type."""
    facts = facts or {}
    return (facts.get("virtualization_role") == "guest"
            and facts.get("virtualization_type") in _specs.container_types(root))


def _fatal(setting, facts, root):
    """A severity setting: true/false as set, else (unset) fatal on machines and VMs, a
    warning in containers - test hosts that share their host's kernel, cgroup hierarchy and
    PCI devices, which kubegpu neither boots nor loads modules into."""
    if setting is None or (isinstance(setting, str) and setting.strip().lower() in ("", "auto")):
        return not is_container(facts, root)
    try:
        return boolean(setting)
    except TypeError:
        return True     # the argument spec check names it


def settings_problems(variables, root=None):
    """Problem records of the settings a stage run without preflight checks before it acts (the
    kubegpu role's tasks/settings.yml, once per run and host): every role's argument spec for
    what is SET for the host (``variables``: name -> value, as host_report takes them), and the
    proxy URLs apt and dnf are given. The same functions as host_report, so a stage run alone
    refuses a setting in preflight's words; preflight's other rules need this run's facts."""
    variables = dict(variables or {})
    specs = _specs.collection_specs(root)
    problems = _specs.spec_problems(dict((n, v) for n, v in variables.items() if n in specs), specs)
    refused = set(p["variable"] for p in problems)
    settings = _specs.settings(variables, _rules.PROXY_VARIABLES, root)
    problems.extend(p for p in _rules.proxy_problems(settings) if p["variable"] not in refused)
    return problems


def runtime_source_problems(settings, facts, root=None):
    """_preflight_rules.runtime_source_problems with the container_runtime role's packages for
    the host's OS (its vars file, _preflight_specs.os_vars); [] for an OS the role has no vars
    file for (host_fact_problems names the OS)."""
    facts = facts or {}
    data = _specs.os_vars("container_runtime", facts, root)
    if not data:
        return []
    packages = {"containerd": data.get("_container_runtime_containerd_packages") or {},
                "docker": data.get("_container_runtime_docker_packages") or {}}
    os_name = "%s %s" % (facts.get("distribution"), facts.get("distribution_version")
                         or facts.get("distribution_major_version"))
    return _rules.runtime_source_problems(settings, packages, os_name)


def host_report(host, variables, facts, groups, probe=None, cgroup_v1_fatal=None, root=None,
                gpu_node_without_gpu_fatal=None):
    """Problems and warnings of one host (see the module docstring).

    ``variables``: name -> value of what is SET for the host (inventory, group_vars,
    host_vars, -e, and this run's set_fact such as the kubegpu role's kubegpu_gpu_node);
    ``facts``: its ansible_facts of this run (kubegpu_gpu included); ``groups``: Ansible's
    groups; ``probe``: {"cgroup_version": 1 or 2 or None, "dgx": bool} read from the host
    in this run. ``cgroup_v1_fatal`` and ``gpu_node_without_gpu_fatal`` (preflight_* settings):
    true refuses, false warns, None (unset) refuses on machines and VMs and warns in
    containers."""
    variables = dict(variables or {})
    facts = facts or {}
    groups = groups or {}
    probe = probe or {}
    specs = _specs.collection_specs(root)
    problems = _specs.spec_problems(dict((n, v) for n, v in variables.items() if n in specs and n not in _OWN_CHECK),
                                    specs)
    warnings = []
    refused = set(p["variable"] for p in problems)
    settings = _specs.settings(variables, RULE_SETTINGS, root)

    def add(record):
        if record and record["variable"] not in refused:
            problems.append(record)

    if not any(name in refused for name in _rules.HOST_FACT_SETTINGS):
        found, notes = _rules.host_fact_problems(facts, settings, host in (groups.get("kube_control_plane") or []),
                                                 boolean)
        problems.extend(found)
        warnings.extend(notes)
    version_problem = None if "kubernetes_version" in refused else \
        _rules.kubernetes_version_problem(settings["kubernetes_version"])
    add(version_problem)
    if _rules.ENDPOINT not in refused:
        add(_rules.endpoint_problem(settings[_rules.ENDPOINT]))
    for record in _rules.proxy_problems(settings):
        add(record)
    if not any(name in refused for name in _rules.RUNTIME_SOURCE_SETTINGS):
        for record in runtime_source_problems(settings, facts, root):
            add(record)
    if "gpu_operator_toolkit_enabled" not in refused:
        add(_rules.toolkit_enabled_problem(settings["gpu_operator_toolkit_enabled"], boolean))
    if not any(name in refused for name in _rules.GPU_MODE_SETTINGS):
        for record in _rules.gpu_mode_problems(settings, boolean):
            add(record)
    if not any(name in refused for name in _dra.SETTINGS):
        for record in _dra.mode_problems(settings, boolean):
            add(record)
    if not any(name in refused for name in _gpu_sharing.SETTINGS):
        for record in _gpu_sharing.sharing_problems(settings, boolean, facts.get("kubegpu_gpu")):
            add(record)
    if "gpu_node_labels_label_sets" not in refused and "kubegpu_gpu_operator" not in refused:
        warnings.extend(_rules.gpu_mode_warnings(settings, boolean))
    if "nfs_client_mounts" not in refused:
        for record in _rules.nfs_mount_problems(settings["nfs_client_mounts"]):
            add(record)
    if not any(name in refused for name in _offline.MIRROR_SETTINGS):
        # kubegpu_offline: every URL and image the stages fetch from inside the mirrors (one record
        # per variable; those of a variable its argument spec refused are left out by add).
        for record in _offline.problems(settings, boolean, facts):
            add(record)
    if not any(name in refused for name in _rules.NFS_PROVISIONER_SETTINGS):
        for record in _rules.nfs_provisioner_problems(settings, boolean):
            add(record)
    cidrs = dict((name, settings[name]) for name in _OWN_CHECK)
    block_size = settings["calico_block_size"] if "calico_block_size" not in refused else None
    for record in _network.kubeadm_cidr_problems(cidrs) + _network.calico_pool_problems(cidrs, block_size):
        add(record)
    if _network.VIP not in refused and _network.VIP_INTERFACE not in refused:
        # The control-plane VIP against this host's networks (plugin_utils/_network.vip_problems).
        for record in _network.vip_problems(settings[_network.VIP], settings[_network.VIP_INTERFACE], facts, cidrs,
                                            host in (groups.get("kube_control_plane") or [])):
            add(record)
        if "vip_answered" in probe:     # the first control plane's probe of this run
            add(_network.vip_in_use_problem(settings[_network.VIP], probe["vip_answered"], probe.get("vip_holders")))
    if host in (groups.get("kube_control_plane") or []) and \
            not any(n in refused for n in ("metallb_enabled", _network.METALLB_POOLS)):
        # MetalLB's pools (one setting for the cluster), on the control planes: the metallb stage
        # runs on the first.
        try:
            enabled = boolean(settings["metallb_enabled"])
        except TypeError:
            enabled = False     # the argument spec check names it
        vip = settings[_network.VIP] if _network.VIP not in refused else None
        for record in (_network.metallb_enabled_problems(enabled, settings[_network.METALLB_POOLS])
                       + _network.metallb_pool_problems(settings[_network.METALLB_POOLS], cidrs, vip)):
            add(record)
    if version_problem is None and "kubernetes_version" not in refused:
        cgroup = _rules.cgroup_problem(settings["kubernetes_version"], probe.get("cgroup_version"))
        if cgroup:
            (problems if _fatal(cgroup_v1_fatal, facts, root) else warnings).append(cgroup)

    gpu_group = settings.get("kubegpu_gpu_group") or "gpu"
    driver_settings = dict((name, settings[name]) for name in _driver.SETTINGS)
    container = _driver_container.is_container(settings)
    if container and not any(name in refused for name in _driver_container.SETTINGS):
        # The GPU Operator's driver containers: no host driver plan; what they need instead.
        for record in _driver_container.mode_problems(settings, boolean):
            add(record)
        gpu_node = variables.get("kubegpu_gpu_node", False)
        pinned = _driver.pinned_without_gpu_problem(
            facts.get("kubegpu_gpu") or {}, _driver_container.flag(gpu_node, boolean, False),
            host in (groups.get(str(gpu_group)) or []), gpu_group)
        if pinned:
            (add if _fatal(gpu_node_without_gpu_fatal, facts, root) else warnings.append)(pinned)
        elif _driver_container.flag(gpu_node, boolean, False):
            for record in _driver_container.host_problems(facts.get("kubegpu_gpu") or {}, facts, settings, boolean):
                add(record)
    if not container and not any(name in refused for name in _driver.SETTINGS):
        found, notes = _driver.driver_problems(
            facts.get("kubegpu_gpu") or {}, facts, driver_settings,
            gpu_node=variables.get("kubegpu_gpu_node", False),
            in_gpu_group=host in (groups.get(str(gpu_group)) or []),
            gpu_group=gpu_group, dgx=bool(probe.get("dgx")))
        for record in found:
            if record["variable"] in _driver.PINNED_VARIABLES and not _fatal(gpu_node_without_gpu_fatal, facts, root):
                warnings.append(record)
            else:
                add(record)
        for note in notes:
            warnings.append(_record("nvidia_driver_branch", note,
                                    "none needed; nvidia_driver_branch: auto picks a supported branch"))
        if not found and _dra.is_dra(settings):
            add(_dra.planned_branch_problem(facts, driver_settings, variables.get("kubegpu_gpu_node", False)))
    if _mig_plan.VARIABLE not in refused:   # roles/nvidia_mig's layout against this run's GPU facts
        for record in _mig_plan.layout_problems(facts.get("kubegpu_gpu") or {}, variables.get(_mig_plan.VARIABLE),
                                                gpu_operator=settings.get("kubegpu_gpu_operator"), boolean=boolean,
                                                mig_strategy=settings.get("nvidia_device_plugin_mig_strategy")):
            add(record)
    return {"problems": problems, "warnings": warnings}
