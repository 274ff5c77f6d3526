# SPDX-License-Identifier: Apache-2.0
"""Day 2: GPU Operator mode and reset_node against the SIMULATED control plane.

The day-2 cluster of conftest.py (`day2_cluster`, shared with test_day2_orchestration.py):
cp1 the first control plane, w1 and gpu2 GPU workers (gpu2 is joined here with
add_node --limit gpu2 when the orchestration tests did not already). What happened is
read from the cluster: the REAL kubectl and the REAL helm on cp1, and the simulated API
server's audit log (every write, in order, with its user); and from the hosts.

GPU Operator mode (the operator tests run first: reset_node takes nodes away). NVIDIA's
chart repository is unreachable here: a stand-in chart named gpu-operator
(tests/sim/charts/gpu-operator: the ClusterPolicy CRD, a ClusterPolicy from the values
kubegpu sets, an operator Deployment, NFD's worker) is packaged at the version
roles/gpu_operator pins and served as a helm repository over HTTP from cp1
(`python3 -m http.server`); the REAL helm (scripts/fetch-helm.sh) is copied to cp1 and used
with gpu_operator_helm_source=none. The simulated kubelet runs the part of the Operator that
the containerized driver relies on (tests/sim/kubegpu_sim/gpu_operator.py: GPU node labels,
the driver DaemonSet, the driver upgrade controller) and NFD's labels (nfd.py); no other
operand, and no ClusterPolicy status: the role's wait for ready is switched off
(gpu_operator_ready_timeout=0), not exercised here.
- kubegpu's own device-plugin DaemonSet present (site.yml made it): refused, no helm
  release; then it is removed as the refusal says;
- default mode: no helm release, no write to the cluster, no values file;
- operator mode: the pinned chart from the configured repository, installed once by helm
  (release deployed, revision 1, values with driver.enabled=false and toolkit.enabled as
  documented, the ClusterPolicy created from them); a re-run upgrades nothing and
  reports changed=0; one changed value makes exactly one new revision;
- a release that failed (helm's --wait ran out: every worker cordoned, so the operator
  pod cannot be scheduled) is upgraded again on the next run;
- a release stuck in pending-upgrade (a helm upgrade killed half-way) is refused with
  `helm rollback` as the fix;
- preflight refuses both GPU modes at once and two toolkits, naming host, variable and
  fix, and changes nothing;
- nvidia_driver_mode container: the driver values (pinned driver container, conventional on
  these Debian hosts, upgrade policy) in the release and the ClusterPolicy, a re-run changes
  nothing; the Operator's driver DaemonSet (OnDelete) runs on both GPU nodes; upgrade_driver.yml
  changes no host and writes no Node, makes one helm revision with the new version and succeeds
  once the Operator's upgrade controller has taken the GPU nodes, one at a time, through its
  states (cordon, old driver pod deleted, new one ready, uncordon): every GPU node runs the new
  driver, upgrade-done and schedulable; the same version again writes nothing.

reset_node:
- refused (nothing changed anywhere, no write to the cluster) for the first control
  plane, and for a run without --limit, also when the inventory lists the workers first;
- --limit gpu2: drained (gpu2 cordoned by the drain) then its Node deleted, both by the
  admin from cp1, then `kubeadm reset -f` on gpu2 only (its kubelet.conf and kubelet
  state gone); CNI configuration and state gone, kubelet stopped, the os_prereqs files
  kept; w1 and cp1 untouched (files, and no write to their Node objects); a second run
  changes nothing; reset_node_os_prereqs=true removes the os_prereqs files on gpu2 only;
- packet filter: the test images have no iptables/nftables, so that test installs them
  with apt (skipped, with the reason, when apt cannot reach a mirror) and checks that
  KUBE-*/cali-* chains and the kube-proxy/calico nftables tables go and the host's own
  rules and tables stay. ipvsadm is not installed on the test hosts: the IPVS step is only
  seen to be skipped.
Proves nothing about a real cluster (a real drain against real workloads, etcd member
removal) or NVIDIA's real chart and Operator (no image is pulled: NVIDIA publishes no driver
image for these Debian hosts, NVIDIA/gpu-operator#2225).
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

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


REPO = Path(__file__).resolve().parents[2]
HELM_BIN = REPO / ".cache" / "helm" / "helm"
CHART = REPO / "tests" / "sim" / "charts" / "gpu-operator"
CHART_PORT = 8879
ADMIN = "kubernetes-admin"
# reset_node.yml's steps: the node role's entry point reset.
RESET_TASKS = yaml.safe_load((REPO / "roles/node/tasks/reset.yml").read_text(encoding="utf-8"))
# The os_prereqs files reset_node keeps unless reset_node_os_prereqs=true: the role's own list.
PREREQ_FILES = next(t for t in RESET_TASKS if t["name"] == "Remove the OS prerequisites (reset_node_os_prereqs)")["loop"]
OPERATOR = yaml.safe_load((REPO / "roles/gpu_operator/defaults/main.yml").read_text(encoding="utf-8"))
VALUES_FILE = "%s/values.yaml" % OPERATOR["gpu_operator_manifest_dir"]
NS, RELEASE = OPERATOR["gpu_operator_namespace"], OPERATOR["gpu_operator_release_name"]
REPO_URL = "http://127.0.0.1:%d" % CHART_PORT
OPERATOR_MODE = ["-e", "kubegpu_gpu_operator=true", "-e", "gpu_operator_helm_source=none",
                 "-e", "gpu_operator_chart_repo_url=%s" % REPO_URL, "-e", "gpu_operator_ready_timeout=0",
                 # helm --wait for the operator Deployment: the simulated controllers and
                 # kubelet are slow on a loaded 2-core machine
                 "-e", "gpu_operator_helm_timeout=240"]
DEVICE_PLUGIN_MANIFEST = "/etc/kubernetes/kubegpu/addons/nvidia-device-plugin.yaml"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def sh(host, script, check=True, timeout=120):
    return docker("exec", HOSTS[host], "bash", "-c", script, check=check, timeout=timeout)


def _tail(output, size):
    """The end of a run's output for an assertion message, under a header line (the
    short summary of a CI log shows a message's first line only)."""
    return "ansible-playbook's last %d characters:\n%s" % (size, output[-size:])


