# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: every stage's argument spec, checked in stage 1 (docs/preflight.md).

Each stage role types its variables in ``meta/argument_specs.yml`` and Ansible checks them
when the role starts - in stage 2 or later, after stage 1 let the run go on, and with the
whole spec printed on failure. Preflight checks them all first, for every host, with
Ansible's own validator (``ArgumentSpecValidator``, what ``validate_argument_spec`` runs),
and says each problem in one line::

    host <H>: variable <V>: <what is wrong> (accepted: <values>); fix: <fix>

Only what the inventory, ``group_vars``, ``host_vars`` and ``-e`` SET is checked (role
defaults are the collection's own). Stricter than Ansible where a role would get a value it
cannot use: Ansible's check converts but the role still reads the variable as written, so
a string where a list or mapping is expected (``kubernetes_packages: kubelet``: the role
would loop over its letters), a list or mapping where a string is expected, a boolean where
a number is expected and an empty (null) value of an option that has a default are refused.
Whole numbers some stage or upstream bounds are checked against those bounds (INT_RANGES).

Pure functions over plain data; the filter ``kubegpu.cluster.preflight_host_problems``
(plugins/filter/preflight.py) hands them the host's variables.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import ArgumentValueError

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _yaml

# What each spec type accepts, as the messages say it.
_ACCEPTED = {
    "bool": "true or false; Ansible also reads yes/no, on/off, 1/0",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
    "path": "a path",
    "list": "a list",
    "dict": "a mapping",
    "raw": "any value",
}
_EXAMPLE = {"bool": "true", "int": "10", "float": "1.5", "str": "value", "path": "/path", "list": "[a, b]",
            "dict": "{key: value}"}

# Whole numbers a stage or upstream bounds: (least, greatest or None, why).
INT_RANGES = {
    # kubeadm ValidatePort (cmd/kubeadm/app/apis/kubeadm/validation/validation.go).
    "kubernetes_apiserver_port": (1, 65535, "a TCP port"),
    "nvidia_device_plugin_dcgm_exporter_port": (1, 65535, "a TCP port"),
    # Calico's IP pool validation (libcalico-go/lib/clientv3/ippool.go, validateAndSetDefaults:
    # "IPv4 block size must be between 20 and 32"); kubegpu's pool is IPv4.
    "calico_block_size": (20, 32, "the block size of Calico's IPv4 pool"),
    # 0 and 1 turn time-slicing off (roles/nvidia_device_plugin/vars/main.yml).
    "nvidia_device_plugin_time_slicing_replicas": (0, None, "replicas per GPU; 0 or 1 turn time-slicing off"),
    "validate_gpu_replicas": (1, None, "replicas per GPU"),
    "preflight_min_memory_mb_control_plane": (0, None, "MB"),
    "preflight_min_cpus_control_plane": (0, None, "CPUs"),
    # The GPU Operator's driver.upgradePolicy.maxParallelUpgrades: 0 means no limit
    # (deployments/gpu-operator/values.yaml at v25.10.1).
    "gpu_operator_driver_upgrade_max_parallel": (0, None, "nodes upgraded at once; 0 for no limit"),
}
# Counts and durations by name: never negative.
_NON_NEGATIVE_SUFFIXES = ("_timeout", "_retries", "_valid_time", "_mtu")


def int_range(name):
    """(least, greatest or None, why) of a whole-number option, or None when unbounded."""
    if name in INT_RANGES:
        return INT_RANGES[name]
    if name.endswith("_port"):
        return (1, 65535, "a TCP port")
    if name.endswith(_NON_NEGATIVE_SUFFIXES):
        return (0, None, "a count or a number of seconds")
    return None


# --- what the collection defines -----------------------------------------------------------

def _root(root):
    return Path(root) if root else Path(__file__).resolve().parents[2]


def settings_entry_point(data):
    """The entry point of a role's meta/argument_specs.yml (``data``, parsed) that holds its
    inventory settings: ``settings`` where the role has one, else ``main``.

    ``settings`` is the entry point of the kubegpu role and of every role that depends on it
    (the stages): their settings are checked once per run and host, by preflight or, where
    preflight did not run, by the kubegpu role (roles/kubegpu/tasks/settings.yml), not by
    Ansible in every play that runs the role, as it would do for ``main``."""
    entries = (data or {}).get("argument_specs") or {}
    return entries.get("settings") or entries.get("main") or {}


@functools.lru_cache(maxsize=4)
def collection_specs(root=None):
    """{variable: [(role, option), ...]} of every role's settings entry point
    (settings_entry_point).

    The other entry points (kubegpu's ``apply``, ``cluster``) take task parameters, not
    inventory settings."""
    specs = {}
    for path in sorted(_root(root).glob("roles/*/meta/argument_specs.yml")):
        role = path.parent.parent.name
        main = settings_entry_point(_yaml.load(path))
        for name, option in (main.get("options") or {}).items():
            specs.setdefault(str(name), []).append((role, dict(option or {})))
    return specs


@functools.lru_cache(maxsize=4)
def collection_defaults(root=None):
    """{variable: value} of every role's defaults/main.yml, as written (templates stay strings)."""
    defaults = {}
    for path in sorted(_root(root).glob("roles/*/defaults/main.yml")):
        data = _yaml.load(path) or {}
        if isinstance(data, dict):
            for name, value in data.items():
                defaults.setdefault(str(name), value)
    return defaults


@functools.lru_cache(maxsize=4)
def collection_private_vars(root=None):
    """{variable: value} of the "_"-prefixed values of every role's vars/main.yml, as written
    (some role defaults are built from them)."""
    found = {}
    for path in sorted(_root(root).glob("roles/*/vars/main.yml")):
        data = _yaml.load(path) or {}
        if isinstance(data, dict):
            for name, value in data.items():
                if str(name).startswith("_"):
                    found.setdefault(str(name), value)
    return found


@functools.lru_cache(maxsize=4)
def container_types(root=None):
    """Virtualization types that are containers, as stage 3 lists them
    (roles/nvidia_driver/vars/main.yml _nvidia_driver_container_types)."""
    path = _root(root) / "roles" / "nvidia_driver" / "vars" / "main.yml"
    data = _yaml.load(path) if path.is_file() else {}
    return tuple((data or {}).get("_nvidia_driver_container_types") or ())


@functools.lru_cache(maxsize=32)
def _os_vars(root, role, names):
    for name in names:
        path = _root(root) / "roles" / role / "vars" / ("%s.yml" % name)
        if path.is_file():
            return _yaml.load(path) or {}
    return {}


def os_vars(role, facts, root=None):
    """A role's vars file for a host's OS (``facts``: its ansible_facts): the first of
    <distribution>_<major>, <distribution>, <os_family>_<major>, <os_family> that the role has,
    the order of the roles' include_vars (os_prereqs' tasks/facts.yml; the other roles list a
    subset of these names, and have no file of the names they leave out). {} when none."""
    facts = facts or {}
    distribution = str(facts.get("distribution") or "")
    family = str(facts.get("os_family") or "")
    major = str(facts.get("distribution_major_version") or "")
    return _os_vars(str(root) if root else None, role,
                    ("%s_%s" % (distribution, major), distribution, "%s_%s" % (family, major), family))


def settings(variables, names, root=None):
    """{name: value} the stages will see: the value SET for the host, else the role default."""
    defaults = collection_defaults(root)
    return dict((name, variables[name] if name in (variables or {}) else defaults.get(name)) for name in names)


# --- showing values ------------------------------------------------------------------------

_CREDENTIALS = re.compile(r"((?:^|://|')[^/@:\s']*):[^/@\s]*@")


def show(value):
    """A value as a message shows it: strings quoted, others as JSON, at most 80 characters,
    the password of a URL's user:password@ masked."""
    if isinstance(value, str):
        text = repr(_CREDENTIALS.sub(r"\1:***@", value))
    else:
        try:
            text = json.dumps(value, sort_keys=True, default=str)
        except (TypeError, ValueError):
            text = repr(value)
        text = _CREDENTIALS.sub(r"\1:***@", text)
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value):
    """What YAML made of a value: bool, int, float, str, list, dict or null."""
    return _network._type_name(value)   # pylint: disable=protected-access


