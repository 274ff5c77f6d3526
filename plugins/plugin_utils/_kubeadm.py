# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""kubeadm helpers: parse what kubeadm prints, compute the CA certificate hash.

Controller side (the kubeadm filters). Pure functions, standard library only.

Formats (kubernetes/website, content/en/docs/setup/production-environment/tools/
kubeadm/create-cluster-kubeadm.md and high-availability.md):

- ``kubeadm token create`` prints the token alone, e.g. ``5didvk.d09sbcov8ph2amjw``
  (``[a-z0-9]{6}.[a-z0-9]{16}``).
- ``kubeadm init phase upload-certs --upload-certs [--certificate-key K]`` ends with
  ``[upload-certs] Using certificate key:`` followed by the 64-hex key on its own line.
- ``kubeadm init`` ends with the join commands
  ``kubeadm join <host>:<port> --token <token> \\
  --discovery-token-ca-cert-hash sha256:<hash> [--control-plane --certificate-key <key>]``.
- ``--discovery-token-ca-cert-hash`` / ``caCertHashes``: ``sha256:`` + hex SHA-256 of
  the DER Subject Public Key Info of the cluster CA (what
  ``openssl x509 -pubkey | openssl rsa -pubin -outform der | openssl dgst -sha256``
  computes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
CERTIFICATE_KEY_RE = re.compile(r"^[a-f0-9]{64}$")
_PEM_RE = re.compile(
    r"-----BEGIN CERTIFICATE-----\s*(?P<body>[A-Za-z0-9+/=\s]+?)\s*-----END CERTIFICATE-----"
)
_JOIN_RE = re.compile(r"kubeadm join\s+(?P<endpoint>\S+)(?P<rest>(?:[^\n]|\\\n)*)")


class KubeadmParseError(ValueError):
    """Output that does not look like what kubeadm prints."""


def parse_token(output):
    """The bootstrap token printed by ``kubeadm token create`` (last non-empty line)."""
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    if not lines or not TOKEN_RE.match(lines[-1]):
        # never echo the output: it may hold a malformed secret
        raise KubeadmParseError("kubeadm token create printed no token of the form [a-z0-9]{6}.[a-z0-9]{16}")
    return lines[-1]


def is_valid_certificate_key(key):
    """A kubeadm certificate key: 32 bytes, hex encoded (64 lowercase hex digits)."""
    return bool(CERTIFICATE_KEY_RE.match(key or ""))


def parse_certificate_key(output):
    """The key printed after ``[upload-certs] Using certificate key:``."""
    lines = [line.strip() for line in (output or "").splitlines()]
    for index, line in enumerate(lines):
        if line.endswith("Using certificate key:"):
            for candidate in lines[index + 1:]:
                if candidate:
                    if is_valid_certificate_key(candidate):
                        return candidate
                    break
    raise KubeadmParseError("kubeadm upload-certs printed no certificate key")


def parse_join_commands(output):
    """Join commands from ``kubeadm init`` output.

    Returns a list of dicts: endpoint, token, ca_cert_hashes (list), control_plane
    (bool), certificate_key (or None). Line continuations (backslash-newline) are
    joined first.
    """
    text = (output or "").replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        line = " ".join(line.split())
        if not line.startswith("kubeadm join "):
            continue
        args = line.split()[2:]
        entry = {"endpoint": None, "token": None, "ca_cert_hashes": [],
                 "control_plane": False, "certificate_key": None}
        index = 0
        while index < len(args):
            arg = args[index]
            value = args[index + 1] if index + 1 < len(args) else None
            if arg == "--token":
                entry["token"] = value
                index += 2
            elif arg == "--discovery-token-ca-cert-hash":
                entry["ca_cert_hashes"].append(value)
                index += 2
            elif arg == "--certificate-key":
                entry["certificate_key"] = value
                index += 2
            elif arg == "--control-plane":
                entry["control_plane"] = True
                index += 1
            elif not arg.startswith("-") and entry["endpoint"] is None:
                entry["endpoint"] = arg
                index += 1
            else:
                index += 1
        commands.append(entry)
    if not commands:
        raise KubeadmParseError("no 'kubeadm join' command in the kubeadm init output")
    return commands


# --- CA certificate hash -------------------------------------------------------------

def _der_read(data, offset):
    """(tag, header_length, content_length) of the DER element at offset."""
    if offset + 2 > len(data):
        raise KubeadmParseError("truncated DER")
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, 2, first
    count = first & 0x7F
    if count == 0 or count > 4 or offset + 2 + count > len(data):
        raise KubeadmParseError("unsupported DER length")
    length = 0
    for byte in data[offset + 2:offset + 2 + count]:
        length = (length << 8) | byte
    return tag, 2 + count, length


def _der_children(data, offset):
    """Offsets of the children of the constructed element at offset."""
    tag, header, length = _der_read(data, offset)
    if not tag & 0x20:
        raise KubeadmParseError("expected a constructed DER element")
    start = offset + header
    end = start + length
    if end > len(data):
        raise KubeadmParseError("truncated DER")
    children = []
    position = start
    while position < end:
        children.append(position)
        _tag, child_header, child_length = _der_read(data, position)
        position += child_header + child_length
    return children


def spki_der(certificate_der):
    """The DER SubjectPublicKeyInfo of an X.509 certificate (RFC 5280 4.1)."""
    certificate = _der_children(certificate_der, 0)
    tbs = _der_children(certificate_der, certificate[0])
    fields = list(tbs)
    # version [0] EXPLICIT is optional (absent for v1 certificates)
    if certificate_der[fields[0]] == 0xA0:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    if len(fields) < 6:
        raise KubeadmParseError("not an X.509 certificate")
    start = fields[5]
    _tag, header, length = _der_read(certificate_der, start)
    return bytes(certificate_der[start:start + header + length])


def pem_to_der(pem):
    """DER bytes of the first certificate in a PEM text."""
    if isinstance(pem, bytes):
        pem = pem.decode("ascii", "replace")
    match = _PEM_RE.search(pem or "")
    if not match:
        raise KubeadmParseError("no PEM certificate found")
    try:
        return base64.b64decode("".join(match.group("body").split()))
    except (binascii.Error, ValueError) as exc:
        raise KubeadmParseError("invalid PEM certificate: %s" % exc)


def ca_cert_hash(pem):
    """``sha256:<hex>`` of the CA certificate's public key, as kubeadm pins it."""
    return "sha256:" + hashlib.sha256(spki_der(pem_to_der(pem))).hexdigest()


_PORT_RE = re.compile(r":[0-9]+$")


def api_endpoint(endpoint, first_control_plane, control_plane_vars, port):
    """``host:port`` of the API server that joins use (roles/kubernetes): ``endpoint``
    (kubernetes_control_plane_endpoint, the HA endpoint), else the address the first control
    plane's API server advertises - its kubernetes_apiserver_advertise_address, or what
    kubeadm init picks without one, the address of the default route (kubeadm's
    ChooseAPIServerBindAddress) - else, without facts for it (a --limit that left it out), its
    ansible_host or its name. Not the inventory name or ansible_host first: those are how the
    controller reaches the host (an SSH alias, a bastion name), not necessarily an address
    the other nodes can resolve. ``port`` is added where the host has none.

    ``control_plane_vars``: the first control plane's hostvars (a mapping; {} when none)."""
    cp_vars = control_plane_vars or {}
    default_ipv4 = (cp_vars.get("ansible_facts") or {}).get("default_ipv4") or {}
    host = endpoint or cp_vars.get("kubernetes_apiserver_advertise_address") or default_ipv4.get("address")
    if not host:
        host = cp_vars.get("ansible_host") if cp_vars.get("ansible_host") is not None else first_control_plane
    host = str(host)
    return host if _PORT_RE.search(host) else "%s:%s" % (host, port)


def join_report(pending, pending_control_planes):
    """What the joins of this run will do, for the log: the control planes that join, then
    the workers (``pending`` less the control planes), "-" for none of either."""
    pending = list(pending or [])
    control_planes = list(pending_control_planes or [])
    if not pending:
        return "Nothing to join."
    workers = [host for host in pending if host not in control_planes]
    return "Joining control planes %s, then workers %s" % (", ".join(control_planes) or "-", ", ".join(workers) or "-")


def join_error(result, token=None, certificate_key=None):
    """Why kubeadm join failed, fit for the log: its stderr (the task's msg where it left
    none; "" without a result), with the bootstrap token and the certificate key replaced by
    ``<token>`` and ``<certificate-key>``."""
    result = result or {}
    text = str(result["stderr"] if "stderr" in result else result.get("msg") or "")
    for secret, shown in ((token, "<token>"), (certificate_key, "<certificate-key>")):
        if secret:
            text = text.replace(str(secret), shown)
    return text


# Local packages kubelet's depend on: installed before the others.
_LOCAL_DEPENDENCIES_RE = re.compile(r"^(cri-tools|kubernetes-cni)")


def local_debs(files, directory):
    """The local .deb files (``files``: names, sorted) in the order dpkg installs them one by
    one: cri-tools and kubernetes-cni first, in their given order, then the others sorted
    as Jinja's sort does (case-insensitive), each prefixed with ``directory``."""
    files = list(files or [])
    first = [name for name in files if _LOCAL_DEPENDENCIES_RE.search(name)]
    rest = sorted((name for name in files if not _LOCAL_DEPENDENCIES_RE.search(name)), key=lambda n: n.lower())
    return ["%s%s" % (directory, name) for name in first + rest]


def reset_refusal(host, first_control_plane, play_hosts, cluster, confirmed, group):
    """"" or why this run may not reset ``host``: it would reset ``first_control_plane``
    (one of ``play_hosts``, the whole run's hosts) while ``cluster`` (the cluster's hosts)
    has other nodes, without ``confirmed`` (node_reset_confirm_control_plane). ``group``:
    the control plane group, named in the fix."""
    if first_control_plane not in (play_hosts or []) or len(cluster or []) == 1 or confirmed:
        return ""
    subject = ("%s is" % first_control_plane if host == first_control_plane else
               "%s: not reset: this run (no --limit, or a --limit that includes it) also resets %s, which is"
               % (host, first_control_plane))
    return ("%s the first control plane of a cluster with %d other node(s); resetting it removes the admin kubeconfig"
            " every kubegpu playbook uses (and, without another control plane, the cluster). Fix: name the nodes to"
            " reset with --limit (without %s), reorder %s so that another control plane is first, or pass"
            " -e reset_node_confirm_control_plane=true." % (subject, len(cluster or []) - 1, first_control_plane, group))


# --- control-plane virtual IP (kube-vip) ------------------------------------------------------

def control_plane_endpoint(endpoint, vip, port):
    """kubeadm's controlPlaneEndpoint: ``endpoint`` (kubernetes_control_plane_endpoint) when set,
    else ``vip:port`` (kubegpu_control_plane_vip, IPv6 in brackets), else ''."""
    if endpoint:
        return str(endpoint)
    if not vip:
        return ""
    vip = str(vip).strip()
    return ("[%s]:%s" if ":" in vip else "%s:%s") % (vip, port)


def endpoint_host(endpoint):
    """The host part of ``host[:port]`` (brackets of an IPv6 address removed): the name the API
    server's certificate must carry (certSANs)."""
    text = str(endpoint or "").strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    return _PORT_RE.sub("", text) if text.count(":") <= 1 else text


# kubeadm >= 1.29 writes admin.conf with the group kubeadm:cluster-admins, which is bound to
# cluster-admin only once kubeadm init has uploaded its RBAC; until then only super-admin.conf
# (system:masters) can take kube-vip's lease, so the first control plane's kube-vip must use
# super-admin.conf during init and admin.conf after it (kubernetes/kubernetes PR #121305, the
# kubeadm change in CHANGELOG-1.29; kube-vip issue #684; kubespray roles/kubernetes/node/tasks/loadbalancer/kube-vip.yml
# "Set admin.conf for first Control Plane"; kube-vip testing/e2e/cluster.go "Handle v1.29+
# super-admin.conf for first node").
SUPER_ADMIN_MINOR = (1, 29)


def kube_vip_kubeconfig(first_control_plane, initialised, version):
    """The kubeconfig kube-vip's static Pod mounts as /etc/kubernetes/admin.conf:
    /etc/kubernetes/super-admin.conf on the first control plane of a cluster not yet initialised
    (kubeadm >= 1.29), else /etc/kubernetes/admin.conf."""
    try:
        minor = tuple(int(p) for p in str(version).lstrip("v").split(".")[:2])
    except ValueError:
        minor = SUPER_ADMIN_MINOR
    if first_control_plane and not initialised and minor >= SUPER_ADMIN_MINOR:
        return "/etc/kubernetes/super-admin.conf"
    return "/etc/kubernetes/admin.conf"


def kube_vip_pod(vip, interface, port, image, kubeconfig):
    """kube-vip's static Pod for the control-plane VIP in ARP mode with leader election, the
    shape ``kube-vip manifest pod --controlplane --arp --leaderElection`` writes
    (kube-vip pkg/kubevip/config_generator.go generatePodSpec; environment names from
    pkg/kubevip/config_envvar.go: vip_arp, port, vip_nodename, vip_interface, cp_enable,
    cp_namespace, vip_leaderelection, vip_leasename, address). The kubeconfig is mounted at
    /etc/kubernetes/admin.conf and ``kubernetes`` resolves to 127.0.0.1, so kube-vip reaches
    the local API server before the VIP exists."""
    env = [("vip_arp", "true"), ("port", str(port))]
    env = [{"name": n, "value": v} for n, v in env]
    env.append({"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    if interface:
        env.append({"name": "vip_interface", "value": str(interface)})
    env += [{"name": n, "value": v} for n, v in (
        ("cp_enable", "true"), ("cp_namespace", "kube-system"), ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"), ("address", str(vip)))]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system", "labels": {"app.kubernetes.io/name": "kube-vip"}},
        "spec": {
            "containers": [{
                "name": "kube-vip",
                "image": str(image),
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": env,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                "volumeMounts": [{"name": "kubeconfig", "mountPath": "/etc/kubernetes/admin.conf"}],
            }],
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "hostNetwork": True,
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": str(kubeconfig)}}],
        },
    }