def _recap(output, host):
    match = re.search(r"^%s\s+:\s+(.*)$" % re.escape(host), output.split("PLAY RECAP")[-1], re.M)
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))) if match else None


def _exists(host, path):
    return sh(host, "test -e %s" % path, check=False).returncode == 0


def _nodes(cluster):
    return sorted(n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"])


@pytest.fixture(scope="module")
def fleet(day2_cluster, tmp_path_factory, ansible_playbook):
    """The day-2 cluster with gpu2 joined, the real helm on cp1 and the stand-in chart
    served from cp1."""
    cluster = day2_cluster
    if "gpu2" not in _nodes(cluster):
        inventory = day2_inventory(tmp_path_factory.mktemp("join") / "hosts.yml")
        joined = ansible_playbook("playbooks/add_node.yml", inventory, "--limit", "gpu2", timeout=900)
        assert joined.returncode == 0, (joined.stdout + joined.stderr)[-6000:]
    if not HELM_BIN.exists():
        pytest.skip("no helm at %s (scripts/fetch-helm.sh)" % HELM_BIN)
    charts = tmp_path_factory.mktemp("charts")
    subprocess.run([str(HELM_BIN), "package", str(CHART), "--version", OPERATOR["gpu_operator_chart_version"],
                    "--app-version", OPERATOR["gpu_operator_chart_version"], "-d", str(charts)],
                   check=True, capture_output=True)
    subprocess.run([str(HELM_BIN), "repo", "index", str(charts), "--url", REPO_URL], check=True, capture_output=True)
    sh("cp1", "mkdir -p /srv/kubegpu-charts")
    for item in charts.iterdir():
        docker("cp", str(item), "%s:/srv/kubegpu-charts/%s" % (HOSTS["cp1"], item.name))
    docker("cp", str(HELM_BIN), "%s:%s" % (HOSTS["cp1"], OPERATOR["gpu_operator_helm_bin"]))
    sh("cp1", "systemd-run --unit kubegpu-chart-repo python3 -m http.server %d --bind 127.0.0.1 "
              "--directory /srv/kubegpu-charts" % CHART_PORT)
    for _attempt in range(30):
        if sh("cp1", "python3 -c \"import urllib.request; urllib.request.urlopen('%s/index.yaml')\"" % REPO_URL,
              check=False).returncode == 0:
            break
        time.sleep(1)
    return cluster


def _helm(*args, check=True):
    argv = [OPERATOR["gpu_operator_helm_bin"], "--kubeconfig", "/etc/kubernetes/admin.conf", *args]
    return sh("cp1", " ".join(argv), check=check)


def _release():
    """The release as `helm list` shows it (every state asked for), or None."""
    listed = json.loads(_helm("list", "--deployed", "--failed", "--pending", "--uninstalling",
                              "--namespace", NS, "--output", "json").stdout or "[]")
    return next((r for r in listed if r["name"] == RELEASE), None)


def _release_values():
    return json.loads(_helm("get", "values", RELEASE, "--namespace", NS, "--output", "json").stdout)


def _values_on_cp1():
    return yaml.safe_load(sh("cp1", "cat %s" % VALUES_FILE).stdout)


def _operator(ansible_playbook, inventory, *args):
    result = ansible_playbook("playbooks/gpu_operator.yml", inventory, *args, timeout=600)
    return result, result.stdout + result.stderr


def _release_writes(events):
    """helm's release records (Secrets sh.helm.release.v1.<release>.v<N>) created."""
    return [e["objectRef"]["name"] for e in audit_writes(events, "secrets", "create")
            if e["objectRef"].get("namespace") == NS and e["objectRef"].get("name", "").startswith("sh.helm.release.v1.")]


@pytest.fixture()
def no_release(fleet):
    """Operator tests start without a release, values file or cordoned worker."""
    if _release():
        _helm("uninstall", RELEASE, "--namespace", NS, "--wait")
    sh("cp1", "rm -f %s" % VALUES_FILE)
    for node in ("w1", "gpu2"):
        fleet.kubectl("uncordon", node)
    yield fleet
    # and end without one: the reset tests must not see the operator pod move between nodes
    if _release():
        _helm("uninstall", RELEASE, "--namespace", NS, "--wait")


# ----------------------------------------------------------------------------------
# GPU Operator mode
# ----------------------------------------------------------------------------------


def test_gpu_operator_refuses_next_to_kubegpu_device_plugin(no_release, tmp_path, ansible_playbook):
    cluster = no_release
    assert cluster.kubectl("get", "daemonset", "-n", "kube-system", "-l",
                           "app.kubernetes.io/managed-by=kubegpu", "-o", "name").stdout.strip()
    mark = cluster.audit_mark()
    result, output = _operator(ansible_playbook, day2_inventory(tmp_path / "hosts.yml"), *OPERATOR_MODE)
    assert result.returncode != 0
    assert "kubegpu's device plugin is deployed (daemonset.apps/nvidia-device-plugin" in output, _tail(output, 4000)
    assert "the two GPU modes are exclusive" in output
    assert "kubectl delete -f %s" % DEVICE_PLUGIN_MANIFEST in output
    assert _release() is None and _release_writes(cluster.audit(mark)) == []
    assert not _exists("cp1", VALUES_FILE)
    # as the refusal says: the operator tests below run without kubegpu's device plugin
    cluster.kubectl("delete", "-f", DEVICE_PLUGIN_MANIFEST, "--wait=true")


def test_gpu_operator_default_mode_changes_nothing(no_release, tmp_path, ansible_playbook):
    cluster = no_release
    mark = cluster.audit_mark()
    result, output = _operator(ansible_playbook, day2_inventory(tmp_path / "hosts.yml"))
    assert result.returncode == 0, _tail(output, 6000)
    assert "kubegpu_gpu_operator is false" in output
    assert [e for e in cluster.audit(mark) if e["user"]["username"] == ADMIN] == []
    assert _release() is None and not _exists("cp1", VALUES_FILE)
    assert _recap(output, "cp1")["changed"] == 0


def test_gpu_operator_installs_pinned_chart_once(no_release, tmp_path, ansible_playbook):
    cluster = no_release
    inventory = day2_inventory(tmp_path / "hosts.yml")
    mark = cluster.audit_mark()
    result, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert result.returncode == 0, _tail(output, 6000)
    events = cluster.audit(mark)
    release = _release()
    assert release["status"] == "deployed" and release["revision"] == "1", release
    assert release["chart"] == "%s-%s" % (OPERATOR["gpu_operator_chart"], OPERATOR["gpu_operator_chart_version"])
    assert _release_writes(events) == ["sh.helm.release.v1.%s.v1" % RELEASE]
    values = _values_on_cp1()
    assert values["driver"] == {"enabled": False}
    # container_runtime_nvidia_toolkit_install is false in this fleet (NVIDIA's repository is
    # unreachable): auto lets the Operator install the toolkit
    assert values["toolkit"] == {"enabled": True}
    assert values["devicePlugin"] == {"enabled": True} and values["gfd"] == {"enabled": True}
    assert values["mig"] == {"strategy": OPERATOR["gpu_operator_mig_strategy"]}
    assert _release_values() == values
    # what the chart made of them, created through the simulated API server
    policy = cluster.json("get", "clusterpolicies.nvidia.com", "cluster-policy")
    # (the chart's own driver defaults, image and upgrade policy, come along: its template writes them)
    assert policy["spec"]["driver"]["enabled"] is False and policy["spec"]["toolkit"] == {"enabled": True}
    # helm 4 creates with server-side apply (its "using server-side apply for resource
    # creation"): an apply PATCH creates the CRD
    assert audit_writes(events, "customresourcedefinitions", "patch", name="clusterpolicies.nvidia.com")
    assert cluster.json("get", "crd", "clusterpolicies.nvidia.com")["metadata"]["name"] == "clusterpolicies.nvidia.com"
    deployment = cluster.json("get", "deployment", "-n", NS, "gpu-operator")
    assert deployment["status"].get("readyReplicas") == 1  # helm --wait saw it ready

    # converged: the release is read and compared, no upgrade, no change
    mark = cluster.audit_mark()
    again, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert again.returncode == 0, _tail(output, 6000)
    assert _release_writes(cluster.audit(mark)) == []
    assert _recap(output, "cp1")["changed"] == 0, _tail(output, 3000)
    assert _release()["revision"] == "1"

    # one value changed: exactly one upgrade, with the new value; then converged again
    mark = cluster.audit_mark()
    mixed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert mixed.returncode == 0, _tail(output, 6000)
    assert _release_writes(cluster.audit(mark)) == ["sh.helm.release.v1.%s.v2" % RELEASE]
    assert _values_on_cp1()["mig"] == {"strategy": "mixed"} and _release_values()["mig"] == {"strategy": "mixed"}
    assert cluster.json("get", "clusterpolicies.nvidia.com", "cluster-policy")["spec"]["mig"] == {"strategy": "mixed"}
    mark = cluster.audit_mark()
    same, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert same.returncode == 0 and _release_writes(cluster.audit(mark)) == [], _tail(output, 6000)
    assert _recap(output, "cp1")["changed"] == 0, _tail(output, 3000)


@pytest.mark.parametrize("extra, toolkit", [
    ([], True),                                                                   # auto: the Operator installs it
    (["-e", "container_runtime_nvidia_toolkit_install=true"], False),             # auto: stage 4 installed it
    (["-e", "gpu_operator_toolkit_enabled=false", "-e", "container_runtime_nvidia_toolkit_install=true"],
     False),                                                                      # forced
])
def test_gpu_operator_toolkit_choice(no_release, tmp_path, ansible_playbook, extra, toolkit):
    result, output = _operator(ansible_playbook, day2_inventory(tmp_path / "hosts.yml"), *OPERATOR_MODE, *extra)
    assert result.returncode == 0, _tail(output, 6000)
    assert _values_on_cp1()["toolkit"] == {"enabled": toolkit}
    assert _values_on_cp1()["driver"] == {"enabled": False}
    assert _release_values()["toolkit"] == {"enabled": toolkit}
    assert no_release.json("get", "clusterpolicies.nvidia.com", "cluster-policy")["spec"]["toolkit"] == \
        {"enabled": toolkit}


def test_gpu_operator_refuses_no_toolkit_at_all(no_release, tmp_path, ansible_playbook):
    """The stage run alone refuses what preflight refuses, with preflight's line
    (_preflight_rules.gpu_mode_problems): neither toolkit (this fleet's stage 4 installs none)."""
    result, output = _operator(ansible_playbook, day2_inventory(tmp_path / "hosts.yml"), *OPERATOR_MODE,
                               "-e", "gpu_operator_toolkit_enabled=false")
    assert result.returncode != 0
    assert "host cp1: variable gpu_operator_toolkit_enabled: false while container_runtime_nvidia_toolkit_install" \
        " is false" in output, _tail(output, 3000)
    assert _release() is None and not _exists("cp1", VALUES_FILE)


def test_gpu_operator_upgrades_a_failed_release_again(no_release, tmp_path, ansible_playbook):
    """helm --wait runs out of time: every worker is cordoned, so the operator pod cannot
    be scheduled (cp1 keeps its control-plane taint) and the release is marked failed."""
    cluster = no_release
    inventory = day2_inventory(tmp_path / "hosts.yml")
    # what keeps the operator pod off cp1 (the simulated node lifecycle controller once
    # overwrote it with a stale read: controller_manager._reconcile_node_taints)
    cp1_taints = [(t["key"], t.get("effect")) for t in cluster.json("get", "node", "cp1")["spec"].get("taints") or []]
    assert ("node-role.kubernetes.io/control-plane", "NoSchedule") in cp1_taints, cp1_taints
    for node in ("w1", "gpu2"):
        cluster.kubectl("cordon", node)
    try:
        failed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_helm_timeout=15")
        pods = cluster.kubectl("get", "pods", "-n", NS, "-o", "wide", check=False).stdout
    finally:
        for node in ("w1", "gpu2"):
            cluster.kubectl("uncordon", node)
    assert failed.returncode != 0, pods + _tail(output, 4000)
    assert re.search(r"context deadline exceeded|timed out waiting", output), _tail(output, 4000)
    assert _release()["status"] == "failed"
    mark = cluster.audit_mark()
    retry, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert retry.returncode == 0, _tail(output, 6000)
    # same values and version: the status alone makes the retry
    assert _release_writes(cluster.audit(mark)) == ["sh.helm.release.v1.%s.v2" % RELEASE]
    assert _release()["status"] == "deployed"


def test_gpu_operator_refuses_a_release_stuck_in_pending(no_release, tmp_path, ansible_playbook):
    """A helm upgrade killed half-way leaves the release pending-upgrade (helm writes that
    status before it waits); helm 3 lists it only when asked for its state, and the role must stop."""
    cluster = no_release
    inventory = day2_inventory(tmp_path / "hosts.yml")
    installed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert installed.returncode == 0, _tail(output, 6000)
    for node in ("w1", "gpu2"):
        cluster.kubectl("cordon", node)
    try:
        # an upgrade that waits for a pod that cannot be scheduled, killed while it waits
        sh("cp1", "(%s --kubeconfig /etc/kubernetes/admin.conf upgrade %s /srv/kubegpu-charts/%s-%s.tgz "
                  "--namespace %s --reuse-values --set operator.version=stuck --wait --timeout 300s"
                  " >/root/stuck-upgrade.log 2>&1 &) ; sleep 1"
           % (OPERATOR["gpu_operator_helm_bin"], RELEASE, OPERATOR["gpu_operator_chart"],
              OPERATOR["gpu_operator_chart_version"], NS))
        for _attempt in range(60):
            if (_release() or {}).get("status") == "pending-upgrade":
                break
            time.sleep(1)
        sh("cp1", "pkill -KILL -f 'upgrade %s /srv/kubegpu-charts'" % RELEASE, check=False)
    finally:
        for node in ("w1", "gpu2"):
            cluster.kubectl("uncordon", node)
    assert _release()["status"] == "pending-upgrade"
    mark = cluster.audit_mark()
    stuck, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert stuck.returncode != 0
    assert "is pending-upgrade: another helm operation is running or was interrupted" in output, _tail(output, 4000)
    assert "helm rollback %s" % RELEASE in output
    assert re.search(r"fatal: \[cp1\]", output)
    assert _release_writes(cluster.audit(mark)) == []
    assert _release()["status"] == "pending-upgrade"
    _helm("rollback", RELEASE, "--namespace", NS, "--wait")


SNAPSHOT = ("find /etc /var/lib/apt /var/lib/dpkg /var/lib/cni /var/lib/calico -xdev -type f -print0 2>/dev/null"
            " | sort -z | xargs -0 md5sum; systemctl is-active kubelet; true")


def _host_snapshot(hosts=tuple(HOSTS)):
    """md5 of the files under /etc, apt/dpkg and CNI state, and kubelet's state, per host."""
    return {host: sh(host, SNAPSHOT).stdout for host in hosts}


def test_preflight_refuses_both_gpu_modes(fleet, tmp_path, ansible_playbook):
    before = _host_snapshot()
    mark = fleet.audit_mark()
    bad = {"kubegpu_gpu_operator": True, "gpu_operator_device_plugin_enabled": False,
           "gpu_operator_toolkit_enabled": True, "container_runtime_nvidia_toolkit_install": True}
    result = ansible_playbook("playbooks/preflight.yml", day2_inventory(tmp_path / "hosts.yml"),
                              "-e", json.dumps(bad), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for host in HOSTS:
        assert "host %s: variable gpu_operator_device_plugin_enabled: false while kubegpu_gpu_operator is true" \
            % host in output, _tail(output, 4000)
        assert "host %s: variable gpu_operator_toolkit_enabled: true while container_runtime_nvidia_toolkit_install" \
            " is true" % host in output, _tail(output, 4000)
    assert "fix: gpu_operator_device_plugin_enabled: true" in output
    assert "fix: gpu_operator_toolkit_enabled: auto (or false)" in output
    assert not re.search(r"changed=[1-9]", output), _tail(output, 3000)
    assert [e for e in fleet.audit(mark) if e["user"]["username"] == ADMIN] == []
    assert _host_snapshot() == before


CONTAINER_MODE = ["-e", "nvidia_driver_mode=container"]
GPU_NODES = ("w1", "gpu2")            # conftest.DAY2_GPU: the GPU nodes of this cluster
DRIVER_DS = "nvidia-driver-daemonset"
UPGRADE_STATE = "nvidia.com/gpu-driver-upgrade-state"
# The states the Operator's upgrade controller (NVIDIA/k8s-operator-libs pkg/upgrade) takes a GPU
# node through with kubegpu's upgrade policy: drain off (drain-required skipped), no job selector
# (wait-for-jobs-required passed at once), no GPU pod to delete; validation-required is not
# simulated (tests/sim/kubegpu_sim/gpu_operator.py: the validator needs the Operator's toolkit).
UPGRADE_STATES = ["upgrade-required", "cordon-required", "wait-for-jobs-required", "pod-deletion-required",
                  "pod-restart-required", "uncordon-required", "upgrade-done"]
NEW_DRIVER = "580.126.09"


def _get_json(cluster, *args):
    result = cluster.kubectl(*args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def _driver_rollout(cluster, version, os_tag):
    """(done, what is missing): the Operator's driver DaemonSet runs driver `version` for this
    OS on every GPU node, its controller saw its spec, each GPU node runs a ready driver pod of
    it, and the upgrade controller left each GPU node upgrade-done and schedulable."""
    ds = _get_json(cluster, "get", "daemonset", "-n", NS, DRIVER_DS)
    if ds is None:
        return False, "no DaemonSet %s" % DRIVER_DS
    image = "nvcr.io/nvidia/driver:%s-%s" % (version, os_tag)
    containers = ds["spec"]["template"]["spec"]["containers"]
    missing = []
    if [c["image"] for c in containers if c["name"] == "nvidia-driver-ctr"] != [image]:
        missing.append("DaemonSet image %s" % [c["image"] for c in containers])
    status = ds.get("status") or {}
    if status.get("observedGeneration", 0) < ds["metadata"]["generation"]:
        missing.append("generation %s not observed" % ds["metadata"]["generation"])
    counts = [status.get(k, 0) for k in ("desiredNumberScheduled", "updatedNumberScheduled", "numberAvailable")]
    if counts != [len(GPU_NODES)] * 3:
        missing.append("desired/updated/available %s" % counts)
    pods = (_get_json(cluster, "get", "pods", "-n", NS, "-l", "app=nvidia-driver-daemonset") or {}).get("items", [])
    nodes = dict((n["metadata"]["name"], n) for n in cluster.json("get", "nodes")["items"])
    for name in GPU_NODES:
        on_node = [p for p in pods if p["spec"].get("nodeName") == name]
        ready = [p for p in on_node if not p["metadata"].get("deletionTimestamp")
                 and p["spec"]["containers"][0]["image"] == image
                 and any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])]
        if len(on_node) != 1 or len(ready) != 1:
            found = [(p["metadata"]["name"], p["spec"]["containers"][0]["image"], (p.get("status") or {}).get("phase"),
                      (p.get("status") or {}).get("message") or [
                          (c["name"], c.get("state")) for c in (p.get("status") or {}).get("containerStatuses") or []])
                     for p in on_node]
            missing.append("%s: driver pods %s" % (name, found))
        node = nodes[name]
        unschedulable = (node.get("spec") or {}).get("unschedulable", False)
        if node["metadata"]["labels"].get(UPGRADE_STATE) != "upgrade-done" or unschedulable:
            missing.append("%s: %s, unschedulable %s" % (name, node["metadata"]["labels"].get(UPGRADE_STATE),
                                                         unschedulable))
    return not missing, "; ".join(missing)


def _wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        done, detail = check()
        if done:
            return
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %d s: %s" % (what, timeout, detail))
        time.sleep(5)


def _node_patches(events, node):
    """The requestObjects of the patches of Node `node` that took effect, in the server's order."""
    return [(i, e["user"]["username"], e.get("requestObject") or {}) for i, e in enumerate(events)
            if e["objectRef"].get("resource") == "nodes" and e["objectRef"].get("name") == node
            and not e["objectRef"].get("subresource") and e["verb"] == "patch" and e["responseStatus"]["code"] < 300]


def _new_driver_pods(events, old_pods):
    """{node: index in `events` of the create of its new driver pod}: the driver pods created
    (not in `old_pods`), each at the node its binding names."""
    creates = dict((e["objectRef"]["name"], i) for i, e in enumerate(events)
                   if e["objectRef"].get("resource") == "pods" and e["objectRef"].get("namespace") == NS
                   and not e["objectRef"].get("subresource") and e["verb"] == "create"
                   and e["responseStatus"]["code"] < 300 and e["objectRef"].get("name") not in old_pods
                   and e["objectRef"].get("name", "").startswith(DRIVER_DS))
    return dict((e["requestObject"]["target"]["name"], creates[e["objectRef"]["name"]])
                for e in audit_writes(events, "pods", "create", sub="binding")
                if e["objectRef"].get("name") in creates)


def test_gpu_operator_container_driver_mode(no_release, tmp_path, ansible_playbook):
    """nvidia_driver_mode container (issue #18): the chart gets the Operator's pinned driver container -
    conventional, as NVIDIA builds no precompiled images for these Debian hosts - and the upgrade policy; a
    re-run changes nothing. The simulated Operator (tests/sim/kubegpu_sim/gpu_operator.py) deploys its driver
    DaemonSet on the GPU nodes NFD found. upgrade_driver.yml then changes no host (no package) and no Node
    object itself, gives helm the new version (one revision) and waits while the Operator's upgrade controller
    takes the GPU nodes through its states one at a time (cordon, old driver pod deleted, the new one ready,
    uncordon); it ends with every GPU node running the new driver, upgrade-done and schedulable. A second run
    with the same version writes nothing."""
    cluster = no_release
    inventory = day2_inventory(tmp_path / "hosts.yml")
    try:
        result, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, *CONTAINER_MODE)
        assert result.returncode == 0, _tail(output, 6000)
        driver = {"enabled": True, "usePrecompiled": False, "version": OPERATOR["gpu_operator_driver_version"],
                  "upgradePolicy": {"autoUpgrade": True, "maxParallelUpgrades": 1, "maxUnavailable": "25%",
                                    "drain": {"enable": False, "timeoutSeconds": 300}}}
        assert _values_on_cp1()["driver"] == driver and _release_values()["driver"] == driver
        # the chart copies them into the ClusterPolicy, its own defaults for the rest
        policy = cluster.json("get", "clusterpolicies.nvidia.com", "cluster-policy")["spec"]["driver"]
        assert (policy["enabled"], policy["usePrecompiled"], policy["version"]) == (
            True, False, OPERATOR["gpu_operator_driver_version"])
        assert (policy["repository"], policy["image"]) == ("nvcr.io/nvidia", "driver")
        upgrade = policy["upgradePolicy"]
        assert (upgrade["autoUpgrade"], upgrade["maxParallelUpgrades"], upgrade["maxUnavailable"]) == (True, 1, "25%")
        assert (upgrade["drain"]["enable"], upgrade["drain"]["timeoutSeconds"]) == (False, 300)
        mark = cluster.audit_mark()
        again, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, *CONTAINER_MODE)
        assert again.returncode == 0 and _release_writes(cluster.audit(mark)) == [], _tail(output, 6000)
        assert _recap(output, "cp1")["changed"] == 0, _tail(output, 3000)

        # The Operator's driver image is named after the GPU nodes' OS as NFD labels it (Debian here: NVIDIA
        # publishes no such image, NVIDIA/gpu-operator#2225; nothing pulls images in the simulation).
        os_tag = sh("gpu2", ". /etc/os-release && echo $ID$VERSION_ID").stdout.strip()
        _wait_for(lambda: _driver_rollout(cluster, OPERATOR["gpu_operator_driver_version"], os_tag), 300,
                  "the Operator's first driver rollout")
        ds = cluster.json("get", "daemonset", "-n", NS, DRIVER_DS)
        assert ds["spec"]["updateStrategy"] == {"type": "OnDelete"}
        assert ds["metadata"]["labels"]["app.kubernetes.io/component"] == "nvidia-driver"
        assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.deploy.driver": "true"}
        nodes = dict((n["metadata"]["name"], n["metadata"]["labels"]) for n in cluster.json("get", "nodes")["items"])
        for name in GPU_NODES:
            labels = nodes[name]
            assert labels["feature.node.kubernetes.io/pci-10de.present"] == "true", labels
            assert labels["feature.node.kubernetes.io/system-os_release.ID"] + \
                labels["feature.node.kubernetes.io/system-os_release.VERSION_ID"] == os_tag
            assert labels["nvidia.com/gpu.deploy.driver"] == "true"
        assert "nvidia.com/gpu.deploy.driver" not in nodes["cp1"]
        old_pods = sorted(p["metadata"]["name"] for p in cluster.json(
            "get", "pods", "-n", NS, "-l", "app=nvidia-driver-daemonset")["items"])
        assert len(old_pods) == len(GPU_NODES)

        before = _host_snapshot(GPU_NODES)
        mark = cluster.audit_mark()
        upgraded = ansible_playbook("playbooks/upgrade_driver.yml", inventory, *OPERATOR_MODE, *CONTAINER_MODE,
                                    "-e", "gpu_operator_driver_version=%s" % NEW_DRIVER,
                                    "-e", "gpu_operator_driver_upgrade_timeout=300", timeout=900)
        output = upgraded.stdout + upgraded.stderr
        assert upgraded.returncode == 0, _tail(output, 6000)
        assert "did not roll driver" not in output
        assert _release_writes(cluster.audit(mark)) == ["sh.helm.release.v1.%s.v2" % RELEASE]
        assert _release_values()["driver"]["version"] == NEW_DRIVER
        # kubegpu's wait ends when the DaemonSet is updated and available; the upgrade controller may still
        # have the last node's uncordon to do (uncordon-required)
        _wait_for(lambda: _driver_rollout(cluster, NEW_DRIVER, os_tag), 120, "the upgrade controller's last uncordon")
        events = cluster.audit(mark)

        # kubegpu wrote no Node, pod or DaemonSet itself (its writes are helm's release and ClusterPolicy)
        # (helm's upgrade re-applies the chart's own objects: NFD's worker DaemonSet among them)
        assert [e["objectRef"] for e in events if e["user"]["username"] == ADMIN
                and e["objectRef"].get("resource") in ("nodes", "pods", "daemonsets")
                and not str(e["objectRef"].get("name") or "").startswith("%s-node-feature-discovery" % RELEASE)] == []
        # the Operator took each GPU node through the upgrade states, cordoned it after cordon-required and
        # uncordoned it after uncordon-required (it talks as the kubelet of its node: authorisation is not
        # simulated), and deleted the node's old driver pod
        spans = {}
        for name in GPU_NODES:
            patches = _node_patches(events, name)
            states = [(i, body["metadata"]["labels"][UPGRADE_STATE]) for i, _user, body in patches
                      if UPGRADE_STATE in ((body.get("metadata") or {}).get("labels") or {})]
            assert [state for _i, state in states] == UPGRADE_STATES, (name, states)
            at = dict((state, i) for i, state in states)
            cordons = [(i, body["spec"].get("unschedulable")) for i, _user, body in patches
                       if "unschedulable" in (body.get("spec") or {})]
            assert [value for _i, value in cordons] == [True, None], (name, cordons)
            assert at["cordon-required"] < cordons[0][0] < at["wait-for-jobs-required"]
            assert at["uncordon-required"] < cordons[1][0] < at["upgrade-done"]
            spans[name] = (at["cordon-required"], at["upgrade-done"])
        # One node at a time (maxParallelUpgrades 1; maxUnavailable 25% of two nodes is one) until the first
        # node's new driver pod exists: BuildState skips a driver pod the scheduler has not bound yet
        # (k8s-operator-libs pkg/upgrade/upgrade_state.go, "Driver Pod has no NodeName, skipping"), so while it
        # waits for its node the upgrade controller counts one node fewer in progress and may start the next.
        created = _new_driver_pods(events, old_pods)
        assert sorted(created) == sorted(GPU_NODES) and all(
            spans[name][0] < created[name] < spans[name][1] for name in GPU_NODES), \
            "a new driver pod outside its node's upgrade:\n%s\n%s" % (spans, created)
        (first_node, first), (_second_node, second) = sorted(spans.items(), key=lambda item: item[1])
        assert first[1] < second[0] or created[first_node] < second[0], \
            "the second node started before the first one's new driver pod:\n%s\n%s" % (spans, created)
        deleted = sorted(e["objectRef"]["name"] for e in audit_writes(events, "pods", "delete")
                         if e["objectRef"].get("namespace") == NS and e["objectRef"]["name"] in old_pods
                         and e["user"]["username"] != ADMIN)
        assert sorted(set(deleted)) == old_pods, deleted
        # no host changed: the driver is the containers' business
        assert _host_snapshot(GPU_NODES) == before

        # the same version again: no helm upgrade, no write by kubegpu, nothing for the Operator to do
        mark = cluster.audit_mark()
        same = ansible_playbook("playbooks/upgrade_driver.yml", inventory, *OPERATOR_MODE, *CONTAINER_MODE,
                                "-e", "gpu_operator_driver_version=%s" % NEW_DRIVER,
                                "-e", "gpu_operator_driver_upgrade_timeout=300", timeout=900)
        output = same.stdout + same.stderr
        assert same.returncode == 0, _tail(output, 6000)
        events = cluster.audit(mark)
        assert _release_writes(events) == [] and _release()["revision"] == "2"
        assert [e["objectRef"] for e in events if e["user"]["username"] == ADMIN] == []
        assert not re.search(r"changed=[1-9]", output.split("PLAY RECAP")[-1]), _tail(output, 3000)
        assert [e for e in audit_writes(events, "pods", "delete") if e["objectRef"].get("namespace") == NS] == []
        assert [(name, body) for name in GPU_NODES for _i, _u, body in _node_patches(events, name)
                if UPGRADE_STATE in json.dumps(body) or "unschedulable" in json.dumps(body)] == []
        done, detail = _driver_rollout(cluster, NEW_DRIVER, os_tag)
        assert done, detail
    finally:
        # the reset tests expect no Operator and schedulable GPU nodes, whatever happened above
        if _release():
            _helm("uninstall", RELEASE, "--namespace", NS, "--wait", check=False)
        for name in GPU_NODES:
            cluster.kubectl("uncordon", name, check=False)


