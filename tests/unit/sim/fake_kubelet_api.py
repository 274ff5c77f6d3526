# SPDX-License-Identifier: Apache-2.0
"""In-memory stand-in for kubegpu_sim.client.Client (get/list/create/replace/merge_patch/
delete by path) for the kubelet/workload unit tests. Paths: collection paths create,
item paths get/replace; a trailing /status replaces the item's status."""
from __future__ import annotations

import copy
import itertools
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from kubegpu_sim.client import ApiError  # noqa: E402


class FakeApi:
    def __init__(self, objects=None):
        self.objects = {}
        self.calls = []
        self._rv = itertools.count(1)
        for path, obj in (objects or {}).items():
            self.objects[path] = copy.deepcopy(obj)

    def _item(self, path):
        return path[:-len("/status")] if path.endswith("/status") else path

    def get(self, path, params=None):
        self.calls.append(("GET", path))
        obj = self.objects.get(self._item(path))
        return copy.deepcopy(obj)

    def list(self, path, params=None):
        prefix = path.rstrip("/") + "/"
        return [copy.deepcopy(o) for p, o in self.objects.items() if p.startswith(prefix) and "/" not in p[len(prefix):]]

    def create(self, path, obj, params=None):
        self.calls.append(("POST", path))
        name = obj["metadata"]["name"]
        item = "%s/%s" % (path.rstrip("/"), name)
        if item in self.objects:
            raise ApiError(409, {"message": "%s already exists" % name, "reason": "AlreadyExists"})
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("generation", 1)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        obj["metadata"].setdefault("uid", "uid-%s" % name)
        self.objects[item] = obj
        return copy.deepcopy(obj)

    def replace(self, path, obj, params=None):
        self.calls.append(("PUT", path))
        item = self._item(path)
        if item not in self.objects:
            raise ApiError(404, {"message": "not found"})
        old = self.objects[item]
        obj = copy.deepcopy(obj)
        if path.endswith("/status"):
            new = copy.deepcopy(old)
            new["status"] = obj.get("status")
        else:
            new = obj
            new.setdefault("status", old.get("status"))
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        new["metadata"]["resourceVersion"] = str(next(self._rv))
        self.objects[item] = new
        return copy.deepcopy(new)

    def merge_patch(self, path, patch, params=None):
        self.calls.append(("PATCH", path))
        item = self._item(path)
        if item not in self.objects:
            raise ApiError(404, {"message": "not found"})
        self.objects[item] = _merge(self.objects[item], patch)
        return copy.deepcopy(self.objects[item])

    strategic_patch = merge_patch

    def delete(self, path, params=None, body=None):
        self.calls.append(("DELETE", path))
        return self.objects.pop(path, None)


def _merge(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out
