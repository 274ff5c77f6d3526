# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: ``kubegpu_offline: true`` means it - nothing is fetched from outside the mirrors.

An offline (air-gapped) cluster names its mirrors, cluster-wide (roles/kubegpu/defaults/main.yml):
``kubegpu_bundle_url`` (the bundle host's HTTP base URL, e.g. http://10.0.0.5:8080),
``kubegpu_bundle_registry`` (the bundle's OCI registry, host[:port], e.g. 10.0.0.5:5000) and
``kubegpu_offline_mirrors`` (further URL prefixes scheme://host[:port][/path] or registries
host[:port] of the site). Preflight (stage 1, _preflight_host.host_report) calls ``problems``
on every host; the refusals are problem records ``{"variable", "problem", "fix"}``
(plugins/plugin_utils/_network.py ``problem``). Nothing is refused while ``kubegpu_offline``
is false. With it true:

- the mirrors: ``kubegpu_bundle_url`` or ``kubegpu_offline_mirrors`` names at least one;
  ``kubegpu_bundle_url`` is an http(s) URL with a host, ``kubegpu_bundle_registry`` host[:port]
  without a scheme, every ``kubegpu_offline_mirrors`` entry one or the other;
- URL_VARIABLES (what the stages download: repositories, keys, manifests, tarballs, the Helm
  chart repository) and CHECKSUM_VARIABLES (get_url's ``sha256:<url>`` checksums, downloaded
  too): a value with a scheme lies under kubegpu_bundle_url or a kubegpu_offline_mirrors URL
  prefix - the same scheme, host and port (80/443 where the URL gives none) and, segment by
  segment, the prefix's path (http://bundle:8080 accepts http://bundle:8080/files/x, never
  http://bundle:80800/x, http://bundle:8080evil/x or https://bundle:8080/x; /files accepts
  /files/x, not /filesx). A value without a scheme is a path on a host (metallb and calico
  manifests may be), no download. ``gpu_operator_chart`` as an ``oci://`` reference (with an
  empty chart repository URL) is pulled from a registry: the image rule below;
