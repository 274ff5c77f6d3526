# SPDX-License-Identifier: Apache-2.0
"""The simulated API server driven by the REAL kubectl 1.35 and helm 4 (tests/sim/README.md)."""
from __future__ import annotations

import base64
import datetime
import json
import os
import ssl
import http.client
import threading
import time


DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
"""


def _write(cluster, name, text):
    path = os.path.join(cluster.workdir, name)
    with open(path, "w") as stream:
        stream.write(text)
    return path


def _rv(cluster, *what):
    return cluster.kubectl("get", *what, "-o", "jsonpath={.metadata.resourceVersion}").stdout


def test_discovery_and_defaults(cluster):
    out = cluster.kubectl("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.35.4"
    names = cluster.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= set(names)
    assert cluster.kubectl("get", "svc", "kubernetes", "-o", "jsonpath={.spec.clusterIP}").stdout == "10.96.0.1"
    assert cluster.kubectl("get", "pc", "system-node-critical", "-o", "jsonpath={.value}").stdout == "2000001000"
    resources = cluster.kubectl("api-resources", "-o", "name").stdout.split()
    assert {"pods", "daemonsets.apps", "jobs.batch", "customresourcedefinitions.apiextensions.k8s.io",
            "deviceclasses.resource.k8s.io", "leases.coordination.k8s.io"} <= set(resources)


def test_server_side_apply_idempotent_and_diff(cluster):
    path = _write(cluster, "deploy.yaml", DEPLOY)
    cluster.kubectl("apply", "--server-side", "-f", path)
    first = _rv(cluster, "deploy", "web")
    cluster.kubectl("apply", "--server-side", "-f", path)
    assert _rv(cluster, "deploy", "web") == first
    assert cluster.kubectl("diff", "--server-side", "-f", path, check=False).returncode == 0
    changed = _write(cluster, "deploy2.yaml", DEPLOY.replace("replicas: 2", "replicas: 3"))
    diff = cluster.kubectl("diff", "--server-side", "-f", changed, check=False)
    assert diff.returncode == 1 and "+  replicas: 3" in diff.stdout
    assert _rv(cluster, "deploy", "web") == first      # dry-run stored nothing
    ports = json.loads(cluster.kubectl("get", "deploy", "web", "-o",
                                       "jsonpath={.spec.template.spec.containers[0].ports}").stdout)
    assert ports == [{"containerPort": 80, "protocol": "TCP"}]
    # another manager's change to an applied field conflicts unless forced
    cluster.kubectl("scale", "deploy", "web", "--replicas=5")
    conflict = cluster.kubectl("apply", "--server-side", "-f", path, check=False)
    assert conflict.returncode != 0 and "conflict" in conflict.stderr.lower()
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", path)
    assert cluster.kubectl("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "2"


def test_client_side_apply_and_strict_validation(cluster):
    path = _write(cluster, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: '1'}\n")
    cluster.kubectl("apply", "-f", path)
    cluster.kubectl("apply", "-f", _write(cluster, "cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: "
                                          "{name: cfg}\ndata: {b: '2'}\n"))
    assert json.loads(cluster.kubectl("get", "cm", "cfg", "-o", "jsonpath={.data}").stdout) == {"b": "2"}
    bad = _write(cluster, "bad.yaml", DEPLOY.replace("name: web,", "name: bad,").replace(
        "replicas: 2", "replicas: 2\n  foo: 1"))
    created = cluster.kubectl("create", "-f", bad, check=False)
    assert created.returncode != 0
    assert 'strict decoding error: unknown field "spec.foo"' in created.stderr
    applied = cluster.kubectl("apply", "--server-side", "-f", bad, check=False)
    assert applied.returncode != 0 and ".spec.foo: field not declared in schema" in applied.stderr
    job = _write(cluster, "job.yaml", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n"
                 "    spec:\n      containers: [{name: c, image: busybox}]\n")
    invalid = cluster.kubectl("create", "-f", job, check=False)
    assert "Unsupported value" in invalid.stderr and "restartPolicy" in invalid.stderr
    missing = cluster.kubectl("get", "job", "nope", check=False)
    assert 'Error from server (NotFound): jobs.batch "nope" not found' in missing.stderr


def test_label_annotate_taint_cordon(cluster):
    api = cluster.client()
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
    cluster.kubectl("label", "node", "n1", "nvidia.com/gpu.present=true")
    cluster.kubectl("annotate", "node", "n1", "kubegpu/x=y")
    cluster.kubectl("taint", "node", "n1", "dedicated=gpu:NoSchedule")
    cluster.kubectl("cordon", "n1")
    node = api.get("/api/v1/nodes/n1")
    assert node["metadata"]["labels"]["nvidia.com/gpu.present"] == "true"
    assert node["metadata"]["annotations"]["kubegpu/x"] == "y"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    assert node["spec"]["unschedulable"] is True
    cluster.kubectl("uncordon", "n1")
    cluster.kubectl("taint", "node", "n1", "dedicated-")
    node = api.get("/api/v1/nodes/n1")
    assert not node["spec"].get("unschedulable") and not node["spec"].get("taints")
    labelled = cluster.kubectl("get", "nodes", "-l", "nvidia.com/gpu.present in (true)", "-o",
                               "jsonpath={.items[*].metadata.name}").stdout
    assert labelled == "n1"


def _kubelet(api, node, stop):
    """Confirm deletions of pods on `node` the way a kubelet does (DELETE, grace 0)."""
    while not stop.is_set():
        for pod in api.list("/api/v1/pods", params={"fieldSelector": "spec.nodeName=%s" % node}):
            if pod["metadata"].get("deletionTimestamp"):
                api.delete("/api/v1/namespaces/%s/pods/%s" % (pod["metadata"]["namespace"], pod["metadata"]["name"]),
                           body={"gracePeriodSeconds": 0})
        time.sleep(0.2)


def test_drain_with_pdb(cluster):
    api = cluster.client()
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n2"}})
    for name in ("p1", "p2"):
        api.create("/api/v1/namespaces/default/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "drain"}},
            "spec": {"nodeName": "n2", "containers": [{"name": "c", "image": "busybox"}]}})
        api.request("PATCH", "/api/v1/namespaces/default/pods/%s/status" % name,
                    body={"status": {"phase": "Running"}}, content_type="application/merge-patch+json")
    api.create("/apis/policy/v1/namespaces/default/poddisruptionbudgets", {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "pdb"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "drain"}}}})
    # the disruption controller's status (controller_manager.py: sync_pdbs, kubernetes
    # pkg/controller/disruption/disruption.go: updatePdbStatus); without it the eviction
    # subresource answers 429 with Retry-After 10 ("still being processed"), which client-go
    # retries 10 times inside one request
    api.request("PUT", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/pdb/status", body=dict(
        api.get("/apis/policy/v1/namespaces/default/poddisruptionbudgets/pdb"),
        status={"currentHealthy": 2, "desiredHealthy": 2, "disruptionsAllowed": 0, "expectedPods": 2,
                "observedGeneration": 1}))
    stop = threading.Event()
    thread = threading.Thread(target=_kubelet, args=(api, "n2", stop), daemon=True)
    thread.start()
    try:
        blocked = cluster.kubectl("drain", "n2", "--force", "--timeout=3s", check=False)
        assert blocked.returncode != 0
        assert "disruption budget" in blocked.stderr
        cluster.kubectl("delete", "pdb", "pdb")
        cluster.kubectl("drain", "n2", "--force", "--timeout=20s")
        assert api.list("/api/v1/pods", params={"fieldSelector": "spec.nodeName=n2"}) == []
    finally:
        stop.set()


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
          status:
            type: object
            properties:
              ready: {type: boolean}
"""


