# SPDX-License-Identifier: Apache-2.0
"""Day-2 orchestration (add_node, upgrade_driver) against the SIMULATED control plane.

The day-2 cluster of conftest.py (`day2_cluster`, shared with test_day2_reset_operator.py):
cp1 the first control plane and w1 an existing GPU worker, made a cluster by site.yml
limited to them; gpu2 a new GPU host. w1 and gpu2 carry a simulated H100
(tests/sim/gpu/README.md) and get Debian's driver for real. What happened is read from
the cluster: the REAL kubectl on cp1, and the simulated API server's audit log (every
write, in the server's order, with its user). This proves the ORDER of the day-2
playbooks and what they leave alone against the simulation; it proves nothing about a
real cluster (tests/sim/README.md: what is simulated).

- add_node --limit gpu2: gpu2 registers once and is cordoned (by kubernetes-admin, the
  watcher on cp1) before anything but DaemonSet pods is bound to it; marked
  kubegpu.io/add-node=pending, labelled, validated by its smoke Job, uncordoned and
  unmarked, in that order; ends Ready with allocatable nvidia.com/gpu 1; cp1 and w1
  get no write to their Node objects but their own kubelets', w1's kubeadm/kubelet
  files do not change and w1 is not in the run; a second run adds nothing;
- upgrade_driver (gpu group: w1, gpu2), serial 1: per node cordon -> drain (documented
  flags) -> smoke Job -> uncordon, w1 entirely before gpu2;
- upgrade_driver with w1's smoke Job failing honestly (the NVIDIA runtime program is
  removed from w1, so containerd cannot create the pod's sandbox and the Job runs into
  its deadline): w1 stays cordoned, the run fails naming w1 and the reason, and gpu2
  gets no write at all.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

# The same names as conftest.DAY2_HOSTS (checked by the fleet fixture).
HOSTS = {"cp1": "kubegpu-d2-cp1", "w1": "kubegpu-d2-w1", "gpu2": "kubegpu-d2-gpu2"}

pytestmark = pytest.mark.integration

_HELPERS = {}


@pytest.fixture(scope="module", autouse=True)
def _sim(sim_helpers):
    """conftest's simulation helpers (test modules do not import conftest)."""
    assert sim_helpers.DAY2_HOSTS == HOSTS
    _HELPERS["sim"] = sim_helpers


def day2_inventory(*args, **kwargs):
    return _HELPERS["sim"].day2_inventory(*args, **kwargs)


def audit_writes(*args, **kwargs):
    return _HELPERS["sim"].audit_writes(*args, **kwargs)


ROOT = Path(__file__).resolve().parents[2]
ADMIN = "kubernetes-admin"
FINGERPRINT = "find /etc/kubernetes /var/lib/kubelet -type f -print0 | sort -z | xargs -0 md5sum"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def sh(host, script, check=True):
    return docker("exec", HOSTS[host], "bash", "-c", script, check=check)


def _node_change(event):
    body = event.get("requestObject") or {}
    spec, meta = body.get("spec") or {}, body.get("metadata") or {}
    if "unschedulable" in spec:
        return "cordon" if spec["unschedulable"] else "uncordon"
    annotations = meta.get("annotations") or {}
    if "kubegpu.io/add-node" in annotations:
        return "mark" if annotations["kubegpu.io/add-node"] == "pending" else "unmark"
    return "label" if meta.get("labels") else "other"


def _job_node(event):
    template = ((event.get("requestObject") or {}).get("spec") or {}).get("template") or {}
    return ((template.get("spec") or {}).get("nodeSelector") or {}).get("kubernetes.io/hostname")