# ----------------------------------------------------------------------------------
# reset_node (after the operator tests: it takes nodes out of the cluster)
# ----------------------------------------------------------------------------------

def _reset(ansible_playbook, inventory, *args):
    result = ansible_playbook("playbooks/reset_node.yml", inventory, *args, timeout=600)
    return result, result.stdout + result.stderr


def _kubelet_active(host):
    return sh(host, "systemctl is-active kubelet.service", check=False).stdout.strip()


def _listing(host, *paths):
    """Everything under the given directories (a missing directory lists nothing)."""
    return sh(host, "find %s -mindepth 1 2>/dev/null; true" % " ".join(paths)).stdout.split()


def _node_writes(events, name):
    """(verb, subresource, user) of the writes to Node `name` that took effect (response
    below 300), other than its kubelet's. A controller's patch that arrives after the Node
    was deleted gets 404 and changes nothing (the node lifecycle controller reacting to
    the reset kubelet can race the delete, as in a real cluster)."""
    return [(e["verb"], e["objectRef"].get("subresource"), e["user"]["username"]) for e in events
            if e["objectRef"].get("resource") == "nodes" and e["objectRef"].get("name") == name
            and e["user"]["username"] != "system:node:%s" % name and e["responseStatus"]["code"] < 300]


@pytest.mark.parametrize("case", ["limit-cp1", "no-limit", "no-limit-workers-first"])
def test_reset_node_refuses_the_first_control_plane(fleet, tmp_path, ansible_playbook, case):
    """Refused before any host changes: the message names the host, the variable and the fix."""
    cluster = fleet
    before, nodes_before = _host_snapshot(), _nodes(cluster)
    mark = cluster.audit_mark()
    inventory = day2_inventory(tmp_path / "hosts.yml", workers_first=case.endswith("workers-first"))
    args = ["--limit", "cp1"] if case == "limit-cp1" else []
    result, output = _reset(ansible_playbook, inventory, *args)
    assert result.returncode != 0, _tail(output, 4000)
    first = "w1: not reset: this run (no --limit, or a --limit that includes it) also resets cp1, which is" \
        if case.endswith("workers-first") else "cp1 is"
    assert first + " the first control plane of a cluster with 2 other node(s)" in output, _tail(output, 4000)
    assert "Fix: name the nodes to reset with --limit (without cp1)" in output
    assert "or pass -e reset_node_confirm_control_plane=true" in output
    # nothing ran: no write to the cluster by the admin, no file, node or kubelet changed
    assert [e for e in cluster.audit(mark) if e["user"]["username"] == ADMIN] == []
    assert _nodes(cluster) == nodes_before
    assert _host_snapshot() == before
    assert not re.search(r"changed=[1-9]", output), _tail(output, 3000)


