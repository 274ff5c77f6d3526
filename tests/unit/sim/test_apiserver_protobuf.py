# SPDX-License-Identifier: Apache-2.0
"""The simulated API server's protobuf request decoding (tests/sim/kubegpu_sim/apiserver/
protobuf.py): the wire format, the apimachinery special types, bodies captured from the real
kubectl 1.35 / helm 4 (tests/fixtures/k8s/protobuf/), and protobuf bodies on the server's POST,
PUT, DELETE and eviction paths."""
from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import struct

import pytest

from kubegpu_sim.apiserver import protobuf
from kubegpu_sim.apiserver.errors import ApiError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "fixtures", "k8s", "protobuf")


def _fixture(name):
    with open(os.path.join(FIXTURES, name + ".bin"), "rb") as stream:
        return stream.read()


# -- a minimal encoder (protobuf.dev/programming-guides/encoding) ------------------------
def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len(num, payload):
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _int(num, value):
    return _varint(num << 3) + _varint(value)


def _entry(num, key, value):
    return _len(num, _len(1, key) + _len(2, value))


def _envelope(api_version, kind, inner):
    """runtime.Unknown (k8s.io/apimachinery/pkg/runtime/generated.proto) behind k8s\\x00."""
    return protobuf.MAGIC + _len(1, _len(1, api_version) + _len(2, kind)) + _len(2, inner) + _len(3, "") + \
        _len(4, "")


# -- wire format -----------------------------------------------------------------------
def test_varints_and_wire_types():
    assert protobuf.read_varint(b"\xac\x02", 0) == (300, 2)
    assert protobuf.read_varint(b"\x01", 0) == (1, 1)
    fields = list(protobuf.iter_fields(
        _int(1, 150) + bytes([2 << 3 | 1]) + struct.pack("<d", 1.5) + bytes([3 << 3 | 5]) +
        struct.pack("<f", 0.25) + _len(4, b"hi")))
    assert [(n, w) for n, w, _v in fields] == [(1, 0), (2, 1), (3, 5), (4, 2)]
    assert protobuf._scalar("double", 1, fields[1][2]) == 1.5
    assert protobuf._scalar("float", 5, fields[2][2]) == 0.25
    assert fields[3][2] == b"hi"
    # a negative int32/int64 is a sign-extended 10-byte varint
    assert protobuf._scalar("int32", 0, protobuf.read_varint(_varint(-5), 0)[0]) == -5
    assert protobuf._scalar("int64", 0, protobuf.read_varint(_varint(-(1 << 40)), 0)[0]) == -(1 << 40)
    assert protobuf._scalar("sint64", 0, 3) == -2
    for bad in (b"\x80", _len(1, b"abc")[:-1], bytes([1 << 3 | 1]) + b"\x00" * 3, bytes([1 << 3 | 3])):
        with pytest.raises(protobuf.DecodeError):
            list(protobuf.iter_fields(bad))


def test_packed_and_unpacked_repeated_unknown_fields_skipped():
    # core/v1 PodSecurityContext supplementalGroups=4 (repeated int64), packed and one by one
    packed = _len(4, _varint(1) + _varint(2) + _varint(300))
    unpacked = _int(4, 1) + _int(4, 2) + _int(4, 300)
    unknown = _int(999, 7) + _len(998, b"\x00\x01") + _varint(997 << 3 | 5) + b"\0\0\0\0"
    for body in (packed, unpacked + unknown):
        assert protobuf.decode_message(body, "core.v1.PodSecurityContext") == {"supplementalGroups": [1, 2, 300]}


def test_special_types():
    # meta/v1 Time {seconds, nanos} -> RFC 3339; zero time is left out (omitempty)
    meta = _len(1, "x") + _len(8, _int(1, 1700000000)) + _len(9, _int(1, 1700000030) + _int(2, 5))
    assert protobuf.decode_message(meta, "meta.v1.ObjectMeta") == {
        "name": "x", "creationTimestamp": "2023-11-14T22:13:20Z", "deletionTimestamp": "2023-11-14T22:13:50Z"}
    assert protobuf.decode_message(_len(1, "x") + _len(8, b""), "meta.v1.ObjectMeta") == {"name": "x"}
    # resource.Quantity {string=1} in ResourceRequirements' map<string, Quantity>;
    # intstr.IntOrString {type, intVal, strVal}; Duration as Go's time.Duration.String()
    resources = _entry(1, "nvidia.com/gpu", _len(1, "1")) + _entry(2, "memory", _len(1, "128Mi"))
    assert protobuf.decode_message(resources, "core.v1.ResourceRequirements") == {
        "limits": {"nvidia.com/gpu": "1"}, "requests": {"memory": "128Mi"}}
    port = _len(4, _int(1, 1) + _len(3, "http")) + _int(3, 80)
    assert protobuf.decode_message(port, "core.v1.ServicePort") == {"targetPort": "http", "port": 80}
    assert protobuf._special("intstr.IntOrString", _int(1, 0) + _int(2, 8080)) == 8080
    assert protobuf._go_duration(90 * 10**9) == "1m30s"
    assert protobuf._go_duration(3600 * 10**9) == "1h0m0s"
    assert protobuf._go_duration(1500000) == "1.5ms"
    # `json:",inline"` members (core/v1 Volume's VolumeSource) go into the parent
    volume = _len(1, "data") + _len(2, _len(2, _len(1, "Memory")))
    assert protobuf.decode_message(volume, "core.v1.Volume") == {"name": "data", "emptyDir": {"medium": "Memory"}}
    # a pointer's zero value is kept (DeleteOptions.gracePeriodSeconds=0), a non-pointer
    # omitempty one is not (Container.stdin=false)
    assert protobuf.decode_message(_int(1, 0), "meta.v1.DeleteOptions") == {"gracePeriodSeconds": 0}
    assert protobuf.decode_message(_len(1, "c") + _int(16, 0), "core.v1.Container") == {"name": "c"}


