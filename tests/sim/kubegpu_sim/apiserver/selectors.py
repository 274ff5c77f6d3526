# SPDX-License-Identifier: Apache-2.0
"""Label and field selectors (kubernetes staging/src/k8s.io/apimachinery/pkg/labels/
selector.go: Parse; staging/src/k8s.io/apimachinery/pkg/fields/selector.go:
ParseSelector) and the set-based selectors of API objects (metav1.LabelSelector,
staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/helpers.go: LabelSelectorAsSelector)."""
from __future__ import annotations

import re

from . import errors

_SET_RE = re.compile(r"^\s*(!?)\s*([A-Za-z0-9_./-]+)\s*(?:(notin|in)\s*\(([^)]*)\))?\s*$")


def _split_top(text):
    """Split on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def parse_labels(text):
    """A label selector string -> [(key, op, values)]; op in =, !=, in, notin, exists, !."""
    reqs = []
    for part in _split_top(text or ""):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part and "(" not in part:
                key, value = part.split(op, 1)
                reqs.append((key.strip(), "!=" if op == "!=" else "=", [value.strip()]))
                break
        else:
            match = _SET_RE.match(part)
            if not match:
                raise errors.bad_request("unable to parse requirement: found '%s', expected: "
                                         "identifier" % part)
            neg, key, op, values = match.groups()
            if op:
                reqs.append((key, op, [v.strip() for v in values.split(",") if v.strip()]))
            else:
                reqs.append((key, "!" if neg else "exists", []))
    return reqs


def match_labels(reqs, labels):
    """labels/selector.go: Requirement.Matches."""
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        if op == "=" and (not present or labels[key] != values[0]):
            return False
        if op == "!=" and present and labels[key] == values[0]:
            return False
        if op == "in" and (not present or labels[key] not in values):
            return False
        if op == "notin" and present and labels[key] in values:
            return False
        if op == "exists" and not present:
            return False
        if op == "!" and present:
            return False
    return True


def label_selector_requirements(selector):
    """metav1.LabelSelector -> requirements (helpers.go: LabelSelectorAsSelector).
    None selects nothing; {} selects everything."""
    if selector is None:
        return None
    reqs = [(k, "=", [v]) for k, v in sorted((selector.get("matchLabels") or {}).items())]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for expr in selector.get("matchExpressions") or []:
        reqs.append((expr["key"], ops.get(expr.get("operator"), "in"), list(expr.get("values") or [])))
    return reqs


def selects(selector, labels):
    """Whether a metav1.LabelSelector selects an object with these labels."""
    reqs = label_selector_requirements(selector)
    return reqs is not None and match_labels(reqs, labels)


# Field selectors each registry supports (pkg/registry/core/pod/strategy.go: ToSelectableFields,
# pkg/registry/core/secret/strategy.go: SelectableFields, generic: ObjectMetaFieldsSet).
_FIELDS = {
    "metadata.name": lambda o: o["metadata"].get("name", ""),
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "spec.nodeName": lambda o: (o.get("spec") or {}).get("nodeName", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
    "type": lambda o: o.get("type", ""),
    "spec.schedulerName": lambda o: (o.get("spec") or {}).get("schedulerName", ""),
    "spec.unschedulable": lambda o: str(bool((o.get("spec") or {}).get("unschedulable"))).lower(),
    "status.podIP": lambda o: (o.get("status") or {}).get("podIP", ""),
    "involvedObject.name": lambda o: (o.get("involvedObject") or {}).get("name", ""),
    "involvedObject.kind": lambda o: (o.get("involvedObject") or {}).get("kind", ""),
    "involvedObject.namespace": lambda o: (o.get("involvedObject") or {}).get("namespace", ""),
    "reason": lambda o: o.get("reason", ""),
    "spec.signerName": lambda o: (o.get("spec") or {}).get("signerName", ""),
}


def parse_fields(text, resource=None):
    """A field selector -> [(field, op, value)]; op '=' or '!='."""
    reqs = []
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                key = key.strip()
                if key not in _FIELDS:
                    kind = resource.kind if resource else "object"
                    raise errors.bad_request('"%s" is not a known field selector: only "metadata.name", '
                                             '"metadata.namespace"' % key if kind else key)
                reqs.append((key, "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise errors.bad_request("invalid selector: '%s'; can't understand '%s'" % (text, part))
    return reqs


def match_fields(reqs, obj):
    for key, op, value in reqs:
        actual = _FIELDS[key](obj)
        if (actual == value) != (op == "="):
            return False
    return True
