# SPDX-License-Identifier: Apache-2.0
"""A small in-memory stand-in for kubegpu_sim.client.Client (same verbs), for unit tests
of the simulated controllers. Only what the controllers use: CRUD on collection and
item paths, status/approval/binding/finalize subresources, JSON merge patch (RFC 7386),
finalizers and deletionTimestamp, propagationPolicy Foreground/Orphan, discovery."""
from __future__ import annotations

import copy
import os
import sys
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from kubegpu_sim.client import ApiError  # noqa: E402

NAMESPACED = {"pods", "replicasets", "deployments", "daemonsets", "controllerrevisions", "jobs", "leases",
              "poddisruptionbudgets", "configmaps", "secrets", "services", "statefulsets", "serviceaccounts"}
KINDS = {"pods": ("v1", "Pod"), "nodes": ("v1", "Node"), "namespaces": ("v1", "Namespace"),
         "configmaps": ("v1", "ConfigMap"), "secrets": ("v1", "Secret"), "services": ("v1", "Service"),
         "serviceaccounts": ("v1", "ServiceAccount"),
         "replicasets": ("apps/v1", "ReplicaSet"), "deployments": ("apps/v1", "Deployment"),
         "daemonsets": ("apps/v1", "DaemonSet"), "controllerrevisions": ("apps/v1", "ControllerRevision"),
         "statefulsets": ("apps/v1", "StatefulSet"), "jobs": ("batch/v1", "Job"),
         "leases": ("coordination.k8s.io/v1", "Lease"),
         "poddisruptionbudgets": ("policy/v1", "PodDisruptionBudget"),
         "certificatesigningrequests": ("certificates.k8s.io/v1", "CertificateSigningRequest"),
         "clusterpolicies": ("nvidia.com/v1", "ClusterPolicy")}


