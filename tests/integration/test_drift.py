# SPDX-License-Identifier: Apache-2.0
"""Drift on a converged host is found and put right, and a re-run without drift
changes nothing (os_prereqs and container_runtime on a real Debian 12 systemd host, a
GPU node by group).

Every changing task of both stages is a module that reads, compares and acts in one run
(host_files, kernel_prereqs with swap, containerd_config, kubegpu.cluster.packages, systemd):
on a converged host each runs and reports ok, and no task is guarded by a prediction of
what its module would do. This proves it on a real host: a no-op re-run changes nothing;
and every kind of drift - a package removed, a hold released, a file edited or its mode
changed, a file or directory removed, a stray file, a unit stopped or disabled, a swap
line in fstab, a sysctl value, config.toml - is reported by check mode without being
touched, then put right by the next run, which is followed by one with nothing to do.
"""

from __future__ import annotations

import json
import re

import pytest

pytestmark = pytest.mark.integration

CONTAINER = "kubegpu-drift-it-gpu1"
PLAYBOOKS = ("playbooks/os_prereqs.yml", "playbooks/container_runtime.yml")
NOUVEAU = "/etc/modprobe.d/kubegpu-blacklist-nouveau.conf"
DROPIN = "/etc/systemd/system/chrony.service.d/kubegpu-container.conf"
HOSTS_TOML = "/etc/containerd/certs.d/docker.io/hosts.toml"
APT_PROXY = "/etc/apt/apt.conf.d/90kubegpu-proxy"
SYSCTL_FILE = "/etc/sysctl.d/99-kubegpu.conf"
MODULES_FILE = "/etc/modules-load.d/kubegpu.conf"
KERNEL_TASK = "Turn swap off, load the kernel modules and set the kernel parameters, now and at boot"
CONFIG_TOML = "/etc/containerd/config.toml"
MERGE_TASK = "Merge the settings into " + CONFIG_TOML
CR_FILES_TASK = "Write the registry host files, /etc/crictl.yaml and their directories"
OS_FILES_TASK = "Write this stage's files (apt proxy, nouveau blacklist, chrony container drop-in) and reboot marker line"
PACKAGES_TASK = "Install the base packages"
TIME_SYNC_TASK = "Enable and start the time sync service"
# One module run: enables containerd where it is not, starts it, waits for its socket.
START_TASK = "Start containerd, enable it at boot and wait for /run/containerd/containerd.sock"

# kubegpu.cluster.packages calls: on a converged host each reports ok, gives apt nothing
# (`installed` empty) and runs no module at all, the stage's own reading of dpkg's status
# handed to it (os_prereqs' facts, container_runtime's one reading of tomlkit and
# containerd; containerd already held).
PACKAGE_TASKS_HANDED = [PACKAGES_TASK, "Install tomlkit, needed by kubegpu.cluster.containerd_config",
                        "Install containerd"]

# Modules that read, compare and act in one run: on a converged host they run and report ok.
MODULES_OK_WHEN_CONVERGED = [OS_FILES_TASK, KERNEL_TASK, TIME_SYNC_TASK,
                             "Read which of tomlkit's and containerd's packages are installed", CR_FILES_TASK,
                             MERGE_TASK, START_TASK]

DRIFT = f"""
set -e
dpkg -r jq >/dev/null
apt-mark unhold containerd >/dev/null
echo '# hand edit' >> /etc/crictl.yaml
echo '# hand edit' >> {DROPIN}
chmod 0600 {NOUVEAU}
systemctl disable --now chrony 2>/dev/null
systemctl disable --now containerd 2>/dev/null
echo '/swapfile none swap sw 0 0' >> /etc/fstab
rm -r /etc/containerd/certs.d/docker.io
echo 'Acquire::http::Proxy "http://stale.example:3128";' > {APT_PROXY}
sed -i 's/^net.ipv4.ip_forward = 1$/net.ipv4.ip_forward = 0/' {SYSCTL_FILE}
echo 'vm.swappiness = 10' >> {SYSCTL_FILE}
rm {MODULES_FILE}
sed -i 's/SystemdCgroup = true/SystemdCgroup = false/' {CONFIG_TOML}
"""


def recap(output, host="gpu1"):
    """The host's PLAY RECAP counts, summed over the playbooks of the run."""
    lines = re.findall(r"^%s\s+:\s+(.*)$" % re.escape(host), output, re.M)
    assert len(lines) == len(PLAYBOOKS), output[-3000:]
    total = {}
    for line in lines:
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            total[key] = total.get(key, 0) + int(value)
    return total


def task_results(output, host="gpu1"):
    """Task name (role prefix dropped) -> the host's result: ok, changed, skipping, ..."""
    results = {}
    for block in re.split(r"\n(?=TASK \[)", output):
        match = re.match(r"TASK \[(?:[\w.]+ : )?(.*?)\]", block)
        if not match:
            continue
        status = re.search(r"^(ok|changed|skipping|failed|fatal): \[%s" % re.escape(host), block, re.M)
        if status:
            results[match.group(1)] = status.group(1)
    return results


@pytest.fixture(scope="module")
def gpu_host(systemd_hosts, tmp_path_factory, gpu_node_inventory):
    systemd_hosts(CONTAINER, hostname="gpu1")
    return gpu_node_inventory(tmp_path_factory.mktemp("drift") / "hosts.yml", CONTAINER)


def converge(ansible_playbook, inventory, *args, **env):
    return ansible_playbook(PLAYBOOKS[0], inventory, PLAYBOOKS[1], *args, timeout=600, **env)


