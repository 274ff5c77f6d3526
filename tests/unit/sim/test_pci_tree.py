# SPDX-License-Identifier: Apache-2.0
"""kubegpu_sim.pci_tree: the simulated GPUs' PCI trees written out for bind mounts."""
from __future__ import annotations

import json
import os

from kubegpu_sim import pci_tree


def _describe(tmp_path, functions):
    path = tmp_path / "tree.json"
    path.write_text(json.dumps(functions))
    return str(path)


def test_writes_the_tree_as_sysfs_files(tmp_path):
    dest = str(tmp_path / "out")
    pci_tree.materialise(_describe(tmp_path, {"0000:00:06.0": {"vendor": "0x10de", "device": "0x2330"}}), dest)
    assert open(os.path.join(dest, "0000:00:06.0", "vendor")).read() == "0x10de\n"
    assert open(os.path.join(dest, "0000:00:06.0", "device")).read() == "0x2330\n"


def test_an_unchanged_tree_keeps_its_directory(tmp_path):
    """Running test hosts have the directory bind-mounted: re-running bootstrap must not
    replace it (a replaced directory leaves the hosts an empty, deleted one)."""
    description = _describe(tmp_path, {"0000:00:06.0": {"vendor": "0x10de", "device": "0x2330"}})
    dest = str(tmp_path / "out")
    pci_tree.materialise(description, dest)
    before = os.stat(dest).st_ino
    pci_tree.materialise(description, dest)
    assert os.stat(dest).st_ino == before


def test_a_changed_tree_is_replaced(tmp_path):
    dest = str(tmp_path / "out")
    pci_tree.materialise(_describe(tmp_path, {"0000:00:06.0": {"vendor": "0x10de"}}), dest)
    pci_tree.materialise(_describe(tmp_path, {"0000:00:07.0": {"vendor": "0x10de"}}), dest)
    assert os.listdir(dest) == ["0000:00:07.0"]
