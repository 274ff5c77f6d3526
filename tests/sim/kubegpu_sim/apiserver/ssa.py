# SPDX-License-Identifier: Apache-2.0
"""Server-side apply and managedFields, following sigs.k8s.io/structured-merge-diff/v4
(typed/tofieldset.go: toFieldSetWalker, typed/merge.go: mergingWalker, merge/update.go:
Updater.Apply / Updater.Update / prune) as used by staging/src/k8s.io/apiserver/pkg/
endpoints/handlers/fieldmanager (managedfields/internal/structuredmerge.go).

Field paths are tuples of path elements: ("f", field), ("k", '{"name":"x"}') for an
element of a list-type=map list, ("v", 'json') for a set element, encoded in fieldsV1 as
`f:field`, `k:{...}`, `v:...` (fieldpath/serialize.go), with "." marking a member that
also has children.
"""
from __future__ import annotations

import copy
import json

from . import errors
from .patch import child_schema
from .schema import no_refs

MISSING = object()
# metadata fields apply never tracks (managedfields/internal/stripmeta.go: NewStripMetaManager)
_STRIPPED_META = ("name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp",
                  "managedFields", "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


def _list_kind(node):
    """('map', keys) | ('set', None) | ('atomic', None) for a list field's schema
    (x-kubernetes-list-type, or the patch merge key of the SMP tags for built-ins)."""
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    if list_type == "map" and keys:
        return "map", keys
    if list_type == "set":
        return "set", None
    if list_type is None and node.get("x-kubernetes-patch-merge-key") and \
            "merge" in (node.get("x-kubernetes-patch-strategy") or ""):
        return "map", [node["x-kubernetes-patch-merge-key"]]
    return "atomic", None


# Defaults of list-map key fields (structured-merge-diff typed/helpers.go: keyedAssociativeListItemToPathElement
# uses a key field's default when the element omits it; k8s.io/api core/v1/types.go ContainerPort.Protocol,
# ServicePort.Protocol and EndpointPort.Protocol are `+default="TCP"`).
_KEY_DEFAULTS = {"protocol": "TCP"}


def _element_key(element, keys):
    values = {}
    for k in sorted(keys):
        if k in element:
            values[k] = element[k]
        elif k in _KEY_DEFAULTS:
            values[k] = _KEY_DEFAULTS[k]
    return json.dumps(values, separators=(",", ":"), sort_keys=True)


def _is_atomic_map(node):
    return node.get("x-kubernetes-map-type") == "atomic"


def strip(obj, status_subresource):
    """The part of an object apply tracks (stripmeta.go; status is reset for the main
    resource of kinds with a status subresource, the strategies' GetResetFields)."""
    obj = copy.deepcopy(obj)
    obj.pop("apiVersion", None)
    obj.pop("kind", None)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        for key in _STRIPPED_META:
            meta.pop(key, None)
        if not meta:
            obj.pop("metadata")
    if status_subresource:
        obj.pop("status", None)
    return obj


def fieldset(value, node, resolve=no_refs, path=()):
    """typed/tofieldset.go: the set of paths a value sets."""
    out = set()
    node = resolve(node) if node else {}
    if isinstance(value, dict):
        if _is_atomic_map(node) and path:
            out.add(path)
            return out
        props = node.get("properties") or {}
        for key, child in value.items():
            child_path = path + (("f", key),)
            out |= fieldset(child, child_schema(node, key, resolve), resolve, child_path)
            if child is None or (isinstance(child, dict) and not child) or key not in props:
                out.add(child_path)
    elif isinstance(value, list):
        kind, keys = _list_kind(node)
        items = resolve(node.get("items") or {})
        if kind == "map":
            for element in value:
                if isinstance(element, dict):
                    epath = path + (("k", _element_key(element, keys)),)
                    out.add(epath)
                    out |= fieldset(element, items, resolve, epath)
        elif kind == "set":
            for element in value:
                out.add(path + (("v", json.dumps(element, separators=(",", ":"))),))
        else:
            out.add(path)
    else:
        out.add(path)
    return out


def value_at(obj, path):
    cur = obj
    for kind, name in path:
        if kind == "f":
            if not isinstance(cur, dict) or name not in cur:
                return MISSING
            cur = cur[name]
        elif kind == "k":
            if not isinstance(cur, list):
                return MISSING
            want = json.loads(name)
            cur = next((e for e in cur if isinstance(e, dict) and all(e.get(k) == v for k, v in want.items())),
                       MISSING)
            if cur is MISSING:
                return MISSING
        elif kind == "v":
            if not isinstance(cur, list) or json.loads(name) not in cur:
                return MISSING
            cur = json.loads(name)
    return cur


def _changed(a, b):
    """A path's value differs (containers only by presence: typed/compare.go)."""
    if (a is MISSING) != (b is MISSING):
        return True
    if isinstance(a, (dict, list)) and isinstance(b, (dict, list)) and type(a) is type(b) and a and b:
        return False
    return a != b


def remove_path(obj, path):
    """Remove the item a path names (merge/update.go: prune, typed/remove.go)."""
    parent = value_at(obj, path[:-1]) if len(path) > 1 else obj
    kind, name = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind in ("k", "v") and isinstance(parent, list):
        target = value_at(obj, path)
        if target is not MISSING:
            for index, element in enumerate(parent):
                if element is target or element == target:
                    parent.pop(index)
                    break


def merge(live, config, node, resolve=no_refs):
    """typed/merge.go: the applied configuration merged over the live object."""
    node = resolve(node) if node else {}
    if isinstance(config, dict) and isinstance(live, dict) and not _is_atomic_map(node):
        out = copy.deepcopy(live)
        for key, value in config.items():
            out[key] = merge(live.get(key, MISSING), value, child_schema(node, key, resolve), resolve)
        return out
    if isinstance(config, list) and isinstance(live, list):
        kind, keys = _list_kind(node)
        items = resolve(node.get("items") or {})
        if kind == "map":
            out = copy.deepcopy(live)
            for element in config:
                if not isinstance(element, dict):
                    continue
                ident = _element_key(element, keys)
                index = next((i for i, e in enumerate(out) if isinstance(e, dict)
                              and _element_key(e, keys) == ident), None)
                if index is None:
                    out.append(copy.deepcopy(element))
                else:
                    out[index] = merge(out[index], element, items, resolve)
            return out
        if kind == "set":
            return copy.deepcopy(live) + [copy.deepcopy(e) for e in config if e not in live]
    return copy.deepcopy(config)


# -- fieldsV1 encoding ---------------------------------------------------------
def encode(paths):
    """fieldpath/serialize.go: a set of paths -> the fieldsV1 JSON tree."""
    tree = {}
    for path in sorted(paths, key=len):
        node = tree
        for kind, name in path:
            node = node.setdefault("%s:%s" % (kind, name), {})
    for path in paths:
        node = tree
        for kind, name in path:
            node = node["%s:%s" % (kind, name)]
        if node and "." not in node:
            node["."] = {}
    return _sorted_tree(tree)


def _sorted_tree(tree):
    return {k: _sorted_tree(tree[k]) for k in sorted(tree)}


def decode(tree, prefix=()):
    """The inverse of encode."""
    out = set()
    for key, child in (tree or {}).items():
        if key == ".":
            out.add(prefix)
            continue
        kind, _sep, name = key.partition(":")
        path = prefix + ((kind, name),)
        if child:
            out |= decode(child, path)
        else:
            out.add(path)
    return out


# -- managers ------------------------------------------------------------------
def managers_of(obj):
    """[(manager, operation, subresource, apiVersion, time, paths)]."""
    out = []
    for entry in (obj.get("metadata") or {}).get("managedFields") or []:
        out.append([entry.get("manager", ""), entry.get("operation", "Update"), entry.get("subresource", ""),
                    entry.get("apiVersion", ""), entry.get("time"), decode(entry.get("fieldsV1") or {})])
    return out


def to_managed_fields(managers):
    entries = []
    for manager, operation, subresource, api_version, when, paths in managers:
        if not paths:
            continue
        entry = {"manager": manager, "operation": operation, "apiVersion": api_version, "time": when,
                 "fieldsType": "FieldsV1", "fieldsV1": encode(paths)}
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    return entries


def _find(managers, manager, operation, subresource):
    return next((m for m in managers if m[:3] == [manager, operation, subresource]), None)


def record_update(old, new, manager, subresource, api_version, now, node, resolve, status_sub):
    """merge/update.go: Updater.Update — the fields an Update changed move to `manager`.
    Returns the new managedFields list (new's own metadata.managedFields is ignored)."""
    managers = managers_of(old) if old else []
    old_tracked = strip(old, status_sub and not subresource) if old else {}
    new_tracked = strip(new, status_sub and not subresource)
    if subresource == "status":
        old_tracked = {"status": (old or {}).get("status")} if (old or {}).get("status") is not None else {}
        new_tracked = {"status": new.get("status")} if new.get("status") is not None else {}
    new_set = fieldset(new_tracked, node, resolve)
    old_set = fieldset(old_tracked, node, resolve)
    changed = {p for p in new_set if _changed(value_at(old_tracked, p), value_at(new_tracked, p))}
    removed = old_set - new_set
    for entry in managers:
        entry[5] = entry[5] - changed - {p for p in entry[5] if any(p[:len(r)] == r for r in removed)}
    if changed:
        mine = _find(managers, manager, "Update", subresource)
        if mine is None:
            mine = [manager, "Update", subresource, api_version, now, set()]
            managers.append(mine)
        mine[5] = mine[5] | changed
        mine[3], mine[4] = api_version, now
    return to_managed_fields(managers)


def apply(live, config, manager, force, api_version, now, node, resolve, status_sub, resource, name):
    """merge/update.go: Updater.Apply. Returns the new object (with managedFields)."""
    live = live or {}
    managers = managers_of(live)
    config_tracked = strip(config, status_sub)
    live_tracked = strip(live, status_sub)
    new_set = fieldset(config_tracked, node, resolve)
    merged = merge(live_tracked, config_tracked, node, resolve)
    changed = {p for p in new_set if _changed(value_at(live_tracked, p), value_at(merged, p))}
    conflicts = []
    for entry in managers:
        if entry[0] == manager and entry[1] == "Apply" and not entry[2]:
            continue
        # every other manager conflicts, those of subresources too: `kubectl scale` (manager
        # "kubectl", Update, subresource "scale") owns .spec.replicas of the Deployment
        # (fieldmanager/scalehandler.go); status managers own only status, which applies to
        # the main resource do not touch
        for path in sorted(entry[5] & changed):
            conflicts.append((_manager_text(entry), path))
    if conflicts and not force:
        raise conflict_error(resource, name, conflicts)
    conflicting = {p for _m, p in conflicts}
    for entry in managers:
        if not (entry[0] == manager and entry[1] == "Apply" and not entry[2]):
            entry[5] = entry[5] - conflicting
    mine = _find(managers, manager, "Apply", "")
    previous = mine[5] if mine else set()
    others = set().union(*[m[5] for m in managers if m is not mine]) if managers else set()
    for path in sorted(previous - new_set, key=len, reverse=True):
        if path not in others and not any(p[:len(path)] == path for p in new_set | others):
            remove_path(merged, path)      # merge/update.go: prune of fields no one applies
    if mine is None:
        mine = [manager, "Apply", "", api_version, now, set()]
        managers.insert(0, mine)
    elif mine[5] != new_set or merged != live_tracked:
        mine[3], mine[4] = api_version, now
    mine[5] = new_set
    result = copy.deepcopy(live)
    for key in list(result):
        if key not in ("apiVersion", "kind", "metadata") and not (status_sub and key == "status"):
            del result[key]
    meta = result.setdefault("metadata", {})
    for key in list(meta):
        if key not in _STRIPPED_META:
            del meta[key]
    for key, value in merged.items():
        if key == "metadata":
            meta.update(value)
        else:
            result[key] = value
    meta["managedFields"] = to_managed_fields(managers)
    return result


def _manager_text(entry):
    """staging/src/k8s.io/apimachinery/pkg/util/managedfields/internal/conflict.go: printManager
    of the manager identifier (managedfields.go: BuildManagerIdentifier drops the time, and the
    apiVersion of appliers)."""
    text = '"%s"' % entry[0]
    if entry[2]:
        text += ' with subresource "%s"' % entry[2]
    if entry[1] == "Update":
        text += " using %s" % entry[3]
    return text


def _path_text(path):
    """fieldpath/path.go: String, e.g. .spec.replicas or .spec.containers[name="c"].image."""
    text = ""
    for kind, name in path:
        if kind == "f":
            text += "." + name
        elif kind == "k":
            text += "[" + ",".join('%s=%s' % (k, json.dumps(v)) for k, v in json.loads(name).items()) + "]"
        else:
            text += "[=%s]" % name
    return text


def conflict_error(resource, name, conflicts):
    """staging/src/k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager: conflicts are a 409
    Conflict (internal/conflict.go: NewConflictError)."""
    causes = [{"reason": "FieldManagerConflict", "message": "conflict with %s: %s" % (m, _path_text(p)),
               "field": _path_text(p)} for m, p in conflicts]
    if len(conflicts) == 1:
        msg = "Apply failed with 1 conflict: conflict with %s: %s" % (conflicts[0][0], _path_text(conflicts[0][1]))
    else:
        msg = "Apply failed with %d conflicts: %s" % (len(conflicts), "\n".join(c["message"] for c in causes))
    err = errors.ApiError(409, "Conflict", msg, {"name": name, "group": resource.group, "kind": resource.plural,
                                                 "causes": causes})
    return err