- IMAGE_VARIABLES: the registry an image is pulled from (Docker's rule, distribution/reference
  ``ParseNormalizedNamed``: the first path component when it has a "." or ":" or is
  "localhost", else docker.io) is kubegpu_bundle_registry or a kubegpu_offline_mirrors
  registry, or one that ``container_runtime_registry_mirrors`` mirrors ONLY to hosts inside the
  mirrors (then containerd pulls it from them). ``kubernetes_image_repository`` and
  ``calico_registry`` are repository prefixes (kubeadm's imageRepository, the Tigera
  operator's Installation registry); empty, they mean registry.k8s.io (kubeadm's default) and
  quay.io (the operator's CalicoRegistry, tigera/operator pkg/components).

Only what the settings make the stages fetch with ``kubegpu_offline: true`` is judged (``used``):
the calico manifest of ``calico_install_method`` (and calico_registry with the operator), the
release tarballs with ``container_runtime_containerd_source: release``, Docker Engine's
repository with ``container_runtime_docker_source: docker``, MetalLB's manifest when enabled,
the chart and helm in GPU Operator mode, the device plugin's images in kubegpu's device plugin
mode (GFD, DCGM exporter when enabled), the DRA driver's in DRA mode, kube-vip's with a
control-plane VIP, the NFS provisioner's with its StorageClass, the validate images, the
sandbox image and kubeadm's repository. Turning a stage on later is judged in that run's
preflight. The package repositories the stages add are not read offline - apt's only source
is then the offline bundle's repository (roles/kubegpu/tasks/offline.yml, run by os_prereqs),
and the `not kubegpu_offline` conditions of roles/container_runtime/tasks/containerd.yml
(Docker's repository for containerd.io) and nvidia_toolkit.yml, roles/nvidia_driver/tasks/install.yml
(NVIDIA's CUDA repository) and roles/kubernetes/tasks/install.yml (both blocks) leave them out -
except Docker Engine's (docker.yml adds it as it does online). On RedHat-family hosts dnf's only
repository is the bundle's dnf repository of the host's release (the same offline.yml: dnf's
``reposdir`` is a directory holding that repository alone), and the RedHat blocks of the same
tasks leave pkgs.k8s.io's, Docker's, NVIDIA's toolkit and CUDA repositories out alike.

Values are what preflight reads: what the inventory sets, templated by Ansible; a role default
as written, its ``{{ name }}`` references to other settings read here filled in (so
gpu_operator_helm_checksum follows gpu_operator_helm_url, kubernetes_repo_key_url
kubernetes_repo_url). What a remaining template hides (the host, or the part of the path that
decides) is not judged.

containerd and its fallback (plugin_utils/_file_contents.hosts_toml, what container_runtime writes): one
``certs.d/<registry>/hosts.toml`` per container_runtime_registry_mirrors entry (none when
container_runtime_registry_config_path is empty: then no registry counts as mirrored), its
mirrors as ``[host."<host>"]`` tables, ``server = "<server>"`` only where the entry sets one.
containerd tries the hosts in order and then the server - the entry's, else the registry
itself (https://<registry>, registry-1.docker.io for docker.io; containerd docs/hosts.md) - so
an image the mirror cannot serve IS looked for upstream. On an air-gapped network that
fallback has no route and fails (the pull fails, nothing leaves the site), which is why an
entry's ``server`` is not judged here; a network with a route out would let it through. A
``_default`` entry (certs.d/_default) serves every registry without a directory of its own.
With ``kubegpu_container_runtime: docker`` hosts.toml is not read; Docker mirrors docker.io
only (``container_runtime_docker_registry_mirrors``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _network
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as _specs

problem = _network.problem
flag = _gpu_sharing.flag_value

OFFLINE = "kubegpu_offline"
BUNDLE_URL = "kubegpu_bundle_url"
BUNDLE_REGISTRY = "kubegpu_bundle_registry"
MIRRORS = "kubegpu_offline_mirrors"
REGISTRY_MIRRORS = "container_runtime_registry_mirrors"
DOCKER_MIRRORS = "container_runtime_docker_registry_mirrors"
CHART = "gpu_operator_chart"
APT = "kubegpu_bundle_apt"
# The bundle's public key (mirrors.yml): apt's and dnf's repositories of the bundle are signed by one key.
APT_KEY = "kubegpu_bundle_apt_key"
DNF = "kubegpu_bundle_dnf"
# Where a dnf host keeps the bundle's key, its repository file and nothing else (roles/kubegpu/tasks/offline.yml;
# the key path is the one plugins/module_utils/_dnf_bundle.py's repo_file names).
DNF_KEY = "/etc/pki/rpm-gpg/kubegpu-bundle.asc"
DNF_REPOS_DIR = "/etc/kubegpu/yum.repos.d"
DNF_REPO_ID = "kubegpu-bundle"

# Every variable the stages download from by URL (roles/*/defaults/main.yml: the *_url names).
URL_VARIABLES = (
    "calico_operator_manifest_url", "calico_manifest_url",
    "container_runtime_docker_repo_url",
    "container_runtime_release_containerd_url", "container_runtime_release_runc_url",
    "container_runtime_release_unit_url",
    "container_runtime_nvidia_toolkit_repo_url", "container_runtime_nvidia_toolkit_key_url",
    "gpu_operator_chart_repo_url", "gpu_operator_helm_url",
    "kubernetes_repo_url", "kubernetes_repo_key_url",
    "metallb_manifest_url",
    "nvidia_driver_cuda_repo_base_url", "nvidia_driver_cuda_repo_key_url",
)
# get_url checksums "<algorithm>:<url of a checksum file>" (or "<algorithm>:<hex>", no download).
CHECKSUM_VARIABLES = (
    "container_runtime_release_containerd_checksum", "container_runtime_release_runc_checksum",
    "container_runtime_release_unit_checksum", "gpu_operator_helm_checksum",
)
# Every variable naming an image, or a registry/repository images are pulled from.
IMAGE_VARIABLES = (
    "container_runtime_sandbox_image",
    "kubernetes_image_repository", "kubernetes_kube_vip_image",
    "calico_registry",
    "nvidia_device_plugin_image", "nvidia_device_plugin_gfd_image", "nvidia_device_plugin_dcgm_exporter_image",
    "nvidia_dra_driver_image",
    "nfs_client_provisioner_image",
    "validate_smoke_image", "validate_cuda_sample_image",
)
# Image variables that are a repository prefix (image names are appended), and what empty means.
REPOSITORY_VARIABLES = {"kubernetes_image_repository": ("registry.k8s.io", "kubeadm"),
                        "calico_registry": ("quay.io", "the Tigera operator")}

# The settings that name the mirrors (a spec refusal of one of them skips these rules).
MIRROR_SETTINGS = (OFFLINE, BUNDLE_URL, BUNDLE_REGISTRY, MIRRORS, REGISTRY_MIRRORS, DOCKER_MIRRORS)
# Settings these rules read (the value set for the host, else the role default).
SETTINGS = MIRROR_SETTINGS + URL_VARIABLES + CHECKSUM_VARIABLES + IMAGE_VARIABLES + (
    CHART, APT, APT_KEY, DNF, "container_runtime_registry_config_path", "kubegpu_container_runtime", "calico_install_method",
    "container_runtime_containerd_source", "container_runtime_docker_source", "kubernetes_package_source",
    "kubegpu_control_plane_vip", "metallb_enabled", "kubegpu_gpu_operator", "gpu_operator_helm_source",
    "kubegpu_gpu_allocation", "nvidia_device_plugin_gfd_enabled", "nvidia_device_plugin_dcgm_exporter_enabled",
    "nfs_client_storage_class_enabled", "validate_smoke_test",
    # referenced by the defaults above ({{ name }}), filled in where they are plain strings
    "calico_version", "metallb_version", "gpu_operator_helm_version", "container_runtime_release_containerd_version",
    "container_runtime_release_runc_version", "nvidia_device_plugin_version", "nvidia_dra_driver_version",
)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_REFERENCE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB = ("http", "https")
_HOST = re.compile(r"^([a-z0-9_]([a-z0-9_.-]*[a-z0-9])?|[0-9a-f:.]*:[0-9a-f:.]*)$")     # a name, IPv4 or IPv6
INSIDE, OUTSIDE, UNKNOWN = "inside", "outside", "unknown"


def _text(settings, name, default=""):
    value = settings.get(name)
    return default if value is None else str(value).strip()


def resolve(value, settings):
    """A value with its ``{{ name }}`` references to plain string settings filled in (a role
    default as written, e.g. gpu_operator_helm_checksum's ``{{ gpu_operator_helm_url }}``)."""
    text = str(value)
    for _depth in range(5):
        found = _REFERENCE.sub(lambda m: settings[m.group(1)] if isinstance(settings.get(m.group(1)), str)
                               else m.group(0), text)
        if found == text:
            break
        text = found
    return text


def url_parts(text):
    """(scheme, host, port, path) of an absolute URL with a host: scheme and host lower case,
    the port None where it is the scheme's default (or none is given), the path without its
    trailing slash; None where it is none (no scheme, no host, a port that is no number from 1
    to 65535: http://bundle:80800, http://bundle:8080evil)."""
    text = str(text).strip()
    if not _SCHEME.match(text):
        return None
    try:
        split = urlsplit(text)
        port = split.port
    except ValueError:
        return None
    if not split.hostname or not _HOST.match(split.hostname) or port == 0:
        return None
    scheme = split.scheme.lower()
    return (scheme, split.hostname.lower(), None if port == _DEFAULT_PORTS.get(scheme) else port,
            split.path.rstrip("/"))


def registry_parts(text):
    """(host, port) of a registry host[:port] (port None for none or 443); None where it is no
    such thing (a scheme, a path, a bad port)."""
    text = str(text).strip()
    if not text or "/" in text or _SCHEME.match(text) or "{{" in text:
        return None
    try:
        split = urlsplit("//" + text)
        port = split.port
    except ValueError:
        return None
    if not split.hostname or not _HOST.match(split.hostname) or port == 0 or split.path or split.query \
            or split.fragment or split.username:
        return None
    return (split.hostname.lower(), None if port == 443 else port)


def registry_of(reference, repository=False):
    """The registry an image is pulled from, by Docker's rule (module docstring), lower case;
    None where a template hides it. ``repository``: the value is a repository prefix that image
    names are appended to (kubernetes_image_repository, calico_registry)."""
    text = str(reference).strip()
    if repository:
        text = text.rstrip("/") + "/image"
    if text.startswith("{{"):
        return None
    first, slash, _rest = text.partition("/")
    if slash and "{{" in first:
        return None
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def _within(value, mirror):
    """INSIDE, OUTSIDE or UNKNOWN: a value with a scheme (templates filled in as far as they go)
    against one URL prefix (url_parts)."""
    literal, cut = value.split("{{", 1)[0], "{{" in value
    match = _SCHEME.match(literal)
    if not match or (cut and "/" not in literal[match.end():]):
        return UNKNOWN      # the scheme, host or port is a template
    parts = url_parts(literal)
    if parts is None or parts[:3] != mirror[:3]:
        return OUTSIDE
    path, prefix = (urlsplit(literal.strip()).path if cut else parts[3]), mirror[3]
    if not prefix or (path == prefix and not cut) or path.startswith(prefix + "/"):
        return INSIDE
    return UNKNOWN if cut and (prefix + "/").startswith(path) else OUTSIDE


def url_status(value, url_mirrors):
    """INSIDE, OUTSIDE or UNKNOWN of a URL the stages download against the URL prefixes
    (url_parts); INSIDE for a value without a scheme (a path on the host: no download)."""
    if not _SCHEME.match(value.split("{{", 1)[0]):
        return UNKNOWN if "{{" in value else INSIDE
    found = [_within(value, mirror) for mirror in url_mirrors]
    if INSIDE in found:
        return INSIDE
    return UNKNOWN if UNKNOWN in found else OUTSIDE


class Mirrors:
    """The mirrors the settings name: ``urls`` (URL prefixes, url_parts), ``registries``
    (registry_parts), ``shown`` ([(as written, whether it is a registry)]), ``problems``
    (records of the settings that name them)."""

    def __init__(self, settings):
        self.urls, self.registries, self.shown, self.problems = [], [], [], []
        bundle_url, bundle_registry = _text(settings, BUNDLE_URL), _text(settings, BUNDLE_REGISTRY)
        if bundle_url:
            parts = url_parts(bundle_url)
            if parts is None or parts[0] not in _WEB:
                self.problems.append(problem(
                    BUNDLE_URL, "%s is not an http(s) URL with a host (accepted: http://host[:port][/path], the bundle"
                    " host's HTTP base URL)" % _specs.show(settings.get(BUNDLE_URL)),
                    "kubegpu_bundle_url: http://10.0.0.5:8080 (the bundle host's address and port)"))
            else:
                self._url(parts, bundle_url)
        if bundle_registry:
            parts = registry_parts(bundle_registry)
            if parts is None:
                self.problems.append(problem(
                    BUNDLE_REGISTRY, "%s is not host[:port] (accepted: the bundle's registry without a scheme or"
                    " path, e.g. 10.0.0.5:5000)" % _specs.show(settings.get(BUNDLE_REGISTRY)),
                    "kubegpu_bundle_registry: 10.0.0.5:5000 (the bundle host's address and the registry's port)"))
            else:
                self._registry(parts, bundle_registry)
        entries = settings.get(MIRRORS)
        for index, entry in enumerate(entries if isinstance(entries, (list, tuple)) else []):
            text = str(entry if entry is not None else "").strip()
            parts = url_parts(text)
            if parts is not None and parts[0] in _WEB:
                self._url(parts, text)
            elif parts is None and registry_parts(text) is not None:
                self._registry(registry_parts(text), text)
            else:
                self.problems.append(problem(
                    MIRRORS, "entry %d (%s) is neither a URL prefix http(s)://host[:port][/path] nor a registry"
                    " host[:port]" % (index + 1, _specs.show(entry)),
                    "kubegpu_offline_mirrors: [\"https://mirror.example.com/debian\", \"registry.example.com:5000\"]"))

    def _url(self, parts, text):
        self.urls.append(parts)
        self.shown.append((text.rstrip("/"), False))

    def _registry(self, parts, text):
        self.registries.append(parts)
        self.shown.append((text, True))

    def host_inside(self, host):
        """Whether a mirror host of hosts.toml (``http://10.0.0.5:5000``, or host[:port], which
        containerd reaches over https) is inside the mirrors: under a URL prefix, or a registry's
        host and port."""
        text = str(host if host is not None else "").strip()
        if not text or "{{" in text:
            return False
        url = text if _SCHEME.match(text) else "https://" + text
        parts = url_parts(url)
        if parts is None:
            return False
        if any(_within(url, mirror) == INSIDE for mirror in self.urls):
            return True
        return (parts[1], None if parts[2] == 443 else parts[2]) in self.registries

    def registry_inside(self, registry):
        """Whether a registry (host[:port]) is one of the mirrors."""
        return registry_parts(registry) in self.registries


def registry_mirrors(settings, mirrors):
    """{registry: whether the container runtime pulls it from mirrors inside ``mirrors`` only}
    (module docstring): containerd's container_runtime_registry_mirrors entries, true where every
    mirror host is inside (``_default``: every registry without an entry of its own); with Docker
    Engine docker.io, true where every container_runtime_docker_registry_mirrors entry is inside."""
    if _text(settings, "kubegpu_container_runtime", "containerd") == "docker":
        hosts = settings.get(DOCKER_MIRRORS)
        hosts = list(hosts) if isinstance(hosts, (list, tuple)) else []
        return {"docker.io": all(mirrors.host_inside(h) for h in hosts)} if hosts else {}
    entries = settings.get(REGISTRY_MIRRORS)
    if not _text(settings, "container_runtime_registry_config_path") or not isinstance(entries, (list, tuple)):
        return {}
    found = {}
    for entry in entries:
        if not isinstance(entry, dict) or not str(entry.get("registry") or "").strip():
            continue
        hosts = entry.get("mirrors")
        hosts = [h.get("host") if isinstance(h, dict) else None for h in hosts] if isinstance(hosts, list) else []
        found[str(entry["registry"]).strip().lower()] = bool(hosts) and all(mirrors.host_inside(h) for h in hosts)
    return found


def mirrored(registry, table):
    """Whether registry_mirrors' ``table`` sends a registry to the mirrors only; None where no
    entry (nor ``_default``) mirrors it at all."""
    return table.get(registry, table.get("_default"))


def used(settings, boolean, os_facts=None):
    """The URL, checksum and image variables the stages fetch from with these settings and
    ``kubegpu_offline: true``, on this host (``os_facts``: its ansible_facts of this run; the
    package repositories are the bundle's on apt and dnf hosts alike, so none differs by OS)."""
    del os_facts
    settings = settings or {}

    def on(name, default):
        return flag(settings.get(name), boolean, default)

    names = set(["kubernetes_image_repository", "validate_cuda_sample_image"])
    if _text(settings, "calico_install_method", "operator") == "manifest":
        names.add("calico_manifest_url")
    else:
        names.update(("calico_operator_manifest_url", "calico_registry"))
    if _text(settings, "kubegpu_container_runtime", "containerd") == "docker":
        if _text(settings, "container_runtime_docker_source", "distro") == "docker":
            names.add("container_runtime_docker_repo_url")
    else:
        names.add("container_runtime_sandbox_image")
        if _text(settings, "container_runtime_containerd_source", "distro") == "release":
            names.update(n for n in URL_VARIABLES + CHECKSUM_VARIABLES if n.startswith("container_runtime_release_"))
    if _text(settings, "kubegpu_control_plane_vip"):
        names.add("kubernetes_kube_vip_image")
    if on("metallb_enabled", False):
        names.add("metallb_manifest_url")
    if on("kubegpu_gpu_operator", False):
        names.update(("gpu_operator_chart_repo_url", CHART))
        if _text(settings, "gpu_operator_helm_source", "url") == "url":
            names.update(("gpu_operator_helm_url", "gpu_operator_helm_checksum"))
    elif _text(settings, "kubegpu_gpu_allocation", "device-plugin") == "dra":
        names.add("nvidia_dra_driver_image")
    else:
        names.add("nvidia_device_plugin_image")
        if on("nvidia_device_plugin_gfd_enabled", False):
            names.add("nvidia_device_plugin_gfd_image")
        if on("nvidia_device_plugin_dcgm_exporter_enabled", False):
            names.add("nvidia_device_plugin_dcgm_exporter_image")
    if on("nfs_client_storage_class_enabled", False):
        names.add("nfs_client_provisioner_image")
    if on("validate_smoke_test", True):
        names.add("validate_smoke_image")
    return names


def _outside(mirrors, registries=False):
    """"outside the mirrors ...: <the URL prefixes, or the registries>"."""
    shown = [text for text, is_registry in mirrors.shown if is_registry == registries]
    return "outside the mirrors of an offline cluster (kubegpu_offline: true): %s" % (
        ", ".join(shown) or "none (no %s is set)" % ("registry" if registries else "URL mirror"))


def _url_fix(variable, bundle_url):
    return ("%s: its copy on the bundle host (%s/...) - the bundle's mirrors.yml (docs/airgap.md) sets every URL"
            " variable; or add the mirror it is on to kubegpu_offline_mirrors"
            % (variable, bundle_url or "<kubegpu_bundle_url>"))


def _image_path(text, registry):
    """The image's path in its registry (the bundle's registry keeps it without the host)."""
    if text.lower().startswith(registry + "/"):
        return text[len(registry) + 1:]
    return text if "/" in text.split("@")[0].split(":")[0] else "library/" + text


def _image_record(variable, text, registry, mirrors, table, bundle_registry, source=REGISTRY_MIRRORS):
    """The record of an image (or repository) variable whose registry is neither a mirror nor
    mirrored to the mirrors only; None where it is. ``source``: the variable of ``table``."""
    via = mirrored(registry, table)
    if mirrors.registry_inside(registry) or via:
        return None
    if variable in REPOSITORY_VARIABLES:
        shown = "%s (the repository of registry %s) is" % (_specs.show(text), registry) if text else \
            "empty: %s pulls from %s," % (REPOSITORY_VARIABLES[variable][1], registry)
    else:
        shown = "%s is pulled from registry %s," % (_specs.show(text), registry)
    how = ("its %s entry has mirror hosts outside them (the runtime would pull from those)" % source if via is False
           else "no %s entry mirrors it to them" % source)
    where = bundle_registry or "<kubegpu_bundle_registry>"
    if variable in REPOSITORY_VARIABLES:
        own = "%s: %s%s" % (variable, where, "/" if variable == "calico_registry" else "")
    else:
        own = "%s: %s/%s" % (variable, where, _image_path(text, registry))
    return problem(
        variable, "%s %s; %s" % (shown, _outside(mirrors, registries=True), how),
        "%s (its copy in the bundle's registry), or container_runtime_registry_mirrors: [{registry: %s, mirrors:"
        " [{host: \"http://%s\"}]}] - the bundle's mirrors.yml (docs/airgap.md) sets them; or add the registry's"
        " mirror to kubegpu_offline_mirrors" % (own, registry, where))


DEBIAN_CODENAMES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
UBUNTU_CODENAMES = {"20.04": "focal", "22.04": "jammy", "24.04": "noble"}


def release_id(os_facts):
    """The name of a host's repository in the offline bundle (plugin_utils/_bundle.py builds one
    per release), "" where the facts give none:

    - apt hosts (os_family Debian): ``<distribution>-<codename>`` (debian-bookworm, ubuntu-noble),
      the codename from the version where the facts lack it;
    - dnf hosts (os_family RedHat: RHEL, Rocky, AlmaLinux): ``<distribution>-<major>``
      (redhat-9, rocky-9, almalinux-9): one repository serves every minor release of a major, as
      the distributions' own ``$releasever`` repositories do."""
    facts = os_facts or {}
    distribution = str(facts.get("distribution") or "").lower()
    if facts.get("os_family") == "RedHat":
        major = str(facts.get("distribution_major_version") or "").strip() or \
            str(facts.get("distribution_version") or "").split(".", maxsplit=1)[0]
        return "%s-%s" % (distribution, major) if distribution and major else ""
    codename = str(facts.get("distribution_release") or "").lower()
    if not codename:
        version = str(facts.get("distribution_version") or "")
        codename = (UBUNTU_CODENAMES if distribution == "ubuntu" else DEBIAN_CODENAMES).get(
            version if distribution == "ubuntu" else version.split(".", maxsplit=1)[0], "")
    return "%s-%s" % (distribution, codename) if distribution and codename else ""


def dnf_repo_file(url, key=DNF_KEY):
    """The repository file a dnf host of an offline cluster uses (DNF_REPOS_DIR/kubegpu-bundle.repo,
    roles/kubegpu/tasks/offline.yml): the bundle's repository of its release, its metadata signed by
    the bundle's key (repo_gpgcheck=1: the signed repomd.xml carries every package's checksum, which
    dnf checks; the vendors' package signatures were checked on the staging machine, so gpgcheck=0),
    module_hotfixes=1 (the bundle carries no module metadata: its packages are not filtered by
    module streams). The same stanza as plugins/module_utils/_dnf_bundle.py's repo_file."""
    url = str(url or "").strip()
    if not url or "\n" in url or "\n" in str(key):
        raise ValueError("the bundle's dnf repository URL %r cannot go into a repository file" % (url,))
    return ("# kubegpu_offline: dnf's only repository is the offline bundle's (roles/kubegpu/tasks/offline.yml).\n"
            "[%s]\nname=kubegpu offline bundle\nbaseurl=%s\nenabled=1\ngpgcheck=0\nrepo_gpgcheck=1\n"
            "gpgkey=file://%s\nmodule_hotfixes=1\n" % (DNF_REPO_ID, url, key))


# Per package family: the mirrors.yml table of the bundle's repositories by release, the
# package manager's name, and what the host uses it for (roles/kubegpu/tasks/offline.yml).
_PACKAGE_REPOSITORIES = {
    "Debian": (APT, "apt", "no repository of the offline bundle for %s (it has: %s): with kubegpu_offline apt's only"
                           " source is the bundle's repository of the host's release"),
    "RedHat": (DNF, "dnf", "no dnf repository of the offline bundle for %s (it has: %s): with kubegpu_offline dnf's"
                           " only repository is the bundle's repository of the host's release"),
}


def repository_problems(settings, os_facts):
    """An apt host (Debian, Ubuntu) or dnf host (RHEL, Rocky, AlmaLinux) of an offline cluster
    needs the bundle's repository of its release (kubegpu_bundle_apt, kubegpu_bundle_dnf) and the
    bundle's key (kubegpu_bundle_apt_key, which signs both kinds): mirrors.yml sets them. The
    package manager's only source is that repository (roles/kubegpu/tasks/offline.yml)."""
    facts = os_facts or {}
    family = _PACKAGE_REPOSITORIES.get(facts.get("os_family"))
    if family is None or not facts.get("distribution"):
        return []
    variable, manager, missing = family
    release = release_id(facts)
    table = settings.get(variable) if isinstance(settings.get(variable), dict) else {}
    fix = ("build the bundle with this host in the inventory (playbooks/bundle.yml) and put its mirrors.yml in"
           " group_vars/all (docs/airgap.md)")
    if not str(table.get(release) or "").strip():
        return [problem(variable, missing % (release, ", ".join(sorted(table)) or "none"), fix)]
    if not str(settings.get(APT_KEY) or "").strip():
        return [problem(APT_KEY, "empty: %s could not trust the offline bundle's repository (the bundle's key signs"
                        " its apt and dnf repositories)" % manager, fix)]
    return []


def problems(settings, boolean, os_facts=None):
    """Problem records of an offline cluster's settings (module docstring); [] while
    ``kubegpu_offline`` is false.

    ``settings``: SETTINGS (missing ones take their defaults); ``boolean``: how the argument
    specs read a boolean; ``os_facts``: the host's ansible_facts of this run (os_family)."""
    settings = settings or {}
    if not flag(settings.get(OFFLINE), boolean, False):
        return []
    mirrors = Mirrors(settings)
    records = list(mirrors.problems)
    if not mirrors.urls and not mirrors.registries:
        if not records:
            records.append(problem(
                OFFLINE, "true, but neither kubegpu_bundle_url nor kubegpu_offline_mirrors names a mirror: every"
                " download and image pull of every stage would be refused",
                "kubegpu_bundle_url: http://<bundle host>:8080 and kubegpu_bundle_registry: <bundle host>:5000 (the"
                " bundle host, docs/airgap.md), or kubegpu_offline_mirrors: [\"https://mirror.example.com\","
                " \"registry.example.com:5000\"]"))
        return records
    records.extend(repository_problems(settings, os_facts))
    wanted = used(settings, boolean, os_facts)
    bundle_url = _text(settings, BUNDLE_URL).rstrip("/")
    bundle_registry = _text(settings, BUNDLE_REGISTRY)
    for variable in URL_VARIABLES:
        value = settings.get(variable)
        text = resolve(value, settings).strip() if isinstance(value, str) else ""
        if variable in wanted and text and url_status(text, mirrors.urls) == OUTSIDE:
            records.append(problem(variable, "%s is %s" % (_specs.show(text), _outside(mirrors)),
                                   _url_fix(variable, bundle_url)))
    for variable in CHECKSUM_VARIABLES:
        value = settings.get(variable)
        if variable not in wanted or not isinstance(value, str):
            continue
        text = resolve(value, settings).strip()
        algorithm, _colon, rest = text.partition(":")
        if _SCHEME.match(rest.split("{{", 1)[0]) and url_status(rest, mirrors.urls) == OUTSIDE:
            records.append(problem(
                variable, "%s downloads its checksum file from %s" % (_specs.show(text), _outside(mirrors)),
                "%s: %s:<hex digest>, or %s:<the checksum file's URL on the bundle host (%s/...)>"
                % (variable, algorithm, algorithm, bundle_url or "<kubegpu_bundle_url>")))
    table = registry_mirrors(settings, mirrors)
    source = DOCKER_MIRRORS if _text(settings, "kubegpu_container_runtime", "containerd") == "docker" else REGISTRY_MIRRORS
    chart = settings.get(CHART)
    if CHART in wanted and isinstance(chart, str) and chart.strip().lower().startswith("oci://") \
            and not _text(settings, "gpu_operator_chart_repo_url"):
        registry = registry_of(chart.strip()[len("oci://"):])
        if registry and not (mirrors.registry_inside(registry) or mirrored(registry, table)):
            records.append(problem(
                CHART, "%s is pulled from registry %s, %s" % (_specs.show(chart), registry,
                                                              _outside(mirrors, registries=True)),
                "gpu_operator_chart: oci://%s/<the chart's path> (the bundle's registry), or"
                " gpu_operator_chart_repo_url on the bundle host" % (bundle_registry or "<kubegpu_bundle_registry>")))
    for variable in IMAGE_VARIABLES:
        value = settings.get(variable)
        if variable not in wanted or not isinstance(value, str):
            continue
        text = resolve(value, settings).strip()
        if not text and variable not in REPOSITORY_VARIABLES:
            continue    # no image (validate_cuda_sample_image), or containerd's own sandbox image
        registry = registry_of(text, variable in REPOSITORY_VARIABLES) if text else REPOSITORY_VARIABLES[variable][0]
        record = _image_record(variable, text, registry, mirrors, table, bundle_registry, source) if registry else None
        if record:
            records.append(record)
    return records
