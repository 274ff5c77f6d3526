# SPDX-License-Identifier: Apache-2.0
"""Air gap (issue #19): a bundle built on a connected staging host, served on the site, and stages 1-4
converging hosts whose only network is the bundle host.

- builder (docker's default bridge: it reaches Debian's archive) runs playbooks/bundle.yml for the fleet
  from this run's facts: the Debian packages of os_prereqs, nvidia_driver and container_runtime for the
  fleet's Debian 12 hosts and the server's registry packages, really downloaded with their dependencies
  into a signed apt repository; the images built here (docker import, nothing pulled) as OCI archives;
  in GPU Operator mode the chart (stand-in) and helm's tarball from an HTTP server on the builder, and
  the image the chart runs; the manifest with size and sha256 of every file. The controller gets the
  archive and mirrors.yml.
- server, cp1 and w1 are on a docker network created with --internal (no route out); the server gets the
  bundle through playbooks/bundle_serve.yml: verified, then served over HTTP and from Debian's registry.
- the fleet converges with preflight, os_prereqs, nvidia_driver and container_runtime (kubegpu_offline
  true, mirrors.yml in the inventory), a second run reports changed=0, containerd pulls a bundled image
  through the registry mirror stage 4 configured; a tampered file of the served bundle is refused by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

# conftest.APT_CACHE: the apt archive cache the test hosts share (test modules do not import conftest).
APT_CACHE = "/var/cache/kubegpu-apt"
REPO = Path(__file__).resolve().parents[2]

NETWORK = "kubegpu-airgap"
BUILDER = "kubegpu-ag-builder"
SERVER = "kubegpu-ag-server"
FLEET = {"cp1": "kubegpu-ag-cp1", "w1": "kubegpu-ag-w1"}
# Images built here (no registry is reachable from this machine): every image variable of stages 1-4
# and validate points at them, under a registry of their own that mirrors.yml sends to the bundle.
IMAGES = {"container_runtime_sandbox_image": "kubegpu.test/pause:3.10",
          "nvidia_device_plugin_image": "kubegpu.test/k8s-device-plugin:v0.18.0",
          "validate_smoke_image": "kubegpu.test/cuda:12.2.2-base"}
# The stand-in of Calico's operator manifest (tests/sim/manifests): the builder's copy is downloaded
# into the bundle (GitHub is unreachable here) like the real one.
CALICO = "tigera-operator.yaml"
# Images named elsewhere, built here too: the Calico components the Tigera operator deploys
# (plugin_utils/_bundle.CALICO_OPERATOR_COMPONENTS at calico_version, quay.io) and the operator image
# the stand-in tigera-operator.yaml names.
CALICO_IMAGES = ["quay.io/calico/%s:v3.31.7" % name for name in (
    "node", "cni", "kube-controllers", "typha", "pod2daemon-flexvol", "apiserver", "csi", "node-driver-registrar")]
OPERATOR_IMAGE = "quay.io/tigera/operator:v1.40.15"
# The GPU Operator's chart (the simulation's stand-in, tests/sim/charts/gpu-operator, packaged at the
# pinned version) and a stand-in of helm's release tarball, served over HTTP by the builder itself
# (NGC and get.helm.sh are unreachable here); the image the chart runs with kubegpu's values (the
# host driver kept: the operator; its other operands' images are unit-tested on NVIDIA's chart's shape).
CHART_PORT = 8879
CHART_VERSION = "v25.10.1"
GPU_OPERATOR_IMAGES = ["nvcr.io/nvidia/gpu-operator:v25.10.1"]
HELM_TARBALL = "helm-v3.19.0-linux-amd64.tar.gz"
STAGES = ["playbooks/preflight.yml", "playbooks/os_prereqs.yml", "playbooks/nvidia_driver.yml",
          "playbooks/container_runtime.yml"]


def _recap(output):
    return dict((m.group(1), {"changed": int(m.group(2)), "failed": int(m.group(3))}) for m in re.finditer(
        r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", output, re.M))


def _inventory(path, **extra):
    fleet = {"ansible_connection": "community.docker.docker", "ansible_facts_parallel": False,
             "kubegpu_pod_cidr": "192.168.0.0/16", "kubegpu_service_cidr": "10.96.0.0/12",
             # NVIDIA's repository is unreachable here; no GPU in this fleet either.
             "container_runtime_nvidia_toolkit_install": False,
             "calico_operator_manifest_url": "file:///srv/src/%s" % CALICO}
    fleet.update(IMAGES)
    fleet.update(extra)
    data = {"all": {"vars": fleet, "children": {
        "kube_control_plane": {"hosts": {"cp1": {"ansible_host": FLEET["cp1"]}}},
        "kube_node": {"hosts": {"w1": {"ansible_host": FLEET["w1"]}}},
        "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        "kubegpu_bundle_builder": {"hosts": {"builder": {"ansible_host": BUILDER}}},
        "kubegpu_bundle_server": {"hosts": {"server": {"ansible_host": SERVER}}},
    }}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _image_archive(dk, tmp, ref):
    """A one-layer image made here (docker import of a file), saved as a docker archive."""
    source = tmp / "image-src"
    source.mkdir(exist_ok=True)
    (source / "kubegpu-airgap.txt").write_text("%s\n" % ref)
    subprocess.run("tar -C %s -c . | docker import - %s" % (source, ref), shell=True, check=True,
                   capture_output=True, timeout=120)
    archive = tmp / (re.sub(r"[^A-Za-z0-9]+", "_", ref) + ".tar")
    dk.run("save", "-o", str(archive), ref)
    return archive


def _serve_charts(dk, tmp):
    """The GPU Operator's chart repository and helm's tarball on the builder, at 127.0.0.1:CHART_PORT."""
    helm = os.environ.get("KUBEGPU_HELM") or shutil.which("helm")
    assert helm, "no helm (scripts/fetch-helm.sh sets KUBEGPU_HELM)"
    charts = tmp / "charts"
    charts.mkdir()
    subprocess.run([helm, "package", str(REPO / "tests" / "sim" / "charts" / "gpu-operator"), "--version", CHART_VERSION,
                    "-d", str(charts)], check=True, capture_output=True, timeout=120)
    subprocess.run([helm, "repo", "index", str(charts)], check=True, capture_output=True, timeout=120)
    subprocess.run(["tar", "-C", str(charts), "-czf", str(charts / HELM_TARBALL), "index.yaml"], check=True, timeout=60)
    digest = hashlib.sha256((charts / HELM_TARBALL).read_bytes()).hexdigest()
    (charts / (HELM_TARBALL + ".sha256sum")).write_text("%s  %s\n" % (digest, HELM_TARBALL))
    dk.run("cp", str(charts), "%s:/srv/charts" % BUILDER)
    dk.run("exec", "-d", BUILDER, "python3", "-m", "http.server", str(CHART_PORT), "--bind", "127.0.0.1",
           "--directory", "/srv/charts")
    deadline = time.monotonic() + 30
    while dk.run("exec", BUILDER, "curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:%d/index.yaml" % CHART_PORT,
                 check=False).returncode != 0:
        assert time.monotonic() < deadline, "the chart repository on the builder did not answer"
        time.sleep(1)


@pytest.fixture(scope="module")
def site(systemd_hosts, docker_cli, tmp_path_factory):
    """The builder on docker's bridge; the server and the fleet on an --internal network only."""
    tmp = tmp_path_factory.mktemp("airgap")
    docker, docker_exec = docker_cli.run, docker_cli.exec
    docker("network", "rm", NETWORK, check=False)
    docker("network", "create", "--internal", NETWORK)
    try:
        systemd_hosts(BUILDER, hostname="builder", extra_args=["-v", "%s:/var/cache/apt/archives:rw" % APT_CACHE])
        for name, container in [("server", SERVER)] + list(FLEET.items()):
            systemd_hosts(container, hostname=name, extra_args=["--network", NETWORK])
        docker_exec(BUILDER, "mkdir", "-p", "/srv/src")
        docker("cp", str(REPO / "tests" / "sim" / "manifests" / CALICO), "%s:/srv/src/%s" % (BUILDER, CALICO))
        _serve_charts(docker_cli, tmp)
        extra = []
        for ref in list(IMAGES.values()) + CALICO_IMAGES + [OPERATOR_IMAGE] + GPU_OPERATOR_IMAGES:
            archive = _image_archive(docker_cli, tmp, ref)
            docker("cp", str(archive), "%s:/srv/src/%s" % (BUILDER, archive.name))
            extra.append({"ref": ref, "source": "docker-archive:/srv/src/%s" % archive.name})
        yield {"tmp": tmp, "images": extra}
    finally:
        for container in [BUILDER, SERVER] + list(FLEET.values()):
            docker("rm", "-f", container, check=False)
        docker("network", "rm", NETWORK, check=False)


