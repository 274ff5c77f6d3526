# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Filters for the preflight role's inventory rules and booleans (docs/preflight.md)."""

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
  - C(spec_bool(name='value')) reads a boolean setting as the role argument spec does (C(yes)/C(no),
    C(on)/C(off), C(true)/C(false), C(1)/C(0), any case; null is false) and fails naming the variable
    otherwise. C(spec_bool_problem(name)) returns the problem line instead ('' for a boolean).
author: kubegpu maintainers
options:
  _input:
    description: C(groups), C(inventory_hostname), or the value of a boolean setting.
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

from ansible.errors import AnsibleFilterError
from jinja2 import Undefined

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_inventory as _inventory


def _host_variables(hostvars, host, wanted):
    """{variable: value} of one host: the wanted names it has, and every kubegpu_* name it has
    (None as value: only the name is judged).

    Values are templated as hostvars[host][name] does; a DeepOps/kubespray variable whose
    template does not resolve without DeepOps' own variables is taken as written.
    """
    variables = hostvars[host]
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
            "spec_bool": spec_bool,
            "spec_bool_problem": spec_bool_problem,
        }
