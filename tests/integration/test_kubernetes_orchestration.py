# SPDX-License-Identifier: Apache-2.0
"""Orchestration of the kubernetes role against the SIMULATED control plane.

Three systemd test hosts (cp1, cp2: control planes; w1: worker) get the simulation's
kubelet/kubeadm packages and the REAL kubectl through the role's air-gap path
(tests/sim/README.md); os_prereqs and container_runtime run first, for real, because
the simulated kubeadm's preflight and kubelet ask the host's containerd and sysctls as
the real ones do. What happened is read from the cluster: the REAL kubectl on cp1 and
the simulated API server's audit log (one audit.k8s.io/v1 Event per write, in order,
with its user). This proves the ordering, guards, retry and secret handling of
playbooks/kubernetes.yml against the simulation; it does NOT prove that a real cluster
comes up (docs/kubernetes.md says how to check that).

Asserts:
- kubeadm init runs exactly once (one kubeadm-config ConfigMap, ever), on cp1;
- the join token (ttl 15m) and the certificate upload come before cp2's join, cp2
  joins before w1;
- w1's first join fails half-way and is reset and retried once. The failure is
  injected the way an administrator could cause it: w1's first kubelet client
  certificate request is denied with the real kubectl (a PUT of the approval subresource; the
  controller manager is stopped from cp2's registration until the denial, so its
  auto-approver cannot approve the request first, and started again right after);
- the join configuration is removed from the nodes after the joins; cp2 received the
  control-plane certificates (its CA key is cp1's: the certificate key reached it);
- a second run joins nothing, writes nothing to the cluster and reports changed=0;
- no bootstrap token or certificate key appears in Ansible's output (run with -v).
"""
from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"cp1": "kubegpu-k8s-cp1", "cp2": "kubegpu-k8s-cp2", "w1": "kubegpu-k8s-w1"}
ADMIN = "kubernetes-admin"

# The kubernetes role needs no GPU facts; a small fact subset keeps the run short on
# busy 2-core CI machines.
FAST_FACTS = {"ANSIBLE_FACTS_MODULES": "ansible.builtin.setup", "ANSIBLE_GATHER_SUBSET": "!all,!min,distribution",
              "ANSIBLE_GATHER_TIMEOUT": "120"}

# Runs on cp1 in the background during the first kubernetes.yml: once cp2 is registered,
# stop the controller manager, deny the next certificate request (w1's first join) with
# the real kubectl, start the controller manager again. Gives up after 10 minutes. The
# denial is the PUT of the approval subresource that `kubectl certificate deny` makes,
# sent with `kubectl replace --raw` as JSON: `kubectl certificate deny` itself sends
# protobuf, which the simulated API server does not decode for CertificateSigningRequest.
DENY_W1_FIRST_CSR = r"""
K="kubectl --kubeconfig /etc/kubernetes/admin.conf"
end=$(( $(date +%s) + 600 ))
until [ -e /etc/kubernetes/admin.conf ] && command -v kubectl >/dev/null && $K get node cp2 >/dev/null 2>&1; do
  [ "$(date +%s)" -ge "$end" ] && exit 1; sleep 0.5; done
systemctl stop kube-controller-manager-sim && echo "controller manager stopped" >> /root/inject.log
pending() { $K get csr -o json | python3 -c 'import json, sys
print(" ".join(c["metadata"]["name"] for c in json.load(sys.stdin)["items"] if not (c.get("status") or {}).get("conditions")))'; }
until name=$(pending) && [ -n "$name" ]; do [ "$(date +%s)" -ge "$end" ] && break; sleep 0.5; done
deny() { $K get csr "$1" -o json | python3 -c 'import json, sys
c = json.load(sys.stdin)
c.setdefault("status", {}).setdefault("conditions", []).append(
    {"type": "Denied", "status": "True", "reason": "KubegpuTest", "message": "denied by the test (injected failure)"})
print(json.dumps(c))' > /root/deny.json &&
  $K replace --raw "/apis/certificates.k8s.io/v1/certificatesigningrequests/$1/approval" -f /root/deny.json; }
[ -n "$name" ] && deny $name >> /root/inject.log 2>&1 && echo "denied $name" >> /root/inject.log
systemctl start kube-controller-manager-sim && echo "controller manager started" >> /root/inject.log
"""


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def docker_exec(container, *cmd, check=True):
    return docker("exec", container, *cmd, check=check).stdout


