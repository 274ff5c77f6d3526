# SPDX-License-Identifier: Apache-2.0
"""Fault drills on a 3-host fleet (cp1, w1, w2: Debian 12 systemd test hosts).

site.yml runs with the stages that can run here (the skip-tags of Molecule and the
lab). The drills run in file order on one fleet, each building on the last; the
outcomes, with output excerpts, are written up in docs/fault-drills.md.

1. test_package_manager_faults (fresh fleet, first converge):
   - w1: dpkg's lock /var/lib/dpkg/lock-frontend is held for the whole run (an fcntl
     lock, the kind apt/dpkg take: `flock(1)` would not block them): w1 waits a bounded
     time, then fails with a message naming the lock, and only w1;
   - w2: dpkg was interrupted (a pending journal in /var/lib/dpkg/updates): w2 fails
     at once with apt's own message, and only w2;
   - cp1 goes through stages 1-2 all the same.
   The lock is then released and the operator's fix for w2 (`dpkg --configure -a`) run.
2. test_interrupted_converge: ansible-playbook is SIGKILLed at a random task (seeded:
   KUBEGPU_DRILL_SEED) while w2 converges.
3. test_host_lost_mid_run: w2 is killed (docker kill: power loss) once preflight has
   passed and stage 2 has started: the recap names it unreachable, cp1 finishes and
   w1 (its lock now free) converges.
4. test_next_run_converges: w2 is powered on again; the next run converges it with no
   manual cleanup, changed=0 on cp1 and w1, no managed file carries a duplicated
   line, and config.toml parses (TOML refuses a repeated key) and satisfies containerd.

Hand edits and a corrupt config.toml are drilled by test_container_runtime_lifecycle.py.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

# Not part of `make test`: the drills kill hosts and ansible-playbook at random tasks
# and take ~8 minutes; `make drills` runs them (docs/fault-drills.md).
pytestmark = pytest.mark.drill

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SKIP_TAGS = "--skip-tags=kubernetes,calico,nvidia_device_plugin,gpu_node_labels,validate"
HOSTS = {"cp1": "kubegpu-drill-cp1", "w1": "kubegpu-drill-w1", "w2": "kubegpu-drill-w2"}
SEED = int(os.environ.get("KUBEGPU_DRILL_SEED", str(random.SystemRandom().randrange(10**6))))
# Files the runnable stages write on every host (GPU-only files excluded: no GPU host).
MANAGED_FILES = [
    "/etc/modules-load.d/kubegpu.conf",
    "/etc/sysctl.d/99-kubegpu.conf",
    "/etc/fstab",
    "/etc/systemd/system/chrony.service.d/kubegpu-container.conf",
    "/etc/crictl.yaml",
    "/etc/containerd/certs.d/docker.io/hosts.toml",
]
CONTAINERD_CONFIG = "/etc/containerd/config.toml"
LOCK_TIMEOUT = 30  # kubegpu_package_lock_timeout of the drill fleet, seconds

# Holds dpkg's frontend lock the way apt does (fcntl), until /tmp/release-lock exists.
LOCK_HOLDER = (
    "import fcntl, os, time\n"
    "f = open('/var/lib/dpkg/lock-frontend', 'w')\n"
    "fcntl.lockf(f, fcntl.LOCK_EX)\n"
    "open('/tmp/lock-held', 'w').close()\n"
    "while not os.path.exists('/tmp/release-lock'):\n"
    "    time.sleep(0.5)\n"
)


def recap(output):
    """{host: {'ok': n, 'changed': n, 'unreachable': n, 'failed': n, ...}}."""
    return {h: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", rest)}
            for h, rest in re.findall(r"^(\S+)\s+:\s+(ok=\d+.*)$", output, re.M)}


class Run:
    """ansible-playbook site.yml in the background, its output streamed to a file."""

    def __init__(self, fleet, logfile, skip_tags=SKIP_TAGS):
        self.logfile = logfile
        self.fh = open(logfile, "w")
        self.proc = subprocess.Popen(
            [str(VENV_BIN / "ansible-playbook"), "-i", str(fleet["inventory"]), "playbooks/site.yml", skip_tags],
            cwd=REPO, env=fleet["env"], stdout=self.fh, stderr=subprocess.STDOUT)
        self.started = time.monotonic()

    def output(self):
        return self.logfile.read_text()

    def wait_for(self, pattern, timeout, poll=0.2):
        """Wait until the output matches `pattern`; the match, or None at exit/timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output(), re.M)
            if match:
                return match
            if self.proc.poll() is not None:
                return re.search(pattern, self.output(), re.M)
            time.sleep(poll)
        return None

    def finish(self, timeout=400):
        try:
            self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.fh.close()
        return self.proc.returncode, self.output()


