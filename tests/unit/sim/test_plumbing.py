# SPDX-License-Identifier: Apache-2.0
"""The simulation's own plumbing: the store's snapshot (written after writes, coalesced,
flushed on close)."""
from __future__ import annotations

import json
import os
import time

from kubegpu_sim.apiserver import storage


def _obj(name, rv):
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": str(rv)}, "data": {"n": name}}


def _put(store, name):
    with store.lock:
        rv = store.next_rv()
    store.put(("", "configmaps", "default", name), _obj(name, rv), "ADDED")


def test_the_snapshot_follows_the_writes_without_a_write_each(tmp_path, monkeypatch):
    writes = []
    real_replace = os.replace
    monkeypatch.setattr(storage.os, "replace", lambda a, b: (writes.append(b), real_replace(a, b)))
    store = storage.Store(str(tmp_path))
    for i in range(200):
        _put(store, "cm%d" % i)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        snapshot = tmp_path / "state.json"
        if snapshot.exists() and json.loads(snapshot.read_text())["resourceVersion"] == 200:
            break
        time.sleep(0.05)
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["resourceVersion"] == 200 and len(state["objects"]) == 200
    # 200 writes in a burst: a few snapshots, not one per write.
    assert 1 <= len(writes) < 20, writes
    store.close()


def test_close_writes_what_is_pending_and_a_new_store_reads_it(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "SAVE_DELAY", 30)   # the saver thread would not write in time
    store = storage.Store(str(tmp_path))
    _put(store, "kept")
    store.close()
    again = storage.Store(str(tmp_path))
    assert again.get(("", "configmaps", "default", "kept"))["data"] == {"n": "kept"}
    assert again.rv == 1 and again.first_rv == 2
    again.close()


def test_a_store_without_a_data_dir_writes_nothing(tmp_path):
    store = storage.Store(None)
    _put(store, "x")
    store.close()
    assert store._saver is None and not list(tmp_path.iterdir())
