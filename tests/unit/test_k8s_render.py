# SPDX-License-Identifier: Apache-2.0
"""Render every Kubernetes manifest and kubeadm config the roles can apply, and check them.

No Kubernetes binaries run on the CI machines (shared/TESTING.md), so the templates are
rendered here with Ansible's own templating (the same Templar the template action uses,
with the role defaults, role vars and a test inventory's variables) and then:

- every Kubernetes object is validated against the JSON schemas of the target minor
  (kubernetes-validate, strict: unknown fields fail);
- kubeadm configs are checked against the kubeadm.k8s.io/v1beta4 field list in
  tests/fixtures/k8s/kubeadm-v1beta4-fields.yaml (from the upstream Go types);
- Calico custom resources and the device plugin config file against
  tests/fixtures/k8s/crd-fields.yaml;
- security settings, placement and the variant-specific values are asserted.

Variants: the example inventory (1 control plane, GPU + CPU worker), HA (3 control
planes), single node, MIG mixed, time-slicing, GFD + DCGM, Calico manifest mode.
"""
from __future__ import annotations

import os
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar
from ansible.vars.manager import VariableManager

ROOT = Path(__file__).resolve().parents[2]
# Resolve kubegpu.cluster.* filters from this checkout, as ansible-playbook does.
init_plugin_loader([str(ROOT / ".collections")])
from ansible_collections.kubegpu.cluster.tests.unit.compat import load_trusted, trust_as_template  # noqa: E402
ROLES = ROOT / "roles"
FIXTURES = ROOT / "tests" / "fixtures" / "k8s"
EXAMPLE = ROOT / "inventory" / "example" / "hosts.yml"
HA = FIXTURES / "inventories" / "ha" / "hosts.yml"
SINGLE = FIXTURES / "inventories" / "single" / "hosts.yml"

# Target minor of kubernetes_version (1.35.x); kubernetes-validate ships 1.35.0 schemas.
K8S_SCHEMA_VERSION = "1.35.0"

SECRETS = {
    "_kubernetes_join_token": "abcdef.0123456789abcdef",
    "_kubernetes_ca_cert_hash": "sha256:" + "a" * 64,
    "_kubernetes_certificate_key": "b" * 64,
}
# GPU facts as gpu_facts reports them for an H100 host (shape of tests/fixtures/gpu).
H100_FACTS = {
    "count": 8,
    "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "memory_mib": 81559,
              "compute_capability_major": 9, "compute_capability_minor": 0,
              "architecture": "hopper", "mig_capable": True} for i in range(8)],
    "driver": {"loaded": True, "version": "580.159.04"},
    "cuda_driver_version": "13.0",
}


def _load_fields(name):
    with (FIXTURES / name).open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


KUBEADM_FIELDS = _load_fields("kubeadm-v1beta4-fields.yaml")
CRD_FIELDS = _load_fields("crd-fields.yaml")


# --- rendering ------------------------------------------------------------------------

class Renderer:
    """Role defaults + role vars + inventory vars, templated as Ansible does."""

    def __init__(self, inventory, role, overrides=None, facts=None, published=None, host_facts=None):
        self.loader = DataLoader()
        self.inventory = InventoryManager(loader=self.loader, sources=[str(inventory)])
        self.vm = VariableManager(loader=self.loader, inventory=self.inventory)
        self.role = role
        self.overrides = overrides or {}
        self.facts = facts or {}
        # What earlier tasks of this run published per host (set_fact): in hostvars.
        self.published = published or {}
        # Other facts gathered in this run, per host (e.g. default_ipv4).
        self.host_facts = host_facts or {}

    def _file(self, path):
        if not path.is_file():
            return {}
        return load_trusted(self.loader, str(path)) or {}

    def host_vars(self, host):
        variables = {}
        variables.update(self._file(ROLES / "kubegpu" / "defaults" / "main.yml"))
        variables.update(self._file(ROLES / self.role / "defaults" / "main.yml"))
        variables.update(self.vm.get_vars(host=self.inventory.get_host(host)))
        variables["ansible_facts"] = {"kubegpu_gpu": self.facts.get(host, {"count": 0, "gpus": []}),
                                      "os_family": "Debian", **self.host_facts.get(host, {})}
        variables.update(self._file(ROLES / self.role / "vars" / "main.yml"))
        variables.update(self._published(host))
        variables.update(self.overrides)
        return variables

    def _published(self, host):
        """The facts this run published for host: the kubegpu role's kubegpu_gpu_node (from
        the facts given here, or the gpu group, as roles/kubegpu/tasks/main.yml decides it),
        then whatever the test says was published."""
        facts = self.facts.get(host, {"count": 0, "gpus": []})
        inventory = self.vm.get_vars(host=self.inventory.get_host(host))
        gpu_group = inventory.get("kubegpu_gpu_group", "gpu")
        published = {"kubegpu_gpu_node": bool(inventory["kubegpu_gpu_node"]) if "kubegpu_gpu_node" in inventory
                     else (int(facts.get("count", 0)) > 0
                           or host in self.inventory.get_groups_dict().get(gpu_group, []))}
        published.update(self.published.get(host, {}))
        return published

    def other_host_vars(self, host):
        """What hostvars[host] holds for another host: inventory variables, facts, what
        was published with set_fact and the overrides (extra vars) - never role defaults or
        role vars (Ansible keeps those to the play that runs the role)."""
        variables = dict(self.vm.get_vars(host=self.inventory.get_host(host)))
        variables["ansible_facts"] = {"kubegpu_gpu": self.facts.get(host, {"count": 0, "gpus": []}),
                                      "os_family": "Debian", **self.host_facts.get(host, {})}
        variables.update(self._published(host))
        # Extra vars (-e) are in every host's hostvars too.
        variables.update(self.overrides)
        return variables

    def templar(self, host):
        variables = self.host_vars(host)
        variables["hostvars"] = {h.name: self.other_host_vars(h.name) for h in self.inventory.get_hosts()}
        templates = ROLES / self.role / "templates"
        return Templar(loader=self.loader, variables=variables).copy_with_new_env(
            searchpath=[str(templates)], available_variables=variables)

    def expr(self, host, expression):
        return self.templar(host).template(trust_as_template("{{ %s }}" % expression))

    def render(self, host, template, **extra):
        templar = self.templar(host)
        if extra:
            templar = templar.copy_with_new_env(available_variables={**templar.available_variables, **extra})
        source = (ROLES / self.role / "templates" / template).read_text(encoding="utf-8")
        text = templar.template(trust_as_template(source), escape_backslashes=False)
        return text, [doc for doc in yaml.safe_load_all(text) if doc is not None]


