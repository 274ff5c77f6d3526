# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Parse ``kubectl get ... -o json`` output: nodes, Jobs; render the validate report.

Pure functions, standard library only. Inputs are either the JSON text kubectl
printed or the already-decoded object (a ``List`` with ``items`` or one object).
Object shapes: Kubernetes API reference, core/v1 Node (status.allocatable,
status.capacity, status.conditions, spec.taints) and batch/v1 Job (status.succeeded,
status.failed, status.conditions).
"""

from __future__ import annotations

import json
import re

CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
CONTROL_PLANE_TAINT = "node-role.kubernetes.io/control-plane"


class K8sParseError(ValueError):
    """kubectl output that is not what was expected."""


def _load(data):
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise K8sParseError("kubectl output is not JSON: %s" % exc)
    if not isinstance(data, dict):
        raise K8sParseError("kubectl output is not a JSON object")
    return data


def _items(data, kind):
    data = _load(data)
    if "items" in data:
        items = data.get("items") or []
    else:
        items = [data]
    for item in items:
        if item.get("kind", kind) != kind:
            raise K8sParseError("expected %s objects, got %s" % (kind, item.get("kind")))
    return items


def quantity_to_int(value):
    """An integer resource quantity ("8", 8, "0") as int; None when absent.

    Extended resources such as nvidia.com/gpu are whole numbers; suffixes other than
    none are refused rather than guessed.
    """
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    raise K8sParseError("not an integer quantity: %r" % (value,))


def node_names(data):
    """Sorted names of the nodes in ``kubectl get nodes -o json``."""
    return sorted(item["metadata"]["name"] for item in _items(data, "Node"))


def _ready(item):
    for condition in (item.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def node_info(data, resource="nvidia.com/gpu"):
    """Per node: ready, control_plane, labels, annotations, taints, unschedulable (cordoned),
    capacity/allocatable of resource."""
    result = {}
    for item in _items(data, "Node"):
        metadata = item.get("metadata") or {}
        status = item.get("status") or {}
        labels = metadata.get("labels") or {}
        taints = (item.get("spec") or {}).get("taints") or []
        result[metadata["name"]] = {
            "ready": _ready(item),
            "control_plane": CONTROL_PLANE_LABEL in labels,
            "labels": labels,
            "annotations": metadata.get("annotations") or {},
            "taints": taints,
            "unschedulable": bool((item.get("spec") or {}).get("unschedulable")),
            "resource_version": metadata.get("resourceVersion"),
            "capacity": quantity_to_int((status.get("capacity") or {}).get(resource)),
            "allocatable": quantity_to_int((status.get("allocatable") or {}).get(resource)),
            # Every extended resource (a name with a domain, e.g. nvidia.com/mig-1g.10gb).
            "extended": dict((name, value) for name, value in (status.get("allocatable") or {}).items()
                             if "/" in name),
        }
    return result


def has_taint(taints, key, effect=None):
    """Whether a taint with key (and effect, when given) is in the list."""
    return any(t.get("key") == key and (effect is None or t.get("effect") == effect) for t in taints or [])


# `kubectl diff` (roles/kubegpu tasks/apply.yml): exit 0 no change, 1 differences, >1 an
# error. Errors that mean "to be created" rather than a failure: the namespace the same
# manifest creates (a dry run meets NamespaceLifecycle admission, kubernetes/kubernetes#83562),
# a kind whose CRD an add-on of this run installs (kubectl: "ensure CRDs are installed
# first"), and in check mode a manifest file the run would have written.
_TO_BE_CREATED = re.compile(r'namespaces "[^"]+" not found|ensure CRDs are installed first')
_NOT_WRITTEN = re.compile(r'the path "[^"]+" does not exist')


def diff_failed(rc, stderr, check_mode=False):
    """Whether a `kubectl diff` exit status and error output is a failure of the stage."""
    rc = int(rc)
    if rc <= 1:
        return False
    stderr = stderr or ""
    if _TO_BE_CREATED.search(stderr):
        return False
    return not (check_mode and _NOT_WRITTEN.search(stderr))


def job_state(data):
    """``succeeded``, ``failed`` or ``running`` for a batch/v1 Job."""
    items = _items(data, "Job")
    if len(items) != 1:
        raise K8sParseError("expected one Job, got %d" % len(items))
    status = items[0].get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            return "succeeded"
        if condition.get("type") == "Failed":
            return "failed"
    if (status.get("succeeded") or 0) > 0:
        return "succeeded"
    return "running"


REPORT_COLUMNS = ("node", "role", "gpus", "model", "driver", "cuda", "labels", "result")


def report_table(rows):
    """A fixed-width text table of validate results (one dict per node)."""
    header = [c.upper() for c in REPORT_COLUMNS]
    body = []
    for row in rows:
        body.append([str(row.get(c, "")) if row.get(c) is not None else "" for c in REPORT_COLUMNS])
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(REPORT_COLUMNS))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in [header] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
