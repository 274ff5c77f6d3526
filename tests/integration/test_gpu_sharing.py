# SPDX-License-Identifier: Apache-2.0
"""GPU sharing modes, the control-plane VIP and MetalLB on the simulated control plane
(tests/sim/README.md), on one fleet built once (one build instead of two in `make test`).

GPU sharing: one converged fleet with the three simulated GPU fixtures, then the
nvidia_device_plugin stage re-run once per mode; each mode must end with the extended resources NVIDIA's k8s-device-plugin rules
give for those GPUs - written out by hand below, and as kubegpu's own rule
(plugin_utils/_gpu_resources.expected_resources, the one validate, add_node.yml and
upgrade_driver.yml wait for) computes them.

Fleet: cp1 and cp2 (control planes, no GPU, the cluster built through kubegpu_control_plane_vip),
g1 the H100 capture (tests/sim/gpu/h100-1gpu.json), g2 the A100 with MIG
enabled and the layout of a100-mig.mig.json (3g.40gb, 2g.20gb, 1g.10gb, 1g.10gb), g3 the HGX
8-GPU board's GPUs (hgx-h100-8gpu.json less its NVSwitches, see HGX below). What is simulated: the device plugin's resource rules and
the kubelet's device manager (tests/sim/kubegpu_sim/gpu.py, kubelet.py, each rule citing
upstream); what is real: the playbooks, the rendered manifests, kubectl.

VIP and MetalLB (issue #18): no kubernetes_control_plane_endpoint; kubegpu_control_plane_vip is a
free address of docker's bridge network, and the simulated kubelet runs kube-vip's static Pod
(tests/sim/kubegpu_sim/kube_vip.py): the Lease holder puts the VIP on its eth0, so kubeadm init, the
joins and the real kubectl go through it. Then Calico (stand-in) and MetalLB (stand-in
tests/sim/manifests/metallb-native.yaml, controller simulated by tests/sim/kubegpu_sim/metallb.py) with a
pool of the bridge network, and the Jupyter example's LoadBalancer Service gets the pool's first
address. Asserts: admin.conf and the kubeadm-config ConfigMap name the VIP; both control planes'
kube-vip mount admin.conf after init; the VIP sits on exactly one control plane, the Lease's holder;
a worker reaches the API server through it; the pools exist; the Service's address; a second run of
the five stages (os_prereqs, container_runtime, kubernetes, calico, metallb), and a check run, report
changed=0. Proves the orchestration against the simulation, not kube-vip's or MetalLB's own behaviour.
"""
from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOSTS = {"cp1": "kubegpu-share-cp1", "cp2": "kubegpu-share-cp2", "g1": "kubegpu-share-g1", "g2": "kubegpu-share-g2",
         "g3": "kubegpu-share-g3"}
CONTROL_PLANES = ("cp1", "cp2")
LB_EXAMPLE = REPO / "examples" / "jupyter-tensorflow-gpu" / "tf-notebook-lb.yaml"
# The five stages the VIP and MetalLB are about, re-run by the tests below.
VIP_STAGES = ("os_prereqs", "container_runtime", "kubernetes", "calico", "metallb")
GPU = {"g1": "h100-1gpu", "g2": "a100-mig", "g3": "hgx-h100-8gpu-gpus"}
# The HGX board's 8 GPUs without its 4 NVSwitch functions (PCI class 0x0680): Debian packages
# no NVIDIA fabric manager, which stage 3 refuses for an NVSwitch host (the only OS these
# test hosts run). The device plugin's resources depend on the GPUs alone.
HGX = REPO / "tests" / "sim" / "gpu" / "hgx-h100-8gpu.json"
SIM_GPU = REPO / ".cache" / "sim-gpu"


def _hgx_gpus_tree(tmp):
    sys.path.insert(0, str(REPO / "tests" / "sim"))
    from kubegpu_sim import pci_tree
    functions = {bus: attrs for bus, attrs in json.loads(HGX.read_text()).items()
                 if int(attrs["class"], 16) >> 16 == 0x03}
    assert len(functions) == 8
    description = tmp / "hgx-h100-8gpu-gpus.json"
    description.write_text(json.dumps(functions))
    pci_tree.materialise(str(description), str(SIM_GPU / GPU["g3"]))


MIG_LAYOUT = REPO / "tests" / "sim" / "gpu" / "a100-mig.mig.json"