def test_crd_and_custom_resources(cluster):
    cluster.kubectl("apply", "--server-side", "-f", _write(cluster, "crd.yaml", CRD))
    cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=20s")
    cr = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 3, extra: {any: 1}}\n"
    cluster.kubectl("apply", "--server-side", "-f", _write(cluster, "w1.yaml", cr))
    cluster.kubectl("apply", "--server-side", "-f", _write(cluster, "w1.yaml", cr))
    assert cluster.kubectl("diff", "--server-side", "-f", os.path.join(cluster.workdir, "w1.yaml"),
                           check=False).returncode == 0
    assert cluster.kubectl("get", "wd", "w1", "-o", "jsonpath={.spec.extra.any}").stdout == "1"
    bad = cluster.kubectl("create", "-f", _write(cluster, "w2.yaml", cr.replace("w1", "w2").replace(
        "size: 3", "size: 3, color: red")), check=False)
    assert bad.returncode != 0 and 'unknown field "spec.color"' in bad.stderr
    cluster.kubectl("patch", "widget", "w1", "--type=merge", "-p", '{"spec":{"size":4}}')
    cluster.kubectl("patch", "widget", "w1", "--subresource=status", "--type=merge", "-p", '{"status":{"ready":true}}')
    got = json.loads(cluster.kubectl("get", "widget", "w1", "-o", "json").stdout)
    assert got["spec"]["size"] == 4 and got["status"] == {"ready": True} and got["metadata"]["generation"] == 2


