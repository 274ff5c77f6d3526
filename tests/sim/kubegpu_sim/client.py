# SPDX-License-Identifier: Apache-2.0
"""REST client of the simulated components (test-only). Standard library only.

Reads a kubeconfig the way client-go's clientcmd does for the fields kubeadm writes
(kubernetes/staging/src/k8s.io/client-go/tools/clientcmd/api/v1/types.go): the current
context's cluster `server` and `certificate-authority-data` (or `certificate-authority`),
the user's `client-certificate-data`/`client-key-data` (or the file forms) or `token`.

    api = Client.from_kubeconfig("/etc/kubernetes/kubelet.conf")
    node = api.get("/api/v1/nodes/gpu1")            # dict, or None on 404
    api.create("/api/v1/nodes", {...})
    for event in api.watch("/api/v1/pods", params={"fieldSelector": "spec.nodeName=gpu1"}):
        ...                                            # {"type": ..., "object": {...}}
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import tempfile
import urllib.parse

from . import yamlish


class ApiError(Exception):
    """A non-2xx answer: .status (int), .body (parsed Status dict or text)."""

    def __init__(self, status, body):
        self.status = status
        self.body = body
        reason = body.get("message") if isinstance(body, dict) else str(body)[:300]
        super().__init__("HTTP %s: %s" % (status, reason))


def _materialise(data_b64, path, tmpdir, name):
    """A file path for a kubeconfig field given as *-data (base64) or as a path."""
    if data_b64:
        target = os.path.join(tmpdir, name)
        with open(target, "wb") as stream:
            stream.write(base64.b64decode(data_b64))
        os.chmod(target, 0o600)
        return target
    return path


class Client:
    def __init__(self, server, ca_file=None, cert_file=None, key_file=None, token=None, timeout=30):
        parsed = urllib.parse.urlsplit(server)
        self.scheme = parsed.scheme or "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.scheme == "https" else 80)
        self.token = token
        self.timeout = timeout
        self.context = None
        if self.scheme == "https":
            self.context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl._create_unverified_context()
            if ca_file:
                # kubeadm's serving certificate names the node's addresses; in tests the
                # host name used may be any of them, as with `insecure-skip-tls-verify` off
                # but a matching SAN: keep verification of the chain, relax the name.
                self.context.check_hostname = False
            if cert_file and key_file:
                self.context.load_cert_chain(cert_file, key_file)

    @classmethod
    def from_kubeconfig(cls, path, timeout=30):
        with open(path) as stream:
            config = yamlish.load(stream.read())
        current = config.get("current-context")
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        context = contexts.get(current) or next(iter(contexts.values()))
        clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
        users = {u["name"]: u.get("user") or {} for u in config.get("users") or []}
        cluster = clusters[context["cluster"]]
        user = users.get(context.get("user"), {})
        tmpdir = tempfile.mkdtemp(prefix="kubegpu-sim-client-")
        ca = _materialise(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), tmpdir, "ca.crt")
        cert = _materialise(user.get("client-certificate-data"), user.get("client-certificate"), tmpdir, "client.crt")
        key = _materialise(user.get("client-key-data"), user.get("client-key"), tmpdir, "client.key")
        return cls(cluster["server"], ca_file=ca, cert_file=cert, key_file=key, token=user.get("token"), timeout=timeout)

    # -- plumbing ---------------------------------------------------------------
    def _connection(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=timeout)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def _headers(self, content_type="application/json"):
        headers = {"Accept": "application/json", "User-Agent": "kubegpu-sim"}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = "Bearer %s" % self.token
        return headers

    @staticmethod
    def _url(path, params):
        if params:
            return path + "?" + urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        return path

    def request(self, method, path, body=None, params=None, content_type="application/json", raw=False):
        """One request; returns the parsed JSON answer (or text when raw). Raises ApiError."""
        conn = self._connection()
        try:
            payload = None
            if body is not None:
                payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
                if isinstance(payload, str):
                    payload = payload.encode()
            conn.request(method, self._url(path, params), body=payload, headers=self._headers(content_type))
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
        text = data.decode("utf-8", "replace")
        if response.status >= 300:
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = text
            raise ApiError(response.status, parsed)
        if raw:
            return text
        return json.loads(text) if text.strip() else None

    # -- verbs ------------------------------------------------------------------
    def get(self, path, params=None):
        """The object at path, or None when the server answers 404."""
        try:
            return self.request("GET", path, params=params)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def list(self, path, params=None):
        return (self.request("GET", path, params=params) or {}).get("items", [])

    def create(self, path, obj, params=None):
        return self.request("POST", path, body=obj, params=params)

    def replace(self, path, obj, params=None):
        return self.request("PUT", path, body=obj, params=params)

    def merge_patch(self, path, patch, params=None):
        return self.request("PATCH", path, body=patch, params=params, content_type="application/merge-patch+json")

    def strategic_patch(self, path, patch, params=None):
        return self.request("PATCH", path, body=patch, params=params,
                            content_type="application/strategic-merge-patch+json")

    def apply(self, path, obj, field_manager, force=True):
        return self.request("PATCH", path, body=obj, content_type="application/apply-patch+yaml",
                            params={"fieldManager": field_manager, "force": "true" if force else None})

    def delete(self, path, params=None, body=None):
        """Delete; returns the answer, or None when already gone (404)."""
        try:
            return self.request("DELETE", path, body=body, params=params)
        except ApiError as err:
            if err.status == 404:
                return None
            raise

    def watch(self, path, params=None, timeout_seconds=60):
        """Yield watch events ({"type", "object"}) until the server ends the stream."""
        params = dict(params or {})
        params["watch"] = "true"
        params.setdefault("timeoutSeconds", str(timeout_seconds))
        conn = self._connection(timeout=timeout_seconds + 30)
        try:
            conn.request("GET", self._url(path, params), headers=self._headers(None))
            response = conn.getresponse()
            if response.status >= 300:
                raise ApiError(response.status, response.read().decode("utf-8", "replace"))
            while True:
                line = response.readline()
                if not line:
                    return
                line = line.strip()
                if line:
                    yield json.loads(line)
        finally:
            conn.close()