def _timeline(events):
    """(index, what, node) of node registrations, the admin's node changes, smoke Jobs
    created and pods bound, in the API server's order."""
    out = []
    for index, event in enumerate(events):
        ref, user, ok = event["objectRef"], event["user"]["username"], event["responseStatus"]["code"] < 300
        if not ok or "annotations" in event:
            continue
        if ref.get("resource") == "nodes" and not ref.get("subresource"):
            if event["verb"] == "create":
                out.append((index, "registered", ref.get("name")))
            elif user == ADMIN and event["verb"] in ("patch", "update"):
                out.append((index, _node_change(event), ref["name"]))
        elif ref.get("resource") == "jobs" and event["verb"] == "create" and user == ADMIN:
            out.append((index, "job", _job_node(event)))
        elif ref.get("resource") == "pods" and ref.get("subresource") == "binding":
            out.append((index, "bind:" + ref["name"], ((event.get("requestObject") or {}).get("target") or {})
                        .get("name")))
    return out


def _node(cluster, name):
    return cluster.json("get", "node", name)


def _schedulable(cluster, name):
    return not _node(cluster, name)["spec"].get("unschedulable")


def _run(ansible_playbook, playbook, inventory, *args, timeout=900, **env):
    result = ansible_playbook(playbook, inventory, *args, timeout=timeout, **env)
    return result, result.stdout + result.stderr


@pytest.fixture(scope="module")
def fleet(day2_cluster):
    return day2_cluster


def test_doctor_judges_the_fleet_read_only(fleet, tmp_path, ansible_playbook):
    """playbooks/doctor.yml for real on cp1 and w1 (before add_node changes the fleet): the JSON
    report validates against its schema, cp1 (no GPU) skips every GPU check, w1's GPU and
    node checks come from its simulated H100 and the API server, the exit status follows
    `healthy`, nothing on the hosts changes, and a second run reports changed=0."""
    schema = json.loads((ROOT / "docs" / "doctor.schema.json").read_text(encoding="utf-8"))
    inventory = day2_inventory(tmp_path / "hosts.yml")
    report_file = tmp_path / "doctor.json"
    before = dict((host, sh(host, FINGERPRINT).stdout) for host in ("cp1", "w1"))
    result, out = _run(ansible_playbook, "playbooks/doctor.yml", inventory, "--limit", "cp1,w1",
                       "-e", "doctor_report_file=%s" % report_file)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    jsonschema.validate(report, schema)
    assert (result.returncode == 0) == report["healthy"], out[-4000:]
    nodes = dict((n["node"], n) for n in report["nodes"])
    assert sorted(nodes) == ["cp1", "w1"]
    cp1 = dict((c["check"], c["status"]) for c in nodes["cp1"]["checks"])
    for name in ("gpus_detected", "driver_loaded", "ecc_errors", "xid_errors", "fabric", "allocatable", "labels"):
        assert cp1[name] == "skip", (name, nodes["cp1"]["checks"])
    assert cp1["kubelet"] == "ok" and cp1["node_ready"] == "ok" and nodes["cp1"]["healthy"] is True
    w1 = dict((c["check"], c) for c in nodes["w1"]["checks"] if c["gpu"] is None)
    assert nodes["w1"]["gpu_count"] == 1
    assert w1["gpus_detected"]["status"] == "ok", w1["gpus_detected"]
    assert w1["node_ready"]["status"] == "ok" and w1["kubelet"]["status"] == "ok"
    assert w1["allocatable"]["status"] == "ok", w1["allocatable"]       # the device plugin advertised 1
    assert w1["labels"]["status"] == "ok", w1["labels"]                 # stage 8's labels, from the same facts
    assert w1["device_plugin"]["status"] == "ok", w1["device_plugin"]   # kubegpu's plugin pod, Ready
    # No NVIDIA kernel module loads in a container: the simulated H100 has no driver loaded,
    # which doctor calls a failure, and the exit status says so.
    assert w1["driver_loaded"]["status"] == "fail" and result.returncode == 2
    # The table, printed by the Report task.
    assert re.search(r"NODE\s+GPUS\s+DRIVER\s+RESULT", out), out[-3000:]
    assert "fleet: %s (2 node(s)" % ("healthy" if report["healthy"] else "UNHEALTHY") in out
    assert after_fingerprints_equal(before)
    again, out = _run(ansible_playbook, "playbooks/doctor.yml", inventory, "--limit", "cp1,w1",
                      "-e", "doctor_report_file=%s" % report_file, "-e", "doctor_fail_on_unhealthy=false")
    assert again.returncode == 0, out[-3000:]
    for host in ("cp1", "w1"):
        assert re.search(r"^%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0" % host, out, re.M), out[-2000:]