# --- checkers -------------------------------------------------------------------------

def check_fields(value, spec, path="$"):
    """Problems of value against a whitelist spec (see the fixtures' notation)."""
    problems = []
    if spec == "any":
        return problems
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return ["%s: expected an object, got %r" % (path, value)]
        for key, item in value.items():
            if key not in spec:
                problems.append("%s.%s: unknown field" % (path, key))
            else:
                problems += check_fields(item, spec[key], "%s.%s" % (path, key))
        return problems
    if isinstance(spec, list):
        if not isinstance(value, list):
            return ["%s: expected a list, got %r" % (path, value)]
        for index, item in enumerate(value):
            problems += check_fields(item, spec[0], "%s[%d]" % (path, index))
        return problems
    if spec.startswith("enum:"):
        if value not in spec[5:].split("|"):
            problems.append("%s: %r not one of %s" % (path, value, spec[5:]))
        return problems
    types = {"str": str, "bool": bool, "int": int, "duration": str, "intstr": (int, str)}
    if not isinstance(value, types[spec]) or (spec in ("int", "intstr") and isinstance(value, bool)):
        problems.append("%s: expected %s, got %r" % (path, spec, value))
    return problems


def validate_k8s(doc):
    """Strict schema validation of a built-in Kubernetes object."""
    kubernetes_validate.validate(doc, K8S_SCHEMA_VERSION, strict=True)


def validate_kubeadm(docs):
    kinds = []
    for doc in docs:
        kind = doc.get("kind")
        assert kind in KUBEADM_FIELDS, "unexpected kubeadm config kind %r" % kind
        problems = check_fields(doc, KUBEADM_FIELDS[kind], kind)
        assert not problems, problems
        kinds.append(kind)
    return kinds


def by_kind(docs, kind):
    found = [d for d in docs if d.get("kind") == kind]
    assert found, "no %s rendered" % kind
    return found


def container_security(pod_spec):
    return [c.get("securityContext") or {} for c in pod_spec["containers"]]


# --- kubernetes role: kubeadm configs -------------------------------------------------

def test_schema_version_is_shipped():
    assert K8S_SCHEMA_VERSION in kubernetes_validate.utils.all_versions()


def test_kubernetes_version_matches_schema_minor():
    renderer = Renderer(EXAMPLE, "kubernetes")
    minor = renderer.expr("cp1", "_kubernetes_minor")
    assert K8S_SCHEMA_VERSION.startswith(minor + ".")


def test_example_init_config():
    renderer = Renderer(EXAMPLE, "kubernetes")
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    assert validate_kubeadm(docs) == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    init, cluster, kubelet = docs
    assert init["nodeRegistration"] == {"name": "cp1", "criSocket": "unix:///var/run/containerd/containerd.sock"}
    assert "taints" not in init["nodeRegistration"]  # 3 hosts: kubeadm's control-plane taint stays
    assert cluster["networking"]["podSubnet"] == "192.168.0.0/16"
    assert cluster["networking"]["serviceSubnet"] == "10.96.0.0/12"
    assert cluster["kubernetesVersion"] == "v1.35.4"
    assert "controlPlaneEndpoint" not in cluster
    assert kubelet["cgroupDriver"] == "systemd"


