# -*- coding: utf-8 -*-
# SPDX-License-Identifier: Apache-2.0
"""Action of kubegpu.cluster.bundle_plan (documentation: plugins/modules/bundle_plan.py).

Runs on the controller only: reads each fleet host's settings as the stages will see them (the
value set for the host, else the role default, templated for that host) and this run's facts,
and hands them to plugins/plugin_utils/_bundle.py, which decides what the bundle holds.
"""

from __future__ import annotations

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.kubegpu.cluster.plugins.modules.bundle_plan import ARGUMENT_SPEC
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _bundle
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

try:  # ansible-core 2.19: strings read from the collection's files are templates only when trusted
    from ansible.template import trust_as_template
except ImportError:  # pragma: no cover - ansible-core < 2.19 templates every string
    def trust_as_template(value):
        return value


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return dict((k, _trusted(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _plain(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def _settings(self, host_vars, defaults):
        """SETTINGS of one host: as set for it, else the role default, templated with the
        host's variables over the role defaults (what the stages will see)."""
        variables = dict(defaults)
        variables.update(host_vars)
        templar = self._templar.copy_with_new_env()
        templar.available_variables = variables
        found = {}
        for name in _bundle.SETTINGS:
            try:
                found[name] = _plain(templar.template(variables[name])) if name in variables else None
            except AnsibleError as exc:
                # A default built from what only its stage knows at run time: not decided here.
                self._unresolved.setdefault(name, str(exc).split("\n", 1)[0])
                found[name] = None
        return found

    def _operator_values(self, host_vars, defaults, hostvars, groups):
        """The chart values the gpu_operator stage gives helm for this host's settings (its
        _gpu_operator_values, templated as the stage templates it: with hostvars and groups), or
        None when they cannot be decided here."""
        variables = dict(defaults)
        variables.update(host_vars)
        variables.update(hostvars=hostvars, groups=groups)
        templar = self._templar.copy_with_new_env()
        templar.available_variables = variables
        try:
            return _plain(templar.template(variables["_gpu_operator_values"]))
        except (AnsibleError, KeyError) as exc:
            self._unresolved.setdefault("_gpu_operator_values", str(exc).split("\n", 1)[0])
            return None

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)[1]
        hostvars = task_vars.get("hostvars") or {}
        # The role defaults, and the roles' private values (vars/main.yml, "_"-prefixed) some of
        # them are built from (e.g. the GPU Operator's architecture name in its helm URL).
        defaults = _trusted(dict(_preflight_specs.collection_defaults(), **_preflight_specs.collection_private_vars()))
        self._unresolved = {}
        settings = {}

        def settings_of(name):
            if name not in settings:
                # The host's variables as the variable manager has them (inventory, group_vars,
                # facts, extra vars), not yet templated: templated here with the role defaults.
                raw = hostvars.raw_get(name) if name in hostvars and hasattr(hostvars, "raw_get") else {}
                settings[name] = self._settings(dict(raw), defaults)
            return settings[name]

        hosts = []
        server_hosts = set(args["server_hosts"])
        control_planes = set(args["control_plane_hosts"])
        cluster_hosts = set(args["cluster_hosts"] if args["cluster_hosts"] is not None else args["hosts"])
        try:
            for index, entry in enumerate(args["targets"]):
                declared = _bundle.declared_host(entry, index)
                # A declared combination has the settings of the first fleet host given, else the
                # builder's own (the inventory's group_vars/all, -e).
                settings[declared["name"]] = dict(settings_of(args["hosts"][0] if args["hosts"] else
                                                              task_vars.get("inventory_hostname")))
                hosts.append(declared)
            if not args["targets"]:
                for name in args["hosts"]:
                    host_vars = hostvars[name]
                    facts = _plain(host_vars.get("ansible_facts") or {})
                    if not facts.get("distribution"):
                        raise _bundle.BundleError("host %s: this run gathered no facts of it (unreachable?); fix: reach"
                                                  " it, or declare its OS in bundle_targets" % name)
                    roles = (["bundle_server"] if name in server_hosts else []) + (
                        ["kube_control_plane"] if name in control_planes else []) + (
                        ["kube_node"] if name in cluster_hosts else [])
                    hosts.append({"name": name, "os": facts, "gpu": facts.get("kubegpu_gpu") or {},
                                  "gpu_node": bool(_plain(host_vars.get("kubegpu_gpu_node", False))), "roles": roles})
            plan = _bundle.plan(hosts, settings_of, _preflight_specs._root(None), tuple(args["stages"]))
            cluster = settings_of(args["hosts"][0]) if args["hosts"] else settings[hosts[0]["name"]]
            images = (_bundle.images(cluster, boolean, kubernetes="kubernetes" in args["stages"])
                      if "images" in args["stages"] else [])
            files = _bundle.files(cluster, boolean) if "files" in args["stages"] else []
            charts = _bundle.charts(cluster, boolean) if "files" in args["stages"] else []
            registries = _bundle.registries(cluster, boolean, images)
            # The GPU Operator's operand images are read from its chart once downloaded
            # (playbooks/bundle.yml, _bundle.gpu_operator_images): the values helm gets, and the
            # OS of every GPU node (the driver container's tag).
            operator = {}
            if charts and "images" in args["stages"]:
                first = args["hosts"][0] if args["hosts"] else task_vars.get("inventory_hostname")
                raw = dict(hostvars.raw_get(first)) if first and hasattr(hostvars, "raw_get") else {}
                gpu_nodes = [h for h in hosts if h.get("gpu_node") and "kube_node" in h.get("roles", ["kube_node"])]
                fleet_vars, groups = hostvars, task_vars.get("groups") or {}
                if args["targets"]:
                    # Declared combinations stand for the GPU nodes the stage will read (precompiled
                    # driver containers or not is decided from their OS and kernel).
                    fleet_vars = dict((h["name"], {"kubegpu_gpu_node": h["gpu_node"], "ansible_facts": h["os"]})
                                      for h in hosts)
                    groups = {"k8s_cluster": [h["name"] for h in hosts]}
                operator = {"chart_values": self._operator_values(raw, defaults, fleet_vars, groups),
                            "gpu_nodes_os": [dict((k, h["os"][k]) for k in _bundle.OS_FACT_KEYS if k in h["os"])
                                             for h in gpu_nodes]}
        except (_bundle.BundleError, AnsibleError) as exc:
            return dict(result, failed=True, msg="bundle: %s" % exc)
        result.update(changed=False, targets=plan["targets"], images=images, files=files, charts=charts,
                      gpu_operator=operator,
                      mirrors=_bundle.mirrors(plan, images, files, registries, charts), unresolved=self._unresolved)
        return result
