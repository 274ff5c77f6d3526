# SPDX-License-Identifier: Apache-2.0
# Copyright (c) 2026 kubegpu contributors
"""Controller side: what an air-gapped fleet needs, decided once, here (playbooks/bundle.yml).

``plan(hosts, settings_of, declared, stages)`` answers, from this run's facts of the fleet's hosts
(or a declared list of OS/release/architecture/GPU combinations when they cannot be reached):

- ``targets``: one per distribution release (e.g. debian-bookworm, rocky-9), of ``kind`` apt
  (Debian, Ubuntu) or dnf (RHEL, Rocky, AlmaLinux), with the architectures and hosts it serves,
  the apt sources or dnf repositories the bundle builder resolves packages from, and the packages
  each stage installs there - read from the SAME data and functions the stages use: the roles'
  OS vars files (os_prereqs, container_runtime; the first of <distribution>_<major>,
  <distribution>, <os_family>_<major>, <os_family> that exists, as the roles' tasks/facts.yml
  pick them), the driver stage's plan and package selection (_preflight_driver.plan_for_host,
  selection_for_host, kernel_rule_for_host: what preflight and stage 3 call), kubernetes'
  pinned packages;
- ``files``: the manifests, charts and tarballs the stages download, each with the URL
  variable that names it and its path in the bundle;
- ``images``: the container images the stages and the validate Job run, each with its path
  in the bundle's registry;
- ``mirrors``: the variables that point every stage at the bundle (``mirrors.yml``; with
  ``kubegpu_offline: true`` preflight refuses any URL outside the mirrors, _offline.py).

A RHEL-family target is a dnf repository (kubegpu.cluster.dnf_bundle) resolved from the
distribution's own repositories (Rocky's and AlmaLinux's BaseOS, AppStream and CRB; RHEL's from
``bundle_rhel_repos``, which a subscription provides), EPEL (python3-tomlkit, DKMS) and the
third-party repositories the stages add on RedHat, each with its key checked against a pinned
fingerprint on the builder.

The bundle's registry stores an image under its path without the registry host
(``registry.k8s.io/pause:3.10.1`` -> ``<bundle registry>/pause:3.10.1``): containerd asks a
mirror of hosts.toml for ``/v2/<path>/...`` (containerd docs/hosts.md "host" without
override_path), so two images whose paths are equal under different registries cannot both
be served; ``plan`` refuses that naming both.
"""

from __future__ import annotations

import posixpath
import re
from pathlib import Path

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_driver
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_packages as _dp
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _driver_plan as _plan
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _gpu_sharing
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _offline
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _packages
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as _specs
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

STAGES = ("os_prereqs", "nvidia_driver", "container_runtime", "kubernetes", "nfs_client", "bundle_server")
APT_FAMILIES = ("Debian",)
DNF_FAMILIES = ("RedHat",)
# What serves the bundle on the site (roles/bundle_server): Debian's registry server and
# skopeo, which loads the bundle's image archives into it.
SERVER_PACKAGES = ("docker-registry", "skopeo")
SUITE = "kubegpu"
COMPONENT = "main"
KEYRING = "/etc/apt/keyrings/kubegpu-bundle.asc"
# Debian / dpkg architecture names of Ansible's ansible_facts.architecture.
DPKG_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "amd64": "amd64", "arm64": "arm64"}

# The settings the plan reads (the value set for the host, else the role default).
SETTINGS = (
    "os_prereqs_time_sync", "os_prereqs_packages_extra",
    "container_runtime_containerd_source", "container_runtime_nvidia_toolkit_install", "kubegpu_gpu_node",
    "kubernetes_package_source", "kubernetes_version", "kubernetes_deb_revision", "kubernetes_packages",
    "kubernetes_image_repository", "kubernetes_kube_vip_image", "kubegpu_control_plane_vip",
    "container_runtime_sandbox_image", "nfs_client_mounts", "nfs_client_storage_class_enabled", "nfs_client_provisioner_image",
    "nvidia_device_plugin_image", "validate_smoke_image", "validate_cuda_sample_image",
    "kubegpu_gpu_operator", "gpu_operator_chart_repo_url", "gpu_operator_chart", "gpu_operator_chart_version",
    "bundle_debian_mirror", "bundle_debian_security_mirror", "bundle_ubuntu_mirror", "bundle_ubuntu_ports_mirror",
    "bundle_rocky_mirror", "bundle_almalinux_mirror", "bundle_epel_mirror", "bundle_rhel_repos",
    "bundle_packages_extra", "bundle_images_extra", "bundle_files_extra", "kubegpu_offline",
    "kubernetes_repo_url", "kubernetes_repo_key_url", "kubernetes_repo_key_fingerprint",
    "container_runtime_nvidia_toolkit_repo_url", "container_runtime_nvidia_toolkit_key_url",
    "container_runtime_nvidia_toolkit_key_fingerprint", "container_runtime_docker_repo_url",
    "container_runtime_docker_repo_key_fingerprint", "nvidia_driver_cuda_repo_key_fingerprint", "nvidia_driver_mode",
) + tuple(n for n in _offline.SETTINGS if n not in _preflight_driver.SETTINGS) + _preflight_driver.SETTINGS


class BundleError(Exception):
    """A fleet the bundle cannot be built for; the message names host, variable and fix."""


def _words(value):
    return [str(v) for v in (value or []) if str(v).strip()] if isinstance(value, (list, tuple)) else []


def _bool(value, default=False):
    """A boolean setting as the argument specs read it (_gpu_sharing.flag_value)."""
    return _gpu_sharing.flag_value(value, boolean, default)


# --- targets --------------------------------------------------------------------------------

# ``<distribution>-<codename>`` of an apt-based host (debian-bookworm, ubuntu-noble): the name of
# its repository in the bundle, which preflight looks up too.
target_id = _offline.release_id


DISTRIBUTION_NAMES = {"debian": "Debian", "ubuntu": "Ubuntu", "redhat": "RedHat", "rhel": "RedHat", "rocky": "Rocky",
                      "almalinux": "AlmaLinux"}