# Each mode: the stage's variables, and what upstream's rules give per node (resources
# whose count is above 0; a node absent from the map advertises nothing).
MODES = [
    ("whole", {}, {
        "g1": {"nvidia.com/gpu": 1},
        "g2": {"nvidia.com/gpu": 1},            # migStrategy none: the MIG-enabled GPU as a whole GPU
        "g3": {"nvidia.com/gpu": 8}}),
    ("time-slicing", {"nvidia_device_plugin_time_slicing_replicas": 4}, {
        "g1": {"nvidia.com/gpu": 4},
        "g2": {"nvidia.com/gpu": 4},
        "g3": {"nvidia.com/gpu": 32}}),
    # MPS: the control daemon's DaemonSet beside the plugin; a plugin that starts before its
    # node's daemon runs starts again 30 s later (cmd/nvidia-device-plugin/main.go
    # restartTimeout; the simulated plugin does the same, tests/sim/kubegpu_sim/workloads.py).
    ("mps", {"nvidia_device_plugin_mps_replicas": 4}, {
        "g1": {"nvidia.com/gpu": 4},
        "g2": {"nvidia.com/gpu": 4},
        "g3": {"nvidia.com/gpu": 32}}),
    ("mig-mixed", {"nvidia_device_plugin_mig_strategy": "mixed"}, {
        "g1": {"nvidia.com/gpu": 1},
        "g2": {"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2},
        "g3": {"nvidia.com/gpu": 8}}),
    # single refuses a node with more than one MIG profile (device_map.go
    # assertAllMigDevicesAreValid): g2 advertises nothing; GPUs without MIG stay whole.
    ("mig-single", {"nvidia_device_plugin_mig_strategy": "single"}, {
        "g1": {"nvidia.com/gpu": 1},
        "g2": {},
        "g3": {"nvidia.com/gpu": 8}}),
]
# Modes that drop list items (env, volumes) the previous mode's DaemonSet had. The simulated
# API server's server-side apply leaves an empty element where an owned list item goes
# ("spec.template.spec.containers[0].env[3].name: Required value" from kubectl diff
# --server-side), which a real API server merges away by the item's key; until the simulation
# does too, the test removes the device plugin's DaemonSet before such a mode, and the stage
# creates it again.
RECREATE = {"mig-mixed"}


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def _vip_and_pool():
    """The VIP and MetalLB's pool: free addresses at the top of docker's bridge network (docker
    hands out addresses from the bottom)."""
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{end}}"
    net = ipaddress.ip_interface(docker("inspect", "-f", fmt, HOSTS["cp1"]).stdout.split()[0]).network
    return str(net.broadcast_address - 5), "%s-%s" % (net.broadcast_address - 15, net.broadcast_address - 10)


def _recap(output):
    return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
            for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", output, re.M)}


@pytest.fixture(scope="module")
def fleet(sim_k8s_hosts, sim_helpers, tmp_path_factory, ansible_playbook):
    """cp1, cp2 + three GPU workers made a cluster through the VIP by site.yml (preflight and
    validate skipped: the set-up is not under test; validate's own wait is checked by its tests),
    MetalLB's stage first in check mode on the cluster without it, then for real."""
    _hgx_gpus_tree(tmp_path_factory.mktemp("hgx"))
    cluster = sim_k8s_hosts(HOSTS, first_cp="cp1", gpu=GPU)
    # The simulated A100's MIG layout, read by the simulated kubelet whenever a container starts.
    docker("exec", HOSTS["g2"], "mkdir", "-p", "/etc/kubegpu-sim")
    docker("cp", str(MIG_LAYOUT), "%s:/etc/kubegpu-sim/mig.json" % HOSTS["g2"])
    vip, pool = _vip_and_pool()
    data = {"all": {
        "vars": sim_helpers.inventory_vars(
            ansible_become=False, kubegpu_control_plane_vip=vip, kubegpu_control_plane_vip_interface="eth0",
            metallb_enabled=True, metallb_manifest_url="/etc/kubegpu-sim/metallb-native.yaml",
            metallb_address_pools=[{"name": "default", "addresses": [pool]}], metallb_ready_timeout=180),
        "children": {
            "kube_control_plane": {"hosts": {h: {"ansible_host": HOSTS[h]} for h in CONTROL_PLANES}},
            "kube_node": {"hosts": {h: {"ansible_host": HOSTS[h]} for h in GPU}},
            "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}},
            "gpu": {"hosts": {h: {} for h in GPU}},
        }}}
    directory = tmp_path_factory.mktemp("sharing")
    inventory = directory / "hosts.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    result = ansible_playbook("playbooks/site.yml", inventory, "--skip-tags", "preflight,validate",
                              "-e", "metallb_enabled=false", timeout=1800)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
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
    return cluster, inventory


