# SPDX-License-Identifier: Apache-2.0
"""kubeadm.k8s.io/v1beta4 configuration: parse, default, validate (test-only simulation).

Pure functions, standard library + yamlish. Every rule cites the upstream source in
kubernetes/kubernetes (paths below are relative to cmd/kubeadm/app/).
"""
from __future__ import annotations

import ipaddress
import re

from . import yamlish

KUBEADM_GROUP = "kubeadm.k8s.io"
# apis/kubeadm/v1beta4/register.go: SchemeGroupVersion; older versions are refused by
# util/config/common.go validateSupportedVersion ("your configuration file uses an old API
# spec: ...").
SUPPORTED_VERSION = "kubeadm.k8s.io/v1beta4"
OLD_VERSIONS = ("kubeadm.k8s.io/v1alpha1", "kubeadm.k8s.io/v1alpha2", "kubeadm.k8s.io/v1alpha3",
                "kubeadm.k8s.io/v1beta1", "kubeadm.k8s.io/v1beta2", "kubeadm.k8s.io/v1beta3")
# componentconfigs/kubelet.go (kubeletconfig v1beta1) and componentconfigs/kubeproxy.go
# (kubeproxyconfig v1alpha1): the component configs kubeadm recognises.
KUBELET_GV = "kubelet.config.k8s.io/v1beta1"
KUBEPROXY_GV = "kubeproxy.config.k8s.io/v1alpha1"

KUBERNETES_VERSION = "v1.35.4"

# constants/constants.go: defaults of the v1beta4 API (apis/kubeadm/v1beta4/defaults.go).
DEFAULT_SERVICE_SUBNET = "10.96.0.0/12"      # defaults.go DefaultServicesSubnet
DEFAULT_DNS_DOMAIN = "cluster.local"         # defaults.go DefaultServiceDNSDomain
DEFAULT_BIND_PORT = 6443                     # defaults.go DefaultAPIBindPort
DEFAULT_CERTS_DIR = "/etc/kubernetes/pki"    # defaults.go DefaultCertificatesDir
DEFAULT_IMAGE_REPOSITORY = "registry.k8s.io"  # defaults.go DefaultImageRepository
DEFAULT_CLUSTER_NAME = "kubernetes"          # defaults.go DefaultClusterName
DEFAULT_CRI_SOCKET = "unix:///var/run/containerd/containerd.sock"  # constants_unix.go CRISocketContainerd
# constants/constants.go: MaximumBitsForServiceSubnet (20 bits of addresses for IPv4) —
# validation.go ValidateIPNetFromString checks the service subnet size against it.
MAX_SERVICE_SUBNET_BITS = 20

# --- field lists: apis/kubeadm/v1beta4/types.go (JSON tags) -------------------------------
# Notation: dict = object with these keys; [x] = list of x; "str"/"bool"/"int"/"duration"/
# "any"; "enum:a|b". Unknown keys are what strict decoding (util/config/strict/strict.go
# VerifyUnmarshalStrict) reports.
_ARG = {"name": "str", "value": "str"}
_ENV = {"name": "str", "value": "str", "valueFrom": "any"}
_HOSTPATH = {"name": "str", "hostPath": "str", "mountPath": "str", "readOnly": "bool", "pathType": "str"}
_COMPONENT = {"extraArgs": [_ARG], "extraVolumes": [_HOSTPATH], "extraEnvs": [_ENV]}
_ENDPOINT = {"advertiseAddress": "str", "bindPort": "int"}
_TAINT = {"key": "str", "value": "str", "effect": "enum:NoSchedule|PreferNoSchedule|NoExecute", "timeAdded": "any"}
_NODEREG = {"name": "str", "criSocket": "str", "taints": [_TAINT], "kubeletExtraArgs": [_ARG],
            "ignorePreflightErrors": ["str"], "imagePullPolicy": "enum:Always|IfNotPresent|Never",
            "imagePullSerial": "bool"}
_TIMEOUTS = {k: "duration" for k in ("controlPlaneComponentHealthCheck", "kubeletHealthCheck",
                                     "kubernetesAPICall", "etcdAPICall", "tlsBootstrap", "discovery",
                                     "upgradeManifests")}
