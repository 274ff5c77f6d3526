# SPDX-License-Identifier: Apache-2.0
"""What the controller loads once before the workers fork (plugins/plugin_utils/_preload.py)."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preload


@pytest.mark.parametrize("values, default, names", [
    ([], "ssh", ["ssh"]),
    (["smart", "ansible.builtin.ssh"], "smart", ["ssh"]),
    (["local", "community.docker.docker"], "ssh", ["community.docker.docker", "local", "ssh"]),
    # Decided per host by the worker: nothing to load ahead for it.
    (["{{ 'local' if x else 'ssh' }}", "", None, 3], "ssh", ["ssh"]),
])
def test_connection_names(values, default, names):
    assert _preload.connection_names(values, default) == names


def test_inventory_connections_reads_hosts_and_groups():
    inventory = SimpleNamespace(
        hosts={"cp1": SimpleNamespace(vars={"ansible_connection": "local"}),
               "gpu1": SimpleNamespace(vars={"ansible_host": "10.0.0.2"})},
        groups={"all": SimpleNamespace(vars={}),
                "kube_node": SimpleNamespace(vars={"ansible_connection": "paramiko"})})
    assert sorted(_preload.inventory_connections(inventory)) == ["local", "paramiko"]
    assert _preload.inventory_connections(SimpleNamespace()) == []


def test_preload_loads_the_collections_rules_filters_actions_and_plugins():
    loaded, failed = _preload.preload(connections=["local", "no_such_connection"])
    assert ("connection.no_such_connection" in [name for name, dummy in failed]), failed
    assert len(failed) == 1, failed
    for name in ("plugin_utils._driver_plan", "plugin_utils._preflight_rules", "filter.preflight",
                 "filter.driver", "action.packages", "connection.local", "become.sudo", "shell.sh"):
        assert name in loaded, name
    # Every filter file and rules module of the collection, not a hand-kept list.
    assert len([n for n in loaded if n.startswith("filter.")]) == len(_preload._modules("filter")) >= 13
    assert len([n for n in loaded if n.startswith("plugin_utils.")]) == len(_preload._modules("plugin_utils"))
    assert "ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_rules" in sys.modules
    from ansible import constants as C
    assert C.config.has_configuration_definition("connection", "local")


def test_a_module_that_cannot_load_is_reported_not_raised(monkeypatch):
    real = _preload.importlib.import_module

    def broken(name, *args):
        if name.endswith("plugin_utils._dra"):
            raise ImportError("simulated")
        return real(name, *args)

    monkeypatch.setattr(_preload.importlib, "import_module", broken)
    loaded, failed = _preload.preload(connections=[])
    assert ("plugin_utils._dra", "ImportError: simulated") in failed
    assert "plugin_utils._driver_plan" in loaded
