# SPDX-License-Identifier: Apache-2.0
"""kube-vip's control-plane VIP, as the simulated kubelet "runs" the static Pod
/etc/kubernetes/manifests/kube-vip.yaml (test-only; the simulation runs no other static Pod).

What kube-vip does in ARP mode with leader election, each rule following kube-vip/kube-vip:

- settings from the Pod's environment: ``address`` (the VIP), ``vip_interface``, ``port``,
  ``vip_leasename`` (default plndr-cp-lock), ``vip_leaseduration`` and ``vip_retryperiod``
  (defaults 15 and 2 s: cmd/kube-vip.go flags leaseDuration, leaseRetry; names in
  pkg/kubevip/config_envvar.go);
- it talks to the API server through the mounted kubeconfig with the server replaced by
  ``kubernetes:<port>`` (pkg/manager/manager.go: k8s.NewRestConfig(adminConfigPath, false,
  "kubernetes:<port>")), which the Pod's hostAliases resolve to 127.0.0.1
  (pkg/kubevip/config_generator.go generatePodSpec), so it works before the VIP exists;
- leader election on a coordination.k8s.io/v1 Lease in kube-system (client-go
  tools/leaderelection with a LeaseLock, holderIdentity = vip_nodename): a Lease held by
  another whose renewTime + leaseDurationSeconds has not passed is left alone; otherwise this
  node takes it, and renews it every retry period while it leads;
- the leader adds the VIP to the interface with the host-route mask (/32, /128), replacing any
  copy (pkg/vip/address.go AddIP -> netlink.AddrReplace), and a node that loses the Lease
  deletes it (DeleteIP; vip_preserve_on_leadership_loss is not set by kubegpu).

Not simulated: gratuitous ARP on a leader change (the kernel answers ARP for the address; a
neighbour's stale cache entry is not refreshed), services mode, BGP, DHCP, the load balancer.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import threading
import time

MANIFEST = "/etc/kubernetes/manifests/kube-vip.yaml"
LEASES = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases"


def settings(pod):
    """The settings kube-vip reads from its Pod (env + the mounted kubeconfig's host path)."""
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    env = dict((e.get("name"), e.get("value")) for e in container.get("env") or [] if "value" in e)
    kubeconfig = None
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if volume.get("name") == "kubeconfig":
            kubeconfig = (volume.get("hostPath") or {}).get("path")
    return {
        "address": env.get("address") or env.get("vip_address"),
        "interface": env.get("vip_interface") or "",
        "port": int(env.get("port") or 6443),
        "lease": env.get("vip_leasename") or "plndr-cp-lock",
        "duration": int(env.get("vip_leaseduration") or 15),
        "retry": float(env.get("vip_retryperiod") or 2),
        "kubeconfig": kubeconfig or "/etc/kubernetes/admin.conf",
        "arp": env.get("vip_arp") == "true",
        "election": env.get("vip_leaderelection") == "true",
    }


def _micro(epoch):
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _epoch(text):
    try:
        return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()
    except (TypeError, ValueError):
        return 0.0


def try_acquire(api, name, identity, duration, now):
    """client-go leaderelection tryAcquireOrRenew on a Lease: True when ``identity`` holds it now."""
    path = "%s/%s" % (LEASES, name)
    lease = api.get(path)
    spec = {"holderIdentity": identity, "leaseDurationSeconds": duration, "renewTime": _micro(now)}
    if lease is None:
        spec["acquireTime"] = _micro(now)
        api.create(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                            "metadata": {"name": name, "namespace": "kube-system"}, "spec": spec})
        return True
    held = lease.get("spec") or {}
    holder = held.get("holderIdentity")
    expires = _epoch(held.get("renewTime")) + int(held.get("leaseDurationSeconds") or duration)
    if holder and holder != identity and expires > now:
        return False
    if holder != identity:
        spec["acquireTime"] = _micro(now)
        spec["leaseTransitions"] = int(held.get("leaseTransitions") or 0) + 1
    else:
        spec["acquireTime"] = held.get("acquireTime") or _micro(now)
    api.replace(path, dict(lease, spec=dict(held, **spec)))
    return True


def default_interface(route_file="/proc/net/route"):
    """The interface of the default IPv4 route (what kube-vip takes without vip_interface)."""
    try:
        with open(route_file) as stream:
            for line in stream.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1 and fields[1] == "00000000":
                    return fields[0]
    except OSError:
        pass
    return ""


def address_argv(action, vip, interface):
    """The ip(8) command that adds (replace) or deletes the VIP with the host-route mask."""
    address = ipaddress.ip_address(vip)
    return ["ip", "addr", "replace" if action == "add" else "del",
            "%s/%d" % (address, 32 if address.version == 4 else 128), "dev", interface]


def run(node_name, stop, manifest=MANIFEST, runner=subprocess.run, client_from=None, log=print):
    """The static Pod's life: lead or follow until ``stop`` is set or the manifest goes away."""
    if client_from is None:
        from .client import Client
        client_from = Client.from_kubeconfig
    from . import yamlish

    leading = False
    conf = None
    while not stop.is_set() and os.path.exists(manifest):
        try:
            with open(manifest) as stream:
                conf = settings(yamlish.load(stream.read()) or {})
            api = client_from(conf["kubeconfig"])
            api.host, api.port = "127.0.0.1", conf["port"]     # hostAliases: kubernetes -> 127.0.0.1
            interface = conf["interface"] or default_interface()
            now_leading = try_acquire(api, conf["lease"], node_name, conf["duration"], time.time())
            if now_leading != leading or now_leading:
                action = "add" if now_leading else "del"
                result = runner(address_argv(action, conf["address"], interface), capture_output=True, text=True,
                                check=False)
                if action == "add" and result.returncode != 0:
                    log("kube-vip: %s" % (result.stderr or "").strip())
                elif now_leading != leading:
                    state = "leading, added" if now_leading else "following, removed"
                    log("kube-vip: %s %s on %s" % (state, conf["address"], interface))
            leading = now_leading
        except Exception as err:  # noqa: BLE001 - keep running like kube-vip's retry loop
            log("kube-vip: %s" % err)
        stop.wait(conf["retry"] if conf else 1)
    if leading and conf:
        runner(address_argv("del", conf["address"], conf["interface"] or default_interface()), capture_output=True,
               text=True, check=False)


def start(node_name, stop, manifest=MANIFEST):
    """Start the static Pod in a thread when its manifest exists (the kubelet's hook)."""
    if not os.path.exists(manifest):
        return None
    thread = threading.Thread(target=run, args=(node_name, stop, manifest), daemon=True)
    thread.start()
    return thread
