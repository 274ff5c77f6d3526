# SPDX-License-Identifier: Apache-2.0
"""Node Feature Discovery's worker, as the simulated kubelet "runs" the image
registry.k8s.io/nfd/node-feature-discovery with command nfd-worker (test-only).

The GPU Operator chart deploys NFD as a subchart (NVIDIA/gpu-operator v25.10.1
deployments/gpu-operator/Chart.yaml: node-feature-discovery v0.18.2, condition nfd.enabled)
and the Operator reads three of its labels: the PCI vendor label that marks a GPU node
(controllers/state_manager.go gpuNodeLabels) and the kernel and OS labels the driver image
tag is made of (controllers/object_controls.go kernelFullVersion). What is simulated, each
rule following kubernetes-sigs/node-feature-discovery v0.18 (docs/usage/features.md,
"Built-in labels"):

- kernel source: ``kernel-version.full`` from /proc/sys/kernel/osrelease, ``.major``,
  ``.minor``, ``.revision`` (source/kernel/kernel.go: the full version split on ".", the
  revision the leading digits of the third part);
- system source: ``system-os_release.ID``, ``.VERSION_ID`` and ``.VERSION_ID.major`` /
  ``.minor`` from the host's os-release (mounted at /host-etc/os-release, source/system);
- pci source: ``pci-<device label>.present`` for every PCI function whose class starts with
  one of ``sources.pci.deviceClassWhitelist``; the device label joins the
  ``deviceLabelFields`` (default class and vendor) with "_" (source/pci/pci.go); the class is
  the first four hex digits of sysfs' class attribute (0x030200 -> 0302);
- label values Kubernetes refuses are left out (nfd-master filterFeatureLabels).

Simplification: nfd-worker publishes a NodeFeature object and nfd-master writes the labels;
here the worker writes them onto its Node itself, and records their names in the
annotation nfd.node.kubernetes.io/feature-labels, as nfd-master does, so that labels no
longer discovered are removed. It labels at start and every sleepInterval (60 s, the
worker's default core.sleepInterval). Every other source (cpu, memory, storage, usb,
custom rules) is not simulated.
"""
from __future__ import annotations

import os
import re

from . import yamlish

PREFIX = "feature.node.kubernetes.io/"
ANNOTATION = "nfd.node.kubernetes.io/feature-labels"
SLEEP_SECONDS = 60
# NFD v0.18 source/pci/pci.go defaults (worker-configuration-reference.md, sources.pci).
DEFAULT_CLASSES = ("03", "0b40", "12")
DEFAULT_FIELDS = ("class", "vendor")
# staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go IsValidLabelValue.
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def parse_os_release(text):
    """KEY=value lines of an os-release file (quotes removed)."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def read_pci(sysfs_devices="/sys/bus/pci/devices"):
    """[{"class": "0302", "vendor": "10de", "device": "2330"}] of the functions in sysfs."""
    found = []
    try:
        entries = sorted(os.listdir(sysfs_devices))
    except OSError:
        return found
    for bus_id in entries:
        attrs = {}
        for name in ("class", "vendor", "device", "subsystem_vendor", "subsystem_device"):
            try:
                with open(os.path.join(sysfs_devices, bus_id, name)) as stream:
                    value = stream.read().strip()
            except OSError:
                continue
            value = value[2:] if value.lower().startswith("0x") else value
            attrs[name] = value[:4].lower() if name == "class" else value.lower()
        if "class" in attrs and "vendor" in attrs:
            found.append(attrs)
    return found


def worker_config(text):
    """The worker's configuration file (nfd-worker.conf, YAML) as a dict; {} when absent."""
    if not text:
        return {}
    return yamlish.load(text) or {}