def package_results(output, names, host="gpu1"):
    """Of a -v run with results as JSON: per task name, the host's kubegpu.cluster.packages result (what apt was
    given, how many modules ran)."""
    found = {}
    for block in re.split(r"\n(?=TASK \[)", output):
        match = re.match(r"TASK \[(?:[\w.]+ : )?(.*?)\]", block)
        if not match or match.group(1) not in names:
            continue
        result = re.search(r"^(ok|changed): \[%s\] => (\{.*\})$" % re.escape(host), block, re.M)
        if result:
            data = json.loads(result.group(2))
            found[match.group(1)] = (result.group(1), data["installed"], data["module_runs"])
    return found


def host(docker_cli, script):
    return docker_cli.exec(CONTAINER, "sh", "-c", script)


def test_drift_found_and_put_right(gpu_host, ansible_playbook, docker_cli):
    first = converge(ansible_playbook, gpu_host)
    assert first.returncode == 0, first.stdout[-4000:]

    # A re-run without drift: nothing changed, apt not started, nothing read twice.
    noop = converge(ansible_playbook, gpu_host, "-v", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    assert noop.returncode == 0, noop.stdout[-4000:]
    assert recap(noop.stdout)["changed"] == 0, noop.stdout[-4000:]
    results = task_results(noop.stdout)
    packages = package_results(noop.stdout, PACKAGE_TASKS_HANDED)
    assert packages == dict.fromkeys(PACKAGE_TASKS_HANDED, ("ok", [], 0)), packages
    modules = {name: results.get(name) for name in MODULES_OK_WHEN_CONVERGED}
    assert modules == dict.fromkeys(MODULES_OK_WHEN_CONVERGED, "ok"), modules

    before = {
        "crictl": host(docker_cli, "sha256sum /etc/crictl.yaml"),
        "fstab": host(docker_cli, "cat /etc/fstab"),
    }
    host(docker_cli, DRIFT)

    # Check mode sees the drift and changes nothing.
    check = converge(ansible_playbook, gpu_host, "--check")
    assert check.returncode == 0, check.stdout[-4000:]
    assert recap(check.stdout)["changed"] >= 8, check.stdout[-4000:]
    assert "dpkg-query: no packages found" in host(docker_cli, "dpkg-query -W jq 2>&1 || true") \
        or "not installed" in host(docker_cli, "dpkg -s jq 2>&1 || true")
    assert host(docker_cli, "stat -c %a " + NOUVEAU).strip() == "600"
    assert host(docker_cli, "tail -1 /etc/crictl.yaml").strip() == "# hand edit"
    assert host(docker_cli, "systemctl is-active containerd || true").strip() != "active"
    assert "net.ipv4.ip_forward = 0" in host(docker_cli, "cat " + SYSCTL_FILE)
    assert host(docker_cli, f"test -e {MODULES_FILE} && echo present || echo absent").strip() == "absent"
    assert "SystemdCgroup = false" in host(docker_cli, "cat " + CONFIG_TOML)

    fixed = converge(ansible_playbook, gpu_host)
    assert fixed.returncode == 0, fixed.stdout[-4000:]
    changed = {name for name, status in task_results(fixed.stdout).items() if status == "changed"}
    for name in [
        PACKAGES_TASK,
        # the hold released by the drift, put back by the package call
        "Install containerd",
        CR_FILES_TASK,
        OS_FILES_TASK,
        TIME_SYNC_TASK,
        START_TASK,
        KERNEL_TASK,
        MERGE_TASK,
    ]:
        assert name in changed, "%s did not put its drift right; changed: %s" % (name, sorted(changed))

    assert "install ok installed" in host(docker_cli, "dpkg -s jq")
    assert host(docker_cli, "apt-mark showhold").split() == ["containerd"]
    assert host(docker_cli, "sha256sum /etc/crictl.yaml") == before["crictl"]
    assert "# hand edit" not in host(docker_cli, "cat " + DROPIN)
    assert host(docker_cli, "stat -c %a " + NOUVEAU).strip() == "644"
    assert host(docker_cli, "systemctl is-active chrony; systemctl is-enabled chrony").split() == ["active", "enabled"]
    assert host(docker_cli, "systemctl is-active containerd; systemctl is-enabled containerd").split() == \
        ["active", "enabled"]
    fstab = host(docker_cli, "cat /etc/fstab")
    assert fstab.startswith(before["fstab"])
    assert "# kubegpu: swap off for kubelet: /swapfile none swap sw 0 0" in fstab
    assert "mirror.gcr.io" in host(docker_cli, "cat " + HOSTS_TOML)
    assert host(docker_cli, f"test -e {APT_PROXY} && echo present || echo absent").strip() == "absent"
    assert "io.containerd.grpc.v1" in host(docker_cli, "ctr plugins ls")
    sysctl = host(docker_cli, "cat " + SYSCTL_FILE)
    # The value is put back; the hand-written line for another key is kept (a merge).
    assert "net.ipv4.ip_forward = 1" in sysctl and "net.ipv4.ip_forward = 0" not in sysctl
    assert "vm.swappiness = 10" in sysctl
    assert host(docker_cli, "grep -v '^#' " + MODULES_FILE).split() == ["overlay", "br_netfilter"]
    config = host(docker_cli, "cat " + CONFIG_TOML)
    assert "SystemdCgroup = true" in config and "SystemdCgroup = false" not in config

    again = converge(ansible_playbook, gpu_host)
    assert again.returncode == 0, again.stdout[-4000:]
    assert recap(again.stdout)["changed"] == 0, again.stdout[-4000:]