def test_envelope_errors():
    with pytest.raises(protobuf.DecodeError):
        protobuf.unwrap(b"{}")
    with pytest.raises(ApiError) as err:
        protobuf.decode(_envelope("example.com/v1", "Widget", b""))
    assert err.value.code == 415
    gzipped = protobuf.MAGIC + _len(1, _len(1, "v1") + _len(2, "Secret")) + _len(3, "gzip")
    with pytest.raises(protobuf.DecodeError):
        protobuf.unwrap(gzipped)


# -- bodies captured from the real clients ------------------------------------------------
CAPTURED = {
    "kubectl-create-namespace": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "capns"},
                                 "spec": {}, "status": {}},
    "kubectl-create-secret-generic": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                                      "data": {"password": base64.b64encode("s3crét".encode()).decode()},
                                      "type": "Opaque"},
    "kubectl-create-configmap-binary": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm1"},
                                        "data": {"k": "v"},
                                        "binaryData": {"blob.bin": base64.b64encode(b"\0\1\2\xff\xfe").decode()}},
    "kubectl-create-job": {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j1"}, "spec": {
        "template": {"metadata": {}, "spec": {"containers": [{"name": "j1", "image": "busybox:1.36", "command": [
            "sh", "-c", "echo hi"], "resources": {}}], "restartPolicy": "Never"}}}, "status": {}},
    "kubectl-create-deployment": {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {
        "name": "d1", "labels": {"app": "d1"}}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d1"}},
                                                         "strategy": {}, "template": {
            "metadata": {"labels": {"app": "d1"}}, "spec": {"containers": [{
                "name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}], "resources": {}}]}}},
        "status": {}},
    "kubectl-create-service-clusterip": {"apiVersion": "v1", "kind": "Service", "metadata": {
        "name": "svc1", "labels": {"app": "svc1"}}, "spec": {
            "ports": [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}],
            "selector": {"app": "svc1"}, "type": "ClusterIP"},
        "status": {"loadBalancer": {}}},
    "kubectl-create-pdb": {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb1"},
                           "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "x"}}},
                           # PodDisruptionBudgetStatus' counters have no omitempty (policy/v1 types.go)
                           "status": {"currentHealthy": 0, "desiredHealthy": 0, "disruptionsAllowed": 0,
                                      "expectedPods": 0}},
    "kubectl-create-role": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r1"},
                            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
    "helm-release-secret-delete": {"apiVersion": "v1", "kind": "DeleteOptions"},
}


@pytest.mark.parametrize("name", sorted(CAPTURED))
def test_captured_bodies(name):
    assert protobuf.decode(_fixture(name)) == CAPTURED[name]


def test_captured_helm_release_secret():
    secret = protobuf.decode(_fixture("helm-release-secret-create"))
    assert secret["type"] == "helm.sh/release.v1"
    assert secret["metadata"]["name"] == "sh.helm.release.v1.rel.v1"
    assert secret["metadata"]["labels"]["owner"] == "helm" and secret["metadata"]["labels"]["status"] == \
        "pending-install"
    # data is base64 of helm's own base64(gzip(release JSON)) (helm pkg/storage/driver/util.go: encodeRelease)
    inner = base64.b64decode(base64.b64decode(secret["data"]["release"]))
    assert inner[:2] == b"\x1f\x8b"


# -- on the server --------------------------------------------------------------------
def _raw(cluster, method, path, body, content_type=protobuf.CONTENT_TYPE):
    context = ssl.create_default_context(cafile=os.path.join(cluster.certs, "ca.crt"))
    context.load_cert_chain(os.path.join(cluster.certs, "admin.crt"), os.path.join(cluster.certs, "admin.key"))
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=context, timeout=10)
    conn.request(method, path, body=body, headers={"Content-Type": content_type,
                                                   "Accept": "application/vnd.kubernetes.protobuf, */*"})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data) if data else None