# apis/bootstraptoken/v1/types.go BootstrapToken
_BOOTSTRAP_TOKEN = {"token": "str", "description": "str", "ttl": "duration", "expires": "str",
                    "usages": ["str"], "groups": ["str"]}
_META = {"apiVersion": "str", "kind": "str"}

FIELDS = {
    "InitConfiguration": dict(_META, bootstrapTokens=[_BOOTSTRAP_TOKEN], dryRun="bool",
                              nodeRegistration=_NODEREG, localAPIEndpoint=_ENDPOINT,
                              certificateKey="str", skipPhases=["str"], patches={"directory": "str"},
                              timeouts=_TIMEOUTS),
    "ClusterConfiguration": dict(
        _META,
        etcd={"local": {"imageRepository": "str", "imageTag": "str", "dataDir": "str", "extraArgs": [_ARG],
                        "extraEnvs": [_ENV], "serverCertSANs": ["str"], "peerCertSANs": ["str"]},
              "external": {"endpoints": ["str"], "caFile": "str", "certFile": "str", "keyFile": "str",
                           "httpEndpoints": ["str"]}},
        networking={"serviceSubnet": "str", "podSubnet": "str", "dnsDomain": "str"},
        kubernetesVersion="str", controlPlaneEndpoint="str",
        apiServer=dict(_COMPONENT, certSANs=["str"]),
        controllerManager=_COMPONENT, scheduler=_COMPONENT,
        dns={"imageRepository": "str", "imageTag": "str", "disabled": "bool"},
        proxy={"disabled": "bool"}, certificatesDir="str", imageRepository="str",
        featureGates="any", clusterName="str",
        encryptionAlgorithm="enum:RSA-2048|RSA-3072|RSA-4096|ECDSA-P256|ECDSA-P384",
        certificateValidityPeriod="duration", caCertificateValidityPeriod="duration"),
    "JoinConfiguration": dict(
        _META, dryRun="bool", nodeRegistration=_NODEREG, caCertPath="str",
        discovery={"bootstrapToken": {"token": "str", "apiServerEndpoint": "str", "caCertHashes": ["str"],
                                      "unsafeSkipCAVerification": "bool"},
                   "file": {"kubeConfigPath": "str"}, "tlsBootstrapToken": "str"},
        controlPlane={"localAPIEndpoint": _ENDPOINT, "certificateKey": "str"},
        skipPhases=["str"], patches={"directory": "str"}, timeouts=_TIMEOUTS),
}


class ConfigError(Exception):
    """A configuration kubeadm refuses (message as kubeadm words it)."""


# --- helpers -------------------------------------------------------------------------------

_DURATION_RE = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text):
    """Seconds of a Go duration string (time.ParseDuration: "24h", "15m", "1h30m", "0s")."""
    text = str(text).strip()
    if text in ("0", "0s"):
        return 0.0
    if not _DURATION_RE.match(text):
        raise ValueError("time: invalid duration %r" % text)
    return sum(float(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))


def check_fields(value, spec, path):
    """Strict-decoding problems: unknown fields and wrong types (strict.VerifyUnmarshalStrict)."""
    problems = []
    if spec == "any":
        return problems
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return ["%s: expected an object" % path]
        for key, item in value.items():
            if key not in spec:
                # k8s.io/apimachinery/pkg/runtime/serializer/json strict errors read
                # `strict decoding error: unknown field "<path>"`.
                problems.append('unknown field "%s"' % ("%s.%s" % (path, key)).lstrip("."))
            else:
                problems += check_fields(item, spec[key], "%s.%s" % (path, key))
        return problems
    if isinstance(spec, list):
        if value is None:
            return problems
        if not isinstance(value, list):
            return ["%s: expected a list" % path.lstrip(".")]
        for index, item in enumerate(value):
            problems += check_fields(item, spec[0], "%s[%d]" % (path, index))
        return problems
    if value is None:
        return problems
    if spec.startswith("enum:"):
        if value not in spec[5:].split("|"):
            problems.append("%s: unsupported value %r" % (path.lstrip("."), value))
        return problems
    if spec == "duration":
        try:
            parse_duration(value)
        except ValueError as err:
            problems.append("%s: %s" % (path.lstrip("."), err))
        return problems
    types = {"str": str, "bool": bool, "int": int}
    if not isinstance(value, types[spec]) or (spec == "int" and isinstance(value, bool)):
        problems.append("%s: cannot unmarshal %s into %s" % (path.lstrip("."), type(value).__name__, spec))
    return problems