def test_reset_node_drains_deletes_resets_and_keeps_the_rest(fleet, tmp_path, ansible_playbook):
    cluster = fleet
    inventory = day2_inventory(tmp_path / "hosts.yml")
    assert "gpu2" in _nodes(cluster) and _kubelet_active("gpu2") == "active"
    assert _exists("gpu2", "/etc/kubernetes/kubelet.conf") and _listing("gpu2", "/etc/cni/net.d")
    others_before = _host_snapshot(("w1", "cp1"))
    mark = cluster.audit_mark()
    result, output = _reset(ansible_playbook, inventory, "--limit", "gpu2")
    assert result.returncode == 0, _tail(output, 6000)
    events = cluster.audit(mark)
    # the API side by the admin (from cp1): cordon (the drain's), evictions, then the Node deleted
    writes = _node_writes(events, "gpu2")
    assert writes[0][:2] == ("patch", None) and ("delete", None, ADMIN) == writes[-1], writes
    cordon = next(i for i, e in enumerate(events) if e["objectRef"].get("name") == "gpu2"
                  and e["objectRef"].get("resource") == "nodes" and e["user"]["username"] == ADMIN)
    delete = next(i for i, e in enumerate(events) if e["verb"] == "delete" and e["objectRef"].get("name") == "gpu2"
                  and e["objectRef"].get("resource") == "nodes")
    evictions = [i for i, e in enumerate(events) if e["objectRef"].get("subresource") == "eviction"]
    assert all(cordon < i < delete for i in evictions)
    drain = re.search(r"TASK \[kubegpu\.cluster\.node : Drain the node[^\]]*\]", output)
    assert drain, _tail(output, 4000)
    assert _nodes(cluster) == ["cp1", "w1"]
    for name in ("cp1", "w1"):
        assert _node_writes(events, name) == [], name

    # gpu2: kubeadm state, CNI configuration and state gone, kubelet stopped, OS prerequisites kept
    assert not _exists("gpu2", "/etc/kubernetes/kubelet.conf")
    assert _listing("gpu2", "/var/lib/kubelet") == []
    assert _listing("gpu2", "/etc/cni/net.d", "/var/lib/cni", "/var/lib/calico") == []
    assert _kubelet_active("gpu2") == "inactive"
    assert all(_exists("gpu2", f) for f in PREREQ_FILES), PREREQ_FILES
    # the other nodes: not a file changed, kubelet still running
    assert _host_snapshot(("w1", "cp1")) == others_before
    assert _kubelet_active("w1") == "active"
    assert _recap(output, "w1") is None and _recap(output, "cp1") is None

    # again: the node is gone and nothing is left to clean -> no drain, delete or reset, no change
    mark = cluster.audit_mark()
    again, output = _reset(ansible_playbook, inventory, "--limit", "gpu2")
    assert again.returncode == 0, _tail(output, 6000)
    assert [e for e in cluster.audit(mark) if e["user"]["username"] == ADMIN] == []
    assert _recap(output, "gpu2")["changed"] == 0, _tail(output, 3000)

    # asked for: the os_prereqs files go too (and only on gpu2)
    prereqs, output = _reset(ansible_playbook, inventory, "--limit", "gpu2", "-e", "reset_node_os_prereqs=true")
    assert prereqs.returncode == 0, _tail(output, 6000)
    assert not any(_exists("gpu2", f) for f in PREREQ_FILES)
    assert all(_exists("w1", f) for f in PREREQ_FILES)
    assert _recap(output, "gpu2")["changed"] == 1, _tail(output, 3000)


