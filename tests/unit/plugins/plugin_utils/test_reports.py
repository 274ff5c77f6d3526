# SPDX-License-Identifier: Apache-2.0
"""validate's report as JSON (docs/validate.schema.json) and Markdown (plugin_utils/_reports.py)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from ansible_collections.kubegpu.cluster.plugins.filter import kubeadm

ROOT = Path(__file__).resolve().parents[4]
SCHEMA = json.loads((ROOT / "docs" / "validate.schema.json").read_text(encoding="utf-8"))
ROWS = [
    {"node": "gpu2", "role": "worker", "gpus": "gpu 0/8", "model": "NVIDIA H100 80GB HBM3", "driver": "580.95.05",
     "cuda": "13.0", "labels": 14, "result": "FAIL: allocatable nvidia.com/gpu is 0, expected 8 | retry"},
    {"node": "cp1", "role": "control-plane", "gpus": "-", "model": "-", "driver": "-", "cuda": "-", "labels": 0,
     "result": "no GPU"},
    {"node": "gpu1", "role": "worker", "gpus": "gpu 8/8", "model": "NVIDIA H100 80GB HBM3", "driver": "580.95.05",
     "cuda": "13.0", "labels": 14, "result": "PASS"},
]


def test_json_report_validates_and_counts():
    report = kubeadm.kubegpu_validate_report(ROWS)
    jsonschema.validate(report, SCHEMA)
    assert [n["node"] for n in report["nodes"]] == ["cp1", "gpu1", "gpu2"]
    assert [n["passed"] for n in report["nodes"]] == [True, True, False]
    assert report["passed"] is False and report["counts"] == {"nodes": 3, "failed": 1}
    assert report["nodes"][1]["labels"] == "14" and report["kubegpu_version"]
    assert kubeadm.kubegpu_validate_report(ROWS[1:])["passed"] is True


def test_markdown_table_pastes():
    text = kubeadm.kubegpu_report_markdown(kubeadm.kubegpu_validate_report(ROWS))
    lines = text.splitlines()
    assert lines[0] == "## kubegpu validate (3 node(s), 1 failed)"
    assert lines[2] == "| Node | Role | GPUs | Model | Driver | CUDA | Labels | Result |"
    assert lines[3] == "|---|---|---|---|---|---|---|---|"
    assert lines[4] == "| cp1 | control-plane | - | - | - | - | 0 | no GPU |"
    # A | in a cell is escaped, so the row keeps its eight cells.
    assert lines[6].endswith("| FAIL: allocatable nvidia.com/gpu is 0, expected 8 \\| retry |")
    assert text.endswith("\n")