_ARTICLE = {"int": "an int", "list": "a list", "dict": "a mapping", "str": "a string", "bool": "a boolean",
            "float": "a float", "null": "null", "path": "a path"}


def _a(kind):
    return _ARTICLE.get(kind, "a " + kind)


# --- one option -----------------------------------------------------------------------------

def _accepted(option):
    kind = option.get("type", "str")
    if option.get("choices") is not None:
        choices = ", ".join("''" if c == "" else str(c) for c in option["choices"])
        if kind == "list":
            return "a list of: %s" % choices
        return choices
    if kind == "list" and option.get("elements"):
        return "a list of %s" % {"str": "strings", "dict": "mappings", "int": "whole numbers",
                                 "path": "paths"}.get(option["elements"], option["elements"])
    return _ACCEPTED.get(kind, kind)


def _written(name, kind):
    """How to write a value of this type, for the fix."""
    if kind in ("list", "dict"):
        return ("write %s as a YAML %s (%s: %s), or with -e as JSON (-e '{\"%s\": %s}')"
                % (name, "list" if kind == "list" else "mapping", name, _EXAMPLE[kind], name,
                   '["a", "b"]' if kind == "list" else '{"key": "value"}'))
    return "set %s to %s" % (name, _ACCEPTED.get(kind, kind))


def _strict_problem(kind, value):
    """A value Ansible's check would convert but the role would misread, or ''."""
    if kind in ("list", "dict") and not isinstance(value, (list, tuple, dict)):
        return "%s is %s, not %s" % (show(value), _a(type_name(value)), _a(kind))
    if kind == "list" and isinstance(value, dict):
        return "%s is a mapping, not a list" % show(value)
    if kind == "dict" and isinstance(value, (list, tuple)):
        return "%s is a list, not a mapping" % show(value)
    if kind in ("str", "path") and isinstance(value, (list, tuple, dict)):
        return "%s is %s, not %s" % (show(value), _a(type_name(value)), _a("str"))
    if kind in ("int", "float") and isinstance(value, bool):
        return "%s is a boolean, not %s" % (show(value), "a whole number" if kind == "int" else "a number")
    return ""


