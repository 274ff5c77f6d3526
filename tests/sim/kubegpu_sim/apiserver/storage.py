# SPDX-License-Identifier: Apache-2.0
"""The simulated etcd: objects in memory keyed by (group, plural, namespace, name), one
global resourceVersion counter (etcd's revision, kubernetes staging/src/k8s.io/apiserver/
pkg/storage/etcd3/store.go), a bounded event log for watches (the watch cache,
staging/src/k8s.io/apiserver/pkg/storage/cacher/watch_cache.go) and an atomic JSON
snapshot in the data directory, so a restart keeps the cluster.

The snapshot is written by one thread, at most every SAVE_DELAY seconds, after a write
(and at once by close(), which the server calls when it stops). Writing the whole store
after every write had the simulated API server re-serialise and fsync every object on
each node heartbeat."""
from __future__ import annotations

import copy
import json
import os
import threading
import time

EVENT_LOG_SIZE = 20000
SAVE_DELAY = 0.2


class Store:
    def __init__(self, data_dir=None):
        self.data_dir = data_dir
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects = {}
        self.rv = 0
        self.events = []        # [(rv, type, key, obj)]
        self.first_rv = 1       # oldest rv a watch may resume after (watch_cache.go: tooOldResourceVersion)
        self.closed = False
        self._dirty = False
        self._saver = None
        self._load()

    # -- persistence ------------------------------------------------------------
    def _path(self):
        return os.path.join(self.data_dir, "state.json") if self.data_dir else None

    def _load(self):
        path = self._path()
        if not path or not os.path.exists(path):
            return
        with open(path) as stream:
            state = json.load(stream)
        self.rv = state["resourceVersion"]
        self.first_rv = self.rv + 1
        for item in state["objects"]:
            self.objects[tuple(item["key"])] = item["object"]

    def _save(self):
        """Have the snapshot written soon (call with the lock held)."""
        if not self.data_dir:
            return
        self._dirty = True
        if self._saver is None:
            self._saver = threading.Thread(target=self._save_loop, name="store-saver", daemon=True)
            self._saver.start()

    def _save_loop(self):
        while True:
            with self.changed:
                while not self._dirty and not self.closed:
                    self.changed.wait()
                if self.closed:
                    return
            time.sleep(SAVE_DELAY)   # writes in the next moment go into the same snapshot
            self.flush()

    def flush(self):
        """Write the snapshot now if a write happened since the last one."""
        path = self._path()
        if not path:
            return
        with self.lock:
            if not self._dirty:
                return
            self._dirty = False
            state = {"resourceVersion": self.rv,
                     "objects": [{"key": list(k), "object": v} for k, v in self.objects.items()]}
            text = json.dumps(state, separators=(",", ":"))
            # Written under the lock: a later snapshot must not be overtaken by this one.
            os.makedirs(self.data_dir, exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as stream:
                stream.write(text)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, path)

    def close(self):
        """The server stops: write what is pending and wake every waiter."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()
        self.flush()

    # -- reads ------------------------------------------------------------------
    def get(self, key):
        with self.lock:
            obj = self.objects.get(key)
            return copy.deepcopy(obj) if obj is not None else None

    def list(self, group, plural, namespace=None):
        """(objects sorted by namespace/name, current resourceVersion)."""
        with self.lock:
            items = [copy.deepcopy(v) for k, v in self.objects.items()
                     if k[0] == group and k[1] == plural and (namespace is None or k[2] == namespace)]
            return sorted(items, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])), self.rv

    def keys(self, group=None, plural=None, namespace=None):
        with self.lock:
            return [k for k in self.objects if (group is None or k[0] == group)
                    and (plural is None or k[1] == plural) and (namespace is None or k[2] == namespace)]

    # -- writes -----------------------------------------------------------------
    def next_rv(self):
        """Reserve the next resourceVersion (call with the lock held)."""
        self.rv += 1
        return self.rv

    def put(self, key, obj, event_type):
        """Store obj (its metadata.resourceVersion already set from next_rv) and log the event."""
        with self.lock:
            self.objects[key] = copy.deepcopy(obj)
            self._log(event_type, key, obj)

    def remove(self, key, obj):
        """Delete key; obj is the final state (with a fresh resourceVersion) sent to watchers."""
        with self.lock:
            self.objects.pop(key, None)
            self._log("DELETED", key, obj)

    def _log(self, event_type, key, obj):
        rv = int(obj["metadata"]["resourceVersion"])
        self.events.append((rv, event_type, key, copy.deepcopy(obj)))
        if len(self.events) > EVENT_LOG_SIZE:
            drop = len(self.events) - EVENT_LOG_SIZE
            self.first_rv = self.events[drop - 1][0] + 1
            del self.events[:drop]
        self._save()
        self.changed.notify_all()

    def events_after(self, rv):
        """Logged events with resourceVersion > rv, or None when rv is older than the log."""
        with self.lock:
            if rv + 1 < self.first_rv:
                return None
            lo, hi = 0, len(self.events)
            while lo < hi:
                mid = (lo + hi) // 2
                if self.events[mid][0] <= rv:
                    lo = mid + 1
                else:
                    hi = mid
            return self.events[lo:]

    def wait(self, rv, timeout):
        """Block until the store's resourceVersion passes rv or timeout (seconds) elapses."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.rv <= rv and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.changed.wait(left)
