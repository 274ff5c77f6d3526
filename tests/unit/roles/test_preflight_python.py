# SPDX-License-Identifier: Apache-2.0
"""A host whose Python is too old for kubegpu's modules (3.6 as RHEL 8 ships it, 2.7) is refused by
playbooks/preflight.yml's second play, from a raw probe, with the host, the interpreter and the fix,
and the whole run stops there: no module ran on any host, the third play never started (issue #16:
before, such a host ended in a SyntaxError deep in a module).

The real ansible-playbook against localhost aliases (connection local); the old interpreter is a
shell script in tmp_path that answers the probe's `python -c` with an old version and would fail
anything else, so a module run with it would show."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent
GOOD = "ansible_connection=local ansible_python_interpreter=%s" % sys.executable


def _fake_python(tmp_path, name, version):
    path = tmp_path / name
    marker = tmp_path / ("%s-ran-a-module" % name)
    path.write_text(textwrap.dedent("""\
        #!/bin/sh
        if [ "$1" = -c ]; then echo %s; exit 0; fi
        touch %s
        echo "  File \\"<stdin>\\", line 1: SyntaxError: invalid syntax (a module on Python %s)" >&2
        exit 1
        """) % (version, marker, version), encoding="utf-8")
    path.chmod(0o755)
    return path, marker


def _run(tmp_path, inventory_text, *extra):
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(textwrap.dedent(inventory_text), encoding="utf-8")
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"),
               ANSIBLE_CACHE_PLUGIN="memory", ANSIBLE_GATHERING="implicit",
               # Results as JSON: one line per message on every ansible-core (2.17's YAML
               # results fold long messages and double the quotes inside them).
               ANSIBLE_CALLBACK_RESULT_FORMAT="json",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", ANSIBLE_FORKS="4",
               PATH=str(VENV_BIN) + os.pathsep + os.environ.get("PATH", ""))
    argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / "playbooks" / "preflight.yml"),
            *extra]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=str(tmp_path), env=env, timeout=600)
    return done, done.stdout + done.stderr


@pytest.mark.parametrize("name, version", [("python3.6", "3.6"), ("python2.7", "2.7")])
def test_a_python_too_old_stops_the_run_before_any_module(tmp_path, name, version):
    old, marker = _fake_python(tmp_path, name, version)
    done, out = _run(tmp_path, """
        [kube_control_plane]
        cp1 %(good)s

        [kube_node]
        rhel8 ansible_connection=local ansible_python_interpreter=%(old)s

        [k8s_cluster:children]
        kube_control_plane
        kube_node
        """ % {"good": GOOD, "old": old})
    assert done.returncode != 0, out[-4000:]
    assert ("host rhel8: variable ansible_python_interpreter: Python %s found (ansible_python_interpreter %s),"
            " kubegpu's modules need 3.8 or newer; fix: install Python 3.8 or newer (e.g. dnf install python39 on"
            " RHEL 8) and set ansible_python_interpreter to it (e.g. /usr/bin/python3.9)" % (version, old)) in out, \
        out[-4000:]
    # The whole run stops in the second play: the third (facts, the preflight role) never started, for
    # any host, and no module ran with the old interpreter.
    assert "PLAY [Stage 1 - preflight - find the reachable hosts]" in out
    assert "PLAY [Stage 1 - preflight]" not in out, out[-4000:]
    assert "SyntaxError" not in out
    assert not marker.exists()
    assert "host cp1:" not in out


def test_an_interpreter_that_is_not_there_is_named(tmp_path):
    done, out = _run(tmp_path, """
        [kube_control_plane]
        cp1 ansible_connection=local ansible_python_interpreter=%s

        [k8s_cluster:children]
        kube_control_plane
        """ % (tmp_path / "no" / "python3"))
    assert done.returncode != 0, out[-4000:]
    assert ("host cp1: variable ansible_python_interpreter: ansible_python_interpreter %s is not a command on this"
            " host; kubegpu's modules need Python 3.8 or newer" % (tmp_path / "no" / "python3")) in out, out[-4000:]
    assert "PLAY [Stage 1 - preflight]" not in out


def test_preflight_min_python_version_raises_the_floor(tmp_path):
    """The preflight role is not loaded in the second play: the setting is read as the inventory
    (here -e) sets it, and its role default otherwise."""
    done, out = _run(tmp_path, """
        [kube_control_plane]
        cp1 %s

        [k8s_cluster:children]
        kube_control_plane
        """ % GOOD, "-e", "preflight_min_python_version=3.99", "--tags", "run")
    assert done.returncode != 0, out[-4000:]
    assert "kubegpu's modules need 3.99 or newer" in out, out[-4000:]
    assert "PLAY [Stage 1 - preflight]" not in out
