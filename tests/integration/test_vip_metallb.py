# SPDX-License-Identifier: Apache-2.0
"""The control-plane VIP (kube-vip) and MetalLB on the SIMULATED control plane (issue #18).

Three systemd test hosts (cp1, cp2: control planes; w1: worker) on docker's bridge, no
kubernetes_control_plane_endpoint: kubegpu_control_plane_vip is a free address of the bridge
network, and the simulated kubelet runs kube-vip's static Pod (tests/sim/kubegpu_sim/kube_vip.py):
the Lease holder puts the VIP on its eth0, so kubeadm init, the joins and the real kubectl go
through it. Then Calico (stand-in) and MetalLB (stand-in tests/sim/manifests/metallb-native.yaml,
controller simulated by tests/sim/kubegpu_sim/metallb.py) with a pool of the bridge network, and the
Jupyter example's LoadBalancer Service gets the pool's first address.

Asserts: admin.conf and the kubeadm-config ConfigMap name the VIP; the first control plane's
and the second's kube-vip mount admin.conf after init; the VIP sits on exactly one
control plane, the Lease's holder; the worker reaches the API server through it; the pools exist;
the Service's address; a second run of the five stages, and a check run, report changed=0.
Proves the orchestration against the simulation, not kube-vip's or MetalLB's own behaviour.
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"cp1": "kubegpu-vip-cp1", "cp2": "kubegpu-vip-cp2", "w1": "kubegpu-vip-w1"}
LB_EXAMPLE = REPO / "examples" / "jupyter-tensorflow-gpu" / "tf-notebook-lb.yaml"


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def _network():
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{end}}"
    return ipaddress.ip_interface(docker("inspect", "-f", fmt, HOSTS["cp1"]).stdout.split()[0]).network


def _recap(output):
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}


@pytest.fixture(scope="module")
def fleet(sim_k8s_hosts, sim_helpers, tmp_path_factory, ansible_playbook):
    cluster = sim_k8s_hosts(HOSTS, first_cp="cp1")
    net = _network()
    vip = str(net.broadcast_address - 5)                    # docker hands out addresses from the bottom
    pool = "%s-%s" % (net.broadcast_address - 15, net.broadcast_address - 10)
    directory = tmp_path_factory.mktemp("vip")
    data = {"all": {
        "vars": sim_helpers.inventory_vars(
            ansible_become=False, kubegpu_control_plane_vip=vip, kubegpu_control_plane_vip_interface="eth0",
            metallb_enabled=True, metallb_manifest_url="/etc/kubegpu-sim/metallb-native.yaml",
            metallb_address_pools=[{"name": "default", "addresses": [pool]}], metallb_ready_timeout=180),
        "children": {
            "kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]},
                                             "cp2": {"ansible_host": HOSTS["cp2"]}}},
            "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]}}},
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
        }}}
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data))
    stages = ("os_prereqs", "container_runtime", "kubernetes", "calico", "metallb")
    playbook = directory / "build.yml"
    playbook.write_text(yaml.safe_dump([{"ansible.builtin.import_playbook": "kubegpu.cluster.%s" % s} for s in stages]))
    without_metallb = directory / "build-4.yml"
    without_metallb.write_text(yaml.safe_dump([{"ansible.builtin.import_playbook": "kubegpu.cluster.%s" % s}
                                               for s in stages[:-1]]))
    first = ansible_playbook(str(without_metallb), inventory, timeout=1500)
    assert first.returncode == 0, (first.stdout + first.stderr)[-8000:]
    # MetalLB's stage in check mode on a cluster without it: compares its manifest and the
    # pools (kinds the cluster does not know yet) as to be created, creates nothing.
    checked = ansible_playbook("playbooks/metallb.yml", inventory, "--check", timeout=600)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output[-6000:]
    assert re.search(r"TASK \[kubegpu\.cluster\.metallb : Wait for MetalLB's controller\][^\n]*\nskipping: \[cp1\]",
                     output), output[-3000:]
    assert not cluster.kubectl("get", "namespace", "metallb-system", "--ignore-not-found", "-o", "name").stdout.strip()
    metallb = ansible_playbook("playbooks/metallb.yml", inventory, timeout=900)
    assert metallb.returncode == 0, (metallb.stdout + metallb.stderr)[-8000:]
    return cluster, inventory, playbook, vip, pool


def _holders(vip):
    found = []
    for name, container in HOSTS.items():
        if re.search(r"inet %s/32 " % re.escape(vip), docker("exec", container, "ip", "-4", "addr", "show", "eth0").stdout):
            found.append(name)
    return found


def test_the_cluster_is_built_through_the_vip(fleet):
    cluster, _inventory, _playbook, vip, _pool = fleet
    server = docker("exec", HOSTS["cp1"], "kubectl", "config", "view", "--kubeconfig", "/etc/kubernetes/admin.conf",
                    "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    assert server == "https://%s:6443" % vip
    stored = yaml.safe_load(cluster.json("-n", "kube-system", "get", "cm", "kubeadm-config")["data"]["ClusterConfiguration"])
    assert stored["controlPlaneEndpoint"] == "%s:6443" % vip
    assert vip in stored["apiServer"]["certSANs"]
    assert {n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"]} == {"cp1", "cp2", "w1"}

    lease = cluster.json("-n", "kube-system", "get", "lease", "plndr-cp-lock")
    assert _holders(vip) == [lease["spec"]["holderIdentity"]]
    for name in ("cp1", "cp2"):
        pod = yaml.safe_load(docker("exec", HOSTS[name], "cat", "/etc/kubernetes/manifests/kube-vip.yaml").stdout)
        assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf", name
    assert docker("exec", HOSTS["w1"], "test", "-e", "/etc/kubernetes/manifests/kube-vip.yaml", check=False).returncode == 1
    # The worker reaches the API server at the VIP (anonymous /livez, kubeadm's default RBAC).
    livez = docker("exec", HOSTS["w1"], "curl", "-sk", "https://%s:6443/livez" % vip, check=False)
    assert livez.stdout.strip() == "ok", livez.stdout + livez.stderr


def test_the_notebook_service_gets_an_address_of_the_pool(fleet):
    cluster, _inventory, _playbook, _vip, pool = fleet
    kinds = {(o["kind"], o["metadata"]["name"])
             for o in cluster.json("-n", "metallb-system", "get", "ipaddresspools,l2advertisements")["items"]}
    assert kinds == {("IPAddressPool", "default"), ("L2Advertisement", "kubegpu")}
    docker("cp", str(LB_EXAMPLE), "%s:/root/tf-notebook-lb.yaml" % HOSTS["cp1"])
    cluster.kubectl("apply", "-f", "/root/tf-notebook-lb.yaml")
    first = pool.split("-")[0]
    deadline = time.time() + 60
    ingress = []
    while time.time() < deadline and not ingress:
        ingress = ((cluster.json("get", "svc", "tf-notebook-lb").get("status") or {}).get("loadBalancer") or {}) \
            .get("ingress") or []
        time.sleep(1)
    assert ingress == [{"ip": first}]


def test_a_second_run_changes_nothing(fleet, ansible_playbook):
    _cluster, inventory, playbook, _vip, _pool = fleet
    again = ansible_playbook(str(playbook), inventory, timeout=900)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-6000:]
    recap = _recap(output)
    assert set(recap) == set(HOSTS) and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def test_check_mode_on_the_built_cluster_changes_nothing(fleet, ansible_playbook):
    _cluster, inventory, playbook, vip, _pool = fleet
    checked = ansible_playbook(str(playbook), inventory, "--check", "--diff", timeout=900)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output[-6000:]
    recap = _recap(output)
    assert set(recap) == set(HOSTS) and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    assert len(_holders(vip)) == 1