def test_example_worker_join_config():
    renderer = Renderer(EXAMPLE, "kubernetes", overrides=SECRETS)
    text, docs = renderer.render("gpu1", "kubeadm-join.yaml.j2")
    assert validate_kubeadm(docs) == ["JoinConfiguration"]
    join = docs[0]
    assert join["discovery"]["bootstrapToken"] == {
        "apiServerEndpoint": "10.10.0.11:6443",
        "token": SECRETS["_kubernetes_join_token"],
        "caCertHashes": [SECRETS["_kubernetes_ca_cert_hash"]],
    }
    assert "controlPlane" not in join
    assert SECRETS["_kubernetes_certificate_key"] not in text


def test_ha_init_config():
    renderer = Renderer(HA, "kubernetes")
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    validate_kubeadm(docs)
    init, cluster = docs[0], docs[1]
    assert cluster["controlPlaneEndpoint"] == "k8s-api.example.com:6443"
    assert cluster["apiServer"]["certSANs"] == ["10.10.0.10", "k8s-api.example.com"]
    assert cluster["networking"]["podSubnet"] == "10.244.0.0/16"
    assert init["localAPIEndpoint"] == {"advertiseAddress": "10.10.0.11", "bindPort": 6443}
    assert renderer.expr("cp1", "_kubernetes_first_control_plane") == "cp1"
    assert renderer.expr("cp1", "_kubernetes_workers") == ["gpu1", "cpu1"]