def merge(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


class _Revision:
    """etcd's revision: next() gives the next resourceVersion, .value the last one given."""

    def __init__(self):
        self.value = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.value += 1
        return self.value


class FakeApi:
    def __init__(self, now_text=lambda: "2026-01-01T00:00:00Z"):
        self.store = {}   # plural -> {(namespace, name): obj}
        self.rv = _Revision()
        self.now_text = now_text
        self.calls = []
        self.down = False

    # -- helpers for tests --------------------------------------------------------------
    def add(self, plural, obj):
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        m.setdefault("uid", str(uuid.uuid4()))
        m.setdefault("creationTimestamp", self.now_text())
        m.setdefault("generation", 1)
        m["resourceVersion"] = str(next(self.rv))
        api_version, kind = KINDS[plural]
        obj.setdefault("apiVersion", api_version)
        obj.setdefault("kind", kind)
        self.store.setdefault(plural, {})[(m.get("namespace"), m["name"])] = obj
        return obj

    def objects(self, plural, namespace=None):
        return [o for (ns, _n), o in sorted(self.store.get(plural, {}).items())
                if namespace is None or ns == namespace]

    def obj(self, plural, name, namespace=None):
        return self.store.get(plural, {}).get((namespace, name))

    # -- path parsing ---------------------------------------------------------------------
    @staticmethod
    def parse(path):
        parts = [p for p in path.split("?")[0].split("/") if p]
        if parts[0] == "api":
            rest = parts[2:]
        else:
            rest = parts[3:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] != "finalize":
            namespace, rest = rest[1], rest[2:]
        plural = rest[0] if rest else None
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        return plural, namespace, name, sub

    def _check(self):
        if self.down:
            raise ConnectionRefusedError("connection refused")

    # -- verbs ------------------------------------------------------------------------------
    def get(self, path, params=None):
        self._check()
        self.calls.append(("GET", path))
        if path == "/apis":
            return {"groups": [{"name": g, "preferredVersion": {"groupVersion": g + "/v1"}}
                               for g in ("apps", "batch", "policy", "coordination.k8s.io", "certificates.k8s.io")]}
        if path in ("/api/v1",) or (path.startswith("/apis/") and path.count("/") == 3):
            version = "v1" if path == "/api/v1" else path[len("/apis/"):]
            return {"resources": [{"name": p, "namespaced": p in NAMESPACED, "kind": k,
                                   "verbs": ["create", "delete", "get", "list", "patch", "update"]}
                                  for p, (v, k) in KINDS.items() if v == version]}
        plural, namespace, name, _sub = self.parse(path)
        obj = self.store.get(plural, {}).get((namespace, name))
        return copy.deepcopy(obj) if obj else None

    def request(self, method, path, body=None, params=None, **_kwargs):
        """The raw answer; only GET of a list: its items and the revision (metadata.resourceVersion)."""
        self._check()
        assert method == "GET", method
        return {"metadata": {"resourceVersion": str(self.rv.value)}, "items": self.list(path, params)}

    def list(self, path, params=None):
        self._check()
        self.calls.append(("LIST", path))
        plural, namespace, _name, _sub = self.parse(path)
        return [copy.deepcopy(o) for o in self.objects(plural, namespace)]

    def create(self, path, obj, params=None):
        self._check()
        self.calls.append(("POST", path))
        plural, namespace, name, sub = self.parse(path)
        if sub == "eviction":
            # policy/v1 Eviction without PodDisruptionBudgets: the pod is deleted
            return self.delete("/api/v1/namespaces/%s/pods/%s" % (namespace, name))
        if sub == "binding" or name == "binding":
            pod = self.store["pods"][(namespace, name)]
            pod["spec"]["nodeName"] = obj["target"]["name"]
            conditions = [c for c in pod.setdefault("status", {}).get("conditions") or [] if c["type"] != "PodScheduled"]
            pod["status"]["conditions"] = conditions + [{"type": "PodScheduled", "status": "True"}]
            return {"kind": "Status", "status": "Success"}
        obj = copy.deepcopy(obj)
        m = obj.setdefault("metadata", {})
        if not m.get("name"):
            m["name"] = m["generateName"] + uuid.uuid4().hex[:5]
        if namespace:
            m["namespace"] = namespace
        if (namespace, m["name"]) in self.store.get(plural, {}):
            raise ApiError(409, {"message": "already exists"})
        return copy.deepcopy(self.add(plural, obj))

    def replace(self, path, obj, params=None):
        self._check()
        self.calls.append(("PUT", path))
        plural, namespace, name, sub = self.parse(path)
        if plural == "namespaces" and sub is None and name and path.endswith("/finalize"):
            sub = "finalize"
        current = self.store.get(plural, {}).get((namespace, name))
        if current is None:
            raise ApiError(404, {"message": "not found"})
        if sub == "status":
            current["status"] = copy.deepcopy(obj.get("status"))
        elif sub == "approval":
            current.setdefault("status", {})["conditions"] = copy.deepcopy(obj["status"]["conditions"])
        elif sub == "finalize":
            current.setdefault("spec", {})["finalizers"] = list(obj["spec"].get("finalizers") or [])
            self._maybe_remove(plural, current)
            return copy.deepcopy(current)
        else:
            keep = current.get("status")
            changed = obj.get("spec") != current.get("spec")
            old_meta = dict(current["metadata"])
            generation = old_meta.get("generation", 1)
            current.clear()
            current.update(copy.deepcopy(obj))
            current["status"] = keep
            current.setdefault("metadata", {})
            for key in ("uid", "creationTimestamp", "namespace", "name"):
                if old_meta.get(key) is not None:
                    current["metadata"][key] = old_meta[key]
            # the strategies' PrepareForUpdate: generation + 1 when the spec changes
            current["metadata"]["generation"] = generation + 1 if changed else generation
        current["metadata"]["resourceVersion"] = str(next(self.rv))
        return copy.deepcopy(current)

    def merge_patch(self, path, patch, params=None):
        self._check()
        self.calls.append(("PATCH", path, copy.deepcopy(patch)))
        plural, namespace, name, sub = self.parse(path)
        current = self.store.get(plural, {}).get((namespace, name))
        if current is None:
            raise ApiError(404, {"message": "not found"})
        # the API server's optimistic lock: a patch carrying another resourceVersion is a conflict
        wanted_rv = (patch.get("metadata") or {}).get("resourceVersion")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(409, {"message": "the object has been modified"})
        patch = dict(patch, metadata={k: v for k, v in (patch.get("metadata") or {}).items() if k != "resourceVersion"})
        if not patch["metadata"]:
            del patch["metadata"]
        if sub == "status":
            current["status"] = merge(current.get("status") or {}, patch.get("status") or {})
        else:
            status = current.get("status")
            new = merge(current, {k: v for k, v in patch.items() if k != "status"})
            current.clear()
            current.update(new)
            if status is not None:
                current["status"] = status
            if "spec" in patch:
                current["metadata"]["generation"] = current["metadata"].get("generation", 1) + 1
        current["metadata"]["resourceVersion"] = str(next(self.rv))
        self._maybe_remove(plural, current)
        return copy.deepcopy(current)

    strategic_patch = merge_patch   # enough for the label/annotation/unschedulable patches used here

    def delete(self, path, params=None, body=None):
        self._check()
        self.calls.append(("DELETE", path))
        plural, namespace, name, _sub = self.parse(path)
        current = self.store.get(plural, {}).get((namespace, name))
        if current is None:
            return None
        policy = (params or {}).get("propagationPolicy")
        m = current["metadata"]
        if policy == "Foreground" and "foregroundDeletion" not in (m.get("finalizers") or []):
            m["finalizers"] = (m.get("finalizers") or []) + ["foregroundDeletion"]
        if policy == "Orphan" and "orphan" not in (m.get("finalizers") or []):
            m["finalizers"] = (m.get("finalizers") or []) + ["orphan"]
        m.setdefault("deletionTimestamp", self.now_text())
        if plural == "namespaces":
            current.setdefault("status", {})["phase"] = "Terminating"
        self._maybe_remove(plural, current)
        return {"kind": "Status", "status": "Success"}

    def _maybe_remove(self, plural, obj):
        m = obj["metadata"]
        if not m.get("deletionTimestamp") or m.get("finalizers"):
            return
        if plural == "namespaces" and (obj.get("spec") or {}).get("finalizers"):
            return
        self.store[plural].pop((m.get("namespace"), m["name"]), None)
