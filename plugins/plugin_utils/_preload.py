# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: load once, in ansible-playbook's own process, what every worker loads again.

ansible-core forks a worker process for every task and host, and a worker keeps nothing
for the next one. A worker that templates a kubegpu filter imports the collection's filter
files and the rules modules they use; the collection loader compiles each of them from
source (it writes no bytecode). A worker that connects to a host parses the documentation
of its connection, shell and become plugins for their settings. Loaded here once, before
the first play forks any worker, all of that is inherited by every worker instead
(copy-on-write). The kubegpu callback calls `preload` at the first kubegpu play
(docs/callback.md, option ``preload``); docs/benchmarks.md measures it (issue #15).
"""

from __future__ import annotations

import importlib
import pkgutil

PACKAGE = "ansible_collections.kubegpu.cluster.plugins"
COLLECTION = "kubegpu.cluster"
# The ways `ansible_connection` names the SSH connection.
SSH_ALIASES = frozenset(("smart", "ssh", "ansible.builtin.ssh", "ansible.legacy.ssh"))


def _modules(subpackage):
    """Module names of plugins/<subpackage>/ (no packages)."""
    package = importlib.import_module("%s.%s" % (PACKAGE, subpackage))
    return sorted(info.name for info in pkgutil.iter_modules(package.__path__) if not info.ispkg)


def connection_names(values, default="ssh"):
    """The connection plugins to load for `ansible_connection` values found in the inventory.

    Templated values (the worker decides them per host) and empty ones are left out;
    `smart` is the SSH connection, as ansible-core resolves it. The configured default
    transport is always in the result.
    """
    names = set()
    for value in list(values) + [default]:
        if not isinstance(value, str) or not value or "{" in value:
            continue
        names.add("ssh" if value in SSH_ALIASES else value)
    return sorted(names)


def inventory_connections(inventory):
    """`ansible_connection` values set on the inventory's hosts and groups (not in vars files)."""
    values = []
    for owners in (getattr(inventory, "hosts", {}), getattr(inventory, "groups", {})):
        for owner in owners.values():
            value = getattr(owner, "vars", {}).get("ansible_connection")
            if value is not None:
                values.append(value)
    return values


def preload(connections=(), becomes=("sudo",), shells=("sh",)):
    """Load kubegpu's filter, action and rules modules and the named plugins in this process.

    Returns ``(loaded, failed)``: the names loaded and ``(name, error)`` for what could not
    be; a name that fails here is left to the worker, which reports it as it always did.
    """
    from ansible.plugins import loader

    loaded, failed = [], []

    def attempt(name, load):
        try:
            load()
        except Exception as error:  # noqa: BLE001 - a preload never fails the run
            failed.append((name, "%s: %s" % (type(error).__name__, error)))
        else:
            loaded.append(name)

    # The rules modules first: the filter files bind them lazily (plugin_utils/_lazy.py).
    for name in _modules("plugin_utils"):
        attempt("plugin_utils." + name, lambda n=name: importlib.import_module("%s.plugin_utils.%s" % (PACKAGE, n)))
    # Through the filter loader, so that its path cache is warm too: resolving a
    # collection filter walks the collection's filter files in order.
    for name in _modules("filter"):
        def load_filters(n=name):
            module = importlib.import_module("%s.filter.%s" % (PACKAGE, n))
            filter_names = sorted(module.FilterModule().filters())
            if filter_names:
                loader.filter_loader.get("%s.%s" % (COLLECTION, filter_names[0]))
        attempt("filter." + name, load_filters)
    for name in _modules("action"):
        attempt("action." + name, lambda n=name: loader.action_loader.get("%s.%s" % (COLLECTION, n), class_only=True))
    for kind, plugin_loader, names in (("connection", loader.connection_loader, connections),
                                       ("become", loader.become_loader, becomes),
                                       ("shell", loader.shell_loader, shells)):
        for name in names:
            attempt("%s.%s" % (kind, name), lambda n=name, pl=plugin_loader: _require(pl.get(n, class_only=True), n))
    return loaded, failed


def _require(plugin, name):
    if plugin is None:
        raise LookupError("no plugin named %s" % name)
    return plugin