@pytest.fixture(scope="module")
def fleet(sim_k8s_hosts, sim_helpers, tmp_path_factory, ansible_playbook):
    """Three systemd hosts with os_prereqs and containerd done; no Kubernetes yet."""
    cluster = sim_k8s_hosts(HOSTS, first_cp="cp1")
    inventory = _inventory(tmp_path_factory.mktemp("k8s"), sim_helpers.inventory_vars)
    playbook = inventory.parent / "base.yml"
    playbook.write_text(yaml.safe_dump([{"ansible.builtin.import_playbook": "kubegpu.cluster.os_prereqs"},
                                        {"ansible.builtin.import_playbook": "kubegpu.cluster.container_runtime"}]))
    base = ansible_playbook(str(playbook), inventory, timeout=600)
    assert base.returncode == 0, (base.stdout + base.stderr)[-6000:]
    return cluster, inventory


def _inventory(directory, inventory_vars):
    cp1_ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    HOSTS["cp1"]).stdout.strip()
    data = {"all": {
        "vars": inventory_vars(ansible_become=False, kubernetes_control_plane_endpoint="%s:6443" % cp1_ip),
        "children": {
            "kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]},
                                             "cp2": {"ansible_host": HOSTS["cp2"]}}},
            "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]}}},
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
        }}}
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def _recap(output):
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}


def _task_results(output, task):
    """The result lines ('changed: [w1]', ...) of a task, by its name."""
    found = []
    for block in output.split("TASK [")[1:]:
        header, _sep, rest = block.partition("]")
        if header.split(" : ")[-1].strip() == task:
            found += re.findall(r"^(ok|changed|skipping|fatal|failed): \[([^\]]+)\]", rest, re.M)
    return found


def _index(events, pred, what):
    for index, event in enumerate(events):
        if pred(event):
            return index
    raise AssertionError("no %s in the audit log" % what)


def _is(event, resource, verb, name=None, user_prefix=None, sub=None):
    ref = event["objectRef"]
    return (ref.get("resource") == resource and event["verb"] == verb and ref.get("subresource") == sub
            and (name is None or ref.get("name") == name) and event["responseStatus"]["code"] < 300
            and (user_prefix is None or event["user"]["username"].startswith(user_prefix))
            and "annotations" not in event)


def _bootstrap_tokens(cluster):
    """Every bootstrap token in the cluster: (secret, token 'id.secret', description)."""
    out = []
    for secret in cluster.json("get", "secrets", "-n", "kube-system",
                               "--field-selector", "type=bootstrap.kubernetes.io/token")["items"]:
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        out.append((secret, "%s.%s" % (data["token-id"], data["token-secret"]), data.get("description", "")))
    return out


