# SPDX-License-Identifier: Apache-2.0
"""Node labels from GPU facts (GFD-compatible and vendor-style sets)."""

import json
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._gpu_labels import node_labels, sanitise

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
H100_FACTS = json.loads((FIXTURES / "h100-device-nvml" / "facts-nvml.json").read_text())


def gpu(index, name, cc, mem, arch, mig=False):
    return {
        "index": index,
        "name": name,
        "compute_capability_major": cc[0],
        "compute_capability_minor": cc[1],
        "memory_mib": mem,
        "architecture": arch,
        "mig_capable": mig,
    }


def facts(gpus, version="535.261.03", cuda="12.2", loaded=True):
    return {
        "gpus": gpus,
        "driver": {"loaded": loaded, "version": version if loaded else None},
        "cuda_driver_version": cuda if loaded else None,
        "architectures": [],
    }


@pytest.mark.parametrize(
    "raw, value",
    [
        # GFD sanitise(): drop [^A-Za-z0-9-_. ], words joined with '-'
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("Tesla T4", "Tesla-T4"),
        ("Tesla P4", "Tesla-P4"),  # seed 003: aliyun.accelerator/nvidia_name=Tesla-P4
        ("NVIDIA A100-SXM4-80GB", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA  RTX   6000 Ada Generation", "NVIDIA-RTX-6000-Ada-Generation"),
        ("NVIDIA GeForce RTX 4090 (rev. a1)", "NVIDIA-GeForce-RTX-4090-rev.-a1"),
        ("Quadro RTX 8000/6000 [OEM]", "Quadro-RTX-80006000-OEM"),
        ("NVIDIA H100 NVL™", "NVIDIA-H100-NVL"),
        # ours on top: 63 characters at most, alphanumeric at both ends
        ("X" * 70, "X" * 63),
        ("NVIDIA " + "A" * 55 + " -_.Z", "NVIDIA-" + "A" * 55),
        ("-.leading", "leading"),
        ("", ""),
        (None, ""),
    ],
)
def test_sanitise(raw, value):
    assert sanitise(raw) == value
    assert len(value) <= 63


def test_h100_gfd_labels_from_real_nvml_facts():
    assert node_labels(H100_FACTS) == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3",
        "nvidia.com/gpu.count": "1",
        "nvidia.com/gpu.memory": "81559",
        "nvidia.com/gpu.family": "hopper",
        "nvidia.com/gpu.compute.major": "9",
        "nvidia.com/gpu.compute.minor": "0",
        "nvidia.com/cuda.driver-version.full": "580.159.04",
        "nvidia.com/cuda.driver-version.major": "580",
        "nvidia.com/cuda.driver-version.minor": "159",
        "nvidia.com/cuda.driver-version.revision": "04",
        "nvidia.com/cuda.runtime-version.full": "13.0",
        "nvidia.com/cuda.runtime-version.major": "13",
        "nvidia.com/cuda.runtime-version.minor": "0",
        "nvidia.com/mig.capable": "true",
    }


def test_aliyun_labels():
    host = facts([gpu(0, "Tesla P4", (6, 1), 7611, "pascal")])
    assert node_labels(host, label_sets=["aliyun"]) == {
        "aliyun.accelerator/nvidia_name": "Tesla-P4",
        "aliyun.accelerator/nvidia_count": "1",
        "aliyun.accelerator/nvidia_mem": "7611MiB",
    }


def test_no_gpus_no_labels():
    assert node_labels(facts([])) == {}
    assert node_labels({"gpus": [], "count": 0}, label_sets=["gfd", "aliyun", "kubegpu"]) == {}


def test_driver_not_loaded_leaves_out_version_labels():
    labels = node_labels(facts([gpu(0, "NVIDIA L4", (8, 9), 24576, "ada-lovelace")], loaded=False))
    assert not any(k.startswith("nvidia.com/cuda.") for k in labels)
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"


def test_two_part_driver_version():
    labels = node_labels(facts([gpu(0, "Tesla T4", (7, 5), 15360, "turing")], version="470.42"))
    assert labels["nvidia.com/cuda.driver-version.revision"] == ""
    assert labels["nvidia.com/cuda.driver-version.minor"] == "42"


def test_unknown_compute_capability_leaves_out_compute_labels():
    labels = node_labels(facts([gpu(0, "NVIDIA device 2bb9", (None, None), None, "blackwell")]))
    assert "nvidia.com/gpu.compute.major" not in labels
    assert "nvidia.com/gpu.memory" not in labels
    assert labels["nvidia.com/gpu.family"] == "blackwell"


MIXED = facts([gpu(0, "NVIDIA A100-SXM4-80GB", (8, 0), 81920, "ampere", True),
               gpu(1, "Tesla T4", (7, 5), 15360, "turing"),
               gpu(2, "NVIDIA A100-SXM4-80GB", (8, 0), 81920, "ampere", True)])
MIXED["architectures"] = ["turing", "ampere"]


@pytest.mark.parametrize(
    "strategy, product, memory, major",
    [("first", "NVIDIA-A100-SXM4-80GB", "81920", "8"), ("lowest", "Tesla-T4", "15360", "7")],
)
def test_heterogeneous(strategy, product, memory, major):
    labels = node_labels(MIXED, strategy=strategy)
    assert labels["nvidia.com/gpu.product"] == product
    assert labels["nvidia.com/gpu.memory"] == memory
    assert labels["nvidia.com/gpu.compute.major"] == major
    assert labels["nvidia.com/gpu.count"] == "3"
    assert labels["nvidia.com/mig.capable"] == "true"  # any GPU, as GFD does
    assert labels["kubegpu.io/gpu.heterogeneous"] == "true"
    assert labels["kubegpu.io/gpu.architectures"] == "turing_ampere"


def test_kubegpu_set_on_homogeneous_host():
    labels = node_labels(H100_FACTS, label_sets=["kubegpu"])
    assert labels == {"kubegpu.io/gpu.heterogeneous": "false", "kubegpu.io/gpu.architectures": "hopper"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label_sets": ["gke"]}, "unknown label set"),
        ({"strategy": "majority"}, "unknown strategy"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        node_labels(H100_FACTS, **kwargs)


def test_not_a_dict():
    with pytest.raises(ValueError, match="expected the kubegpu_gpu facts"):
        node_labels(["not", "facts"])


def test_label_set_as_string():
    assert node_labels(H100_FACTS, label_sets="aliyun")["aliyun.accelerator/nvidia_mem"] == "81559MiB"


def test_desired_labels_of_a_gpu_node():
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._gpu_labels import desired_labels
    labels = desired_labels(H100_FACTS, ["gfd"], extra={"example.com/pool": "train", "nvidia.com/gpu.count": "9"})
    assert labels == dict(node_labels(H100_FACTS, ["gfd"]), **{"nvidia.com/gpu.present": "true",
                                                               "example.com/pool": "train",
                                                               "nvidia.com/gpu.count": "9"})
    # a GPU node whose facts saw no GPU in this run still says it is one
    assert desired_labels({"gpus": []}) == {"nvidia.com/gpu.present": "true"}
    assert desired_labels(H100_FACTS, gpu_node=False, extra={"a": "b"}) == {}
    with pytest.raises(ValueError):
        desired_labels(H100_FACTS, ["nope"])
