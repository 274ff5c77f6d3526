# SPDX-License-Identifier: Apache-2.0
"""A small JSON-schema validator for what kube-apiserver checks when it decodes and
validates an object:

* built-in kinds: the Kubernetes 1.35 JSON schemas of kubernetes-validate
  (<kind>-<group>-<version>.json, `$ref` into `_definitions.json`; generated from the
  OpenAPI of kubernetes api/openapi-spec, i.e. from the k8s.io/api types). Unknown fields
  are what the strict JSON decoder reports (staging/src/k8s.io/apimachinery/pkg/runtime/
  serializer/json/json.go: strict decoding, "unknown field");
* custom resources: the CRD's structural openAPIV3Schema, with pruning
  (apiextensions-apiserver pkg/apiserver/schema/pruning/algorithm.go: PruneWithOptions),
  defaulting (pkg/apiserver/schema/defaulting/algorithm.go: Default) and value validation
  (staging/src/k8s.io/kube-openapi/pkg/validation/validate: type, enum, required, ...).

Only the subset of JSON schema those files use: type (string or list, with "null"),
properties, additionalProperties (bool or schema), items, required, enum, oneOf/anyOf/
allOf, format int-or-string, nullable, x-kubernetes-preserve-unknown-fields,
x-kubernetes-int-or-string, minimum/maximum, minLength/maxLength, minItems/maxItems,
pattern, $ref.
"""
from __future__ import annotations

import copy
import json
import os
import re
import threading
from dataclasses import dataclass, field

_TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}
# Root fields every object keeps (pruning/algorithm.go: metadata/apiVersion/kind are not pruned
# at the root of a resource).
_ROOT_KEEP = ("apiVersion", "kind", "metadata")


class Schemas:
    """The built-in schemas of one Kubernetes version, loaded lazily from a directory."""

    def __init__(self, directory):
        self.directory = directory
        self._lock = threading.Lock()
        self._docs = {}
        self._by_gvk = None

    def _doc(self, name):
        with self._lock:
            if name not in self._docs:
                path = os.path.join(self.directory, name)
                try:
                    with open(path) as stream:
                        self._docs[name] = json.load(stream)
                except OSError:
                    self._docs[name] = None
            return self._docs[name]

    def _index(self):
        if self._by_gvk is not None:
            return self._by_gvk
        index = {}
        defs = self._doc("_definitions.json")
        if defs:
            for name, node in (defs.get("$defs") or defs.get("definitions") or {}).items():
                for gvk in node.get("x-kubernetes-group-version-kind") or []:
                    index.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]),
                                     ("_definitions.json", name))
        else:  # standalone layout: one self-contained file per kind
            for fname in sorted(os.listdir(self.directory or ".")):
                if fname.endswith(".json") and fname != "all.json":
                    doc = self._doc(fname) or {}
                    for gvk in doc.get("x-kubernetes-group-version-kind") or []:
                        index.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), (fname, None))
        self._by_gvk = index
        return index

    def root(self, group, version, kind):
        """(schema, resolver) for a kind, or (None, None) when no schema is known."""
        if not self.directory:
            return None, None
        entry = self._index().get((group, version, kind))
        if not entry:
            return None, None
        fname, name = entry
        doc = self._doc(fname)
        node = (doc.get("$defs") or doc.get("definitions"))[name] if name else doc
        return node, Resolver(self, fname)


