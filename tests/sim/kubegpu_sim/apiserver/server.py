# SPDX-License-Identifier: Apache-2.0
"""HTTPS front end: TLS with optional client certificates, authentication, routing of
the REST paths (staging/src/k8s.io/apiserver/pkg/endpoints/installer.go: registerResourceHandlers),
JSON answers, metav1.Status errors and streamed watches (staging/src/k8s.io/apiserver/pkg/
endpoints/handlers/watch.go: serveWatch — one JSON event per line, chunked)."""
from __future__ import annotations

import http.client
import http.server
import json
import os
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse

from . import auth, discovery, errors, protobuf, tables
from .registry import Request

WATCH_DEFAULT_TIMEOUT = 1800


def parse_resource_path(registry, path):
    """(resource, namespace, name, subresource) of a REST path, or None."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        candidate = registry.lookup(group, version, rest[2])
        if candidate is not None and candidate.namespaced:
            namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    resource = registry.lookup(group, version, rest[0])
    if resource is None:
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if len(rest) > 3 or (sub and resource.subresource(sub) is None):
        return None
    return resource, namespace, name, sub


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubegpu-sim-apiserver"

    def setup(self):
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    # -- plumbing -------------------------------------------------------------------
    def _send_json(self, code, body, headers=None, content_type="application/json"):
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_error(self, err):
        self._send_json(err.code, err.status(), err.headers)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(length) if length else b""

    def _json_body(self, raw):
        """The request body as a dict: JSON, YAML, or protobuf (what client-go's typed clients
        send for built-in types, Content-Type application/vnd.kubernetes.protobuf; protobuf.py)."""
        if not raw.strip():
            return {}
        if protobuf.is_protobuf(self.headers.get("Content-Type", ""), raw):
            self._capture(raw)
            return protobuf.decode_body(raw)
        try:
            return json.loads(raw)
        except ValueError:
            from .. import yamlish
            try:
                return yamlish.load(raw.decode())
            except Exception as err:  # noqa: BLE001
                raise errors.bad_request("couldn't get version/kind; json parse error: %s" % err)

    def _capture(self, raw):
        """With KUBEGPU_SIM_CAPTURE_DIR set, keep each protobuf request body (fixtures for
        tests/unit/sim/test_apiserver_protobuf.py)."""
        directory = os.environ.get("KUBEGPU_SIM_CAPTURE_DIR")
        if not directory:
            return
        os.makedirs(directory, exist_ok=True)
        name = "%d-%s-%s.bin" % (time.time_ns(), self.command, self.path.split("?")[0].strip("/").replace("/", "_"))
        with open(os.path.join(directory, name[:200]), "wb") as stream:
            stream.write(raw)

    def _user(self, method, path):
        cert = self.request.getpeercert() if isinstance(self.request, ssl.SSLSocket) else None
        user = auth.from_certificate(cert)
        if user:
            return user
        header = self.headers.get("Authorization")
        if header:
            api = self.server.api
            secrets = api.builtin("", "secrets")
            user = auth.from_bootstrap_token(header, lambda n: api.store.get(api.key(secrets, "kube-system", n)))
            if user:
                return user
        if auth.anonymous_allowed(method, path):
            return {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
        raise errors.unauthorized()

    def do_GET(self):
        self._dispatch("GET")

    def do_HEAD(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        received = time.time()
        user, raw = None, b""
        try:
            raw = self._body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            user = self._user(method, path)
            req = Request(params, user, self.headers.get("User-Agent", ""))
            code, body, headers = self._route(method, path, params, raw, req)
            self._audit(method, path, params, user, code, received, raw)
            if code is None:
                return  # streamed
            for warning in req.warnings:
                headers.setdefault("Warning", '299 - "%s"' % warning.replace('"', "'"))
            if isinstance(body, (bytes, str)):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(code)
                self.send_header("Content-Type", headers.pop("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            else:
                ctype = headers.pop("Content-Type", "application/json")
                self._send_json(code, body, headers, ctype)
        except errors.ApiError as err:
            self._audit(method, path, params, user, err.code, received, raw)
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # noqa: BLE001 - answer 500 like the server's panic filter
            traceback.print_exc()
            self._audit(method, path, params, user, 500, received, raw)
            self._send_error(errors.internal(str(err)))

    # -- audit ----------------------------------------------------------------------
    # kube-apiserver --audit-log-path (staging/src/k8s.io/apiserver/pkg/server/options/audit.go)
    # with the log backend's JSON format, one audit.k8s.io/v1 Event per line
    # (staging/src/k8s.io/apiserver/pkg/apis/audit/v1/types.go Event; plugin/pkg/audit/log
    # backend.go), stage ResponseComplete, under the policy (audit.k8s.io/v1 Policy, rules
    # matched in order as policy/checker.go does)
    #   - {level: None, verbs: [get, list, watch]}
    #   - {level: Metadata, resources: [{resources: [secrets, leases]}]}
    #   - {level: Metadata, resources: [{resources: [nodes/status, pods/status]}]}
    #   - {level: Request}
    # i.e. every request that may change something, none that only reads; the request
    # body (requestObject, a JSON body as sent) except for Secrets (tokens, helm releases),
    # and the kubelets' heartbeats (Lease, status) without it. The verb comes
    # from the request as RequestInfoFactory.NewRequestInfo names it
    # (staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go): POST create,
    # PUT update, PATCH patch, DELETE delete (deletecollection without a name).
    _AUDIT_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}

    def _audit(self, method, path, params, user, code, received, raw=b""):
        log = self.server.audit_log
        if not log or method not in self._AUDIT_VERBS:
            return
        parsed = parse_resource_path(self.server.api.registry, path)
        if parsed is None:
            return
        resource, namespace, name, sub = parsed
        verb = self._AUDIT_VERBS[method]
        if verb == "delete" and name is None:
            verb = "deletecollection"
        ref = {"resource": resource.plural, "apiGroup": resource.group, "apiVersion": resource.version}
        if namespace:
            ref["namespace"] = namespace
        if name:
            ref["name"] = name
        if sub:
            ref["subresource"] = sub
        now = time.time()
        who = {"username": (user or {}).get("username", ""), "groups": list((user or {}).get("groups") or [])}
        event = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
                 "auditID": os.urandom(16).hex(), "stage": "ResponseComplete", "requestURI": self.path,
                 "verb": verb, "user": who,
                 "sourceIPs": [self.client_address[0]], "userAgent": self.headers.get("User-Agent", ""),
                 "objectRef": ref, "responseStatus": {"code": code or 0},
                 "requestReceivedTimestamp": _micro(received), "stageTimestamp": _micro(now)}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None  # protobuf or YAML body: Metadata only
        named = body
        if named is None and raw and protobuf.is_protobuf(self.headers.get("Content-Type", ""), raw):
            try:
                named = protobuf.decode_body(raw)   # the object the handler decoded (helm 4's Secrets)
            except (ValueError, KeyError, TypeError):   # the request itself answered with the error
                named = None
        if isinstance(named, dict) and not name:
            # audit/request.go LogRequestObject: a create's objectRef takes the name
            # (and namespace) from the decoded object of the request, whatever its
            # encoding, at every level
            meta = named.get("metadata") or {}
            if meta.get("name"):
                ref["name"] = meta["name"]
        if body is not None and resource.plural not in ("secrets", "leases") and sub != "status":
            event["requestObject"] = body
            event["level"] = "Request"
        if params.get("dryRun"):
            event["annotations"] = {"kubegpu-sim/dry-run": params["dryRun"]}
        line = json.dumps(event, separators=(",", ":")) + "\n"
        with self.server.audit_lock:
            with open(log, "a", encoding="utf-8") as stream:
                stream.write(line)

    # -- routes ---------------------------------------------------------------------
    def _route(self, method, path, params, raw, req):
        api = self.server.api
        registry = api.registry
        accept = self.headers.get("Accept", "")
        if path in ("/healthz", "/livez", "/readyz") or path.startswith(("/healthz/", "/livez/", "/readyz/")):
            return 200, "ok", {"Content-Type": "text/plain; charset=utf-8"}
        if path == "/version":
            return 200, discovery.VERSION, {}
        if path in ("/api", "/apis") and method == "GET":
            if "as=APIGroupDiscoveryList" in accept:
                return 200, discovery.aggregated(registry, path == "/api"), {
                    "Content-Type": discovery.AGGREGATED_TYPE}
            if path == "/api":
                return 200, discovery.api_versions(self.server.advertise), {}
            return 200, discovery.api_group_list(registry), {}
        if path == "/openapi/v2":
            if "protobuf" in accept and "json" not in accept.split(",")[0]:
                # an empty protobuf message is a valid, empty openapi_v2.Document
                return 200, b"", {"Content-Type": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"}
            return 200, discovery.OPENAPI_V2, {}
        if path == "/openapi/v3":
            return 200, discovery.openapi_v3_root(registry), {}
        if path.startswith("/openapi/v3/"):
            parts = path[len("/openapi/v3/"):].split("/")
            group, version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else \
                (parts[1], parts[2]) if parts[0] == "apis" and len(parts) == 3 else (None, None)
            if group is None or (group, version) not in {(g, v) for g, vs in registry.group_versions() for v in vs}:
                raise errors.raw_not_found(path)
            return 200, discovery.openapi_v3_gv(registry, group, version), {}
        parts = [p for p in path.split("/") if p]
        if method == "GET" and (len(parts) == 2 and parts[0] == "api" or len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            listing = discovery.api_resource_list(registry, group, version)
            if listing is None:
                raise errors.raw_not_found(path)
            return 200, listing, {}
        if method == "GET" and len(parts) == 2 and parts[0] == "apis":
            groups = discovery.api_group_list(registry)["groups"]
            group = next((g for g in groups if g["name"] == parts[1]), None)
            if group is None:
                raise errors.raw_not_found(path)
            return 200, dict(group, kind="APIGroup", apiVersion="v1"), {}
        parsed = parse_resource_path(registry, path)
        if parsed is None:
            raise errors.raw_not_found(path)
        return self._resource(method, parsed, params, raw, req)

    def _resource(self, method, parsed, params, raw, req):
        api = self.server.api
        resource, namespace, name, sub = parsed
        if method == "GET" and name is None:
            if params.get("watch") in ("true", "1"):
                self._watch(resource, namespace, params)
                return None, None, None
            listed = api.list(resource, namespace, params)
            if tables.wants_table(self.headers.get("Accept")):
                return 200, self._table(resource, listed["items"], listed["metadata"], params), {}
            return 200, listed, {}
        if method == "POST" and name is None:
            return 201, api.create(resource, namespace, self._json_body(raw), req), {}
        if method == "DELETE" and name is None:
            return 200, api.delete_collection(resource, namespace, req, self._json_body(raw)), {}
        if name is None:
            raise errors.method_not_supported(resource, method.lower())
        if sub in (None, "status", "approval"):
            if method == "GET":
                obj = api.get(resource, namespace, name)
                if sub is None and tables.wants_table(self.headers.get("Accept")):
                    return 200, self._table(resource, [obj], {"resourceVersion": obj["metadata"].get(
                        "resourceVersion", "")}, params), {}
                return 200, obj, {}
            if method == "PUT":
                return 200, api.update(resource, namespace, name, self._json_body(raw), req, sub or ""), {}
            if method == "PATCH":
                ctype = self.headers.get("Content-Type", "")
                result = api.patch(resource, namespace, name, raw, ctype, req, sub or "")
                return 200, result, {}
            if method == "DELETE" and sub is None:
                result = api.delete(resource, namespace, name, req, self._json_body(raw))
                code = 202 if result.get("kind") != "Status" and result["metadata"].get("deletionTimestamp") \
                    and resource.kind != "Pod" else 200
                return code, result, {}
        if sub == "scale":
            if method == "GET":
                return 200, api.get_scale(resource, namespace, name), {}
            if method == "PUT":
                return 200, api.update_scale(resource, namespace, name, self._json_body(raw), req), {}
            if method == "PATCH":
                return 200, api.update_scale(resource, namespace, name, None, req, patch_body=raw,
                                             content_type=self.headers.get("Content-Type", "")), {}
        if resource.kind == "Pod" and not resource.group:
            if sub == "binding" and method == "POST":
                return 201, api.bind(namespace, name, self._json_body(raw), req), {}
            if sub == "eviction" and method == "POST":
                return 201, api.evict(namespace, name, self._json_body(raw), req), {}
            if sub == "log" and method == "GET":
                return 200, self._pod_log(namespace, name, params), {"Content-Type": "text/plain"}
        raise errors.method_not_supported(resource, method.lower())

    def _table(self, resource, objects, list_meta, params):
        """meta.k8s.io/v1 Table (tables.py) for `kubectl get` without -o."""
        api = self.server.api
        crd = None
        if resource.crd:
            crds = api.builtin("apiextensions.k8s.io", "customresourcedefinitions")
            crd = api.store.get(api.key(crds, "", resource.crd))
        return tables.table(resource, objects, list_meta, params.get("includeObject") or "Metadata", crd)

    # -- watch ----------------------------------------------------------------------
    def _watch(self, resource, namespace, params):
        """handlers/watch.go: serveWatch, with the watch cache's semantics for
        resourceVersion ("" / "0": current state as ADDED first), sendInitialEvents
        (ending with a bookmark annotated k8s.io/initial-events-end) and bookmarks."""
        from . import selectors
        api = self.server.api
        store = api.store
        label_reqs = selectors.parse_labels(params.get("labelSelector"))
        field_reqs = selectors.parse_fields(params.get("fieldSelector"), resource)
        timeout = float(params.get("timeoutSeconds") or WATCH_DEFAULT_TIMEOUT)
        deadline = time.monotonic() + timeout
        bookmarks = params.get("allowWatchBookmarks") in ("true", "1")
        rv_param = params.get("resourceVersion") or ""
        send_initial = params.get("sendInitialEvents") in ("true", "1")
        scope_ns = namespace if resource.namespaced else None

        def matches(key, obj):
            return key[0] == resource.group and key[1] == resource.plural and \
                (scope_ns is None or key[2] == scope_ns) and \
                selectors.match_labels(label_reqs, obj["metadata"].get("labels")) and \
                selectors.match_fields(field_reqs, obj)

        initial = []
        with store.lock:
            if rv_param in ("", "0") or send_initial:
                items, cursor = store.list(resource.group, resource.plural, scope_ns)
                initial = [("ADDED", o) for o in items if matches(api.key(resource, o["metadata"].get("namespace"),
                                                                          o["metadata"]["name"]), o)]
            else:
                cursor = int(rv_param)
                if store.events_after(cursor) is None:
                    raise errors.gone("too old resource version: %s (%s)" % (rv_param, store.first_rv - 1))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()

        def emit(event_type, obj):
            obj = api.versioned(resource, dict(obj)) if event_type != "BOOKMARK" else obj
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        def bookmark(rv, end=False):
            meta = {"resourceVersion": str(rv)}
            if end:
                meta["annotations"] = {"k8s.io/initial-events-end": "true"}
            emit("BOOKMARK", {"kind": resource.kind, "apiVersion": resource.group_version, "metadata": meta})

        try:
            for event_type, obj in initial:
                emit(event_type, obj)
            if send_initial and bookmarks:
                bookmark(cursor, end=True)
            last_bookmark = time.monotonic()
            while not self.server.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                store.wait(cursor, min(left, 1.0))
                events = store.events_after(cursor)
                if events is None:
                    break
                for rv, event_type, key, obj in events:
                    cursor = rv
                    if matches(key, obj):
                        emit(event_type, obj)
                if bookmarks and time.monotonic() - last_bookmark > 10:
                    bookmark(store.rv if not events else cursor)
                    last_bookmark = time.monotonic()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        self.close_connection = True

    # -- logs -----------------------------------------------------------------------
    def _pod_log(self, namespace, name, params):
        """pkg/registry/core/pod/rest/log.go: LogREST.Get -> pkg/registry/core/pod/strategy.go:
        LogLocation: https://<node InternalIP>:<kubelet port>/containerLogs/<ns>/<pod>/<container>."""
        api = self.server.api
        pods, nodes = api.builtin("", "pods"), api.builtin("", "nodes")
        pod = api.get(pods, namespace, name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = params.get("container") or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise errors.bad_request("a container name must be specified for pod %s, choose one of: %s"
                                     % (name, containers))
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise errors.bad_request('pod %s does not have a host assigned' % name)
        node = api.get(nodes, "", node_name)
        address = next((a["address"] for a in (node.get("status") or {}).get("addresses") or []
                        if a.get("type") == "InternalIP"), None)
        port = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get(
            "Port", 10250)
        if not address:
            raise errors.bad_request("node %s has no InternalIP" % node_name)
        query = {k: params[k] for k in ("tailLines", "timestamps", "sinceSeconds", "limitBytes", "previous")
                 if k in params}
        url = "/containerLogs/%s/%s/%s" % (namespace, name, container)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        # kube-apiserver does not verify the kubelet's serving certificate without
        # --kubelet-certificate-authority (pkg/kubelet/client/kubelet_client.go)
        context = ssl._create_unverified_context()
        conn = http.client.HTTPSConnection(address, int(port), context=context, timeout=30)
        try:
            conn.request("GET", url)
            response = conn.getresponse()
            data = response.read()
        except OSError as err:
            raise errors.ApiError(500, "InternalError", "Get \"https://%s:%s%s\": %s" % (address, port, url, err))
        finally:
            conn.close()
        if response.status >= 300:
            raise errors.ApiError(response.status, "BadRequest" if response.status == 400 else "InternalError",
                                  data.decode("utf-8", "replace").strip())
        return data


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, api, ssl_context=None, advertise="", verbose=False, audit_log=None):
        super().__init__(address, Handler)
        self.api = api
        self.audit_log = audit_log
        self.audit_lock = threading.Lock()
        if audit_log:
            os.makedirs(os.path.dirname(os.path.abspath(audit_log)), exist_ok=True)
        self.ssl_context = ssl_context
        self.advertise = advertise
        self.verbose = verbose
        self.stopping = False

    def server_close(self):
        super().server_close()
        self.api.store.close()   # the snapshot's pending write (storage.py)

    def get_request(self):
        sock, addr = super().get_request()
        if self.ssl_context is not None:
            sock = self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, (ssl.SSLError, ConnectionResetError, BrokenPipeError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def _micro(moment):
    """RFC 3339 with microseconds, as metav1.MicroTime marshals."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + ".%06dZ" % int((moment % 1) * 1e6)


def tls_context(cert_dir):
    """Serving certificate cert-dir/apiserver.{crt,key}; client certificates optional and
    verified against cert-dir/ca.crt (--client-ca-file)."""
    import os
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(cert_dir, "apiserver.crt"), os.path.join(cert_dir, "apiserver.key"))
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(os.path.join(cert_dir, "ca.crt"))
    context.set_alpn_protocols(["http/1.1"])
    return context
