# SPDX-License-Identifier: Apache-2.0
"""Certificates and kubeconfigs of the simulated kubeadm, made with the openssl CLI
(test-only). Follows kubernetes cmd/kubeadm/app/phases/certs/certlist.go (the certificate
list, names and usages), util/pkiutil/pki_helpers.go (key type RSA-2048, validity) and
phases/kubeconfig/kubeconfig.go (kubeconfig files)."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import subprocess
import tempfile

OPENSSL = os.environ.get("KUBEGPU_SIM_OPENSSL", "openssl")
# util/pkiutil/pki_helpers.go: CA validity constants.CACertificateValidityPeriod (10 years),
# leaf certificates constants.CertificateValidityPeriod (1 year)
CA_DAYS = 3650
CERT_DAYS = 365


class PKIError(Exception):
    pass


def openssl(*args, data=None):
    result = subprocess.run([OPENSSL, *args], input=data, capture_output=True, check=False)
    if result.returncode != 0:
        raise PKIError("openssl %s failed: %s" % (args[0], result.stderr.decode("utf-8", "replace").strip()))
    return result.stdout


def _write_private(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.chmod(path, 0o600)


def new_key(path, bits=2048):
    """util/pkiutil/pki_helpers.go NewPrivateKey: RSA-2048 (encryptionAlgorithm default);
    keys are written 0600 (keyutil.WriteKey)."""
    key = openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:%d" % bits)
    _write_private(path, key)
    return key


def _subject(cn, orgs=()):
    # openssl -subj: "/O=a/O=b/CN=c" (pkiutil CertConfig: Organization, CommonName)
    parts = ["/O=%s" % o.replace("/", "\\/") for o in orgs]
    parts.append("/CN=%s" % cn.replace("/", "\\/"))
    return "".join(parts)


def new_ca(cert_path, key_path, cn):
    """pki_helpers.go NewCertificateAuthority -> k8s.io/client-go/util/cert NewSelfSignedCACert:
    CA:TRUE, KeyUsage keyEncipherment|digitalSignature|certSign, subject CN=<name>."""
    new_key(key_path)
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", delete=False) as ext:
        ext.write("[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\n"
                  "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign\n"
                  "subjectKeyIdentifier=hash\nsubjectAltName=DNS:%s\n" % cn)
        ext_path = ext.name
    try:
        openssl("req", "-x509", "-new", "-key", key_path, "-out", cert_path, "-days", str(CA_DAYS),
                "-sha256", "-subj", _subject(cn), "-config", ext_path, "-extensions", "v3_ca")
    finally:
        os.unlink(ext_path)
    os.chmod(cert_path, 0o644)


def san_entries(dns_names=(), ips=()):
    """subjectAltName value for openssl (certutil AltNames: DNSNames, IPs), de-duplicated."""
    entries = []
    for name in dns_names:
        if name and "DNS:%s" % name not in entries:
            entries.append("DNS:%s" % name)
    for ip in ips:
        if ip:
            entry = "IP:%s" % ipaddress.ip_address(ip)
            if entry not in entries:
                entries.append(entry)
    return entries


def make_csr(key_path, cn, orgs=()):
    """A PEM certificate request for key_path (subject O=orgs, CN=cn)."""
    return openssl("req", "-new", "-key", key_path, "-subj", _subject(cn, orgs))


def sign_csr(csr_pem, ca_cert, ca_key, out_path, usages=("clientAuth",), sans=(), days=CERT_DAYS):
    """pki_helpers.go NewSignedCert: KeyUsage digitalSignature|keyEncipherment, ExtKeyUsage
    from the CertConfig (serverAuth / clientAuth), SANs, serial random, signed by the CA."""
    lines = ["basicConstraints=critical,CA:FALSE",
             "keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=%s" % ",".join(usages),
             "authorityKeyIdentifier=keyid"]
    if sans:
        lines.append("subjectAltName=%s" % ",".join(sans))
    with tempfile.TemporaryDirectory(prefix="kubegpu-pki-") as tmp:
        ext_path = os.path.join(tmp, "ext.cnf")
        csr_path = os.path.join(tmp, "req.csr")
        with open(ext_path, "w") as stream:
            stream.write("\n".join(lines) + "\n")
        with open(csr_path, "wb") as stream:
            stream.write(csr_pem if isinstance(csr_pem, bytes) else csr_pem.encode())
        serial = "0x" + os.urandom(8).hex()
        openssl("x509", "-req", "-in", csr_path, "-CA", ca_cert, "-CAkey", ca_key, "-set_serial", serial,
                "-out", out_path, "-days", str(days), "-sha256", "-extfile", ext_path)
    os.chmod(out_path, 0o644)


def new_signed(cert_path, key_path, ca_cert, ca_key, cn, orgs=(), usages=("clientAuth",), sans=()):
    new_key(key_path)
    sign_csr(make_csr(key_path, cn, orgs), ca_cert, ca_key, cert_path, usages, sans)


def apiserver_sans(node_name, service_vip, dns_domain, advertise_address, endpoint_host=None, extra=()):
    """certlist.go KubeadmCertAPIServer -> pkiutil.GetAPIServerAltNames: DNS node name,
    kubernetes, kubernetes.default, kubernetes.default.svc, kubernetes.default.svc.<domain>;
    IPs: the service VIP (first IP of the service subnet) and the advertise address; the
    controlPlaneEndpoint host (IP or DNS) and every apiServer.certSANs entry."""
    dns = [node_name, "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.%s" % dns_domain]
    ips = [service_vip, advertise_address]
    for name in ([endpoint_host] if endpoint_host else []) + list(extra):
        try:
            ipaddress.ip_address(name)
            ips.append(name)
        except ValueError:
            dns.append(name)
    return san_entries(dns, ips)


def create_control_plane_pki(pki_dir, node_name, advertise_address, service_vip, dns_domain,
                             endpoint_host=None, cert_sans=(), log=print, shared_present=False):
    """phases/certs/certs.go CreatePKIAssets over certlist.go GetDefaultCertList (stacked etcd)
    and CreateServiceAccountKeyAndPublicKeyFiles. Existing CA/sa/front-proxy files are
    reused ("Using existing ..."), as kubeadm does on a control-plane join."""
    os.makedirs(os.path.join(pki_dir, "etcd"), exist_ok=True)

    def p(*names):
        return os.path.join(pki_dir, *names)

    def ca(name, path, cn):
        if os.path.exists(p(path + ".crt")) and os.path.exists(p(path + ".key")):
            log("[certs] Using existing %s certificate authority" % name)
            return
        log("[certs] Generating \"%s\" certificate and key" % name)
        new_ca(p(path + ".crt"), p(path + ".key"), cn)

    def leaf(name, path, ca_path, cn, orgs=(), usages=("clientAuth",), sans=()):
        log("[certs] Generating \"%s\" certificate and key" % name)
        if sans:
            log("[certs] %s serving cert is signed for DNS names [%s] and IPs [%s]" % (
                name, " ".join(s[4:] for s in sans if s.startswith("DNS:")),
                " ".join(s[3:] for s in sans if s.startswith("IP:"))))
        new_signed(p(path + ".crt"), p(path + ".key"), p(ca_path + ".crt"), p(ca_path + ".key"), cn, orgs,
                   usages, sans)

    log("[certs] Using certificateDir folder \"%s\"" % pki_dir)
    # certlist.go KubeadmCertRootCA: CN "kubernetes"
    ca("ca", "ca", "kubernetes")
    leaf("apiserver", "apiserver", "ca", "kube-apiserver", usages=("serverAuth",),
         sans=apiserver_sans(node_name, service_vip, dns_domain, advertise_address, endpoint_host, cert_sans))
    # KubeadmCertKubeletClient: CN kube-apiserver-kubelet-client, O kubeadm:cluster-admins
    leaf("apiserver-kubelet-client", "apiserver-kubelet-client", "ca", "kube-apiserver-kubelet-client",
         ("kubeadm:cluster-admins",))
    # KubeadmCertFrontProxyCA (CN front-proxy-ca), KubeadmCertFrontProxyClient (CN front-proxy-client)
    ca("front-proxy-ca", "front-proxy-ca", "front-proxy-ca")
    leaf("front-proxy-client", "front-proxy-client", "front-proxy-ca", "front-proxy-client")
    # KubeadmCertEtcdCA (CN etcd-ca); etcd server/peer: SANs node name, localhost, advertise IP, 127.0.0.1, ::1
    ca("etcd/ca", "etcd/ca", "etcd-ca")
    etcd_sans = san_entries([node_name, "localhost"], [advertise_address, "127.0.0.1", "::1"])
    leaf("etcd/server", "etcd/server", "etcd/ca", node_name, usages=("serverAuth", "clientAuth"), sans=etcd_sans)
    leaf("etcd/peer", "etcd/peer", "etcd/ca", node_name, usages=("serverAuth", "clientAuth"), sans=etcd_sans)
    leaf("etcd/healthcheck-client", "etcd/healthcheck-client", "etcd/ca", "kube-etcd-healthcheck-client")
    leaf("apiserver-etcd-client", "apiserver-etcd-client", "etcd/ca", "kube-apiserver-etcd-client")
    # phases/certs/certs.go CreateServiceAccountKeyAndPublicKeyFiles: sa.key / sa.pub
    if os.path.exists(p("sa.key")) and os.path.exists(p("sa.pub")):
        log("[certs] Using the existing \"sa\" key")
    else:
        log("[certs] Generating \"sa\" key and public key")
        new_key(p("sa.key"))
        with open(p("sa.pub"), "wb") as stream:
            stream.write(openssl("pkey", "-in", p("sa.key"), "-pubout"))


# --- public key pin (util/pubkeypin/pubkeypin.go Hash) ----------------------------------------

def pem_to_der(pem):
    text = pem.decode() if isinstance(pem, bytes) else pem
    start = text.index("-----BEGIN CERTIFICATE-----") + len("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----", start)
    return base64.b64decode("".join(text[start:end].split()))


def _der_len(data, offset):
    first = data[offset + 1]
    if first < 0x80:
        return 2, first
    count = first & 0x7F
    return 2 + count, int.from_bytes(data[offset + 2:offset + 2 + count], "big")


def _children(data, offset):
    header, length = _der_len(data, offset)
    position, end, out = offset + header, offset + header + length, []
    while position < end:
        out.append(position)
        h, n = _der_len(data, position)
        position += h + n
    return out


def spki_der(cert_der):
    """RawSubjectPublicKeyInfo of an X.509 certificate (RFC 5280 4.1): the 6th field of the
    TBSCertificate after the optional [0] version."""
    tbs = _children(cert_der, _children(cert_der, 0)[0])
    if cert_der[tbs[0]] == 0xA0:
        tbs = tbs[1:]
    start = tbs[5]
    header, length = _der_len(cert_der, start)
    return cert_der[start:start + header + length]


def pubkey_pin(pem):
    """pubkeypin.go Hash: "sha256:" + hex(sha256(certificate.RawSubjectPublicKeyInfo))."""
    return "sha256:" + hashlib.sha256(spki_der(pem_to_der(pem))).hexdigest()


# --- kubeconfig (phases/kubeconfig/kubeconfig.go, util/kubeconfig/kubeconfig.go) ---------------

def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def kubeconfig_text(server, ca_pem, user, cluster_name="kubernetes", cert_pem=None, key_pem=None,
                    token=None, cert_file=None, key_file=None):
    """util/kubeconfig/kubeconfig.go CreateWithCerts / CreateWithToken / CreateBasic: one
    cluster, one context "<user>@<cluster>", current-context set; written as clientcmd does."""
    context = "%s@%s" % (user, cluster_name)
    lines = ["apiVersion: v1", "clusters:", "- cluster:",
             "    certificate-authority-data: %s" % b64(ca_pem),
             "    server: %s" % server, "  name: %s" % cluster_name,
             "contexts:", "- context:", "    cluster: %s" % cluster_name, "    user: %s" % user,
             "  name: %s" % context, "current-context: %s" % context, "kind: Config"]
    if user is None:
        return "\n".join(lines) + "\n"
    lines += ["preferences: {}", "users:", "- name: %s" % user, "  user:"]
    if cert_pem is not None:
        lines.append("    client-certificate-data: %s" % b64(cert_pem))
        lines.append("    client-key-data: %s" % b64(key_pem))
    if cert_file:
        lines.append("    client-certificate: %s" % cert_file)
        lines.append("    client-key: %s" % key_file)
    if token:
        lines.append("    token: %s" % token)
    return "\n".join(lines) + "\n"


def cluster_info_kubeconfig(server, ca_pem, cluster_name=""):
    """phases/bootstraptoken/clusterinfo/clusterinfo.go CreateBootstrapConfigMapIfNotExists:
    kubeconfig.CreateBasic(server, "kubernetes"?, "", caData) with the users/contexts removed:
    only clusters[""] with certificate-authority-data and server."""
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: %s\n    server: %s\n"
            "  name: \"%s\"\ncontexts: null\ncurrent-context: \"\"\nkind: Config\npreferences: {}\n"
            "users: null\n" % (b64(ca_pem), server, cluster_name))


def write_client_kubeconfig(path, server, pki_dir, cn, orgs, cluster_name="kubernetes"):
    """phases/kubeconfig/kubeconfig.go createKubeConfigFileIfNotExists for admin.conf,
    super-admin.conf, controller-manager.conf, scheduler.conf, kubelet.conf: a client
    certificate signed by the CA, embedded (client-certificate-data), file mode 0600."""
    with tempfile.TemporaryDirectory(prefix="kubegpu-kc-") as tmp:
        key = os.path.join(tmp, "k.key")
        crt = os.path.join(tmp, "k.crt")
        new_signed(crt, key, os.path.join(pki_dir, "ca.crt"), os.path.join(pki_dir, "ca.key"), cn, orgs)
        with open(crt, "rb") as s1, open(key, "rb") as s2, open(os.path.join(pki_dir, "ca.crt"), "rb") as s3:
            cert_pem, key_pem, ca_pem = s1.read(), s2.read(), s3.read()
    _write_private(path, kubeconfig_text(server, ca_pem, cn if not cn.startswith("system:node:") else cn,
                                         cluster_name, cert_pem, key_pem).encode())
    return cert_pem, key_pem
