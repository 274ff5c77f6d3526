# SPDX-License-Identifier: Apache-2.0
"""Every filter the collection registers is documented for ansible-doc: its plugin file has
DOCUMENTATION (valid YAML, naming the filter) and RETURN, and ansible-doc resolves it."""
from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
FILES = sorted(p.stem for p in (ROOT / "plugins" / "filter").glob("*.py") if p.stem != "__init__")


def _module(stem):
    return importlib.import_module("ansible_collections.kubegpu.cluster.plugins.filter.%s" % stem)


@pytest.mark.parametrize("stem", FILES)
def test_every_filter_is_named_in_its_documentation(stem):
    module = _module(stem)
    doc = yaml.safe_load(module.DOCUMENTATION)
    ret = yaml.safe_load(module.RETURN)
    assert doc["name"] == stem and doc.get("short_description") and "_input" in doc.get("options", {})
    assert "_value" in ret
    text = " ".join(doc["description"] if isinstance(doc["description"], list) else [doc["description"]])
    names = sorted(module.FilterModule().filters())
    assert names, stem
    missing = [n for n in names if not re.search(r"C\(%s\b" % re.escape(n), text)]
    assert missing == [], "%s: filters not described in DOCUMENTATION: %s" % (stem, missing)


def test_ansible_doc_resolves_every_filter():
    names = sorted(n for stem in FILES for n in _module(stem).FilterModule().filters())
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".collections"), ANSIBLE_NOCOLOR="1")
    listed = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "filter", "-l", "kubegpu.cluster"],
                            capture_output=True, text=True, env=env, check=False, timeout=120)
    assert listed.returncode == 0, listed.stderr
    found = sorted(line.split()[0].split(".")[-1] for line in listed.stdout.splitlines() if line.strip())
    assert found == names
    shown = subprocess.run([str(Path(sys.executable).parent / "ansible-doc"), "-t", "filter", "--json"]
                           + ["kubegpu.cluster.%s" % n for n in names], capture_output=True, text=True, env=env,
                           check=False, timeout=300)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert sorted(k.split(".")[-1] for k in __import__("json").loads(shown.stdout)) == names
