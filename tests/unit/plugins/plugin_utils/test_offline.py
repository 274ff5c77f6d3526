# SPDX-License-Identifier: Apache-2.0
"""``kubegpu_offline: true`` (plugins/plugin_utils/_offline.py): the mirrors it needs, every URL the
stages download and every image they pull inside them, and preflight's lines for the rest."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.kubegpu.cluster.plugins.filter.network import format_problems
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _offline as off
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_host as ph
from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _preflight_specs as ps
from ansible_collections.kubegpu.cluster.plugins.plugin_utils._preflight_inventory import boolean

ROOT = Path(__file__).resolve().parents[4]

# The role defaults these rules read, as preflight reads them (templates as written).
DEFAULTS = ps.settings({}, off.SETTINGS, str(ROOT))
BUNDLE = "http://10.0.0.5:8080"
REGISTRY = "10.0.0.5:5000"
OFFLINE = dict(DEFAULTS, kubegpu_offline=True, kubegpu_bundle_url=BUNDLE, kubegpu_bundle_registry=REGISTRY)
# Every upstream registry of the defaults mirrored to the bundle's registry, as the bundle's
# mirrors.yml writes it (plugins/plugin_utils/_bundle.py mirrors).
REGISTRY_MIRRORS = [{"registry": r, "mirrors": [{"host": "http://" + REGISTRY}]}
                    for r in ("registry.k8s.io", "nvcr.io", "quay.io", "ghcr.io", "docker.io")]
REDHAT = {"os_family": "RedHat"}
DEBIAN = {"os_family": "Debian"}


def _bundled(settings, facts=None):
    """Every URL variable the settings use pointed at the bundle, every registry mirrored."""
    found = dict(settings, container_runtime_registry_mirrors=REGISTRY_MIRRORS)
    for name in off.used(found, boolean, facts or DEBIAN):
        if name in off.URL_VARIABLES:
            found[name] = "%s/files/%s/file" % (BUNDLE, name)
    return found


def _problems(settings, facts=None):
    return off.problems(settings, boolean, facts or DEBIAN)


def _variables(records):
    return [r["variable"] for r in records]


# --- off, and the mirrors ---------------------------------------------------------------------

def test_nothing_is_refused_while_kubegpu_offline_is_false():
    assert _problems(DEFAULTS) == []
    assert _problems(dict(DEFAULTS, kubegpu_offline="no", kubegpu_bundle_url="ftp://x")) == []
    assert _problems(dict(DEFAULTS, kubegpu_offline=False, kubegpu_offline_mirrors=["not a mirror/"])) == []


def test_the_new_variables_default_to_no_mirror():
    assert (DEFAULTS["kubegpu_offline"], DEFAULTS["kubegpu_bundle_url"], DEFAULTS["kubegpu_bundle_registry"],
            DEFAULTS["kubegpu_offline_mirrors"]) == (False, "", "", [])


def test_offline_without_a_mirror_is_one_line():
    records = _problems(dict(DEFAULTS, kubegpu_offline=True))
    assert _variables(records) == ["kubegpu_offline"]
    assert "neither kubegpu_bundle_url nor kubegpu_offline_mirrors names a mirror" in records[0]["problem"]
    assert "kubegpu_bundle_url: http://<bundle host>:8080" in records[0]["fix"]
    # kubegpu_bundle_registry alone names no URL mirror either: the URLs are judged against none.
    records = _problems(dict(DEFAULTS, kubegpu_offline="yes", kubegpu_bundle_registry=REGISTRY))
    assert "calico_operator_manifest_url" in _variables(records)
    assert "outside the mirrors of an offline cluster (kubegpu_offline: true): none (no URL mirror is set)" in \
        records[0]["problem"]


def test_a_bundle_setup_passes():
    assert _problems(_bundled(OFFLINE)) == []
    # kubegpu_offline_mirrors alone, a URL prefix with a path and a registry.
    settings = dict(DEFAULTS, kubegpu_offline=True, kubegpu_offline_mirrors=["https://mirror.site/kubegpu", "reg.site"])
    settings = dict(_bundled(settings), container_runtime_registry_mirrors=[
        {"registry": r["registry"], "mirrors": [{"host": "reg.site"}]} for r in REGISTRY_MIRRORS])
    for name in off.used(settings, boolean, DEBIAN) & set(off.URL_VARIABLES):
        settings[name] = "https://mirror.site/kubegpu/%s" % name
    assert _problems(settings) == []


@pytest.mark.parametrize("value", ["10.0.0.5:8080", "ftp://10.0.0.5/x", "http://", "http://bundle:80800",
                                   "http://bundle:8080evil", "oci://10.0.0.5:5000"])
def test_the_bundle_url_is_an_http_url_with_a_host(value):
    records = _problems(dict(_bundled(OFFLINE), kubegpu_bundle_url=value))
    assert _variables(records)[0] == "kubegpu_bundle_url", records
    assert "is not an http(s) URL with a host" in records[0]["problem"]


@pytest.mark.parametrize("value", ["http://10.0.0.5:5000", "10.0.0.5:5000/bundle", "10.0.0.5:99999", "a b"])
def test_the_bundle_registry_is_host_and_port(value):
    records = _problems(dict(_bundled(OFFLINE), kubegpu_bundle_registry=value))
    assert _variables(records)[0] == "kubegpu_bundle_registry", records
    assert "is not host[:port]" in records[0]["problem"]


@pytest.mark.parametrize("value", ["[fd00::5]:5000", "localhost", "bundle.site", "10.0.0.5:5000"])
def test_a_registry_is_host_and_optional_port(value):
    mirrors = [{"registry": m["registry"], "mirrors": [{"host": value}]} for m in REGISTRY_MIRRORS]
    assert _problems(dict(_bundled(OFFLINE), kubegpu_bundle_registry=value,
                          container_runtime_registry_mirrors=mirrors)) == []


def test_every_offline_mirror_is_a_url_prefix_or_a_registry():
    records = _problems(dict(_bundled(OFFLINE), kubegpu_offline_mirrors=[
        "https://mirror.site/debian", "reg.site:5000", "ftp://mirror.site", "reg.site/path", None]))
    assert [r["problem"].split(")")[0] for r in records] == [
        "entry 3 ('ftp://mirror.site'", "entry 4 ('reg.site/path'", "entry 5 (null"]
    assert _variables(records) == ["kubegpu_offline_mirrors"] * 3


# --- URLs ---------------------------------------------------------------------------------------

def test_a_github_manifest_is_refused_with_the_variable_the_mirrors_and_the_fix():
    records = _problems(dict(_bundled(OFFLINE), calico_operator_manifest_url=DEFAULTS["calico_operator_manifest_url"]))
    assert _variables(records) == ["calico_operator_manifest_url"]
    # The role default's {{ calico_version }} is filled in from calico_version's default.
    assert records[0]["problem"].startswith("'https://raw.githubusercontent.com/projectcalico/calico/v3.31.7/")
    assert records[0]["problem"].endswith(
        " is outside the mirrors of an offline cluster (kubegpu_offline: true): http://10.0.0.5:8080")
    assert records[0]["fix"] == (
        "calico_operator_manifest_url: its copy on the bundle host (http://10.0.0.5:8080/...) - the bundle's"
        " mirrors.yml (docs/airgap.md) sets every URL variable; or add the mirror it is on to kubegpu_offline_mirrors")


@pytest.mark.parametrize("value, inside", [
    ("http://10.0.0.5:8080/files/x.yaml", True),
    ("http://10.0.0.5:8080", True),
    ("HTTP://10.0.0.5:8080/x", True),
    ("http://10.0.0.5:80800/x", False),
    ("http://10.0.0.5:8080evil/x", False),
    ("http://10.0.0.5:8080.evil.com/x", False),
    ("http://10.0.0.5:8081/x", False),
    ("http://10.0.0.5/x", False),
    ("https://10.0.0.5:8080/x", False),
    ("http://10.0.0.50:8080/x", False),
    ("http://user@10.0.0.5:8080/x", True),
    ("http://evil.com/http://10.0.0.5:8080/x", False),
    ("http://10.0.0.5:8080@evil.com/x", False),
])
def test_a_url_is_inside_by_scheme_host_and_port(value, inside):
    settings = dict(_bundled(OFFLINE), calico_operator_manifest_url=value)
    assert (_problems(settings) == []) is inside


@pytest.mark.parametrize("prefix, value, inside", [
    ("http://m.site/files", "http://m.site/files/x", True),
    ("http://m.site/files/", "http://m.site/files/x", True),
    ("http://m.site/files", "http://m.site/files", True),
    ("http://m.site/files", "http://m.site/filesx/x", False),
    ("http://m.site/files", "http://m.site/other/files/x", False),
    ("http://m.site/files", "http://m.site/", False),
    ("http://m.site:80/files", "http://m.site/files/x", True),
    ("https://m.site", "https://m.site:443/x", True),
    ("https://m.site", "https://m.site:444/x", False),
    ("http://M.Site", "http://m.site/x", True),
])
def test_a_url_is_inside_a_prefix_segment_by_segment(prefix, value, inside):
    settings = dict(_bundled(OFFLINE), kubegpu_offline_mirrors=[prefix], calico_operator_manifest_url=value)
    assert (_problems(settings) == []) is inside


def test_a_path_on_the_host_is_no_download():
    assert _problems(dict(_bundled(OFFLINE), metallb_enabled=True,
                          metallb_manifest_url="/opt/kubegpu/metallb-native.yaml")) == []


def test_templates_are_filled_in_from_the_settings_and_otherwise_not_judged():
    # A default's reference to another setting follows that setting (gpu_operator_helm_checksum).
    settings = dict(_bundled(dict(OFFLINE, kubegpu_gpu_operator=True)),
                    gpu_operator_helm_checksum=DEFAULTS["gpu_operator_helm_checksum"])
    assert settings["gpu_operator_helm_checksum"] == "sha256:{{ gpu_operator_helm_url }}.sha256sum"
    assert _problems(settings) == []
    # A template in the host cannot be judged; one in the path after the mirror's prefix is inside.
    for value in ("http://{{ bundle_host }}/x", "http://10.0.0.5:8080/{{ what }}/x"):
        assert _problems(dict(_bundled(OFFLINE), calico_operator_manifest_url=value)) == []
    # One after a host outside the mirrors is outside.
    records = _problems(dict(_bundled(OFFLINE), calico_operator_manifest_url="https://github.com/{{ x }}/y"))
    assert _variables(records) == ["calico_operator_manifest_url"]


@pytest.mark.parametrize("prefix, value, refused", [
    ("http://m.site/files", "http://m.site/fil{{ x }}", False),       # could be /files/...
    ("http://m.site/files", "http://m.site/files{{ x }}", False),
    ("http://m.site/files", "http://m.site/other/{{ x }}", True),
])
def test_a_template_in_the_path_is_judged_where_the_literal_part_decides(prefix, value, refused):
    settings = dict(_bundled(OFFLINE), kubegpu_offline_mirrors=[prefix], calico_operator_manifest_url=value)
    assert bool(_problems(settings)) is refused


def test_only_the_urls_the_settings_use_are_judged():
    base = _bundled(OFFLINE)
    # MetalLB off: its GitHub default is no download; on, it is refused.
    assert _problems(dict(base, metallb_manifest_url=DEFAULTS["metallb_manifest_url"])) == []
    assert _variables(_problems(dict(base, metallb_enabled=True,
                                     metallb_manifest_url=DEFAULTS["metallb_manifest_url"]))) == ["metallb_manifest_url"]
    # The manifest of the Calico install method in use.
    manifest = dict(base, calico_install_method="manifest")
    assert _variables(_problems(dict(manifest, calico_manifest_url=DEFAULTS["calico_manifest_url"]))) == [
        "calico_manifest_url"]
    # The release tarballs and their checksum files with containerd_source: release.
    release = dict(base, container_runtime_containerd_source="release")
    for name in ("container_runtime_release_containerd_url", "container_runtime_release_runc_url"):
        release[name] = "%s/files/%s" % (BUNDLE, name)
    assert _variables(_problems(release)) == ["container_runtime_release_runc_checksum"]
    assert "downloads its checksum file from outside the mirrors" in _problems(release)[0]["problem"]
    release["container_runtime_release_runc_checksum"] = "sha256:" + "a" * 64
    assert _problems(release) == []
    # The chart repository and helm in GPU Operator mode.
    operator = dict(base, kubegpu_gpu_operator=True, gpu_operator_chart_repo_url=DEFAULTS["gpu_operator_chart_repo_url"],
                    gpu_operator_helm_url=DEFAULTS["gpu_operator_helm_url"])
    assert _variables(_problems(operator)) == [
        "gpu_operator_chart_repo_url", "gpu_operator_helm_url", "gpu_operator_helm_checksum"]
    assert _variables(_problems(dict(operator, gpu_operator_helm_source="none",
                                     gpu_operator_chart_repo_url=BUNDLE + "/charts"))) == []


def test_package_repositories_are_the_bundles_repository_offline_on_apt_and_dnf_hosts():
    """apt's (dnf's) only source is the bundle's repository offline (roles/kubegpu/tasks/offline.yml): the stages
    add no repository of pkgs.k8s.io, NVIDIA or Docker, on Debian and RedHat hosts alike; Docker Engine's with
    container_runtime_docker_source: docker is still added."""
    settings = dict(_bundled(OFFLINE), kubernetes_repo_url=DEFAULTS["kubernetes_repo_url"],
                    kubernetes_repo_key_url=DEFAULTS["kubernetes_repo_key_url"], kubegpu_gpu_node=True,
                    container_runtime_containerd_source="docker", nvidia_driver_source="cuda")
    for name in off.URL_VARIABLES:
        if name.startswith(("container_runtime_nvidia_toolkit", "nvidia_driver_cuda", "container_runtime_docker")):
            settings[name] = DEFAULTS[name] or "https://developer.download.nvidia.com/key.pub"
    assert _problems(settings, DEBIAN) == []
    assert _problems(settings, REDHAT) == []
    assert off.used(settings, boolean, REDHAT) == off.used(settings, boolean, DEBIAN)
    docker = dict(settings, kubegpu_container_runtime="docker", container_runtime_docker_source="docker")
    assert "container_runtime_docker_repo_url" in _variables(_problems(docker, DEBIAN))
    assert "container_runtime_docker_repo_url" in _variables(_problems(docker, REDHAT))


def _repository_tasks(tasks, guarded=False):
    """(module, guarded) of every task of ``tasks`` (blocks walked) that adds a package repository or
    its key; guarded: under a `not kubegpu_offline` condition."""
    condition = "not (kubegpu_offline | default(false) | bool)"
    for task in tasks or []:
        when = task.get("when") or []
        here = guarded or condition in (when if isinstance(when, list) else [when])
        if "block" in task:
            yield from _repository_tasks(task["block"], here)
            continue
        for module in ("ansible.builtin.rpm_key", "ansible.builtin.yum_repository", "ansible.builtin.deb822_repository",
                       "ansible.builtin.include_tasks"):
            args = task.get(module)
            if module == "ansible.builtin.include_tasks" and "repo_" not in str((args or {}).get("file", "")):
                continue
            if args is not None:
                yield module, here


def test_the_stages_add_no_package_repository_offline():
    """The `not kubegpu_offline` conditions ``used`` relies on (module docstring): every task of the
    stages that adds a repository or its key, apt's and dnf's (the RedHat blocks too), is under one."""
    for path in ("roles/container_runtime/tasks/containerd.yml", "roles/container_runtime/tasks/nvidia_toolkit.yml",
                 "roles/nvidia_driver/tasks/install.yml", "roles/kubernetes/tasks/install.yml"):
        found = list(_repository_tasks(yaml.safe_load((ROOT / path).read_text(encoding="utf-8"))))
        assert found and all(guarded for _module, guarded in found), (path, found)
    modules = [m for m, _g in _repository_tasks(yaml.safe_load(
        (ROOT / "roles/kubernetes/tasks/install.yml").read_text(encoding="utf-8")))]
    assert "ansible.builtin.rpm_key" in modules and "ansible.builtin.yum_repository" in modules
    assert "kubegpu.cluster.kubegpu" in (ROOT / "roles/os_prereqs/tasks/main.yml").read_text(encoding="utf-8")
    assert (ROOT / "roles/kubegpu/tasks/offline.yml").is_file()


ROCKY = {"os_family": "RedHat", "distribution": "Rocky", "distribution_version": "9.4",
         "distribution_major_version": "9"}


@pytest.mark.parametrize("facts, expected", [
    ({"os_family": "Debian", "distribution": "Debian", "distribution_release": "bookworm"}, "debian-bookworm"),
    ({"os_family": "Debian", "distribution": "Debian", "distribution_version": "13"}, "debian-trixie"),
    ({"os_family": "Debian", "distribution": "Ubuntu", "distribution_version": "24.04"}, "ubuntu-noble"),
    (ROCKY, "rocky-9"),
    (dict(ROCKY, distribution="AlmaLinux", distribution_major_version=""), "almalinux-9"),
    (dict(ROCKY, distribution="RedHat", distribution_release="Plow"), "redhat-9"),
    ({"os_family": "RedHat", "distribution": "Rocky"}, ""),
    ({}, ""),
])
def test_the_release_id_names_a_hosts_repository_in_the_bundle(facts, expected):
    assert off.release_id(facts) == expected


def test_a_dnf_host_needs_the_bundles_dnf_repository_of_its_release_and_the_key():
    settings = dict(_bundled(OFFLINE), kubegpu_bundle_apt_key="-----BEGIN PGP PUBLIC KEY BLOCK-----",
                    kubegpu_bundle_dnf={"rocky-9": BUNDLE + "/dnf/rocky-9"})
    assert _problems(settings, ROCKY) == []
    # apt's table is not read on a dnf host, nor dnf's on an apt host.
    assert "kubegpu_bundle_dnf" not in _variables(_problems(settings, dict(DEBIAN, distribution="Debian")))
    [record] = _problems(dict(settings, kubegpu_bundle_dnf={"almalinux-9": BUNDLE + "/dnf/almalinux-9"}), ROCKY)
    assert record == {
        "variable": "kubegpu_bundle_dnf",
        "problem": "no dnf repository of the offline bundle for rocky-9 (it has: almalinux-9): with kubegpu_offline dnf's"
                   " only repository is the bundle's repository of the host's release",
        "fix": "build the bundle with this host in the inventory (playbooks/bundle.yml) and put its mirrors.yml in"
               " group_vars/all (docs/airgap.md)"}
    assert _variables(_problems(dict(settings, kubegpu_bundle_dnf={}), ROCKY)) == ["kubegpu_bundle_dnf"]
    [record] = _problems(dict(settings, kubegpu_bundle_apt_key=""), ROCKY)
    assert record["variable"] == "kubegpu_bundle_apt_key" and "dnf could not trust" in record["problem"]
    # Nothing while kubegpu_offline is false.
    assert _problems(dict(settings, kubegpu_offline=False, kubegpu_bundle_dnf={}), ROCKY) == []


def test_the_dnf_repository_file_trusts_the_bundles_signed_metadata():
    text = off.dnf_repo_file("http://10.0.0.5:8080/dnf/rocky-9")
    lines = text.splitlines()
    assert lines[0].startswith("# kubegpu_offline") and lines[1] == "[kubegpu-bundle]"
    assert lines[2:] == ["name=kubegpu offline bundle", "baseurl=http://10.0.0.5:8080/dnf/rocky-9", "enabled=1",
                         "gpgcheck=0", "repo_gpgcheck=1", "gpgkey=file:///etc/pki/rpm-gpg/kubegpu-bundle.asc",
                         "module_hotfixes=1"]
    for bad in ("", "http://x/\n[evil]"):
        with pytest.raises(ValueError):
            off.dnf_repo_file(bad)


# --- images -------------------------------------------------------------------------------------

@pytest.mark.parametrize("reference, registry", [
    ("nvcr.io/nvidia/k8s-device-plugin:v0.20.1", "nvcr.io"),
    ("registry.k8s.io/pause:3.10.1", "registry.k8s.io"),
    ("busybox", "docker.io"),
    ("busybox:1.36", "docker.io"),
    ("library/busybox@sha256:" + "0" * 64, "docker.io"),
    ("calico/node:v3.31.7", "docker.io"),
    ("localhost/x", "localhost"),
    ("localhost:5000/x", "localhost:5000"),
    ("10.0.0.5:5000/nvidia/cuda:12", "10.0.0.5:5000"),
    ("Reg.Site/x", "reg.site"),
    ("[fd00::5]:5000/x", "[fd00::5]:5000"),
    ("{{ registry }}/x", None),
    ("busybox:{{ tag }}", "docker.io"),
])
def test_the_registry_of_an_image_follows_dockers_rule(reference, registry):
    assert off.registry_of(reference) == registry


def test_the_registry_of_a_repository_prefix():
    assert off.registry_of("registry.k8s.io", repository=True) == "registry.k8s.io"
    assert off.registry_of("10.0.0.5:5000/k8s", repository=True) == "10.0.0.5:5000"
    assert off.registry_of("10.0.0.5:5000/", repository=True) == "10.0.0.5:5000"
    assert off.registry_of("myuser", repository=True) == "docker.io"


def test_an_image_outside_the_mirrors_is_refused_with_its_copy_in_the_bundle():
    records = _problems(dict(_bundled(OFFLINE), container_runtime_registry_mirrors=[
        m for m in REGISTRY_MIRRORS if m["registry"] != "nvcr.io"]))
    assert _variables(records) == ["nvidia_device_plugin_image", "validate_smoke_image"]
    assert records[0]["problem"] == (
        "'nvcr.io/nvidia/k8s-device-plugin:v0.20.1' is pulled from registry nvcr.io, outside the mirrors of an offline"
        " cluster (kubegpu_offline: true): 10.0.0.5:5000; no container_runtime_registry_mirrors entry mirrors it to"
        " them")
    assert records[0]["fix"].startswith(
        "nvidia_device_plugin_image: 10.0.0.5:5000/nvidia/k8s-device-plugin:v0.20.1 (its copy in the bundle's"
        " registry), or container_runtime_registry_mirrors: [{registry: nvcr.io, mirrors: [{host:"
        " \"http://10.0.0.5:5000\"}]}]")


def test_an_image_in_a_mirror_registry_passes_without_registry_mirrors():
    settings = dict(_bundled(OFFLINE), container_runtime_registry_mirrors=[])
    for name in off.IMAGE_VARIABLES:
        settings[name] = REGISTRY + ("/k8s" if name in off.REPOSITORY_VARIABLES else "/%s:1" % name)
    assert _problems(settings) == []
    settings["kubernetes_image_repository"] = "reg.site/k8s"
    assert _variables(_problems(settings)) == ["kubernetes_image_repository"]
    settings["kubegpu_offline_mirrors"] = ["reg.site"]
    assert _problems(settings) == []


def test_a_docker_hub_image_is_judged_as_docker_io():
    settings = dict(_bundled(OFFLINE), validate_cuda_sample_image="busybox:1.36")
    assert _problems(settings) == []        # docker.io is mirrored
    settings["container_runtime_registry_mirrors"] = [m for m in REGISTRY_MIRRORS if m["registry"] != "docker.io"]
    records = _problems(settings)
    assert _variables(records) == ["validate_cuda_sample_image"]
    assert "is pulled from registry docker.io" in records[0]["problem"]
    assert "validate_cuda_sample_image: 10.0.0.5:5000/library/busybox:1.36" in records[0]["fix"]


def test_a_registry_mirrored_to_a_host_outside_the_mirrors_is_refused():
    mirrors = [m for m in REGISTRY_MIRRORS if m["registry"] != "nvcr.io"] + [
        {"registry": "nvcr.io", "mirrors": [{"host": "http://" + REGISTRY}, {"host": "https://mirror.gcr.io"}]}]
    records = _problems(dict(_bundled(OFFLINE), container_runtime_registry_mirrors=mirrors))
    assert _variables(records) == ["nvidia_device_plugin_image", "validate_smoke_image"]
    assert "its container_runtime_registry_mirrors entry has mirror hosts outside them" in records[0]["problem"]
    # An entry without mirrors (a server only) mirrors nothing.
    mirrors[-1] = {"registry": "nvcr.io", "server": "https://nvcr.io"}
    assert _variables(_problems(dict(_bundled(OFFLINE), container_runtime_registry_mirrors=mirrors))) == [
        "nvidia_device_plugin_image", "validate_smoke_image"]


@pytest.mark.parametrize("host", ["http://10.0.0.5:5000", "10.0.0.5:5000", "https://10.0.0.5:5000/v2/proxy",
                                  "HTTP://10.0.0.5:5000"])
def test_a_mirror_host_is_inside_by_its_host_and_port(host):
    mirrors = [{"registry": m["registry"], "mirrors": [{"host": host}]} for m in REGISTRY_MIRRORS]
    assert _problems(dict(_bundled(OFFLINE), container_runtime_registry_mirrors=mirrors)) == []


@pytest.mark.parametrize("host", ["http://10.0.0.5:5001", "http://10.0.0.50:5000", "mirror.gcr.io", ""])
def test_a_mirror_host_elsewhere_is_outside(host):
    mirrors = [{"registry": m["registry"], "mirrors": [{"host": host}]} for m in REGISTRY_MIRRORS]
    assert "container_runtime_sandbox_image" in _variables(
        _problems(dict(_bundled(OFFLINE), container_runtime_registry_mirrors=mirrors)))


def test_a_url_prefix_mirror_can_serve_a_registry():
    settings = dict(_bundled(OFFLINE), kubegpu_offline_mirrors=["https://registry.site/mirror"])
    settings["container_runtime_registry_mirrors"] = [
        {"registry": m["registry"], "mirrors": [{"host": "https://registry.site/mirror/" + m["registry"]}]}
        for m in REGISTRY_MIRRORS]
    assert _problems(settings) == []


def test_the_default_entry_mirrors_every_registry_without_its_own():
    settings = dict(_bundled(OFFLINE), container_runtime_registry_mirrors=[
        {"registry": "_default", "mirrors": [{"host": "http://" + REGISTRY}]}])
    assert _problems(settings) == []
    settings["container_runtime_registry_mirrors"].append(
        {"registry": "nvcr.io", "mirrors": [{"host": "https://nvcr.mirror.example.com"}]})
    assert _variables(_problems(settings)) == ["nvidia_device_plugin_image", "validate_smoke_image"]


def test_no_hosts_toml_without_a_registry_config_path():
    settings = dict(_bundled(OFFLINE), container_runtime_registry_config_path="")
    assert "container_runtime_sandbox_image" in _variables(_problems(settings))


def test_docker_engine_mirrors_docker_hub_only():
    settings = dict(_bundled(OFFLINE), kubegpu_container_runtime="docker", validate_cuda_sample_image="busybox",
                    container_runtime_docker_registry_mirrors=["http://" + REGISTRY])
    assert _variables(_problems(settings)) == [
        "kubernetes_image_repository", "calico_registry", "nvidia_device_plugin_image", "validate_smoke_image"]
    settings["container_runtime_docker_registry_mirrors"] = ["https://mirror.gcr.io"]
    records = [r for r in _problems(settings) if r["variable"] == "validate_cuda_sample_image"]
    assert records[0]["problem"].endswith(
        "; its container_runtime_docker_registry_mirrors entry has mirror hosts outside them (the runtime would pull"
        " from those)")


def test_empty_repositories_mean_the_upstream_defaults():
    settings = dict(_bundled(OFFLINE), container_runtime_registry_mirrors=[], kubernetes_image_repository="",
                    calico_registry="", kubernetes_kube_vip_image="", container_runtime_sandbox_image="",
                    nvidia_device_plugin_image=REGISTRY + "/p:1", validate_smoke_image=REGISTRY + "/s:1")
    records = _problems(settings)
    assert _variables(records) == ["kubernetes_image_repository", "calico_registry"]
    assert records[0]["problem"].startswith("empty: kubeadm pulls from registry.k8s.io, outside the mirrors")
    assert records[1]["problem"].startswith("empty: the Tigera operator pulls from quay.io, outside the mirrors")
    assert "calico_registry: 10.0.0.5:5000/ (its copy" in records[1]["fix"]
    # calico_registry is the operator's: the manifest install does not read it.
    assert _variables(_problems(dict(settings, calico_install_method="manifest",
                                     calico_manifest_url=BUNDLE + "/calico.yaml"))) == ["kubernetes_image_repository"]


def test_only_the_images_the_settings_use_are_judged():
    settings = dict(_bundled(OFFLINE), container_runtime_registry_mirrors=[
        m for m in REGISTRY_MIRRORS if m["registry"] not in ("ghcr.io", "registry.k8s.io")])
    settings.update(kubernetes_image_repository=REGISTRY, container_runtime_sandbox_image=REGISTRY + "/pause:3.10.1")
    assert _problems(settings) == []
    assert _variables(_problems(dict(settings, kubegpu_control_plane_vip="10.0.0.10"))) == ["kubernetes_kube_vip_image"]
    assert _variables(_problems(dict(settings, nfs_client_storage_class_enabled=True))) == [
        "nfs_client_provisioner_image"]
    nvcr = dict(settings, container_runtime_registry_mirrors=[m for m in REGISTRY_MIRRORS if m["registry"] == "quay.io"],
                validate_smoke_test=False)
    assert _variables(_problems(nvcr)) == ["nvidia_device_plugin_image"]
    assert _variables(_problems(dict(nvcr, nvidia_device_plugin_gfd_enabled=True,
                                     nvidia_device_plugin_dcgm_exporter_enabled=True))) == [
        "nvidia_device_plugin_image", "nvidia_device_plugin_gfd_image", "nvidia_device_plugin_dcgm_exporter_image"]
    assert _variables(_problems(dict(nvcr, kubegpu_gpu_allocation="dra"))) == ["nvidia_dra_driver_image"]
    assert _variables(_problems(dict(nvcr, kubegpu_gpu_operator=True, gpu_operator_chart_repo_url=BUNDLE,
                                     gpu_operator_helm_url=BUNDLE + "/helm.tgz"))) == []


def test_an_oci_chart_is_pulled_from_a_registry():
    settings = dict(_bundled(OFFLINE), kubegpu_gpu_operator=True, gpu_operator_chart_repo_url="",
                    gpu_operator_helm_url=BUNDLE + "/helm.tgz", gpu_operator_chart="oci://ghcr.io/nvidia/gpu-operator")
    settings["container_runtime_registry_mirrors"] = []
    records = [r for r in _problems(settings) if r["variable"] == "gpu_operator_chart"]
    assert records and "is pulled from registry ghcr.io" in records[0]["problem"]
    settings["gpu_operator_chart"] = "oci://%s/nvidia/gpu-operator" % REGISTRY
    assert "gpu_operator_chart" not in _variables(_problems(settings))


# --- preflight ------------------------------------------------------------------------------

def test_preflight_reports_them_per_host_and_reads_the_role_defaults():
    groups = {"k8s_cluster": ["cp1"], "kube_control_plane": ["cp1"], "kube_node": []}
    facts = {"os_family": "Debian", "distribution": "Debian", "distribution_version": "12.7",
             "distribution_major_version": "12", "distribution_release": "bookworm", "kernel": "6.1.0-26-amd64",
             "architecture": "x86_64", "kubegpu_gpu": {"count": 0, "gpus": []}}
    apt = {"kubegpu_bundle_apt": {"debian-bookworm": BUNDLE + "/apt/debian-bookworm"},
           "kubegpu_bundle_apt_key": "-----BEGIN PGP PUBLIC KEY BLOCK-----"}

    def lines(variables):
        result = ph.host_report("cp1", variables, facts, groups, {"cgroup_version": 2}, root=str(ROOT))
        return format_problems(result["problems"], "cp1")

    assert lines({"kubegpu_offline": True}) == [
        "host cp1: variable kubegpu_offline: true, but neither kubegpu_bundle_url nor kubegpu_offline_mirrors names a"
        " mirror: every download and image pull of every stage would be refused; fix: kubegpu_bundle_url:"
        " http://<bundle host>:8080 and kubegpu_bundle_registry: <bundle host>:5000 (the bundle host,"
        " docs/airgap.md), or kubegpu_offline_mirrors: [\"https://mirror.example.com\", \"registry.example.com:5000\"]"]
    found = lines(dict(apt, kubegpu_offline=True, kubegpu_bundle_url=BUNDLE, kubegpu_bundle_registry=REGISTRY))
    assert [line.split(": ")[1] for line in found] == [
        "variable calico_operator_manifest_url", "variable container_runtime_sandbox_image",
        "variable kubernetes_image_repository", "variable calico_registry", "variable nvidia_device_plugin_image",
        "variable validate_smoke_image"]
    bundled = dict((name, value) for name, value in _bundled(OFFLINE).items() if value != DEFAULTS.get(name))
    bundled.update(apt)
    assert lines(bundled) == []
    # The bundle has no apt repository of this host's release, or no key (mirrors.yml missing).
    assert lines(dict(bundled, kubegpu_bundle_apt={"ubuntu-noble": BUNDLE + "/apt/ubuntu-noble"})) == [
        "host cp1: variable kubegpu_bundle_apt: no repository of the offline bundle for debian-bookworm (it has:"
        " ubuntu-noble): with kubegpu_offline apt's only source is the bundle's repository of the host's release;"
        " fix: build the bundle with this host in the inventory (playbooks/bundle.yml) and put its mirrors.yml in"
        " group_vars/all (docs/airgap.md)"]
    assert [line.split(": ")[1] for line in lines(dict(bundled, kubegpu_bundle_apt_key=""))] == [
        "variable kubegpu_bundle_apt_key"]
    # A mirror setting its argument spec refuses is named once, by the spec.
    assert lines(dict(bundled, kubegpu_offline_mirrors="http://m.site")) == [
        "host cp1: variable kubegpu_offline_mirrors: 'http://m.site' is a string, not a list (accepted: a list of"
        " strings); fix: write kubegpu_offline_mirrors as a YAML list (kubegpu_offline_mirrors: [a, b]), or with -e"
        " as JSON (-e '{\"kubegpu_offline_mirrors\": [\"a\", \"b\"]}')"]


def test_preflight_reads_every_setting_these_rules_read():
    """Every name is an argument-spec option (preflight passes only those from the inventory) with
    a role default where it has one."""
    specs = ps.collection_specs(str(ROOT))
    assert [name for name in off.SETTINGS if name not in specs] == []
    assert set(off.SETTINGS) <= set(ph.RULE_SETTINGS)


# --- every URL and image variable is known ------------------------------------------------------

def _role_defaults():
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        for name, value in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
            yield path.parent.parent.name, str(name), value


def _main_options():
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        main = ps.settings_entry_point(yaml.safe_load(path.read_text(encoding="utf-8")))
        for name in main.get("options") or {}:
            yield str(name)


def test_every_url_variable_is_known():
    """A new *_url variable, or a default that downloads from http(s), cannot be missed: it is in
    URL_VARIABLES (or CHECKSUM_VARIABLES), or the offline rule would let it through unjudged."""
    known = set(off.URL_VARIABLES) | set(off.CHECKSUM_VARIABLES) | set(off.MIRROR_SETTINGS)
    missing = []
    for _role, name, value in _role_defaults():
        text = value.strip() if isinstance(value, str) else ""
        downloads = re.match(r"^(\w+:)?https?://", text) or re.match(r"^(\w+:)?\{\{\s*\w+_url\s*\}\}", text)
        if (name.endswith("_url") or downloads) and name not in known:
            missing.append(name)
    missing += [n for n in _main_options() if n.endswith("_url") and n not in known]
    assert missing == []
    assert len(set(off.URL_VARIABLES)) == len(off.URL_VARIABLES) == 15


def test_every_image_variable_is_known():
    names = [name for _role, name, _value in _role_defaults()] + list(_main_options())
    images = set(n for n in names if re.search(r"_image$|_image_repository$|_registry$", n))
    assert images - set(off.IMAGE_VARIABLES) - set(off.MIRROR_SETTINGS) == set()
    assert set(off.IMAGE_VARIABLES) <= set(names)
    assert set(off.REPOSITORY_VARIABLES) <= set(off.IMAGE_VARIABLES)


def test_the_fleets_dnf_block_uses_the_one_repository_file_and_only_its_directory():
    """roles/kubegpu/tasks/offline.yml on RHEL-family hosts: the repository file from dnf_repo_file (filter
    bundle_dnf_repo_file) in a directory of its own, dnf.conf's reposdir pointed at that directory only (an INI
    merge with a backup, not a rewrite of dnf.conf), the host's repository looked up by the release id preflight uses."""
    tasks = yaml.safe_load((ROOT / "roles/kubegpu/tasks/offline.yml").read_text(encoding="utf-8"))
    [block] = [t for t in tasks if t.get("when") == "ansible_facts.os_family == 'RedHat'"]
    assert "kubegpu.cluster.bundle_release_id" in block["vars"]["_kubegpu_offline_release"]
    assert "kubegpu_bundle_dnf" in block["vars"]["_kubegpu_offline_dnf_url"]
    [files] = [t["kubegpu.cluster.host_files"] for t in block["block"] if "kubegpu.cluster.host_files" in t]
    [ini] = [t["community.general.ini_file"] for t in block["block"] if "community.general.ini_file" in t]
    repos_dir = block["vars"]["_kubegpu_offline_reposdir"]
    assert repos_dir == off.DNF_REPOS_DIR and block["vars"]["_kubegpu_offline_key"] == off.DNF_KEY
    [repo_file] = [f for f in files["files"] if f["path"].endswith(".repo")]
    assert repo_file["path"] == "{{ _kubegpu_offline_reposdir }}/kubegpu-bundle.repo"
    assert "kubegpu.cluster.bundle_dnf_repo_file" in repo_file["content"]
    assert (ini["path"], ini["section"], ini["option"], ini["value"], ini["backup"]) == (
        "/etc/dnf/dnf.conf", "main", "reposdir", "{{ _kubegpu_offline_reposdir }}", True)
    # The key where the repository file says it is.
    assert "gpgkey=file://%s\n" % off.DNF_KEY in off.dnf_repo_file("http://b/dnf/rocky-9")
