# SPDX-License-Identifier: Apache-2.0
"""Kernels that keep their driver, with the real DKMS on a Debian 12 test host.

Two kernels from Debian's archive are installed (images; the headers of only the first),
and a test-only DKMS module (tests/fixtures/dkms/kubegpu_hello-1.0, a hello-world kernel
module: NVIDIA's 535 module takes minutes per kernel on 2 cores) stands in for the
driver's through nvidia_driver_dkms_module. Then, on a GPU node by group:

1. the driver stage's per-kernel step (role nvidia_driver, entry point ``kernels``, what
   playbooks/kernel_update.yml runs) in check mode changes nothing on the host;
2. a real run installs the second kernel's headers and DKMS builds and installs the
   module for each kernel (``dkms status`` says installed for both, the .ko is in each
   kernel's tree); a second run changes nothing;
3. the reboot guard (roles/node reboot_pending, as kernel_update.yml calls it) refuses
   the reboot into the newest kernel once its build is removed, naming the host, the
   kernel and the fix; after the per-kernel step puts the build back, it lets the reboot
   through (check mode: a container must not reboot).

The container shares the CI machine's running kernel, which is none of the two: only the
kernels installed in the container count, as they would on a host booting them.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONTAINER = "kubegpu-dkms-1"
APT_CACHE = "/var/cache/kubegpu-apt"
# Two kernels in Debian 12's main archive, the only suite the test image's apt sources
# name (checked with apt-cache, 2026-12: images and headers of 6.1.0-47 and 6.1.0-50); the
# cloud flavour's images are the smallest (27 MB). Override when the archive moves on.
KERNELS = os.environ.get("KUBEGPU_DKMS_TEST_KERNELS", "6.1.0-47-cloud-amd64 6.1.0-50-cloud-amd64").split()
OLD, NEW = sorted(KERNELS, key=lambda k: [int(x) if x.isdigit() else x for x in re.findall(r"\d+|\D+", k)])
MODULE = "kubegpu_hello"
FIXTURE = REPO / "tests" / "fixtures" / "dkms" / "kubegpu_hello-1.0"


def sh(docker_cli, script, timeout=900):
    return docker_cli.exec(CONTAINER, "sh", "-c", script, timeout=timeout)


def recap(output, host="gpu1"):
    match = re.search(r"^%s\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)" % host, output, re.M)
    assert match, output[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, match.groups())))


@pytest.fixture(scope="module")
def dkms_host(systemd_hosts, docker_cli, tmp_path_factory):
    os.makedirs(APT_CACHE, exist_ok=True)
    systemd_hosts(CONTAINER, hostname="gpu1", extra_args=["-v", "%s:/var/cache/apt/archives:rw" % APT_CACHE])
    started = time.monotonic()
    # INITRD=No: Debian's initramfs-tools kernel hook then builds no initramfs (this host never boots them).
    sh(docker_cli, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive INITRD=No apt-get install -y -qq "
                   "--no-install-recommends dkms linux-image-%s linux-image-%s linux-headers-%s >/dev/null"
       % (OLD, NEW, OLD), timeout=1500)
    docker_cli.run("cp", str(FIXTURE), "%s:/usr/src/%s-1.0" % (CONTAINER, MODULE))
    sh(docker_cli, "dkms add %s/1.0" % MODULE)
    print("test host ready in %.0f s" % (time.monotonic() - started))
    inventory = tmp_path_factory.mktemp("dkms") / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "vars": {"ansible_connection": "community.docker.docker", "ansible_facts_parallel": False},
        "children": {"k8s_cluster": {"hosts": {"gpu1": {"ansible_host": CONTAINER}}}, "gpu": {"hosts": {"gpu1": None}}},
    }}))
    return inventory


def playbook(tmp_path, name, *plays):
    path = tmp_path / ("%s.yml" % name)
    path.write_text(yaml.safe_dump(list(plays), sort_keys=False))
    return path


KERNEL_STEP = {"name": "Kernels keep the module", "hosts": "gpu1", "become": True, "gather_facts": True,
               "vars": {"nvidia_driver_dkms_module": MODULE},
               "tasks": [{"name": "Give every installed kernel the module",
                          "ansible.builtin.include_role": {"name": "kubegpu.cluster.nvidia_driver",
                                                           "tasks_from": "kernels"}}]}


def guard_play(**extra):
    # nvidia_driver_kernels is what the per-kernel step publishes (docs/contracts.md); here
    # the guard's play sets it, so the guard reads the test module without rebuilding it.
    return {"name": "Reboot guard", "hosts": "gpu1", "become": True, "gather_facts": False,
            "vars": {"node_reboot_new_kernel": True, "node_reboot_check_kernel": True,
                     "nvidia_driver_kernels": {"dkms_module": MODULE, "module_names": [MODULE]}, **extra},
            "tasks": [{"name": "Reboot through the guard",
                       "ansible.builtin.include_role": {"name": "kubegpu.cluster.node", "tasks_from": "reboot_pending"}}]}


def dkms_installed(docker_cli):
    status = sh(docker_cli, "dkms status %s" % MODULE)
    return sorted(k for k in KERNELS if re.search(r"^%s/1\.0, %s, x86_64: installed" % (MODULE, re.escape(k)), status, re.M))


def test_every_installed_kernel_gets_the_module_and_the_guard_refuses_one_without(
        dkms_host, ansible_playbook, docker_cli, tmp_path):
    assert dkms_installed(docker_cli) == []
    before = sh(docker_cli, "dkms status; dpkg-query -W -f='${Package}\\n' 'linux-headers-*' | sort")

    # 1. check mode: reports, changes nothing
    play = playbook(tmp_path, "kernels", KERNEL_STEP)
    guard = playbook(tmp_path, "guard", guard_play())
    started = time.monotonic()
    checked = ansible_playbook(play, dkms_host, "--check", timeout=900)
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert sh(docker_cli, "dkms status; dpkg-query -W -f='${Package}\\n' 'linux-headers-*' | sort") == before

    # 2. the second kernel's headers, a DKMS build for each kernel; then nothing to do
    run = ansible_playbook(play, dkms_host, timeout=1500)
    assert run.returncode == 0, run.stdout[-4000:]
    print("per-kernel step: %.0f s" % (time.monotonic() - started))
    assert "linux-headers-%s" % NEW in sh(docker_cli, "dpkg-query -W -f='${Package} ${Status}\\n' linux-headers-%s" % NEW)
    assert dkms_installed(docker_cli) == sorted(KERNELS)
    print("dkms status:\n" + sh(docker_cli, "dkms status"))
    for kernel in KERNELS:
        sh(docker_cli, "test -f /lib/modules/%s/updates/dkms/%s.ko*" % (kernel, MODULE))
        assert "kubegpu DKMS test module" in sh(docker_cli, "modinfo -k %s %s" % (kernel, MODULE))
    again = ansible_playbook(play, dkms_host, timeout=900)
    assert again.returncode == 0 and recap(again.stdout)["changed"] == 0, again.stdout[-4000:]

    # 3. the guard: the newest kernel (GRUB_DEFAULT=0 boots it) loses its module -> refused
    sh(docker_cli, "dkms remove %s/1.0 -k %s" % (MODULE, NEW))
    assert dkms_installed(docker_cli) == [OLD]
    refused = ansible_playbook(guard, dkms_host, timeout=600)
    assert refused.returncode != 0
    message = re.search(r"gpu1: reboot refused: .*", refused.stdout).group(0)
    assert "the kernel that boots next, %s (GRUB_DEFAULT=0" % NEW in message
    assert "dkms autoinstall -k %s" % NEW in message and "dkms status -m %s" % MODULE in message
    assert OLD not in message
    assert recap(refused.stdout)["failed"] == 1

    # the per-kernel step puts it back, and the guard lets the reboot through (check mode)
    rebuilt = ansible_playbook(play, dkms_host, timeout=900)
    assert rebuilt.returncode == 0 and dkms_installed(docker_cli) == sorted(KERNELS), rebuilt.stdout[-4000:]
    passed = ansible_playbook(guard, dkms_host, "--check", timeout=600)
    assert passed.returncode == 0, passed.stdout[-4000:]
    assert "reboot refused" not in passed.stdout
    # ansible.builtin.reboot in check mode reports changed and reboots nothing
    assert re.search(r"TASK \[kubegpu.cluster.node : Reboot the drained node for the reasons recorded\] \*+\n"
                     r"changed: \[gpu1\]", passed.stdout), passed.stdout[-3000:]
