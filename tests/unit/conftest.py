# SPDX-License-Identifier: Apache-2.0
"""Resolve kubegpu.cluster.* from this checkout the way ansible-playbook does, before any
test imports ansible_collections.*: with Ansible's collection finder installed first, the
role variables the tests render can call the collection's filters (kubegpu.cluster.*) in
the same interpreter, whatever order the test files run in."""
from __future__ import annotations

from pathlib import Path

from ansible.plugins.loader import init_plugin_loader

init_plugin_loader([str(Path(__file__).resolve().parents[2] / ".collections")])