def declared_host(entry, index):
    """A declared combination (bundle_targets) as the facts of a host that was not reached:
    {distribution: Debian, version: "12", architecture: x86_64, kernel: 6.1.0-28-amd64,
    gpus: [hopper, ...] (GPU architectures; [] for none)}."""
    if not isinstance(entry, dict) or not entry.get("distribution") or not entry.get("version"):
        raise BundleError("variable bundle_targets: entry %d %r needs distribution and version; fix: e.g."
                          " {distribution: Debian, version: \"12\", architecture: x86_64, gpus: [hopper]}"
                          % (index + 1, entry))
    distribution = str(entry["distribution"])
    # Ansible's names of the RHEL family (ansible_facts.distribution), whatever case or alias is written.
    distribution = DISTRIBUTION_NAMES.get(distribution.lower(), distribution)
    version = str(entry["version"])
    family = "Debian" if distribution.lower() in ("debian", "ubuntu") else "RedHat"
    os_facts = {"distribution": distribution, "distribution_version": version,
                "distribution_major_version": version.split(".", maxsplit=1)[0], "os_family": family,
                "distribution_release": str(entry.get("codename") or ""),
                "architecture": str(entry.get("architecture") or "x86_64"), "kernel": str(entry.get("kernel") or "")}
    gpus = [{"index": i, "name": "declared %s GPU" % arch, "architecture": str(arch), "pci_bus_id": "declared:%d" % i}
            for i, arch in enumerate(_words(entry.get("gpus")))]
    gpu_facts = {"count": len(gpus), "gpus": gpus, "driver": {"loaded": False}, "source": "declared"}
    return {"name": "bundle_targets[%d]" % index, "os": os_facts, "gpu": gpu_facts, "gpu_node": bool(gpus),
            "roles": list(entry.get("roles") or ["kube_node"])}


def apt_sources(os_facts, settings):
    """The distribution's own archive lines the builder resolves packages from (Debian with
    contrib, non-free and non-free-firmware where the driver comes from; Ubuntu with
    restricted, universe and multiverse; ports.ubuntu.com for arm64)."""
    distribution = str(os_facts.get("distribution") or "").lower()
    codename = target_id(os_facts).split("-", 1)[1]
    if distribution == "debian":
        mirror = str(settings.get("bundle_debian_mirror") or "http://deb.debian.org/debian").rstrip("/")
        security = str(settings.get("bundle_debian_security_mirror") or "http://deb.debian.org/debian-security").rstrip("/")
        components = "main contrib non-free" + ("" if codename in ("buster", "bullseye") else " non-free-firmware")
        return ["deb %s %s %s" % (mirror, codename, components),
                "deb %s %s-updates %s" % (mirror, codename, components),
                "deb %s %s-security %s" % (security, codename, components)]
    if distribution == "ubuntu":
        ports = DPKG_ARCH.get(str(os_facts.get("architecture")), "amd64") != "amd64"
        mirror = str(settings.get("bundle_ubuntu_ports_mirror" if ports else "bundle_ubuntu_mirror")
                     or ("http://ports.ubuntu.com/ubuntu-ports" if ports else "http://archive.ubuntu.com/ubuntu")).rstrip("/")
        components = "main restricted universe multiverse"
        return ["deb %s %s%s %s" % (mirror, codename, suffix, components) for suffix in ("", "-updates", "-security")]
    raise BundleError("no apt archive known for %s" % distribution)


# The RHEL rebuilds' own repositories and EPEL, as the builder resolves from them: the mirror (the
# setting, else the upstream default), the repositories under it, the key file beside them and its
# fingerprint pinned per major release; the builder downloads the key and refuses another
# fingerprint before dnf reads a package (playbooks/bundle.yml). A mirror of your own serves the same
# tree and keys. Fingerprints (where they were read, 2026-12):
# - Rocky 9, "Rocky Release key 2022", at https://dl.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-9:
#   21CB256AE16FC54C6E652949702D426D350D275D (the same pin in several independent public projects
#   that check Rocky's key and CHECKSUM files: ROCKY_SIGNING_KEYS {"9": ...} beside that key URL, a
#   Chef test's BaseOS repository for RPM-GPG-KEY-Rocky-9, an ISO verification record; not read
#   from Rocky's own documentation);
# - AlmaLinux 9, "AlmaLinux OS 9 <packager@almalinux.org>" (rsa4096, 2022-01-18), at
#   https://repo.almalinux.org/almalinux/RPM-GPG-KEY-AlmaLinux-9: BF18AC2876178908D6E71267D36CB86CB86B3716
#   (AlmaLinux's own documentation, "Print the key fingerprint" of RPM-GPG-KEY-AlmaLinux-9);
# - EPEL 9, "Fedora (epel9) <epel@fedoraproject.org>", at
#   https://dl.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9: FF8AD1344597106ECE813B918A3872BF3228467C
#   (the official MariaDB images' Dockerfiles import that URL and export exactly this fingerprint; a
#   test fixture of `gpg --with-colons` of the epel9 key shows the same).
# Only major 9 is known: another major is refused naming the host (its repositories and keys differ:
# Rocky 8's PowerTools, AlmaLinux 8's rotated key).
DNF_DISTRIBUTIONS = {
    "rocky": {"variable": "bundle_rocky_mirror", "mirror": "https://dl.rockylinux.org/pub/rocky",
              "repos": ("BaseOS", "AppStream", "CRB"), "key": "RPM-GPG-KEY-Rocky-%s",
              "fingerprints": {"9": "21CB256AE16FC54C6E652949702D426D350D275D"}},
    "almalinux": {"variable": "bundle_almalinux_mirror", "mirror": "https://repo.almalinux.org/almalinux",
                  "repos": ("BaseOS", "AppStream", "CRB"), "key": "RPM-GPG-KEY-AlmaLinux-%s",
                  "fingerprints": {"9": "BF18AC2876178908D6E71267D36CB86CB86B3716"}},
}
EPEL = {"variable": "bundle_epel_mirror", "mirror": "https://dl.fedoraproject.org/pub/epel", "key": "RPM-GPG-KEY-EPEL-%s",
        "fingerprints": {"9": "FF8AD1344597106ECE813B918A3872BF3228467C"}}
# RHEL needs a subscription: its repositories come from the user's Satellite or mirror.
RHEL_REPOS = "bundle_rhel_repos"
RHEL_REPOS_EXAMPLE = ('bundle_rhel_repos: [{name: baseos, baseurl: "https://satellite.example.com/.../rhel-9-for-$basearch-'
                      'baseos-rpms", key_url: "https://satellite.example.com/.../RPM-GPG-KEY-redhat-release",'
                      ' fingerprint: <the key\'s fingerprint, as Red Hat publishes it>}, ...] (BaseOS, AppStream and'
                      ' CodeReady Builder of your Satellite or mirror)')


def _dnf_repo(tid, name, baseurl, key_url, fingerprint, variable, gpgcheck=True, module_hotfixes=False,
              repo_gpgcheck=False):
    """A repository the builder resolves from; gpgcheck (packages signed) and repo_gpgcheck (metadata
    signed) as the stage that adds it on a connected host sets them."""
    return {"name": "%s-%s" % (tid, name), "variable": variable, "baseurl": str(baseurl), "key_url": str(key_url),
            "fingerprint": str(fingerprint or "").replace(" ", "").upper(), "gpgcheck": bool(gpgcheck),
            "repo_gpgcheck": bool(repo_gpgcheck), "module_hotfixes": bool(module_hotfixes)}


