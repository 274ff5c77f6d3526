# SPDX-License-Identifier: Apache-2.0
"""container_runtime lifecycle on a real Debian 12 systemd host (a GPU node by group).

converge -> hand edits between runs (a user's own runtime table and debug level in
config.toml, a user's own certs.d/<registry>/hosts.toml, and a hand change of a key we
own) -> converge keeps the user's settings, restores ours, backs up before the write
-> converge again is changed=0 -> a corrupt config.toml is reported (host, path, fix)
and left byte-for-byte alone -> the NVIDIA repository, unreachable here, stops the
run cleanly with host, URL and fix, and leaves no dead apt source behind.

containerd's own `containerd config dump` is the judge of every config.
"""

from __future__ import annotations

import re
import tomllib

import pytest

pytestmark = pytest.mark.integration

CONTAINER = "kubegpu-cr-it-gpu1"
PLAYBOOK = "playbooks/container_runtime.yml"
CONFIG = "/etc/containerd/config.toml"
CRI = 'plugins."io.containerd.grpc.v1.cri"'
USER_EDIT = f"""
# my own runtime, not kubegpu's
[{CRI}.containerd.runtimes.kata]
  runtime_type = "io.containerd.kata.v2"

[debug]
  level = "debug"
"""
USER_HOSTS_TOML = '[host."https://mirror.example.org"]\n  capabilities = ["pull", "resolve"]\n'


def recap(output, host="gpu1"):
    """{'ok': n, 'changed': n, 'failed': n, ...} of the host's PLAY RECAP line."""
    match = re.search(r"^%s\s+:\s+(.*)$" % re.escape(host), output, re.M)
    assert match, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@pytest.fixture(scope="module")
def gpu_host(systemd_hosts, tmp_path_factory, gpu_node_inventory):
    """A Debian 12 host in groups k8s_cluster and gpu, and its inventory file."""
    systemd_hosts(CONTAINER, hostname="gpu1")
    return gpu_node_inventory(tmp_path_factory.mktemp("cr") / "hosts.yml", CONTAINER)


def converge(ansible_playbook, inventory, *args):
    return ansible_playbook(PLAYBOOK, inventory, *args, timeout=420,
                            ANSIBLE_PIPELINING="True")


def dump(docker_cli):
    return tomllib.loads(docker_cli.exec(CONTAINER, "containerd", "config", "dump"))


def backups(docker_cli):
    out = docker_cli.exec(CONTAINER, "sh", "-c", "ls -1 /etc/containerd/ | grep '^config.toml\\..*~$' || true")
    return out.split()


def sha256(docker_cli, path):
    return docker_cli.exec(CONTAINER, "sha256sum", path).split()[0]


def test_lifecycle(gpu_host, ansible_playbook, docker_cli):
    # 1. First converge: Debian's containerd, our settings, CRI loaded.
    first = converge(ansible_playbook, gpu_host)
    assert first.returncode == 0, first.stdout[-4000:]
    assert recap(first.stdout)["failed"] == 0
    cri = dump(docker_cli)["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is True
    nvidia = cri["containerd"]["runtimes"]["nvidia"]
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert nvidia["options"]["SystemdCgroup"] is True
    assert cri["containerd"]["default_runtime_name"] == "nvidia"
    assert "absent on this host" in re.sub(r"\s+", " ", first.stdout)
    assert len(backups(docker_cli)) == 1, "the first config write made no backup"

    # 2. Hand edits: the user's own table and key, their own registry host file, and a
    #    key we own changed by hand (sandbox image).
    docker_cli.exec(CONTAINER, "sh", "-c", f"cat >> {CONFIG} <<'EOF'\n{USER_EDIT}EOF")
    docker_cli.exec(CONTAINER, "sed", "-i", "s|pause:3.10.1|pause:3.9|", CONFIG)
    docker_cli.exec(CONTAINER, "sh", "-c",
                    "mkdir -p /etc/containerd/certs.d/example.org && cat > "
                    f"/etc/containerd/certs.d/example.org/hosts.toml <<'EOF'\n{USER_HOSTS_TOML}EOF")

    second = converge(ansible_playbook, gpu_host, "--diff")
    assert second.returncode == 0, second.stdout[-4000:]
    assert recap(second.stdout)["changed"] >= 1
    effective = dump(docker_cli)
    cri = effective["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "registry.k8s.io/pause:3.10.1", "our key was not restored"
    assert cri["containerd"]["runtimes"]["kata"]["runtime_type"] == "io.containerd.kata.v2"
    assert effective["debug"]["level"] == "debug"
    assert "# my own runtime, not kubegpu's" in docker_cli.exec(CONTAINER, "cat", CONFIG)
    assert docker_cli.exec(CONTAINER, "cat", "/etc/containerd/certs.d/example.org/hosts.toml") \
        == USER_HOSTS_TOML
    assert len(backups(docker_cli)) == 2, "the second config write made no backup"
    assert "ok" in docker_cli.exec(CONTAINER, "ctr", "plugins", "ls")

    # 3. Nothing left to do.
    third = converge(ansible_playbook, gpu_host)
    assert third.returncode == 0, third.stdout[-4000:]
    assert recap(third.stdout)["changed"] == 0, third.stdout[-4000:]

    # 4. A corrupt config.toml is reported and not overwritten; containerd keeps running.
    docker_cli.exec(CONTAINER, "sh", "-c", f"echo '[plugins.broken' >> {CONFIG}")
    before = sha256(docker_cli, CONFIG)
    broken = converge(ansible_playbook, gpu_host)
    assert broken.returncode != 0
    assert recap(broken.stdout)["failed"] == 1
    message = re.sub(r"\s+", " ", broken.stdout)
    assert "gpu1: /etc/containerd/config.toml was NOT changed" in message
    assert "not valid TOML" in message
    assert "Fix:" in message
    assert sha256(docker_cli, CONFIG) == before
    assert len(backups(docker_cli)) == 2
    assert docker_cli.exec(CONTAINER, "systemctl", "is-active", "containerd").strip() == "active"


def test_unreachable_nvidia_repository_stops_cleanly(gpu_host, ansible_playbook, docker_cli):
    result = converge(ansible_playbook, gpu_host, "-e", "container_runtime_nvidia_toolkit_install=true",
                      "--tags", "install")
    assert result.returncode != 0
    assert recap(result.stdout)["failed"] == 1
    out = re.sub(r"\s+", " ", result.stdout)
    assert "gpu1 is a GPU node but the NVIDIA Container Toolkit could not be installed" in out, out[-3000:]
    assert "https://nvidia.github.io/libnvidia-container/stable" in out
    assert "container_runtime_nvidia_toolkit_install: false" in out
    sources = docker_cli.exec(CONTAINER, "ls", "/etc/apt/sources.list.d")
    assert "nvidia" not in sources
