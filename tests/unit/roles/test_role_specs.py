# SPDX-License-Identifier: Apache-2.0
"""Every role's defaults and its meta/argument_specs.yml agree, keys AND values.

- every variable in defaults/main.yml is documented in the role's settings entry point
  (`main`, or `settings` where the role has one: the `kubegpu` role), with a type and a
  description;
- every documented option with a `default` has that exact value in defaults;
- a defaults value that is a Jinja expression (computed) is documented without a
  `default` (ansible-doc would otherwise show the raw template as the default);
- every role has both files, and every option is prefixed with the role's name
  (the `kubegpu` role holds the cluster-wide `kubegpu_*` settings).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_specs import settings_entry_point

ROLES_DIR = Path(__file__).resolve().parents[3] / "roles"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if p.is_dir())


def _load(path: Path):
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream) or {}


def _is_template(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def test_there_are_roles():
    assert "kubegpu" in ROLES
    assert len(ROLES) >= 2


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults_file = ROLES_DIR / role / "defaults" / "main.yml"
    specs_file = ROLES_DIR / role / "meta" / "argument_specs.yml"
    assert specs_file.is_file(), f"{role}: meta/argument_specs.yml is missing"
    defaults = _load(defaults_file) if defaults_file.is_file() else {}
    options = settings_entry_point(_load(specs_file)).get("options") or {}

    undocumented = sorted(set(defaults) - set(options))
    assert not undocumented, f"{role}: defaults without an argument spec: {undocumented}"

    for name, spec in options.items():
        assert spec.get("type"), f"{role}: option {name} has no type"
        assert spec.get("description"), f"{role}: option {name} has no description"
        if name in defaults and _is_template(defaults[name]):
            assert "default" not in spec, (
                f"{role}: {name} is computed in defaults; document it without a default")
        elif "default" in spec:
            assert name in defaults, f"{role}: {name} has a spec default but is not in defaults"
            assert spec["default"] == defaults[name], (
                f"{role}: {name}: argument spec default {spec['default']!r} "
                f"!= defaults/main.yml {defaults[name]!r}")
        elif name in defaults:
            pytest.fail(f"{role}: {name} is in defaults but its spec has no default")


@pytest.mark.parametrize("role", ROLES)
def test_options_are_prefixed_with_the_role_name(role):
    specs_file = ROLES_DIR / role / "meta" / "argument_specs.yml"
    options = settings_entry_point(_load(specs_file)).get("options") or {}
    bad = [name for name in options if not name.startswith(role + "_")]
    assert not bad, f"{role}: options not prefixed with '{role}_': {bad}"