def dnf_repos(host, settings):
    """The distribution's own dnf repositories a RHEL-family host's packages are resolved from
    (``$releasever``/``$basearch`` left for dnf): Rocky's and AlmaLinux's BaseOS, AppStream and
    CRB under their mirror, RHEL's from bundle_rhel_repos (refused without), and EPEL."""
    os_facts = host.get("os") or {}
    tid = target_id(os_facts)
    distribution = str(os_facts.get("distribution") or "").lower()
    major = tid.rsplit("-", 1)[-1]
    name = host.get("name")
    if distribution == "redhat":
        entries = settings.get(RHEL_REPOS)
        if not entries:
            raise BundleError("host %s: RHEL %s: variable %s is empty: RHEL's repositories need a subscription, the"
                              " bundle cannot resolve from them by itself; fix: %s"
                              % (name, major, RHEL_REPOS, RHEL_REPOS_EXAMPLE))
        repos = []
        for index, entry in enumerate(entries if isinstance(entries, (list, tuple)) else [entries]):
            if not isinstance(entry, dict) or not all(str(entry.get(k) or "").strip()
                                                      for k in ("name", "baseurl", "key_url", "fingerprint")):
                raise BundleError("host %s: variable %s: entry %d %r needs name, baseurl, key_url and fingerprint;"
                                  " fix: %s" % (name, RHEL_REPOS, index + 1, entry, RHEL_REPOS_EXAMPLE))
            repos.append(_dnf_repo(tid, str(entry["name"]), entry["baseurl"], entry["key_url"], entry["fingerprint"],
                                   RHEL_REPOS))
    else:
        known = DNF_DISTRIBUTIONS.get(distribution)
        if known is None or major not in known["fingerprints"]:
            raise BundleError("host %s: %s %s: the bundle knows the dnf repositories of Rocky Linux and AlmaLinux %s"
                              " and RHEL (bundle_rhel_repos) only; fix: leave the host out of the bundle's inventory,"
                              " or bring its packages through a dnf mirror of your own"
                              % (name, os_facts.get("distribution"), os_facts.get("distribution_version"),
                                 ", ".join(sorted(set(m for d in DNF_DISTRIBUTIONS.values() for m in d["fingerprints"])))))
        mirror = str(settings.get(known["variable"]) or known["mirror"]).rstrip("/")
        repos = [_dnf_repo(tid, repo.lower(), "%s/$releasever/%s/$basearch/os/" % (mirror, repo),
                           "%s/%s" % (mirror, known["key"] % major), known["fingerprints"][major], known["variable"])
                 for repo in known["repos"]]
    if major not in EPEL["fingerprints"]:
        raise BundleError("host %s: EPEL %s: the bundle knows EPEL %s only (python3-tomlkit, DKMS); fix: leave the host"
                          " out of the bundle's inventory" % (name, major, ", ".join(sorted(EPEL["fingerprints"]))))
    epel = str(settings.get(EPEL["variable"]) or EPEL["mirror"]).rstrip("/")
    repos.append(_dnf_repo(tid, "epel", "%s/$releasever/Everything/$basearch/" % epel, "%s/%s" % (epel, EPEL["key"] % major),
                           EPEL["fingerprints"][major], EPEL["variable"]))
    return repos


def _role_vars(root, role):
    """A role's vars/main.yml."""
    import yaml  # pylint: disable=import-outside-toplevel
    path = Path(root) / "roles" / role / "vars" / "main.yml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}


def _driver_packages(host, settings):
    """The packages stage 3 installs on a GPU node (host mode) and the kernel headers of its
    running kernel, or [] where it installs none."""
    if not host.get("gpu_node") or str(settings.get("nvidia_driver_mode") or "host").lower() == "container":
        return []
    facts, os_facts = host.get("gpu") or {}, host.get("os") or {}
    try:
        source, _constraints, plan_ = _preflight_driver.plan_for_host(facts, os_facts, settings)
        if not plan_.get("needed") or not plan_.get("branch"):
            return []
        selection = _preflight_driver.selection_for_host(plan_, source, os_facts, settings)
        rule = _preflight_driver.kernel_rule_for_host(plan_, source, os_facts, settings)
    except (_plan.DriverPlanError, _dp.DriverPackagesError) as exc:
        raise BundleError("host %s: %s" % (host.get("name"), exc)) from exc
    host["driver_repo"] = selection.get("repo") or {}
    names = []
    for name in selection.get("packages") or []:
        if str(name).startswith("@"):
            # A dnf module profile (@nvidia-driver:<stream>/<profile>): the bundle's repository carries
            # no module metadata, so its packages are bundled by name - the ones the stage versionlocks
            # (selection "hold": the driver, its libraries, the DKMS kernel module, persistenced).
            names += [n for n in selection.get("hold") or [] if n not in names]
        elif name not in names:
            names.append(name)
    for key in ("fabric_manager_packages", "nvlsm_packages", "cuda_toolkit_packages", "headers_packages"):
        names += [n for n in selection.get(key) or [] if n not in names]
    kernel = os_facts.get("kernel")
    if kernel:
        names += [n for n in _dp.kernel_packages(rule, [kernel]).get("packages") or [] if n not in names]
    return names


def packages_by_stage(host, settings, root, stages=STAGES):
    """{stage: [package, ...]} one host gets from the stages in ``stages``."""
    os_facts = host.get("os") or {}
    roles = host.get("roles") or ["kube_node"]
    found = {}
    if "bundle_server" in stages and "bundle_server" in roles:
        if str(os_facts.get("os_family")) not in APT_FAMILIES:
            raise BundleError("host %s: group kubegpu_bundle_server: %s %s cannot serve the bundle (roles/bundle_server"
                              " runs Debian's docker-registry package); fix: make a Debian or Ubuntu host the bundle"
                              " server (it serves the dnf repositories too)"
                              % (host.get("name"), os_facts.get("distribution"), os_facts.get("distribution_version")))
        found["bundle_server"] = list(SERVER_PACKAGES)
    if "kube_node" not in roles:
        return found
    if "os_prereqs" in stages:
        data = _specs.os_vars("os_prereqs", os_facts, root)
        sync = str(settings.get("os_prereqs_time_sync") or "chrony")
        found["os_prereqs"] = (list(data.get("_os_prereqs_packages") or [])
                               + list(((data.get("_os_prereqs_time_sync_services") or {}).get(sync) or {}).get("packages") or [])
                               + _words(settings.get("os_prereqs_packages_extra")))
    if "nvidia_driver" in stages:
        found["nvidia_driver"] = _driver_packages(host, settings)
    if "container_runtime" in stages:
        data = _specs.os_vars("container_runtime", os_facts, root)
        source = str(settings.get("container_runtime_containerd_source") or "distro")
        names = list(data.get("_container_runtime_tomlkit_packages") or [])
        names += list((data.get("_container_runtime_containerd_packages") or {}).get(source) or [])
        toolkit = _bool(settings.get("container_runtime_nvidia_toolkit_install"), True) and host.get("gpu_node")
        if toolkit:
            names += list(data.get("_container_runtime_nvidia_toolkit_packages") or [])
        found["container_runtime"] = names
    if "kubernetes" in stages and str(settings.get("kubernetes_package_source") or "repo") == "repo":
        if str(os_facts.get("os_family")) in DNF_FAMILIES:
            # As the RedHat block asks dnf: <name>-<kubernetes_version>.
            found["kubernetes"] = ["%s-%s" % (name, settings.get("kubernetes_version"))
                                   for name in _words(settings.get("kubernetes_packages"))]
        else:
            version = "%s-%s" % (settings.get("kubernetes_version"), settings.get("kubernetes_deb_revision") or "1.1")
            found["kubernetes"] = ["%s=%s" % (name, version) for name in _words(settings.get("kubernetes_packages"))]
    if "nfs_client" in stages and (settings.get("nfs_client_mounts") or _bool(settings.get("nfs_client_storage_class_enabled"))):
        found["nfs_client"] = list((_role_vars(root, "nfs_client").get("_nfs_client_packages") or {}).get(
            str(os_facts.get("os_family") or "Debian")) or [])
    if str(os_facts.get("os_family")) in DNF_FAMILIES:
        # The stages' version locks (driver, containerd, Kubernetes) install dnf's plugin first
        # (kubegpu.cluster.packages).
        found["holds"] = [_packages.DNF_LOCK_PLUGIN]
    found["extra"] = _words(settings.get("bundle_packages_extra"))
    return dict((stage, names) for stage, names in found.items() if names)


