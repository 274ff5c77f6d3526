# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Node label and taint reconciliation (pure functions, standard library only).

We only ever remove a label that (a) has one of our managed prefixes and (b) we set
ourselves on an earlier run, recorded in the node annotation
``kubegpu.io/managed-labels`` (comma-separated keys). Labels set by people or by
other controllers (GPU Feature Discovery, the GPU Operator) are never removed, even
when they share a prefix.

The result is a JSON merge patch (RFC 7386) for the Node: ``null`` deletes a label;
``spec.taints`` is replaced as a whole list (merge patches replace lists), keeping
every taint we do not manage; ``metadata.resourceVersion`` makes the API server
refuse the patch if the node changed since it was read (optimistic concurrency).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

MANAGED_ANNOTATION = "kubegpu.io/managed-labels"
DEFAULT_PREFIXES = (
    "nvidia.com/gpu.",
    "nvidia.com/cuda.",
    "nvidia.com/mig.",
    "aliyun.accelerator/",
    "kubegpu.io/",
)


def _managed(key, prefixes):
    return any(key.startswith(prefix) for prefix in prefixes)


def previously_managed(annotations):
    """Label keys recorded by an earlier run."""
    value = (annotations or {}).get(MANAGED_ANNOTATION) or ""
    return set(k for k in (part.strip() for part in value.split(",")) if k)


def diff_labels(current, desired, annotations=None, prefixes=DEFAULT_PREFIXES):
    """What to add/change and what to remove.

    Returns dict: set (key -> value, new or changed), remove (sorted keys),
    managed (sorted keys we manage after the change).
    """
    current = current or {}
    desired = dict((str(k), str(v)) for k, v in (desired or {}).items())
    bad = [k for k in desired if not _managed(k, prefixes)]
    if bad:
        raise ValueError("labels outside the managed prefixes %s: %s" % (", ".join(prefixes), ", ".join(sorted(bad))))
    to_set = dict((k, v) for k, v in desired.items() if current.get(k) != v)
    owned = previously_managed(annotations)
    to_remove = sorted(k for k in current if k not in desired and k in owned and _managed(k, prefixes))
    return {"set": to_set, "remove": to_remove, "managed": sorted(desired)}


def reconcile_taints(current, wanted=None, managed_keys=()):
    """New taint list: every taint not in managed_keys kept, plus the wanted ones.

    wanted: list of {key, value, effect}; managed_keys: taint keys we own.
    Returns (new_list, changed).
    """
    current = list(current or [])
    wanted = [dict((k, v) for k, v in t.items() if k in ("key", "value", "effect") and v is not None)
              for t in (wanted or [])]
    owned = set(managed_keys) | set(t["key"] for t in wanted)
    kept = [t for t in current if t.get("key") not in owned]
    mine_now = [dict((k, v) for k, v in t.items() if k in ("key", "value", "effect"))
                for t in current if t.get("key") in owned]

    def norm(taints):
        return sorted((t.get("key"), t.get("value") or "", t.get("effect")) for t in taints)

    changed = norm(mine_now) != norm(wanted)
    if not changed:
        return current, False
    return kept + wanted, True


def merge_patch(label_diff, resource_version=None, taints=None):
    """The JSON merge patch for a label diff (and optionally a new taint list)."""
    labels = dict(label_diff["set"])
    for key in label_diff["remove"]:
        labels[key] = None
    metadata = {
        "labels": labels,
        "annotations": {MANAGED_ANNOTATION: ",".join(label_diff["managed"]) or None},
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    patch = {"metadata": metadata}
    if taints is not None:
        patch["spec"] = {"taints": taints}
    return patch


def needs_patch(label_diff, annotations, taints_changed=False):
    """Whether anything differs (labels, our bookkeeping annotation, or taints)."""
    recorded = (annotations or {}).get(MANAGED_ANNOTATION) or ""
    wanted = ",".join(label_diff["managed"])
    return bool(label_diff["set"] or label_diff["remove"] or recorded != wanted or taints_changed)


# --- module runner (kubegpu.cluster.node_labels) -------------------------------------

def _kubectl(module, args):
    params = module.params
    command = [params["kubectl"]]
    if params.get("kubeconfig"):
        command += ["--kubeconfig", params["kubeconfig"]]
    return command + list(args)


# A patch carrying the node's resourceVersion fails with 409 Conflict when anything wrote
# the node in between; the kubelet writes its status every nodeStatusUpdateFrequency (10 s),
# so on a live node this is routine. Read again and compute again, as kubectl's own label
# and taint commands do on conflict (k8s.io/client-go/util/retry.RetryOnConflict).
CONFLICT_ATTEMPTS = 5


def _is_conflict(err):
    return "(Conflict)" in err or "the object has been modified" in err


def _read_node(module, name):
    import json

    rc, out, err = module.run_command(_kubectl(module, ["get", "node", name, "-o", "json"]))
    if rc != 0:
        module.fail_json(msg="kubectl get node %s failed (rc=%d): %s" % (name, rc, err.strip()))
    try:
        return json.loads(out)
    except ValueError as exc:
        module.fail_json(msg="kubectl get node %s printed no JSON: %s" % (name, exc))


def _plan(module, node):
    """The result (changed, added/updated/removed, diff) and the patch for one reading."""
    params = module.params
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    try:
        label_diff = diff_labels(labels, params["labels"], annotations, tuple(params["prefixes"]))
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    new_taints, taints_changed = reconcile_taints(taints, params["taints"], params["managed_taint_keys"])
    changed = needs_patch(label_diff, annotations, taints_changed)
    result = {
        "changed": changed,
        "node": params["name"],
        "added": dict((k, v) for k, v in label_diff["set"].items() if k not in labels),
        "updated": dict((k, v) for k, v in label_diff["set"].items() if k in labels),
        "removed": label_diff["remove"],
        "taints_changed": taints_changed,
    }
    if not changed:
        return result, None
    patch = merge_patch(label_diff, metadata.get("resourceVersion"), new_taints if taints_changed else None)
    result["patch"] = patch
    if module._diff:
        after = dict(labels)
        after.update(label_diff["set"])
        for key in label_diff["remove"]:
            after.pop(key, None)
        result["diff"] = {
            "before": {"labels": labels, "taints": taints},
            "after": {"labels": after, "taints": new_taints},
        }
    return result, patch


def run_node_labels(module):
    """Read the node, compute the diff, patch it (unless check mode), exit_json; on a
    409 Conflict read and compute again (CONFLICT_ATTEMPTS in all)."""
    import json

    name = module.params["name"]
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        result, patch = _plan(module, _read_node(module, name))
        if patch is None or module.check_mode:
            break
        rc, out, err = module.run_command(_kubectl(
            module, ["patch", "node", name, "--type", "merge", "-p", json.dumps(patch, sort_keys=True)]))
        if rc == 0:
            break
        if not _is_conflict(err) or attempt == CONFLICT_ATTEMPTS:
            module.fail_json(msg="kubectl patch node %s failed (rc=%d, attempt %d): %s"
                             % (name, rc, attempt, err.strip()), **result)
    module.exit_json(**result)