@functools.lru_cache(maxsize=2048)
def _validator(name, spec_json):
    return ArgumentSpecValidator({name: json.loads(spec_json)})


def _spec_for_validator(option):
    """The option as ArgumentSpecValidator takes it (type, elements, choices, options)."""
    keep = dict((k, option[k]) for k in ("type", "elements", "choices", "options") if k in option)
    keep.setdefault("type", "str")
    return json.dumps(keep, sort_keys=True, default=str)


def _choice_fix(name, value, option):
    choices = option.get("choices") or []
    if option.get("type") == "list":
        values = value if isinstance(value, (list, tuple)) else [value]
        bad = [v for v in values if str(v) not in [str(c) for c in choices]]
        fixed = []
        for v in values:
            match = [c for c in choices if str(c).lower() == str(v).lower()]
            fixed.append(match[0] if match else None)
        if all(f is not None for f in fixed):
            return bad, "%s: [%s]" % (name, ", ".join(str(f) for f in fixed))
        return bad, "make %s a list of: %s" % (name, ", ".join(str(c) for c in choices))
    match = [c for c in choices if str(c).lower() == str(value).strip().lower()]
    if match:
        shown = "''" if match[0] == "" else str(match[0])
        return [value], "%s: %s" % (name, shown)
    return [value], "set %s to one of: %s" % (name, ", ".join("''" if c == "" else str(c) for c in choices))


def option_problem(name, value, option):
    """The problem record of one option set to ``value``, or None.

    ``option`` is its entry in a role's argument spec. The record is ``{"variable",
    "problem", "fix"}`` (plugins/plugin_utils/_network.py ``problem``)."""
    kind = option.get("type", "str")
    if value is None:
        if kind in ("bool", "raw") or option.get("default") is None:
            return None
        return _network.problem(name, "is empty (null) (accepted: %s)" % _accepted(option),
                                "give %s a value, or remove it to keep the default %s"
                                % (name, show(option.get("default"))))
    strict = _strict_problem(kind, value)
    if strict:
        return _network.problem(name, "%s (accepted: %s)" % (strict, _accepted(option)), _written(name, kind))
    if kind == "list" and option.get("elements") in ("str", "path", "int"):
        for index, element in enumerate(value):
            if isinstance(element, (list, tuple, dict)) or element is None:
                what = "element %d (%s) is %s" % (index, show(element), _a(type_name(element)))
                return _network.problem(
                    name, "%s (accepted: %s)" % (what, _accepted(option)),
                    "make every element of %s a %s" % (name, "string" if option["elements"] != "int" else "number"))
    if kind == "list" and option.get("elements") == "dict":
        for index, element in enumerate(value):
            if not isinstance(element, dict):
                return _network.problem(
                    name, "element %d (%s) is %s, not a mapping (accepted: %s)"
                    % (index, show(element), _a(type_name(element)), _accepted(option)),
                    "make every element of %s a mapping (key: value)" % name)
    result = _validator(name, _spec_for_validator(option)).validate({name: value}, validate_role_argument_spec=True)
    if result.error_messages:
        error = result.errors.errors[0]
        if isinstance(error, ArgumentValueError) and option.get("choices") is not None:
            bad, fix = _choice_fix(name, value, option)
            shown = ", ".join(show(b) for b in bad) or show(value)
            return _network.problem(
                name, "%s %s not one of the accepted values (accepted: %s; exact spelling, case matters)"
                % (shown, "is" if len(bad) <= 1 else "are", _accepted(option)), fix)
        if kind == "bool":
            return _network.problem(name, "%s is not a boolean (accepted: %s)" % (show(value), _accepted(option)),
                                    "%s: true or false" % name)
        return _network.problem(name, "%s is %s, not %s (accepted: %s)"
                                % (show(value), _a(type_name(value)), _a(kind), _accepted(option)),
                                _written(name, kind))
    if kind == "int":
        bounds = int_range(name)
        number = result.validated_parameters.get(name)
        if bounds and isinstance(number, int):
            least, greatest, why = bounds
            if number < least or (greatest is not None and number > greatest):
                accepted = ("%d to %d" % (least, greatest)) if greatest is not None else "%d or more" % least
                return _network.problem(name, "%s is out of range (accepted: %s, %s)" % (show(value), accepted, why),
                                        "set %s to a number from %s" % (name, accepted.replace(" or more", " up")))
    return None


def spec_problems(variables, specs=None):
    """Problem records of every variable set in ``variables`` (name -> value) that a role's
    argument spec types, in the order of ``variables``. ``specs``: collection_specs()."""
    specs = collection_specs() if specs is None else specs
    problems = []
    for name, value in (variables or {}).items():
        seen = set()
        for _role, option in specs.get(name, ()):
            key = _spec_for_validator(option)
            if key in seen:
                continue
            seen.add(key)
            record = option_problem(name, value, option)
            if record:
                problems.append(record)
                break
    return problems
