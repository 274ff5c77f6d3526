# SPDX-License-Identifier: Apache-2.0
"""kubeadm output parsers and the CA certificate hash (plugin_utils/_kubeadm.py).

Outputs are the ones printed in the Kubernetes documentation (tests/fixtures/k8s/README.md
names each source). The CA hash is checked against openssl on certificates generated
here, the way the kubeadm docs compute --discovery-token-ca-cert-hash.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _kubeadm

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "k8s"
DOC_TOKEN = "9vr73a.a8uxyaju799qwdjv"
DOC_HASH = "sha256:7c2e69131a36ae2a042a339b33381c6d0d43887e2de83720eff5359e26aec866"
DOC_KEY = "f8902e114ef118304e561c3ecd4d0b543adc226b7a07f675f56564185ffe0c07"


def _read(name):
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_token_from_docs():
    assert _kubeadm.parse_token(_read("kubeadm-token-create-output.txt")) == "5didvk.d09sbcov8ph2amjw"


@pytest.mark.parametrize("output", ["", "\n", "error: could not create token\n", "5DIDVK.D09SBCOV8PH2AMJW",
                                    "5didvk.d09sbcov8ph2am", "kubeadm join 1.2.3.4:6443 --token x"])
def test_token_refused(output):
    with pytest.raises(_kubeadm.KubeadmParseError) as err:
        _kubeadm.parse_token(output)
    assert output.strip() not in str(err.value) or not output.strip()


def test_token_after_warnings():
    output = "W1120 10:00:00.000000  1234 version.go:104] could not fetch a Kubernetes version\n" + DOC_TOKEN + "\n"
    assert _kubeadm.parse_token(output) == DOC_TOKEN


def test_certificate_key_from_upload_certs():
    assert _kubeadm.parse_certificate_key(_read("kubeadm-upload-certs-output.txt")) == DOC_KEY


@pytest.mark.parametrize("output", [
    "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n",
    "[upload-certs] Using certificate key:\nnot-a-key\n",
    "[upload-certs] Using certificate key:\n" + DOC_KEY[:-2] + "\n",
])
def test_certificate_key_refused(output):
    with pytest.raises(_kubeadm.KubeadmParseError):
        _kubeadm.parse_certificate_key(output)


def test_certificate_key_format():
    assert _kubeadm.is_valid_certificate_key(DOC_KEY)
    assert not _kubeadm.is_valid_certificate_key(DOC_KEY.upper())
    assert not _kubeadm.is_valid_certificate_key("")


def test_join_commands_from_ha_docs():
    control_plane, worker = _kubeadm.parse_join_commands(_read("kubeadm-init-ha-output.txt"))
    assert control_plane == {"endpoint": "192.168.0.200:6443", "token": DOC_TOKEN, "ca_cert_hashes": [DOC_HASH],
                             "control_plane": True, "certificate_key": DOC_KEY}
    assert worker == {"endpoint": "192.168.0.200:6443", "token": DOC_TOKEN, "ca_cert_hashes": [DOC_HASH],
                      "control_plane": False, "certificate_key": None}


def test_join_command_with_line_continuations():
    # kubeadm init itself prints the worker join command split with backslashes
    output = ("Then you can join any number of worker nodes by running the following on each as root:\n\n"
              "kubeadm join 10.0.0.1:6443 --token %s \\\n\t--discovery-token-ca-cert-hash %s \n" % (DOC_TOKEN, DOC_HASH))
    (worker,) = _kubeadm.parse_join_commands(output)
    assert worker["endpoint"] == "10.0.0.1:6443"
    assert worker["ca_cert_hashes"] == [DOC_HASH]


def test_no_join_command():
    with pytest.raises(_kubeadm.KubeadmParseError):
        _kubeadm.parse_join_commands("Your Kubernetes control-plane has initialized successfully!\n")


# --- CA hash against openssl -----------------------------------------------------------

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


def _openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


def _make_ca(tmp_path, algorithm):
    key = tmp_path / "ca.key"
    cert = tmp_path / "ca.crt"
    if algorithm == "rsa":
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(key))
    else:
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("req", "-x509", "-new", "-key", str(key), "-subj", "/CN=kubernetes", "-days", "3650",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,digitalSignature",
             "-out", str(cert))
    return cert


def _openssl_hash(cert):
    """The command chain of the kubeadm docs, generalised to any key type (pkey)."""
    pubkey = _openssl("x509", "-pubkey", "-noout", "-in", str(cert))
    der = _openssl("pkey", "-pubin", "-outform", "der", data=pubkey)
    return "sha256:" + _openssl("dgst", "-sha256", "-hex", data=der).decode().split()[-1]


@needs_openssl
@pytest.mark.parametrize("algorithm", ["rsa", "ecdsa"])
def test_ca_cert_hash_matches_openssl(tmp_path, algorithm):
    cert = _make_ca(tmp_path, algorithm)
    expected = _openssl_hash(cert)
    assert _kubeadm.ca_cert_hash(cert.read_text()) == expected
    assert _kubeadm.ca_cert_hash(cert.read_bytes()) == expected


@needs_openssl
def test_ca_cert_hash_of_a_bundle_uses_the_first_certificate(tmp_path):
    first = _make_ca(tmp_path, "rsa")
    other = tmp_path / "other"
    other.mkdir()
    second = _make_ca(other, "ecdsa")
    bundle = first.read_text() + second.read_text()
    assert _kubeadm.ca_cert_hash(bundle) == _openssl_hash(first)


@needs_openssl
def test_ca_cert_hash_of_a_v1_certificate(tmp_path):
    """Certificates without the optional version field (X.509 v1) still work."""
    key = tmp_path / "v1.key"
    csr = tmp_path / "v1.csr"
    cert = tmp_path / "v1.crt"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
    _openssl("req", "-new", "-key", str(key), "-subj", "/CN=v1", "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-signkey", str(key), "-days", "1", "-out", str(cert))
    text = _openssl("x509", "-in", str(cert), "-noout", "-text").decode()
    if "Version: 1" not in text:
        pytest.skip("this openssl writes v3 certificates here")
    assert _kubeadm.ca_cert_hash(cert.read_text()) == _openssl_hash(cert)


@pytest.mark.parametrize("pem", ["", "not a certificate",
                                 "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                                 "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_ca_cert_hash_refuses_garbage(pem):
    with pytest.raises(_kubeadm.KubeadmParseError):
        _kubeadm.ca_cert_hash(pem)


# --- roles/kubernetes and roles/node decisions ------------------------------------------------

CP_FACTS = {"ansible_facts": {"default_ipv4": {"address": "10.0.0.11"}}, "ansible_host": "bastion-alias-cp1"}


@pytest.mark.parametrize("endpoint, cp_vars, expected", [
    # The HA endpoint, with or without its port.
    ("k8s-api.example.com", CP_FACTS, "k8s-api.example.com:6443"),
    ("k8s-api.example.com:8443", CP_FACTS, "k8s-api.example.com:8443"),
    ("10.0.0.100", {}, "10.0.0.100:6443"),
    # The address the API server advertises: set, else the default route's.
    ("", dict(CP_FACTS, kubernetes_apiserver_advertise_address="10.1.0.11"), "10.1.0.11:6443"),
    (None, CP_FACTS, "10.0.0.11:6443"),
    ("", dict(CP_FACTS, kubernetes_apiserver_advertise_address=""), "10.0.0.11:6443"),
    ("", dict(CP_FACTS, kubernetes_apiserver_advertise_address=None), "10.0.0.11:6443"),
    # No facts for the first control plane (a --limit that left it out): ansible_host, else its name.
    ("", {"ansible_host": "bastion-alias-cp1"}, "bastion-alias-cp1:6443"),
    ("", {"ansible_facts": {}}, "cp1:6443"),
    ("", {"ansible_facts": {"default_ipv4": {}}, "ansible_host": None}, "cp1:6443"),
    ("", None, "cp1:6443"),
])
def test_api_endpoint(endpoint, cp_vars, expected):
    assert _kubeadm.api_endpoint(endpoint, "cp1", cp_vars, 6443) == expected


def test_api_endpoint_port_as_a_string():
    assert _kubeadm.api_endpoint("", "cp1", {}, "7443") == "cp1:7443"


@pytest.mark.parametrize("pending, control_planes, expected", [
    ([], [], "Nothing to join."),
    (None, None, "Nothing to join."),
    (["cp2", "w1", "w2"], ["cp2"], "Joining control planes cp2, then workers w1, w2"),
    (["w1"], [], "Joining control planes -, then workers w1"),
    (["cp2", "cp3"], ["cp2", "cp3"], "Joining control planes cp2, cp3, then workers -"),
])
def test_join_report(pending, control_planes, expected):
    assert _kubeadm.join_report(pending, control_planes) == expected


@pytest.mark.parametrize("result, expected", [
    ({"stderr": "token %s, key %s, again %s" % (DOC_TOKEN, DOC_KEY, DOC_TOKEN), "msg": "non-zero return code"},
     "token <token>, key <certificate-key>, again <token>"),
    # No stderr (the module failed before running kubeadm): its msg.
    ({"msg": "no such file %s" % DOC_TOKEN}, "no such file <token>"),
    # An empty stderr stays empty; no result at all (the join task never ran): "".
    ({"stderr": "", "msg": "x"}, ""),
    ({}, ""),
    (None, ""),
])
def test_join_error_redacts_the_secrets(result, expected):
    assert _kubeadm.join_error(result, DOC_TOKEN, DOC_KEY) == expected


def test_join_error_without_secrets_leaves_the_text():
    assert _kubeadm.join_error({"stderr": "failed <none> %s" % DOC_TOKEN}) == "failed <none> %s" % DOC_TOKEN
    assert _kubeadm.join_error({"stderr": "failed"}, "", None) == "failed"


@pytest.mark.parametrize("files, expected", [
    ([], []),
    (None, []),
    (["cri-tools_1.35.0_amd64.deb", "kubeadm_1.35.0_amd64.deb", "Kubectl_1.35.0_amd64.deb",
      "kubelet_1.35.0_amd64.deb", "kubernetes-cni_1.6.0_amd64.deb"],
     ["cri-tools_1.35.0_amd64.deb", "kubernetes-cni_1.6.0_amd64.deb", "kubeadm_1.35.0_amd64.deb",
      "Kubectl_1.35.0_amd64.deb", "kubelet_1.35.0_amd64.deb"]),
    (["kubelet.deb", "kubernetes-cni.deb", "cri-tools.deb"], ["kubernetes-cni.deb", "cri-tools.deb", "kubelet.deb"]),
])
def test_local_debs_install_the_dependencies_first(files, expected):
    assert _kubeadm.local_debs(files, "/var/cache/kubegpu/kubernetes/") == [
        "/var/cache/kubegpu/kubernetes/" + name for name in expected]


CLUSTER = ["cp1", "w1", "w2"]
FIX = ("the first control plane of a cluster with 2 other node(s); resetting it removes the admin kubeconfig every"
       " kubegpu playbook uses (and, without another control plane, the cluster). Fix: name the nodes to reset with"
       " --limit (without cp1), reorder kube_control_plane so that another control plane is first, or pass"
       " -e reset_node_confirm_control_plane=true.")


@pytest.mark.parametrize("host, play_hosts, cluster, confirmed, expected", [
    # A --limit without the first control plane, a single-node cluster, or confirmed: allowed.
    ("w1", ["w1", "w2"], CLUSTER, False, ""),
    ("cp1", ["cp1"], ["cp1"], False, ""),
    ("cp1", ["cp1", "w1"], CLUSTER, True, ""),
    # The first control plane itself, and every other node of that run.
    ("cp1", ["cp1", "w1"], CLUSTER, False, "cp1 is " + FIX),
    ("w1", ["w1", "cp1"], CLUSTER, False,
     "w1: not reset: this run (no --limit, or a --limit that includes it) also resets cp1, which is " + FIX),
])
def test_reset_refusal(host, play_hosts, cluster, confirmed, expected):
    assert _kubeadm.reset_refusal(host, "cp1", play_hosts, cluster, confirmed, "kube_control_plane") == expected
