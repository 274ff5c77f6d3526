# SPDX-License-Identifier: Apache-2.0
"""The three non-apply patch types of PATCH (staging/src/k8s.io/apiserver/pkg/endpoints/
handlers/patch.go: jsonPatcher, smpPatcher):

* application/json-patch+json   RFC 6902 (github.com/evanphx/json-patch: ApplyPatch)
* application/merge-patch+json  RFC 7386 (json-patch: MergePatch)
* application/strategic-merge-patch+json  staging/src/k8s.io/apimachinery/pkg/util/
  strategicpatch/patch.go: StrategicMergePatch. List semantics come from the schema's
  x-kubernetes-patch-strategy / x-kubernetes-patch-merge-key, which the OpenAPI generator
  writes from the `patchStrategy`/`patchMergeKey` tags in k8s.io/api (e.g. core/v1/types.go
  PodSpec.Containers `patchStrategy:"merge" patchMergeKey:"name"`, Container.Env by name,
  PodSpec.Volumes by name, Container.VolumeMounts by mountPath, Container.Ports by
  containerPort, *.Conditions by type, ObjectMeta.OwnerReferences by uid,
  ObjectMeta.Finalizers merge, PodSpec.ImagePullSecrets by name, NodeStatus.Addresses by
  type). Lists without a strategy are replaced.
"""
from __future__ import annotations

import copy

from . import errors
from .schema import no_refs


# -- RFC 6902 -----------------------------------------------------------------
def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise errors.bad_request("invalid JSON pointer %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc, parts):
    cur = doc
    for part in parts:
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif isinstance(cur, dict):
            cur = cur[part]
        else:
            raise KeyError(part)
    return cur


def _add(doc, parts, value, replace=False):
    parent = _walk(doc, parts[:-1])
    last = parts[-1]
    if isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif replace:
            parent[int(last)] = value
        else:
            index = int(last)
            if index > len(parent):
                raise IndexError(last)
            parent.insert(index, value)
    else:
        if replace and last not in parent:
            raise KeyError(last)
        parent[last] = value


def _remove(doc, parts):
    parent = _walk(doc, parts[:-1])
    if isinstance(parent, list):
        return parent.pop(int(parts[-1]))
    return parent.pop(parts[-1])


def json_patch(doc, operations):
    """RFC 6902 on a copy of doc."""
    if not isinstance(operations, list):
        raise errors.bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(doc)
    for op in operations:
        kind = op.get("op")
        try:
            parts = _pointer(op.get("path", ""))
            if kind == "add":
                _add(doc, parts, copy.deepcopy(op.get("value")))
            elif kind == "remove":
                _remove(doc, parts)
            elif kind == "replace":
                _add(doc, parts, copy.deepcopy(op.get("value")), replace=True)
            elif kind in ("move", "copy"):
                src = _pointer(op.get("from", ""))
                value = _remove(doc, src) if kind == "move" else copy.deepcopy(_walk(doc, src))
                _add(doc, parts, value)
            elif kind == "test":
                if _walk(doc, parts) != op.get("value"):
                    raise errors.ApiError(422, "Invalid", "the server rejected our request due to an error in "
                                          "our request: testing value %s failed" % op.get("path"))
            else:
                raise errors.bad_request("Unexpected kind: %s" % kind)
        except (KeyError, IndexError, ValueError, TypeError):
            raise errors.ApiError(422, "Invalid", "the server rejected our request due to an error in our "
                                  "request: doc is missing path: \"%s\": missing value" % op.get("path"))
    return doc


# -- RFC 7386 -----------------------------------------------------------------
def merge_patch(doc, patch):
    """RFC 7386: objects merge recursively, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch ----------------------------------------------------
def child_schema(node, key, resolve):
    node = resolve(node) if node else {}
    props = node.get("properties") or {}
    if key in props:
        return resolve(props[key])
    extra = node.get("additionalProperties")
    return resolve(extra) if isinstance(extra, dict) else {}


def list_strategy(field_node):
    """(strategies set, merge key) of a list field (strategicpatch/patch.go: mergeSliceHandler)."""
    strategies = set((field_node.get("x-kubernetes-patch-strategy") or "").split(","))
    return strategies, field_node.get("x-kubernetes-patch-merge-key")


def strategic_merge(doc, patch, node, resolve=no_refs):
    """patch.go: mergeMap — a copy of doc with patch merged."""
    return _merge_map(copy.deepcopy(doc) if isinstance(doc, dict) else {}, patch, node, resolve)


def _merge_map(original, patch, node, resolve):
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "replace":                      # patch.go: mergeMap, replaceDirective
        return {k: v for k, v in patch.items() if not k.startswith("$")}
    if directive == "delete":                       # patch.go: mergeMap, deleteDirective
        return {}
    retain = patch.pop("$retainKeys", None)
    if retain is not None:                          # patch.go: applyRetainKeysDirective
        for key in list(original):
            if key not in retain:
                del original[key]
    orders = {}
    for key in list(patch):
        if key.startswith("$setElementOrder/"):     # patch.go: normalizeElementOrder
            orders[key.split("/", 1)[1]] = patch.pop(key)
        elif key.startswith("$deleteFromPrimitiveList/"):  # patch.go: deleteFromSlice
            field = key.split("/", 1)[1]
            drop = patch.pop(key)
            if isinstance(original.get(field), list):
                original[field] = [v for v in original[field] if v not in drop]
    for key, value in patch.items():
        field_node = child_schema(node, key, resolve)
        if value is None:
            original.pop(key, None)
        elif isinstance(value, dict) and isinstance(original.get(key), dict):
            original[key] = _merge_map(original[key], value, field_node, resolve)
        elif isinstance(value, dict):
            original[key] = _merge_map({}, value, field_node, resolve)
        elif isinstance(value, list) and isinstance(original.get(key), list):
            original[key] = _merge_list(original[key], value, field_node, resolve)
        elif isinstance(value, list):
            original[key] = _merge_list([], value, field_node, resolve)
        else:
            original[key] = copy.deepcopy(value)
    for key, order in orders.items():
        if isinstance(original.get(key), list):
            original[key] = _reorder(original[key], order, child_schema(node, key, resolve))
    return original


def _merge_list(original, patch, field_node, resolve):
    strategies, merge_key = list_strategy(field_node)
    if "merge" not in strategies:
        # a $patch: replace/delete element means the same for an atomic list
        return [_strip(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip(v) for v in patch if not (isinstance(v, dict) and v.get("$patch"))]
    items_node = resolve(field_node.get("items") or {})
    if not merge_key:                               # primitive list with merge: union (finalizers)
        result = list(original)
        for value in patch:
            if value not in result:
                result.append(value)
        return result
    result = copy.deepcopy(original)
    for value in patch:
        if not isinstance(value, dict):
            continue
        key = value.get(merge_key)
        index = next((i for i, v in enumerate(result) if isinstance(v, dict) and v.get(merge_key) == key), None)
        if value.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
            continue
        if index is None:
            result.append(_merge_map({}, value, items_node, resolve))
        else:
            result[index] = _merge_map(result[index], value, items_node, resolve)
    return result


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$")}
    return value


def _reorder(items, order, field_node):
    """$setElementOrder: listed elements first in the given order, the rest after."""
    _strategies, merge_key = list_strategy(field_node)

    def ident(v):
        return v.get(merge_key) if merge_key and isinstance(v, dict) else v
    wanted = [ident(o) for o in order]
    first = sorted([v for v in items if ident(v) in wanted], key=lambda v: wanted.index(ident(v)))
    return first + [v for v in items if ident(v) not in wanted]
