# SPDX-License-Identifier: Apache-2.0
"""The simulation's own plumbing: the store's snapshot (written after writes, coalesced,
flushed on close) and the REST client's kept-alive connection."""
from __future__ import annotations

import http.server
import json
import os
import socketserver
import threading
import time

import pytest

from kubegpu_sim.apiserver import storage
from kubegpu_sim.client import Client


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


class _Counting(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.connections = 0
        self.close_after_next = False


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        self.server.connections += 1

    def log_message(self, *args):
        pass

    def do_GET(self):
        data = json.dumps({"path": self.path, "connection": self.server.connections}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_next:
            # The server ends the connection after answering, without saying so in a
            # header: the client finds out on its next request (a restarted server).
            self.server.close_after_next = False
            self.close_connection = True


@pytest.fixture
def counting_server():
    server = _Counting()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_requests_of_one_thread_share_one_connection(counting_server):
    api = Client("http://127.0.0.1:%d" % counting_server.server_address[1], timeout=5)
    answers = [api.get("/api/v1/nodes/n%d" % i) for i in range(5)]
    assert [a["path"] for a in answers] == ["/api/v1/nodes/n%d" % i for i in range(5)]
    assert counting_server.connections == 1
    other = []
    thread = threading.Thread(target=lambda: other.append(api.get("/api/v1/pods")))
    thread.start()
    thread.join()
    assert other[0]["connection"] == 2   # another thread, its own connection


def test_a_connection_the_server_closed_is_replaced(counting_server):
    api = Client("http://127.0.0.1:%d" % counting_server.server_address[1], timeout=5)
    counting_server.close_after_next = True
    assert api.get("/a")["connection"] == 1
    time.sleep(0.2)   # the server's side is closed now
    assert api.get("/b") == {"path": "/b", "connection": 2}
    assert api.get("/c")["connection"] == 2
