# SPDX-License-Identifier: Apache-2.0
"""gpu filters: wiring and error translation."""

import json
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.kubegpu.cluster.plugins.filter.gpu import FilterModule

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "gpu"
H100_FACTS = json.loads((FIXTURES / "h100-device-nvml" / "facts-nvml.json").read_text())
FILTERS = FilterModule().filters()


def test_filters_registered():
    assert sorted(FILTERS) == ["gpu_driver_plan", "gpu_expected_resources", "gpu_job_resource", "gpu_node_desired_labels",
                               "gpu_node_labels", "gpu_operator_installed_release", "gpu_operator_release_differs", "gpu_operator_upgrade_argv",
                               "gpu_resource_problems", "gpu_resource_summary"]


def test_desired_labels_wiring():
    assert FILTERS["gpu_node_desired_labels"](H100_FACTS, ["gfd"], gpu_node="false", extra={"a": "b"}) == {}
    labels = FILTERS["gpu_node_desired_labels"](H100_FACTS, None, "first", gpu_node="yes", mig_layout="",
                                                mig_state="", extra={"a": "b"})
    assert labels["nvidia.com/gpu.present"] == "true" and labels["a"] == "b"
    assert "nvidia.com/mig.config" not in labels
    with pytest.raises(AnsibleFilterError, match="gpu_node_desired_labels: unknown strategy"):
        FILTERS["gpu_node_desired_labels"](H100_FACTS, ["gfd"], "best")


def test_labels():
    labels = FILTERS["gpu_node_labels"](H100_FACTS, label_sets=["gfd", "aliyun"])
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["aliyun.accelerator/nvidia_name"] == "NVIDIA-H100-80GB-HBM3"
    assert FILTERS["gpu_node_labels"](H100_FACTS) == FILTERS["gpu_node_labels"](H100_FACTS, label_sets=None)


def test_labels_error():
    with pytest.raises(AnsibleFilterError, match="gpu_node_labels: unknown strategy"):
        FILTERS["gpu_node_labels"](H100_FACTS, strategy="random")


def test_plan():
    result = FILTERS["gpu_driver_plan"](H100_FACTS)
    assert (result["branch"], result["flavour"], result["satisfied"]) == ("580", "open", True)


def test_plan_refusal_message():
    facts = json.loads(json.dumps(H100_FACTS))
    facts["gpus"][0].update(name="Tesla P100-PCIE-16GB", architecture="pascal", pci_device_id="15f8")
    with pytest.raises(AnsibleFilterError) as info:
        FILTERS["gpu_driver_plan"](facts, branch="580", flavour="open")
    assert str(info.value) == (
        "gpu_driver_plan: nvidia_driver_flavour=open cannot drive GPU 0 Tesla P100-PCIE-16GB (pascal, 0000:00:06.0): "
        "the open kernel modules need Turing or newer (GSP). Set nvidia_driver_flavour to proprietary (or 'auto')."
    )
