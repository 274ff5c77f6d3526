# SPDX-License-Identifier: Apache-2.0
"""Day 2: reset_node and GPU Operator mode against RECORDING FAKES of kubeadm/kubectl/helm.

tests/fakes/ (see its README) stand in for kubeadm, kubectl and helm on three systemd
test hosts: cp1 (the first control plane, "initialised" by the fake kubeadm), w1 and
gpu2 (workers, "joined": node name in the fakes' node list and /etc/kubernetes/kubelet.conf
on the host; set up directly, no playbook). The hosts also get what a node leaves behind
that reset_node cleans: CNI configuration and state, a running kubelet.service (a
sleep: the images have no kubelet), and the os_prereqs files reset_node keeps by default
(the list from the playbook's own removal task).

This proves the ORDER and ARGUMENTS of the calls, what changes on which host and what
is left alone; nothing about a real cluster (no API server, no etcd member removed, no
real drain against PDBs) or the real GPU Operator chart.

reset_node:
- refused (nothing changed anywhere) for the first control plane, and for a run without
  --limit, also when the inventory lists the workers before the control plane;
- --limit gpu2: drain (documented flags) then delete node, from cp1, then
  `kubeadm reset -f` on gpu2 only; CNI state gone, kubelet stopped, OS prerequisites
  kept; w1 and cp1 untouched; a second run changes nothing (node already gone);
  reset_node_os_prereqs=true removes the os_prereqs files;
- packet filter: the test images have no iptables/nftables, so that test installs them
  with apt (skipped, with the reason, when apt cannot reach a mirror) and checks that
  KUBE-*/cali-* chains and the kube-proxy/calico nftables tables go and the host's own
  rules and tables stay. ipvsadm is not installed on the test hosts (IPVS would need the
  host kernel's ip_vs module): the IPVS step is only seen to be skipped.

gpu_operator (helm from the fake, gpu_operator_helm_source=none):
- default mode: no helm call, no kubectl call;
- operator mode: `helm upgrade --install` with the chart version and repository pinned in
  roles/gpu_operator/defaults (read from the file), values file on cp1 with
  driver.enabled=false and toolkit.enabled as documented; a re-run makes no upgrade call
  and reports changed=0; a changed value makes exactly one upgrade; a failed release is
  upgraded again on the next run;
- kubegpu's own device-plugin DaemonSet present: refused, no helm call;
- preflight refuses both GPU modes at once and two toolkits, naming host, variable and
  fix, and changes nothing.
"""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"cp1": "kubegpu-d2r-cp1", "w1": "kubegpu-d2r-w1", "gpu2": "kubegpu-d2r-gpu2"}
KUBECTL = "/usr/local/bin/kubectl"
HELM = "/usr/local/bin/helm"
FAST_FACTS = {"ANSIBLE_FACTS_MODULES": "ansible.builtin.setup", "ANSIBLE_GATHER_SUBSET": "!all,!min,distribution",
              "ANSIBLE_GATHER_TIMEOUT": "120"}
RESET_TASKS = yaml.safe_load((REPO / "playbooks/reset_node.yml").read_text(encoding="utf-8"))[0]["tasks"]
# The os_prereqs files reset_node keeps unless reset_node_os_prereqs=true: the playbook's own list.
PREREQ_FILES = next(t for t in RESET_TASKS if t["name"] == "Remove the OS prerequisites (reset_node_os_prereqs)")["loop"]
OPERATOR = yaml.safe_load((REPO / "roles/gpu_operator/defaults/main.yml").read_text(encoding="utf-8"))
VALUES_FILE = "%s/values.yaml" % OPERATOR["gpu_operator_manifest_dir"]
CNI_FILES = ["/etc/cni/net.d/10-calico.conflist", "/etc/cni/net.d/calico-kubeconfig",
             "/var/lib/cni/networks/k8s-pod-network/192.168.7.2", "/var/lib/calico/nodename"]
