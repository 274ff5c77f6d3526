# SPDX-License-Identifier: Apache-2.0
"""kubectl JSON parsers and the validate report (plugin_utils/_k8s_parse.py).

Fixtures are shaped as the Kubernetes API reference documents Node and Job objects
(tests/fixtures/k8s/README.md); the first test validates them against the Kubernetes
1.35 schemas so their shape is checked, not assumed.
"""
from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _k8s_parse

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "k8s"


def _text(name):
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["nodes.json", "job-complete.json", "job-failed.json", "job-running.json"])
def test_fixtures_are_valid_kubernetes_objects(name):
    data = json.loads(_text(name))
    for item in data.get("items", [data]):
        kubernetes_validate.validate(item, "1.35.0", strict=True)


def test_node_names():
    assert _k8s_parse.node_names(_text("nodes.json")) == ["cp1", "cpu1", "gpu1", "gpu2"]
    assert _k8s_parse.node_names('{"apiVersion": "v1", "kind": "List", "items": []}') == []


def test_node_info_allocatable():
    info = _k8s_parse.node_info(_text("nodes.json"))
    assert (info["gpu1"]["capacity"], info["gpu1"]["allocatable"]) == (8, 8)
    assert (info["gpu2"]["capacity"], info["gpu2"]["allocatable"]) == (4, 3)  # one GPU unhealthy
    assert info["cp1"]["allocatable"] is None
    assert info["cp1"]["control_plane"] and not info["gpu1"]["control_plane"]
    assert info["gpu1"]["ready"] and not info["cpu1"]["ready"]
    assert info["gpu1"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert info["gpu1"]["resource_version"] == "12345"


def test_node_info_other_resource():
    info = _k8s_parse.node_info(json.loads(_text("nodes.json")), resource="cpu")
    assert info["cp1"]["allocatable"] == 32


def test_single_node_object():
    data = json.loads(_text("nodes.json"))["items"][1]
    assert list(_k8s_parse.node_info(data)) == ["gpu1"]


def test_taints():
    info = _k8s_parse.node_info(_text("nodes.json"))
    assert _k8s_parse.has_taint(info["cp1"]["taints"], "node-role.kubernetes.io/control-plane", "NoSchedule")
    assert _k8s_parse.has_taint(info["gpu1"]["taints"], "nvidia.com/gpu")
    assert not _k8s_parse.has_taint(info["gpu2"]["taints"], "nvidia.com/gpu")


@pytest.mark.parametrize("value, expected", [("8", 8), (8, 8), ("0", 0), (None, None)])
def test_quantities(value, expected):
    assert _k8s_parse.quantity_to_int(value) == expected


@pytest.mark.parametrize("value", ["1k", "500m", "abc"])
def test_quantities_refused(value):
    with pytest.raises(_k8s_parse.K8sParseError):
        _k8s_parse.quantity_to_int(value)


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"kind": "List", "items": [{"kind": "Pod"}]}'])
def test_bad_output(text):
    with pytest.raises(_k8s_parse.K8sParseError):
        _k8s_parse.node_names(text)


@pytest.mark.parametrize("name, state", [("job-complete.json", "succeeded"), ("job-failed.json", "failed"),
                                         ("job-running.json", "running")])
def test_job_state(name, state):
    assert _k8s_parse.job_state(_text(name)) == state


def test_report_table():
    table = _k8s_parse.report_table([
        {"node": "gpu1", "role": "worker", "gpus": "8/8", "model": "NVIDIA H100 80GB HBM3", "driver": "580.159.04",
         "cuda": "13.0", "labels": 15, "result": "PASS"},
        {"node": "cpu1", "role": "worker", "gpus": "-", "model": "-", "driver": "-", "cuda": "-", "labels": 0,
         "result": "no GPU"},
    ])
    lines = table.splitlines()
    assert lines[0].split() == ["NODE", "ROLE", "GPUS", "MODEL", "DRIVER", "CUDA", "LABELS", "RESULT"]
    assert set(lines[1]) <= {"-", " "}
    assert "NVIDIA H100 80GB HBM3" in lines[2] and lines[2].endswith("PASS")
    assert lines[3].endswith("no GPU")
    # columns line up
    assert lines[2].index("580.159.04") == lines[0].index("DRIVER")


@pytest.mark.parametrize("rc, stderr, check_mode, failed", [
    (0, "", False, False),
    (1, "", False, False),                      # differences
    (1, "", True, False),
    # the manifest creates its namespace: a dry run meets NamespaceLifecycle (kubernetes#83562)
    (2, 'Error from server (NotFound): namespaces "metallb-system" not found', False, False),
    # a kind an add-on of this run brings (kubectl's resource mapping)
    (2, 'error: resource mapping not found for name: "default" namespace: "metallb-system" from "pools.yaml": '
        'no matches for kind "IPAddressPool" in version "metallb.io/v1beta1"\nensure CRDs are installed first',
     False, False),
    # the manifest file the run would have written: only check mode skips writing it
    (2, 'error: the path "/etc/kubernetes/kubegpu/addons/metallb-pools.yaml" does not exist', True, False),
    (2, 'error: the path "/etc/kubernetes/kubegpu/addons/metallb-pools.yaml" does not exist', False, True),
    (2, "error: You must be logged in to the server (Unauthorized)", True, True),
    ("2", "The connection to the server 10.0.0.1:6443 was refused", False, True),
])
def test_kubectl_diff_failed(rc, stderr, check_mode, failed):
    assert _k8s_parse.diff_failed(rc, stderr, check_mode) is failed
