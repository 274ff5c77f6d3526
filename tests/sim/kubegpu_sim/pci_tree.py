# SPDX-License-Identifier: Apache-2.0
"""Simulated GPUs as files: turn a PCI tree description (tests/sim/gpu/<name>.json) into
the directory a GPU test host gets bind-mounted over /sys/bus/pci/devices.

The description maps each function's bus id to its sysfs attribute files, as the kernel
lays them out under /sys/bus/pci/devices/<domain:bus:dev.fn>/ (Documentation/ABI/
testing/sysfs-bus-pci): {"0000:00:06.0": {"vendor": "0x10de", "device": "0x2330", ...}}.
The trees are kept as JSON because bus ids contain ':', which ansible-test refuses in a
collection's file names.

    python3 -m kubegpu_sim.pci_tree tests/sim/gpu/h100-1gpu.json .cache/sim-gpu/h100-1gpu
"""
from __future__ import annotations

import json
import os
import shutil
import sys


def _existing(dest):
    """The tree at dest as {bus_id: {attribute: value}}, or None when there is none."""
    if not os.path.isdir(dest):
        return None
    tree = {}
    for bus_id in os.listdir(dest):
        path = os.path.join(dest, bus_id)
        if not os.path.isdir(path):
            return None
        tree[bus_id] = {}
        for name in os.listdir(path):
            with open(os.path.join(path, name)) as stream:
                tree[bus_id][name] = stream.read()
    return tree


def materialise(description, dest):
    """Write the tree of `description` (a JSON file) into dest (replaced); return dest.

    A tree already there with the same content is left alone: running test hosts have it
    bind-mounted, and replacing the directory would leave them the deleted one (empty).
    """
    with open(description) as stream:
        functions = json.load(stream)
    wanted = dict((bus_id, dict((name, "%s\n" % value) for name, value in attributes.items()))
                  for bus_id, attributes in functions.items())
    if _existing(dest) == wanted:
        return dest
    tmp = dest + ".new"
    shutil.rmtree(tmp, ignore_errors=True)
    for bus_id, attributes in sorted(functions.items()):
        os.makedirs(os.path.join(tmp, bus_id))
        for name, value in attributes.items():
            with open(os.path.join(tmp, bus_id, name), "w") as stream:
                stream.write("%s\n" % value)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: python3 -m kubegpu_sim.pci_tree DESCRIPTION.json DEST_DIR\n")
        return 2
    materialise(argv[0], argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
