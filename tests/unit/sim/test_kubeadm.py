# SPDX-License-Identifier: Apache-2.0
"""The simulated kubeadm's pure parts (tests/sim/kubegpu_sim/kubeadm*.py, pki.py):
v1beta4 parsing/validation on the configs the kubernetes role renders (rendered as
tests/unit/test_k8s_render.py does) and on broken ones, the public-key pin against an
independent openssl computation, the PKI in tmp_path (chain verified by openssl, SANs),
token Secrets, certificate-key sealing, preflight checks, the CLI output formats."""
from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SIM = ROOT / "tests" / "sim"
if str(SIM) not in sys.path:
    sys.path.insert(0, str(SIM))

from kubegpu_sim import kubeadm  # noqa: E402
from kubegpu_sim import kubeadm_addons as addons  # noqa: E402
from kubegpu_sim import kubeadm_config as kc  # noqa: E402
from kubegpu_sim import kubeadm_preflight as preflight  # noqa: E402
from kubegpu_sim import pki  # noqa: E402

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI missing")

SECRETS = {
    "_kubernetes_join_token": "abcdef.0123456789abcdef",
    "_kubernetes_ca_cert_hash": "sha256:" + "a" * 64,
    "_kubernetes_certificate_key": "b" * 64,
}


# --- rendering the role's templates (as tests/unit/test_k8s_render.py) ----------------------

@pytest.fixture(scope="module")
def render():
    """Render a kubernetes-role template for a host of an inventory with Ansible's Templar."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("k8s_render", ROOT / "tests" / "unit" / "test_k8s_render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def _do(inventory, host, template, overrides=None):
        renderer = module.Renderer(inventory, "kubernetes", overrides=dict(SECRETS, **(overrides or {})))
        text, _docs = renderer.render(host, template)
        return text

    _do.EXAMPLE, _do.HA, _do.SINGLE = module.EXAMPLE, module.HA, module.SINGLE
    return _do


@pytest.mark.parametrize("inventory,host,overrides", [
    ("EXAMPLE", "cp1", None),
    ("HA", "cp1", None),
    ("SINGLE", "box1", None),
    ("EXAMPLE", "cp1", {"kubernetes_kube_proxy_mode": "nftables"}),
])
def test_rendered_init_configs_load(render, inventory, host, overrides):
    text = render(getattr(render, inventory), host, "kubeadm-init.yaml.j2", overrides)
    config = kc.load(text, strict_errors=True, node_name_default="ignored")
    assert config.warnings == []
    assert config.init["nodeRegistration"]["name"] == host
    assert config.kubelet["cgroupDriver"] == "systemd"
    assert config.cluster["kubernetesVersion"] == "v1.35.4"
    # defaults (v1beta4/defaults.go)
    assert config.init["bootstrapTokens"][0]["ttl"] == "24h0m0s"
    assert config.init["localAPIEndpoint"]["bindPort"] == 6443
    taints = kc.control_plane_taints(config.init["nodeRegistration"])
    if inventory == "SINGLE":
        assert taints == []
    else:
        assert taints == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    if overrides:
        assert config.kubeproxy["mode"] == "nftables"


@pytest.mark.parametrize("inventory,host,control_plane", [("EXAMPLE", "gpu1", False), ("HA", "cp2", True)])
def test_rendered_join_configs_load(render, inventory, host, control_plane):
    text = render(getattr(render, inventory), host, "kubeadm-join.yaml.j2")
    config = kc.load(text, strict_errors=True, want="join")
    join = config.join
    assert join["discovery"]["bootstrapToken"]["token"] == SECRETS["_kubernetes_join_token"]
    assert join["discovery"]["tlsBootstrapToken"] == SECRETS["_kubernetes_join_token"]
    assert (join.get("controlPlane") is not None) == control_plane


INIT = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
nodeRegistration:
  name: cp1
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
networking:
  podSubnet: 192.168.0.0/16
  serviceSubnet: 10.96.0.0/12
"""