def test_doctor_cordons_an_unhealthy_node_when_asked(fleet, tmp_path, ansible_playbook):
    """doctor_cordon_unhealthy=true, for real against the simulated API server: w1 fails a
    check (its simulated H100 has no driver loaded), so the admin cordons it and writes the
    reasons into the annotation kubegpu.io/doctor; cp1 (healthy) gets no write at all; a
    second run writes nothing. doctor never uncordons: the test does, and removes the
    annotation, so the tests after it find the fleet as before."""
    cluster = fleet
    inventory = day2_inventory(tmp_path / "hosts.yml")
    report_file = tmp_path / "doctor.json"
    args = ("--limit", "cp1,w1", "-e", "doctor_report_file=%s" % report_file,
            "-e", "doctor_cordon_unhealthy=true", "-e", "doctor_fail_on_unhealthy=false")
    mark = cluster.audit_mark()
    try:
        result, out = _run(ansible_playbook, "playbooks/doctor.yml", inventory, *args)
        assert result.returncode == 0, out[-4000:]
        report = dict((n["node"], n) for n in json.loads(report_file.read_text(encoding="utf-8"))["nodes"])
        assert report["w1"]["healthy"] is False and report["cp1"]["healthy"] is True
        w1 = _node(cluster, "w1")
        assert w1["spec"].get("unschedulable") is True
        annotation = (w1["metadata"].get("annotations") or {}).get("kubegpu.io/doctor")
        assert annotation == report["w1"]["summary"] and "driver_loaded" in annotation, annotation
        assert _schedulable(cluster, "cp1")
        writes = audit_writes(cluster.audit(mark), "nodes", user=ADMIN)
        assert sorted(set(e["objectRef"]["name"] for e in writes)) == ["w1"], writes
        assert re.search(r"^w1\s+: ok=\d+\s+changed=2\s", out, re.M), out[-2000:]
        # Again: already cordoned with the same reasons, nothing to write to the nodes. (cp1
        # rewrites the report file on the controller: it now says w1 is cordoned.)
        mark = cluster.audit_mark()
        again, out = _run(ansible_playbook, "playbooks/doctor.yml", inventory, *args)
        assert again.returncode == 0, out[-3000:]
        assert audit_writes(cluster.audit(mark), "nodes", user=ADMIN) == []
        assert re.search(r"^w1\s+: ok=\d+\s+changed=0\s", out, re.M), out[-2000:]
    finally:
        cluster.kubectl("uncordon", "w1", check=False)
        cluster.kubectl("annotate", "node", "w1", "kubegpu.io/doctor-", check=False)
        # The node lifecycle controller took the unschedulable taint on with the cordon and
        # takes it off after the uncordon: wait for that write, so that it does not land in
        # the next test's window (which checks w1 is not written at all).
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                t.get("key") == "node.kubernetes.io/unschedulable" for t in _node(cluster, "w1")["spec"].get("taints") or []):
            time.sleep(1)
    assert _schedulable(cluster, "w1")
    assert not any(t.get("key") == "node.kubernetes.io/unschedulable" for t in _node(cluster, "w1")["spec"].get("taints") or [])


def after_fingerprints_equal(before):
    return all(sh(host, FINGERPRINT).stdout == fingerprint for host, fingerprint in before.items())


