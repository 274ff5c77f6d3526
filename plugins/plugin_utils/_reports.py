# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: validate's report as JSON (docs/validate.schema.json, the doctor
report's family) and as a Markdown table people can paste.

A row is one node of roles/validate's report (``_validate_row``: node, role, gpus, model,
driver, cuda, labels, result); ``passed`` is true for PASS and for a node without GPUs.
"""

from __future__ import annotations

from ansible_collections.kubegpu.cluster.plugins.plugin_utils._k8s_parse import REPORT_COLUMNS
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._doctor import collection_version

SCHEMA_VERSION = 1
PASSING = ("PASS", "no GPU")


def _row(row):
    found = dict((column, "" if row.get(column) is None else str(row.get(column))) for column in REPORT_COLUMNS)
    found["passed"] = found["result"] in PASSING
    return found


def validate_report(rows, version=None):
    """{"schema_version", "kind": "kubegpu-validate", "kubegpu_version", "passed", "counts", "nodes"}."""
    nodes = sorted((_row(r) for r in rows or []), key=lambda r: r["node"])
    return {"schema_version": SCHEMA_VERSION, "kind": "kubegpu-validate",
            "kubegpu_version": collection_version() if version is None else str(version),
            "passed": all(n["passed"] for n in nodes),
            "counts": {"nodes": len(nodes), "failed": len([n for n in nodes if not n["passed"]])},
            "nodes": nodes}


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def validate_markdown(report):
    """The report as a Markdown table (GitHub-flavoured), a heading line and the verdict."""
    header = ["Node", "Role", "GPUs", "Model", "Driver", "CUDA", "Labels", "Result"]
    verdict = "all passed" if report["passed"] else "%d failed" % report["counts"]["failed"]
    lines = ["## kubegpu validate (%d node(s), %s)" % (report["counts"]["nodes"], verdict), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for node in report["nodes"]:
        lines.append("| " + " | ".join(_cell(node[c]) for c in REPORT_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