@pytest.mark.parametrize("text,message", [
    (INIT.replace("podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/33"), "networking.podSubnet"),
    (INIT.replace("podSubnet: 192.168.0.0/16", "podSubnet: banana"), "couldn't parse subnet"),
    (INIT.replace("serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.0.0.0/8"), "service subnet is too large"),
    (INIT.replace("name: cp1", "name: CP_1"), "nodeRegistration.name"),
    (INIT.replace("v1beta4\nkind: InitConfiguration", "v1beta3\nkind: InitConfiguration"), "old API spec"),
    (INIT.replace("  name: cp1\n", "  name: cp1\n  taints:\n  - key: a\n    effect: Sometimes\n"), "unsupported value"),
    ("apiVersion: v1\nkind: ConfigMap\n", "no InitConfiguration or ClusterConfiguration"),
    (INIT + "---\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\n", "specified twice"),
    ("kind: InitConfiguration\n", "kind and apiVersion is mandatory"),
    (INIT.replace("networking:", "controlPlaneEndpoint: \"bad host:x:1\"\nnetworking:"), "controlPlaneEndpoint"),
    (INIT.replace("networking:", "apiServer:\n  certSANs: [\"not valid!\"]\nnetworking:"), "apiServer.certSANs"),
    (INIT.replace("nodeRegistration:", "localAPIEndpoint:\n  advertiseAddress: 10.0.0.300\nnodeRegistration:"),
     "must be a valid IP address"),
    (INIT.replace("nodeRegistration:", "bootstrapTokens:\n- token: nope\nnodeRegistration:"),
     "the bootstrap token is invalid"),
])
def test_bad_init_configs_fail(text, message):
    with pytest.raises(kc.ConfigError, match=re.escape(message)):
        kc.load(text, node_name_default="cp1")


def test_unknown_fields_warn_on_init_and_fail_on_validate():
    """util/config strict decoding: klog warning for init/join, error for config validate."""
    text = INIT.replace("  name: cp1\n", "  name: cp1\n  nmae: typo\n")
    config = kc.load(text, node_name_default="cp1")
    assert config.warnings == ['strict decoding error: unknown field "nodeRegistration.nmae"']
    with pytest.raises(kc.ConfigError, match='unknown field "nodeRegistration.nmae"'):
        kc.load(text, strict_errors=True)


JOIN = """\
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
nodeRegistration:
  name: gpu1
discovery:
  bootstrapToken:
    apiServerEndpoint: 10.0.0.1:6443
    token: abcdef.0123456789abcdef
    caCertHashes: ["sha256:%s"]
""" % ("a" * 64)


@pytest.mark.parametrize("text,message", [
    (JOIN.replace("abcdef.0123456789abcdef", "abc.def"), "the bootstrap token is invalid"),
    (JOIN.replace("10.0.0.1:6443", "10.0.0.1"), "missing port in address"),
    (JOIN.replace('    caCertHashes: ["sha256:%s"]\n' % ("a" * 64), ""), "unsafeSkipCAVerification"),
    (JOIN.replace("sha256:" + "a" * 64, "md5:abc"), "invalid hash"),
    (JOIN + "controlPlane:\n  certificateKey: xyz\n", "certificate key must be 64 hex"),
    (INIT, "no JoinConfiguration found"),
])
def test_bad_join_configs_fail(text, message):
    with pytest.raises(kc.ConfigError, match=re.escape(message)):
        kc.load(text, want="join")


def test_join_defaults():
    config = kc.load(JOIN + "controlPlane:\n  certificateKey: %s\n" % ("c" * 64), want="join")
    assert config.join["nodeRegistration"]["criSocket"] == kc.DEFAULT_CRI_SOCKET
    assert config.join["controlPlane"]["localAPIEndpoint"]["bindPort"] == 6443
    assert config.join["caCertPath"] == "/etc/kubernetes/pki/ca.crt"


@pytest.mark.parametrize("value,seconds", [("24h", 86400), ("15m", 900), ("1h30m", 5400), ("0s", 0),
                                           ("24h0m0s", 86400), ("1.5h", 5400)])
def test_parse_duration(value, seconds):
    assert kc.parse_duration(value) == seconds


@pytest.mark.parametrize("bad", ["15", "forever", "1d", ""])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        kc.parse_duration(bad)


@pytest.mark.parametrize("cidr,index,ip", [("10.96.0.0/12", 1, "10.96.0.1"), ("10.96.0.0/12", 10, "10.96.0.10"),
                                           ("172.20.0.0/16,fd00::/108", 10, "172.20.0.10")])
def test_service_ips(cidr, index, ip):
    assert kc.service_ip(cidr, index) == ip