KUBELET_UNIT = "[Unit]\nDescription=stand-in kubelet (test)\n[Service]\nExecStart=/bin/sleep infinity\n" \
               "[Install]\nWantedBy=multi-user.target\n"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def sh(host, script, check=True, timeout=120):
    return docker("exec", HOSTS[host], "sh", "-c", script, check=check, timeout=timeout)


def _node_leftovers(host):
    """What a joined node has that reset_node cleans (or keeps): kubelet, CNI, os_prereqs."""
    files = CNI_FILES + PREREQ_FILES
    sh(host, "mkdir -p /etc/kubernetes && echo '# fake' > /etc/kubernetes/kubelet.conf"
             + "".join(" && mkdir -p %s && echo %s > %s" % (str(Path(f).parent), host, f) for f in files)
             + " && printf '%s' > /etc/systemd/system/kubelet.service" % KUBELET_UNIT.replace("\n", "\\n")
             + " && systemctl daemon-reload && systemctl start kubelet.service")


@pytest.fixture(scope="module")
def fleet(fake_k8s_hosts):
    """cp1 initialised, w1 and gpu2 joined (fake state and host files, no playbook)."""
    state = fake_k8s_hosts(HOSTS)
    sh("cp1", "mkdir -p /etc/kubernetes/kubegpu && printf 'name: cp1\\n' > /tmp/init.yaml"
              " && /usr/local/bin/kubeadm init --config /tmp/init.yaml")
    for host in ("w1", "gpu2"):
        _node_leftovers(host)
    with (state / "nodes").open("a") as stream:
        stream.write("w1\ngpu2\n")
    (state / "calls.jsonl").write_text("")
    return state


def _inventory(tmp_path, workers_first=False):
    tools = {"kubernetes_kubectl_bin": KUBECTL, "kubernetes_kubeadm_bin": "/usr/local/bin/kubeadm",
             "gpu_operator_kubectl_bin": KUBECTL, "gpu_operator_helm_bin": HELM}
    groups = {"kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]}}},
              "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]}, "gpu2": {"ansible_host": HOSTS["gpu2"]}}}}
    order = ["kube_node", "kube_control_plane"] if workers_first else ["kube_control_plane", "kube_node"]
    children = {g: groups[g] for g in order}
    children["k8s_cluster"] = {"children": {g: {} for g in order}}
    data = {"all": {"vars": {"ansible_connection": "community.docker.docker", "ansible_become": False,
                             # preflight's network checks: away from docker's 172.17.0.0/16
                             "kubegpu_pod_cidr": "192.168.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12",
                             **tools},
                    "children": children}}
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _calls(state):
    return [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines() if line.strip()]


def _kubectl_args(call):
    """kubectl argv without the program and --kubeconfig FILE."""
    args = call["argv"][1:]
    if "--kubeconfig" in args:
        index = args.index("--kubeconfig")
        del args[index:index + 2]
    return args


def _nodes(state):
    return sorted(line.strip() for line in (state / "nodes").read_text().splitlines() if line.strip())


def _exists(host, path):
    return sh(host, "test -e %s" % path, check=False).returncode == 0


def _listing(host, *paths):
    """Everything under the given directories (a missing directory lists nothing)."""
    return sh(host, "find %s -mindepth 1 2>/dev/null; true" % " ".join(paths)).stdout.split()


def _kubelet_active(host):
    return sh(host, "systemctl is-active kubelet.service", check=False).stdout.strip()


def _recap(output, host):
    match = re.search(r"^%s\s+:\s+(.*)$" % re.escape(host), output.split("PLAY RECAP")[-1], re.M)
    return dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))) if match else None


SNAPSHOT = ("find /etc /var/lib/apt /var/lib/dpkg /var/lib/cni /var/lib/calico -xdev -type f -print0 2>/dev/null"
            " | sort -z | xargs -0 md5sum; systemctl is-active kubelet; true")


def _host_snapshot(hosts=tuple(HOSTS)):
    """md5 of the files under /etc, apt/dpkg and CNI state, and kubelet's state, per host."""
    return {host: sh(host, SNAPSHOT).stdout for host in hosts}


# ----------------------------------------------------------------------------------
# reset_node
# ----------------------------------------------------------------------------------