def test_add_node_cordons_first_and_leaves_existing_nodes(fleet, tmp_path, ansible_playbook):
    cluster = fleet
    inventory = day2_inventory(tmp_path / "hosts.yml")
    w1_before = sh("w1", FINGERPRINT).stdout
    mark = cluster.audit_mark()
    result, output = _run(ansible_playbook, "playbooks/add_node.yml", inventory, "--limit", "gpu2")
    assert result.returncode == 0, output[-6000:]
    events = cluster.audit(mark)
    timeline = _timeline(events)
    gpu2 = [(i, w) for i, w, n in timeline if n == "gpu2"]
    whats = [w for _i, w in gpu2]

    def first(what):
        assert what in whats, (what, whats)
        return next(i for i, w in gpu2 if w == what)

    assert whats.count("registered") == 1
    order = [first("registered"), first("cordon"), first("mark"), first("label"), first("job"),
             first("uncordon"), first("unmark")]
    assert order == sorted(order), whats
    cordon = first("cordon")
    assert [e["user"]["username"] for e in events if e["objectRef"].get("resource") == "nodes"
            and e["objectRef"].get("name") == "gpu2" and _node_change(e) == "cordon"][:1] == [ADMIN]
    # nothing but DaemonSet pods bound to gpu2 before the cordon (the drain's job otherwise)
    pods = {p["metadata"]["name"]: p for p in cluster.json("get", "pods", "-A")["items"]}
    for index, what in gpu2:
        if what.startswith("bind:") and index < cordon:
            owners = (pods.get(what[5:], {}).get("metadata") or {}).get("ownerReferences") or []
            assert [o for o in owners if o["kind"] == "DaemonSet"], "%s landed on gpu2 before the cordon" % what
    # the drain: the node role's entry point drain (add_node's "Evict anything that landed before the cordon")
    assert re.search(r"TASK \[kubegpu\.cluster\.node : Drain the node[^\]]*\][^\n]*\n(?:[^\n]*\n)*?"
                     r"(ok|changed): \[gpu2(?: -> cp1)?\]", output), "the drain did not run for gpu2"

    # existing nodes untouched: their Node objects written by their own kubelets only,
    # w1's files unchanged, w1 not even in the recap; cp1 only served the API
    for name in ("cp1", "w1"):
        writers = {e["user"]["username"] for e in events
                   if e["objectRef"].get("resource") == "nodes" and e["objectRef"].get("name") == name}
        assert writers <= {"system:node:%s" % name}, (name, writers)
    assert sh("w1", FINGERPRINT).stdout == w1_before
    assert not re.search(r"^w1\s+:", output.split("PLAY RECAP")[-1], re.M)
    tokens = audit_writes(events, "secrets", "create", user=ADMIN)
    assert [t["objectRef"]["name"].startswith("bootstrap-token-") for t in tokens] == [True], "one join token"

    node = _node(cluster, "gpu2")
    conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
    assert conditions["Ready"] == "True" and not node["spec"].get("unschedulable")
    assert "kubegpu.io/add-node" not in (node["metadata"].get("annotations") or {})
    assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true", "gpu_node_labels did not label gpu2"
    assert node["status"]["allocatable"].get("nvidia.com/gpu") == "1", node["status"]["allocatable"]

    # a second run finds gpu2 in the cluster and schedulable: nothing to add, no node written
    mark = cluster.audit_mark()
    again, output = _run(ansible_playbook, "playbooks/add_node.yml", inventory, "--limit", "gpu2")
    assert again.returncode == 0, output[-6000:]
    assert "Adding nothing" in output
    assert [w for _i, w, n in _timeline(cluster.audit(mark)) if not w.startswith("bind:")] == []
    assert re.search(r"^gpu2\s+:.*changed=0", output.split("PLAY RECAP")[-1], re.M), output[-3000:]