# --- tokens ----------------------------------------------------------------------------------

def test_generated_tokens_match_the_bootstrap_format():
    for _unused in range(20):
        assert kc.TOKEN_RE.match(kubeadm.generate_token())


def test_token_secret_shape():
    import datetime
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
    secret = kubeadm.token_secret("abcdef.0123456789abcdef", 900, "kubegpu join", now=now)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert data == {"token-id": "abcdef", "token-secret": "0123456789abcdef", "description": "kubegpu join",
                    "expiration": "2026-01-01T12:15:00Z", "usage-bootstrap-signing": "true",
                    "usage-bootstrap-authentication": "true",
                    "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}
    assert "expiration" not in kubeadm.token_secret("abcdef.0123456789abcdef", 0)["data"]
    with pytest.raises(ValueError):
        kubeadm.token_secret("ABCDEF.0123456789abcdef")


# --- upload-certs sealing ----------------------------------------------------------------------

def test_seal_roundtrip_and_wrong_key():
    key, other = os.urandom(32), os.urandom(32)
    blob = kubeadm.seal(b"-----BEGIN PRIVATE KEY-----\nsecret\n", key)
    assert b"secret" not in blob
    assert kubeadm.unseal(blob, key) == b"-----BEGIN PRIVATE KEY-----\nsecret\n"
    with pytest.raises(ValueError, match="message authentication failed"):
        kubeadm.unseal(blob, other)
    tampered = blob[:20] + bytes([blob[20] ^ 1]) + blob[21:]
    with pytest.raises(ValueError):
        kubeadm.unseal(tampered, key)


def test_upload_certs_output_parses_with_the_roles_filter():
    """The roles read the key with plugins/plugin_utils/_kubeadm.py parse_certificate_key."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("_kubeadm", ROOT / "plugins" / "plugin_utils" / "_kubeadm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class FakeApi:
        def __init__(self):
            self.objects = []

        def create(self, path, obj):
            self.objects.append((path, obj))
            out = dict(obj)
            out["metadata"] = dict(obj["metadata"], uid="u-1")
            return out

    key = "d" * 64
    import contextlib
    import io
    api = FakeApi()
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(kubeadm, "read_file", lambda path, binary=False: b"PEM " + path.encode())
            mp.setattr(kubeadm.os.path, "exists", lambda path: True)
            kubeadm.upload_certs(api, {"certificatesDir": "/etc/kubernetes/pki"}, key)
    assert module.parse_certificate_key(buffer.getvalue()) == key
    secret = [o for p, o in api.objects if o["metadata"]["name"] == "kubeadm-certs"][0]
    assert sorted(secret["data"]) == sorted(n.replace("/", "-") for n in kubeadm.SHARED_CERTS)
    assert secret["metadata"]["ownerReferences"][0]["name"].startswith("bootstrap-token-")
    sealed = base64.b64decode(secret["data"]["ca.key"])
    assert kubeadm.unseal(sealed, bytes.fromhex(key)) == b"PEM /etc/kubernetes/pki/ca.key"


def test_join_command_parses_with_the_roles_filter():
    import importlib.util
    spec = importlib.util.spec_from_file_location("_kubeadm", ROOT / "plugins" / "plugin_utils" / "_kubeadm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = kubeadm.init_success("k8s-api:6443", "abcdef.0123456789abcdef", "sha256:" + "e" * 64, True)
    commands = module.parse_join_commands(text)
    assert [c["control_plane"] for c in commands] == [True, False]
    assert commands[1] == {"endpoint": "k8s-api:6443", "token": "abcdef.0123456789abcdef",
                           "ca_cert_hashes": ["sha256:" + "e" * 64], "control_plane": False,
                           "certificate_key": None}
    assert "Your Kubernetes control-plane has initialized successfully!" in text


# --- PKI -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI missing")
    path = tmp_path_factory.mktemp("pki")
    logs = []
    pki.create_control_plane_pki(str(path), "cp1", "10.10.0.11", "10.96.0.1", "cluster.local",
                                 "k8s-api.example.com", ["10.10.0.10", "extra.example.com"], log=logs.append)
    assert '[certs] Generating "apiserver" certificate and key' in logs
    return path


def _openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=True).stdout


@needs_openssl
@pytest.mark.parametrize("cert,ca", [
    ("apiserver", "ca"), ("apiserver-kubelet-client", "ca"), ("front-proxy-client", "front-proxy-ca"),
    ("etcd/server", "etcd/ca"), ("etcd/peer", "etcd/ca"), ("apiserver-etcd-client", "etcd/ca"),
])
def test_pki_chain_verifies(pki_dir, cert, ca):
    result = _openssl("verify", "-CAfile", str(pki_dir / (ca + ".crt")), str(pki_dir / (cert + ".crt")))
    assert result.strip().endswith(": OK")


@needs_openssl
def test_apiserver_sans(pki_dir):
    text = _openssl("x509", "-in", str(pki_dir / "apiserver.crt"), "-noout", "-text")
    for name in ("DNS:cp1", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
                 "DNS:kubernetes.default.svc.cluster.local", "DNS:k8s-api.example.com", "DNS:extra.example.com",
                 "IP Address:10.96.0.1", "IP Address:10.10.0.11", "IP Address:10.10.0.10"):
        assert name in text
    assert "TLS Web Server Authentication" in text
    assert "CN=kube-apiserver" in text or "CN = kube-apiserver" in text


@needs_openssl
def test_ca_and_keys(pki_dir):
    text = _openssl("x509", "-in", str(pki_dir / "ca.crt"), "-noout", "-text")
    assert "CA:TRUE" in text and "Certificate Sign" in text
    assert (pki_dir / "sa.key").stat().st_mode & 0o777 == 0o600
    assert "BEGIN PUBLIC KEY" in (pki_dir / "sa.pub").read_text()
    assert (pki_dir / "ca.key").stat().st_mode & 0o777 == 0o600


@needs_openssl
def test_pubkey_pin_matches_openssl(pki_dir):
    """util/pubkeypin: sha256 of the DER SubjectPublicKeyInfo, computed independently."""
    pubkey = subprocess.run(["openssl", "x509", "-in", str(pki_dir / "ca.crt"), "-noout", "-pubkey"],
                            capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pubkey,
                         capture_output=True, check=True).stdout
    expected = "sha256:" + hashlib.sha256(der).hexdigest()
    ca_pem = (pki_dir / "ca.crt").read_bytes()
    assert pki.pubkey_pin(ca_pem) == expected
    # and the roles' filter agrees
    import importlib.util
    spec = importlib.util.spec_from_file_location("_kubeadm", ROOT / "plugins" / "plugin_utils" / "_kubeadm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.ca_cert_hash(ca_pem.decode()) == expected


@needs_openssl
@pytest.mark.parametrize("filename,cn,orgs", [
    ("admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",)),
    ("super-admin.conf", "kubernetes-super-admin", ("system:masters",)),
    ("kubelet.conf", "system:node:cp1", ("system:nodes",)),
])
def test_client_kubeconfigs(pki_dir, tmp_path, filename, cn, orgs):
    from kubegpu_sim import yamlish
    path = tmp_path / filename
    pki.write_client_kubeconfig(str(path), "https://10.10.0.11:6443", str(pki_dir), cn, orgs)
    assert path.stat().st_mode & 0o777 == 0o600
    config = yamlish.load(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://10.10.0.11:6443"
    assert config["current-context"] == "%s@kubernetes" % cn
    cert = base64.b64decode(config["users"][0]["user"]["client-certificate-data"])
    subject = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"], input=cert,
                             capture_output=True, check=True).stdout.decode()
    assert "CN=%s" % cn in subject and all("O=%s" % o in subject for o in orgs)
    # the simulated components' client loads it (TLS context with the client certificate)
    from kubegpu_sim.client import Client
    client = Client.from_kubeconfig(str(path))
    assert client.host == "10.10.0.11" and client.port == 6443


@needs_openssl
def test_kubelet_client_file_form(pki_dir, tmp_path, monkeypatch):
    """kubelet.conf points at kubelet-client-current.pem (cert + key in one file), as
    kubelet-finalize leaves it; client.py and ssl load it."""
    monkeypatch.setattr(kubeadm, "KUBE_DIR", str(tmp_path / "etc"))
    monkeypatch.setattr(kubeadm, "KUBELET_DIR", str(tmp_path / "kubelet"))
    pki.new_signed(str(tmp_path / "n.crt"), str(tmp_path / "n.key"), str(pki_dir / "ca.crt"),
                   str(pki_dir / "ca.key"), "system:node:gpu1", ("system:nodes",))
    kubeadm.write_kubelet_client((tmp_path / "n.crt").read_bytes(), (tmp_path / "n.key").read_bytes(),
                                 "https://10.0.0.1:6443", (pki_dir / "ca.crt").read_bytes(), "gpu1")
    current = tmp_path / "kubelet" / "pki" / "kubelet-client-current.pem"
    assert current.is_symlink()
    from kubegpu_sim.client import Client
    client = Client.from_kubeconfig(str(tmp_path / "etc" / "kubelet.conf"))
    assert client.host == "10.0.0.1"


@needs_openssl
def test_existing_ca_is_reused(pki_dir, tmp_path):
    """A control-plane join keeps the downloaded CA ("Using existing ca certificate authority")."""
    target = tmp_path / "pki"
    (target / "etcd").mkdir(parents=True)
    for name in kubeadm.SHARED_CERTS:
        shutil.copy(pki_dir / name, target / name)
    logs = []
    pki.create_control_plane_pki(str(target), "cp2", "10.10.0.12", "10.96.0.1", "cluster.local", log=logs.append)
    assert "[certs] Using existing ca certificate authority" in logs
    assert (target / "ca.crt").read_bytes() == (pki_dir / "ca.crt").read_bytes()
    _openssl("verify", "-CAfile", str(target / "ca.crt"), str(target / "apiserver.crt"))


# --- addons / images ---------------------------------------------------------------------------

def _cluster():
    return kc.load(INIT, node_name_default="cp1").cluster


def test_images_list():
    assert addons.images(_cluster()) == [
        "registry.k8s.io/kube-apiserver:v1.35.4", "registry.k8s.io/kube-controller-manager:v1.35.4",
        "registry.k8s.io/kube-scheduler:v1.35.4", "registry.k8s.io/kube-proxy:v1.35.4",
        "registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1", "registry.k8s.io/etcd:3.6.6-0"]


def test_addon_objects_validate_against_the_1_35_schemas():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    cluster = _cluster()
    objects = addons.coredns_objects(cluster) + addons.kube_proxy_objects(cluster, "https://10.0.0.1:6443") \
        + addons.bootstrap_rbac() + addons.upload_config_rbac() \
        + list(addons.static_pods(cluster, "cp1", "10.0.0.1", 6443).values())
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)
    dns = [o for o in objects if o["kind"] == "Service"][0]
    assert dns["spec"]["clusterIP"] == "10.96.0.10"
    coredns = [o for o in objects if o["kind"] == "Deployment"][0]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in \
        coredns["spec"]["template"]["spec"]["tolerations"]


def test_kubelet_files():
    cluster = _cluster()
    config = kubeadm.kubelet_config({"apiVersion": kc.KUBELET_GV, "kind": "KubeletConfiguration",
                                     "cgroupDriver": "systemd"}, cluster)
    assert config["clusterDNS"] == ["10.96.0.10"] and config["staticPodPath"] == "/etc/kubernetes/manifests"
    flags = kubeadm.kubeadm_flags({"name": "gpu1", "criSocket": kc.DEFAULT_CRI_SOCKET}, "10.0.0.5")
    assert flags == ('KUBELET_KUBEADM_ARGS="--container-runtime-endpoint=unix:///var/run/containerd/containerd.sock '
                     '--hostname-override=gpu1 --node-ip=10.0.0.5"\n')


# --- preflight ---------------------------------------------------------------------------------

def test_preflight_file_checks(tmp_path):
    (tmp_path / "proc/sys/net/ipv4").mkdir(parents=True)
    (tmp_path / "proc/sys/net/ipv4/ip_forward").write_text("0\n")
    (tmp_path / "etc/kubernetes/manifests").mkdir(parents=True)
    (tmp_path / "etc/kubernetes/manifests/x.yaml").write_text("")
    checks = [preflight.file_content("/proc/sys/net/ipv4/ip_forward"),
              preflight.file_content("/proc/sys/net/bridge/bridge-nf-call-iptables"),
              preflight.dir_available("/etc/kubernetes/manifests"),
              preflight.cri_socket("unix:///run/containerd/containerd.sock")]
    warnings, errors = preflight.run_checks(checks, root=str(tmp_path))
    assert errors[0] == ("\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward "
                         "contents are not set to 1")
    assert errors[1] == "\t[ERROR DirAvailable--etc-kubernetes-manifests]: /etc/kubernetes/manifests is not empty"
    assert errors[2].startswith("\t[ERROR CRI]: container runtime is not running")
    assert len(errors) == 3 and warnings == []  # bridge-nf-call-iptables absent: not checked
    warnings, errors = preflight.run_checks(checks, ignore=["all"], root=str(tmp_path))
    assert errors == [] and len(warnings) == 3


def test_cri_plugin_disabled(tmp_path, monkeypatch):
    sock = tmp_path / "run/containerd/containerd.sock"
    sock.parent.mkdir(parents=True)
    sock.write_text("")
    monkeypatch.setattr(preflight.shutil, "which", lambda name: "/usr/bin/" + name)

    class Out:
        stdout = 'version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n'

    check = preflight.cri_socket("unix:///run/containerd/containerd.sock", runner=lambda *a, **k: Out())
    _w, errors = check.func(str(tmp_path))
    assert errors and "RuntimeService" in errors[0]
    Out.stdout = "version = 2\ndisabled_plugins = []\n"
    assert check.func(str(tmp_path)) == ([], [])


def test_port_check():
    import socket
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen(1)
    port = sock.getsockname()[1]
    try:
        assert preflight.port_open(port).func("") == ([], ["Port %d is in use" % port])
    finally:
        sock.close()


# --- CLI ---------------------------------------------------------------------------------------

def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(SIM))
    return subprocess.run([sys.executable, "-m", "kubegpu_sim.kubeadm", *args], capture_output=True, text=True,
                          env=env, timeout=60, check=False)


def test_cli_version_and_images():
    assert _cli("version", "-o", "short").stdout == "v1.35.4\n"
    listed = _cli("config", "images", "list").stdout.split()
    assert "registry.k8s.io/kube-apiserver:v1.35.4" in listed


def test_cli_config_validate(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(INIT)
    result = _cli("config", "validate", "--config", str(good))
    assert result.returncode == 0 and result.stdout == "ok\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text(INIT.replace("podSubnet: 192.168.0.0/16", "podSubnet: 192.168.0.0/99"))
    result = _cli("config", "validate", "--config", str(bad))
    assert result.returncode == 1 and "networking.podSubnet" in result.stderr


def test_cli_init_error_format(tmp_path):
    """cmdutil.CheckErr: a failed phase exits 1 with "error execution phase <phase>: ..."."""
    if os.geteuid() == 0:
        pytest.skip("runs as root: the IsPrivilegedUser check would pass and init would touch the host")
    config = tmp_path / "init.yaml"
    config.write_text(INIT)
    result = _cli("init", "--config", str(config))
    assert result.returncode == 1
    assert result.stderr.startswith("error execution phase preflight: [preflight] Some fatal errors occurred:\n")
    assert "[ERROR IsPrivilegedUser]: user is not running as root" in result.stderr


def test_preflight_as_non_root_reports_privilege():
    _w, errors = preflight.run_checks([preflight.Check("IsPrivilegedUser", preflight.is_privileged)])
    assert (errors == []) == (os.geteuid() == 0)


def test_parse_args():
    words, flags = kubeadm.parse_args(["token", "create", "--ttl", "15m", "--description", "kubegpu join",
                                       "--ignore-preflight-errors=Swap,NumCPU"])
    assert words == ["token", "create"]
    assert flags["--ttl"] == "15m" and flags["--description"] == "kubegpu join"
    assert flags["--ignore-preflight-errors"] == ["Swap", "NumCPU"]


def test_jws_verify():
    """k8s.io/cluster-bootstrap/token/jws: a detached HS256 signature of the kubeconfig."""
    import hmac
    import json
    payload, secret = "apiVersion: v1\n", "0123456789abcdef"
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "abcdef"}).encode()).decode().rstrip("=")
    body = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(hmac.new(secret.encode(), (header + "." + body).encode(),
                                            hashlib.sha256).digest()).decode().rstrip("=")
    assert kubeadm._jws_verify(header + ".." + sig, payload, secret)
    assert not kubeadm._jws_verify(header + ".." + sig, payload, "x" * 16)
