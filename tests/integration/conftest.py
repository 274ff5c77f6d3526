# SPDX-License-Identifier: Apache-2.0
"""Shared fixtures for tests that drive docker test hosts (systemd containers).

- ``systemd_hosts`` (module scope): a factory ``start(name, image=..., hostname=...)``
  that starts a systemd container with the options of ../../shared/TESTING.md, waits
  until systemd is up, and returns the container name; every container it started is
  removed when the test module ends.
- ``require_docker(image)``: skip (with the reason) when docker or the image is missing.
- ``ansible_env()`` / ``run_playbook(...)``: run ansible-playbook from the repository
  root (so ansible.cfg applies) with the collection resolved from this checkout and an
  in-memory fact cache (no facts leak between cases).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEFAULT_IMAGE = os.environ.get("KUBEGPU_TEST_IMAGE", "kubegpu-test:bookworm-r4")

SYSTEMD_RUN_OPTIONS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "SYS_MODULE",
    "--cap-add", "SYS_PTRACE",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/tmp",
]


def docker(*args, check=True, timeout=120):
    """Run the docker CLI, return the CompletedProcess (text)."""
    return subprocess.run(["docker", *args], capture_output=True, text=True,
                          check=check, timeout=timeout)


def require_docker(image=DEFAULT_IMAGE):
    """Skip the calling test/fixture when docker or the test image is unavailable."""
    if shutil.which("docker") is None:
        pytest.skip("docker CLI not found: integration tests need docker")
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.skip("docker daemon not reachable (docker info failed)")
    if docker("image", "inspect", image, check=False, timeout=30).returncode != 0:
        pytest.skip("test image %s missing: build it with scripts/images.sh" % image)


def docker_exec(container, *cmd, check=True, timeout=120):
    """Run a command in a container, return its stdout."""
    return docker("exec", container, *cmd, check=check, timeout=timeout).stdout


def container_network(container):
    """The container's eth0 network on docker's bridge, e.g. '172.17.0.0/16'."""
    fmt = "{{range .NetworkSettings.Networks}}{{.IPAddress}}/{{.IPPrefixLen}} {{end}}"
    first = docker("inspect", "-f", fmt, container).stdout.split()[0]
    import ipaddress
    return str(ipaddress.ip_interface(first).network)


@pytest.fixture(scope="module")
def systemd_hosts():
    """Factory: start(name, image=DEFAULT_IMAGE, hostname=None, extra_args=()) -> name.

    extra_args go to `docker run` (e.g. a bind mount); the container is removed at
    the end of the test module.
    """
    started = []

    def start(name, image=DEFAULT_IMAGE, hostname=None, extra_args=()):
        require_docker(image)
        docker("rm", "-f", name, check=False)
        docker("run", "-d", "--name", name, "--hostname", hostname or name,
               *SYSTEMD_RUN_OPTIONS, *extra_args, image, "/lib/systemd/systemd")
        started.append(name)
        # Generous: on a loaded 2-core machine a boot can take over a minute.
        deadline = time.monotonic() + 240
        state = ""
        while time.monotonic() < deadline:
            state = docker("exec", name, "systemctl", "is-system-running",
                           check=False).stdout.strip()
            if state in ("running", "degraded"):
                return name
            time.sleep(1)
        raise RuntimeError("container %s: systemd not up after 240 s (state %r)" % (name, state))

    yield start
    for name in started:
        docker("rm", "-f", name, check=False)


def ansible_env(**extra):
    """Environment for ansible-playbook run from the repository root."""
    site = Path(VENV_BIN).parent / "lib" / ("python%d.%d" % sys.version_info[:2]) / "site-packages"
    env = dict(os.environ)
    env.update({
        "PATH": "%s:%s" % (VENV_BIN, env.get("PATH", "")),
        "ANSIBLE_COLLECTIONS_PATH": "%s:%s" % (REPO / ".collections", site / "ansible_collections"),
        "ANSIBLE_CACHE_PLUGIN": "memory",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    })
    env.update(extra)
    return env


def run_playbook(playbook, inventory, *args, timeout=300, **env):
    """Run ansible-playbook from the repo root; return CompletedProcess (stdout+stderr)."""
    cmd = [str(Path(VENV_BIN) / "ansible-playbook"), "-i", str(inventory), str(playbook), *args]
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(**env), capture_output=True,
                          text=True, timeout=timeout, check=False)


def write_gpu_node_inventory(path, container, host="gpu1"):
    """Inventory of one Debian test host in groups k8s_cluster and gpu; returns path."""
    path.write_text(yaml.safe_dump({"all": {
        "vars": {
            "ansible_connection": "community.docker.docker",
            # Parallel fact modules over docker exec time out on busy CI machines.
            "ansible_facts_parallel": False,
            # NVIDIA's repository is unreachable here; the toolkit is declared absent.
            "container_runtime_nvidia_toolkit_install": False,
            "container_runtime_registry_mirrors": [
                {"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}],
        },
        "children": {
            "k8s_cluster": {"hosts": {host: {"ansible_host": container}}},
            "gpu": {"hosts": {host: None}},
        },
    }}))
    return path


@pytest.fixture(scope="session")
def gpu_node_inventory():
    """write_gpu_node_inventory(path, container, host='gpu1') as a fixture."""
    return write_gpu_node_inventory


@pytest.fixture(scope="session")
def ansible_environment():
    """ansible_env(**extra) as a fixture: the environment ansible-playbook runs with."""
    return ansible_env


@pytest.fixture(scope="session")
def ansible_playbook():
    """run_playbook(playbook, inventory, *args, timeout=300, **env) as a fixture."""
    return run_playbook


@pytest.fixture(scope="session")
def docker_cli():
    """The docker helpers as a fixture (works under any pytest import mode)."""
    class _Docker:
        run = staticmethod(docker)
        exec = staticmethod(docker_exec)
        network = staticmethod(container_network)
    return _Docker


FAKE_DIR = "/kubegpu-fake"
FAKES = REPO / "tests" / "fakes"


def _openssl(*args, data=None):
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def fake_k8s_hosts(systemd_hosts, tmp_path_factory):
    """Factory: hosts({hostname: container}) -> the fakes' shared state directory.

    Starts systemd hosts with the recording fakes of kubeadm/kubectl/helm (tests/fakes)
    in /usr/local/bin and one state directory bind-mounted at /kubegpu-fake on all of
    them. The state holds a real CA (made by openssl) whose hash `kubeadm init` (fake)
    prints, computed by openssl too, not by our code, and in pylib/ a copy of the
    controller's PyYAML (pure Python) for the helm fake's values files: the test
    images have no python3-yaml.
    """
    def hosts(containers):
        if shutil.which("openssl") is None:
            pytest.skip("openssl not installed")
        state = tmp_path_factory.mktemp("kubegpu-fake")
        state.chmod(0o777)
        _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(state / "ca.key"))
        _openssl("req", "-x509", "-new", "-key", str(state / "ca.key"), "-subj", "/CN=kubernetes",
                 "-days", "2", "-out", str(state / "ca.crt"))
        pubkey = _openssl("x509", "-pubkey", "-noout", "-in", str(state / "ca.crt"))
        der = _openssl("pkey", "-pubin", "-outform", "der", data=pubkey)
        digest = _openssl("dgst", "-sha256", "-hex", data=der).decode().split()[-1]
        (state / "ca-hash").write_text("sha256:%s\n" % digest)
        shutil.copytree(Path(yaml.__file__).parent, state / "pylib" / "yaml",
                        ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        for hostname, container in containers.items():
            systemd_hosts(container, hostname=hostname, extra_args=("-v", "%s:%s" % (state, FAKE_DIR)))
            for fake in ("kubeadm", "kubectl", "helm"):
                docker("cp", str(FAKES / fake), "%s:/usr/local/bin/%s" % (container, fake))
        return state

    return hosts
