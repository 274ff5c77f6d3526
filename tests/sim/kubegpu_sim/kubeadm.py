# SPDX-License-Identifier: Apache-2.0
"""The simulated kubeadm (test-only): `python3 -m kubegpu_sim.kubeadm` (/usr/bin/kubeadm of
the kubeadm .deb built by tests/sim/build-debs.sh). See tests/sim/README.md.

Commands: init, join, reset, token create|list, init phase upload-certs, version,
config validate, config images list. Each phase follows kubernetes cmd/kubeadm/app/cmd/
(init.go, join.go, reset.go, token.go, config.go and cmd/phases/{init,join,reset}/);
where the simulation deviates it says so beside the code:

- no containers: the control plane is the simulated kube-apiserver and
  kube-controller-manager run as systemd units (kube-apiserver-sim.service,
  kube-controller-manager-sim.service) started by init; the static Pod manifests are still
  written (and removed by reset) as kubeadm writes them;
- a control-plane join runs no second API server: the HA endpoint stays the first control
  plane's (admin.conf on the joined node points at controlPlaneEndpoint);
- upload-certs seals the files with an HMAC-SHA256 stream cipher + HMAC-SHA256 tag keyed
  by the certificate key (the standard library has no AES-GCM, which kubeadm's
  util/crypto/crypto.go EncryptBytes uses): only the right key opens them;
- the kubelet's TLS bootstrap (the kubelet's job upstream, driven by
  bootstrap-kubelet.conf) is done by kubeadm join itself: key + CSR with openssl, POST a
  CertificateSigningRequest with the bootstrap token, wait for the certificate.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import os
import secrets
import shutil
import socket
import string
import subprocess
import sys
import tempfile
import time

from . import kubeadm_addons as addons
from . import kubeadm_config as kc
from . import kubeadm_preflight as preflight
from . import pki
from . import yamlish
from .client import ApiError, Client

VERSION = kc.KUBERNETES_VERSION
KUBE_DIR = "/etc/kubernetes"
MANIFESTS = KUBE_DIR + "/manifests"
KUBELET_DIR = "/var/lib/kubelet"
SIM_STATE = "/var/lib/kubegpu-sim"
UNIT_DIR = "/etc/systemd/system"
UNITS = ("kube-apiserver-sim.service", "kube-controller-manager-sim.service")
PYTHONPATH = "/usr/lib/kubegpu-sim/kubeadm"
SCHEMAS = "/usr/share/kubegpu-sim/schemas"
UNIT_TEMPLATES = ("/usr/share/kubegpu-sim/units",
                  os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "units"))
# constants.go: KubeletRunDirectory files, CertificateKeySize (32), DefaultCertTokenDuration (2h)
CERTIFICATE_KEY_SIZE = 32
CERT_TOKEN_TTL = 2 * 3600
DEFAULT_NODE_GROUP = "system:bootstrappers:kubeadm:default-node-token"
WAIT = float(os.environ.get("KUBEGPU_SIM_KUBEADM_WAIT", "240"))  # timeouts.kubeletHealthCheck (4m)
# timeouts.tlsBootstrap (5m; constants.go TLSBootstrapTimeout): how long the join waits for its
# kubelet client certificate (on a loaded 2-core machine the approval can take over a minute).
CSR_WAIT = float(os.environ.get("KUBEGPU_SIM_KUBEADM_CSR_WAIT", "300"))


class PhaseError(Exception):
    """A failed phase: printed as kubeadm does ("error execution phase <phase>: <msg>")."""

    def __init__(self, phase, message):
        super().__init__(message)
        self.phase = phase


def out(line=""):
    print(line, flush=True)


def warn(line):
    print(line, file=sys.stderr, flush=True)


# --- host facts ------------------------------------------------------------------------------

def node_name_default():
    # util/config/common.go: nodeutil.GetHostname("") -> os.Hostname lower-cased
    return socket.gethostname().strip().lower()


def default_route_ipv4():
    """k8s.io/apimachinery/pkg/util/net ChooseHostInterface: the IPv4 of the interface of the
    default route (/proc/net/route). Found here by connecting a UDP socket toward the
    default gateway (no packet is sent) and reading the source address."""
    gateway = None
    try:
        with open("/proc/net/route") as stream:
            for line in stream.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    gateway = socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
                    break
    except OSError:
        pass
    target = gateway if gateway and gateway != "0.0.0.0" else "10.255.255.255"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.connect((target, 9))
        return sock.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        sock.close()


def systemctl(*args, check=True):
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError("systemctl %s: %s" % (" ".join(args), (result.stderr or result.stdout).strip()))
    return result


def write_file(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data if isinstance(data, bytes) else data.encode())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def read_file(path, binary=False):
    with open(path, "rb" if binary else "r") as stream:
        return stream.read()


# --- tokens (apis/bootstraptoken/v1, k8s.io/cluster-bootstrap/token/util) ----------------------

TOKEN_CHARS = string.ascii_lowercase + string.digits  # bootstraputil.validBootstrapTokenChars


def generate_token():
    """bootstraputil.GenerateBootstrapToken: 6 + 16 random [a-z0-9]."""
    def pick(n):
        return "".join(secrets.choice(TOKEN_CHARS) for _unused in range(n))
    return "%s.%s" % (pick(6), pick(16))


def rfc3339(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(token, ttl_seconds=None, description="", usages=("signing", "authentication"),
                 groups=(DEFAULT_NODE_GROUP,), now=None):
    """apis/bootstraptoken/v1/utils.go BootstrapTokenToSecret / encodeTokenSecretData:
    Secret kube-system/bootstrap-token-<id>, type bootstrap.kubernetes.io/token, data
    token-id, token-secret, [description], [expiration RFC3339], usage-bootstrap-<u>: "true",
    auth-extra-groups (comma-joined). ttl 0 (or None) means never expires."""
    match = kc.TOKEN_RE.match(token)
    if not match:
        raise ValueError("the bootstrap token %r was not of the form %r" % ("<redacted>", kc.TOKEN_RE.pattern))
    token_id, token_sec = match.groups()
    data = {"token-id": token_id, "token-secret": token_sec}
    if description:
        data["description"] = description
    if ttl_seconds:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        data["expiration"] = rfc3339(now + datetime.timedelta(seconds=ttl_seconds))
    for usage in usages:
        data["usage-bootstrap-%s" % usage] = "true"
    if groups:
        data["auth-extra-groups"] = ",".join(groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": "bootstrap-token-%s" % token_id, "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def create_token_secret(api, secret):
    """phases/bootstraptoken/node/token.go UpdateOrCreateTokens: create, or update when the
    token ID exists."""
    path = "/api/v1/namespaces/kube-system/secrets"
    try:
        return api.create(path, secret)
    except ApiError as err:
        if err.status != 409:
            raise
        return api.replace(path + "/" + secret["metadata"]["name"], secret)


# --- certificate key sealing (phases/copycerts/copycerts.go; deviation: see module doc) --------

def _keystream(key, nonce, length):
    blocks, counter = [], 0
    while sum(len(b) for b in blocks) < length:
        blocks.append(hmac.new(key, b"stream" + nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest())
        counter += 1
    return b"".join(blocks)[:length]


def seal(data, key):
    """nonce(16) || data XOR HMAC-SHA256 keystream || HMAC-SHA256(key, nonce || ciphertext).
    Stands in for util/crypto/crypto.go EncryptBytes (AES-256-GCM)."""
    nonce = os.urandom(16)
    body = bytes(a ^ b for a, b in zip(data, _keystream(key, nonce, len(data))))
    tag = hmac.new(key, b"tag" + nonce + body, hashlib.sha256).digest()
    return nonce + body + tag


def unseal(blob, key):
    """util/crypto/crypto.go DecryptBytes: a wrong key fails authentication."""
    if len(blob) < 48:
        raise ValueError("size of data is less than the nonce")
    nonce, body, tag = blob[:16], blob[16:-32], blob[-32:]
    if not hmac.compare_digest(tag, hmac.new(key, b"tag" + nonce + body, hashlib.sha256).digest()):
        raise ValueError("cipher: message authentication failed")
    return bytes(a ^ b for a, b in zip(body, _keystream(key, nonce, len(body))))


# copycerts.go certsToTransfer (stacked etcd); secret keys: "/" -> "-" (certOrKeyNameToSecretName)
SHARED_CERTS = ("ca.crt", "ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.pub", "sa.key",
                "etcd/ca.crt", "etcd/ca.key")


# --- output ------------------------------------------------------------------------------------

def join_command(endpoint, token, ca_hash, control_plane=False, certificate_key=None):
    """cmd/util/join.go getJoinCommand / phases/init/showjoincommand.go templates."""
    lines = ["kubeadm join %s --token %s \\" % (endpoint, token),
             "\t--discovery-token-ca-cert-hash %s" % ca_hash]
    if control_plane:
        lines[-1] += " \\"
        lines.append("\t--control-plane" + (" --certificate-key %s" % certificate_key if certificate_key else ""))
    return "\n".join(lines)


def init_success(endpoint, token, ca_hash, has_endpoint):
    """cmd/init.go initDoneTempl."""
    text = ["", "Your Kubernetes control-plane has initialized successfully!", "",
            "To start using your cluster, you need to run the following as a regular user:", "",
            "  mkdir -p $HOME/.kube", "  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config",
            "  sudo chown $(id -u):$(id -g) $HOME/.kube/config", "",
            "Alternatively, if you are the root user, you can run:", "",
            "  export KUBECONFIG=/etc/kubernetes/admin.conf", "",
            "You should now deploy a pod network to the cluster.",
            'Run "kubectl apply -f [podnetwork].yaml" with one of the options listed at:',
            "  https://kubernetes.io/docs/concepts/cluster-administration/addons/", ""]
    if has_endpoint:
        text += ["You can now join any number of control-plane nodes by copying certificate authorities",
                 "and service account keys on each node and then running the following as root:", "",
                 "  " + join_command(endpoint, token, ca_hash, True).replace("\n", "\n  "), ""]
    text += ["Then you can join any number of worker nodes by running the following on each as root:", "",
             join_command(endpoint, token, ca_hash)]
    return "\n".join(text)


# --- helpers for phases ------------------------------------------------------------------------

def admin_client(path=KUBE_DIR + "/admin.conf"):
    if not os.path.exists(path):
        raise PhaseError("", "failed to load admin kubeconfig: open %s: no such file or directory" % path)
    return Client.from_kubeconfig(path)


def create_or_update(api, obj):
    """util/apiclient/idempotency.go CreateOrUpdate*: create; on AlreadyExists update."""
    group_version = obj["apiVersion"]
    prefix = "/api/v1" if group_version == "v1" else "/apis/" + group_version
    plural = {"ConfigMap": "configmaps", "Secret": "secrets", "ServiceAccount": "serviceaccounts",
              "Service": "services", "Deployment": "deployments", "DaemonSet": "daemonsets",
              "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
              "RoleBinding": "rolebindings"}[obj["kind"]]
    ns = obj["metadata"].get("namespace")
    path = "%s/namespaces/%s/%s" % (prefix, ns, plural) if ns else "%s/%s" % (prefix, plural)
    try:
        return api.create(path, obj)
    except ApiError as err:
        if err.status != 409:
            raise
    current = api.get(path + "/" + obj["metadata"]["name"]) or {}
    obj = json.loads(json.dumps(obj))
    obj["metadata"]["resourceVersion"] = current.get("metadata", {}).get("resourceVersion")
    if obj["kind"] == "Service":
        obj["spec"]["clusterIP"] = current.get("spec", {}).get("clusterIP", obj["spec"].get("clusterIP"))
    return api.replace(path + "/" + obj["metadata"]["name"], obj)


def wait_for(what, func, timeout, interval=1.0):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = func()
            if value:
                return value
        except (OSError, ApiError, ValueError) as err:
            last = err
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out waiting for %s%s" % (what, (": %s" % last) if last else ""))
        time.sleep(interval)


def kubelet_config(given, cluster, node_ip=None):
    """componentconfigs/kubelet.go kubeletConfig.Default: the KubeletConfiguration given,
    completed with kubeadm's defaults (clusterDNS = the service subnet's tenth IP,
    clusterDomain, staticPodPath, x509 client CA, webhook authn/authz, rotateCertificates,
    healthz on 127.0.0.1:10248, cgroupDriver systemd)."""
    config = {"apiVersion": kc.KUBELET_GV, "kind": "KubeletConfiguration"}
    config.update(given or {})
    config.setdefault("clusterDNS", [kc.service_ip(cluster["networking"]["serviceSubnet"], 10)])
    config.setdefault("clusterDomain", cluster["networking"]["dnsDomain"])
    config.setdefault("staticPodPath", MANIFESTS)
    config.setdefault("authentication", {"anonymous": {"enabled": False},
                                         "webhook": {"enabled": True, "cacheTTL": "0s"},
                                         "x509": {"clientCAFile": cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR)
                                                  + "/ca.crt"}})
    config.setdefault("authorization", {"mode": "Webhook", "webhook": {"cacheAuthorizedTTL": "0s",
                                                                       "cacheUnauthorizedTTL": "0s"}})
    config.setdefault("healthzBindAddress", "127.0.0.1")
    config.setdefault("healthzPort", 10248)
    config.setdefault("rotateCertificates", True)
    config.setdefault("cgroupDriver", "systemd")
    return config


def kubeadm_flags(nodereg, node_ip=None):
    """phases/kubelet/flags.go buildKubeletArgs / WriteKubeletDynamicEnvFile:
    KUBELET_KUBEADM_ARGS="...". Upstream writes --hostname-override only when the name
    differs from the hostname; the simulation always writes it (and --node-ip), as the
    simulated kubelet reads its node name and address from them (tests/sim/README.md)."""
    args = ["--container-runtime-endpoint=%s" % nodereg["criSocket"], "--hostname-override=%s" % nodereg["name"]]
    if node_ip:
        args.append("--node-ip=%s" % node_ip)
    for extra in nodereg.get("kubeletExtraArgs") or []:
        args.append("--%s=%s" % (extra["name"], extra["value"]))
    return 'KUBELET_KUBEADM_ARGS="%s"\n' % " ".join(args)


def write_kubelet_files(config_doc, nodereg, node_ip):
    out('[kubelet-start] Writing kubelet environment file with flags to file "%s/kubeadm-flags.env"' % KUBELET_DIR)
    write_file(KUBELET_DIR + "/kubeadm-flags.env", kubeadm_flags(nodereg, node_ip))
    out('[kubelet-start] Writing kubelet configuration to file "%s/config.yaml"' % KUBELET_DIR)
    write_file(KUBELET_DIR + "/config.yaml", yamlish.dump(config_doc))


def write_kubelet_client(cert_pem, key_pem, server, ca_pem, node_name):
    """The kubelet's client credentials: pkg/kubelet/certificate/kubelet.go stores them as
    /var/lib/kubelet/pki/kubelet-client-<timestamp>.pem + symlink kubelet-client-current.pem;
    kubeadm's kubelet-finalize (phases/kubelet/kubelet.go... cmd/phases/init/kubeletfinalize.go
    runKubeletFinalizeEnableClientCertRotation) points kubelet.conf at it."""
    pki_dir = KUBELET_DIR + "/pki"
    os.makedirs(pki_dir, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d-%H-%M-%S")
    target = "%s/kubelet-client-%s.pem" % (pki_dir, stamp)
    write_file(target, cert_pem + key_pem, 0o600)
    current = pki_dir + "/kubelet-client-current.pem"
    if os.path.lexists(current):
        os.unlink(current)
    os.symlink(target, current)
    write_file(KUBE_DIR + "/kubelet.conf",
               pki.kubeconfig_text(server, ca_pem, "default-auth", "default-cluster",
                                   cert_file=current, key_file=current).replace(
                   "default-auth@default-cluster", "default-context"), 0o600)


def wait_for_node(api, name, timeout=WAIT):
    return wait_for("the Node %s to register" % name, lambda: api.get("/api/v1/nodes/%s" % name), timeout)


def mark_control_plane(api, name, taints):
    """phases/markcontrolplane/markcontrolplane.go MarkControlPlane: labels
    node-role.kubernetes.io/control-plane="" and
    node.kubernetes.io/exclude-from-external-load-balancers="", the taints added when
    missing (apiclient.PatchNode retries until the Node exists)."""
    labels = ["node-role.kubernetes.io/control-plane", "node.kubernetes.io/exclude-from-external-load-balancers"]
    out("[mark-control-plane] Marking the node %s as control-plane by adding the labels: [%s]" % (name, " ".join(labels)))
    if taints:
        out("[mark-control-plane] Marking the node %s as control-plane by adding the taints [%s]" % (
            name, " ".join("%s:%s" % (t["key"], t["effect"]) if not t.get("value") else
                           "%s=%s:%s" % (t["key"], t["value"], t["effect"]) for t in taints)))
    node = wait_for_node(api, name)
    existing = list(node.get("spec", {}).get("taints") or [])
    for taint in taints:
        if not any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"] for t in existing):
            existing.append({k: v for k, v in taint.items() if v is not None})
    patch = {"metadata": {"labels": {label: "" for label in labels}}}
    if taints:
        patch["spec"] = {"taints": existing}
    api.merge_patch("/api/v1/nodes/%s" % name, patch)


def render_unit(name, values):
    for base in UNIT_TEMPLATES:
        path = os.path.join(base, name)
        if os.path.exists(path):
            text = read_file(path)
            for key, value in values.items():
                text = text.replace("@%s@" % key, value)
            return text
    raise FileNotFoundError("unit template %s not found in %s" % (name, ", ".join(UNIT_TEMPLATES)))


# --- init ------------------------------------------------------------------------------------

def load_config_file(path, want, strict=False):
    try:
        text = read_file(path)
    except OSError as err:
        raise PhaseError("", "unable to read config from \"%s\" : %s" % (path, err.strerror.lower()))
    try:
        config = kc.load(text, strict_errors=strict, node_name_default=node_name_default(), want=want)
    except kc.ConfigError as err:
        raise PhaseError("", str(err))
    for message in config.warnings:
        # klog.Warning of util/config strict decoding
        warn("W0000 00:00:00.000000       1 initconfiguration.go:332] %s" % message if "strict" in message else message)
    return config


def do_preflight(checks, ignore):
    out("[preflight] Running pre-flight checks")
    warnings, errors = preflight.run_checks(checks, ignore)
    for line in warnings:
        warn(line)
    if errors:
        raise PhaseError("preflight", "[preflight] Some fatal errors occurred:\n%s\n[preflight] If you know what you "
                         "are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"
                         % "\n".join(errors))


def start_control_plane(advertise, cluster, bind_port):
    """Deviation (see module doc): instead of static Pods run by the kubelet, systemd units
    with the command lines of tests/sim/README.md."""
    net = cluster["networking"]
    values = {"PYTHONPATH": PYTHONPATH, "CERT_DIR": cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR),
              "ADVERTISE_ADDRESS": advertise, "SECURE_PORT": str(bind_port),
              "SERVICE_CIDR": net["serviceSubnet"], "SCHEMAS": SCHEMAS,
              "DATA_DIR": SIM_STATE + "/apiserver", "POD_CIDR": net.get("podSubnet") or "",
              "ALLOCATE_NODE_CIDRS": "true" if net.get("podSubnet") else "false"}
    for unit in UNITS:
        write_file(os.path.join(UNIT_DIR, unit), render_unit(unit, values))
    os.makedirs(SIM_STATE + "/apiserver", exist_ok=True)
    systemctl("daemon-reload")
    systemctl("enable", "--now", *UNITS)


def readyz(bind_port, timeout):
    probe = Client("https://127.0.0.1:%d" % bind_port, timeout=5)
    return wait_for("kube-apiserver /readyz", lambda: probe.request("GET", "/readyz", raw=True), timeout, 0.5)


def cmd_init(args):
    config_path = args.get("--config")
    if not config_path:
        raise PhaseError("", "the simulated kubeadm needs --config")
    config = load_config_file(config_path, "init")
    init, cluster = config.init, config.cluster
    nodereg = init["nodeRegistration"]
    name = nodereg["name"]
    endpoint_cfg = init.get("localAPIEndpoint") or {}
    bind_port = endpoint_cfg.get("bindPort", kc.DEFAULT_BIND_PORT)
    # util/config/initconfiguration.go SetAPIEndpointDynamicDefaults: advertiseAddress
    # defaults to the IP of the default-route interface (ChooseAPIServerBindAddress)
    advertise = endpoint_cfg.get("advertiseAddress") or default_route_ipv4()
    net = cluster["networking"]
    cp_endpoint = cluster.get("controlPlaneEndpoint")
    if cp_endpoint:
        host, port = kc.split_host_port(cp_endpoint)
        server_hostport = "%s:%d" % (host, port or bind_port)
    else:
        host = None
        server_hostport = "%s:%d" % (advertise, bind_port)
    server = "https://" + server_hostport
    ignore = list(nodereg.get("ignorePreflightErrors") or []) + args.get("--ignore-preflight-errors", [])

    out("[init] Using Kubernetes version: %s" % cluster["kubernetesVersion"])
    do_preflight(preflight.init_checks(nodereg["criSocket"], name, bind_port), ignore)
    out("[preflight] Pulling images required for setting up a Kubernetes cluster")
    out("[preflight] This might take a minute or two, depending on the speed of your internet connection")
    out("[preflight] You can also perform this action beforehand using 'kubeadm config images pull'")

    pki_dir = cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR)
    vip = kc.service_ip(net["serviceSubnet"], 1)  # constants.go GetAPIServerVirtualIP
    try:
        pki.create_control_plane_pki(pki_dir, name, advertise, vip, net["dnsDomain"], host,
                                     (cluster.get("apiServer") or {}).get("certSANs") or [], log=out)
    except pki.PKIError as err:
        raise PhaseError("certs", str(err))

    # phases/kubeconfig/kubeconfig.go getKubeConfigSpecs: admin (kubeadm:cluster-admins),
    # super-admin (system:masters), controller-manager, scheduler (local endpoint), kubelet
    out('[kubeconfig] Using kubeconfig folder "%s"' % KUBE_DIR)
    local = "https://%s:%d" % (advertise, bind_port)
    cluster_name = cluster.get("clusterName", "kubernetes")
    for filename, cn, orgs, url in (
            ("admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",), server),
            ("super-admin.conf", "kubernetes-super-admin", ("system:masters",), server),
            ("controller-manager.conf", "system:kube-controller-manager", (), local),
            ("scheduler.conf", "system:kube-scheduler", (), local)):
        out('[kubeconfig] Writing "%s" kubeconfig file' % filename)
        pki.write_client_kubeconfig(os.path.join(KUBE_DIR, filename), url, pki_dir, cn, orgs, cluster_name)
    out('[kubeconfig] Writing "kubelet.conf" kubeconfig file')
    with tempfile.TemporaryDirectory(prefix="kubegpu-kubelet-") as tmp:
        pki.new_signed(tmp + "/c.crt", tmp + "/c.key", pki_dir + "/ca.crt", pki_dir + "/ca.key",
                       "system:node:%s" % name, ("system:nodes",))
        kubelet_cert, kubelet_key = read_file(tmp + "/c.crt", True), read_file(tmp + "/c.key", True)
    ca_pem = read_file(pki_dir + "/ca.crt", True)
    write_kubelet_client(kubelet_cert, kubelet_key, server, ca_pem, name)

    out('[etcd] Creating static Pod manifest for local etcd in "%s"' % MANIFESTS)
    out('[control-plane] Using manifest folder "%s"' % MANIFESTS)
    os.makedirs(MANIFESTS, exist_ok=True)
    for filename, pod in addons.static_pods(cluster, name, advertise, bind_port).items():
        if filename != "etcd.yaml":
            out('[control-plane] Creating static Pod manifest for "%s"' % filename[:-5])
        write_file(os.path.join(MANIFESTS, filename), yamlish.dump(pod), 0o600)

    kubelet_doc = kubelet_config(config.kubelet, cluster)
    write_kubelet_files(kubelet_doc, nodereg, endpoint_cfg.get("advertiseAddress") or advertise)
    out("[kubelet-start] Starting the kubelet")
    try:
        start_control_plane(advertise, cluster, bind_port)
        systemctl("restart", "kubelet")
    except RuntimeError as err:
        raise PhaseError("kubelet-start", str(err))
    out('[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from '
        'directory "%s"' % MANIFESTS)
    out("[control-plane-check] Checking kube-apiserver at %s/livez" % local)
    started = time.monotonic()
    try:
        readyz(bind_port, WAIT)
    except TimeoutError as err:
        raise PhaseError("wait-control-plane", "could not initialize a Kubernetes cluster: %s" % err)
    out("[control-plane-check] kube-apiserver is healthy after %.6fs" % (time.monotonic() - started))
    if cp_endpoint:
        # admin.conf points at controlPlaneEndpoint (a load balancer, or kube-vip's VIP that its
        # static Pod brings up once the API server answers); kubeadm's API calls retry until
        # timeouts.kubernetesAPICall (v1beta4 Timeouts, default 1m) passes.
        probe = Client(server, timeout=5)
        try:
            wait_for("the control-plane endpoint %s" % server_hostport,
                     lambda: probe.request("GET", "/readyz", raw=True), 60, 0.5)
        except TimeoutError as err:
            raise PhaseError("upload-config", str(err))

    api = admin_client()
    try:
        init_cluster_objects(api, init, cluster, config, name, server, ca_pem, args)
    except (ApiError, TimeoutError, OSError) as err:
        raise PhaseError(getattr(err, "phase", "upload-config"), str(err))
    token = init["bootstrapTokens"][0]["token"]
    out(init_success(server_hostport, token, pki.pubkey_pin(ca_pem), bool(cp_endpoint)))


def init_cluster_objects(api, init, cluster, config, name, server, ca_pem, args):
    phase = "upload-config"
    try:
        out('[upload-config] Storing the configuration used in ConfigMap "kubeadm-config" in the "kube-system" Namespace')
        # phases/uploadconfig/uploadconfig.go UploadConfiguration: the ClusterConfiguration only
        stored = dict(cluster)
        create_or_update(api, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
                               "data": {"ClusterConfiguration": yamlish.dump(stored)}})
        out('[kubelet] Creating a ConfigMap "kubelet-config" in namespace kube-system with the configuration '
            'for the kubelets in the cluster')
        # phases/kubelet/config.go CreateConfigMap
        create_or_update(api, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "kubelet-config", "namespace": "kube-system"},
                               "data": {"kubelet": yamlish.dump(kubelet_config(config.kubelet, cluster))}})
        for obj in addons.upload_config_rbac():
            create_or_update(api, obj)
        phase = "upload-certs"
        if args.get("--upload-certs"):
            upload_certs(api, cluster, args.get("--certificate-key"))
        else:
            out("[upload-certs] Skipping phase. Please see --upload-certs")
        phase = "mark-control-plane"
        mark_control_plane(api, name, kc.control_plane_taints(init["nodeRegistration"]))
        phase = "bootstrap-token"
        token = init["bootstrapTokens"][0].get("token") or generate_token()
        init["bootstrapTokens"][0]["token"] = token
        out("[bootstrap-token] Using token: %s" % token)
        out("[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles")
        for spec in init["bootstrapTokens"]:
            spec.setdefault("token", generate_token())
            create_token_secret(api, token_secret(spec["token"], kc.parse_duration(spec["ttl"]),
                                                  spec.get("description", ""), spec["usages"], spec["groups"]))
        out("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to get nodes")
        out("[bootstrap-token] Configured RBAC rules to allow Node Bootstrap tokens to post CSRs in order for "
            "nodes to get long term certificate credentials")
        out("[bootstrap-token] Configured RBAC rules to allow the csrapprover controller automatically approve "
            "CSRs from a Node Bootstrap Token")
        out("[bootstrap-token] Configured RBAC rules to allow certificate rotation for all node client "
            "certificates in the cluster")
        for obj in addons.bootstrap_rbac():
            create_or_update(api, obj)
        out('[bootstrap-token] Creating the "cluster-info" ConfigMap in the "kube-public" namespace')
        # phases/bootstraptoken/clusterinfo/clusterinfo.go CreateBootstrapConfigMapIfNotExists
        create_or_update(api, {"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": "cluster-info", "namespace": "kube-public"},
                               "data": {"kubeconfig": pki.cluster_info_kubeconfig(server, ca_pem)}})
        phase = "kubelet-finalize"
        out('[kubelet-finalize] Updating "%s/kubelet.conf" to point to a rotatable kubelet client certificate '
            'and key' % KUBE_DIR)
        phase = "addons"
        dns = cluster.get("dns") or {}
        if not dns.get("disabled"):
            for obj in addons.coredns_objects(cluster):
                create_or_update(api, obj)
            out("[addons] Applied essential addon: CoreDNS")
        if not (cluster.get("proxy") or {}).get("disabled"):
            for obj in addons.kube_proxy_objects(cluster, server, config.kubeproxy):
                create_or_update(api, obj)
            out("[addons] Applied essential addon: kube-proxy")
    except (ApiError, TimeoutError, OSError) as err:
        err.phase = phase
        raise


# --- upload-certs ----------------------------------------------------------------------------

def upload_certs(api, cluster, key_hex=None):
    """phases/copycerts/copycerts.go UploadCerts: a short-lived token (2h, "Proxy for managing
    TTL for the kubeadm-certs secret") owns Secret kube-system/kubeadm-certs whose entries are
    the shared CA/sa/front-proxy/etcd files sealed with the certificate key; Role/RoleBinding
    kubeadm:kubeadm-certs for the default node token group."""
    if not key_hex:
        key_hex = secrets.token_hex(CERTIFICATE_KEY_SIZE)  # copycerts.go CreateCertificateKey
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        raise PhaseError("upload-certs", "error uploading certs: error decoding certificate key: encoding/hex: "
                         "invalid byte")
    if len(key) != CERTIFICATE_KEY_SIZE:
        # util/crypto/crypto.go EncryptBytes -> aes.NewCipher: "crypto/aes: invalid key size"
        raise PhaseError("upload-certs", "error uploading certs: crypto/aes: invalid key size %d" % len(key))
    out('[upload-certs] Storing the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    token = generate_token()
    owner = create_token_secret(api, token_secret(token, CERT_TOKEN_TTL,
                                                  "Proxy for managing TTL for the kubeadm-certs secret"))
    pki_dir = cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR)
    data = {}
    for name in SHARED_CERTS:
        path = os.path.join(pki_dir, name)
        blob = seal(read_file(path, True), key) if os.path.exists(path) else b""
        data[name.replace("/", "-")] = base64.b64encode(blob).decode()
    secret = {"apiVersion": "v1", "kind": "Secret",
              "metadata": {"name": "kubeadm-certs", "namespace": "kube-system",
                           "ownerReferences": [{"apiVersion": "v1", "kind": "Secret",
                                                "name": owner["metadata"]["name"],
                                                "uid": owner["metadata"].get("uid", ""),
                                                "controller": True, "blockOwnerDeletion": True}]},
              "type": "Opaque", "data": data}
    create_or_update(api, secret)
    for obj in ({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                 "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": "kube-system"},
                 "rules": [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["kubeadm-certs"],
                            "verbs": ["get"]}]},
                {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                 "metadata": {"name": "kubeadm:kubeadm-certs", "namespace": "kube-system"},
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kubeadm:kubeadm-certs"},
                 "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": DEFAULT_NODE_GROUP}]}):
        create_or_update(api, obj)
    # cmd/phases/init/uploadcerts.go runUploadCerts
    out("[upload-certs] Using certificate key:\n%s" % key_hex)
    return key_hex


def download_certs(api, key_hex, pki_dir):
    """copycerts.go DownloadCerts / getDataFromSecret / writeCertOrKey."""
    out('[download-certs] Downloading the certificates in Secret "kubeadm-certs" in the "kube-system" Namespace')
    phase = "control-plane-prepare/download-certs"
    secret = api.get("/api/v1/namespaces/kube-system/secrets/kubeadm-certs")
    if secret is None:
        raise PhaseError(phase, "error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was "
                         "not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run "
                         "`kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one")
    try:
        key = bytes.fromhex(key_hex or "")
        files = {}
        for name, value in (secret.get("data") or {}).items():
            blob = base64.b64decode(value)
            files[name] = unseal(blob, key) if blob else b""
    except ValueError as err:
        raise PhaseError(phase, "error downloading certs: error decoding secret data with provided key: %s" % err)
    for name in SHARED_CERTS:
        content = files.get(name.replace("/", "-"))
        if content is None:
            raise PhaseError(phase, "error downloading certs: the Secret does not include the required certificate "
                             "or key - name: %s, path: %s" % (name, os.path.join(pki_dir, name)))
        if content:
            write_file(os.path.join(pki_dir, name), content, 0o600 if name.endswith(".key") else 0o644)


def cmd_upload_certs(args):
    if not args.get("--upload-certs"):
        out("[upload-certs] Skipping phase. Please see --upload-certs")
        return
    cluster = kc.default_cluster({"apiVersion": kc.SUPPORTED_VERSION, "kind": "ClusterConfiguration"})
    api = admin_client()
    current = api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
    if current:
        cluster = kc.default_cluster(yamlish.load(current["data"]["ClusterConfiguration"]))
    try:
        upload_certs(api, cluster, args.get("--certificate-key"))
    except ApiError as err:
        raise PhaseError("upload-certs", "error uploading certs: %s" % err)


# --- join ------------------------------------------------------------------------------------

def _jws_verify(signature, payload, secret):
    """k8s.io/cluster-bootstrap/token/jws ComputeDetachedSignature: HS256 JWS with a detached
    payload, header {"alg":"HS256","kid":"<token id>"}."""
    try:
        header_b64, empty, sig_b64 = signature.split(".")
    except ValueError:
        return False
    signing_input = (header_b64 + "." + base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")).encode()
    expected = base64.urlsafe_b64encode(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
                                        ).decode().rstrip("=")
    return empty == "" and hmac.compare_digest(expected, sig_b64)


def discover(endpoint, token, ca_hashes, unsafe_skip=False, timeout=300):
    """discovery/token/token.go RetrieveValidatedConfigInfo: fetch kube-public/cluster-info
    anonymously (TLS unverified), check the JWS signature for the token ID (written by the
    bootstrap signer), pin the CA public key against caCertHashes (util/pubkeypin), then
    re-fetch over TLS verified with that CA. Returns (server, ca_pem).

    Simulation: when the ConfigMap carries no jws-kubeconfig-* key at all (no bootstrap
    signer in the simulated controller manager), the signature check is skipped and a bad
    token fails at the first authenticated request (401), as the API server would."""
    token_id, token_secret_value = kc.TOKEN_RE.match(token).groups()
    out("[discovery] Created cluster-info discovery client, requesting info from \"%s\"" % endpoint)
    insecure = Client("https://" + endpoint, timeout=10)
    path = "/api/v1/namespaces/kube-public/configmaps/cluster-info"
    deadline = time.monotonic() + timeout

    def fetch(client):
        while True:
            try:
                cm = client.get(path)
                if cm is None:
                    raise ValueError('configmaps "cluster-info" not found')
                data = cm.get("data") or {}
                kubeconfig = data.get("kubeconfig")
                if not kubeconfig:
                    raise ValueError("there is no kubeconfig key in the cluster-info ConfigMap")
                jws = {k: v for k, v in data.items() if k.startswith("jws-kubeconfig-")}
                if jws:
                    signature = jws.get("jws-kubeconfig-" + token_id)
                    if signature is None:
                        raise ValueError("could not find a JWS signature in the cluster-info ConfigMap for token ID "
                                         "\"%s\"" % token_id)
                    if not _jws_verify(signature, kubeconfig, token_secret_value):
                        raise ValueError("failed to verify JWS signature of received cluster info object, can't "
                                         "trust this API Server")
                return kubeconfig
            except (OSError, ValueError, ApiError) as err:
                if time.monotonic() >= deadline:
                    raise PhaseError("preflight", "couldn't validate the identity of the API Server: %s" % err)
                out("[discovery] Retrying due to error: %s" % err)
                time.sleep(2)

    kubeconfig = yamlish.load(fetch(insecure))
    cluster = (kubeconfig.get("clusters") or [{}])[0].get("cluster") or {}
    ca_pem = base64.b64decode(cluster.get("certificate-authority-data", ""))
    server = cluster.get("server")
    if not unsafe_skip:
        pin = pki.pubkey_pin(ca_pem)
        wanted = [h if h.startswith("sha256:") else "sha256:" + h for h in ca_hashes]
        if pin not in wanted:
            raise PhaseError("preflight", "couldn't validate the identity of the API Server: cluster CA found in "
                             "cluster-info ConfigMap is invalid: none of the public keys \"%s\" are pinned" % pin)
    out("[discovery] Cluster info signature and contents are valid and TLS certificate validates against pinned roots, "
        "will use API Server \"%s\"" % endpoint)
    with tempfile.NamedTemporaryFile(delete=False, suffix=".crt") as stream:
        stream.write(ca_pem)
        ca_file = stream.name
    secure = Client("https://" + endpoint, ca_file=ca_file, timeout=10)
    fetch(secure)
    return server, ca_pem, ca_file


def tls_bootstrap(endpoint, ca_file, token, node_name, timeout=CSR_WAIT):
    """The kubelet's TLS bootstrap (kubernetes pkg/kubelet/certificate/bootstrap/bootstrap.go
    LoadClientCert -> requestNodeCertificate; k8s.io/client-go/util/certificate/csr
    RequestCertificate / WaitForCertificate): ECDSA P-256 key, CSR with subject
    O=system:nodes, CN=system:node:<name>, signerName
    kubernetes.io/kube-apiserver-client-kubelet, usages digital signature + client auth,
    authenticated with the bootstrap token; wait for status.certificate."""
    api = Client("https://" + endpoint, ca_file=ca_file, token=token, timeout=15)
    with tempfile.TemporaryDirectory(prefix="kubegpu-csr-") as tmp:
        key_path = tmp + "/kubelet.key"
        key_pem = pki.openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256")
        write_file(key_path, key_pem, 0o600)
        csr_pem = pki.make_csr(key_path, "system:node:%s" % node_name, ("system:nodes",))
    suffix = "".join(secrets.choice(TOKEN_CHARS) for _unused in range(5))
    csr = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
           "metadata": {"name": "csr-%s" % suffix},
           "spec": {"request": base64.b64encode(csr_pem).decode(),
                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                    "usages": ["digital signature", "client auth"]}}
    created = api.create("/apis/certificates.k8s.io/v1/certificatesigningrequests", csr)
    name = created["metadata"]["name"]

    def issued():
        current = api.get("/apis/certificates.k8s.io/v1/certificatesigningrequests/%s" % name) or {}
        status = current.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Denied":
                raise PhaseError("kubelet-start", "certificate request was denied: %s" % condition.get("message", ""))
            if condition.get("type") == "Failed":
                raise PhaseError("kubelet-start", "certificate request failed: %s" % condition.get("message", ""))
        cert = status.get("certificate")
        return base64.b64decode(cert) if cert else None

    try:
        cert_pem = wait_for("the CertificateSigningRequest %s to be signed" % name, issued, timeout)
    except TimeoutError as err:
        raise PhaseError("kubelet-start", "error waiting for the kubelet TLS bootstrap: %s" % err)
    return cert_pem, key_pem


def cmd_join(args):
    config_path = args.get("--config")
    if not config_path:
        raise PhaseError("", "the simulated kubeadm needs --config")
    config = load_config_file(config_path, "join")
    join = config.join
    nodereg = join["nodeRegistration"]
    name = nodereg["name"]
    discovery = join["discovery"]
    bootstrap = discovery.get("bootstrapToken")
    if not bootstrap:
        raise PhaseError("preflight", "the simulated kubeadm supports bootstrap token discovery only")
    control_plane = join.get("controlPlane")
    cp_endpoint_cfg = (control_plane or {}).get("localAPIEndpoint") or {}
    bind_port = cp_endpoint_cfg.get("bindPort", kc.DEFAULT_BIND_PORT)
    ignore = list(nodereg.get("ignorePreflightErrors") or []) + args.get("--ignore-preflight-errors", [])
    do_preflight(preflight.join_checks(nodereg["criSocket"], name, control_plane is not None, bind_port), ignore)

    endpoint = bootstrap["apiServerEndpoint"]
    token = bootstrap["token"]
    server, ca_pem, ca_file = discover(endpoint, token, bootstrap.get("caCertHashes") or [],
                                       bool(bootstrap.get("unsafeSkipCAVerification")),
                                       timeout=kc.parse_duration((join.get("timeouts") or {}).get("discovery", "5m")))
    token_api = Client("https://" + endpoint, ca_file=ca_file, token=discovery.get("tlsBootstrapToken") or token)
    # cmd/phases/join/preflight.go -> util/config/cluster.go FetchInitConfigurationFromCluster
    out('[preflight] Reading configuration from the "kubeadm-config" ConfigMap in namespace "kube-system"...')
    out("[preflight] Use 'kubeadm init phase upload-config kubeadm --config your-config-file' to re-upload it.")
    try:
        kubeadm_cm = token_api.get("/api/v1/namespaces/kube-system/configmaps/kubeadm-config")
        kubelet_cm = token_api.get("/api/v1/namespaces/kube-system/configmaps/kubelet-config")
    except ApiError as err:
        reason = "Unauthorized" if err.status == 401 else str(err)
        raise PhaseError("preflight", "unable to fetch the kubeadm-config ConfigMap: failed to get config map: %s" % reason)
    if kubeadm_cm is None:
        raise PhaseError("preflight", 'unable to fetch the kubeadm-config ConfigMap: failed to get config map: '
                         'configmaps "kubeadm-config" not found')
    cluster = kc.default_cluster(yamlish.load(kubeadm_cm["data"]["ClusterConfiguration"]))
    pki_dir = cluster.get("certificatesDir", kc.DEFAULT_CERTS_DIR)
    node_ip = cp_endpoint_cfg.get("advertiseAddress") or default_route_ipv4()

    if control_plane is not None:
        out("[preflight] Running pre-flight checks before initializing the new control plane instance")
        os.makedirs(pki_dir, exist_ok=True)
        try:
            download_certs(token_api, control_plane.get("certificateKey"), pki_dir)
        except ApiError as err:
            raise PhaseError("control-plane-prepare/download-certs", "error downloading certs: error downloading the "
                             "secret: %s" % ("Unauthorized" if err.status == 401 else err))
        cp = cluster.get("controlPlaneEndpoint")
        if not cp:
            # join.go: "unable to add a new control plane instance to a cluster that doesn't
            # have a stable controlPlaneEndpoint address"
            raise PhaseError("preflight", "\nOne or more conditions for hosting a new control plane instance is not "
                             "satisfied.\n\nunable to add a new control plane instance to a cluster that doesn't have "
                             "a stable controlPlaneEndpoint address\n")
        host, port = kc.split_host_port(cp)
        admin_server = "https://%s:%d" % (host, port or bind_port)
        net = cluster["networking"]
        try:
            pki.create_control_plane_pki(pki_dir, name, node_ip, kc.service_ip(net["serviceSubnet"], 1),
                                         net["dnsDomain"], host, (cluster.get("apiServer") or {}).get("certSANs") or [],
                                         log=out)
        except pki.PKIError as err:
            raise PhaseError("control-plane-prepare/certs", str(err))
        out('[kubeconfig] Using kubeconfig folder "%s"' % KUBE_DIR)
        local = "https://%s:%d" % (node_ip, bind_port)
        for filename, cn, orgs, url in (
                ("admin.conf", "kubernetes-admin", ("kubeadm:cluster-admins",), admin_server),
                ("controller-manager.conf", "system:kube-controller-manager", (), local),
                ("scheduler.conf", "system:kube-scheduler", (), local)):
            out('[kubeconfig] Writing "%s" kubeconfig file' % filename)
            pki.write_client_kubeconfig(os.path.join(KUBE_DIR, filename), url, pki_dir, cn, orgs,
                                        cluster.get("clusterName", "kubernetes"))
        os.makedirs(MANIFESTS, exist_ok=True)
        for filename, pod in addons.static_pods(cluster, name, node_ip, bind_port).items():
            write_file(os.path.join(MANIFESTS, filename), yamlish.dump(pod), 0o600)
        out('[control-plane] Using manifest folder "%s"' % MANIFESTS)

    # cmd/phases/join/kubelet.go runKubeletStartJoinPhase
    write_file(pki_dir + "/ca.crt", ca_pem)
    kubelet_doc = yamlish.load(kubelet_cm["data"]["kubelet"]) if kubelet_cm else kubelet_config(None, cluster)
    write_kubelet_files(kubelet_doc, nodereg, cp_endpoint_cfg.get("advertiseAddress"))
    out("[kubelet-start] Starting the kubelet")
    out("[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap")
    try:
        cert_pem, key_pem = tls_bootstrap(endpoint, ca_file, discovery.get("tlsBootstrapToken") or token, name)
    except ApiError as err:
        reason = "Unauthorized" if err.status == 401 else str(err)
        raise PhaseError("kubelet-start", "error uploading crisocket / TLS bootstrap: %s" % reason)
    write_kubelet_client(cert_pem, key_pem, server, ca_pem, name)
    try:
        systemctl("restart", "kubelet")
    except RuntimeError as err:
        raise PhaseError("kubelet-start", str(err))
    node_api = Client.from_kubeconfig(KUBE_DIR + "/kubelet.conf")
    try:
        wait_for_node(node_api, name)
    except TimeoutError as err:
        raise PhaseError("kubelet-start", "error waiting for the kubelet to register the Node: %s" % err)

    if control_plane is not None:
        out('[control-plane-join] Using manifest folder "%s"' % MANIFESTS)
        api = admin_client()
        try:
            mark_control_plane(api, name, kc.control_plane_taints(nodereg))
        except (ApiError, TimeoutError) as err:
            raise PhaseError("control-plane-join/mark-control-plane", str(err))
        # cmd/join.go joinControlPlaneDoneTemp
        out("\nThis node has joined the cluster and a new control plane instance was created:\n\n"
            "* Certificate signing request was sent to apiserver and approval was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n"
            "* Control plane label and taint were applied to the new node.\n"
            "* The Kubernetes control plane instances scaled up.\n\n"
            "To start administering your cluster from this node, you need to run the following as a regular user:\n\n"
            "\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n"
            "\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\n"
            "Run 'kubectl get nodes' to see this node join the cluster.\n")
    else:
        # cmd/join.go joinWorkerNodeDoneMsg
        out("\nThis node has joined the cluster:\n"
            "* Certificate signing request was sent to apiserver and a response was received.\n"
            "* The Kubelet was informed of the new secure connection details.\n\n"
            "Run 'kubectl get nodes' on the control-plane to see this node join the cluster.\n")


# --- reset -----------------------------------------------------------------------------------

def _clean_dir(path):
    if not os.path.isdir(path):
        return
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        else:
            try:
                os.unlink(full)
            except OSError:
                pass


def cmd_reset(args):
    """cmd/reset.go + cmd/phases/reset/cleanupnode.go runCleanupNode: stop the kubelet,
    (unmount,) remove the contents of /etc/kubernetes/manifests, /var/lib/kubelet,
    /etc/kubernetes/pki, the kubeconfig files and, on a control plane, the stacked etcd
    data; /etc/cni/net.d, iptables and $HOME/.kube stay (printed note). The Node object
    stays in the cluster. Simulation: the control-plane units stand for the static Pods and
    /var/lib/kubegpu-sim for the etcd data."""
    if not args.get("-f") and not args.get("--force"):
        raise PhaseError("preflight", "the simulated kubeadm reset needs -f (no interactive prompt)")
    out("[preflight] Running pre-flight checks")
    if os.geteuid() != 0:
        raise PhaseError("preflight", "[preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is "
                         "not running as root\n[preflight] If you know what you are doing, you can make a check "
                         "non-fatal with `--ignore-preflight-errors=...`")
    is_control_plane = os.path.exists(os.path.join(MANIFESTS, "kube-apiserver.yaml")) or any(
        os.path.exists(os.path.join(UNIT_DIR, unit)) for unit in UNITS)
    if not is_control_plane:
        out("[reset] No etcd config found. Assuming external etcd")
        out("[reset] Please, manually reset etcd to prevent further issues")
    out("[reset] Stopping the kubelet service")
    have_systemctl = shutil.which("systemctl") is not None
    if have_systemctl:
        systemctl("stop", "kubelet", check=False)
    out("[reset] Unmounting mounted directories in \"%s\"" % KUBELET_DIR)
    present = [unit for unit in UNITS if os.path.exists(os.path.join(UNIT_DIR, unit))]
    if present and have_systemctl:
        systemctl("disable", "--now", *present, check=False)
    for unit in present:
        os.unlink(os.path.join(UNIT_DIR, unit))
    if present and have_systemctl:
        systemctl("daemon-reload", check=False)
    dirs = [MANIFESTS, KUBELET_DIR, KUBE_DIR + "/pki"]
    if is_control_plane:
        out("[reset] Deleting contents of the stacked etcd data directory")
        shutil.rmtree(SIM_STATE, ignore_errors=True)
        _clean_dir("/var/lib/etcd")
        dirs.insert(0, "/var/lib/etcd")
    out("[reset] Deleting contents of directories: [%s]" % " ".join(dirs))
    for path in dirs:
        _clean_dir(path)
    files = [KUBE_DIR + "/" + f for f in ("admin.conf", "super-admin.conf", "kubelet.conf", "bootstrap-kubelet.conf",
                                          "controller-manager.conf", "scheduler.conf")]
    out("[reset] Deleting files: [%s]" % " ".join(files))
    for path in files:
        try:
            os.unlink(path)
        except OSError:
            pass
    # cmd/reset.go: the closing note
    out("\nThe reset process does not perform cleanup of CNI plugin configuration,\n"
        "network filtering rules and kubeconfig files.\n\n"
        "For information on how to perform this cleanup manually, please see:\n"
        "    https://k8s.io/docs/reference/setup-tools/kubeadm/kubeadm-reset/\n")


# --- token -----------------------------------------------------------------------------------

def cmd_token(args, rest):
    """cmd/token.go: create (prints the token only), list, delete."""
    sub = rest[0] if rest else ""
    kubeconfig = args.get("--kubeconfig") or KUBE_DIR + "/admin.conf"
    api = admin_client(kubeconfig)
    if sub == "create":
        token = rest[1] if len(rest) > 1 else generate_token()
        ttl = kc.parse_duration(args.get("--ttl", "24h"))
        usages = (args.get("--usages") or "signing,authentication").split(",")
        groups = (args.get("--groups") or DEFAULT_NODE_GROUP).split(",")
        try:
            create_token_secret(api, token_secret(token, ttl, args.get("--description", ""), usages, groups))
        except ValueError as err:
            raise PhaseError("", str(err))
        print(token)
        if args.get("--print-join-command"):
            ca = read_file(KUBE_DIR + "/pki/ca.crt", True)
            server = yamlish.load(read_file(kubeconfig))["clusters"][0]["cluster"]["server"]
            print(join_command(server.split("://", 1)[1], token, pki.pubkey_pin(ca)).replace("\\\n\t", ""))
        return
    if sub == "list":
        secrets_list = api.list("/api/v1/namespaces/kube-system/secrets",
                                params={"fieldSelector": "type=bootstrap.kubernetes.io/token"})
        print("%-24s %-10s %-21s %-24s %-40s %s" % ("TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"))
        now = datetime.datetime.now(datetime.timezone.utc)
        for secret in secrets_list:
            if secret.get("type") != "bootstrap.kubernetes.io/token":
                continue
            data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
            expires = data.get("expiration")
            ttl = "<forever>"
            if expires:
                left = (datetime.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.timezone.utc) - now).total_seconds()
                ttl = "<invalid>" if left <= 0 else ("%dh" % (left // 3600) if left >= 3600 else "%dm" % (left // 60))
            usages = ",".join(sorted(k[len("usage-bootstrap-"):] for k, v in data.items()
                                     if k.startswith("usage-bootstrap-") and v == "true"))
            print("%-24s %-10s %-21s %-24s %-40s %s" % (
                "%s.%s" % (data.get("token-id"), data.get("token-secret")), ttl, expires or "<never>", usages,
                data.get("description") or "<none>", data.get("auth-extra-groups", "")))
        return
    if sub == "delete":
        for item in rest[1:]:
            token_id = item.split(".")[0]
            api.delete("/api/v1/namespaces/kube-system/secrets/bootstrap-token-%s" % token_id)
            print('bootstrap token "%s" deleted' % token_id)
        return
    raise PhaseError("", 'unknown command "%s" for "kubeadm token"' % sub)


# --- config / version --------------------------------------------------------------------------

def cmd_config(args, rest):
    sub = " ".join(rest[:2])
    if rest[:1] == ["validate"]:
        # cmd/config.go newCmdConfigValidate: strict errors, then "ok"
        text = read_file(args["--config"])
        kinds = {doc.get("kind") for doc in yamlish.load_all(text) if isinstance(doc, dict)}
        want = "join" if "JoinConfiguration" in kinds else "init"
        try:
            kc.load(text, strict_errors=True, node_name_default=node_name_default(), want=want)
        except kc.ConfigError as err:
            raise PhaseError("", str(err))
        print("ok")
        return
    if sub == "images list":
        cluster = kc.default_cluster({"apiVersion": kc.SUPPORTED_VERSION, "kind": "ClusterConfiguration"})
        if args.get("--config"):
            cluster = kc.load(read_file(args["--config"]), node_name_default=node_name_default()).cluster
        for image in addons.images(cluster):
            print(image)
        return
    raise PhaseError("", 'unknown command "%s" for "kubeadm config"' % " ".join(rest))


def cmd_version(args):
    # cmd/version.go RunVersion
    output = args.get("-o") or args.get("--output") or ""
    if output == "short":
        print(VERSION)
        return
    info = {"major": "1", "minor": "35", "gitVersion": VERSION, "gitCommit": "kubegpu-simulation",
            "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.0",
            "compiler": "gc", "platform": "linux/amd64"}
    if output == "json":
        print(json.dumps({"clientVersion": info}, indent=2))
        return
    if output == "yaml":
        print(yamlish.dump({"clientVersion": info}), end="")
        return
    print('kubeadm version: &version.Info{Major:"1", Minor:"35", EmulationMajor:"", EmulationMinor:"", '
          'MinCompatibilityMajor:"", MinCompatibilityMinor:"", GitVersion:"%s", GitCommit:"kubegpu-simulation", '
          'GitTreeState:"clean", BuildDate:"2026-01-01T00:00:00Z", GoVersion:"go1.25.0", Compiler:"gc", '
          'Platform:"linux/amd64"}' % VERSION)


# --- command line ----------------------------------------------------------------------------

FLAGS_WITH_VALUES = {"--config", "--ttl", "--description", "--usages", "--groups", "--certificate-key",
                     "--kubeconfig", "-o", "--output", "--ignore-preflight-errors", "--cri-socket", "--v", "-v",
                     "--node-name", "--skip-phases"}


def parse_args(argv):
    """(positional words, flags dict). Repeated/comma lists for --ignore-preflight-errors."""
    words, flags = [], {"--ignore-preflight-errors": []}
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            if name in FLAGS_WITH_VALUES:
                if not eq:
                    index += 1
                    value = argv[index] if index < len(argv) else ""
                if name == "--ignore-preflight-errors":
                    flags[name] += [v for v in value.split(",") if v]
                else:
                    flags[name] = value
            else:
                flags[name] = value if eq else True
        else:
            words.append(arg)
        index += 1
    return words, flags


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    words, flags = parse_args(argv)
    command = words[0] if words else ""
    try:
        if command == "init" and words[1:3] == ["phase", "upload-certs"]:
            cmd_upload_certs(flags)
        elif command == "init" and len(words) == 1:
            cmd_init(flags)
        elif command == "join":
            cmd_join(flags)
        elif command == "reset":
            cmd_reset(flags)
        elif command == "token":
            cmd_token(flags, words[1:])
        elif command == "config":
            cmd_config(flags, words[1:])
        elif command == "version":
            cmd_version(flags)
        else:
            print("kubeadm (kubegpu SIMULATION, test-only): unsupported command %r" % " ".join(words), file=sys.stderr)
            return 1
    except PhaseError as err:
        # cmd/kubeadm/app/util/errors/handle... cmdutil.CheckErr: "error execution phase <name>: <msg>"
        message = str(err)
        if err.phase:
            message = "error execution phase %s: %s" % (err.phase, message)
        print(message, file=sys.stderr)
        print("To see the stack trace of this error execute with --v=5 or higher", file=sys.stderr)
        return 1
    except ApiError as err:
        print("error: %s" % err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