def _vip_stages(inventory):
    playbook = inventory.parent / "vip-stages.yml"
    playbook.write_text(yaml.safe_dump([{"ansible.builtin.import_playbook": "kubegpu.cluster.%s" % s} for s in VIP_STAGES]))
    return playbook


def _holders(vip):
    found = []
    for name, container in HOSTS.items():
        if re.search(r"inet %s/32 " % re.escape(vip), docker("exec", container, "ip", "-4", "addr", "show", "eth0").stdout):
            found.append(name)
    return found


def test_the_cluster_is_built_through_the_vip(fleet):
    cluster, _inventory = fleet
    vip, _pool = _vip_and_pool()
    server = docker("exec", HOSTS["cp1"], "kubectl", "config", "view", "--kubeconfig", "/etc/kubernetes/admin.conf",
                    "-o", "jsonpath={.clusters[0].cluster.server}").stdout
    assert server == "https://%s:6443" % vip
    stored = yaml.safe_load(cluster.json("-n", "kube-system", "get", "cm", "kubeadm-config")["data"]["ClusterConfiguration"])
    assert stored["controlPlaneEndpoint"] == "%s:6443" % vip
    assert vip in stored["apiServer"]["certSANs"]
    assert {n["metadata"]["name"] for n in cluster.json("get", "nodes")["items"]} == set(HOSTS)

    lease = cluster.json("-n", "kube-system", "get", "lease", "plndr-cp-lock")
    assert _holders(vip) == [lease["spec"]["holderIdentity"]]
    for name in CONTROL_PLANES:
        pod = yaml.safe_load(docker("exec", HOSTS[name], "cat", "/etc/kubernetes/manifests/kube-vip.yaml").stdout)
        assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf", name
    for name in GPU:
        assert docker("exec", HOSTS[name], "test", "-e", "/etc/kubernetes/manifests/kube-vip.yaml",
                      check=False).returncode == 1, name
    # A worker reaches the API server at the VIP (anonymous /livez, kubeadm's default RBAC).
    livez = docker("exec", HOSTS["g1"], "curl", "-sk", "https://%s:6443/livez" % vip, check=False)
    assert livez.stdout.strip() == "ok", livez.stdout + livez.stderr


def test_the_notebook_service_gets_an_address_of_the_pool(fleet):
    cluster, _inventory = fleet
    _vip, pool = _vip_and_pool()
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


def test_a_second_run_of_the_vip_stages_changes_nothing(fleet, ansible_playbook):
    _cluster, inventory = fleet
    again = ansible_playbook(str(_vip_stages(inventory)), inventory, timeout=900)
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-6000:]
    recap = _recap(output)
    assert set(recap) == set(HOSTS) and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap


def test_check_mode_of_the_vip_stages_on_the_built_cluster_changes_nothing(fleet, ansible_playbook):
    _cluster, inventory = fleet
    vip, _pool = _vip_and_pool()
    checked = ansible_playbook(str(_vip_stages(inventory)), inventory, "--check", "--diff", timeout=900)
    output = checked.stdout + checked.stderr
    assert checked.returncode == 0, output[-6000:]
    recap = _recap(output)
    assert set(recap) == set(HOSTS) and all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), recap
    assert len(_holders(vip)) == 1


def _gpu_resources(cluster):
    """node -> {nvidia.com/* resource: allocatable} for the resources above 0."""
    nodes = cluster.json("get", "nodes")["items"]
    found = {}
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        found[node["metadata"]["name"]] = {k: int(v) for k, v in allocatable.items()
                                           if k.startswith("nvidia.com/") and int(v) > 0}
    return found


def _wait(cluster, want, timeout=240):
    deadline = time.monotonic() + timeout
    have = {}
    while time.monotonic() < deadline:
        have = _gpu_resources(cluster)
        if all(have.get(node, {}) == resources for node, resources in want.items()):
            return have
        time.sleep(3)
    return have


def _expected_by_kubegpu(node, variables):
    """kubegpu's own rule for the node's fixture GPUs (the sim's reading of its PCI tree and
    MIG layout, shaped as gpu_facts reports them)."""
    sys.path.insert(0, str(REPO / "tests" / "sim"))
    sys.path.insert(0, str(REPO / ".collections"))
    from kubegpu_sim import gpu as simgpu
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_resources, _gpu_sharing
    from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean
    layout = simgpu.load_mig_layout(str(MIG_LAYOUT)) if node == "g2" else {}
    gpus = simgpu.read_gpus(str(SIM_GPU / GPU[node]), node, layout)
    facts = {"count": len(gpus), "gpus": [
        {"index": g["index"], "mig_mode_current": "enabled" if g["mig_enabled"] else "disabled",
         "mig_devices": [m["profile"] for m in g["mig_devices"]] if g["mig_enabled"] else None} for g in gpus]}
    shared = _gpu_sharing.sharing(variables, boolean)
    return _gpu_resources.expected_resources(
        facts, mig_strategy=variables.get("nvidia_device_plugin_mig_strategy", "none"), replicas=shared["replicas"],
        rename_by_default=shared["rename_by_default"], sharing=shared["strategy"])