def docker(*args, check=True, timeout=120):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


def wait_idle(container, timeout=180):
    """Wait until no Ansible module runs in the container (orphans of a killed run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker("exec", container, "pgrep", "-f", "AnsiballZ|apt-get|dpkg", check=False).returncode != 0:
            return True
        time.sleep(1)
    return False


def duplicate_lines(container, path):
    out = docker("exec", container, "cat", path, check=False)
    if out.returncode != 0:
        return None
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    return sorted({ln for ln in lines if lines.count(ln) > 1})


@pytest.fixture(scope="module")
def fleet(systemd_hosts, tmp_path_factory, ansible_environment):
    for name, container in HOSTS.items():
        systemd_hosts(container, hostname=name)
    tmp = tmp_path_factory.mktemp("drills")
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {
            "ansible_connection": "community.docker.docker",
            "ansible_facts_parallel": False,
            # Short, so the held-lock drill shows the bound is this variable's (default 180 s).
            "kubegpu_package_lock_timeout": LOCK_TIMEOUT,
            "kubegpu_pod_cidr": "192.168.0.0/16",
            "kubegpu_service_cidr": "10.96.0.0/12",
            "container_runtime_nvidia_toolkit_install": False,
            "container_runtime_registry_mirrors": [
                {"registry": "docker.io", "mirrors": [{"host": "https://mirror.gcr.io"}]}],
        },
        "children": {
            "kube_control_plane": {"hosts": {"cp1": {"ansible_host": HOSTS["cp1"]}}},
            "etcd": {"hosts": {"cp1": None}},
            "kube_node": {"hosts": {"w1": {"ansible_host": HOSTS["w1"]},
                                    "w2": {"ansible_host": HOSTS["w2"]}}},
            "k8s_cluster": {"children": {"kube_control_plane": None, "kube_node": None}},
        },
    }}))
    # Pipelining off for these hosts: with it on, a stopped container answers the docker
    # connection with "rc 1, module failure", not UNREACHABLE, which an SSH host that
    # lost power never does (ssh exits 255 either way); see docs/fault-drills.md.
    env = ansible_environment(ANSIBLE_PIPELINING="False")
    return {"inventory": inventory, "tmp": tmp, "env": env}


def test_package_manager_faults(fleet):
    w1, w2 = HOSTS["w1"], HOSTS["w2"]
    docker("exec", "-d", w1, "python3", "-c", LOCK_HOLDER)
    for _unused in range(50):
        if docker("exec", w1, "test", "-e", "/tmp/lock-held", check=False).returncode == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the lock holder did not take dpkg's lock on w1")
    # An interrupted dpkg: a pending update journal, which apt refuses to work past.
    docker("exec", w2, "sh", "-c", "touch /var/lib/dpkg/updates/0000")

    # Stages 1-2 only: the faults are met by os_prereqs' package install (and the drill
    # stays short); stages 3-4 run in the drills below.
    run = Run(fleet, fleet["tmp"] / "1-package-faults.log",
              skip_tags=SKIP_TAGS + ",nvidia_driver,container_runtime")
    # The include of the package entry point (roles/kubegpu/tasks/package.yml) or, on its
    # own, the install task inside it: the first of the two starts the clock.
    install = run.wait_for(r"^TASK \[(?:kubegpu\.cluster\.\w+ : )?Install the base packages \(apt\)\]", 300)
    install_at = time.monotonic()
    w1_failed = run.wait_for(r"^fatal: \[w1\]", 400)
    waited = time.monotonic() - install_at
    rc, out = run.finish()
    docker("exec", w1, "touch", "/tmp/release-lock")
    hosts = recap(out)
    assert install, out[-4000:]
    print("w1: dpkg lock held all along; w1 failed %.0f s after the install task began" % waited)
    assert w1_failed, out[-4000:]
    # cp1 is not held up by the others' faults.
    assert hosts["cp1"]["failed"] == 0 and hosts["cp1"]["unreachable"] == 0, out[-4000:]
    assert hosts["cp1"]["changed"] > 0, out[-4000:]
    # w1: a wait bounded by kubegpu_package_lock_timeout (apt's DPkg::Lock::Timeout for
    # the dpkg lock, not retried again after it), then a failure that names the lock,
    # for w1 only.
    assert hosts["w1"]["failed"] == 1, out[-4000:]
    w1_fail = re.search(r"^fatal: \[w1\]: FAILED!(.|\n)*?^(fatal|changed|ok|TASK)", out, re.M)
    assert w1_fail and "/var/lib/dpkg/lock-frontend" in w1_fail.group(0), out[-4000:]
    assert LOCK_TIMEOUT - 5 < waited < 2 * LOCK_TIMEOUT + 60, waited
    # w2: apt's own message, at once (no lock to wait for), and only w2.
    assert hosts["w2"]["failed"] == 1, out[-4000:]
    assert re.search(r"fatal: \[w2\]: FAILED!(.|\n)*dpkg was interrupted(.|\n)*dpkg --configure -a", out), out[-4000:]
    assert not re.search(r"fatal: \[cp1\]", out)
    assert rc != 0
    # The operator's fix for w2; w1's lock is gone (released above).
    docker("exec", w2, "dpkg", "--configure", "-a")


def test_interrupted_converge(fleet):
    rng = random.Random(SEED)
    # The k-th task of stages 2-4 (from os_prereqs' first task on; w2 converges now).
    k = rng.randint(1, 45)
    run = Run(fleet, fleet["tmp"] / "2-interrupted.log")
    start = run.wait_for(r"^TASK \[kubegpu\.cluster\.os_prereqs", timeout=240)
    assert start, run.output()[-3000:]
    deadline = time.monotonic() + 300
    task = None
    while time.monotonic() < deadline and run.proc.poll() is None:
        tail = run.output()[start.start():]
        tasks = re.findall(r"^TASK \[(.*)\]", tail, re.M)
        if len(tasks) >= k:
            task = tasks[k - 1]
            break
        time.sleep(0.1)
    assert run.proc.poll() is None, "the run ended before task %d (seed %d)" % (k, SEED)
    os.kill(run.proc.pid, signal.SIGKILL)
    rc, out = run.finish(timeout=30)
    print("seed %d: SIGKILL at task %d: %s" % (SEED, k, task))
    assert rc == -signal.SIGKILL
    assert "PLAY RECAP" not in out
    # Modules already started on the hosts run to their end (the connection's
    # processes are not the controller's children); wait for them, touch nothing.
    for container in HOSTS.values():
        assert wait_idle(container), "a module still runs on %s after 180 s" % container


def test_host_lost_mid_run(fleet):
    run = Run(fleet, fleet["tmp"] / "3-host-lost.log")
    # Preflight passed for every host and stage 2 begins: the controller is held
    # (SIGSTOP) while w2 is killed, so that w2 is lost between two tasks. (Lost in the
    # middle of a task, a host is reported by that task instead: see
    # docs/fault-drills.md for what that looks like.)
    assert run.wait_for(r"^PLAY \[Stage 2 - OS prerequisites\]", timeout=240, poll=0.02), run.output()[-3000:]
    os.kill(run.proc.pid, signal.SIGSTOP)
    try:
        docker("kill", HOSTS["w2"])
    finally:
        os.kill(run.proc.pid, signal.SIGCONT)
    rc, out = run.finish()
    hosts = recap(out)
    assert hosts["w2"]["unreachable"] == 1, out[-4000:]
    for h in ("cp1", "w1"):
        assert hosts[h]["failed"] == 0 and hosts[h]["unreachable"] == 0, out[-4000:]
    # cp1 and w1 (its lock now free) finish stages 2-4; changed=0 on them is checked
    # by the next run.
    assert "Stage 4 - container runtime" in out
    assert rc != 0


def test_next_run_converges(fleet):
    w2 = HOSTS["w2"]
    docker("start", w2)
    for _unused in range(90):
        if docker("exec", w2, "systemctl", "is-system-running", check=False).stdout.strip() in ("running", "degraded"):
            break
        time.sleep(1)
    rc, out = Run(fleet, fleet["tmp"] / "4-next-run.log").finish()
    hosts = recap(out)
    assert rc == 0, out[-4000:]
    for h in ("cp1", "w1"):
        assert hosts[h]["changed"] == 0, out[-4000:]
    assert all(hosts[h]["failed"] == 0 and hosts[h]["unreachable"] == 0 for h in HOSTS), out[-4000:]
    assert hosts["w2"]["changed"] > 0, out[-4000:]

    duplicates = {}
    for name, container in HOSTS.items():
        for path in MANAGED_FILES:
            dup = duplicate_lines(container, path)
            assert dup is not None, "%s: %s is missing" % (name, path)
            if dup:
                duplicates["%s:%s" % (name, path)] = dup
        # TOML refuses a key or table given twice; containerd must read the file too.
        text = docker("exec", container, "cat", CONTAINERD_CONFIG).stdout
        tomllib.loads(text)
        docker("exec", container, "containerd", "--config", CONTAINERD_CONFIG, "config", "dump")
        backups = docker("exec", container, "sh", "-c", "ls /etc/fstab.* /etc/containerd/config.toml.* 2>/dev/null || true").stdout
        print("%s backups: %s" % (name, backups.split()))
    assert not duplicates, duplicates