def test_protobuf_bodies_on_the_server(cluster):
    status, ns = _raw(cluster, "POST", "/api/v1/namespaces", _fixture("kubectl-create-namespace"))
    assert status == 201 and ns["metadata"]["name"] == "capns" and ns["spec"]["finalizers"] == ["kubernetes"]
    status, cm = _raw(cluster, "POST", "/api/v1/namespaces/capns/configmaps", _fixture("kubectl-create-configmap-binary"))
    assert status == 201 and cm["binaryData"] == {"blob.bin": "AAEC//4="}
    # PUT (helm's release update): a protobuf Secret carrying the resourceVersion
    status, _secret = _raw(cluster, "POST", "/api/v1/namespaces/capns/secrets", _fixture("kubectl-create-secret-generic"))
    assert status == 201
    api = cluster.client()
    rv = api.get("/api/v1/namespaces/capns/secrets/s1")["metadata"]["resourceVersion"]
    update = _envelope("v1", "Secret", _len(1, _len(1, "s1") + _len(6, rv)) + _entry(2, "k", b"\x00v") +
                       _len(3, "Opaque") + _int(5, 1))
    status, secret = _raw(cluster, "PUT", "/api/v1/namespaces/capns/secrets/s1", update)
    assert status == 200, secret
    assert secret["data"] == {"k": "AHY="} and secret["immutable"] is True
    # DELETE with protobuf DeleteOptions {gracePeriodSeconds=0, preconditions{uid}}
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "pbnode"}})
    pod = api.create("/api/v1/namespaces/capns/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "pbnode", "containers": [{"name": "c", "image": "busybox"}]}})
    wrong = _envelope("v1", "DeleteOptions", _int(1, 0) + _len(2, _len(1, "not-the-uid")))
    status, body = _raw(cluster, "DELETE", "/api/v1/namespaces/capns/pods/p", wrong)
    assert status == 409 and "Precondition failed" in body["message"]
    right = _envelope("v1", "DeleteOptions", _int(1, 0) + _len(2, _len(1, pod["metadata"]["uid"])) +
                      _len(4, "Background"))
    status, body = _raw(cluster, "DELETE", "/api/v1/namespaces/capns/pods/p", right)
    assert status == 200
    assert api.list("/api/v1/namespaces/capns/pods") == []
    # eviction in protobuf: policy/v1 Eviction {metadata, deleteOptions{dryRun=[All]}}
    api.create("/api/v1/namespaces/capns/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "q"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

    def eviction(options):
        return _envelope("policy/v1", "Eviction", _len(1, _len(1, "q") + _len(3, "capns")) + _len(2, options))

    for query in ("?dryRun=All", ""):   # eviction.go: propagateDryRun
        status, body = _raw(cluster, "POST", "/api/v1/namespaces/capns/pods/q/eviction" + query,
                            eviction(_len(5, "All")))
        assert status == 201 and body["status"] == "Success"
        assert [p["metadata"]["name"] for p in api.list("/api/v1/namespaces/capns/pods")] == ["q"]
    status, body = _raw(cluster, "POST", "/api/v1/namespaces/capns/pods/q/eviction", eviction(b""))
    assert status == 201, body
    assert api.list("/api/v1/namespaces/capns/pods") == []
    # malformed protobuf: 400, not 500
    status, body = _raw(cluster, "POST", "/api/v1/namespaces/capns/configmaps", protobuf.MAGIC + b"\x0a\x05ab")
    assert status == 400 and "protobuf" in body["message"]


def test_a_protobuf_create_is_audited_with_the_objects_name(tmp_path, monkeypatch):
    """audit/request.go LogRequestObject names a create's objectRef from the decoded object,
    whatever its encoding: helm 4 creates its release Secret in protobuf, and the day-2 tests
    count those creates by name in the audit log."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("kubegpu_sim_unit_conftest",
                                                  os.path.join(os.path.dirname(os.path.abspath(__file__)), "conftest.py"))
    conftest = importlib.util.module_from_spec(spec)    # tests/unit/sim/conftest.py: the Cluster of the fixtures
    spec.loader.exec_module(conftest)
    log = tmp_path / "audit.log"
    monkeypatch.setenv("KUBEGPU_SIM_AUDIT_LOG_PATH", str(log))
    cluster = conftest.Cluster(tmp_path / "apiserver").start()
    try:
        status, _body = _raw(cluster, "POST", "/api/v1/namespaces/default/secrets", _fixture("helm-release-secret-create"))
        assert status == 201
    finally:
        cluster.stop()
    events = [json.loads(line) for line in log.read_text().splitlines()]
    creates = [e for e in events if e["objectRef"]["resource"] == "secrets" and e["verb"] == "create"]
    assert [e["objectRef"].get("name") for e in creates] == ["sh.helm.release.v1.rel.v1"]
    assert "requestObject" not in creates[0]    # Secrets stay at Metadata level