def test_upgrade_driver_rolls_one_node_at_a_time_and_stops_on_failure(fleet, tmp_path, ansible_playbook):
    cluster = fleet
    if "gpu2" not in {n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"]}:
        pytest.skip("needs gpu2 joined by the add_node test")
    inventory = day2_inventory(tmp_path / "hosts.yml", validate_job_timeout=40)

    mark = cluster.audit_mark()
    # -v with JSON results: the drain commands are read from the output below
    result, output = _run(ansible_playbook, "playbooks/upgrade_driver.yml", inventory, "-v",
                          ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    assert result.returncode == 0, output[-6000:]
    steps = [(w, n) for _i, w, n in _timeline(cluster.audit(mark)) if w in ("cordon", "job", "uncordon")]
    assert steps == [("cordon", "w1"), ("job", "w1"), ("uncordon", "w1"),
                     ("cordon", "gpu2"), ("job", "gpu2"), ("uncordon", "gpu2")], steps
    # the drain, between each cordon and Job (Ansible runs the tasks in order), with the
    # documented flags: evictions, so PodDisruptionBudgets are respected
    drains = re.findall(r'"cmd": (\[[^\]]*"drain"[^\]]*\])', output)
    assert [json.loads(d)[json.loads(d).index("drain") + 1] for d in drains] == ["w1", "gpu2"], drains
    drain = json.loads(drains[0])
    assert {"--ignore-daemonsets", "--delete-emptydir-data", "--timeout=600s", "--grace-period=-1"} <= set(drain)
    assert "--disable-eviction" not in drain and "--force" not in drain
    assert _schedulable(cluster, "w1") and _schedulable(cluster, "gpu2")

    # w1's smoke Job cannot start: the NVIDIA runtime program is gone, containerd cannot
    # create the sandbox (FailedCreatePodSandBox), the Job runs into its deadline
    sh("w1", "mv /usr/bin/nvidia-container-runtime /root/nvidia-container-runtime.away")
    try:
        mark = cluster.audit_mark()
        failed, output = _run(ansible_playbook, "playbooks/upgrade_driver.yml", inventory)
        events = cluster.audit(mark)
    finally:
        sh("w1", "mv /root/nvidia-container-runtime.away /usr/bin/nvidia-container-runtime")
    assert failed.returncode != 0
    steps = [(w, n) for _i, w, n in _timeline(events) if w in ("cordon", "job", "uncordon")]
    assert steps == [("cordon", "w1"), ("job", "w1")], steps
    assert not [e for e in events if e["user"]["username"] == ADMIN and "gpu2" in json.dumps(e["objectRef"])]
    assert not _schedulable(cluster, "w1")
    assert _schedulable(cluster, "gpu2")
    message = re.search(r"upgrade_driver stopped at node w1 .*", output)
    assert message, output[-4000:]
    assert "stays cordoned" in output and re.search(r"nvidia-smi Job (failed|did not complete)", output), output[-4000:]
    cluster.kubectl("uncordon", "w1")  # leave the cluster as the next tests expect it


def test_nfs_client_fstab_for_real(fleet, tmp_path, ansible_playbook):
    """nfs_client on a real test host, fstab only (state: present): this kernel has no nfs
    file system (no modules, /proc/filesystems lacks nfs/nfsd), so neither an NFS server
    nor a real mount can run here (docs/day2.md). Packages, mount point, the fstab line and
    idempotence are real; removal (state: absent) too."""
    inventory = day2_inventory(tmp_path / "hosts.yml", gpu_hosts=())
    mounts = [{"src": "nas.example.com:/models", "path": "/mnt/models", "state": "present",
               "opts": "vers=4.1,ro,hard,_netdev"}]
    extra = ["--limit", "w1", "-e", json.dumps({"nfs_client_mounts": mounts})]
    first = ansible_playbook("playbooks/nfs_client.yml", inventory, *extra, timeout=300)
    assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
    fstab = sh("w1", "cat /etc/fstab").stdout
    assert "nas.example.com:/models /mnt/models nfs vers=4.1,ro,hard,_netdev 0 0" in fstab
    assert sh("w1", "dpkg-query -W -f '${Status}' nfs-common").stdout == "install ok installed"
    assert sh("w1", "test -d /mnt/models", check=False).returncode == 0
    again = ansible_playbook("playbooks/nfs_client.yml", inventory, *extra, timeout=300)
    assert re.search(r"^w1\s+:.*changed=0", again.stdout, re.M), again.stdout[-3000:]
    mounts[0]["state"] = "absent"
    gone = ansible_playbook("playbooks/nfs_client.yml", inventory, "--limit", "w1", "-e",
                            json.dumps({"nfs_client_mounts": mounts}), timeout=300)
    assert gone.returncode == 0, (gone.stdout + gone.stderr)[-4000:]
    assert "nas.example.com:/models" not in sh("w1", "cat /etc/fstab").stdout
