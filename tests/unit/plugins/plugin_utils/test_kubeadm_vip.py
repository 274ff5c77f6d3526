# SPDX-License-Identifier: Apache-2.0
"""The control-plane VIP in the kubernetes role: kubeadm's endpoint, certificate names, the
preflight-error kubeadm must ignore for kube-vip's manifest, and kube-vip's static Pod
(plugins/plugin_utils/_kubeadm.py), rendered with the role's variables and validated against the
Kubernetes 1.35 schemas and the kubeadm v1beta4 field list."""

from __future__ import annotations

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _kubeadm as k
from ansible_collections.kubegpu.cluster.tests.unit.test_k8s_render import (
    HA, SECRETS, Renderer, validate_k8s, validate_kubeadm)

VIP = {"kubernetes_control_plane_endpoint": "", "kubegpu_control_plane_vip": "10.10.0.250"}


@pytest.mark.parametrize("endpoint, vip, expected", [
    ("lb.example.com:6443", "10.0.0.9", "lb.example.com:6443"),
    ("", "10.0.0.9", "10.0.0.9:6443"),
    ("", "fd00::9", "[fd00::9]:6443"),
    ("", "", ""),
    (None, None, ""),
])
def test_control_plane_endpoint(endpoint, vip, expected):
    assert k.control_plane_endpoint(endpoint, vip, 6443) == expected


@pytest.mark.parametrize("endpoint, host", [
    ("lb.example.com:6443", "lb.example.com"), ("10.0.0.9", "10.0.0.9"), ("[fd00::9]:6443", "fd00::9")])
def test_endpoint_host(endpoint, host):
    assert k.endpoint_host(endpoint) == host


@pytest.mark.parametrize("first, initialised, version, path", [
    (True, False, "1.35.4", "/etc/kubernetes/super-admin.conf"),
    (True, True, "1.35.4", "/etc/kubernetes/admin.conf"),
    (False, False, "1.35.4", "/etc/kubernetes/admin.conf"),
    (True, False, "1.28.9", "/etc/kubernetes/admin.conf"),
])
def test_kube_vip_kubeconfig(first, initialised, version, path):
    assert k.kube_vip_kubeconfig(first, initialised, version) == path


def test_kube_vip_pod_is_a_valid_pod():
    pod = k.kube_vip_pod("10.10.0.250", "eth0", 6443, "ghcr.io/kube-vip/kube-vip:v1.0.3",
                         "/etc/kubernetes/super-admin.conf")
    validate_k8s(pod)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in pod["spec"]["containers"][0]["env"]}
    assert env == {"vip_arp": "true", "port": "6443", "vip_nodename": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                   "vip_interface": "eth0", "cp_enable": "true", "cp_namespace": "kube-system",
                   "vip_leaderelection": "true", "vip_leasename": "plndr-cp-lock", "address": "10.10.0.250"}
    assert pod["spec"]["hostNetwork"] is True
    assert pod["spec"]["volumes"] == [{"name": "kubeconfig", "hostPath": {"path": "/etc/kubernetes/super-admin.conf"}}]
    security = pod["spec"]["containers"][0]["securityContext"]
    assert security == {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}}
    # Without an interface kube-vip picks the default route's itself: no vip_interface.
    bare = k.kube_vip_pod("10.10.0.250", "", 6443, "img:1", "/etc/kubernetes/admin.conf")
    assert "vip_interface" not in [e["name"] for e in bare["spec"]["containers"][0]["env"]]


def test_ha_init_config_with_a_vip():
    renderer = Renderer(HA, "kubernetes", overrides=VIP)
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    validate_kubeadm(docs)
    init, cluster = docs[0], docs[1]
    assert cluster["controlPlaneEndpoint"] == "10.10.0.250:6443"
    assert "10.10.0.250" in cluster["apiServer"]["certSANs"]
    assert init["nodeRegistration"]["ignorePreflightErrors"] == ["DirAvailable--etc-kubernetes-manifests"]
    assert renderer.expr("gpu1", "_kubernetes_api_endpoint") == "10.10.0.250:6443"


def test_ha_control_plane_join_with_a_vip_ignores_the_manifest_directory_only_on_control_planes():
    renderer = Renderer(HA, "kubernetes", overrides=VIP)
    _text, docs = renderer.render("cp2", "kubeadm-join.yaml.j2", **SECRETS)
    validate_kubeadm(docs)
    assert docs[0]["nodeRegistration"]["ignorePreflightErrors"] == ["DirAvailable--etc-kubernetes-manifests"]
    assert docs[0]["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "10.10.0.250:6443"
    _text, docs = renderer.render("gpu1", "kubeadm-join.yaml.j2", **SECRETS)
    validate_kubeadm(docs)
    assert "ignorePreflightErrors" not in docs[0]["nodeRegistration"]


def test_without_a_vip_nothing_changes():
    renderer = Renderer(HA, "kubernetes")
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    assert "ignorePreflightErrors" not in docs[0]["nodeRegistration"]
    assert renderer.expr("cp1", "_kubernetes_vip_enabled") is False


def test_endpoint_and_vip_both_set_keep_the_endpoint():
    renderer = Renderer(HA, "kubernetes", overrides={"kubernetes_control_plane_endpoint": "k8s-api.example.com",
                                                     "kubegpu_control_plane_vip": "10.10.0.250"})
    _text, docs = renderer.render("cp1", "kubeadm-init.yaml.j2")
    assert docs[1]["controlPlaneEndpoint"] == "k8s-api.example.com:6443"
    assert {"k8s-api.example.com", "10.10.0.250"} <= set(docs[1]["apiServer"]["certSANs"])


def test_kube_vip_pod_from_the_role_variables():
    """What tasks/kube_vip.yml writes: the first control plane mounts super-admin.conf before
    init, admin.conf after; the others admin.conf."""
    renderer = Renderer(HA, "kubernetes", overrides=dict(VIP, kubegpu_control_plane_vip_interface="eth0"))
    expression = ("kubegpu_control_plane_vip | kubegpu.cluster.kube_vip_pod(kubegpu_control_plane_vip_interface,"
                  " kubernetes_apiserver_port, kubernetes_kube_vip_image, _kubernetes_is_first_control_plane"
                  " | kubegpu.cluster.kube_vip_kubeconfig(%s, kubernetes_version))")
    before = renderer.expr("cp1", expression % "false")
    validate_k8s(before)
    assert before["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/super-admin.conf"
    assert before["spec"]["containers"][0]["image"] == "ghcr.io/kube-vip/kube-vip:v1.0.3"
    assert renderer.expr("cp1", expression % "true")["spec"]["volumes"][0]["hostPath"]["path"] \
        == "/etc/kubernetes/admin.conf"
    assert renderer.expr("cp2", expression % "false")["spec"]["volumes"][0]["hostPath"]["path"] \
        == "/etc/kubernetes/admin.conf"
