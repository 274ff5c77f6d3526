# SPDX-License-Identifier: Apache-2.0
"""The simulated kube-vip (tests/sim/kubegpu_sim/kube_vip.py) on the Pod kubegpu writes
(plugin_utils/_kubeadm.kube_vip_pod): settings read back from the Pod, leader election on the
Lease (one holder; a live lease is not taken; an expired one is), and the ip(8) commands the
leader runs."""
from __future__ import annotations

import os
import sys
import threading

import yaml

from ansible_collections.kubegpu.cluster.plugins.plugin_utils import _kubeadm as k

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))
from fake_api import FakeApi  # noqa: E402  (tests/unit/sim/fake_api.py)
from kubegpu_sim import kube_vip  # noqa: E402

POD = k.kube_vip_pod("10.10.0.250", "eth0", 6443, "ghcr.io/kube-vip/kube-vip:v1.0.3", "/etc/kubernetes/admin.conf")


def test_settings_from_the_pod_kubegpu_writes():
    conf = kube_vip.settings(POD)
    assert conf == {"address": "10.10.0.250", "interface": "eth0", "port": 6443, "lease": "plndr-cp-lock",
                    "duration": 15, "retry": 2.0, "kubeconfig": "/etc/kubernetes/admin.conf", "arp": True,
                    "election": True}


def test_one_leader_until_its_lease_expires():
    api = FakeApi()
    assert kube_vip.try_acquire(api, "plndr-cp-lock", "cp1", 15, 1000.0) is True
    assert kube_vip.try_acquire(api, "plndr-cp-lock", "cp2", 15, 1005.0) is False
    assert kube_vip.try_acquire(api, "plndr-cp-lock", "cp1", 15, 1010.0) is True       # renews
    assert kube_vip.try_acquire(api, "plndr-cp-lock", "cp2", 15, 1020.0) is False      # renewed at 1010
    assert kube_vip.try_acquire(api, "plndr-cp-lock", "cp2", 15, 1026.0) is True       # expired at 1025
    lease = api.obj("leases", "plndr-cp-lock", "kube-system")
    assert lease["spec"]["holderIdentity"] == "cp2" and lease["spec"]["leaseTransitions"] == 1


def test_address_commands():
    assert kube_vip.address_argv("add", "10.10.0.250", "eth0") == [
        "ip", "addr", "replace", "10.10.0.250/32", "dev", "eth0"]
    assert kube_vip.address_argv("del", "fd00::250", "bond0") == ["ip", "addr", "del", "fd00::250/128", "dev", "bond0"]


def test_the_static_pod_leads_and_adds_the_vip(tmp_path):
    manifest = tmp_path / "kube-vip.yaml"
    manifest.write_text(yaml.safe_dump(POD), encoding="utf-8")
    api = FakeApi()
    ran = []
    stop = threading.Event()

    def runner(argv, **_kw):
        ran.append(argv)
        stop.set()

        class Result:
            returncode, stderr = 0, ""
        return Result()

    kube_vip.run("cp1", stop, manifest=str(manifest), runner=runner, client_from=lambda _path: api,
                 log=lambda _line: None)
    assert ran[0] == ["ip", "addr", "replace", "10.10.0.250/32", "dev", "eth0"]
    assert ran[-1] == ["ip", "addr", "del", "10.10.0.250/32", "dev", "eth0"]       # stopped: gives it up
    assert api.obj("leases", "plndr-cp-lock", "kube-system")["spec"]["holderIdentity"] == "cp1"