def feature_labels(config, os_release_text, kernel_release, pci_functions):
    """The labels (without the prefix) the kernel, system and pci sources give."""
    labels = {}
    full = (kernel_release or "").strip()
    if full:
        labels["kernel-version.full"] = full
        parts = full.split(".", 2)
        labels["kernel-version.major"] = parts[0]
        if len(parts) > 1:
            labels["kernel-version.minor"] = parts[1]
        if len(parts) > 2:
            match = re.match(r"^([0-9]+)", parts[2])
            if match:
                labels["kernel-version.revision"] = match.group(1)
    release = parse_os_release(os_release_text)
    if release.get("ID"):
        labels["system-os_release.ID"] = release["ID"]
    if release.get("VERSION_ID"):
        version = release["VERSION_ID"]
        labels["system-os_release.VERSION_ID"] = version
        pieces = version.split(".")
        labels["system-os_release.VERSION_ID.major"] = pieces[0]
        if len(pieces) > 1:
            labels["system-os_release.VERSION_ID.minor"] = pieces[1]
    pci = ((config or {}).get("sources") or {}).get("pci") or {}
    classes = [str(c).lower() for c in (pci.get("deviceClassWhitelist") or DEFAULT_CLASSES)]
    fields = [str(f) for f in (pci.get("deviceLabelFields") or DEFAULT_FIELDS)]
    for function in pci_functions or []:
        if not any(function.get("class", "").startswith(c) for c in classes):
            continue
        if not all(function.get(f) for f in fields):
            continue
        labels["pci-%s.present" % "_".join(function[f] for f in fields)] = "true"
    return dict((k, v) for k, v in labels.items() if len(v) <= 63 and _LABEL_VALUE.match(v))


def node_patch(node, labels):
    """The merge patch that makes the node's NFD labels ``labels`` (names without the
    prefix): new and changed ones set, the ones recorded earlier and not found now
    removed, the annotation updated. None when nothing changes."""
    meta = node.get("metadata") or {}
    current = meta.get("labels") or {}
    recorded = [n for n in ((meta.get("annotations") or {}).get(ANNOTATION) or "").split(",") if n]
    patch_labels = {}
    for name, value in labels.items():
        if current.get(PREFIX + name) != value:
            patch_labels[PREFIX + name] = value
    for name in recorded:
        if name not in labels and PREFIX + name in current:
            patch_labels[PREFIX + name] = None
    annotation = ",".join(sorted(labels))
    patch = {}
    if patch_labels:
        patch.setdefault("metadata", {})["labels"] = patch_labels
    if ",".join(sorted(recorded)) != annotation:
        patch.setdefault("metadata", {})["annotations"] = {ANNOTATION: annotation}
    return patch or None


def _read_file(path):
    try:
        with open(path) as stream:
            return stream.read()
    except OSError:
        return None


def label_node(api, node_name, config, os_release_text, kernel_release, pci_functions):
    """One labelling pass; returns a line for the log."""
    labels = feature_labels(config, os_release_text, kernel_release, pci_functions)
    node = api.get("/api/v1/nodes/%s" % node_name)
    if node is None:
        return "node %s not found" % node_name
    patch = node_patch(node, labels)
    if patch is None:
        return "%d labels, unchanged" % len(labels)
    api.merge_patch("/api/v1/nodes/%s" % node_name, patch)
    return "node %s labelled: %s" % (node_name, ", ".join("%s=%s" % (k, v) for k, v in sorted(labels.items())))


def worker(ctx, process_class):
    """nfd-worker: label the node now and every SLEEP_SECONDS until the container stops."""
    proc = process_class(logs=["Node Feature Discovery Worker (simulated)"])
    api = ctx.api
    if api is None:
        return proc
    node_name = ctx.env.get("NODE_NAME") or ctx.node_name
    # The chart mounts the configuration at /etc/kubernetes/node-feature-discovery/nfd-worker.conf
    # (node-feature-discovery chart templates/worker.yaml) and the host's os-release at
    # /host-etc/os-release.
    config = worker_config(ctx.read_file("/etc/kubernetes/node-feature-discovery/nfd-worker.conf"))

    def loop(p):
        while not p.stopping:
            try:
                os_release = ctx.read_file("/host-etc/os-release") or _read_file("/etc/os-release")
                kernel = _read_file("/proc/sys/kernel/osrelease")
                line = label_node(api, node_name, config, os_release, kernel, read_pci(ctx.sysfs_pci))
            except Exception as err:  # noqa: BLE001 - keep running like the worker
                line = "labelling failed: %s" % err
            p.log(line)
            p._stop.wait(SLEEP_SECONDS)
    proc.run_in_background(loop)
    return proc