def _repo(name, url, suite, key_url, fingerprint, variable):
    return {"name": name, "variable": variable, "url": str(url), "suite": suite, "key_url": str(key_url),
            "fingerprint": str(fingerprint or "").replace(" ", "").upper()}


def third_party_sources(host, settings, stages_packages):
    """The non-distribution apt repositories a host's packages come from, as the stages add
    them (the builder adds each with its key, checked against the pinned fingerprint):
    pkgs.k8s.io (kubernetes_repo_url), NVIDIA's container toolkit, NVIDIA's CUDA repository
    where the driver comes from it, Docker's for containerd.io."""
    sources = []
    if stages_packages.get("kubernetes"):
        url = str(settings.get("kubernetes_repo_url") or "").rstrip("/")
        sources.append(_repo("kubernetes", url + "/deb/", "/", settings.get("kubernetes_repo_key_url") or url + "/deb/Release.key",
                             settings.get("kubernetes_repo_key_fingerprint"), "kubernetes_repo_url"))
    runtime = stages_packages.get("container_runtime") or []
    if "nvidia-container-toolkit" in runtime:
        url = str(settings.get("container_runtime_nvidia_toolkit_repo_url") or "").rstrip("/")
        sources.append(_repo("nvidia-container-toolkit", url + "/deb/$(ARCH)", "/",
                             settings.get("container_runtime_nvidia_toolkit_key_url"),
                             settings.get("container_runtime_nvidia_toolkit_key_fingerprint"),
                             "container_runtime_nvidia_toolkit_repo_url"))
    if "containerd.io" in runtime:
        distro = str((host.get("os") or {}).get("distribution") or "").lower()
        url = "%s/%s" % (str(settings.get("container_runtime_docker_repo_url") or "").rstrip("/"), distro)
        codename = target_id(host.get("os") or {}).split("-", 1)[-1]
        sources.append(_repo("docker", url, "%s stable" % codename, url + "/gpg",
                             settings.get("container_runtime_docker_repo_key_fingerprint"), "container_runtime_docker_repo_url"))
    repo = host.get("driver_repo") or {}
    if repo.get("kind") == "apt_repo":
        sources.append(_repo(repo.get("name") or "kubegpu-cuda", repo["url"], repo.get("suites") or "/", repo["key_url"],
                             settings.get("nvidia_driver_cuda_repo_key_fingerprint") or repo.get("fingerprint"),
                             "nvidia_driver_cuda_repo_base_url"))
    return sources


def third_party_dnf_repos(host, settings, stages_packages):
    """The non-distribution dnf repositories a RHEL-family host's packages come from, as the stages'
    RedHat paths add them (roles/kubernetes/tasks/install.yml, roles/container_runtime/tasks/
    containerd.yml and nvidia_toolkit.yml through repo_dnf.yml, roles/nvidia_driver/tasks/
    repo_dnf_repo.yml), each key checked against the same pinned fingerprint the stage pins."""
    tid = target_id(host.get("os") or {})
    repos = []
    if stages_packages.get("kubernetes"):
        url = str(settings.get("kubernetes_repo_url") or "").rstrip("/")
        repos.append(_dnf_repo(tid, "kubernetes", url + "/rpm/", url + "/rpm/repodata/repomd.xml.key",
                               settings.get("kubernetes_repo_key_fingerprint"), "kubernetes_repo_url", repo_gpgcheck=True))
    runtime = stages_packages.get("container_runtime") or []
    if "nvidia-container-toolkit" in runtime:
        url = str(settings.get("container_runtime_nvidia_toolkit_repo_url") or "").rstrip("/")
        # NVIDIA signs the repository's metadata, not the packages (the stage's gpgcheck: false).
        repos.append(_dnf_repo(tid, "nvidia-container-toolkit", url + "/rpm/$basearch",
                               settings.get("container_runtime_nvidia_toolkit_key_url"),
                               settings.get("container_runtime_nvidia_toolkit_key_fingerprint"),
                               "container_runtime_nvidia_toolkit_repo_url", gpgcheck=False, repo_gpgcheck=True))
    if "containerd.io" in runtime:
        # Docker publishes RHEL packages under /linux/rhel (container_runtime's vars/RedHat.yml).
        url = "%s/rhel" % str(settings.get("container_runtime_docker_repo_url") or "").rstrip("/")
        repos.append(_dnf_repo(tid, "docker", url + "/$releasever/$basearch/stable", url + "/gpg",
                               settings.get("container_runtime_docker_repo_key_fingerprint"),
                               "container_runtime_docker_repo_url"))
    repo = host.get("driver_repo") or {}
    if repo.get("kind") == "dnf_repo":
        # NVIDIA's CUDA repository carries the driver as module streams: module_hotfixes makes its
        # packages visible to the resolver without module metadata. Named by its directory
        # (cuda-rhel9-x86_64, cuda-rhel9-sbsa): one per architecture.
        repos.append(_dnf_repo(tid, repo.get("name") or "cuda", repo["url"], settings.get("nvidia_driver_cuda_repo_key_url") or repo["key_url"],
                               settings.get("nvidia_driver_cuda_repo_key_fingerprint") or repo.get("fingerprint"),
                               "nvidia_driver_cuda_repo_base_url", module_hotfixes=True))
    return repos