def _reset(ansible_playbook, inventory, *args):
    result = ansible_playbook("playbooks/reset_node.yml", inventory, *args, timeout=300, **FAST_FACTS)
    return result, result.stdout + result.stderr


@pytest.mark.parametrize("case", ["limit-cp1", "no-limit", "no-limit-workers-first"])
def test_reset_node_refuses_the_first_control_plane(fleet, tmp_path, ansible_playbook, case):
    """Refused before any host changes: the message names the host, the variable and the fix."""
    state = fleet
    before, nodes_before = _host_snapshot(), _nodes(state)
    (state / "calls.jsonl").write_text("")
    inventory = _inventory(tmp_path, workers_first=case.endswith("workers-first"))
    args = ["--limit", "cp1"] if case == "limit-cp1" else []
    result, output = _reset(ansible_playbook, inventory, *args)
    assert result.returncode != 0, output[-4000:]
    # the first host of the run fails: cp1 itself, or (workers first) w1, which names cp1
    first = "w1: not reset: this run (no --limit, or a --limit that includes it) also resets cp1, which is" \
        if case.endswith("workers-first") else "cp1 is"
    assert first + " the first control plane of a cluster with 2 other node(s)" in output, output[-4000:]
    assert "Fix: name the nodes to reset with --limit (without cp1)" in output
    assert "or pass -e reset_node_confirm_control_plane=true" in output
    # nothing ran: no kubectl/kubeadm call, no file, node list or kubelet changed
    assert _calls(state) == []
    assert _nodes(state) == nodes_before
    assert _host_snapshot() == before
    assert not re.search(r"changed=[1-9]", output), output[-3000:]


def test_reset_node_drains_deletes_resets_and_keeps_the_rest(fleet, tmp_path, ansible_playbook):
    state = fleet
    inventory = _inventory(tmp_path)
    assert "gpu2" in _nodes(state) and _kubelet_active("gpu2") == "active"
    others_before = _host_snapshot(("w1", "cp1"))
    (state / "calls.jsonl").write_text("")

    result, output = _reset(ansible_playbook, inventory, "--limit", "gpu2")
    assert result.returncode == 0, output[-6000:]
    calls = _calls(state)
    # the API side from the first control plane, the node side on gpu2, nothing elsewhere
    assert {c["host"] for c in calls if c["argv"][0] == "kubectl"} == {"cp1"}
    assert [c["argv"] for c in calls if c["argv"][0] != "kubectl"] == [["reset", "-f"]]
    assert [c["host"] for c in calls if c["argv"][0] != "kubectl"] == ["gpu2"]
    assert not [c for c in calls if c["host"] == "w1"]
    kubectl = [(i, _kubectl_args(c)) for i, c in enumerate(calls) if c["argv"][0] == "kubectl"]
    assert [a[:3] for _i, a in kubectl] == [
        ["get", "nodes", "-o"], ["drain", "gpu2", "--ignore-daemonsets"], ["delete", "node", "gpu2"]]
    (drain_at, drain), (delete_at, delete) = kubectl[1], kubectl[2]
    assert sorted(drain[2:]) == sorted(["--ignore-daemonsets", "--delete-emptydir-data", "--timeout=300s",
                                        "--grace-period=-1"])
    assert delete == ["delete", "node", "gpu2", "--ignore-not-found"]
    reset_at = next(i for i, c in enumerate(calls) if c["argv"][:1] == ["reset"])
    assert drain_at < delete_at < reset_at
    assert _nodes(state) == ["cp1", "w1"]

    # gpu2: kubeadm state, CNI configuration and state gone, kubelet stopped, OS prerequisites kept
    assert not _exists("gpu2", "/etc/kubernetes/kubelet.conf")
    assert _listing("gpu2", "/etc/cni/net.d", "/var/lib/cni", "/var/lib/calico") == []
    assert _kubelet_active("gpu2") == "inactive"
    assert all(_exists("gpu2", f) for f in PREREQ_FILES), PREREQ_FILES
    # the other nodes: not a file changed, kubelet still running
    assert _host_snapshot(("w1", "cp1")) == others_before
    assert _kubelet_active("w1") == "active"
    assert _recap(output, "w1") is None and _recap(output, "cp1") is None

    # again: the node is gone and nothing is left to clean -> no drain, delete or reset, no change
    (state / "calls.jsonl").write_text("")
    again, output = _reset(ansible_playbook, inventory, "--limit", "gpu2")
    assert again.returncode == 0, output[-6000:]
    assert [_kubectl_args(c)[:2] for c in _calls(state)] == [["get", "nodes"]]
    assert _recap(output, "gpu2")["changed"] == 0, output[-3000:]

    # asked for: the os_prereqs files go too (and only on gpu2)
    (state / "calls.jsonl").write_text("")
    prereqs, output = _reset(ansible_playbook, inventory, "--limit", "gpu2", "-e", "reset_node_os_prereqs=true")
    assert prereqs.returncode == 0, output[-6000:]
    assert not any(_exists("gpu2", f) for f in PREREQ_FILES)
    assert all(_exists("w1", f) for f in PREREQ_FILES)
    assert _recap(output, "gpu2")["changed"] == 1, output[-3000:]


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
    state = fleet
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
    (state / "calls.jsonl").write_text("")

    result, output = _reset(ansible_playbook, _inventory(tmp_path), "--limit", "w1")
    assert result.returncode == 0, output[-6000:]
    assert "w1" not in _nodes(state)
    for family in ("iptables", "ip6tables"):
        after = sh("w1", "%s-save" % family).stdout
        assert not re.search(r"KUBE-|cali-", after), after
        # the host's own chain and the rule jumping to it are kept
        assert ":HOST-OWN" in after and "-A INPUT -j HOST-OWN" in after, after
        assert "-A HOST-OWN -p tcp -m tcp --dport 2222 -j ACCEPT" in after, after
    tables = sh("w1", "nft list tables").stdout.splitlines()
    assert "table inet hostfilter" in tables and not [t for t in tables if re.search(r"kube-proxy|calico", t)], tables
    assert not _exists("w1", "/run/kubegpu-reset-iptables.rules")
    assert re.search(r"TASK \[Clear the IPVS virtual servers\][^\n]*\nskipping: \[w1\]", output)

    again, output = _reset(ansible_playbook, _inventory(tmp_path), "--limit", "w1")
    assert again.returncode == 0, output[-6000:]
    assert _recap(output, "w1")["changed"] == 0, output[-3000:]