# validation.go ValidateAPIEndpoint -> k8s.io/apimachinery validation IsValidPortNum
def _valid_port(port):
    return isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535


# k8s.io/apimachinery/pkg/util/validation IsDNS1123Subdomain (used by
# validation.go ValidateNodeName / ValidateCertSANs / ValidateNetworking dnsDomain)
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN = re.compile(r"^%s(\.%s)*$" % (_DNS1123_LABEL, _DNS1123_LABEL))


def is_dns1123_subdomain(value):
    return isinstance(value, str) and len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def is_wildcard_dns1123_subdomain(value):
    return isinstance(value, str) and value.startswith("*.") and is_dns1123_subdomain(value[2:])


def is_ip(value):
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def split_host_port(endpoint):
    """(host, port) of "host:port" / "[v6]:port" (net.SplitHostPort); port None if absent."""
    endpoint = str(endpoint)
    if endpoint.startswith("["):
        host, _sep, rest = endpoint[1:].partition("]")
        return host, (int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None)
    if endpoint.count(":") == 1:
        host, port = endpoint.split(":")
        if not port.isdigit():
            raise ValueError("invalid port %r" % port)
        return host, int(port)
    return endpoint, None


def service_ip(cidr, index):
    """The index-th address of the first service subnet (constants.go GetAPIServerVirtualIP
    uses index 1, GetDNSIP index 10; both via k8s.io/utils/net GetIndexedIP)."""
    network = ipaddress.ip_network(cidr.split(",")[0].strip(), strict=False)
    address = network.network_address + index
    if address not in network:
        raise ValueError("the service subnet %s is too small for index %d" % (cidr, index))
    return str(address)


# --- validation (apis/kubeadm/validation/validation.go) -------------------------------------

def _validate_cidrs(value, field, max_bits=None):
    """validation.go ValidateIPNetFromString: comma-separated CIDRs (dual-stack at most 2,
    one per family); for the service subnet the size limit of ValidateServiceSubnetSize."""
    errors = []
    parts = [p.strip() for p in str(value).split(",")]
    families = []
    for part in parts:
        try:
            network = ipaddress.ip_network(part, strict=False)
            if "/" not in part:
                raise ValueError
        except ValueError:
            errors.append('%s: Invalid value: "%s": couldn\'t parse subnet' % (field, value))
            continue
        families.append(network.version)
        if max_bits is not None:
            host_bits = network.max_prefixlen - network.prefixlen
            if network.version == 4 and host_bits > max_bits:
                errors.append('%s: Invalid value: "%s": specified service subnet is too large; for '
                              '32-bit addresses, the mask must be >= %d' % (field, value, 32 - max_bits))
            if network.version == 6 and host_bits > 108:
                errors.append('%s: Invalid value: "%s": specified service subnet is too large; for '
                              '128-bit addresses, the mask must be >= 108' % (field, value))
    if len(parts) > 2 or (len(parts) == 2 and len(set(families)) != 2):
        errors.append('%s: Invalid value: "%s": expected one subnet or two subnets of different IP '
                      'families' % (field, value))
    return errors


def validate_node_registration(nodereg, path="nodeRegistration"):
    """validation.go ValidateNodeRegistration: name is a DNS-1123 subdomain; criSocket is set
    (ValidateSocketPath: an absolute path or a unix:// URL)."""
    errors = []
    name = nodereg.get("name")
    if not is_dns1123_subdomain(name):
        errors.append('%s.name: Invalid value: "%s": a lowercase RFC 1123 subdomain must consist of lower '
                      "case alphanumeric characters, '-' or '.', and must start and end with an "
                      "alphanumeric character" % (path, name))
    socket = nodereg.get("criSocket", "")
    if not socket:
        errors.append("%s.criSocket: Required value" % path)
    elif not (socket.startswith("unix://") or socket.startswith("/")):
        errors.append('%s.criSocket: Invalid value: "%s": URL scheme %s is not supported' %
                      (path, socket, socket.split(":", 1)[0]))
    for index, taint in enumerate(nodereg.get("taints") or []):
        if not taint.get("key"):
            errors.append("%s.taints[%d].key: Required value" % (path, index))
        if not taint.get("effect"):
            errors.append("%s.taints[%d].effect: Required value" % (path, index))
    return errors