def _timestamp(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def test_init_join_rerun_and_secrets(fleet, ansible_playbook):
    cluster, inventory = fleet
    docker("exec", "-d", HOSTS["cp1"], "sh", "-c", DENY_W1_FIRST_CSR)

    first = ansible_playbook("playbooks/kubernetes.yml", inventory, "-v", timeout=600, **FAST_FACTS)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-6000:]
    events = cluster.audit()

    # init once, on cp1: the ConfigMap kubeadm init uploads exists once, ever
    inits = [e for e in events if _is(e, "configmaps", "create", name="kubeadm-config")]
    assert len(inits) == 1, inits
    assert _task_results(output, "Run kubeadm init") == [("changed", "cp1")]

    # order: init, join token, certificate upload, cp2 join, then w1 (denied, reset, retried)
    tokens = [t for t in _bootstrap_tokens(cluster) if t[2] == "kubegpu join"]
    assert len(tokens) == 1, tokens
    token_secret = tokens[0][0]
    expiration = base64.b64decode(token_secret["data"]["expiration"]).decode()
    ttl = _timestamp(expiration) - _timestamp(token_secret["metadata"]["creationTimestamp"])
    assert 840 <= ttl <= 960, "the join token lives 15m, not %s s" % ttl
    injected = docker_exec(HOSTS["cp1"], "cat", "/root/inject.log", check=False)
    assert "denied csr-" in injected, injected
    order = [_index(events, lambda e: e is inits[0], "init"),
             _index(events, lambda e: _is(e, "secrets", "create", token_secret["metadata"]["name"]), "token"),
             _index(events, lambda e: _is(e, "secrets", "create", "kubeadm-certs")
                    or _is(e, "secrets", "update", "kubeadm-certs"), "upload-certs"),
             _index(events, lambda e: _is(e, "nodes", "create", "cp2"), "cp2 registered"),
             _index(events, lambda e: _is(e, "certificatesigningrequests", "update", user_prefix=ADMIN, sub="approval"),
                    "w1's request denied"),
             _index(events, lambda e: _is(e, "nodes", "create", "w1"), "w1 registered")]
    assert order == sorted(order), order
    csrs = [e for e in events if _is(e, "certificatesigningrequests", "create", user_prefix="system:bootstrap:")]
    assert len(csrs) == 3, ("cp2 once, w1 twice (denied, then retried)",
                            docker_exec(HOSTS["cp1"], "cat", "/root/inject.log", check=False))
    assert len([e for e in events if _is(e, "nodes", "create")]) == 3, "cp1, cp2, w1 registered once each"
    denied = [c for c in cluster.json("get", "csr")["items"]
              if any(x["type"] == "Denied" for x in (c.get("status") or {}).get("conditions") or [])]
    assert len(denied) == 1, "only w1's first request was denied (injected)"
    assert _task_results(output, "Reset the node after the failed join") == [("changed", "w1")]
    assert _task_results(output, "Retry kubeadm join once") == [("changed", "w1")]
    nodes = {n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"]}
    assert nodes == {"cp1", "cp2", "w1"}

    # the certificate key reached cp2: it downloaded and decrypted cp1's control-plane certificates
    assert docker_exec(HOSTS["cp2"], "md5sum", "/etc/kubernetes/pki/ca.key").split()[0] == \
        docker_exec(HOSTS["cp1"], "md5sum", "/etc/kubernetes/pki/ca.key").split()[0]
    for host in HOSTS.values():
        assert docker("exec", host, "test", "-e", "/etc/kubernetes/kubegpu/kubeadm-join.yaml",
                      check=False).returncode == 1
    for host in (HOSTS["cp1"], HOSTS["cp2"]):
        assert docker_exec(host, "stat", "-c", "%a %U", "/root/.kube/config").strip() == "600 root"
    assert docker_exec(HOSTS["cp1"], "stat", "-c", "%a", "/etc/kubernetes/kubegpu/kubeadm-init.yaml").strip() == "600"

    # second run: nothing to join, nothing written to the cluster, nothing changed
    mark = cluster.audit_mark()
    second = ansible_playbook("playbooks/kubernetes.yml", inventory, "-v", timeout=600, **FAST_FACTS)
    output2 = second.stdout + second.stderr
    assert second.returncode == 0, output2[-6000:]
    assert "Nothing to join." in output2
    writes = [(e["verb"], e["objectRef"], e["user"]["username"]) for e in cluster.audit(mark)
              if e["user"]["username"] == ADMIN or e["user"]["username"].startswith("system:bootstrap:")]
    assert writes == [], writes
    recap = _recap(output2)
    assert set(recap) == set(HOSTS), output2[-3000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    # secrets: never in Ansible's output (checked last: the other assertions hold either
    # way). Every bootstrap token in the cluster, kubeadm init's own default one included;
    # the certificate key is 64 hex digits, as is the CA hash (public, shown on purpose):
    # no other 64-hex string may appear but those below.
    ca_hash = subprocess.run(
        "openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -hex",
        shell=True, input=docker_exec(HOSTS["cp1"], "cat", "/etc/kubernetes/pki/ca.crt"),
        capture_output=True, text=True, check=True).stdout.split()[-1]
    # The test hosts' docker container ids are 64 hex digits too, public (systemd's
    # ControlGroup /docker/<id> in a service's status).
    public = {ca_hash} | {docker("inspect", "-f", "{{.Id}}", host).stdout.strip() for host in HOSTS.values()}
    for text in (output, output2):
        extra = set(re.findall(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])", text)) - public
        assert not extra, ["...%s..." % text[max(0, text.index(x) - 300):text.index(x) + 80] for x in sorted(extra)]
        for _secret, token, description in _bootstrap_tokens(cluster):
            assert token.split(".")[1] not in text, "bootstrap token (%s) in Ansible's output" % (
                description or "kubeadm init's default token")