@pytest.mark.parametrize("mode, variables, want", MODES, ids=[m[0] for m in MODES])
def test_mode_ends_with_upstreams_resources(fleet, ansible_playbook, mode, variables, want):
    cluster, inventory = fleet
    if mode in RECREATE:
        cluster.kubectl("delete", "daemonset", "nvidia-device-plugin-daemonset", "--namespace", "kube-system",
                        "--ignore-not-found")
    result = ansible_playbook("playbooks/nvidia_device_plugin.yml", inventory, "-e", json.dumps(variables), timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    have = _wait(cluster, want)
    for node, resources in want.items():
        assert have.get(node, {}) == resources, (mode, node, have)
        expected = _expected_by_kubegpu(node, variables)
        if resources:
            assert expected["problems"] == [], (mode, node, expected)
            assert {k: v["count"] for k, v in expected["resources"].items()} == resources, (mode, node, expected)
        else:
            # The device plugin refuses the node; kubegpu's rule says so, and validate fails it.
            assert expected["problems"], (mode, node, expected)
    daemons = cluster.json("get", "daemonsets", "--namespace", "kube-system")["items"]
    names = {d["metadata"]["name"] for d in daemons}
    assert ("nvidia-device-plugin-mps-control-daemon" in names) == mode.startswith("mps"), names
    # A second run changes nothing.
    again = ansible_playbook("playbooks/nvidia_device_plugin.yml", inventory, "-e", json.dumps(variables), timeout=600)
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", again.stdout.split("PLAY RECAP")[-1], re.M)
    assert again.returncode == 0 and recap and all(changed == "0" for _host, changed in recap), again.stdout[-3000:]


FAKE_SMI = REPO / "tests" / "fixtures" / "gpu" / "fake_nvidia_smi.py"
SMI_STATE = "/etc/kubegpu-sim/smi-state.json"
SMI_WRAPPER = """#!/bin/sh
KUBEGPU_FAKE_SMI_STATE=%s KUBEGPU_FAKE_SMI_SIM_MIG=/etc/kubegpu-sim/mig.json \\
  exec python3 /usr/local/lib/kubegpu-sim/fake_nvidia_smi.py "$@"
""" % SMI_STATE


def _fake_smi_on_g2(tmp_path):
    """g2 gets tests/fixtures/gpu/fake_nvidia_smi.py as its nvidia-smi, in the state of the
    layout the simulated A100 has now (a100-mig.mig.json: 3g.40gb at 4:4, 2g.20gb at 0:2,
    1g.10gb at 2:1 and 3:1 - starts of NVIDIA's MIG User Guide placements); every call writes
    the layout back to /etc/kubegpu-sim/mig.json, which the simulated kubelet's NVML reads."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("fake_nvidia_smi", FAKE_SMI)
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)
    instances = [{"gi_id": i + 1, "profile": p, "start": start, "size": size, "cis": [{"ci_id": 0, "profile": p}]}
                 for i, (p, start, size) in enumerate([("3g.40gb", 4, 4), ("2g.20gb", 0, 2), ("1g.10gb", 2, 1),
                                                       ("1g.10gb", 3, 1)])]
    state = fake.new_state([fake.a100_80gb(0, mode="enabled", instances=instances)])
    assert fake.sim_layout(state) == json.loads(MIG_LAYOUT.read_text())
    (tmp_path / "state.json").write_text(json.dumps(state))
    (tmp_path / "nvidia-smi").write_text(SMI_WRAPPER)
    host = HOSTS["g2"]
    docker("exec", host, "mkdir", "-p", "/usr/local/lib/kubegpu-sim")
    docker("cp", str(FAKE_SMI), "%s:/usr/local/lib/kubegpu-sim/fake_nvidia_smi.py" % host)
    docker("cp", str(tmp_path / "state.json"), "%s:%s" % (host, SMI_STATE))
    docker("cp", str(tmp_path / "nvidia-smi"), "%s:/usr/local/bin/nvidia-smi" % host)
    docker("exec", host, "chmod", "0755", "/usr/local/bin/nvidia-smi")
    # A GPU host's kernel has the nvidia module loaded, which gpu_facts reads from
    # /sys/module/nvidia before it asks nvidia-smi (plugins/module_utils/_gpu_sysfs.driver_state).
    # The test host's /sys/module is the CI kernel's: a bind mount of empty directories named
    # as the kernel's modules, plus nvidia, stands in for it on g2.
    docker("exec", host, "sh", "-c", "mkdir -p /run/kubegpu-sim/modules/nvidia && for m in $(ls /sys/module); do"
           " mkdir -p /run/kubegpu-sim/modules/$m; done && mount --bind /run/kubegpu-sim/modules /sys/module")


def _smi_calls(host):
    return json.loads(docker("exec", host, "cat", SMI_STATE).stdout)["calls"]


def test_mig_layout_playbook_changes_the_layout_of_g2(fleet, tmp_path, ansible_playbook):
    """playbooks/mig_layout.yml end to end on the simulated cluster (the device plugin in MIG
    mixed): g2 (inventory nvidia_mig_layout all-1g.10gb) is cordoned, drained, its device plugin
    paused, the layout applied by the mig_layout module through the fake nvidia-smi, the plugin
    back, Ready with 7 x nvidia.com/mig-1g.10gb, smoke Job, uncordoned; the mig.config labels
    set; g1 and g3 (no layout) untouched; a second run changes nothing and creates no instance."""
    cluster, inventory = fleet
    _fake_smi_on_g2(tmp_path)
    data = yaml.safe_load(inventory.read_text())
    data["all"]["vars"]["nvidia_device_plugin_mig_strategy"] = "mixed"
    data["all"]["children"]["kube_node"]["hosts"]["g2"]["nvidia_mig_layout"] = "all-1g.10gb"
    mig_inventory = tmp_path / "hosts.yml"
    mig_inventory.write_text(yaml.safe_dump(data, sort_keys=False))

    # The device plugin in MIG mixed (see RECREATE) before the change: g2's four MIG devices.
    cluster.kubectl("delete", "daemonset", "nvidia-device-plugin-daemonset", "--namespace", "kube-system",
                    "--ignore-not-found")
    result = ansible_playbook("playbooks/nvidia_device_plugin.yml", mig_inventory, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    before = {"nvidia.com/mig-3g.40gb": 1, "nvidia.com/mig-2g.20gb": 1, "nvidia.com/mig-1g.10gb": 2}
    assert _wait(cluster, {"g2": before}).get("g2") == before

    mark = cluster.audit_mark()
    result = ansible_playbook("playbooks/mig_layout.yml", mig_inventory, timeout=1200)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    have = _wait(cluster, {"g2": {"nvidia.com/mig-1g.10gb": 7}})
    assert have["g2"] == {"nvidia.com/mig-1g.10gb": 7}, have
    assert have["g1"] == {"nvidia.com/gpu": 1} and have["g3"] == {"nvidia.com/gpu": 8}, have
    node = cluster.json("get", "node", "g2")
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/mig.config"] == "all-1g.10gb" and labels["nvidia.com/mig.config.state"] == "success"
    assert "nvidia.com/gpu.deploy.device-plugin" not in labels, labels
    assert not node["spec"].get("unschedulable")
    # g2 was cordoned (and uncordoned) by the run; no other node was written by it
    events = cluster.audit(mark)
    written = {e["objectRef"].get("name") for e in events if e["objectRef"].get("resource") == "nodes"
               and e["verb"] in ("patch", "update") and e["user"]["username"] == "kubernetes-admin"}
    assert written == {"g2"}, written
    recap = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", output.split("PLAY RECAP")[-1], re.M))
    assert recap.get("g2", "0") != "0" and recap.get("g1") == "0" and recap.get("g3") == "0", recap
    created = [c for c in _smi_calls(HOSTS["g2"]) if c[:1] == ["mig"] and "-cgi" in c]
    assert created, _smi_calls(HOSTS["g2"])

    calls = len(_smi_calls(HOSTS["g2"]))
    again = ansible_playbook("playbooks/mig_layout.yml", mig_inventory, timeout=1200)
    recap = re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", again.stdout.split("PLAY RECAP")[-1], re.M)
    assert again.returncode == 0 and recap and all(changed == "0" for _host, changed in recap), again.stdout[-3000:]
    assert not [c for c in _smi_calls(HOSTS["g2"])[calls:] if "-cgi" in c or "-dgi" in c or "-mig" in c]