def validate_api_endpoint(endpoint, path):
    """validation.go ValidateAPIEndpoint: advertiseAddress an IP, bindPort a valid port."""
    errors = []
    address = endpoint.get("advertiseAddress")
    if address and not is_ip(address):
        errors.append('%s.advertiseAddress: Invalid value: "%s": must be a valid IP address' % (path, address))
    if "bindPort" in endpoint and not _valid_port(endpoint.get("bindPort")):
        errors.append("%s.bindPort: Invalid value: %r: must be between 1 and 65535, inclusive" %
                      (path, endpoint.get("bindPort")))
    return errors


# apis/bootstraptoken/v1/utils.go: BootstrapTokenRegexp (k8s.io/cluster-bootstrap/token/api)
TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
# k8s.io/cluster-bootstrap/token/api/types.go: allowed usages, group pattern
KNOWN_USAGES = ("signing", "authentication")
GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def validate_bootstrap_tokens(tokens, path="bootstrapTokens"):
    """validation.go ValidateBootstrapTokens / ValidateToken / ValidateTokenUsages /
    ValidateTokenGroups."""
    errors = []
    for index, token in enumerate(tokens or []):
        here = "%s[%d]" % (path, index)
        if "token" in token and not TOKEN_RE.match(str(token.get("token"))):
            errors.append("%s.token: Invalid value: the bootstrap token is invalid" % here)
        for usage in token.get("usages") or []:
            if usage not in KNOWN_USAGES:
                errors.append('%s.usages: Invalid value: "%s": usages may only be one of %s' %
                              (here, usage, ",".join(KNOWN_USAGES)))
        for group in token.get("groups") or []:
            if not GROUP_RE.match(group):
                errors.append('%s.groups: Invalid value: "%s": must match %s' % (here, group, GROUP_RE.pattern))
    return errors


def validate_cluster(cluster):
    """validation.go ValidateClusterConfiguration -> ValidateNetworking, ValidateCertSANs,
    ValidateAbsolutePath(certificatesDir), controlPlaneEndpoint host[:port]."""
    errors = []
    networking = cluster.get("networking") or {}
    domain = networking.get("dnsDomain", DEFAULT_DNS_DOMAIN)
    if not is_dns1123_subdomain(domain):
        errors.append('networking.dnsDomain: Invalid value: "%s": a lowercase RFC 1123 subdomain must '
                      "consist of lower case alphanumeric characters, '-' or '.'" % domain)
    errors += _validate_cidrs(networking.get("serviceSubnet", DEFAULT_SERVICE_SUBNET),
                              "networking.serviceSubnet", MAX_SERVICE_SUBNET_BITS)
    if networking.get("podSubnet"):
        errors += _validate_cidrs(networking["podSubnet"], "networking.podSubnet")
    for san in (cluster.get("apiServer") or {}).get("certSANs") or []:
        if not (is_ip(san) or is_dns1123_subdomain(san) or is_wildcard_dns1123_subdomain(san)):
            errors.append('apiServer.certSANs: Invalid value: "%s": altname is not a valid IP address, '
                          "DNS label or a DNS label with subdomain wildcards" % san)
    endpoint = cluster.get("controlPlaneEndpoint")
    if endpoint:
        try:
            host, port = split_host_port(endpoint)
            if not (is_ip(host) or is_dns1123_subdomain(host)) or (port is not None and not _valid_port(port)):
                raise ValueError
        except ValueError:
            errors.append('controlPlaneEndpoint: Invalid value: "%s": must be a valid host[:port]' % endpoint)
    certs_dir = cluster.get("certificatesDir", DEFAULT_CERTS_DIR)
    if not str(certs_dir).startswith("/"):
        errors.append('certificatesDir: Invalid value: "%s": path is not absolute' % certs_dir)
    version = cluster.get("kubernetesVersion")
    if version is not None and not re.match(r"^v?\d+\.\d+\.\d+([-+].*)?$", str(version)):
        errors.append('kubernetesVersion: Invalid value: "%s": not a valid version' % version)
    return errors


