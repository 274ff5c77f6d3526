# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Node labels from the kubegpu_gpu facts.

Label sets:

- ``gfd``: the labels NVIDIA GPU Feature Discovery sets (k8s-device-plugin
  internal/lm: resource.go, nvml.go), same keys and value formats, so a node
  labelled by us looks the same to nodeSelectors as one labelled by GFD (and
  GFD, if deployed later, rewrites them with the same values):
  ``nvidia.com/gpu.present``, ``gpu.product``, ``gpu.count``, ``gpu.memory``
  (MiB), ``gpu.family``, ``gpu.compute.major|minor``,
  ``cuda.driver-version.major|minor|revision|full`` (the DRIVER version,
  580.159.04 -> 580 / 159 / 04), ``cuda.runtime-version.major|minor|full``
  (the CUDA driver API version, 13.0), ``mig.capable``.
- ``aliyun``: the Alibaba Cloud ACK style ``aliyun.accelerator/nvidia_name``,
  ``nvidia_count``, ``nvidia_mem`` ("<MiB>MiB").
- ``kubegpu``: ``kubegpu.io/gpu.heterogeneous`` and
  ``kubegpu.io/gpu.architectures`` (always added when a host mixes models).

Hosts without GPUs get no labels at all (not gpu.present=false), so
``DoesNotExist`` node affinity keeps GPU workloads off them.

Hosts with several GPU models: labels describe one model, picked by
``strategy``: ``first`` (GPU index 0, what GFD does) or ``lowest`` (the least
capable GPU: lowest compute capability, then least memory; safe for
scheduling). ``gpu.count`` is always the count of all GPUs, and
``kubegpu.io/gpu.heterogeneous=true`` is added.

Standard library only; usable on the controller (filters) and targets.
"""

from __future__ import annotations

import re

LABEL_SETS = ("gfd", "aliyun", "kubegpu")
STRATEGIES = ("first", "lowest")
MAX_LABEL_VALUE = 63

_GFD_STRIP = re.compile(r"[^A-Za-z0-9\-_. ]")
_EDGE = re.compile(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$")


def sanitise(value):
    """A label value the way GFD's sanitise() makes it, kept valid.

    GFD: drop every character outside [A-Za-z0-9-_. ], then join the
    whitespace-separated words with '-'. We also cut the result to 63
    characters and trim non-alphanumerics from both ends, which Kubernetes
    requires of a label value (GFD does not, and a longer name would be
    rejected by the API server).
    """
    if value is None:
        return ""
    text = _GFD_STRIP.sub("", str(value))
    text = "-".join(text.split())
    text = text[:MAX_LABEL_VALUE]
    return _EDGE.sub("", text)


def _pick(gpus, strategy):
    if strategy == "first":
        return sorted(gpus, key=lambda g: g.get("index") or 0)[0]

    def rank(gpu):
        major = gpu.get("compute_capability_major")
        minor = gpu.get("compute_capability_minor")
        return (
            major if major is not None else 999,
            minor if minor is not None else 999,
            gpu.get("memory_mib") if gpu.get("memory_mib") is not None else 1 << 40,
            gpu.get("index") or 0,
        )

    return sorted(gpus, key=rank)[0]


def _gfd(facts, gpu, count):
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/mig.capable": "true" if any(g.get("mig_capable") for g in facts.get("gpus", [])) else "false",
    }
    product = sanitise(gpu.get("name"))
    if product:
        labels["nvidia.com/gpu.product"] = product
    if gpu.get("memory_mib"):
        labels["nvidia.com/gpu.memory"] = str(gpu["memory_mib"])
    if gpu.get("compute_capability_major"):
        labels["nvidia.com/gpu.compute.major"] = str(gpu["compute_capability_major"])
        labels["nvidia.com/gpu.compute.minor"] = str(gpu.get("compute_capability_minor") or 0)
    if gpu.get("architecture"):
        labels["nvidia.com/gpu.family"] = gpu["architecture"]
    driver = facts.get("driver") or {}
    version = driver.get("version") if driver.get("loaded") else None
    if version:
        parts = version.split(".")
        if 2 <= len(parts) <= 3:
            labels["nvidia.com/cuda.driver-version.full"] = version
            labels["nvidia.com/cuda.driver-version.major"] = parts[0]
            labels["nvidia.com/cuda.driver-version.minor"] = parts[1]
            labels["nvidia.com/cuda.driver-version.revision"] = parts[2] if len(parts) > 2 else ""
    cuda = facts.get("cuda_driver_version")
    if cuda and "." in cuda:
        major, minor = cuda.split(".", 1)
        labels["nvidia.com/cuda.runtime-version.full"] = cuda
        labels["nvidia.com/cuda.runtime-version.major"] = major
        labels["nvidia.com/cuda.runtime-version.minor"] = minor
    return labels


def _aliyun(gpu, count):
    labels = {"aliyun.accelerator/nvidia_count": str(count)}
    name = sanitise(gpu.get("name"))
    if name:
        labels["aliyun.accelerator/nvidia_name"] = name
    if gpu.get("memory_mib"):
        labels["aliyun.accelerator/nvidia_mem"] = "%dMiB" % gpu["memory_mib"]
    return labels


def node_labels(facts, label_sets=("gfd",), strategy="first"):
    """Labels (dict of str) for a host's kubegpu_gpu facts. Raises ValueError."""
    if isinstance(label_sets, str):
        label_sets = [label_sets]
    unknown = [s for s in label_sets if s not in LABEL_SETS]
    if unknown:
        raise ValueError("unknown label set(s) %s; choose from %s" % (", ".join(unknown), ", ".join(LABEL_SETS)))
    if strategy not in STRATEGIES:
        raise ValueError("unknown strategy %r; choose from %s" % (strategy, ", ".join(STRATEGIES)))
    if not isinstance(facts, dict):
        raise ValueError("expected the kubegpu_gpu facts (a dict), got %s" % type(facts).__name__)
    gpus = facts.get("gpus") or []
    if not gpus:
        return {}
    gpu = _pick(gpus, strategy)
    count = len(gpus)
    heterogeneous = len(set(g.get("name") for g in gpus)) > 1
    labels = {}
    if "gfd" in label_sets:
        labels.update(_gfd(facts, gpu, count))
    if "aliyun" in label_sets:
        labels.update(_aliyun(gpu, count))
    if "kubegpu" in label_sets or heterogeneous:
        labels["kubegpu.io/gpu.heterogeneous"] = "true" if heterogeneous else "false"
        archs = facts.get("architectures") or sorted(set(g.get("architecture") for g in gpus if g.get("architecture")))
        if archs:
            labels["kubegpu.io/gpu.architectures"] = sanitise("_".join(archs))
    return labels


def desired_labels(facts, label_sets=("gfd",), strategy="first", gpu_node=True, mig_layout=None, mig_state=None,
                   extra=None):
    """Every label stage 8 (roles/gpu_node_labels) wants on a node: {} on a host that is not a
    GPU node; else node_labels, nvidia.com/gpu.present=true (also where the facts saw no GPU
    this run), the MIG layout's mig.config labels (_mig_plan.config_labels; ``mig_state``
    overrides the state the facts give) and the inventory's ``extra`` labels, later ones
    winning. Raises ValueError."""
    if not gpu_node:
        return {}
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _mig_plan

    facts = facts or {}
    labels = node_labels(facts, label_sets=label_sets, strategy=strategy)
    labels["nvidia.com/gpu.present"] = "true"
    labels.update(_mig_plan.config_labels(facts, mig_layout, state=mig_state))
    labels.update(extra or {})
    return labels
