# SPDX-License-Identifier: Apache-2.0
"""MetalLB's controller, as the simulated kubelet "runs" quay.io/metallb/controller (test-only).

What it does, each rule following metallb/metallb v0.16.1:

- a Service of type LoadBalancer without a MetalLB class conflict gets one address of its IP
  family from the IPAddressPools of namespace metallb-system, written to
  status.loadBalancer.ingress, and the annotation metallb.io/ip-allocated-from-pool naming the
  pool (controller/service.go convergeBalancer, the end of it: "svc.Status.LoadBalancer.Ingress =
  lbIngressIPs", "svc.Annotations[AnnotationIPAllocateFromPool] = pool");
- a Service that is not (or no longer) a LoadBalancer loses both (convergeBalancer ->
  clearServiceState);
- an address already given stays while it is inside a pool (convergeBalancer keeps "the assigned
  LB IP(s) ... the end state of convergence");
- metallb.io/address-pool picks the pool, metallb.io/loadBalancerIPs or spec.loadBalancerIP the
  address (service.go allocateIPs, getDesiredLbIPs); without them only pools with autoAssign
  (default true) are used (internal/allocator/allocator.go Allocate -> pools with AutoAssign), in
  name order, the lowest free address first, .0 and .255 skipped where avoidBuggyIPs
  (allocator.go getIPFromCIDR, ipConfusesBuggyFirmwares);
- a Service with spec.loadBalancerClass set is left to that class's implementation (MetalLB
  without --lb-class handles only Services without one: internal/k8s/controllers/
  service_controller.go, filterByLoadBalancerClass);
- pool addresses are CIDRs or first-last ranges (internal/config/config.go ParseCIDR).

Not simulated: the speakers' ARP answers (nothing outside the test hosts can reach the address),
IP sharing (metallb.io/allow-shared-ip), BGP, pool status counters.
"""
from __future__ import annotations

import ipaddress

POOLS_PATH = "/apis/metallb.io/v1beta1/namespaces/metallb-system/ipaddresspools"
SERVICES_PATH = "/api/v1/services"
ANNOTATION_POOL = "metallb.io/address-pool"
ANNOTATION_IPS = "metallb.io/loadBalancerIPs"
ANNOTATION_ALLOCATED = "metallb.io/ip-allocated-from-pool"


def pool_ranges(pool):
    """[(first, last)] of a pool's spec.addresses; invalid entries are skipped (the real
    controller refuses the whole configuration; kubegpu's preflight refuses them first)."""
    ranges = []
    for text in (pool.get("spec") or {}).get("addresses") or []:
        text = str(text).strip()
        try:
            if "-" in text:
                start, end = text.split("-", 1)
                first, last = ipaddress.ip_address(start.strip()), ipaddress.ip_address(end.strip())
            else:
                net = ipaddress.ip_network(text, strict=False)
                first, last = net.network_address, net.broadcast_address
        except ValueError:
            continue
        if first.version == last.version and first <= last:
            ranges.append((first, last))
    return ranges


def _buggy(ip):
    # allocator.go ipConfusesBuggyFirmwares: IPv4 addresses ending in .0 or .255
    return ip.version == 4 and ip.packed[-1] in (0, 255)


def _in_pool(ip, pool):
    return any(first.version == ip.version and first <= ip <= last for first, last in pool_ranges(pool))


def _family(svc):
    spec = svc.get("spec") or {}
    cluster_ip = (spec.get("clusterIPs") or [spec.get("clusterIP")])[0]
    try:
        return ipaddress.ip_address(cluster_ip).version
    except (TypeError, ValueError):
        return None


def choose(svc, pools, used):
    """(ip, pool name) for a Service, or (None, reason)."""
    meta = svc.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    family = _family(svc)
    if family is None:
        return None, "no ClusterIPs"
    wanted_pool = annotations.get(ANNOTATION_POOL)
    by_name = dict(((p.get("metadata") or {}).get("name"), p) for p in pools)
    if wanted_pool:
        candidates = [by_name[wanted_pool]] if wanted_pool in by_name else []
    else:
        candidates = [p for p in sorted(pools, key=lambda p: (p.get("metadata") or {}).get("name", ""))
                      if (p.get("spec") or {}).get("autoAssign", True)]
    wanted_ip = annotations.get(ANNOTATION_IPS) or (svc.get("spec") or {}).get("loadBalancerIP")
    if wanted_ip:
        ip = ipaddress.ip_address(wanted_ip.split(",")[0].strip())
        for pool in candidates if wanted_pool else pools:
            if _in_pool(ip, pool):
                if ip in used:
                    return None, "%s is already in use" % ip
                return ip, pool["metadata"]["name"]
        return None, "%s is not allowed in config" % ip
    for pool in candidates:
        avoid = bool((pool.get("spec") or {}).get("avoidBuggyIPs"))
        for first, last in pool_ranges(pool):
            if first.version != family:
                continue
            ip = first
            while ip <= last:
                if ip not in used and not (avoid and _buggy(ip)):
                    return ip, pool["metadata"]["name"]
                ip += 1
    return None, "no available IPs"


def reconcile(api):
    """One pass over every Service; returns what it did, one line per change."""
    pools = api.list(POOLS_PATH)
    services = api.list(SERVICES_PATH)
    used = set()
    for svc in services:
        for entry in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            try:
                used.add(ipaddress.ip_address(entry.get("ip")))
            except (TypeError, ValueError):
                continue
    done = []
    for svc in services:
        meta = svc.get("metadata") or {}
        path = "/api/v1/namespaces/%s/services/%s" % (meta.get("namespace"), meta.get("name"))
        spec = svc.get("spec") or {}
        ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        annotations = meta.get("annotations") or {}
        if spec.get("type") != "LoadBalancer":
            if ANNOTATION_ALLOCATED in annotations:
                api.merge_patch(path, {"metadata": {"annotations": {ANNOTATION_ALLOCATED: None}}})
                api.merge_patch(path + "/status", {"status": {"loadBalancer": {"ingress": None}}})
                done.append("released %s/%s" % (meta.get("namespace"), meta.get("name")))
            continue
        if spec.get("loadBalancerClass"):
            continue
        current = [e.get("ip") for e in ingress if e.get("ip")]
        if current and all(any(_in_pool(ipaddress.ip_address(ip), p) for p in pools) for ip in current):
            continue
        ip, pool = choose(svc, pools, used)
        if ip is None:
            done.append("%s/%s: %s" % (meta.get("namespace"), meta.get("name"), pool))
            continue
        used.add(ip)
        api.merge_patch(path, {"metadata": {"annotations": {ANNOTATION_ALLOCATED: pool}}})
        api.merge_patch(path + "/status", {"status": {"loadBalancer": {"ingress": [{"ip": str(ip)}]}}})
        done.append("assigned %s to %s/%s from pool %s" % (ip, meta.get("namespace"), meta.get("name"), pool))
    return done


def controller(ctx, process_class):
    """The running controller: reconcile every 2 s until the container stops."""
    proc = process_class(logs=["Starting MetalLB controller (simulated)"])
    api = ctx.api
    if api is None:
        return proc

    def loop(p):
        while not p.stopping:
            try:
                for line in reconcile(api):
                    p.log(line)
            except Exception as err:  # noqa: BLE001 - keep running like a controller
                p.log("reconcile error: %s" % err)
            p._stop.wait(2)
    proc.run_in_background(loop)
    return proc