# ----------------------------------------------------------------------------------
# GPU Operator mode
# ----------------------------------------------------------------------------------

OPERATOR_MODE = ["-e", "kubegpu_gpu_operator=true", "-e", "gpu_operator_helm_source=none",
                 "-e", "gpu_operator_ready_timeout=30"]


def _operator(ansible_playbook, inventory, *args):
    result = ansible_playbook("playbooks/gpu_operator.yml", inventory, *args, timeout=300, **FAST_FACTS)
    return result, result.stdout + result.stderr


def _helm_calls(state):
    return [c for c in _calls(state) if c["argv"][0] == "helm"]


def _upgrades(state):
    return [c for c in _helm_calls(state) if "upgrade" in c["argv"]]


def _values_on_cp1():
    return yaml.safe_load(sh("cp1", "cat %s" % VALUES_FILE).stdout)


def _release(state):
    path = state / "helm-releases.json"
    releases = json.loads(path.read_text()) if path.exists() else {}
    return releases.get("%s/%s" % (OPERATOR["gpu_operator_namespace"], OPERATOR["gpu_operator_release_name"]))


@pytest.fixture()
def no_release(fleet):
    """Every operator test starts without a release, device-plugin marker or values file."""
    for name in ("helm-releases.json", "kubegpu-device-plugin", "fail-helm-upgrade"):
        (fleet / name).unlink(missing_ok=True)
    sh("cp1", "rm -f %s" % VALUES_FILE)
    (fleet / "calls.jsonl").write_text("")
    return fleet


