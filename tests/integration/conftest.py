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
    yield _systemd_starter(started)
    for name in started:
        docker("rm", "-f", name, check=False)


def _systemd_starter(started):
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
    return start


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


SIM = REPO / "tests" / "sim"
SIM_DEBS = REPO / ".cache" / "sim-debs"
# The simulated GPUs' PCI trees, written out by scripts/bootstrap.sh (tests/sim/gpu/README.md).
SIM_GPU = REPO / ".cache" / "sim-gpu"
AUDIT_LOG = "/var/log/kubegpu-sim/audit.log"
APT_CACHE = "/var/cache/kubegpu-apt"
# The simulated API server takes kube-apiserver's --audit-log-path from its environment
# too (tests/sim/README.md, "Audit log"): a drop-in, in place before kubeadm init writes
# the unit, turns it on without touching the command line kubeadm writes.
AUDIT_DROP_IN = "[Service]\nEnvironment=KUBEGPU_SIM_AUDIT_LOG_PATH=%s\n" % AUDIT_LOG


def sim_inventory_vars(**extra):
    """Inventory variables for a cluster on the simulated control plane (tests/sim/README.md),
    the same as Molecule's (.config/molecule/config.yml): the simulation's packages through
    the kubernetes role's air-gap path, Calico's stand-in manifest, pod and service networks
    away from docker's bridge, no NVIDIA toolkit (its repository is unreachable; the
    stand-in runtime program is copied onto GPU hosts by sim_k8s_hosts)."""
    data = {
        "ansible_connection": "community.docker.docker",
        "ansible_facts_parallel": False,
        "kubegpu_pod_cidr": "192.168.0.0/16",
        "kubegpu_service_cidr": "10.96.0.0/12",
        "container_runtime_nvidia_toolkit_install": False,
        "container_runtime_registry_mirrors": [
            {"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}],
        "kubernetes_package_source": "local",
        "kubernetes_local_package_dir": str(SIM_DEBS),
        "kubernetes_admin_user": "root",
        "calico_operator_manifest_url": "/etc/kubegpu-sim/tigera-operator.yaml",
        "calico_node_ready_timeout": 180,
    }
    data.update(extra)
    return data


class SimCluster:
    """Reads the simulated cluster from its first control plane: the REAL kubectl with
    admin.conf, and the API server's audit log (one audit.k8s.io/v1 Event per write)."""

    def __init__(self, first_cp):
        self.first_cp = first_cp

    def kubectl(self, *args, check=True):
        return docker("exec", self.first_cp, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", *args,
                      check=check, timeout=120)

    def json(self, *args):
        import json
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def audit(self, start=0):
        """The audit events from line `start` on (audit_mark() gives the current end)."""
        import json
        text = docker("exec", self.first_cp, "sh", "-c", "cat %s 2>/dev/null; true" % AUDIT_LOG).stdout
        return [json.loads(line) for line in text.splitlines()[start:] if line.strip()]

    def audit_mark(self):
        return len(self.audit())


def audit_writes(events, resource, verb=None, name=None, sub=None, user=None, ok=True):
    """The events of writes to `resource` (plural) that match; dry runs never count."""
    found = []
    for event in events:
        ref = event["objectRef"]
        if ref.get("resource") != resource or ref.get("subresource") != sub or "annotations" in event:
            continue
        if verb is not None and event["verb"] != verb:
            continue
        if name is not None and ref.get("name") != name:
            continue
        if user is not None and event["user"]["username"] != user:
            continue
        if ok and event["responseStatus"]["code"] >= 300:
            continue
        found.append(event)
    return found


@pytest.fixture(scope="session")
def sim_debs():
    """The simulation's .debs (tests/sim/build-debs.sh; rebuilt only when an input changed)."""
    result = subprocess.run(["bash", str(SIM / "build-debs.sh")], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("cannot build the simulation's packages: " + (result.stderr or result.stdout)[-400:])
    return SIM_DEBS


def _sim_hosts_factory(start):
    """Factory: hosts({hostname: container}, first_cp=hostname, gpu={hostname: tree})
    -> SimCluster.

    Starts systemd test hosts for a cluster on the simulated control plane
    (tests/sim/README.md) as molecule/shared/prepare.yml prepares them: the shared apt
    archive, Calico's stand-in manifests on the first control plane, a simulated GPU
    (.cache/sim-gpu/<tree>, written from tests/sim/gpu/<tree>.json, over /sys/bus/pci/devices) and the stand-in NVIDIA runtime
    program on GPU hosts; plus the API server's audit log switched on (drop-in) on the
    first control plane. Nothing of Kubernetes is installed: the playbooks do that.
    """
    def hosts(containers, first_cp, gpu=None):
        gpu = gpu or {}
        os.makedirs(APT_CACHE, exist_ok=True)
        for hostname, container in containers.items():
            extra = ["-v", "%s:/var/cache/apt/archives:rw" % APT_CACHE]
            if hostname in gpu:
                tree = SIM_GPU / gpu[hostname]
                if not tree.is_dir():
                    pytest.fail("no simulated PCI tree at %s: scripts/bootstrap.sh writes it from tests/sim/gpu/%s.json"
                                % (tree, gpu[hostname]))
                extra += ["-v", "%s:/sys/bus/pci/devices:ro" % tree]
            start(container, hostname=hostname, extra_args=extra)
            if hostname in gpu:
                docker("cp", str(SIM / "toolkit" / "nvidia-container-runtime"),
                       "%s:/usr/bin/nvidia-container-runtime" % container)
        cp = containers[first_cp]
        docker("exec", cp, "mkdir", "-p", "/etc/kubegpu-sim", "/etc/systemd/system/kube-apiserver-sim.service.d")
        for manifest in (SIM / "manifests").iterdir():
            docker("cp", str(manifest), "%s:/etc/kubegpu-sim/%s" % (cp, manifest.name))
        docker("exec", cp, "sh", "-c", "printf '%s' > /etc/systemd/system/kube-apiserver-sim.service.d/10-audit.conf"
               % AUDIT_DROP_IN.replace("\n", "\\n"))
        return SimCluster(cp)

    return hosts


@pytest.fixture(scope="module")
def sim_k8s_hosts(systemd_hosts, sim_debs):
    """The factory above; the hosts are removed at the end of the test module."""
    return _sim_hosts_factory(systemd_hosts)


# The day-2 cluster, shared by test_day2_orchestration.py and test_day2_reset_operator.py
# (one set-up of a few minutes instead of two): cp1 the first control plane, w1 an
# existing GPU worker (simulated H100), gpu2 a new GPU host (simulated H100), not joined.
DAY2_HOSTS = {"cp1": "kubegpu-d2-cp1", "w1": "kubegpu-d2-w1", "gpu2": "kubegpu-d2-gpu2"}
DAY2_GPU = {"w1": "h100-1gpu", "gpu2": "h100-1gpu"}


def day2_inventory(path, gpu_hosts=("w1", "gpu2"), workers_first=False, **extra):
    """Inventory of the day-2 cluster; returns path. Node names are the host names."""
    groups = {"kube_control_plane": {"hosts": {"cp1": {"ansible_host": DAY2_HOSTS["cp1"]}}},
              "kube_node": {"hosts": {"w1": {"ansible_host": DAY2_HOSTS["w1"]},
                                      "gpu2": {"ansible_host": DAY2_HOSTS["gpu2"]}}}}
    order = ["kube_node", "kube_control_plane"] if workers_first else ["kube_control_plane", "kube_node"]
    children = {g: groups[g] for g in order}
    children["k8s_cluster"] = {"children": {g: {} for g in order}}
    children["gpu"] = {"hosts": {h: {} for h in gpu_hosts}}
    data = {"all": {"vars": sim_inventory_vars(ansible_become=False, **extra), "children": children}}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def day2_cluster(sim_debs, tmp_path_factory):
    """cp1 + w1 made a cluster by site.yml --limit cp1,w1 (preflight and validate skipped:
    the set-up is not under test); gpu2 a fresh GPU host. Yields the SimCluster."""
    started = []
    cluster = _sim_hosts_factory(_systemd_starter(started))(DAY2_HOSTS, first_cp="cp1", gpu=DAY2_GPU)
    try:
        inventory = day2_inventory(tmp_path_factory.mktemp("day2") / "hosts.yml")
        result = run_playbook("playbooks/site.yml", inventory, "--limit", "cp1,w1", "--skip-tags", "preflight,validate",
                              timeout=900)
        assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
        yield cluster
    finally:
        # KUBEGPU_KEEP_TEST_HOSTS=1 leaves them running to look at after a failure.
        for name in started if not os.environ.get("KUBEGPU_KEEP_TEST_HOSTS") else ():
            docker("rm", "-f", name, check=False)


@pytest.fixture(scope="session")
def sim_helpers():
    """The simulation helpers above as a fixture (test modules do not import conftest):
    inventory_vars, audit_writes, day2_inventory, DAY2_HOSTS."""
    import types
    return types.SimpleNamespace(inventory_vars=sim_inventory_vars, audit_writes=audit_writes,
                                 day2_inventory=day2_inventory, DAY2_HOSTS=dict(DAY2_HOSTS))