class Resolver:
    """Follows $ref inside the document it started from or into sibling files."""

    def __init__(self, schemas, fname):
        self.schemas = schemas
        self.fname = fname

    def __call__(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 50:
            ref = node["$ref"]
            target, _sep, pointer = ref.partition("#")
            fname = os.path.basename(target) if target else self.fname
            doc = self.schemas._doc(fname) if self.schemas else None
            resolved = doc
            for part in [p for p in pointer.split("/") if p]:
                resolved = resolved[part] if resolved is not None else None
            node = resolved
            seen += 1
        return node or {}


def no_refs(node):
    return node or {}


@dataclass
class Result:
    unknown: list = field(default_factory=list)       # paths of unknown fields (pruned)
    type_errors: list = field(default_factory=list)   # (path, message)
    invalid: list = field(default_factory=list)       # (path, reason, message)


def _path(parent, key):
    return "%s.%s" % (parent, key) if parent else str(key)


def _fmt(value):
    return json.dumps(value) if not isinstance(value, str) else '"%s"' % value


def _type_of(value):
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _TYPES[name](value):
            return name
    return type(value).__name__


def _type_ok(node, value):
    types = node.get("type")
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        return isinstance(value, str) or _TYPES["integer"](value) or value is None
    if types is None:
        return True
    if isinstance(types, str):
        types = [types]
    if value is None and (node.get("nullable") or "null" in types):
        return True
    return any(_TYPES.get(t, lambda v: True)(value) for t in types)


def _is_structural_object(node):
    types = node.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    return "object" in types or "properties" in node or "additionalProperties" in node


def check(value, node, resolve=no_refs, crd=False, path="", result=None, root=True):
    """Validate value against node; prune unknown fields in place. Returns a Result.

    crd=True applies the CRD rules: pruning of objects without properties unless
    x-kubernetes-preserve-unknown-fields, defaults, nullable."""
    result = result if result is not None else Result()
    node = resolve(node)
    if not node:
        return result
    if not _type_ok(node, value):
        if value is None and crd:
            return result  # apiextensions drops nulls of non-nullable fields (pruning/algorithm.go)
        result.type_errors.append((path, "must be of type %s, got %s" % (
            node.get("type") if isinstance(node.get("type"), str) else "/".join(node.get("type")),
            _type_of(value))))
        return result
    for key in ("oneOf", "anyOf"):
        if key in node and value is not None:
            options = [resolve(o) for o in node[key]]
            if not any(_type_ok(o, value) for o in options if "type" in o) and all("type" in o for o in options):
                result.type_errors.append((path, "must be one of the types %s" % [o.get("type") for o in options]))
                return result
    for sub in node.get("allOf") or []:
        check(value, sub, resolve, crd, path, Result(), root=False)  # value constraints only
    if "enum" in node and value is not None and value not in node["enum"]:
        result.invalid.append((path, "FieldValueNotSupported", "Unsupported value: %s: supported values: %s"
                               % (_fmt(value), ", ".join(_fmt(v) for v in node["enum"]))))
    _check_bounds(value, node, path, result)
    if isinstance(value, dict):
        _check_object(value, node, resolve, crd, path, result, root)
    elif isinstance(value, list) and "items" in node:
        items = node["items"]
        for index, item in enumerate(value):
            check(item, items, resolve, crd, "%s[%d]" % (path, index), result, root=False)
    return result


def _check_bounds(value, node, path, result):
    """kube-openapi validate: minimum/maximum/length/items/pattern."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            result.invalid.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be "
                                   "greater than or equal to %s" % (value, path, node["minimum"])))
        if "maximum" in node and value > node["maximum"]:
            result.invalid.append((path, "FieldValueInvalid", "Invalid value: %s: %s in body should be "
                                   "less than or equal to %s" % (value, path, node["maximum"])))
    if isinstance(value, str):
        if "maxLength" in node and len(value) > node["maxLength"]:
            result.invalid.append((path, "FieldValueTooLong", "Too long: may not be more than %d bytes"
                                   % node["maxLength"]))
        if "minLength" in node and len(value) < node["minLength"]:
            result.invalid.append((path, "FieldValueInvalid", 'Invalid value: "%s": %s in body should be at '
                                   "least %d chars long" % (value, path, node["minLength"])))
        if "pattern" in node and not re.search(node["pattern"], value):
            result.invalid.append((path, "FieldValueInvalid", 'Invalid value: "%s": %s in body should match '
                                   "'%s'" % (value, path, node["pattern"])))
    if isinstance(value, list):
        if "maxItems" in node and len(value) > node["maxItems"]:
            result.invalid.append((path, "FieldValueTooMany", "Too many: %d: must have at most %d items"
                                   % (len(value), node["maxItems"])))
        if "minItems" in node and len(value) < node["minItems"]:
            result.invalid.append((path, "FieldValueInvalid", "Invalid value: %d: %s in body should have at "
                                   "least %d items" % (len(value), path, node["minItems"])))


def _check_object(value, node, resolve, crd, path, result, root):
    props = node.get("properties")
    additional = node.get("additionalProperties")
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    if crd:
        for key, sub in (props or {}).items():
            sub = resolve(sub)
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])  # defaulting/algorithm.go: Default
    for key in node.get("required") or []:
        if key not in value or (value[key] is None and not crd):
            result.invalid.append((_path(path, key), "FieldValueRequired", "Required value"))
    for key in list(value):
        child_path = _path(path, key)
        if root and key in _ROOT_KEEP and crd:
            continue
        if props is not None and key in props:
            check(value[key], props[key], resolve, crd, child_path, result, root=False)
        elif isinstance(additional, dict):
            check(value[key], additional, resolve, crd, child_path, result, root=False)
        elif additional is True or preserve:
            continue
        elif props is None and additional is None and not crd:
            continue  # a free-form object in the built-in schemas (RawExtension, JSON)
        elif props is None and additional is None and crd and not _is_structural_object(node):
            continue
        else:
            result.unknown.append(child_path)
            del value[key]


def strict_message(unknown):
    """The strict decoder's text (staging/src/k8s.io/apimachinery/pkg/runtime/serializer/
    json/json.go: NewStrictDecodingError)."""
    return "strict decoding error: " + ", ".join('unknown field "%s"' % p for p in unknown)