def test_ha_control_plane_join_config():
    renderer = Renderer(HA, "kubernetes", overrides=SECRETS)
    _text, docs = renderer.render("cp2", "kubeadm-join.yaml.j2")
    validate_kubeadm(docs)
    join = docs[0]
    assert join["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "k8s-api.example.com:6443"
    assert join["controlPlane"] == {
        "certificateKey": SECRETS["_kubernetes_certificate_key"],
        "localAPIEndpoint": {"advertiseAddress": "10.10.0.12", "bindPort": 6443},
    }


def test_ha_requires_an_endpoint():
    """The role's first assert: >1 control plane without an endpoint fails early."""
    condition = "_kubernetes_control_planes | length == 1 or kubernetes_control_plane_endpoint | length > 0"
    assert Renderer(HA, "kubernetes").expr("cp1", condition) is True
    no_endpoint = Renderer(HA, "kubernetes", overrides={"kubernetes_control_plane_endpoint": ""})
    assert no_endpoint.expr("cp1", condition) is False
    assert Renderer(EXAMPLE, "kubernetes").expr("cp1", condition) is True


def test_join_endpoint_is_the_address_the_api_server_advertises(tmp_path):
    """Without an HA endpoint, workers join the first control plane at the address its API
    server advertises (kubeadm's default: the default route's address), not at the name the
    controller uses to reach it: an SSH alias or container name other nodes cannot resolve.
    Found by the simulated control plane (the Molecule fleet's joins hung on the inventory
    name); before the fix the endpoint was ansible_host."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"children": {
        "kube_control_plane": {"hosts": {"cp1": {"ansible_host": "bastion-alias-cp1"}}},
        "kube_node": {"hosts": {"w1": {"ansible_host": "bastion-alias-w1"}}},
        "k8s_cluster": {"children": {"kube_control_plane": {}, "kube_node": {}}}}}}))
    facts = {"cp1": {"default_ipv4": {"address": "10.0.0.11"}}}
    assert Renderer(inventory, "kubernetes", host_facts=facts).expr("w1", "_kubernetes_api_endpoint") == "10.0.0.11:6443"
    advertised = Renderer(inventory, "kubernetes", host_facts=facts,
                          published={"cp1": {"kubernetes_apiserver_advertise_address": "10.1.0.11"}})
    assert advertised.expr("w1", "_kubernetes_api_endpoint") == "10.1.0.11:6443"
    endpoint = Renderer(inventory, "kubernetes", host_facts=facts,
                        overrides={"kubernetes_control_plane_endpoint": "k8s-api.example.com"})
    assert endpoint.expr("w1", "_kubernetes_api_endpoint") == "k8s-api.example.com:6443"
    # No facts for the first control plane (e.g. a --limit that left it out): ansible_host.
    assert Renderer(inventory, "kubernetes").expr("w1", "_kubernetes_api_endpoint") == "bastion-alias-cp1:6443"


def test_single_node_init_config_is_untainted():
    renderer = Renderer(SINGLE, "kubernetes")
    _text, docs = renderer.render("box1", "kubeadm-init.yaml.j2")
    validate_kubeadm(docs)
    assert docs[0]["nodeRegistration"]["taints"] == []
    assert renderer.expr("box1", "_kubernetes_single_node") is True


def test_kube_proxy_config_is_optional():
    renderer = Renderer(EXAMPLE, "kubernetes", overrides={"kubernetes_kube_proxy_mode": "nftables"})
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    assert validate_kubeadm(docs)[-1] == "KubeProxyConfiguration"
    assert docs[-1]["mode"] == "nftables"
    assert docs[-1]["clusterCIDR"] == "192.168.0.0/16"


def test_whitelist_catches_unknown_fields():
    problems = check_fields({"kind": "InitConfiguration", "apiVersion": "kubeadm.k8s.io/v1beta4",
                             "nodeRegistration": {"nmae": "x"}}, KUBEADM_FIELDS["InitConfiguration"])
    assert problems == ["$.nodeRegistration.nmae: unknown field"]
    assert check_fields({"apiVersion": "kubeadm.k8s.io/v1beta3"}, KUBEADM_FIELDS["InitConfiguration"])


def test_repository_urls():
    renderer = Renderer(EXAMPLE, "kubernetes")
    assert renderer.expr("cp1", "kubernetes_repo_url") == "https://pkgs.k8s.io/core:/stable:/v1.35"
    assert renderer.expr("cp1", "kubernetes_repo_key_url") == "https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key"
    assert renderer.expr("cp1", "_kubernetes_deb_version") == "1.35.4-1.1"


# --- calico ---------------------------------------------------------------------------

@pytest.mark.parametrize("inventory, cidr", [(EXAMPLE, "192.168.0.0/16"), (HA, "10.244.0.0/16")])
def test_calico_installation(inventory, cidr):
    renderer = Renderer(inventory, "calico")
    _text, docs = renderer.render("cp1", "installation.yaml.j2")
    installation = by_kind(docs, "Installation")[0]
    for doc in docs:
        assert not check_fields(doc, CRD_FIELDS[doc["kind"]], doc["kind"])
    pool = installation["spec"]["calicoNetwork"]["ipPools"][0]
    assert pool["cidr"] == cidr
    assert pool["encapsulation"] == "VXLANCrossSubnet"
    assert pool["natOutgoing"] == "Enabled"
    assert "mtu" not in installation["spec"]["calicoNetwork"]


def test_calico_mtu_and_encapsulation():
    renderer = Renderer(EXAMPLE, "calico", overrides={
        "calico_mtu": 1450, "calico_encapsulation": "IPIP", "calico_bgp": "Enabled", "calico_registry": "mirror.example.com"})
    _text, docs = renderer.render("cp1", "installation.yaml.j2")
    spec = by_kind(docs, "Installation")[0]["spec"]
    assert not check_fields(by_kind(docs, "Installation")[0], CRD_FIELDS["Installation"])
    assert spec["calicoNetwork"]["mtu"] == 1450
    assert spec["calicoNetwork"]["bgp"] == "Enabled"
    assert spec["calicoNetwork"]["ipPools"][0]["encapsulation"] == "IPIP"
    assert spec["registry"] == "mirror.example.com"


@pytest.mark.parametrize("encapsulation, ipip, vxlan", [
    ("VXLANCrossSubnet", "Never", "CrossSubnet"), ("IPIP", "Always", "Never"), ("None", "Never", "Never")])
def test_calico_manifest_mode_ippool(encapsulation, ipip, vxlan):
    renderer = Renderer(EXAMPLE, "calico", overrides={"calico_install_method": "manifest",
                                                      "calico_encapsulation": encapsulation})
    _text, docs = renderer.render("cp1", "ippool.yaml.j2")
    pool = by_kind(docs, "IPPool")[0]
    assert not check_fields(pool, CRD_FIELDS["IPPool"])
    assert (pool["spec"]["ipipMode"], pool["spec"]["vxlanMode"]) == (ipip, vxlan)
    assert pool["spec"]["cidr"] == "192.168.0.0/16"


def test_calico_urls_are_pinned():
    renderer = Renderer(EXAMPLE, "calico")
    url = renderer.expr("cp1", "calico_operator_manifest_url")
    assert url == "https://raw.githubusercontent.com/projectcalico/calico/v3.31.7/manifests/tigera-operator.yaml"


# --- nvidia_device_plugin -------------------------------------------------------------

def _plugin(overrides=None, inventory=EXAMPLE, facts=None):
    renderer = Renderer(inventory, "nvidia_device_plugin", overrides=overrides, facts=facts)
    _text, docs = renderer.render("cp1", "device-plugin.yaml.j2")
    for doc in docs:
        validate_k8s(doc)
    configmap = by_kind(docs, "ConfigMap")[0]
    config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert not check_fields(config, CRD_FIELDS["DevicePluginConfig"], "config.yaml")
    return renderer, by_kind(docs, "DaemonSet")[0], config


# The GPU Operator / mig-parted convention: a node whose nvidia.com/gpu.deploy.device-plugin
# is "false" or "paused-for-mig-change" runs no device plugin (nor MPS daemon).
PAUSED = {"key": "nvidia.com/gpu.deploy.device-plugin", "operator": "NotIn", "values": ["false", "paused-for-mig-change"]}


def _assert_gpu_placement(pod_spec, paused=True):
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    present = {"key": "nvidia.com/gpu.present", "operator": "In", "values": ["true"]}
    assert terms == [{"matchExpressions": [present, PAUSED] if paused else [present]}]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod_spec["tolerations"]
    assert pod_spec["priorityClassName"] == "system-node-critical"


def test_device_plugin_default():
    _renderer, daemonset, config = _plugin()
    pod = daemonset["spec"]["template"]["spec"]
    _assert_gpu_placement(pod)
    assert pod["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.20.1"
    for security in container_security(pod):
        assert security == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert config == {"version": "v1", "flags": {
        "migStrategy": "none", "failOnInitError": True,
        "plugin": {"deviceListStrategy": "envvar", "deviceIDStrategy": "uuid"}}}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["CONFIG_FILE"] == "/config/config.yaml"
    assert "NVIDIA_MIG_MONITOR_DEVICES" not in env


@pytest.mark.parametrize("strategy", ["single", "mixed"])
def test_device_plugin_mig_adds_only_sys_admin(strategy):
    _renderer, daemonset, config = _plugin({"nvidia_device_plugin_mig_strategy": strategy})
    pod = daemonset["spec"]["template"]["spec"]
    for security in container_security(pod):
        assert security["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
        # Kubernetes refuses allowPrivilegeEscalation=false with CAP_SYS_ADMIN
        assert "allowPrivilegeEscalation" not in security
        assert not security.get("privileged")
    assert config["flags"]["migStrategy"] == strategy
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["NVIDIA_MIG_MONITOR_DEVICES"] == "all"


def test_device_plugin_time_slicing():
    _renderer, daemonset, config = _plugin({"nvidia_device_plugin_time_slicing_replicas": 4})
    assert config["sharing"]["timeSlicing"]["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert config["sharing"]["timeSlicing"]["renameByDefault"] is False
    for security in container_security(daemonset["spec"]["template"]["spec"]):
        assert security["capabilities"] == {"drop": ["ALL"]}


def test_device_plugin_mps():
    """MPS (k8s-device-plugin api/config/v1/sharing.go): the sharing.mps block, mpsRoot, the
    plugin's MPS mounts and the control daemon DaemonSet (upstream chart
    templates/daemonset-mps-control-daemon.yml)."""
    overrides = {"nvidia_device_plugin_mps_replicas": 4}
    renderer, daemonset, config = _plugin(overrides)
    assert config["sharing"] == {"mps": {"renameByDefault": False, "failRequestsGreaterThanOne": True,
                                         "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}}
    assert config["flags"]["mpsRoot"] == "/run/nvidia/mps"
    pod = daemonset["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["mps-root"] == "/mps" and mounts["mps-shm"] == "/dev/shm"
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert volumes["mps-root"] == "/run/nvidia/mps" and volumes["mps-shm"] == "/run/nvidia/mps/shm"
    for security in container_security(pod):
        assert security == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    manifests = renderer.expr("cp1", "_nvidia_device_plugin_manifests")
    assert manifests[manifests.index("device-plugin.yaml") + 1] == "mps-control-daemon.yaml"
    _text, docs = renderer.render("cp1", "mps-control-daemon.yaml.j2")
    for doc in docs:
        validate_k8s(doc)
    (daemon,) = by_kind(docs, "DaemonSet")
    daemon_pod = daemon["spec"]["template"]["spec"]
    _assert_gpu_placement(daemon_pod)
    assert daemon_pod["hostPID"] is True
    assert daemon_pod["initContainers"][0]["command"] == ["mps-control-daemon", "mount-shm"]
    assert daemon_pod["initContainers"][0]["volumeMounts"][0]["mountPropagation"] == "Bidirectional"
    assert daemon_pod["containers"][0]["command"] == ["mps-control-daemon"]
    assert daemon_pod["containers"][0]["securityContext"] == {"privileged": True}
    # The daemon reads the plugin's config (the same ConfigMap) and rolls with it.
    assert {"name": "config", "configMap": {"name": "nvidia-device-plugin-config"}} in daemon_pod["volumes"]
    assert daemon["spec"]["template"]["metadata"]["annotations"] == daemonset["spec"]["template"]["metadata"]["annotations"]


def test_device_plugin_mps_settings():
    _r, _d, config = _plugin({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mps_rename_by_default": True,
                              "nvidia_device_plugin_mps_fail_requests_greater_than_one": False,
                              "nvidia_device_plugin_mps_root": "/var/run/mps"})
    assert config["sharing"]["mps"]["renameByDefault"] is True
    assert config["sharing"]["mps"]["failRequestsGreaterThanOne"] is False
    assert config["flags"]["mpsRoot"] == "/var/run/mps"
    assert "timeSlicing" not in config["sharing"]


def test_device_plugin_without_mps_has_no_daemon():
    renderer, daemonset, config = _plugin()
    assert "mps-control-daemon.yaml" not in renderer.expr("cp1", "_nvidia_device_plugin_manifests")
    names = {v["name"] for v in daemonset["spec"]["template"]["spec"]["volumes"]}
    assert not names & {"mps-root", "mps-shm", "driver-root"}
    assert "mpsRoot" not in config["flags"] and "sharing" not in config


@pytest.mark.parametrize("strategy", ["cdi-cri", "cdi-annotations"])
def test_device_plugin_cdi_strategy(strategy):
    """A cdi-* strategy: the plugin generates its CDI spec from the host's driver root, mounted
    at its containerDriverRoot /driver-root, with hooks pointing to the host's nvidia-ctk."""
    _r, daemonset, config = _plugin({"nvidia_device_plugin_device_list_strategy": strategy})
    assert config["flags"]["plugin"] == {"deviceListStrategy": strategy, "deviceIDStrategy": "uuid",
                                         "nvidiaCTKPath": "/usr/bin/nvidia-ctk"}
    pod = daemonset["spec"]["template"]["spec"]
    assert {"name": "driver-root", "mountPath": "/driver-root", "readOnly": True} in pod["containers"][0]["volumeMounts"]
    assert {"name": "driver-root", "hostPath": {"path": "/", "type": "Directory"}} in pod["volumes"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["NVIDIA_DRIVER_ROOT"] == "/"


def test_device_plugin_volume_mounts_adds_sys_admin():
    """Upstream's chart adds CAP_SYS_ADMIN for the volume-mounts strategy too (requiresCapSysAdmin)."""
    _r, daemonset, config = _plugin({"nvidia_device_plugin_device_list_strategy": "volume-mounts"})
    assert config["flags"]["plugin"]["deviceListStrategy"] == "volume-mounts"
    for security in container_security(daemonset["spec"]["template"]["spec"]):
        assert security["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}


def test_device_plugin_allocation_policy():
    _r, _d, config = _plugin({"nvidia_device_plugin_shared_devices_allocation_policy": "packed"})
    assert config["flags"]["plugin"]["sharedDevicesAllocationPolicy"] == "packed"


def test_device_plugin_settings_refused_by_the_stage():
    """The stage's own check (tasks/main.yml) refuses what preflight refuses: the same filters."""
    renderer = Renderer(EXAMPLE, "nvidia_device_plugin", overrides={
        "nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_time_slicing_replicas": 2,
        "nvidia_device_plugin_device_list_strategy": "cdi-cri", "kubegpu_cdi": False})
    problems = renderer.expr("cp1", "_nvidia_device_plugin_settings | kubegpu.cluster.gpu_sharing_problems")
    assert [p["variable"] for p in problems] == ["nvidia_device_plugin_mps_replicas",
                                                 "nvidia_device_plugin_device_list_strategy"]


def test_device_plugin_config_change_rolls_the_pods():
    _r, default, _c = _plugin()
    _r, sliced, _c = _plugin({"nvidia_device_plugin_time_slicing_replicas": 4})
    key = "kubegpu.io/config-sha256"
    assert default["spec"]["template"]["metadata"]["annotations"][key] != \
        sliced["spec"]["template"]["metadata"]["annotations"][key]


def test_runtime_class_auto():
    # container_runtime did not say nvidia is the default: RuntimeClass + runtimeClassName
    renderer, daemonset, _config = _plugin(inventory=HA)
    assert renderer.expr("cp1", "_nvidia_device_plugin_gpu_hosts") == ["gpu1"]
    assert daemonset["spec"]["template"]["spec"]["runtimeClassName"] == "nvidia"
    assert renderer.expr("cp1", "_nvidia_device_plugin_manifests")[0] == "runtimeclass.yaml"
    _text, docs = renderer.render("cp1", "runtimeclass.yaml.j2")
    validate_k8s(docs[0])
    assert docs[0]["handler"] == "nvidia"


def test_runtime_class_not_needed_when_nvidia_is_default():
    # what container_runtime published for the GPU host in this run (docs/contracts.md)
    renderer = Renderer(HA, "nvidia_device_plugin", published={
        "gpu1": {"container_runtime_cri_handlers": {"default": "nvidia", "names": ["nvidia", "runc"]}}})
    assert renderer.expr("cp1", "_nvidia_device_plugin_use_runtime_class") is False
    _text, docs = renderer.render("cp1", "device-plugin.yaml.j2")
    assert "runtimeClassName" not in by_kind(docs, "DaemonSet")[0]["spec"]["template"]["spec"]
    assert "runtimeclass.yaml" not in renderer.expr("cp1", "_nvidia_device_plugin_manifests")


def test_runtime_class_never():
    renderer, daemonset, _config = _plugin({"nvidia_device_plugin_runtime_class": "never"})
    assert "runtimeClassName" not in daemonset["spec"]["template"]["spec"]


def test_gpu_hosts_from_detected_facts():
    renderer = Renderer(EXAMPLE, "nvidia_device_plugin", facts={"gpu1": H100_FACTS})
    assert renderer.expr("cp1", "_nvidia_device_plugin_gpu_hosts") == ["gpu1"]


@pytest.mark.parametrize("mig", ["none", "mixed"])
def test_gfd_and_dcgm_exporter(mig):
    renderer = Renderer(EXAMPLE, "nvidia_device_plugin", overrides={
        "nvidia_device_plugin_gfd_enabled": True, "nvidia_device_plugin_dcgm_exporter_enabled": True,
        "nvidia_device_plugin_mig_strategy": mig})
    assert renderer.expr("cp1", "_nvidia_device_plugin_manifests")[-2:] == [
        "gpu-feature-discovery.yaml", "dcgm-exporter.yaml"]
    _text, gfd = renderer.render("cp1", "gpu-feature-discovery.yaml.j2")
    _text, dcgm = renderer.render("cp1", "dcgm-exporter.yaml.j2")
    for doc in gfd + dcgm:
        validate_k8s(doc)
    gfd_pod = by_kind(gfd, "DaemonSet")[0]["spec"]["template"]["spec"]
    _assert_gpu_placement(gfd_pod, paused=False)
    assert gfd_pod["containers"][0]["command"] == ["gpu-feature-discovery"]
    for security in container_security(gfd_pod):
        assert security["capabilities"]["drop"] == ["ALL"]
        assert ("add" in security["capabilities"]) == (mig != "none")
    dcgm_pod = by_kind(dcgm, "DaemonSet")[0]["spec"]["template"]["spec"]
    _assert_gpu_placement(dcgm_pod, paused=False)
    assert dcgm_pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["SYS_ADMIN"]}
    assert by_kind(dcgm, "Service")[0]["spec"]["ports"][0]["port"] == 9400


# --- validate -------------------------------------------------------------------------

@pytest.mark.parametrize("kind, image, command, runtime_class", [
    ("nvidia-smi", "nvcr.io/nvidia/cuda:12.2.2-base-ubuntu22.04", ["nvidia-smi"], "nvidia"),
    ("cuda-sample", "nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0", [], ""),
])
def test_validate_job(kind, image, command, runtime_class):
    renderer = Renderer(EXAMPLE, "validate", facts={"gpu1": H100_FACTS})
    suffix = renderer.expr("gpu1", "_validate_job_suffix")
    _text, docs = renderer.render(
        "gpu1", "job.yaml.j2", _validate_job_kind=kind, _validate_job_image=image, _validate_job_resource="nvidia.com/gpu",
        _validate_job_command=command, _validate_job_name="kubegpu-validate-%s-%s" % (kind, suffix),
        _validate_runtime_class_name=runtime_class)
    job = docs[0]
    validate_k8s(job)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/hostname": "gpu1"}
    assert pod["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 300
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": 1}
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert ("command" in pod["containers"][0]) == bool(command)
    assert pod.get("runtimeClassName", "") == runtime_class
    assert renderer.expr("gpu1", "validate_expected_resources")["resources"] == {
        "nvidia.com/gpu": {"count": 8, "exact": True}}


def test_validate_expected_gpus_with_time_slicing():
    renderer = Renderer(EXAMPLE, "validate", overrides={"validate_gpu_replicas": 4}, facts={"gpu1": H100_FACTS})
    assert renderer.expr("gpu1", "validate_expected_resources")["resources"]["nvidia.com/gpu"]["count"] == 32


@pytest.mark.parametrize("overrides, name, count", [
    ({"nvidia_device_plugin_mps_replicas": 4}, "nvidia.com/gpu", 32),
    ({"nvidia_device_plugin_mps_replicas": 2, "nvidia_device_plugin_mps_rename_by_default": True},
     "nvidia.com/gpu.shared", 16),
    ({"nvidia_device_plugin_time_slicing_replicas": 3}, "nvidia.com/gpu", 24),
    ({"nvidia_device_plugin_time_slicing_replicas": 3, "nvidia_device_plugin_time_slicing_rename_by_default": True},
     "nvidia.com/gpu.shared", 24),
])
def test_validate_expected_resources_follow_the_sharing(overrides, name, count):
    """validate (and add_node / upgrade_driver through it) expects the sharing the device plugin
    stage renders, MPS or time-slicing, from the same variables."""
    renderer = Renderer(EXAMPLE, "validate", overrides=overrides, facts={"gpu1": H100_FACTS})
    assert renderer.expr("gpu1", "validate_expected_resources")["resources"] == {name: {"count": count, "exact": True}}


def test_job_names_are_valid_for_odd_node_names():
    renderer = Renderer(EXAMPLE, "validate", overrides={"validate_node_name": "GPU_Node.07.example.com"})
    assert renderer.expr("gpu1", "_validate_job_suffix") == "gpu-node-07-example-com"


# --- gpu_node_labels ------------------------------------------------------------------
# These expressions call the kubegpu.cluster.gpu_node_labels filter. Ansible resolves it
# through its collection loader, which cannot take over once another test has imported
# ansible_collections.* from the pytest pythonpath, so they run in a fresh interpreter.

def _fresh_expr(inventory, host, expression, overrides=None, facts=None):
    import json
    import subprocess
    import sys
    script = (
        "import json, runpy, sys\n"
        "m = runpy.run_path(sys.argv[1])\n"
        "args = json.loads(sys.argv[2])\n"
        "r = m['Renderer'](args['inventory'], 'gpu_node_labels', overrides=args['overrides'], facts=args['facts'])\n"
        "print(json.dumps(r.expr(args['host'], args['expression'])))\n")
    args = {"inventory": str(inventory), "host": host, "expression": expression,
            "overrides": overrides or {}, "facts": facts or {}}
    done = subprocess.run([sys.executable, "-c", script, __file__, json.dumps(args)],
                          capture_output=True, text=True, check=False, cwd=str(ROOT))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_gpu_node_labels_desired():
    labels = _fresh_expr(EXAMPLE, "gpu1", "_gpu_node_labels_desired", facts={"gpu1": H100_FACTS})
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert _fresh_expr(EXAMPLE, "cpu1", "_gpu_node_labels_desired", facts={"gpu1": H100_FACTS}) == {}
    assert Renderer(EXAMPLE, "gpu_node_labels", facts={"gpu1": H100_FACTS}).expr("gpu1", "_gpu_node_labels_taints") == []
    tainted = Renderer(EXAMPLE, "gpu_node_labels", overrides={"gpu_node_labels_taint": True},
                       facts={"gpu1": H100_FACTS})
    assert tainted.expr("gpu1", "_gpu_node_labels_taints") == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    assert tainted.expr("cpu1", "_gpu_node_labels_taints") == []


def test_group_pinned_gpu_host_without_facts_is_labelled_present():
    assert _fresh_expr(HA, "gpu1", "_gpu_node_labels_desired") == {"nvidia.com/gpu.present": "true"}


def test_every_template_is_covered():
    """A new template must get a test here."""
    covered = {
        "kubernetes": {"kubeadm-init.yaml.j2", "kubeadm-join.yaml.j2"},
        "calico": {"installation.yaml.j2", "ippool.yaml.j2"},
        "nvidia_device_plugin": {"_common.j2", "device-plugin.yaml.j2", "runtimeclass.yaml.j2",
                                 "gpu-feature-discovery.yaml.j2", "dcgm-exporter.yaml.j2",
                                 "mps-control-daemon.yaml.j2"},
        "validate": {"job.yaml.j2"},
    }
    for role in ("kubernetes", "calico", "nvidia_device_plugin", "gpu_node_labels", "validate"):
        templates = ROLES / role / "templates"
        found = set(os.listdir(templates)) if templates.is_dir() else set()
        assert found == covered.get(role, set()), role


def test_schema_validation_is_strict():
    """An unknown field in a rendered object must fail (guards against a lax validator)."""
    renderer = Renderer(EXAMPLE, "nvidia_device_plugin")
    _text, docs = renderer.render("cp1", "device-plugin.yaml.j2")
    daemonset = by_kind(docs, "DaemonSet")[0]
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContxt"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(daemonset)


# --- CDI: one setting (kubegpu_cdi) for containerd, the device plugin and the Operator ---------

@pytest.mark.parametrize("overrides, gpu_node, operator", [
    ({}, True, True),                                               # the GPU Operator chart's default
    ({"kubegpu_cdi": False}, False, False),
    ({"kubegpu_cdi": False, "container_runtime_nvidia_cdi": True}, True, True),   # the stage's override
    ({"container_runtime_nvidia_cdi": False}, False, False),
])
def test_cdi_is_one_setting(overrides, gpu_node, operator):
    runtime = Renderer(EXAMPLE, "container_runtime", overrides=overrides, facts={"gpu1": H100_FACTS})
    assert runtime.expr("gpu1", "_container_runtime_cdi_wanted | bool") is gpu_node
    assert runtime.expr("cpu1", "_container_runtime_cdi_wanted | bool") is False
    _text, (values,) = Renderer(EXAMPLE, "gpu_operator", overrides=overrides).render("cp1", "values.yaml.j2")
    assert values["cdi"] == {"enabled": operator}
