# SPDX-License-Identifier: Apache-2.0
"""The offline bundle's decisions (plugins/plugin_utils/_bundle.py): targets from facts or declared
combinations, each stage's packages from the stages' own data and driver decision, images and files, the
mirrors; and its manifest (plugins/module_utils/_bundle_manifest.py)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.module_utils import _bundle_manifest as manifest
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _bundle
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _offline
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

ROOT = Path(__file__).resolve().parents[4]
DEFAULTS = ps.settings({}, _bundle.SETTINGS, str(ROOT))
DEBIAN_12 = {"distribution": "Debian", "distribution_version": "12", "distribution_major_version": "12",
             "distribution_release": "bookworm", "os_family": "Debian", "architecture": "x86_64",
             "kernel": "6.1.0-28-amd64"}
UBUNTU_2404 = {"distribution": "Ubuntu", "distribution_version": "24.04", "distribution_major_version": "24",
               "distribution_release": "noble", "os_family": "Debian", "architecture": "aarch64",
               "kernel": "6.8.0-51-generic"}
H100 = {"count": 1, "source": "sysfs", "driver": {"loaded": False, "install_hints": []},
        "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "architecture": "hopper", "pci_bus_id": "0000:17:00.0"}]}


def _host(name, os_facts=None, gpu=None, roles=("kube_node",)):
    return {"name": name, "os": dict(os_facts or DEBIAN_12), "gpu": gpu or {"count": 0, "gpus": []},
            "gpu_node": bool(gpu), "roles": list(roles)}


def _plan(hosts, stages=_bundle.STAGES, **settings):
    return _bundle.plan(hosts, lambda _name: dict(DEFAULTS, **settings), str(ROOT), stages)


def _role_vars(role, name):
    return yaml.safe_load((ROOT / "roles" / role / "vars" / ("%s.yml" % name)).read_text())


# --- targets ------------------------------------------------------------------------------------

def test_one_target_per_distribution_release_with_its_architectures_and_hosts():
    plan = _plan([_host("cp1"), _host("w1"), _host("arm1", UBUNTU_2404)])
    assert [t["id"] for t in plan["targets"]] == ["debian-bookworm", "ubuntu-noble"]
    debian, ubuntu = plan["targets"]
    assert debian["hosts"] == ["cp1", "w1"] and debian["architectures"] == ["amd64"]
    assert ubuntu["architectures"] == ["arm64"]
    assert debian["sources"][0] == "deb http://deb.debian.org/debian bookworm main contrib non-free non-free-firmware"
    assert "deb http://deb.debian.org/debian-security bookworm-security" in debian["sources"][2]
    assert ubuntu["sources"][0] == "deb http://ports.ubuntu.com/ubuntu-ports noble main restricted universe multiverse"


def test_the_stages_packages_come_from_the_roles_own_vars_files():
    plan = _plan([_host("cp1")], stages=("os_prereqs", "container_runtime"))
    packages = plan["targets"][0]["packages"]
    os_vars = _role_vars("os_prereqs", "Debian")
    assert packages["os_prereqs"] == os_vars["_os_prereqs_packages"] + ["chrony"]
    runtime = _role_vars("container_runtime", "Debian")
    assert packages["container_runtime"] == runtime["_container_runtime_tomlkit_packages"] + ["containerd"]
    assert "nvidia-container-toolkit" not in plan["targets"][0]["package_list"]


def test_a_gpu_node_gets_the_driver_stages_packages_and_its_kernel_headers():
    plan = _plan([_host("gpu1", gpu=H100)], stages=("nvidia_driver", "container_runtime"))
    packages = plan["targets"][0]["packages"]
    # Debian 12's non-free driver (R535, the one branch there) with the DKMS module and the running kernel's headers.
    # As stage 3 asks apt for them: the branch as a version pattern.
    assert "nvidia-kernel-dkms=535.*" in packages["nvidia_driver"] and "libcuda1=535.*" in packages["nvidia_driver"]
    assert "linux-headers-6.1.0-28-amd64" in packages["nvidia_driver"]
    assert "nvidia-container-toolkit" in packages["container_runtime"]
    [toolkit] = plan["targets"][0]["third_party"]
    assert _bundle.source_lines([toolkit], "/k") == [
        "deb [signed-by=/k/nvidia-container-toolkit.asc] https://nvidia.github.io/libnvidia-container/stable/deb/$(ARCH) /"]
    assert toolkit["fingerprint"] == DEFAULTS["container_runtime_nvidia_toolkit_key_fingerprint"]
    # The driver from NVIDIA's CUDA repository: that repository, with its pinned key.
    cuda = _plan([_host("gpu1", gpu=H100)], stages=("nvidia_driver",), nvidia_driver_source="cuda")
    [repo] = cuda["targets"][0]["third_party"]
    assert repo["url"].startswith("https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64")
    assert repo["fingerprint"] and repo["key_url"].startswith(repo["url"])
    # container mode: the GPU Operator's driver container, no host package
    container = _plan([_host("gpu1", gpu=H100)], stages=("nvidia_driver",), nvidia_driver_mode="container")
    assert container["targets"][0]["packages"] == {}


def test_the_driver_stages_refusal_names_the_host():
    blackwell = dict(H100, gpus=[dict(H100["gpus"][0], name="NVIDIA B200", architecture="blackwell")])
    with pytest.raises(_bundle.BundleError, match="host gpu1: "):
        _plan([_host("gpu1", gpu=blackwell)], stages=("nvidia_driver",))


def test_kubernetes_packages_are_pinned_and_come_from_pkgs_k8s_io():
    # The settings as the action plugin hands them over: the role defaults templated.
    plan = _plan([_host("cp1")], stages=("kubernetes",), kubernetes_repo_url="https://pkgs.k8s.io/core:/stable:/v1.35",
                 kubernetes_repo_key_url="https://pkgs.k8s.io/core:/stable:/v1.35/deb/Release.key")
    target = plan["targets"][0]
    assert target["packages"]["kubernetes"] == ["kubelet=1.35.4-1.1", "kubeadm=1.35.4-1.1", "kubectl=1.35.4-1.1"]
    [source] = target["third_party"]
    assert source["url"] == "https://pkgs.k8s.io/core:/stable:/v1.35/deb/" and source["suite"] == "/"
    assert _bundle.source_lines([source], "/k") == [
        "deb [signed-by=/k/kubernetes.asc] https://pkgs.k8s.io/core:/stable:/v1.35/deb/ /"]
    local = _plan([_host("cp1")], stages=("kubernetes",), kubernetes_package_source="local")
    assert local["targets"][0]["third_party"] == [] and "kubernetes" not in local["targets"][0]["packages"]


def test_the_bundle_server_gets_its_registry_packages_only():
    plan = _plan([_host("server", roles=("bundle_server",)), _host("cp1")])
    target = plan["targets"][0]
    assert target["packages"]["bundle_server"] == ["docker-registry", "skopeo"]
    assert target["hosts"] == ["server", "cp1"]
    # Debian's docker-registry serves the images: a RHEL-family host cannot be the server.
    with pytest.raises(_bundle.BundleError, match=r"host rs: group kubegpu_bundle_server: Rocky 9.4 cannot serve"
                       r" the bundle .* fix: make a Debian or Ubuntu host the bundle server"):
        _plan([_host("rs", ROCKY_9, roles=("bundle_server",))])


def test_docker_containerd_comes_from_dockers_repository():
    plan = _plan([_host("cp1")], stages=("container_runtime",), container_runtime_containerd_source="docker")
    [docker] = plan["targets"][0]["third_party"]
    assert _bundle.source_lines([docker], "/k") == [
        "deb [signed-by=/k/docker.asc] https://download.docker.com/linux/debian bookworm stable"]


def test_an_offline_inventory_is_refused_for_building():
    with pytest.raises(_bundle.BundleError, match="variable kubegpu_offline: true"):
        _plan([_host("cp1")], kubegpu_offline=True)


# --- RHEL family: dnf targets ----------------------------------------------------------------------

ROCKY_9 = {"distribution": "Rocky", "distribution_version": "9.4", "distribution_major_version": "9",
           "distribution_release": "Blue Onyx", "os_family": "RedHat", "architecture": "x86_64",
           "kernel": "5.14.0-427.13.1.el9_4.x86_64"}
ALMA_9_ARM = {"distribution": "AlmaLinux", "distribution_version": "9.5", "distribution_major_version": "9",
              "distribution_release": "Teal Serval", "os_family": "RedHat", "architecture": "aarch64",
              "kernel": "5.14.0-503.11.1.el9_5.aarch64"}
RHEL_REPOS = [{"name": "baseos", "baseurl": "https://satellite.site/rhel-9-for-$basearch-baseos-rpms",
               "key_url": "https://satellite.site/RPM-GPG-KEY-redhat-release", "fingerprint": "AB CD EF 01"},
              {"name": "appstream", "baseurl": "https://satellite.site/rhel-9-for-$basearch-appstream-rpms",
               "key_url": "https://satellite.site/RPM-GPG-KEY-redhat-release", "fingerprint": "ABCDEF01"}]
# The settings as the action plugin hands them over: the role defaults templated.
K8S = {"kubernetes_repo_url": "https://pkgs.k8s.io/core:/stable:/v1.35"}


def test_a_rocky_host_is_a_dnf_target_of_its_major_release():
    plan = _plan([_host("r1", ROCKY_9)], **K8S)
    [target] = plan["targets"]
    assert (target["id"], target["kind"], target["releasever"], target["architectures"], target["hosts"]) == \
        ("rocky-9", "dnf", "9", ["x86_64"], ["r1"])
    assert "sources" not in target
    repos = dict((r["name"], r) for r in target["repos"])
    # Rocky's own BaseOS, AppStream and CRB, and EPEL (python3-tomlkit), each with its pinned key.
    assert repos["rocky-9-baseos"]["baseurl"] == "https://dl.rockylinux.org/pub/rocky/$releasever/BaseOS/$basearch/os/"
    assert repos["rocky-9-crb"]["baseurl"] == "https://dl.rockylinux.org/pub/rocky/$releasever/CRB/$basearch/os/"
    assert repos["rocky-9-baseos"]["key_url"] == "https://dl.rockylinux.org/pub/rocky/RPM-GPG-KEY-Rocky-9"
    assert repos["rocky-9-baseos"]["fingerprint"] == "21CB256AE16FC54C6E652949702D426D350D275D"
    assert repos["rocky-9-epel"]["baseurl"] == "https://dl.fedoraproject.org/pub/epel/$releasever/Everything/$basearch/"
    assert repos["rocky-9-epel"]["fingerprint"] == "FF8AD1344597106ECE813B918A3872BF3228467C"
    assert all(r["gpgcheck"] for n, r in repos.items() if n != "rocky-9-nvidia-container-toolkit")
    # The packages of the roles' RedHat vars files, kubernetes' in dnf's name-version form from pkgs.k8s.io.
    packages = target["packages"]
    assert packages["os_prereqs"] == _role_vars("os_prereqs", "RedHat")["_os_prereqs_packages"] + ["chrony"]
    assert packages["kubernetes"] == ["kubelet-1.35.4", "kubeadm-1.35.4", "kubectl-1.35.4"]
    assert repos["rocky-9-kubernetes"]["baseurl"] == "https://pkgs.k8s.io/core:/stable:/v1.35/rpm/"
    assert repos["rocky-9-kubernetes"]["key_url"] == "https://pkgs.k8s.io/core:/stable:/v1.35/rpm/repodata/repomd.xml.key"
    assert repos["rocky-9-kubernetes"]["fingerprint"] == DEFAULTS["kubernetes_repo_key_fingerprint"]
    # Every repository's key is downloaded and checked (bundle.yml's loop over "keys").
    assert [k["name"] for k in target["keys"]] == [r["name"] for r in target["repos"]]
    # dnf_bundle's repos: the key file downloaded on the builder.
    builder = _bundle.dnf_repos_for_builder(target["repos"], "/b/.work/keys/")
    assert builder[0] == {"name": "rocky-9-baseos", "baseurl": repos["rocky-9-baseos"]["baseurl"],
                          "gpgkey": "/b/.work/keys/rocky-9-baseos.asc", "gpgcheck": True, "repo_gpgcheck": False,
                          "module_hotfixes": False}
    # pkgs.k8s.io signs packages and metadata (the RedHat block's gpgcheck and repo_gpgcheck).
    assert (repos["rocky-9-kubernetes"]["gpgcheck"], repos["rocky-9-kubernetes"]["repo_gpgcheck"]) == (True, True)


def test_a_rocky_gpu_host_gets_the_driver_from_nvidias_rhel_repository():
    plan = _plan([_host("g1", ROCKY_9, gpu=H100)], stages=("nvidia_driver", "container_runtime"),
                 container_runtime_containerd_source="docker")
    [target] = plan["targets"]
    driver = target["packages"]["nvidia_driver"]
    # The module profile the stage installs (@nvidia-driver:<stream>/<profile>) as its packages, by name.
    assert not [n for n in target["package_list"] if n.startswith("@")]
    assert "nvidia-driver" in driver and "kmod-nvidia-open-dkms" in driver and "nvidia-persistenced" in driver
    assert "kernel-devel-5.14.0-427.13.1.el9_4.x86_64" in driver
    runtime = _role_vars("container_runtime", "RedHat")
    assert target["packages"]["container_runtime"] == (
        runtime["_container_runtime_tomlkit_packages"] + ["containerd.io"]
        + runtime["_container_runtime_nvidia_toolkit_packages"])
    # The stages' version locks need dnf's plugin (kubegpu.cluster.packages installs it first).
    assert target["packages"]["holds"] == ["python3-dnf-plugin-versionlock"]
    third = dict((r["name"], r) for r in target["third_party"])
    assert sorted(third) == ["rocky-9-cuda-rhel9-x86_64", "rocky-9-docker", "rocky-9-nvidia-container-toolkit"]
    cuda = third["rocky-9-cuda-rhel9-x86_64"]
    assert cuda["baseurl"] == "https://developer.download.nvidia.com/compute/cuda/repos/rhel9/x86_64/"
    assert cuda["fingerprint"] == "610C7B14E068A878070DA4E99CD0A493D42D0685" and cuda["module_hotfixes"]
    assert third["rocky-9-docker"]["baseurl"] == "https://download.docker.com/linux/rhel/$releasever/$basearch/stable"
    assert third["rocky-9-docker"]["key_url"] == "https://download.docker.com/linux/rhel/gpg"
    toolkit = third["rocky-9-nvidia-container-toolkit"]
    assert toolkit["baseurl"] == "https://nvidia.github.io/libnvidia-container/stable/rpm/$basearch"
    # NVIDIA signs the metadata only (the stage's gpgcheck: false, repo_gpgcheck: true).
    assert (toolkit["gpgcheck"], toolkit["repo_gpgcheck"]) == (False, True)
    assert all(r in target["repos"] for r in target["third_party"])
    # Without a GPU: no driver, no toolkit, no CUDA repository.
    cpu = _plan([_host("r1", ROCKY_9)], stages=("nvidia_driver", "container_runtime"),
                container_runtime_containerd_source="docker")["targets"][0]
    assert "nvidia_driver" not in cpu["packages"] and "nvidia-container-toolkit" not in cpu["package_list"]
    assert [r["name"] for r in cpu["third_party"]] == ["rocky-9-docker"]


def test_an_almalinux_aarch64_host_and_its_mirror():
    plan = _plan([_host("a1", ALMA_9_ARM)], stages=("os_prereqs", "nfs_client"),
                 bundle_almalinux_mirror="http://mirror.site/almalinux/", nfs_client_storage_class_enabled=True)
    [target] = plan["targets"]
    assert (target["id"], target["architectures"], target["releasever"]) == ("almalinux-9", ["aarch64"], "9")
    repos = dict((r["name"], r) for r in target["repos"])
    assert sorted(repos) == ["almalinux-9-appstream", "almalinux-9-baseos", "almalinux-9-crb", "almalinux-9-epel"]
    assert repos["almalinux-9-appstream"]["baseurl"] == "http://mirror.site/almalinux/$releasever/AppStream/$basearch/os/"
    assert repos["almalinux-9-baseos"]["key_url"] == "http://mirror.site/almalinux/RPM-GPG-KEY-AlmaLinux-9"
    assert repos["almalinux-9-baseos"]["fingerprint"] == "BF18AC2876178908D6E71267D36CB86CB86B3716"
    assert repos["almalinux-9-baseos"]["variable"] == "bundle_almalinux_mirror"
    # nfs_client's package of the RedHat family (its vars/main.yml).
    assert target["packages"]["nfs_client"] == ["nfs-utils"]


def test_a_rhel_target_needs_the_subscriptions_repositories():
    host = _bundle.declared_host({"distribution": "RedHat", "version": "9.4", "architecture": "x86_64"}, 0)
    assert _bundle.target_id(host["os"]) == "redhat-9"
    # Written as people write it: Ansible's name.
    assert _bundle.declared_host({"distribution": "RHEL", "version": "9.4"}, 0)["os"] == host["os"]
    assert _bundle.declared_host({"distribution": "rocky", "version": "9"}, 0)["os"]["distribution"] == "Rocky"
    with pytest.raises(_bundle.BundleError, match=r"host bundle_targets\[0\]: RHEL 9: variable bundle_rhel_repos is empty:"
                       r" RHEL's repositories need a subscription.*fix: bundle_rhel_repos: \[\{name: baseos"):
        _plan([host], stages=("os_prereqs",))
    with pytest.raises(_bundle.BundleError, match=r"variable bundle_rhel_repos: entry 1 .* needs name, baseurl, key_url"
                       r" and fingerprint"):
        _plan([host], stages=("os_prereqs",), bundle_rhel_repos=[{"name": "baseos"}])
    [target] = _plan([host], stages=("os_prereqs",), bundle_rhel_repos=RHEL_REPOS)["targets"]
    assert [r["name"] for r in target["repos"]] == ["redhat-9-baseos", "redhat-9-appstream", "redhat-9-epel"]
    assert target["repos"][0]["fingerprint"] == "ABCDEF01" and target["repos"][0]["variable"] == "bundle_rhel_repos"
    assert target["repos"][0]["baseurl"] == RHEL_REPOS[0]["baseurl"]


def test_other_rhel_family_releases_are_refused_by_name():
    rocky8 = dict(ROCKY_9, distribution_version="8.10", distribution_major_version="8")
    with pytest.raises(_bundle.BundleError, match="host r8: Rocky 8.10: the bundle knows the dnf repositories of Rocky"
                       " Linux and AlmaLinux 9"):
        _plan([_host("r8", rocky8)])
    with pytest.raises(_bundle.BundleError, match="host s1: SLES 15.5 .os_family Suse.: the bundle builds apt"):
        _plan([_host("s1", dict(ROCKY_9, distribution="SLES", distribution_version="15.5", os_family="Suse"))])


def test_a_mixed_fleet_gets_an_apt_and_a_dnf_target_and_mirrors_for_both():
    plan = _plan([_host("d1"), _host("r1", ROCKY_9), _host("r2", dict(ROCKY_9, architecture="aarch64"))],
                 stages=("os_prereqs", "kubernetes"), **K8S)
    debian, rocky = plan["targets"]
    assert (debian["id"], debian["kind"], rocky["id"], rocky["kind"]) == ("debian-bookworm", "apt", "rocky-9", "dnf")
    assert rocky["architectures"] == ["x86_64", "aarch64"] and rocky["hosts"] == ["r1", "r2"]
    assert "kubelet=1.35.4-1.1" in debian["package_list"] and "kubelet-1.35.4" in rocky["package_list"]
    # One key per repository name across the targets (the keys' files on the builder).
    names = [k["name"] for t in plan["targets"] for k in t["keys"]]
    assert len(names) == len(set(names))
    mirrors = _bundle.mirrors(plan, [], [])
    assert mirrors["kubegpu_bundle_apt"] == {"debian-bookworm": "{{ kubegpu_bundle_url }}/apt/debian-bookworm"}
    assert mirrors["kubegpu_bundle_dnf"] == {"rocky-9": "{{ kubegpu_bundle_url }}/dnf/rocky-9"}
    # What the bundle writes is what preflight accepts on a Rocky host; another release is refused.
    site = dict(DEFAULTS, kubegpu_bundle_url="http://10.0.0.5:8080", kubegpu_bundle_registry="10.0.0.5:5000",
                kubegpu_bundle_apt_key="-----BEGIN PGP PUBLIC KEY BLOCK-----")
    site.update(json.loads(json.dumps(mirrors).replace("{{ kubegpu_bundle_url }}", "http://10.0.0.5:8080")))
    bundle_records = [p["variable"] for p in _offline.problems(site, boolean, ROCKY_9)
                      if p["variable"].startswith("kubegpu_bundle")]
    assert bundle_records == []
    assert [p["variable"] for p in _offline.problems(site, boolean, ALMA_9_ARM)
            if p["variable"].startswith("kubegpu_bundle")] == ["kubegpu_bundle_dnf"]


def test_package_versions_of_apt_and_dnf_results():
    apt = [{"item": {"id": "debian-bookworm"}, "packages": [{"name": "jq", "version": "1.6-2.1", "architecture": "amd64"}]}]
    dnf = [{"item": {"id": "rocky-9"}, "packages": [{"name": "jq", "version": "1.6-17.el9", "architecture": "x86_64"}]},
           {"item": {"id": "almalinux-9"}, "skipped": True}]
    assert _bundle.package_versions(apt + dnf) == {"debian-bookworm": {"jq": "1.6-2.1"}, "rocky-9": {"jq": "1.6-17.el9"}}


def test_declared_targets_stand_for_hosts_that_cannot_be_reached():
    host = _bundle.declared_host({"distribution": "Debian", "version": "12", "architecture": "x86_64",
                                  "kernel": "6.1.0-28-amd64", "gpus": ["hopper"]}, 0)
    assert _bundle.target_id(host["os"]) == "debian-bookworm" and host["gpu_node"]
    plan = _plan([host], stages=("nvidia_driver",))
    assert "linux-headers-6.1.0-28-amd64" in plan["targets"][0]["package_list"]
    with pytest.raises(_bundle.BundleError, match="bundle_targets: entry 2"):
        _bundle.declared_host({"distribution": "Debian"}, 1)


# --- images and files ------------------------------------------------------------------------------

@pytest.mark.parametrize("ref, expected", [
    ("registry.k8s.io/pause:3.10.1", ("registry.k8s.io", "pause", ":3.10.1")),
    ("nvcr.io/nvidia/k8s-device-plugin:v0.18.0", ("nvcr.io", "nvidia/k8s-device-plugin", ":v0.18.0")),
    ("busybox", ("docker.io", "library/busybox", ":latest")),
    ("calico/node:v3.30.0", ("docker.io", "calico/node", ":v3.30.0")),
    ("localhost:5000/x/y@sha256:abc", ("localhost:5000", "x/y", "@sha256:abc")),
])
def test_split_image(ref, expected):
    assert _bundle.split_image(ref) == expected


# The settings as the action plugin hands them over: role defaults templated.
RENDERED = dict(DEFAULTS, calico_operator_manifest_url="https://raw.githubusercontent.com/projectcalico/calico/v3.31.7/"
                "manifests/tigera-operator.yaml",
                metallb_manifest_url="https://raw.githubusercontent.com/metallb/metallb/v0.16.1/config/manifests/"
                "metallb-native.yaml",
                nvidia_device_plugin_image="nvcr.io/nvidia/k8s-device-plugin:v0.20.1")


def test_images_of_the_settings_with_archives_and_registry_paths():
    entries = _bundle.images(RENDERED, boolean)
    refs = [e["ref"] for e in entries]
    assert refs[0] == DEFAULTS["container_runtime_sandbox_image"]
    assert DEFAULTS["validate_smoke_image"] in refs and "nvcr.io/nvidia/k8s-device-plugin:v0.20.1" in refs
    # kubeadm's control-plane images of kubernetes_version (constants.go of 1.35)
    assert "registry.k8s.io/kube-apiserver:v1.35.4" in refs and "registry.k8s.io/etcd:3.6.6-0" in refs
    assert "registry.k8s.io/coredns/coredns:v1.12.1" in refs
    pause = entries[0]
    assert pause["target"] == "pause:3.10.1" and pause["archive"] == "images/registry.k8s.io_pause_3.10.1.tar"
    assert pause["source"] == "docker://registry.k8s.io/pause:3.10.1"
    extra = _bundle.images(dict(RENDERED, bundle_images_extra=[{"ref": "kubegpu.test/a:1", "source": "docker-archive:/a.tar"}]),
                           boolean, kubernetes=False)
    assert extra[-1]["source"] == "docker-archive:/a.tar" and extra[-1]["target"] == "a:1"
    assert not any("kube-apiserver" in e["ref"] for e in extra)
    # bundle_images_extra says where an image of the settings comes from (an archive built here).
    local = _bundle.images(dict(RENDERED, bundle_images_extra=[
        {"ref": "registry.k8s.io/pause:3.10.1", "source": "docker-archive:/p.tar"}]), boolean, kubernetes=False)
    assert [e["source"] for e in local if e["ref"] == "registry.k8s.io/pause:3.10.1"] == ["docker-archive:/p.tar"]
    with pytest.raises(_bundle.BundleError, match="variable kubernetes_version: 1.29.0"):
        _bundle.images(dict(RENDERED, kubernetes_version="1.29.0"), boolean)


def test_two_images_with_one_path_under_two_registries_are_refused():
    with pytest.raises(_bundle.BundleError, match="same path in the bundle's registry"):
        _bundle.image_entries(["nvcr.io/nvidia/cuda:12", "docker.io/nvidia/cuda:12"])


def test_files_registries_and_mirrors():
    files = _bundle.files(dict(RENDERED, metallb_enabled=True), boolean)
    assert [f["variable"] for f in files] == ["calico_operator_manifest_url", "metallb_manifest_url"]
    assert files[0]["path"] == "files/calico_operator_manifest_url/tigera-operator.yaml"
    release = _bundle.files(dict(RENDERED, container_runtime_containerd_source="release",
                                 container_runtime_release_containerd_url="https://github.com/c/containerd-2.1.5.tar.gz",
                                 container_runtime_release_containerd_checksum="sha256:https://github.com/c/x.sha256sum",
                                 container_runtime_release_runc_url="https://github.com/r/runc.amd64",
                                 container_runtime_release_runc_checksum="sha256:0123"), boolean)
    assert [f["variable"] for f in release] == [
        "calico_operator_manifest_url", "container_runtime_release_containerd_url", "container_runtime_release_runc_url",
        "container_runtime_release_containerd_checksum"]
    images = _bundle.images(RENDERED, boolean)
    registries = _bundle.registries(RENDERED, boolean, images)
    # Calico's operator pulls from quay.io (calico_registry empty), kubeadm from registry.k8s.io.
    assert registries == ["nvcr.io", "quay.io", "registry.k8s.io"]
    plan = _plan([_host("cp1")], stages=("os_prereqs",))
    mirrors = _bundle.mirrors(plan, images, release, registries)
    assert mirrors["kubegpu_offline"] is True
    assert mirrors["calico_operator_manifest_url"] == \
        "{{ kubegpu_bundle_url }}/files/calico_operator_manifest_url/tigera-operator.yaml"
    assert mirrors["container_runtime_release_containerd_checksum"] == \
        "sha256:{{ kubegpu_bundle_url }}/files/container_runtime_release_containerd_checksum/x.sha256sum"
    assert {"registry": "quay.io", "mirrors": [{"host": "http://{{ kubegpu_bundle_registry }}"}]} \
        in mirrors["container_runtime_registry_mirrors"]
    assert mirrors["kubegpu_bundle_apt"] == {"debian-bookworm": "{{ kubegpu_bundle_url }}/apt/debian-bookworm"}
    document = _bundle.mirrors_document(mirrors, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n", images)
    assert document.startswith("# kubegpu offline bundle")
    assert yaml.safe_load(document)["kubegpu_bundle_apt_key"].startswith("-----BEGIN PGP")


def test_mirrors_yml_passes_the_offline_preflight_rules():
    """What the bundle writes is what preflight accepts: every URL and registry in use inside the mirrors."""
    files = _bundle.files(RENDERED, boolean)
    images = _bundle.images(RENDERED, boolean)
    mirrors = _bundle.mirrors(_plan([_host("cp1")], stages=("os_prereqs",)), images, files,
                              _bundle.registries(RENDERED, boolean, images))
    site = {"kubegpu_bundle_url": "http://10.0.0.5:8080", "kubegpu_bundle_registry": "10.0.0.5:5000"}
    rendered = json.loads(json.dumps(mirrors).replace("{{ kubegpu_bundle_url }}", site["kubegpu_bundle_url"])
                          .replace("{{ kubegpu_bundle_registry }}", site["kubegpu_bundle_registry"]))
    settings = dict(RENDERED, kubegpu_bundle_apt_key="-----BEGIN PGP PUBLIC KEY BLOCK-----", **site)
    settings.update(rendered)
    assert _offline.problems(settings, boolean, DEBIAN_12) == []
    assert _offline.problems(RENDERED, boolean, DEBIAN_12) == []     # offline off: nothing judged
    outside = _offline.problems(dict(settings, validate_smoke_image="ghcr.io/x/y:1"), boolean, DEBIAN_12)
    assert [p["variable"] for p in outside] == ["validate_smoke_image"]
    # Another release than the bundle has: refused by the same rules.
    assert [p["variable"] for p in _offline.problems(settings, boolean, UBUNTU_2404)] == ["kubegpu_bundle_apt"]


# --- the manifest --------------------------------------------------------------------------------

def _bundle_dir(tmp_path):
    (tmp_path / "apt" / "debian-bookworm" / "pool" / "main").mkdir(parents=True)
    (tmp_path / "apt" / "debian-bookworm" / "pool" / "main" / "jq_1.6_amd64.deb").write_bytes(b"deb" * 100)
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.tar").write_bytes(b"oci")
    (tmp_path / ".work").mkdir()
    (tmp_path / ".work" / "scratch").write_text("not part of the bundle")
    return tmp_path


def test_manifest_lists_every_file_with_size_and_sha256(tmp_path):
    root = _bundle_dir(tmp_path)
    found = manifest.build(str(root), {"targets": ["debian-bookworm"]})
    assert [f["path"] for f in found["files"]] == ["apt/debian-bookworm/pool/main/jq_1.6_amd64.deb", "images/a.tar"]
    assert found["total_bytes"] == 303
    assert found["by_kind"] == {"package": {"count": 1, "bytes": 300}, "image": {"count": 1, "bytes": 3}}
    # A dnf repository's files are packages too.
    assert [manifest.kind_of(p) for p in ("dnf/rocky-9/Packages/jq-1.6-17.el9.x86_64.rpm", "dnf/rocky-9/repodata/x",
                                          "charts/a/index.yaml")] == ["package", "package", "other"]
    assert found["files"][1]["sha256"] == hashlib.sha256(b"oci").hexdigest()
    (root / "manifest.json").write_text(manifest.dumps(found))
    assert manifest.verify(str(root), json.loads((root / "manifest.json").read_text())) == []


def test_verify_names_each_tampered_missing_and_unlisted_file(tmp_path):
    root = _bundle_dir(tmp_path)
    found = manifest.build(str(root))
    (root / "images" / "a.tar").write_bytes(b"OCI")                       # same size, other content
    (root / "apt" / "debian-bookworm" / "pool" / "main" / "jq_1.6_amd64.deb").write_bytes(b"x")
    (root / "images" / "b.tar").write_bytes(b"new")
    problems = manifest.verify(str(root), found)
    assert problems == [
        "apt/debian-bookworm/pool/main/jq_1.6_amd64.deb: 1 bytes, the manifest says 300 (tampered or damaged)",
        "images/a.tar: sha256 differs from the manifest (tampered or damaged)",
        "images/b.tar: not in the manifest"]
    (root / "images" / "a.tar").unlink()
    assert "images/a.tar: missing" in manifest.verify(str(root), found)
    assert manifest.verify(str(root), {"kind": "other"}) == ["manifest.json is not a kubegpu bundle manifest"]
    assert manifest.verify(str(root), {"kind": "kubegpu-bundle", "files": [{"path": "../etc/passwd"}]})[0] == \
        "../etc/passwd: a path outside the bundle"


# --- chart repositories ---------------------------------------------------------------------------

INDEX = """apiVersion: v1
entries:
  gpu-operator:
  - name: gpu-operator
    version: v25.10.1
    appVersion: v25.10.1
    digest: 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
    urls: [https://helm.ngc.nvidia.com/nvidia/charts/gpu-operator-v25.10.1.tgz]
  - name: gpu-operator
    version: v25.3.4
    urls: [charts/gpu-operator-v25.3.4.tgz]
generated: "2026-11-30T00:00:00Z"
"""


def test_the_gpu_operators_chart_is_bundled_as_a_chart_repository_of_its_own():
    operator = dict(RENDERED, kubegpu_gpu_operator=True, gpu_operator_chart_repo_url="https://helm.ngc.nvidia.com/nvidia")
    [chart] = _bundle.charts(operator, boolean)
    assert chart == {"variable": "gpu_operator_chart_repo_url", "repo": "https://helm.ngc.nvidia.com/nvidia",
                     "name": "gpu-operator", "version": "v25.10.1", "path": "charts/gpu_operator_chart_repo_url"}
    assert _bundle.charts(RENDERED, boolean) == []          # device-plugin mode installs no chart
    assert _bundle.charts(dict(operator, gpu_operator_chart="oci://nvcr.io/nvidia/gpu-operator"), boolean) == []
    entry = _bundle.chart_entry(INDEX, "gpu-operator", "v25.10.1", chart["repo"])
    assert entry["download"] == "https://helm.ngc.nvidia.com/nvidia/charts/gpu-operator-v25.10.1.tgz"
    assert entry["filename"] == "gpu-operator-v25.10.1.tgz"
    # a relative URL is relative to the repository; a version without its "v" is the same version
    older = _bundle.chart_entry(INDEX, "gpu-operator", "25.3.4", chart["repo"])
    assert older["download"] == "https://helm.ngc.nvidia.com/nvidia/charts/gpu-operator-v25.3.4.tgz"
    index = yaml.safe_load(_bundle.chart_index(entry))
    assert index["entries"]["gpu-operator"][0]["urls"] == ["gpu-operator-v25.10.1.tgz"]
    assert index["entries"]["gpu-operator"][0]["digest"] == entry["digest"] and "download" not in index["entries"]["gpu-operator"][0]
    with pytest.raises(_bundle.BundleError, match="variable gpu_operator_chart_version: chart gpu-operator v9"):
        _bundle.chart_entry(INDEX, "gpu-operator", "v9", chart["repo"])
    mirrors = _bundle.mirrors(_plan([_host("cp1")], stages=("os_prereqs",)), [], [], [], [chart])
    assert mirrors["gpu_operator_chart_repo_url"] == "{{ kubegpu_bundle_url }}/charts/gpu_operator_chart_repo_url"


# --- images named by the downloaded manifests, Calico's operator components -----------------------

def test_calico_operator_components_and_the_images_manifests_name():
    refs = [e["ref"] for e in _bundle.images(RENDERED, boolean, kubernetes=False)]
    assert "quay.io/calico/node:v3.31.7" in refs and "quay.io/calico/node-driver-registrar:v3.31.7" in refs
    own = [e["ref"] for e in _bundle.images(dict(RENDERED, calico_registry="registry.site:5000"), boolean, kubernetes=False)]
    assert "registry.site:5000/calico/typha:v3.31.7" in own
    manifest = [e["ref"] for e in _bundle.images(dict(RENDERED, calico_install_method="manifest"), boolean, kubernetes=False)]
    assert not any("calico/" in ref for ref in manifest)      # calico.yaml names its images itself
    sim = ROOT / "tests" / "sim" / "manifests"
    assert _bundle.manifest_images((sim / "tigera-operator.yaml").read_text()) == ["quay.io/tigera/operator:v1.40.15"]
    assert _bundle.manifest_images((sim / "metallb-native.yaml").read_text()) == [
        "quay.io/metallb/controller:v0.16.1", "quay.io/metallb/speaker:v0.16.1"]
    assert _bundle.manifest_images("image: '{{ x }}'\n  - image: $IMG\n") == []
    combined = _bundle.with_manifest_images(
        _bundle.images(RENDERED, boolean, kubernetes=False), [(sim / "tigera-operator.yaml").read_text()],
        [{"ref": "quay.io/tigera/operator:v1.40.15", "source": "docker-archive:/op.tar"}])
    operator = [e for e in combined if e["ref"] == "quay.io/tigera/operator:v1.40.15"]
    assert operator and operator[0]["source"] == "docker-archive:/op.tar" and operator[0]["target"] == "tigera/operator:v1.40.15"
    document = yaml.safe_load(_bundle.mirrors_document({"container_runtime_registry_mirrors": []}, "", combined))
    assert sorted(m["registry"] for m in document["container_runtime_registry_mirrors"]) == [
        "nvcr.io", "quay.io", "registry.k8s.io"]


def test_the_manifest_records_each_repositorys_package_versions():
    results = [{"item": {"id": "debian-bookworm"}, "packages": [
        {"name": "jq", "version": "1.6-2.1+deb12u1", "architecture": "amd64"},
        {"name": "containerd", "version": "1.6.20~ds1-1+deb12u2", "architecture": "amd64"}]},
        {"item": {"id": "ubuntu-noble"}, "skipped": True}]
    assert _bundle.package_versions(results) == {
        "debian-bookworm": {"containerd": "1.6.20~ds1-1+deb12u2", "jq": "1.6-2.1+deb12u1"}}


# --- the GPU Operator's operand images ------------------------------------------------------
# A chart archive shaped as NVIDIA's gpu-operator v25.10.1 is (Chart.yaml appVersion, the
# node-feature-discovery subchart under charts/), with the values.yaml keys and defaults of that
# release that name images (deployments/gpu-operator/values.yaml at v25.10.1), written out here.
OPERATOR_VALUES = {
    "nfd": {"enabled": True}, "sandboxWorkloads": {"enabled": False}, "cdi": {"enabled": True},
    "validator": {"repository": "nvcr.io/nvidia", "image": "gpu-operator"},
    "operator": {"repository": "nvcr.io/nvidia", "image": "gpu-operator",
                 "initContainer": {"repository": "nvcr.io/nvidia", "image": "cuda", "version": "13.0.1-base-ubi9"}},
    "driver": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "driver", "version": "580.105.08",
               "usePrecompiled": False,
               "manager": {"repository": "nvcr.io/nvidia/cloud-native", "image": "k8s-driver-manager",
                           "version": "v0.9.1"}},
    "toolkit": {"enabled": True, "repository": "nvcr.io/nvidia/k8s", "image": "container-toolkit", "version": "v1.18.1"},
    "devicePlugin": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "k8s-device-plugin", "version": "v0.18.1"},
    "dcgm": {"enabled": False, "repository": "nvcr.io/nvidia/cloud-native", "image": "dcgm",
             "version": "4.4.2-1-ubuntu22.04"},
    "dcgmExporter": {"enabled": True, "repository": "nvcr.io/nvidia/k8s", "image": "dcgm-exporter",
                     "version": "4.4.2-4.7.0-distroless"},
    "gfd": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "k8s-device-plugin", "version": "v0.18.1"},
    "migManager": {"enabled": True, "repository": "nvcr.io/nvidia/cloud-native", "image": "k8s-mig-manager",
                   "version": "v0.13.1"},
    "nodeStatusExporter": {"enabled": False, "repository": "nvcr.io/nvidia", "image": "gpu-operator"},
    "gds": {"enabled": False, "repository": "nvcr.io/nvidia/cloud-native", "image": "nvidia-fs", "version": "2.26.6"},
    "gdrcopy": {"enabled": False, "repository": "nvcr.io/nvidia/cloud-native", "image": "gdrdrv", "version": "v2.5.1"},
    "vgpuManager": {"enabled": False, "repository": "", "image": "vgpu-manager", "version": "",
                    "driverManager": {"repository": "nvcr.io/nvidia/cloud-native", "image": "k8s-driver-manager",
                                      "version": "v0.9.1"}},
    "vfioManager": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "cuda", "version": "13.0.1-base-ubi9"},
    "sandboxDevicePlugin": {"enabled": True, "repository": "nvcr.io/nvidia", "image": "kubevirt-gpu-device-plugin",
                            "version": "v1.4.0"},
    "node-feature-discovery": {"worker": {"tolerations": []}},
}


def _targz(files):
    import io
    import tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            content = data if isinstance(data, bytes) else yaml.safe_dump(data).encode()
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _chart_archive(values=None, app_version="v25.10.1", packed_subchart=False):
    """The chart's archive; its NFD subchart unpacked (as NVIDIA's repository has it), or packed
    as charts/node-feature-discovery-0.18.2.tgz (as `helm dependency build` leaves it)."""
    nfd = {
        "node-feature-discovery/Chart.yaml": {"apiVersion": "v2", "name": "node-feature-discovery",
                                              "version": "0.18.2", "appVersion": "v0.18.2"},
        "node-feature-discovery/values.yaml": {
            "image": {"repository": "registry.k8s.io/nfd/node-feature-discovery", "pullPolicy": "IfNotPresent"}},
    }
    files = {
        "gpu-operator/Chart.yaml": {"apiVersion": "v2", "name": "gpu-operator", "version": app_version,
                                    "appVersion": app_version},
        "gpu-operator/values.yaml": OPERATOR_VALUES if values is None else values,
    }
    if packed_subchart:
        files["gpu-operator/charts/node-feature-discovery-0.18.2.tgz"] = _targz(nfd)
    else:
        files.update(("gpu-operator/charts/" + name, data) for name, data in nfd.items())
    return _targz(files)


RHEL_94 = {"distribution": "RedHat", "distribution_version": "9.4", "distribution_major_version": "9",
           "kernel": "5.14.0-427.13.1.el9_4.x86_64", "architecture": "x86_64"}
UBUNTU_2204 = {"distribution": "Ubuntu", "distribution_version": "22.04", "distribution_major_version": "22",
               "kernel": "5.15.0-126-generic", "architecture": "x86_64"}
HOST_DRIVER_VALUES = {"driver": {"enabled": False}, "toolkit": {"enabled": False}, "devicePlugin": {"enabled": True},
                      "gfd": {"enabled": True}, "dcgmExporter": {"enabled": True}, "cdi": {"enabled": True}}


def test_operator_images_with_the_host_driver_and_toolkit():
    images = _bundle.gpu_operator_images(_chart_archive(), HOST_DRIVER_VALUES, [UBUNTU_2204])
    assert sorted(images) == sorted([
        "nvcr.io/nvidia/gpu-operator:v25.10.1",                 # operator and validator: the chart's appVersion
        "nvcr.io/nvidia/cuda:13.0.1-base-ubi9",                 # the operator's init container
        "nvcr.io/nvidia/k8s-device-plugin:v0.18.1",             # device plugin and GFD
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.2-4.7.0-distroless",
        "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.13.1",
        "registry.k8s.io/nfd/node-feature-discovery:v0.18.2",   # the subchart's appVersion
    ])
    assert len(images) == len(set(images))


def test_operator_images_nfd_from_a_packed_subchart():
    unpacked = _bundle.gpu_operator_images(_chart_archive(), HOST_DRIVER_VALUES, [UBUNTU_2204])
    packed = _bundle.gpu_operator_images(_chart_archive(packed_subchart=True), HOST_DRIVER_VALUES, [UBUNTU_2204])
    assert packed == unpacked and "registry.k8s.io/nfd/node-feature-discovery:v0.18.2" in packed


def test_operator_images_container_driver_tagged_per_gpu_node_os():
    values = {"driver": {"enabled": True, "usePrecompiled": False, "version": "580.105.08"}}
    images = _bundle.gpu_operator_images(_chart_archive(), values, [UBUNTU_2204, UBUNTU_2404, RHEL_94, UBUNTU_2204])
    drivers = [i for i in images if "/driver:" in i]
    assert drivers == ["nvcr.io/nvidia/driver:580.105.08-ubuntu22.04", "nvcr.io/nvidia/driver:580.105.08-ubuntu24.04",
                       "nvcr.io/nvidia/driver:580.105.08-rhel9.4"]
    assert "nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.9.1" in images
    assert "nvcr.io/nvidia/k8s/container-toolkit:v1.18.1" in images     # the chart's default: toolkit on
    assert not any("kubevirt" in i or "vgpu" in i for i in images), images


def test_operator_images_precompiled_driver_names_the_kernel():
    values = {"driver": {"enabled": True, "usePrecompiled": True, "version": "580"}, "gds": {"enabled": True},
              "gdrcopy": {"enabled": True}}
    images = _bundle.gpu_operator_images(_chart_archive(), values, [dict(UBUNTU_2404, kernel="6.8.0-60-generic")])
    assert [i for i in images if "/driver:" in i] == ["nvcr.io/nvidia/driver:580-6.8.0-60-generic-ubuntu24.04"]
    # GDS and GDRCopy are tagged per OS as the driver is, never with the kernel
    assert "nvcr.io/nvidia/cloud-native/nvidia-fs:2.26.6-ubuntu24.04" in images
    assert "nvcr.io/nvidia/cloud-native/gdrdrv:v2.5.1-ubuntu24.04" in images


def test_operator_images_own_registry_digest_sandbox_and_no_nfd():
    values = {"driver": {"enabled": True, "repository": "registry.example.com/gpu", "version": "sha256:" + "a" * 64},
              "sandboxWorkloads": {"enabled": "true"}, "nfd": {"enabled": False},
              "operator": {"repository": "registry.example.com/gpu", "version": "v25.10.1-fix1"}}
    images = _bundle.gpu_operator_images(_chart_archive(), values, [DEBIAN_12])
    assert "registry.example.com/gpu/driver@sha256:" + "a" * 64 in images
    assert "registry.example.com/gpu/gpu-operator:v25.10.1-fix1" in images
    assert "nvcr.io/nvidia/kubevirt-gpu-device-plugin:v1.4.0" in images      # sandbox operands
    assert not any("vgpu-manager" in i for i in images)                     # vgpuManager disabled
    assert not any("node-feature-discovery" in i for i in images)


def test_operator_os_tags_are_the_os_release_id_and_version_id():
    assert _bundle.os_tag(DEBIAN_12) == "debian12"
    assert _bundle.os_tag(dict(DEBIAN_12, distribution_version="12.8")) == "debian12"
    assert _bundle.os_tag(UBUNTU_2204) == "ubuntu22.04"
    assert _bundle.os_tag(RHEL_94) == "rhel9.4"
    assert _bundle.os_tag({"distribution": "Rocky", "distribution_version": "9.4"}) == "rocky9.4"
    assert _bundle.os_tag({}) is None


def test_operator_images_of_an_archive_that_is_not_a_chart():
    with pytest.raises(_bundle.BundleError, match="cannot be read"):
        _bundle.gpu_operator_images(b"not a tar", {}, [])