def dnf_repos_for_builder(repos, key_dir):
    """dnf_bundle's ``repos``: each repository with its key as downloaded into ``key_dir`` (checked
    against its pinned fingerprint before use)."""
    return [{"name": item["name"], "baseurl": item["baseurl"], "gpgkey": "%s/%s.asc" % (key_dir.rstrip("/"), item["name"]),
             "gpgcheck": bool(item.get("gpgcheck", True)), "repo_gpgcheck": bool(item.get("repo_gpgcheck")),
             "module_hotfixes": bool(item.get("module_hotfixes"))}
            for item in repos]


def _new_target(tid, host, os_facts, settings):
    if str(os_facts.get("os_family")) in DNF_FAMILIES:
        repos = dnf_repos(host, settings)
        return {"id": tid, "kind": "dnf", "distribution": os_facts.get("distribution"),
                "version": os_facts.get("distribution_version"), "releasever": tid.rsplit("-", 1)[-1],
                "architectures": [], "hosts": [], "repos": repos, "packages": {}, "third_party": [], "keys": list(repos)}
    return {"id": tid, "kind": "apt", "distribution": os_facts.get("distribution"),
            "version": os_facts.get("distribution_version"), "architectures": [], "hosts": [],
            "sources": apt_sources(os_facts, settings), "packages": {}, "third_party": [], "keys": []}


def plan(hosts, settings_of, root, stages=STAGES):
    """The bundle of a fleet.

    ``hosts``: [{"name", "os": ansible_facts, "gpu": kubegpu_gpu facts, "gpu_node": bool,
    "roles": [kube_control_plane | kube_node | bundle_server]}] (this run's facts, or
    declared_host entries); ``settings_of(name)``: the SETTINGS of that host (set, else
    default, templated); ``stages``: the stages bundled (default all)."""
    targets = {}
    for host in hosts:
        os_facts = host.get("os") or {}
        if str(os_facts.get("os_family")) not in APT_FAMILIES + DNF_FAMILIES:
            raise BundleError("host %s: %s %s (os_family %s): the bundle builds apt (Debian, Ubuntu) and dnf (RHEL,"
                              " Rocky, AlmaLinux) repositories only; fix: leave the host out of the bundle's inventory"
                              % (host.get("name"), os_facts.get("distribution"), os_facts.get("distribution_version"),
                                 os_facts.get("os_family")))
        dnf = str(os_facts.get("os_family")) in DNF_FAMILIES
        tid = target_id(os_facts)
        if not tid:
            raise BundleError("host %s: no distribution release in its facts (distribution %r, release %r)"
                              % (host.get("name"), os_facts.get("distribution"), os_facts.get("distribution_release")))
        settings = settings_of(host.get("name"))
        if _bool(settings.get("kubegpu_offline")):
            raise BundleError("host %s: variable kubegpu_offline: true: the bundle is built from the connected side's"
                              " settings (the upstream URLs); fix: run bundle.yml with the inventory without the"
                              " bundle's mirrors.yml, or with -e kubegpu_offline=false" % host.get("name"))
        if tid not in targets:
            targets[tid] = _new_target(tid, host, os_facts, settings)
        target = targets[tid]
        arch = str(os_facts.get("architecture"))
        if dnf and arch not in ("x86_64", "aarch64"):
            raise BundleError("host %s: architecture %s: the bundle's dnf repositories serve x86_64 and aarch64 only"
                              % (host.get("name"), arch))
        arch = arch if dnf else DPKG_ARCH.get(arch, arch)
        if arch not in target["architectures"]:
            target["architectures"].append(arch)
        target["hosts"].append(host.get("name"))
        by_stage = packages_by_stage(host, settings, root, stages)
        for stage, names in by_stage.items():
            merged = target["packages"].setdefault(stage, [])
            merged.extend(n for n in names if n not in merged)
        for source in (third_party_dnf_repos if dnf else third_party_sources)(host, settings, by_stage):
            if source not in target["third_party"]:
                target["third_party"].append(source)
            if source not in target["keys"]:
                target["keys"].append(source)
            if dnf and source not in target["repos"]:
                target["repos"].append(source)
    for target in targets.values():
        target["package_list"] = sorted(set(n for names in target["packages"].values() for n in names))
    return {"targets": [targets[k] for k in sorted(targets)]}


# --- images and files --------------------------------------------------------------------------

_REGISTRY = re.compile(r"^[^/]*[.:][^/]*$|^localhost$")


def split_image(ref):
    """(registry, path, tag-or-digest) of an image reference by Docker's rule: the first
    component is a registry when it has a "." or ":" or is localhost, else docker.io (and a
    one-component path there is library/<name>)."""
    text = str(ref).strip()
    first, rest = text.partition("/")[::2]
    if rest and _REGISTRY.match(first):
        registry, remainder = first, rest
    else:
        registry, remainder = "docker.io", text
        if "/" not in remainder.split("@", maxsplit=1)[0].split(":", maxsplit=1)[0]:
            remainder = "library/" + remainder
    if "@" in remainder:
        path, version = remainder.partition("@")[::2]
        version = "@" + version
    else:
        path, tag = remainder.rpartition(":")[::2] if ":" in remainder else (remainder, "latest")
        version = ":" + (tag or "latest")
    return registry, path, version


def image_entries(refs):
    """[{"ref", "registry", "path", "version", "source", "archive", "target"}] of the images, in
    order, without repeats (a repeat's explicit ``source`` is kept: bundle_images_extra may say
    where an image of the settings comes from); ``target`` is the path in the bundle's registry
    (no registry host)."""
    entries, seen, paths = [], set(), {}
    for item in refs:
        source = None
        if isinstance(item, dict):
            ref, source = str(item.get("ref") or ""), item.get("source")
        else:
            ref = str(item or "")
        if not ref.strip():
            continue
        if ref in seen:
            # bundle_images_extra may name where a pinned image of the settings comes from.
            if source:
                [entry] = [e for e in entries if e["ref"] == ref]
                entry["source"] = str(source)
            continue
        seen.add(ref)
        registry, path, version = split_image(ref)
        other = paths.get(path + version)
        if other and other != registry:
            raise BundleError("images %s/%s%s and %s/%s%s have the same path in the bundle's registry (its mirrors"
                              " serve /v2/<path>); fix: bundle one of them only (bundle_images_extra), or re-tag it"
                              % (other, path, version, registry, path, version))
        paths[path + version] = registry
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", "%s_%s%s" % (registry, path, version.replace("@", "_")))
        entries.append({"ref": ref, "registry": registry, "path": path, "version": version,
                        "source": str(source) if source else "docker://" + ref,
                        "archive": "images/%s.tar" % safe, "target": path + version})
    return entries


