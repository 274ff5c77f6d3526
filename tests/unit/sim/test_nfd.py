# SPDX-License-Identifier: Apache-2.0
"""nfd.py: Node Feature Discovery's worker labels (kernel, system, pci sources) from a
simulated host, and their writing onto the Node, against the in-memory API."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))
sys.path.insert(0, os.path.dirname(__file__))

from fake_kubelet_api import FakeApi  # noqa: E402
from kubegpu_sim import nfd, pci_tree  # noqa: E402

GPU_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "sim", "gpu")
DEBIAN12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
UBUNTU = 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\n'
# NVIDIA's chart configures the worker so (deployments/gpu-operator/values.yaml node-feature-discovery.worker.config)
OPERATOR_CONFIG = """sources:
  pci:
    deviceClassWhitelist: ["02", "0200", "0207", "0300", "0302"]
    deviceLabelFields: [vendor]
"""


def tree(tmp_path, name="h100-1gpu", extra=None):
    root = pci_tree.materialise(os.path.join(GPU_DIR, name + ".json"), str(tmp_path / name))
    for bus_id, attrs in (extra or {}).items():
        os.makedirs(os.path.join(root, bus_id))
        for key, value in attrs.items():
            with open(os.path.join(root, bus_id, key), "w") as stream:
                stream.write(value + "\n")
    return root


def test_labels_of_a_gpu_host(tmp_path):
    # a virtio NIC (class 0x020000, vendor 1af4) and an NVIDIA H100 (0x030200, 10de)
    root = tree(tmp_path, extra={"0000:00:03.0": {"class": "0x020000", "vendor": "0x1af4", "device": "0x1000"}})
    functions = nfd.read_pci(root)
    assert {"class": "0302", "vendor": "10de"}.items() <= functions[1].items()
    labels = nfd.feature_labels(nfd.worker_config(OPERATOR_CONFIG), DEBIAN12, "6.1.0-28-amd64\n", functions)
    assert labels == {
        "kernel-version.full": "6.1.0-28-amd64", "kernel-version.major": "6", "kernel-version.minor": "1",
        "kernel-version.revision": "0", "system-os_release.ID": "debian", "system-os_release.VERSION_ID": "12",
        "system-os_release.VERSION_ID.major": "12", "pci-1af4.present": "true", "pci-10de.present": "true"}
    # NFD's own defaults: classes 03, 0b40, 12 and the label <class>_<vendor>
    default = nfd.feature_labels({}, UBUNTU, "6.8.0-60-generic", functions)
    assert default["pci-0302_10de.present"] == "true" and "pci-1af4.present" not in default
    assert default["system-os_release.VERSION_ID.minor"] == "04"
    # a value Kubernetes refuses is left out
    assert "kernel-version.full" not in nfd.feature_labels({}, "", "6.1.0+debug", [])


def test_node_labels_written_and_stale_ones_removed(tmp_path):
    api = FakeApi({"/api/v1/nodes/w1": {"metadata": {"name": "w1", "labels": {"kubernetes.io/hostname": "w1"}}}})
    config = nfd.worker_config(OPERATOR_CONFIG)
    functions = nfd.read_pci(tree(tmp_path))
    nfd.label_node(api, "w1", config, DEBIAN12, "6.1.0-28-amd64", functions)
    node = api.get("/api/v1/nodes/w1")
    assert node["metadata"]["labels"]["feature.node.kubernetes.io/pci-10de.present"] == "true"
    assert node["metadata"]["labels"]["feature.node.kubernetes.io/system-os_release.ID"] == "debian"
    assert "pci-10de.present" in node["metadata"]["annotations"][nfd.ANNOTATION].split(",")
    # unchanged: no write
    calls = len(api.calls)
    assert nfd.label_node(api, "w1", config, DEBIAN12, "6.1.0-28-amd64", functions).endswith("unchanged")
    assert [c for c in api.calls[calls:] if c[0] != "GET"] == []
    # the GPU gone: its label removed, the node's own labels kept
    nfd.label_node(api, "w1", config, DEBIAN12, "6.1.0-28-amd64", [])
    labels = api.get("/api/v1/nodes/w1")["metadata"]["labels"]
    assert "feature.node.kubernetes.io/pci-10de.present" not in labels and labels["kubernetes.io/hostname"] == "w1"