def test_gpu_operator_default_mode_calls_nothing(no_release, tmp_path, ansible_playbook):
    state = no_release
    result, output = _operator(ansible_playbook, _inventory(tmp_path))
    assert result.returncode == 0, output[-6000:]
    assert _calls(state) == []
    assert "kubegpu_gpu_operator is false" in output
    assert not _exists("cp1", VALUES_FILE)
    assert _recap(output, "cp1")["changed"] == 0


def test_gpu_operator_installs_pinned_chart_once(no_release, tmp_path, ansible_playbook):
    state = no_release
    inventory = _inventory(tmp_path)
    result, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert result.returncode == 0, output[-6000:]
    calls = _calls(state)
    assert {c["host"] for c in calls} == {"cp1"}
    (upgrade,) = _upgrades(state)
    expected = ["helm", "--kubeconfig", "/etc/kubernetes/admin.conf", "upgrade", "--install",
                OPERATOR["gpu_operator_release_name"], OPERATOR["gpu_operator_chart"],
                "--version", OPERATOR["gpu_operator_chart_version"],
                "--namespace", OPERATOR["gpu_operator_namespace"], "--create-namespace", "--values", VALUES_FILE,
                "--wait", "--timeout", "%ss" % OPERATOR["gpu_operator_helm_timeout"],
                "--repo", OPERATOR["gpu_operator_chart_repo_url"]]
    assert upgrade["argv"] == expected
    # order: own device plugin looked for, release read, upgrade, then the ClusterPolicy waited for
    sequence = [("ds" if "daemonsets" in c["argv"] else "cp" if "clusterpolicies.nvidia.com" in c["argv"]
                 else c["argv"][3]) for c in calls]
    assert sequence == ["ds", "list", "upgrade", "cp"], sequence
    values = _values_on_cp1()
    assert values["driver"] == {"enabled": False}
    # container_runtime_nvidia_toolkit_install defaults to true: that stage installed it
    assert values["toolkit"] == {"enabled": False}
    assert values["devicePlugin"] == {"enabled": True} and values["gfd"] == {"enabled": True}
    assert values["mig"] == {"strategy": OPERATOR["gpu_operator_mig_strategy"]}
    assert upgrade["values_files"] == [sh("cp1", "cat %s" % VALUES_FILE).stdout]
    release = _release(state)
    assert release["status"] == "deployed" and release["revision"] == 1
    assert release["chart"] == "%s-%s" % (OPERATOR["gpu_operator_chart"], OPERATOR["gpu_operator_chart_version"])

    # converged: the release is read and compared, no upgrade, no change
    (state / "calls.jsonl").write_text("")
    again, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert again.returncode == 0, output[-6000:]
    assert [c["argv"][3] for c in _helm_calls(state)] == ["list", "get"]
    assert _recap(output, "cp1")["changed"] == 0, output[-3000:]
    assert _release(state)["revision"] == 1

    # one value changed: exactly one upgrade, with the new value; then converged again
    (state / "calls.jsonl").write_text("")
    mixed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert mixed.returncode == 0, output[-6000:]
    assert len(_upgrades(state)) == 1
    assert _values_on_cp1()["mig"] == {"strategy": "mixed"}
    assert _release(state)["revision"] == 2 and _release(state)["values"]["mig"] == {"strategy": "mixed"}
    (state / "calls.jsonl").write_text("")
    same, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert same.returncode == 0 and _upgrades(state) == [], output[-6000:]
    assert _recap(output, "cp1")["changed"] == 0, output[-3000:]


@pytest.mark.parametrize("extra, toolkit", [
    (["-e", "container_runtime_nvidia_toolkit_install=false"], True),        # auto: the Operator installs it
    (["-e", "gpu_operator_toolkit_enabled=true"], True),                      # forced
    (["-e", "container_runtime_nvidia_toolkit_install=false", "-e", "gpu_operator_toolkit_enabled=false"], False),
])
def test_gpu_operator_toolkit_choice(no_release, tmp_path, ansible_playbook, extra, toolkit):
    state = no_release
    result, output = _operator(ansible_playbook, _inventory(tmp_path), *OPERATOR_MODE, *extra)
    assert result.returncode == 0, output[-6000:]
    assert len(_upgrades(state)) == 1
    assert _values_on_cp1()["toolkit"] == {"enabled": toolkit}
    assert _values_on_cp1()["driver"] == {"enabled": False}
    assert _release(state)["values"]["toolkit"] == {"enabled": toolkit}