def test_jobs_delete_wait_and_watch(cluster):
    for name in ("j1", "j2"):
        cluster.kubectl("create", "job", name, "--image=busybox")
    job = json.loads(cluster.kubectl("get", "job", "j1", "-o", "json").stdout)
    assert job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == job["metadata"]["uid"]
    assert job["spec"]["template"]["metadata"]["labels"]["job-name"] == "j1"
    cluster.kubectl("label", "job", "j1", "j2", "grp=x")
    events = []
    api = cluster.client()
    watcher = threading.Thread(target=lambda: events.extend(api.watch(
        "/apis/batch/v1/namespaces/default/jobs", params={"fieldSelector": "metadata.name=j1"}, timeout_seconds=5)))
    watcher.start()
    cluster.kubectl("delete", "job", "-l", "grp=x", "--wait=true", "--timeout=20s")
    watcher.join()
    assert [e["type"] for e in events][:1] == ["ADDED"] and events[-1]["type"] == "DELETED"
    assert cluster.kubectl("get", "jobs", "-o", "jsonpath={.items[*].metadata.name}").stdout == ""


def _table_row(out, name):
    lines = out.splitlines()
    return lines[0].split(), next(line.split() for line in lines[1:] if line.split()[0] == name)


def test_get_prints_server_side_tables(cluster):
    """`kubectl get` without -o asks for a meta.k8s.io/v1 Table (apiserver/tables.py)."""
    api = cluster.client()
    api.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
        "name": "tn", "labels": {"node-role.kubernetes.io/control-plane": ""}}})
    info = {k: "x" for k in ("machineID", "systemUUID", "bootID", "kernelVersion", "osImage",
                             "containerRuntimeVersion", "kubeProxyVersion", "operatingSystem", "architecture")}
    api.request("PATCH", "/api/v1/nodes/tn/status", body={"status": {
        "conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": dict(info, kubeletVersion="v1.35.4")}},
        content_type="application/merge-patch+json")
    cluster.kubectl("cordon", "tn")
    header, row = _table_row(cluster.kubectl("get", "nodes").stdout, "tn")
    assert header == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert row[1:3] == ["Ready,SchedulingDisabled", "control-plane"] and row[4] == "v1.35.4"
    api.create("/api/v1/namespaces/default/pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tp"},
                                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    header, row = _table_row(cluster.kubectl("get", "pods").stdout, "tp")
    assert header == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] and row[1:4] == ["0/1", "Pending", "0"]
    cluster.kubectl("create", "job", "tj", "--image=busybox")
    header, row = _table_row(cluster.kubectl("get", "jobs").stdout, "tj")
    assert header == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"] and row[1:3] == ["Running", "0/1"]
    assert cluster.kubectl("get", "ns", "default", "--no-headers").stdout.split()[:2] == ["default", "Active"]
    cluster.kubectl("delete", "job", "tj")
    cluster.kubectl("delete", "pod", "tp", "--grace-period=0", "--force")


CHART = {
    "Chart.yaml": "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\nmessage: hello\n",
    "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
                         "data:\n  message: {{ .Values.message | quote }}\n",
    "templates/deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n"
                             "spec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: tiny}}\n"
                             "  template:\n    metadata: {labels: {app: tiny}}\n    spec:\n      containers:\n"
                             "      - {name: c, image: 'busybox:1.36'}\n",
}