IPTABLES_SETUP = r"""
set -e
for ipt in iptables ip6tables; do
  $ipt -N HOST-OWN
  $ipt -A HOST-OWN -p tcp --dport 2222 -j ACCEPT
  $ipt -A INPUT -j HOST-OWN
  $ipt -N KUBE-FIREWALL
  $ipt -A KUBE-FIREWALL -m mark --mark 0x8000/0x8000 -j DROP
  $ipt -A INPUT -j KUBE-FIREWALL
  $ipt -t nat -N KUBE-SERVICES
  $ipt -t nat -A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
  $ipt -t nat -N cali-PREROUTING
  $ipt -t nat -A PREROUTING -m comment --comment "cali:6gwbT8clXdHdC1b1" -j cali-PREROUTING
  $ipt -t nat -A cali-PREROUTING -j ACCEPT
done
nft add table ip kube-proxy
nft add table inet calico
nft add table inet hostfilter
"""


def test_reset_node_cleans_kubernetes_packet_filter(fleet, tmp_path, ansible_playbook):
    """Real iptables/ip6tables/nft on w1 (installed here: the test images have none)."""
    cluster = fleet
    install = sh("w1", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
                       " --no-install-recommends iptables nftables", check=False, timeout=600)
    if install.returncode != 0:
        pytest.skip("could not install iptables/nftables on the test host (no reachable Debian mirror?): "
                    + install.stderr[-300:])
    setup = sh("w1", IPTABLES_SETUP, check=False)
    if setup.returncode != 0:
        pytest.skip("this kernel/container does not let iptables or nft build rules: " + setup.stderr[-300:])
    before = {f: sh("w1", "%s-save" % f).stdout for f in ("iptables", "ip6tables")}
    assert all("KUBE-FIREWALL" in b and "cali-PREROUTING" in b for b in before.values())

    inventory = day2_inventory(tmp_path / "hosts.yml")
    result, output = _reset(ansible_playbook, inventory, "--limit", "w1")
    assert result.returncode == 0, _tail(output, 6000)
    assert "w1" not in _nodes(cluster)
    for family in ("iptables", "ip6tables"):
        after = sh("w1", "%s-save" % family).stdout
        assert not re.search(r"KUBE-|cali-", after), after
        # the host's own chain and the rule jumping to it are kept
        assert ":HOST-OWN" in after and "-A INPUT -j HOST-OWN" in after, after
        assert "-A HOST-OWN -p tcp -m tcp --dport 2222 -j ACCEPT" in after, after
    tables = sh("w1", "nft list tables").stdout.splitlines()
    assert "table inet hostfilter" in tables and not [t for t in tables if re.search(r"kube-proxy|calico", t)], tables
    assert not _exists("w1", "/run/kubegpu-reset-iptables.rules")
    assert re.search(r"TASK \[kubegpu\.cluster\.node : Clear the IPVS virtual servers\][^\n]*\nskipping: \[w1\]",
                     output)

    again, output = _reset(ansible_playbook, inventory, "--limit", "w1")
    assert again.returncode == 0, _tail(output, 6000)
    assert _recap(output, "w1")["changed"] == 0, _tail(output, 3000)