def validate_join(join):
    """validation.go ValidateJoinConfiguration -> ValidateDiscovery,
    ValidateDiscoveryBootstrapToken, ValidateJoinControlPlane."""
    errors = []
    discovery = join.get("discovery") or {}
    bootstrap = discovery.get("bootstrapToken")
    file_discovery = discovery.get("file")
    if not bootstrap and not file_discovery:
        errors.append("discovery: Invalid value: bootstrapToken or file must be set")
    if bootstrap and file_discovery:
        errors.append("discovery: Invalid value: bootstrapToken and file cannot both be set")
    if bootstrap:
        token = bootstrap.get("token") or discovery.get("tlsBootstrapToken")
        if not token:
            errors.append("discovery.bootstrapToken.token: Invalid value: using token-based discovery "
                          "without token")
        elif not TOKEN_RE.match(str(token)):
            errors.append('discovery.bootstrapToken.token: Invalid value: "%s": the bootstrap token is '
                          'invalid' % "<redacted>")
        if not bootstrap.get("apiServerEndpoint"):
            errors.append("discovery.bootstrapToken.apiServerEndpoint: Required value")
        else:
            try:
                host, port = split_host_port(bootstrap["apiServerEndpoint"])
                if port is None:
                    raise ValueError
            except ValueError:
                errors.append('discovery.bootstrapToken.apiServerEndpoint: Invalid value: "%s": address %s: '
                              'missing port in address' % (bootstrap["apiServerEndpoint"],
                                                           bootstrap["apiServerEndpoint"]))
        hashes = bootstrap.get("caCertHashes") or []
        if not hashes and not bootstrap.get("unsafeSkipCAVerification"):
            errors.append("discovery.bootstrapToken: Invalid value: using token-based discovery without "
                          "caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm "
                          "config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue")
        for item in hashes:
            # util/pubkeypin/pubkeypin.go Set.Allow: "sha256:<64 hex>" (bare hex accepted)
            if not re.match(r"^(sha256:)?[a-f0-9]{64}$", str(item)):
                errors.append('discovery.bootstrapToken.caCertHashes: Invalid value: "%s": invalid hash, '
                              'expected "format:hex-value"' % item)
    control_plane = join.get("controlPlane")
    if control_plane is not None:
        key = control_plane.get("certificateKey")
        # validation.go ValidateCertificateKey: hex of 32 bytes (constants.CertificateKeySize)
        if key and not re.match(r"^[a-fA-F0-9]{64}$", key):
            errors.append('controlPlane.certificateKey: Invalid value: "<redacted>": certificate key '
                          'must be 64 hex characters (32 bytes)')
        errors += validate_api_endpoint(control_plane.get("localAPIEndpoint") or {}, "controlPlane.localAPIEndpoint")
    errors += validate_node_registration(join.get("nodeRegistration") or {})
    return errors


# --- loading --------------------------------------------------------------------------------

class Config:
    """The documents of one --config file, by kind, defaulted."""

    def __init__(self):
        self.init = None
        self.cluster = None
        self.join = None
        self.kubelet = None
        self.kubeproxy = None
        self.warnings = []


def split_documents(text):
    """util/marshal.go SplitConfigDocuments: documents keyed by (apiVersion, kind); a
    document without them is an error; a GVK twice is an error."""
    seen = {}
    order = []
    try:
        docs = yamlish.load_all(text)
    except Exception as err:  # yaml.YAMLError
        raise ConfigError("error converting YAML to JSON: %s" % err)
    for doc in docs:
        if not isinstance(doc, dict):
            raise ConfigError("invalid configuration: expected an object, got %r" % (doc,))
        api_version, kind = doc.get("apiVersion"), doc.get("kind")
        if not api_version or not kind:
            raise ConfigError("invalid configuration for GroupVersionKind /, Kind=: kind and apiVersion "
                              "is mandatory information that must be specified")
        key = (api_version, kind)
        if key in seen:
            raise ConfigError("invalid configuration: GroupVersionKind %s, Kind=%s is specified twice in "
                              "YAML file" % (api_version, kind))
        seen[key] = doc
        order.append(key)
    return [(key, seen[key]) for key in order]