# kubeadm's control-plane images of each Kubernetes minor besides kube-apiserver,
# kube-controller-manager, kube-scheduler and kube-proxy at the version itself
# (kubernetes/cmd/kubeadm/app/constants/constants.go CoreDNSVersion, SupportedEtcdVersion;
# the same values as tests/sim/kubegpu_sim/kubeadm_addons.py).
KUBEADM_IMAGES = {"1.35": {"coredns/coredns": "v1.12.1", "etcd": "3.6.6-0"}}
# Package repositories the stages add: in offline mode apt's only source is the bundle, so
# these are not fetched from (_offline.used leaves them out on apt hosts).
_NOT_FILES = ("gpu_operator_chart_repo_url",)     # a chart repository: charts() below


def kubeadm_images(settings):
    """kubeadm's control-plane images for kubernetes_version from kubernetes_image_repository."""
    version = str(settings.get("kubernetes_version") or "")
    repository = str(settings.get("kubernetes_image_repository") or "registry.k8s.io").rstrip("/")
    extra = KUBEADM_IMAGES.get(".".join(version.split(".")[:2]))
    if not version or extra is None:
        raise BundleError("variable kubernetes_version: %s: the bundle knows kubeadm's images of Kubernetes %s only;"
                          " fix: a kubernetes_version of those, or leave kubernetes out of bundle_stages and add"
                          " the images to bundle_images_extra" % (version, ", ".join(sorted(KUBEADM_IMAGES))))
    refs = ["%s/%s:v%s" % (repository, name, version)
            for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy")]
    return refs + ["%s/%s:%s" % (repository, name, tag) for name, tag in sorted(extra.items())]


# The Linux images the Tigera operator deploys for the Installation and APIServer resources
# roles/calico applies, at calico_version (tigera/operator pkg/components/calico.go: cni,
# kube-controllers, node, typha, pod2daemon-flexvol, apiserver, csi, node-driver-registrar; the
# FIPS and Windows variants are not used). The operator's own image is in its manifest (manifest_images).
CALICO_OPERATOR_COMPONENTS = ("calico/node", "calico/cni", "calico/kube-controllers", "calico/typha",
                              "calico/pod2daemon-flexvol", "calico/apiserver", "calico/csi",
                              "calico/node-driver-registrar")
_IMAGE_LINE = re.compile(r"""^\s*-?\s*image:\s*["']?([^\s"'#]+)""", re.M)


def calico_operator_images(settings, boolean):
    """The Calico component images the operator pulls (operator install method), from
    calico_registry or the operator's default, quay.io."""
    names = _offline.used(settings, boolean)
    if "calico_registry" not in names:
        return []
    registry = str(settings.get("calico_registry") or "quay.io").strip().rstrip("/")
    version = str(settings.get("calico_version") or "")
    return ["%s/%s:%s" % (registry, name, version) for name in CALICO_OPERATOR_COMPONENTS] if version else []


def manifest_images(text):
    """The image references a downloaded manifest names (``image:`` fields), in order, once
    each; templated ones left out."""
    found = []
    for ref in _IMAGE_LINE.findall(str(text or "")):
        if ref not in found and "{{" not in ref and "$" not in ref:
            found.append(ref)
    return found


def images(settings, boolean, kubernetes=True):
    """The images the stages pull with these settings (_offline.used: the image variables in
    use), kubeadm's control-plane images where the kubernetes stage is bundled, and
    bundle_images_extra."""
    names = _offline.used(settings, boolean)
    refs = [settings.get(n) for n in _offline.IMAGE_VARIABLES
            if n in names and n not in _offline.REPOSITORY_VARIABLES and settings.get(n)]
    if kubernetes:
        refs += kubeadm_images(settings)
    refs += calico_operator_images(settings, boolean)
    refs += list(settings.get("bundle_images_extra") or [])
    return image_entries([r for r in refs if r])


def with_manifest_images(images_, texts, extra=(), charts_images=()):
    """The bundle's images and those the downloaded manifests name (Calico's operator, MetalLB's
    controller and speaker, ...) and the charts run (``charts_images``: gpu_operator_images), as
    image_entries; ``extra`` (bundle_images_extra) last, so its sources apply to those too."""
    refs = [{"ref": i["ref"], "source": i["source"]} for i in images_]
    for text in texts:
        refs += manifest_images(text)
    return image_entries(refs + list(charts_images or []) + list(extra or []))


def registries(settings, boolean, images_):
    """The registries containerd pulls from with these settings: of every image variable in use
    (a repository prefix's too: kubeadm's, Calico's) and of the bundled images."""
    names = _offline.used(settings, boolean)
    found = set(i["registry"] for i in images_)
    for name in _offline.IMAGE_VARIABLES:
        value = settings.get(name)
        if name not in names:
            continue
        repository = name in _offline.REPOSITORY_VARIABLES
        if not value and repository:
            value = _offline.REPOSITORY_VARIABLES[name][0]
        registry = _offline.registry_of(value, repository=repository) if value else None
        if registry:
            found.add(registry)
    return sorted(found)


def _file(variable, url):
    name = posixpath.basename(url.split("?", 1)[0]) or "index"
    return {"variable": variable, "url": url, "path": "files/%s/%s" % (variable, name)}


def files(settings, boolean):
    """[{"variable", "url", "path"}]: what the stages download by URL with these settings
    (_offline.used), in the bundle under files/<variable>/; a checksum variable's file too
    ("sha256:<url>"), and bundle_files_extra."""
    names = _offline.used(settings, boolean)
    found = []
    for variable in _offline.URL_VARIABLES:
        url = str(settings.get(variable) or "")
        if variable in names and variable not in _NOT_FILES and "://" in url:
            found.append(_file(variable, url))
    for variable in _offline.CHECKSUM_VARIABLES:
        value = str(settings.get(variable) or "")
        algorithm, _sep, url = value.partition(":")
        if variable in names and "://" in url:
            found.append(dict(_file(variable, url), algorithm=algorithm))
    for index, item in enumerate(settings.get("bundle_files_extra") or []):
        if isinstance(item, dict) and item.get("url"):
            found.append(_file(str(item.get("variable") or "bundle_files_extra_%d" % index), str(item["url"])))
    return found


def charts(settings, boolean):
    """[{"variable", "repo", "name", "version", "path"}]: the Helm chart repositories the stages
    install from with these settings (the GPU Operator's), each bundled as a chart repository
    of its one chart under charts/<variable>/ (an oci:// chart is an image: not here)."""
    names = _offline.used(settings, boolean)
    repo = str(settings.get("gpu_operator_chart_repo_url") or "")
    chart = str(settings.get("gpu_operator_chart") or "gpu-operator")
    if "gpu_operator_chart_repo_url" not in names or "://" not in repo or chart.startswith("oci://"):
        return []
    return [{"variable": "gpu_operator_chart_repo_url", "repo": repo.rstrip("/"), "name": chart,
             "version": str(settings.get("gpu_operator_chart_version") or ""),
             "path": "charts/gpu_operator_chart_repo_url"}]


def chart_entry(index_text, name, version, repo):
    """The entry of chart ``name`` at ``version`` in a chart repository's index.yaml, with
    ``download``: its archive's absolute URL (index URLs may be relative to the repository)."""
    import yaml  # pylint: disable=import-outside-toplevel
    from urllib.parse import urljoin  # pylint: disable=import-outside-toplevel
    try:
        index = yaml.safe_load(index_text) or {}
    except yaml.YAMLError as exc:
        raise BundleError("%s/index.yaml is not a chart repository index: %s" % (repo, exc)) from exc
    wanted = str(version).lstrip("v")
    for entry in (index.get("entries") or {}).get(name) or []:
        if str(entry.get("version") or "").lstrip("v") == wanted and entry.get("urls"):
            found = dict(entry)
            found["download"] = urljoin(repo.rstrip("/") + "/", str(entry["urls"][0]))
            found["filename"] = posixpath.basename(found["download"].split("?", 1)[0])
            return found
    raise BundleError("variable gpu_operator_chart_version: chart %s %s is not in %s/index.yaml; fix: a version the"
                      " repository has (helm search repo %s --versions)" % (name, version, repo, name))


def chart_index(entry):
    """index.yaml of the bundle's chart repository: the one entry, its archive beside it."""
    import yaml  # pylint: disable=import-outside-toplevel
    item = dict((k, v) for k, v in entry.items() if k not in ("download", "filename"))
    item["urls"] = [entry["filename"]]
    return yaml.safe_dump({"apiVersion": "v1", "entries": {entry["name"]: [item]}}, sort_keys=True,
                          default_flow_style=False)


# The GPU Operator's operands (NVIDIA/gpu-operator v25.10.1, deployments/gpu-operator): each
# top-level value with ``repository``, ``image`` and ``version`` is an image the Operator or the
# chart runs, named as api/nvidia/v1/clusterpolicy_types.go imagePath does (repository/image:version,
# "@" before a sha256: version, the image alone when repository and version are empty); an
# empty version of these is the chart's appVersion (templates/_helpers.tpl, clusterpolicy.yaml).
# A component with ``enabled: false`` runs nothing; the sandbox ones only with
# sandboxWorkloads.enabled (values.yaml "sandboxWorkloads"). The driver's (GDS's, GDRCopy's, the
# vGPU manager's) image tag gets the GPU node's OS tag, <ID><VERSION_ID> of its os-release as NFD labels it, and with precompiled
# containers the kernel before it (controllers/object_controls.go kernelFullVersion,
# resolveDriverTag). NFD (nfd.enabled) is the node-feature-discovery subchart: its image.repository,
# and image.tag or else that chart's appVersion.
GPU_OPERATOR_APP_VERSION = ("operator", "validator", "nodeStatusExporter")
# The operands whose tag gets the node's OS tag (resolveDriverTag's DriverSpec, GPUDirectStorageSpec,
# GDRCopySpec, VGPUManagerSpec); only the driver has precompiled containers.
GPU_OPERATOR_PER_OS = ("driver", "gds", "gdrcopy", "vgpuManager")
GPU_OPERATOR_SANDBOX = ("vgpuManager", "vgpuDeviceManager", "vfioManager", "kataManager", "sandboxDevicePlugin",
                        "ccManager")
# The Ansible facts of a GPU node the driver container's tag is made of.
OS_FACT_KEYS = ("distribution", "distribution_version", "distribution_major_version", "kernel", "architecture")
# os-release ID of Ansible's distribution names (VERSION_ID: Debian's major release, else the version).
OS_RELEASE_ID = {"Ubuntu": "ubuntu", "RedHat": "rhel", "Rocky": "rocky", "AlmaLinux": "almalinux",
                 "CentOS": "centos", "OracleLinux": "ol", "Debian": "debian", "Amazon": "amzn", "SLES": "sles"}


def _merged(base, over):
    """``over`` merged into ``base``, recursively (helm's -f over the chart's values)."""
    found = dict(base or {})
    for key, value in (over or {}).items():
        found[key] = _merged(found[key], value) if isinstance(value, dict) and isinstance(found.get(key), dict) \
            else value
    return found


def _chart_files(archive, prefix=""):
    """{path in the archive: parsed YAML} of every Chart.yaml and values.yaml of a chart archive
    (.tgz bytes), its subcharts' included, unpacked or packed (charts/<name>-<version>.tgz, as
    `helm dependency build` leaves them: read as if unpacked beside it)."""
    import io  # pylint: disable=import-outside-toplevel
    import tarfile  # pylint: disable=import-outside-toplevel
    import yaml  # pylint: disable=import-outside-toplevel
    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = posixpath.basename(member.name)
                if not member.isfile():
                    continue
                if name in ("Chart.yaml", "values.yaml"):
                    found[prefix + member.name] = yaml.safe_load(tar.extractfile(member).read()) or {}
                elif name.endswith(".tgz") and posixpath.basename(posixpath.dirname(member.name)) == "charts":
                    found.update(_chart_files(tar.extractfile(member).read(),
                                              prefix + posixpath.dirname(member.name) + "/"))
    except (tarfile.TarError, OSError, yaml.YAMLError) as exc:
        raise BundleError("the GPU Operator's chart archive cannot be read: %s" % exc) from exc
    return found


def _image_path(spec, app_version=""):
    repository = str(spec.get("repository") or "").strip().rstrip("/")
    image = str(spec.get("image") or "").strip()
    version = str(spec.get("version") or "").strip() or app_version
    if not image:
        return None
    if not repository and not version:
        return image
    if not repository:
        return None
    return "%s/%s%s%s" % (repository, image, "@" if version.startswith("sha256:") else ":", version)


def os_tag(facts):
    """The GPU Operator's OS tag of a host (<os-release ID><VERSION_ID>, e.g. ubuntu22.04, rhel9.4,
    debian12) from its Ansible facts, or None without them."""
    facts = facts or {}
    distribution = str(facts.get("distribution") or "")
    if not distribution:
        return None
    release_id = OS_RELEASE_ID.get(distribution, distribution.lower())
    version = str(facts.get("distribution_version") or "")
    if distribution == "Debian":
        version = str(facts.get("distribution_major_version") or version.split(".", maxsplit=1)[0])
    return release_id + version


def gpu_operator_images(archive, values, gpu_nodes_os, boolean_=boolean):
    """The images the GPU Operator's chart runs with ``values`` (what the gpu_operator stage
    gives helm, merged over the chart's own values.yaml) on GPU nodes of ``gpu_nodes_os`` (their
    Ansible facts: distribution, distribution_version, kernel): the operator, its init container,
    every enabled operand (the driver with each node's tag) and NFD's image."""
    files = _chart_files(archive)
    charts = sorted((path for path in files if path.endswith("/Chart.yaml")), key=lambda p: p.count("/"))
    if not charts:
        raise BundleError("the GPU Operator's chart archive has no Chart.yaml")
    top = posixpath.dirname(charts[0])
    app_version = str(files[charts[0]].get("appVersion") or "")
    merged = _merged(files.get(top + "/values.yaml") or {}, values or {})

    def enabled(spec, default=True):
        value = spec.get("enabled", default) if isinstance(spec, dict) else default
        return bool(_gpu_sharing.flag_value(value, boolean_, default))

    sandbox = enabled(merged.get("sandboxWorkloads"), False)
    refs = []
    for name, spec in merged.items():
        if (not isinstance(spec, dict) or name == "node-feature-discovery" or not enabled(spec)
                or (name in GPU_OPERATOR_SANDBOX and not sandbox)):
            continue
        if isinstance(spec.get("image"), str) and name in GPU_OPERATOR_PER_OS:
            refs += _per_os_images(spec, gpu_nodes_os, boolean_, precompiled_allowed=name == "driver")
        elif isinstance(spec.get("image"), str):
            refs.append(_image_path(spec, app_version if name in GPU_OPERATOR_APP_VERSION else ""))
        # Images of a component's own helpers (the operator's init container, the driver manager).
        refs += [_image_path(sub) for sub in spec.values() if isinstance(sub, dict) and isinstance(sub.get("image"), str)]
    if enabled(merged.get("nfd")):
        for path in charts[1:]:
            chart = files[path]
            if chart.get("name") != "node-feature-discovery":
                continue
            image = _merged((files.get(posixpath.dirname(path) + "/values.yaml") or {}).get("image") or {},
                            (merged.get("node-feature-discovery") or {}).get("image") or {})
            if image.get("repository"):
                refs.append("%s:%s" % (str(image["repository"]).rstrip("/"),
                                       image.get("tag") or chart.get("appVersion") or chart.get("version")))
    return [ref for ref in dict.fromkeys(refs) if ref]


def _per_os_images(spec, gpu_nodes_os, boolean_, precompiled_allowed=True):
    """The image of a per-OS operand (the driver, GDS, GDRCopy, the vGPU manager) for every GPU
    node: <version>-<os tag>, or with precompiled driver containers <version>-<kernel>-<os tag>;
    a digest as it is."""
    base = _image_path(spec)
    if not base or "sha256:" in base:
        return [base]
    precompiled = precompiled_allowed and bool(
        _gpu_sharing.flag_value(spec.get("usePrecompiled", False), boolean_, False))
    refs = []
    for facts in gpu_nodes_os or []:
        tag = os_tag(facts)
        if not tag:
            continue
        kernel = str((facts or {}).get("kernel") or "")
        if precompiled and not kernel:
            continue
        refs.append("%s-%s%s" % (base, (kernel + "-") if precompiled else "", tag))
    return refs


def mirrors(bundle_plan, images_, files_, registries_=None, charts_=()):
    """The variables that point every stage at the bundle (mirrors.yml), as templates of
    kubegpu_bundle_url / kubegpu_bundle_registry, which the site sets: each downloaded file's
    variable, containerd's mirror of every registry pulled from, the apt repository of each
    distribution release (apt) and of each major release (dnf)."""
    values = {"kubegpu_offline": True}
    for item in files_:
        url = "{{ kubegpu_bundle_url }}/%s" % item["path"]
        values[item["variable"]] = "%s:%s" % (item["algorithm"], url) if item.get("algorithm") else url
    for item in charts_:
        values[item["variable"]] = "{{ kubegpu_bundle_url }}/%s" % item["path"]
    found = sorted(set(list(registries_ or []) + [i["registry"] for i in images_]))
    values["container_runtime_registry_mirrors"] = [
        {"registry": registry, "mirrors": [{"host": "http://{{ kubegpu_bundle_registry }}"}]} for registry in found]
    values["kubegpu_bundle_apt"] = dict((t["id"], "{{ kubegpu_bundle_url }}/apt/%s" % t["id"])
                                        for t in bundle_plan["targets"] if t.get("kind", "apt") == "apt")
    values["kubegpu_bundle_dnf"] = dict((t["id"], "{{ kubegpu_bundle_url }}/dnf/%s" % t["id"])
                                        for t in bundle_plan["targets"] if t.get("kind") == "dnf")
    return values


def package_versions(results):
    """{target id: {package: version}} of the repositories built (apt_bundle's and dnf_bundle's
    results, looped over the targets): the manifest's record of what each repository holds."""
    found = {}
    for result in results or []:
        target = (result.get("item") or {}).get("id")
        if target and not result.get("skipped"):
            found[target] = dict((p["name"], p["version"]) for p in sorted(
                result.get("packages") or [], key=lambda p: (p["name"], p.get("architecture") or "")))
    return found


def source_lines(third_party, key_dir):
    """The apt source lines of the third-party repositories, each signed by its key in
    ``key_dir`` (checked against its pinned fingerprint before use)."""
    return ["deb [signed-by=%s/%s.asc] %s %s" % (key_dir.rstrip("/"), item["name"], item["url"], item["suite"])
            for item in third_party]


MIRRORS_HEADER = """\
# kubegpu offline bundle: the variables that point every stage at the bundle (docs/airgap.md).
# Put this file in the cluster's inventory (group_vars/all/kubegpu_bundle.yml, or -e @mirrors.yml)
# and set where the bundle is served on the site:
#   kubegpu_bundle_url: http://<bundle host>:8080
#   kubegpu_bundle_registry: <bundle host>:5000
"""


def mirrors_document(mirrors, public_key, images):
    """mirrors.yml: the mirrors mapping and the bundle's public key (apt trusts the bundle's
    repository with it; it travels with the inventory, not over the site's network). The
    images are listed in a comment (the bundle's manifest lists them for the server)."""
    import yaml  # pylint: disable=import-outside-toplevel
    data = dict(mirrors)
    data["kubegpu_bundle_apt_key"] = public_key
    # The registries of every bundled image (those named in downloaded manifests too).
    listed_registries = [m["registry"] for m in data.get("container_runtime_registry_mirrors") or []]
    for registry in sorted(set(i["registry"] for i in images) - set(listed_registries)):
        data.setdefault("container_runtime_registry_mirrors", []).append(
            {"registry": registry, "mirrors": [{"host": "http://{{ kubegpu_bundle_registry }}"}]})
    listed = "".join("#   %s -> <kubegpu_bundle_registry>/%s\n" % (i["ref"], i["target"]) for i in images)
    return (MIRRORS_HEADER + ("# Images in the bundle's registry:\n" + listed if listed else "")
            + yaml.safe_dump(data, sort_keys=True, default_flow_style=False, width=1000))
