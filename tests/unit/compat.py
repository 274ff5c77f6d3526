# SPDX-License-Identifier: Apache-2.0
"""What the unit tests need from ansible-core, on every version of meta/runtime.yml's
range (2.17 to 2.20; scripts/test.sh matrix runs the unit tests on the lowest and the
highest).

- patch_module_args: ansible.module_utils.testing exists from ansible-core 2.19. Before
  it, AnsibleModule read its arguments from ansible.module_utils.basic._ANSIBLE_ARGS, a
  JSON document {"ANSIBLE_MODULE_ARGS": {...}} as bytes; that is what is set here.
- cached_facts / edit_cached_facts: a jsonfile fact-cache entry. ansible-core 2.19
  wraps the facts ({"__payload__": "<the facts as JSON>", ...}); before, the entry was
  the facts themselves.
- ModuleExit / patch_module_exits: AnsibleModule.exit_json and fail_json raise ModuleExit
  with the result (plus "_failed"), so a test calls a module's main() and reads what it
  returned.
- run_module_main: a module's main() run with arguments (check mode, diff), its commands
  answered by a stand-in host object (``host.run(argv, env=, cwd=)``), and its result.
- trust_as_template / load_trusted: ansible-core 2.19 templates only strings marked
  trusted (data tagging); before it, every string was a template. Both are the
  identity there.
"""
from __future__ import annotations

import contextlib
import inspect
import json
from unittest import mock

try:
    from ansible.module_utils.testing import patch_module_args
except ImportError:  # ansible-core < 2.19
    from ansible.module_utils import basic as _basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        """Expose args to the AnsibleModule instances created within this context."""
        if not isinstance(args, (dict, type(None))):
            raise TypeError("The `args` arg must be a dict or None.")
        payload = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        with mock.patch.object(_basic, "_ANSIBLE_ARGS", payload):
            yield

try:
    from ansible.template import trust_as_template
except ImportError:  # ansible-core < 2.19: every string is a template
    def trust_as_template(value):
        """The value itself: before 2.19 nothing needs marking."""
        return value


def load_trusted(loader, path):
    """DataLoader.load_from_file(path) with the strings in it trusted as templates."""
    if "trusted_as_template" in inspect.signature(loader.load_from_file).parameters:
        return loader.load_from_file(path, trusted_as_template=True)
    return loader.load_from_file(path)


class ModuleExit(Exception):
    """Raised by the patched exit_json / fail_json; args[0] is the result."""


def patch_module_exits(monkeypatch):
    """Make AnsibleModule.exit_json and fail_json raise ModuleExit(result)."""
    from ansible.module_utils import basic

    def exit_json(self, **kwargs):
        kwargs.setdefault("changed", False)
        raise ModuleExit(dict(kwargs, _failed=False))

    def fail_json(self, msg, **kwargs):
        raise ModuleExit(dict(kwargs, msg=msg, _failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)


def run_module_main(main, args, host, check_mode=False, diff=False):
    """Call a module's main() with args; every command it runs is answered by
    host.run(argv, env=, cwd=) and every program is found (get_bin_path returns its name).
    Needs patch_module_exits in force; returns the result exit_json/fail_json got."""
    import pytest
    from ansible.module_utils import basic

    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True

    def run_command(self, argv, environ_update=None, cwd=None, **kwargs):
        return host.run(argv, env=environ_update, cwd=cwd)
    with patch_module_args(args):
        with mock.patch.object(basic.AnsibleModule, "get_bin_path", lambda self, name, required=False, opt_dirs=None: name):
            with mock.patch.object(basic.AnsibleModule, "run_command", run_command):
                with pytest.raises(ModuleExit) as caught:
                    main()
    return caught.value.args[0]


def cached_facts(entry):
    """The facts in a jsonfile fact-cache entry (a pathlib.Path)."""
    stored = json.loads(entry.read_text(encoding="utf-8"))
    return json.loads(stored["__payload__"]) if "__payload__" in stored else stored


def edit_cached_facts(entry, edit):
    """Call edit(facts) on the facts of a jsonfile fact-cache entry, write them back in
    the entry's own format."""
    stored = json.loads(entry.read_text(encoding="utf-8"))
    facts = json.loads(stored["__payload__"]) if "__payload__" in stored else stored
    edit(facts)
    if "__payload__" in stored:
        stored["__payload__"] = json.dumps(facts)
    entry.write_text(json.dumps(stored), encoding="utf-8")


__all__ = ["ModuleExit", "cached_facts", "edit_cached_facts", "patch_module_exits", "load_trusted", "patch_module_args", "run_module_main",
           "trust_as_template"]