@pytest.fixture(scope="module")
def bundle(site, ansible_playbook):
    """playbooks/bundle.yml, run twice (the second changes nothing); the controller's copy."""
    tmp = site["tmp"]
    inventory = _inventory(tmp / "hosts.yml")
    args = ["-e", json.dumps({"bundle_dir": str(tmp / "bundle"),
                              "bundle_stages": ["os_prereqs", "nvidia_driver", "container_runtime", "bundle_server",
                                                "images", "files"],
                              "bundle_images_extra": site["images"],
                              # The GPU Operator's chart and helm too (their URLs on the builder).
                              "kubegpu_gpu_operator": True,
                              "gpu_operator_chart_repo_url": "http://127.0.0.1:%d" % CHART_PORT,
                              "gpu_operator_helm_url": "http://127.0.0.1:%d/%s" % (CHART_PORT, HELM_TARBALL)})]
    run_playbook = ansible_playbook
    started = time.monotonic()
    first = run_playbook("playbooks/bundle.yml", inventory, *args, timeout=1800)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output[-6000:]
    print("bundle.yml: %.0f s" % (time.monotonic() - started))
    again = run_playbook("playbooks/bundle.yml", inventory, *args, timeout=900)
    assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
    assert _recap(again.stdout)["builder"]["changed"] == 0, again.stdout[-4000:]
    manifest = json.loads((tmp / "bundle" / "manifest.json").read_text())
    return {"inventory": inventory, "tmp": tmp, "manifest": manifest, "output": output, "play": ansible_playbook}


