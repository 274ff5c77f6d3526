# SPDX-License-Identifier: Apache-2.0
"""tests/sim/build-debs.sh: three .debs (kubeadm, kubelet: SIMULATION; kubectl: the real
binary) with the expected control fields and files, rebuilt only when inputs change."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "tests" / "sim" / "build-debs.sh"
KUBECTL = Path(os.environ.get("KUBECTL") or ROOT / ".cache" / "helm" / "kubectl")
VERSION = "1.35.4-1.1"

pytestmark = [
    pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb missing"),
    pytest.mark.skipif(not os.access(KUBECTL, os.X_OK), reason="no kubectl binary: run scripts/fetch-helm.sh"),
]


@pytest.fixture(scope="module")
def debs(tmp_path_factory):
    out = tmp_path_factory.mktemp("debs")
    first = subprocess.run([str(SCRIPT), str(out)], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, KUBECTL=str(KUBECTL)), check=False)
    assert first.returncode == 0, first.stderr
    assert "built" in first.stdout
    return out


def _info(deb, field):
    return subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, check=True).stdout.strip()


def _files(deb):
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].lstrip(".") for line in listing.splitlines()}, listing


def test_three_debs(debs):
    assert sorted(p.name for p in debs.glob("*.deb")) == [
        "kubeadm_%s_all.deb" % VERSION, "kubectl_%s_amd64.deb" % VERSION, "kubelet_%s_all.deb" % VERSION]


@pytest.mark.parametrize("name,arch,simulation", [("kubeadm", "all", True), ("kubelet", "all", True),
                                                  ("kubectl", "amd64", False)])
def test_control_fields(debs, name, arch, simulation):
    deb = debs / ("%s_%s_%s.deb" % (name, VERSION, arch))
    assert _info(deb, "Package") == name
    assert _info(deb, "Version") == VERSION
    assert _info(deb, "Architecture") == arch
    assert _info(deb, "Maintainer") == "kubegpu tests"
    assert ("SIMULATION" in _info(deb, "Description")) == simulation
    depends = _info(deb, "Depends")
    for dep in filter(None, (d.strip().split(" ")[0] for d in depends.split(","))):
        assert dep in ("python3", "openssl", "systemd")
    info = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: %s" % name in info


def test_kubeadm_contents(debs):
    files, listing = _files(debs / ("kubeadm_%s_all.deb" % VERSION))
    for path in ("/usr/bin/kubeadm", "/usr/lib/kubegpu-sim/kubeadm/kubegpu_sim/kubeadm.py",
                 "/usr/lib/kubegpu-sim/kubeadm/kubegpu_sim/pki.py", "/usr/lib/kubegpu-sim/kubeadm/kubegpu_sim/client.py",
                 "/usr/lib/kubegpu-sim/kubeadm/pylib/yaml/__init__.py",
                 "/usr/share/kubegpu-sim/schemas/pod-v1.json", "/usr/share/kubegpu-sim/schemas/deployment-apps-v1.json",
                 "/usr/share/kubegpu-sim/units/kube-apiserver-sim.service",
                 "/usr/share/kubegpu-sim/units/kube-controller-manager-sim.service"):
        assert path in files, path
    assert not any(p.endswith(".so") or "__pycache__" in p for p in files)
    assert "root/root" in listing and os.environ.get("USER", "x") + "/" not in listing.replace("root/root", "")


def test_kubelet_contents(debs, tmp_path):
    deb = debs / ("kubelet_%s_all.deb" % VERSION)
    files, _listing = _files(deb)
    for path in ("/usr/bin/kubelet", "/usr/lib/systemd/system/kubelet.service",
                 "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf",
                 "/usr/lib/kubegpu-sim/kubelet/kubegpu_sim/kubeadm.py",
                 "/usr/lib/kubegpu-sim/kubelet/pylib/yaml/__init__.py"):
        assert path in files, path
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    unit = (tmp_path / "usr/lib/systemd/system/kubelet.service").read_text()
    assert "Restart=always" in unit and "RestartSec=10" in unit
    dropin = (tmp_path / "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf").read_text()
    assert "EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env" in dropin
    assert "$KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS" in dropin
    wrapper = (tmp_path / "usr/bin/kubelet").read_text()
    assert "PYTHONPATH=/usr/lib/kubegpu-sim/kubelet" in wrapper and "python3 -m kubegpu_sim.kubelet" in wrapper


def test_kubeadm_wrapper_runs_from_the_package(debs, tmp_path):
    """The packaged tree runs: /usr/bin/kubeadm's module with the vendored PyYAML."""
    deb = debs / ("kubeadm_%s_all.deb" % VERSION)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(tmp_path / "usr/lib/kubegpu-sim/kubeadm")}
    result = subprocess.run(["python3", "-S", "-m", "kubegpu_sim.kubeadm", "version", "-o", "short"],
                            capture_output=True, text=True, env=env, cwd=str(tmp_path), check=True)
    assert result.stdout == "v1.35.4\n"
    probe = subprocess.run(["python3", "-S", "-c", "from kubegpu_sim import yamlish; import yaml; "
                            "print(yaml.__file__); print(yamlish.load('a: 1'))"],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path), check=True)
    assert "pylib/yaml" in probe.stdout and "{'a': 1}" in probe.stdout


def test_kubectl_is_the_real_binary(debs, tmp_path):
    deb = debs / ("kubectl_%s_amd64.deb" % VERSION)
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path)], check=True)
    binary = tmp_path / "usr/bin/kubectl"
    assert binary.read_bytes() == KUBECTL.read_bytes()
    version = subprocess.run([str(binary), "version", "--client"], capture_output=True, text=True, check=True).stdout
    assert "v1.35" in version


def test_rebuild_is_skipped_when_nothing_changed(debs):
    before = {p.name: p.stat().st_mtime_ns for p in debs.glob("*.deb")}
    again = subprocess.run([str(SCRIPT), str(debs)], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, KUBECTL=str(KUBECTL)), check=False)
    assert again.returncode == 0 and "up to date" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in debs.glob("*.deb")} == before