def test_gpu_operator_upgrades_a_failed_release_again(no_release, tmp_path, ansible_playbook):
    state = no_release
    inventory = _inventory(tmp_path)
    (state / "fail-helm-upgrade").write_text("")
    failed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert failed.returncode != 0
    assert "UPGRADE FAILED: context deadline exceeded" in output
    assert _release(state)["status"] == "failed"
    (state / "calls.jsonl").write_text("")
    retry, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert retry.returncode == 0, output[-6000:]
    assert len(_upgrades(state)) == 1  # same values and version: status alone makes the retry
    assert _release(state)["status"] == "deployed" and _release(state)["revision"] == 2


def test_gpu_operator_refuses_a_release_stuck_in_pending(no_release, tmp_path, ansible_playbook):
    """helm lists a pending-* release only with --all; the role must see it and stop."""
    state = no_release
    inventory = _inventory(tmp_path)
    installed, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE)
    assert installed.returncode == 0, output[-6000:]
    path = state / "helm-releases.json"
    releases = json.loads(path.read_text())
    key = "%s/%s" % (OPERATOR["gpu_operator_namespace"], OPERATOR["gpu_operator_release_name"])
    releases[key]["status"] = "pending-upgrade"  # an upgrade interrupted half-way
    path.write_text(json.dumps(releases))
    (state / "calls.jsonl").write_text("")
    stuck, output = _operator(ansible_playbook, inventory, *OPERATOR_MODE, "-e", "gpu_operator_mig_strategy=mixed")
    assert stuck.returncode != 0
    assert "is pending-upgrade: another helm operation is running or was interrupted" in output, output[-4000:]
    assert "helm rollback %s" % OPERATOR["gpu_operator_release_name"] in output
    assert re.search(r"fatal: \[cp1\]", output)
    assert _upgrades(state) == []
    assert _release(state)["status"] == "pending-upgrade"


def test_gpu_operator_refuses_next_to_kubegpu_device_plugin(no_release, tmp_path, ansible_playbook):
    state = no_release
    (state / "kubegpu-device-plugin").write_text("")
    result, output = _operator(ansible_playbook, _inventory(tmp_path), *OPERATOR_MODE)
    assert result.returncode != 0
    assert "kubegpu's device plugin is deployed (daemonset.apps/nvidia-device-plugin)" in output, output[-4000:]
    assert "the two GPU modes are exclusive" in output
    assert "kubectl delete -f /etc/kubernetes/kubegpu/addons/nvidia-device-plugin.yaml" in output
    assert _helm_calls(state) == [] and _release(state) is None
    assert not _exists("cp1", VALUES_FILE)


def test_preflight_refuses_both_gpu_modes(no_release, tmp_path, ansible_playbook):
    state = no_release
    before = _host_snapshot()
    # Preflight refers only to real variables: in Operator mode, the Operator's own device
    # plugin switched off means no device plugin at all.
    bad = {"kubegpu_gpu_operator": True, "gpu_operator_device_plugin_enabled": False,
           "gpu_operator_toolkit_enabled": True}
    result = ansible_playbook("playbooks/preflight.yml", _inventory(tmp_path), "-e", json.dumps(bad), timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    for host in HOSTS:
        assert "Preflight: GPU software mode on %s:" % host in output, output[-4000:]
    assert "gpu_operator_device_plugin_enabled is false while kubegpu_gpu_operator is true" in output
    assert "fix: gpu_operator_device_plugin_enabled: true" in output
    assert "gpu_operator_toolkit_enabled is true and container_runtime_nvidia_toolkit_install is true" in output
    assert "fix: gpu_operator_toolkit_enabled: auto (or false)" in output
    assert not re.search(r"changed=[1-9]", output), output[-3000:]
    assert _calls(state) == [] and _host_snapshot() == before