def test_bundle_holds_the_fleets_packages_images_and_a_manifest(bundle):
    manifest = bundle["manifest"]
    paths = [f["path"] for f in manifest["files"]]
    debs = [p.rsplit("/", 1)[1].split("_")[0] for p in paths if p.endswith(".deb")]
    # os_prereqs' and container_runtime's packages, the server's, and their dependencies down to libc6.
    for name in ("conntrack", "socat", "jq", "libjq1", "containerd", "runc", "python3-tomlkit", "chrony",
                 "docker-registry", "skopeo", "libc6"):
        assert name in debs, (name, sorted(debs))
    assert "apt/debian-bookworm/dists/kubegpu/InRelease" in paths
    versions = manifest["metadata"]["package_versions"]["debian-bookworm"]
    assert versions["containerd"].startswith("1.6.") and set(debs) == set(versions), versions
    assert "apt/debian-bookworm/dists/kubegpu/main/binary-amd64/Packages" in paths
    # the settings' images, Calico's components, the operator image its manifest names and the image the
    # GPU Operator's chart runs with kubegpu's values: nothing else
    images = sorted(i["ref"] for i in manifest["metadata"]["images"])
    assert images == sorted(list(IMAGES.values()) + CALICO_IMAGES + [OPERATOR_IMAGE] + GPU_OPERATOR_IMAGES), images
    # the chart as a chart repository of its own, and helm's tarball with its checksum file
    chart_dir = "charts/gpu_operator_chart_repo_url/"
    assert {chart_dir + "index.yaml", chart_dir + "gpu-operator-%s.tgz" % CHART_VERSION} <= set(paths), paths
    assert "files/gpu_operator_helm_url/%s" % HELM_TARBALL in paths
    assert "files/gpu_operator_helm_checksum/%s.sha256sum" % HELM_TARBALL in paths
    assert len([p for p in paths if p.startswith("images/")]) == len(images)
    assert "files/calico_operator_manifest_url/%s" % CALICO in paths
    assert manifest["total_bytes"] == sum(f["size"] for f in manifest["files"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", f["sha256"]) for f in manifest["files"])
    sizes = json.dumps(manifest["by_kind"])
    print("bundle: %d files, %.1f MB (%s)" % (manifest["count"], manifest["total_bytes"] / 1e6, sizes))
    mirrors = yaml.safe_load((bundle["tmp"] / "bundle" / "mirrors.yml").read_text())
    assert mirrors["kubegpu_offline"] is True
    assert mirrors["kubegpu_bundle_apt"] == {"debian-bookworm": "{{ kubegpu_bundle_url }}/apt/debian-bookworm"}
    # every registry pulled from: the images', kubeadm's (kubernetes_image_repository), Calico's (quay.io)
    assert sorted(m["registry"] for m in mirrors["container_runtime_registry_mirrors"]) == [
        "kubegpu.test", "nvcr.io", "quay.io", "registry.k8s.io"]
    assert mirrors["gpu_operator_chart_repo_url"] == "{{ kubegpu_bundle_url }}/charts/gpu_operator_chart_repo_url"
    assert all(m["mirrors"] == [{"host": "http://{{ kubegpu_bundle_registry }}"}]
               for m in mirrors["container_runtime_registry_mirrors"])
    assert "BEGIN PGP PUBLIC KEY BLOCK" in mirrors["kubegpu_bundle_apt_key"]


@pytest.fixture(scope="module")
def served(bundle):
    args = ["-e", "bundle_server_archive=%s" % (bundle["tmp"] / "bundle.tar")]
    run_playbook = bundle["play"]
    first = run_playbook("playbooks/bundle_serve.yml", bundle["inventory"], *args, timeout=900)
    assert first.returncode == 0, (first.stdout + first.stderr)[-6000:]
    again = run_playbook("playbooks/bundle_serve.yml", bundle["inventory"], *args, timeout=600)
    assert again.returncode == 0 and _recap(again.stdout)["server"]["changed"] == 0, again.stdout[-4000:]
    check = run_playbook("playbooks/bundle_serve.yml", bundle["inventory"], *args, "--check", timeout=600)
    assert check.returncode == 0 and _recap(check.stdout)["server"]["changed"] == 0, check.stdout[-4000:]
    return dict(bundle, serve_args=args)


def _fleet_args(bundle):
    return ["-e", "@%s" % (bundle["tmp"] / "bundle" / "mirrors.yml"),
            "-e", json.dumps({"kubegpu_bundle_url": "http://%s:8080" % SERVER,
                              "kubegpu_bundle_registry": "%s:5000" % SERVER})]


def test_stages_1_to_4_converge_from_the_bundle_alone(served, docker_cli):
    docker, docker_exec, run_playbook = docker_cli.run, docker_cli.exec, served["play"]
    # No route out: Debian's archive is unreachable from the fleet.
    probe = docker("exec", FLEET["w1"], "python3", "-c",
                   "import urllib.request; urllib.request.urlopen('http://deb.debian.org/debian/', timeout=5)",
                   check=False)
    assert probe.returncode != 0, "the fleet reaches deb.debian.org"
    args = _fleet_args(served)
    for playbook in STAGES:
        result = run_playbook(playbook, served["inventory"], *args, timeout=1200)
        assert result.returncode == 0, (playbook, (result.stdout + result.stderr)[-6000:])
    for playbook in STAGES:
        result = run_playbook(playbook, served["inventory"], *args, timeout=900)
        recap = _recap(result.stdout)
        assert result.returncode == 0 and all(v["changed"] == 0 for v in recap.values()), (playbook, result.stdout[-4000:])
    # check mode on the converged fleet: nothing to change, nothing refused
    check = run_playbook("playbooks/os_prereqs.yml", served["inventory"], *args, "--check", timeout=900)
    assert check.returncode == 0 and all(v["changed"] == 0 for v in _recap(check.stdout).values()), check.stdout[-4000:]
    for container in FLEET.values():
        installed = docker_exec(container, "dpkg-query", "-W", "-f", "${Package} ${Status}\\n", "containerd", "conntrack",
                                "socat", "python3-tomlkit")
        assert installed.count(" ok installed") == 4, installed      # containerd: "hold ok installed"
        sources = docker_exec(container, "apt-get", "indextargets", "--format", "$(SITE)")
        assert set(sources.split()) == {"http://%s:8080/apt/debian-bookworm" % SERVER}, sources
    # containerd pulls a bundled image through the mirror stage 4 wrote for its registry.
    for ref in (IMAGES["validate_smoke_image"], CALICO_IMAGES[0]):
        pulled = docker("exec", FLEET["w1"], "ctr", "-n", "k8s.io", "images", "pull", "--hosts-dir",
                        "/etc/containerd/certs.d", ref, check=False, timeout=300)
        assert pulled.returncode == 0, pulled.stdout + pulled.stderr


def test_preflight_refuses_a_url_outside_the_mirrors(served):
    run_playbook = served["play"]
    args = _fleet_args(served) + ["-e", "calico_operator_manifest_url=https://raw.githubusercontent.com/x/tigera-operator.yaml"]
    result = run_playbook("playbooks/preflight.yml", served["inventory"], *args, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "variable calico_operator_manifest_url" in output and "outside the mirrors" in output, output[-4000:]


def test_a_tampered_file_of_the_served_bundle_is_refused_by_name(served, docker_cli):
    docker_exec, run_playbook = docker_cli.exec, served["play"]
    deb = [f["path"] for f in served["manifest"]["files"] if f["path"].endswith(".deb") and "/jq_" in f["path"]][0]
    docker_exec(SERVER, "sh", "-c", "printf x >> /srv/kubegpu-bundle/%s" % deb)
    try:
        result = run_playbook("playbooks/bundle_serve.yml", served["inventory"], *served["serve_args"], timeout=600)
        output = result.stdout + result.stderr
        assert result.returncode != 0, output[-3000:]
        assert "%s: " % deb in output and "tampered or damaged" in output, output[-3000:]
        assert "Load the images" not in output.split("Verify the served bundle")[-1], output[-3000:]
    finally:
        docker_exec(SERVER, "sh", "-c", "truncate -s -1 /srv/kubegpu-bundle/%s" % deb)