def load(text, strict_errors=False, node_name_default=None, want="init"):
    """Parse a kubeadm --config. want: "init" (Init/Cluster + component configs) or "join".

    util/config/initconfiguration.go documentMapToInitConfiguration and
    joinconfiguration.go documentMapToJoinConfiguration: unsupported API versions fail;
    strict-decoding problems are warnings (klog.Warning) unless strictErrors (true only for
    `kubeadm config validate`, cmd/config.go newCmdConfigValidate); unknown groups are
    ignored with "[config] WARNING: Ignored configuration document with GroupVersionKind".
    """
    config = Config()
    for (api_version, kind), doc in split_documents(text):
        group = api_version.split("/")[0] if "/" in api_version else ""
        if group == KUBEADM_GROUP:
            # util/config/common.go validateSupportedVersion
            if api_version in OLD_VERSIONS:
                raise ConfigError('your configuration file uses an old API spec: "%s". Please use kubeadm '
                                  "v1.34 instead and run 'kubeadm config migrate --old-config old.yaml "
                                  "--new-config new.yaml'." % api_version)
            if api_version != SUPPORTED_VERSION:
                raise ConfigError('unable to decode config: no kind "%s" is registered for version "%s"'
                                  % (kind, api_version))
            if kind not in FIELDS:
                if kind in ("ResetConfiguration", "UpgradeConfiguration"):
                    continue
                raise ConfigError('no kind "%s" is registered for version "%s" in scheme' % (kind, api_version))
            problems = check_fields(doc, FIELDS[kind], "")
            # A value of the wrong type is a decoding error (encoding/json UnmarshalTypeError);
            # enum values are checked by validation.go (ValidateEncryptionAlgorithm,
            # ValidateImagePullPolicy; a bad taint effect fails at the API server): errors too.
            hard = [p for p in problems if not p.startswith("unknown field")]
            if hard:
                raise ConfigError("%s/%s, Kind=%s: %s" % (group, api_version.split("/")[1], kind, ", ".join(hard)))
            if problems:
                message = 'strict decoding error: %s' % ", ".join(problems)
                if strict_errors:
                    raise ConfigError("%s/%s, Kind=%s: %s" % (group, api_version.split("/")[1], kind, message))
                config.warnings.append(message)
            setattr(config, {"InitConfiguration": "init", "ClusterConfiguration": "cluster",
                             "JoinConfiguration": "join"}[kind], doc)
        elif api_version == KUBELET_GV and kind == "KubeletConfiguration":
            config.kubelet = doc
        elif api_version == KUBEPROXY_GV and kind == "KubeProxyConfiguration":
            config.kubeproxy = doc
        else:
            config.warnings.append("[config] WARNING: Ignored configuration document with GroupVersionKind "
                                   "%s, Kind=%s" % (api_version, kind))
    if want == "init":
        # initconfiguration.go: "no InitConfiguration or ClusterConfiguration kind was found"
        if config.init is None and config.cluster is None:
            raise ConfigError("no InitConfiguration or ClusterConfiguration kind was found in the YAML file")
        config.init = default_init(config.init or {"apiVersion": SUPPORTED_VERSION, "kind": "InitConfiguration"},
                                   node_name_default)
        config.cluster = default_cluster(config.cluster or {"apiVersion": SUPPORTED_VERSION,
                                                            "kind": "ClusterConfiguration"})
        errors = validate_node_registration(config.init["nodeRegistration"])
        errors += validate_api_endpoint(config.init.get("localAPIEndpoint") or {}, "localAPIEndpoint")
        errors += validate_bootstrap_tokens(config.init.get("bootstrapTokens"))
        errors += validate_cluster(config.cluster)
    else:
        # joinconfiguration.go: "no JoinConfiguration found in the supplied config"
        if config.join is None:
            raise ConfigError("no JoinConfiguration found in the supplied config")
        config.join = default_join(config.join, node_name_default)
        errors = validate_join(config.join)
    if errors:
        # k8s.io/apimachinery/pkg/util/validation/field ErrorList.ToAggregate: "[a, b]" when >1
        raise ConfigError(errors[0] if len(errors) == 1 else "[%s]" % ", ".join(errors))
    return config