def test_helm_lifecycle(cluster):
    chart = os.path.join(cluster.workdir, "tiny")
    for name, text in CHART.items():
        os.makedirs(os.path.dirname(os.path.join(chart, name)), exist_ok=True)
        _write(cluster, os.path.join("tiny", name), text)
    cluster.helm("install", "rel", chart, "-n", "default")
    assert cluster.kubectl("get", "cm", "rel-cm", "-o", "jsonpath={.data.message}").stdout == "hello"
    cluster.helm("upgrade", "rel", chart, "-n", "default", "--set", "message=bye", "--set", "replicas=2")
    assert cluster.kubectl("get", "cm", "rel-cm", "-o", "jsonpath={.data.message}").stdout == "bye"
    assert cluster.kubectl("get", "deploy", "rel", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    assert "rel" in cluster.helm("list", "-n", "default", "-q").stdout.split()
    assert "message: bye" in cluster.helm("get", "values", "rel", "-n", "default").stdout
    cluster.helm("uninstall", "rel", "-n", "default", "--wait")
    assert cluster.kubectl("get", "cm", "rel-cm", check=False).returncode != 0


def _raw_get(cluster, path, token=None):
    context = ssl.create_default_context(cafile=os.path.join(cluster.certs, "ca.crt"))
    conn = http.client.HTTPSConnection("127.0.0.1", cluster.port, context=context, timeout=10)
    headers = {"Authorization": "Bearer " + token} if token else {}
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, body


def _token_secret(token_id, secret, expiration):
    data = {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true",
            "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token", "expiration": expiration}
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-" + token_id, "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def test_bootstrap_tokens_and_anonymous(cluster):
    api = cluster.client()
    later = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    api.create("/api/v1/namespaces/kube-system/secrets", _token_secret("abcdef", "0123456789abcdef", later))
    api.create("/api/v1/namespaces/kube-system/secrets", _token_secret("zzzzzz", "0123456789abcdef",
                                                                       "2020-01-01T00:00:00Z"))
    api.create("/api/v1/namespaces/kube-public/configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                             "metadata": {"name": "cluster-info"},
                                                             "data": {"kubeconfig": "x"}})
    assert _raw_get(cluster, "/api/v1/namespaces/default/pods", "abcdef.0123456789abcdef")[0] == 200
    assert _raw_get(cluster, "/api/v1/namespaces/default/pods", "abcdef.ffffffffffffffff")[0] == 401
    assert _raw_get(cluster, "/api/v1/namespaces/default/pods", "zzzzzz.0123456789abcdef")[0] == 401
    status, body = _raw_get(cluster, "/api/v1/namespaces/default/pods")
    assert status == 401 and json.loads(body)["reason"] == "Unauthorized"
    assert _raw_get(cluster, "/api/v1/namespaces/kube-public/configmaps/cluster-info")[0] == 200
    assert _raw_get(cluster, "/version")[0] == 200
    token_conf = cluster.write_kubeconfig(os.path.join(cluster.workdir, "token.conf"),
                                          {"token": "abcdef.0123456789abcdef"})
    out = cluster.kubectl("--kubeconfig", token_conf, "get", "ns", "default", "-o", "name").stdout
    assert out.strip() == "namespace/default"


def test_restart_keeps_state(cluster):
    cluster.kubectl("create", "cm", "persist", "--from-literal=k=v")
    cluster.stop()
    cluster.start()
    assert cluster.kubectl("get", "cm", "persist", "-o", "jsonpath={.data.k}").stdout == "v"


def test_a_status_write_gets_a_new_resource_version_and_reaches_watchers(cluster):
    """A write through /status changes the object, so it takes a new resourceVersion and
    watchers from the old one see it (etcd3/store.go GuaranteedUpdate). helm 4's --wait
    (a watch-list informer) depends on it to see a Deployment become ready."""
    cluster.kubectl("create", "namespace", "rvs")
    cluster.kubectl("create", "deployment", "d", "--image=busybox", "-n", "rvs")
    before = json.loads(cluster.kubectl("get", "deploy", "d", "-n", "rvs", "-o", "json").stdout)
    old_rv = before["metadata"]["resourceVersion"]
    cluster.kubectl("patch", "deploy", "d", "-n", "rvs", "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"readyReplicas": 1, "observedGeneration": 1}}))
    after = json.loads(cluster.kubectl("get", "deploy", "d", "-n", "rvs", "-o", "json").stdout)
    assert int(after["metadata"]["resourceVersion"]) > int(old_rv)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]    # status only
    watched = cluster.kubectl("get", "--raw", "/apis/apps/v1/namespaces/rvs/deployments?watch=true"
                              "&resourceVersion=%s&timeoutSeconds=1" % old_rv).stdout
    events = [json.loads(line) for line in watched.splitlines()]
    assert [(e["type"], e["object"]["status"].get("readyReplicas")) for e in events] == [("MODIFIED", 1)]
    assert events[0]["object"]["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