def _default_nodereg(nodereg, node_name_default):
    """v1beta4/defaults.go SetDefaults_NodeRegistration + util/config/common.go
    SetNodeRegistrationDynamicDefaults: name defaults to the lower-cased hostname, criSocket
    to the detected one (containerd), imagePullPolicy IfNotPresent."""
    nodereg = dict(nodereg or {})
    if not nodereg.get("name") and node_name_default:
        nodereg["name"] = node_name_default.lower()
    nodereg.setdefault("criSocket", DEFAULT_CRI_SOCKET)
    nodereg.setdefault("imagePullPolicy", "IfNotPresent")
    return nodereg


def default_init(init, node_name_default=None):
    init = dict(init)
    init["nodeRegistration"] = _default_nodereg(init.get("nodeRegistration"), node_name_default)
    endpoint = dict(init.get("localAPIEndpoint") or {})
    endpoint.setdefault("bindPort", DEFAULT_BIND_PORT)  # defaults.go SetDefaults_APIEndpoint
    init["localAPIEndpoint"] = endpoint
    # v1beta4/defaults.go SetDefaults_BootstrapTokens: one token, ttl 24h, usages signing +
    # authentication, group system:bootstrappers:kubeadm:default-node-token
    tokens = []
    for token in init.get("bootstrapTokens") or [{}]:
        token = dict(token)
        token.setdefault("ttl", "24h0m0s")
        token.setdefault("usages", ["signing", "authentication"])
        token.setdefault("groups", ["system:bootstrappers:kubeadm:default-node-token"])
        tokens.append(token)
    init["bootstrapTokens"] = tokens
    return init


def default_cluster(cluster):
    """v1beta4/defaults.go SetDefaults_ClusterConfiguration / SetDefaults_Networking."""
    cluster = dict(cluster)
    networking = dict(cluster.get("networking") or {})
    networking.setdefault("serviceSubnet", DEFAULT_SERVICE_SUBNET)
    networking.setdefault("dnsDomain", DEFAULT_DNS_DOMAIN)
    cluster["networking"] = networking
    cluster.setdefault("kubernetesVersion", "stable-1")
    if cluster["kubernetesVersion"] == "stable-1":
        cluster["kubernetesVersion"] = KUBERNETES_VERSION
    cluster.setdefault("certificatesDir", DEFAULT_CERTS_DIR)
    cluster.setdefault("imageRepository", DEFAULT_IMAGE_REPOSITORY)
    cluster.setdefault("clusterName", DEFAULT_CLUSTER_NAME)
    cluster.setdefault("encryptionAlgorithm", "RSA-2048")
    cluster.setdefault("certificateValidityPeriod", "8760h0m0s")
    cluster.setdefault("caCertificateValidityPeriod", "87600h0m0s")
    cluster.setdefault("etcd", {"local": {"dataDir": "/var/lib/etcd"}})
    return cluster


def default_join(join, node_name_default=None):
    """v1beta4/defaults.go SetDefaults_JoinConfiguration / SetDefaults_Discovery
    (tlsBootstrapToken defaults to the discovery token; caCertPath /etc/kubernetes/pki/ca.crt)."""
    join = dict(join)
    join["nodeRegistration"] = _default_nodereg(join.get("nodeRegistration"), node_name_default)
    join.setdefault("caCertPath", DEFAULT_CERTS_DIR + "/ca.crt")
    discovery = dict(join.get("discovery") or {})
    if discovery.get("bootstrapToken") and not discovery.get("tlsBootstrapToken"):
        discovery["tlsBootstrapToken"] = discovery["bootstrapToken"].get("token")
    join["discovery"] = discovery
    if join.get("controlPlane") is not None:
        control_plane = dict(join["controlPlane"])
        endpoint = dict(control_plane.get("localAPIEndpoint") or {})
        endpoint.setdefault("bindPort", DEFAULT_BIND_PORT)
        control_plane["localAPIEndpoint"] = endpoint
        join["controlPlane"] = control_plane
    return join


def control_plane_taints(nodereg):
    """util/config/initconfiguration.go SetNodeRegistrationDynamicDefaults: a nil taints list
    on a control plane becomes [node-role.kubernetes.io/control-plane:NoSchedule]; an empty
    list (`taints: []`) stays empty."""
    if nodereg.get("taints") is None:
        return [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    return list(nodereg["taints"])
