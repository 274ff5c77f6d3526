# SPDX-License-Identifier: Apache-2.0
"""Simulated kube-controller-manager + kube-scheduler (test-only, standard library only).

    python3 -m kubegpu_sim.controller_manager --kubeconfig /etc/kubernetes/controller-manager.conf \
        --cluster-signing-cert-file /etc/kubernetes/pki/ca.crt \
        --cluster-signing-key-file /etc/kubernetes/pki/ca.key --cluster-cidr <pod cidr> \
        --allocate-node-cidrs true

Everything goes through the Kubernetes REST API (client.Client). One loop lists the
objects the controllers need about once a second and runs each controller on that
snapshot, as level-triggered reconcilers (the informer resync of upstream controllers):
scheduler, node lifecycle, node IPAM, DaemonSet, Deployment, ReplicaSet, Job, garbage
collector, disruption (PDB status), CSR approver + signer, namespace. A controller's
error is logged and retried on the next pass; the API server being away only slows the
loop down (backoff), never stops the process. One log line per action on stdout.
Decisions live in scheduling.py and controllers_rules.py (pure functions)."""
from __future__ import annotations

import argparse
import base64
import copy
import datetime
import http.client
import os
import subprocess
import sys
import tempfile
import time

from . import dra
from . import scheduling
from . import controllers_rules as rules
from .client import ApiError, Client

APPS = "/apis/apps/v1"
BATCH = "/apis/batch/v1"
POLICY = "/apis/policy/v1"
CERTS = "/apis/certificates.k8s.io/v1"
COORD = "/apis/coordination.k8s.io/v1"

# Paths of the kinds the controllers own or look up (GC owner resolution uses it;
# unknown kinds are resolved through discovery).
KIND_PATHS = {
    ("v1", "Pod"): ("/api/v1", "pods", True),
    ("v1", "Node"): ("/api/v1", "nodes", False),
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ConfigMap"): ("/api/v1", "configmaps", True),
    ("v1", "Secret"): ("/api/v1", "secrets", True),
    ("v1", "Service"): ("/api/v1", "services", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("apps/v1", "DaemonSet"): (APPS, "daemonsets", True),
    ("apps/v1", "Deployment"): (APPS, "deployments", True),
    ("apps/v1", "ReplicaSet"): (APPS, "replicasets", True),
    ("apps/v1", "StatefulSet"): (APPS, "statefulsets", True),
    ("apps/v1", "ControllerRevision"): (APPS, "controllerrevisions", True),
    ("batch/v1", "Job"): (BATCH, "jobs", True),
    ("batch/v1", "CronJob"): (BATCH, "cronjobs", True),
}

KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
# pkg/controller/certificates/signer/signer.go NewKubeletClientCSRSigningController etc.:
# the signers kube-controller-manager's csrsigning controller serves.
KNOWN_SIGNERS = (KUBELET_CLIENT_SIGNER, "kubernetes.io/kubelet-serving", "kubernetes.io/kube-apiserver-client")


def log(message):
    print("%s %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def meta(obj):
    return obj.setdefault("metadata", {})


def ns_name(obj):
    m = obj.get("metadata") or {}
    return m.get("namespace"), m.get("name")


def obj_path(base, plural, namespace, name=None):
    path = base + ("/namespaces/%s" % namespace if namespace else "") + "/" + plural
    return path + ("/" + name if name else "")


def pod_path(pod):
    namespace, name = ns_name(pod)
    return obj_path("/api/v1", "pods", namespace, name)


def _daemon_pod_order(pod):
    """daemon_controller.go podByCreationTimestampAndPhase: scheduled pods first, then the
    oldest, then by name."""
    return (0 if (pod.get("spec") or {}).get("nodeName") else 1,
            pod["metadata"].get("creationTimestamp") or "", pod["metadata"].get("name") or "")


# Seconds between the controllers' passes while nothing in the cluster changes (run()).
IDLE_RESYNC = 3.0


class ControllerManager:
    def __init__(self, api, signing_cert=None, signing_key=None, cluster_cidr=None,
                 allocate_node_cidrs=False, node_cidr_mask_size=24, node_monitor_grace=40.0,
                 clock=None, logger=log, run_openssl=None):
        self.api = api
        self.signing_cert = signing_cert
        self.signing_key = signing_key
        self.cluster_cidrs = [c for c in (cluster_cidr or "").split(",") if c.strip()]
        self.allocate_node_cidrs = allocate_node_cidrs
        self.node_cidr_mask_size = node_cidr_mask_size
        self.node_monitor_grace = node_monitor_grace
        self.clock = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.log = logger
        self.run_openssl = run_openssl or self._openssl
        self.snap = {}
        self._job_failure_time = {}
        self._discovery = None
        self._discovery_time = 0.0
        self._pass = 0

    # -- snapshot ---------------------------------------------------------------------
    def _list(self, path, params=None):
        try:
            return self.api.list(path, params=params)
        except ApiError as err:
            if err.status in (404, 405):
                return []  # resource not served by this API server
            raise

    def refresh(self):
        s = {}
        s["nodes"] = self._list("/api/v1/nodes")
        s["pods"] = self._list("/api/v1/pods")
        s["leases"] = {l["metadata"]["name"]: l for l in self._list(COORD + "/namespaces/kube-node-lease/leases")}
        s["daemonsets"] = self._list(APPS + "/daemonsets")
        s["deployments"] = self._list(APPS + "/deployments")
        s["replicasets"] = self._list(APPS + "/replicasets")
        s["jobs"] = self._list(BATCH + "/jobs")
        s["controllerrevisions"] = self._list(APPS + "/controllerrevisions")
        # resource.k8s.io/v1 (DRA): read only while some pod claims resources or a claim exists.
        s["resourceclaims"] = self._list(dra.GROUP + "/resourceclaims")
        if s["resourceclaims"] or any(dra.pod_claim_entries(p) for p in s["pods"]):
            s["resourceclaimtemplates"] = self._list(dra.GROUP + "/resourceclaimtemplates")
            s["resourceslices"] = self._list(dra.GROUP + "/resourceslices")
            s["deviceclasses"] = self._list(dra.GROUP + "/deviceclasses")
        else:
            s["resourceclaimtemplates"] = s["resourceslices"] = s["deviceclasses"] = []
        slow = self._pass % 3 == 0
        if slow or "pdbs" not in self.snap:
            s["pdbs"] = self._list(POLICY + "/poddisruptionbudgets")
            s["csrs"] = self._list(CERTS + "/certificatesigningrequests")
            s["namespaces"] = self._list("/api/v1/namespaces")
            s["statefulsets"] = self._list(APPS + "/statefulsets")
        else:
            for key in ("pdbs", "csrs", "namespaces", "statefulsets"):
                s[key] = self.snap.get(key, [])
        self.snap = s

    def sync_once(self):
        """One pass of every controller over a fresh snapshot."""
        self.refresh()
        for name, step in (("node-ipam", self.sync_node_ipam),
                           ("node-lifecycle", self.sync_node_lifecycle),
                           ("csr", self.sync_csrs),
                           ("daemonset", self.sync_daemonsets),
                           ("deployment", self.sync_deployments),
                           ("replicaset", self.sync_replicasets),
                           ("job", self.sync_jobs),
                           ("resourceclaim", self.sync_resource_claims),
                           ("scheduler", self.sync_scheduler),
                           ("garbage-collector", self.sync_garbage_collector),
                           ("disruption", self.sync_pdbs),
                           ("namespace", self.sync_namespaces)):
            try:
                step()
            except ApiError as err:
                if err.status != 409:  # conflicts: the next pass sees the new object
                    self.log("%s: %s" % (name, err))
            except (OSError, http.client.HTTPException) as err:
                raise ConnectionError(str(err)) from err  # the API server went away mid-pass
            except Exception as err:  # noqa: BLE001 - one controller's bug must not stop the others
                self.log("%s: error %s: %s" % (name, type(err).__name__, err))
        self._pass += 1

    def revision(self):
        """The API server's current resourceVersion (etcd's revision): what a list answers
        in metadata.resourceVersion, asked with the smallest list there is (the node Leases)."""
        try:
            listing = self.api.request("GET", COORD + "/namespaces/kube-node-lease/leases") or {}
        except ApiError:
            return None   # not answered as a list: no revision to compare, every pass runs
        return (listing.get("metadata") or {}).get("resourceVersion")

    def run(self, interval=1.0, idle_resync=IDLE_RESYNC):
        """A pass every interval while the cluster changes; while nothing was written since
        the last pass began, one every idle_resync seconds (for what time alone changes:
        a Lease expiring, minReadySeconds passing, a Job's deadline). Upstream's controllers
        are driven by their informers' watch events and requeue themselves for time
        (node_lifecycle_controller.go: monitorNodeHealth every nodeMonitorPeriod, 5 s)."""
        backoff = interval
        synced_rv, synced_at = None, float("-inf")
        while True:
            started = time.monotonic()
            try:
                rv = self.revision()
                if rv is None or rv != synced_rv or started - synced_at >= idle_resync:
                    self.sync_once()
                    synced_rv, synced_at = rv, started   # writes of this pass: rv moved, another pass
                backoff = interval
            except Exception as err:  # noqa: BLE001 - never crash: retry
                # kube-apiserver away (restarting, not yet up): retry with backoff
                # (client-go reflector's backoff, staging/src/k8s.io/client-go/tools/cache/reflector.go)
                self.log("api server unavailable: %s (retry in %.0fs)" % (err, backoff))
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                continue
            elapsed = time.monotonic() - started
            time.sleep(max(0.2, interval - elapsed))

    # -- helpers ----------------------------------------------------------------------
    def now(self):
        return self.clock()

    def now_text(self):
        return rules.now_rfc3339(self.now())

    def patch_status(self, path, status, resource_version=None):
        """Merge-patch the status subresource; with resource_version, only the object as it
        was read (the API server answers 409 when it changed since: an optimistic-lock update)."""
        body = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return self.api.merge_patch(path + "/status", body)

    def create_pod(self, namespace, pod, why):
        created = self.api.create(obj_path("/api/v1", "pods", namespace), pod)
        self.snap["pods"].append(created or pod)
        self.log("%s: created pod %s/%s" % (why, namespace, pod["metadata"]["name"]))
        return created

    def delete_pod(self, pod, why):
        namespace, name = ns_name(pod)
        self.api.delete(pod_path(pod))
        self.log("%s: deleted pod %s/%s" % (why, namespace, name))

    def pods_owned(self, owner):
        return [p for p in self.snap["pods"] if rules.owned_by(p, owner)]

    def new_pod_from_template(self, template, owner_ref, prefix, namespace, labels=None):
        """pkg/controller/controller_utils.go GetPodFromTemplate: labels, annotations,
        finalizers and spec from the template, generateName "<owner>-", the controller
        reference. The name is generated here the way the API server would
        (names.SimpleNameGenerator), so the create does not depend on generateName."""
        template = copy.deepcopy(template or {})
        tmeta = template.get("metadata") or {}
        pod_labels = dict(tmeta.get("labels") or {})
        pod_labels.update(labels or {})
        prefix = prefix[:58] if len(prefix) > 58 else prefix  # names.go maxGeneratedNameLength
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": prefix + scheduling.random_suffix(), "generateName": prefix,
                            "namespace": namespace, "labels": pod_labels,
                            "ownerReferences": [owner_ref]},
               "spec": template.get("spec") or {}}
        if tmeta.get("annotations"):
            pod["metadata"]["annotations"] = dict(tmeta["annotations"])
        if tmeta.get("finalizers"):
            pod["metadata"]["finalizers"] = list(tmeta["finalizers"])
        return pod

    # -- scheduler ----------------------------------------------------------------------
    def sync_scheduler(self):
        """kube-scheduler (pkg/scheduler/schedule_one.go ScheduleOne): pods without
        spec.nodeName whose schedulerName is default-scheduler (pkg/apis/core/v1/
        defaults.go), in PrioritySort order (priority, then creation); bound with the
        binding subresource (plugins/defaultbinder/default_binder.go Bind). A pod that
        fits nowhere gets PodScheduled=False/Unschedulable with the FitError message
        (schedule_one.go handleSchedulingFailure -> updatePod)."""
        nodes = self.snap["nodes"]
        pods = self.snap["pods"]
        pending = [p for p in pods
                   if not (p.get("spec") or {}).get("nodeName")
                   and (p.get("spec") or {}).get("schedulerName", "default-scheduler") == "default-scheduler"
                   and not p["metadata"].get("deletionTimestamp") and not rules.is_terminal(p)
                   and not (p.get("spec") or {}).get("schedulingGates")]
        # queuesort/priority_sort.go Less: higher priority first, then earlier timestamp
        pending.sort(key=lambda p: (-(p["spec"].get("priority") or 0),
                                    p["metadata"].get("creationTimestamp") or ""))
        for pod in pending:
            namespace, name = ns_name(pod)
            candidates, plans, waiting = nodes, {}, None
            if dra.pod_claim_entries(pod):
                # dynamicresources.go PreFilter/Filter: nodes where every claim is or can be allocated.
                candidates, plans, waiting = dra.feasible_nodes(
                    pod, nodes, self.snap.get("resourceclaims", []), self.snap.get("resourceslices", []),
                    self.snap.get("deviceclasses", []))
            if waiting:
                continue    # PreEnqueue: the pod waits for its claims (no condition written)
            node, message = scheduling.schedule(pod, candidates, pods) if candidates else (None, None)
            if message is None and node is None:
                message = "0/%d nodes are available: %d %s." % (len(nodes), len(nodes), dra.REASON_CANNOT_ALLOCATE)
            if node and plans.get(node) is not None:
                self.reserve_claims(pod, plans[node])
            if node:
                binding = {"apiVersion": "v1", "kind": "Binding",
                           "metadata": {"name": name, "namespace": namespace},
                           "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
                self.api.create(pod_path(pod) + "/binding", binding)
                pod["spec"]["nodeName"] = node  # the cache's assume (schedule_one.go assume)
                self.log("scheduler: bound %s/%s to %s" % (namespace, name, node))
                continue
            cond = rules.condition(pod, "PodScheduled")
            if cond and cond.get("status") == "False" and cond.get("message") == message:
                continue
            conditions = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                               "message": message, "lastProbeTime": None,
                               "lastTransitionTime": self.now_text()})
            self.patch_status(pod_path(pod), {"conditions": conditions})
            self.log("scheduler: %s/%s unschedulable: %s" % (namespace, name, message))

    # -- DRA: resource-claim controller and the scheduler's reservation ---------------------
    def reserve_claims(self, pod, plan):
        """dynamicresources.go Reserve + PreBind: each claim of the pod gets its allocation
        (the ones allocated in this cycle) and the pod in status.reservedFor, before the bind."""
        namespace = pod["metadata"]["namespace"]
        for entry in dra.pod_claim_entries(pod):
            name = dra.claim_name_for(pod, entry)
            claim = next(c for c in self.snap["resourceclaims"]
                         if c["metadata"]["name"] == name and c["metadata"].get("namespace") == namespace)
            status = dict(claim.get("status") or {})
            if name in plan:
                status["allocation"] = plan[name]
            reserved = [r for r in status.get("reservedFor") or [] if r.get("uid") != pod["metadata"].get("uid")]
            status["reservedFor"] = reserved + [dra.reserved_for(pod)]
            self.patch_status(dra.claims_path(namespace, name), status)
            claim["status"] = status     # the scheduler's assume cache
            self.log("scheduler: allocated resourceclaim %s/%s for pod %s" % (namespace, name, pod["metadata"]["name"]))

    def sync_resource_claims(self):
        """pkg/controller/resourceclaim/controller.go: claims from templates for pods
        (syncPod -> handleClaim, then the pod's status.resourceClaimStatuses), and syncClaim
        for every claim (dra.claim_cleanup)."""
        templates = dict(((t["metadata"].get("namespace"), t["metadata"]["name"]), t)
                         for t in self.snap.get("resourceclaimtemplates", []))
        for pod, entry in dra.claims_to_create(self.snap["pods"], self.snap.get("resourceclaims", [])):
            namespace = pod["metadata"]["namespace"]
            template = templates.get((namespace, entry["resourceClaimTemplateName"]))
            if template is None:
                continue    # controller.go: the template may appear later; retried
            claim = dra.claim_from_template(pod, entry, template)
            created = self.api.create(dra.claims_path(namespace), claim) or claim
            self.snap["resourceclaims"].append(created)
            statuses = list((pod.get("status") or {}).get("resourceClaimStatuses") or [])
            statuses.append({"name": entry["name"], "resourceClaimName": created["metadata"]["name"]})
            self.patch_status(pod_path(pod), {"resourceClaimStatuses": statuses})
            pod.setdefault("status", {})["resourceClaimStatuses"] = statuses
            self.log("resourceclaim: created %s/%s for pod %s" % (namespace, created["metadata"]["name"],
                                                                  pod["metadata"]["name"]))
        for claim in self.snap.get("resourceclaims", []):
            action, valid = dra.claim_cleanup(claim, self.snap["pods"])
            namespace, name = ns_name(claim)
            if action == "delete":
                self.api.delete(dra.claims_path(namespace, name))
                self.log("resourceclaim: deleted %s/%s (its pod is done)" % (namespace, name))
            elif action in ("unreserve", "deallocate"):
                status = {"reservedFor": valid or None}
                if action == "deallocate":
                    status["allocation"] = None
                self.patch_status(dra.claims_path(namespace, name), status)
                self.log("resourceclaim: %s %s/%s" % (action, namespace, name))

    # -- node lifecycle + IPAM ---------------------------------------------------------
    def sync_node_lifecycle(self):
        """pkg/controller/nodelifecycle/node_lifecycle_controller.go monitorNodeHealth:
        a node whose kubelet stopped renewing its Lease / posting status for
        nodeMonitorGracePeriod gets every condition set to Unknown (reason
        NodeStatusUnknown, "Kubelet stopped posting node status."); then the condition
        taints are reconciled (doNoScheduleTaintingPass, doNoExecuteTaintingPass)."""
        now = self.now()
        now_text = rules.now_rfc3339(now)
        for node in self.snap["nodes"]:
            name = node["metadata"]["name"]
            conditions = (node.get("status") or {}).get("conditions") or []
            ready = rules.condition(node, "Ready")
            if (ready and ready.get("status") != "Unknown"
                    and rules.heartbeat_expired(node, self.snap["leases"].get(name), now, self.node_monitor_grace)):
                changed = []
                for cond in conditions:
                    if cond.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                        cond = dict(cond, status="Unknown", reason="NodeStatusUnknown",
                                    message="Kubelet stopped posting node status.",
                                    lastTransitionTime=now_text)
                    changed.append(cond)
                # tryUpdateNodeHealth: UpdateStatus of the node as read (its resourceVersion:
                # a status the kubelet posted since is a conflict, seen on the next pass)
                updated = self.patch_status("/api/v1/nodes/" + name, {"conditions": changed},
                                            node["metadata"].get("resourceVersion"))
                node.setdefault("status", {})["conditions"] = changed
                node["metadata"]["resourceVersion"] = ((updated or {}).get("metadata") or {}).get("resourceVersion")
                self.log("node-lifecycle: node %s stopped posting status: Ready Unknown" % name)
                self.mark_pods_not_ready(name)
            self._reconcile_node_taints(node, now_text)

    def _reconcile_node_taints(self, node, now_text):
        """pkg/controller/controller_utils.go SwapNodeControllerTaint -> AddOrUpdateTaintOnNode /
        RemoveTaintOffNode: the node as cached on the first try, then read again; the new
        taints written by PatchNodeTaints, whose patch carries the node's resourceVersion, so
        that taints written by someone else since (kubeadm's mark-control-plane, a cordon)
        are a conflict rather than overwritten; retried on conflict (retry.RetryOnConflict
        with UpdateTaintBackoff, 5 steps)."""
        name = node["metadata"]["name"]
        current = node
        for attempt in range(5):
            if attempt:
                current = self.api.get("/api/v1/nodes/" + name)
                if current is None:
                    return
            taints = rules.reconcile_taints((current.get("spec") or {}).get("taints"),
                                            rules.desired_lifecycle_taints(current), now_text)
            if taints is None:
                return
            try:
                self.api.merge_patch("/api/v1/nodes/" + name, {
                    "metadata": {"resourceVersion": current["metadata"].get("resourceVersion")},
                    "spec": {"taints": taints or None}})
            except ApiError as err:
                if err.status == 409:
                    continue
                raise
            node.setdefault("spec", {})["taints"] = taints
            self.log("node-lifecycle: node %s taints now %s" % (
                name, ", ".join("%s:%s" % (t["key"], t["effect"]) for t in taints) or "none"))
            return

    def mark_pods_not_ready(self, node_name):
        """pkg/controller/util/node/controller_utils.go MarkPodsNotReady: Ready=False on the
        pods of a node that stopped reporting."""
        for pod in self.snap["pods"]:
            if (pod.get("spec") or {}).get("nodeName") != node_name or rules.is_terminal(pod):
                continue
            conditions = []
            changed = False
            for cond in (pod.get("status") or {}).get("conditions") or []:
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond = dict(cond, status="False", lastTransitionTime=self.now_text())
                    changed = True
                conditions.append(cond)
            if changed:
                self.patch_status(pod_path(pod), {"conditions": conditions})
                self.log("node-lifecycle: marked pod %s/%s not ready" % ns_name(pod))

    def sync_node_ipam(self):
        """pkg/controller/nodeipam (RangeAllocator, --allocate-node-cidrs): a node without
        spec.podCIDR gets the next free /--node-cidr-mask-size of each --cluster-cidr
        (range_allocator.go AllocateOrOccupyCIDR, updateCIDRsAllocation)."""
        if not self.allocate_node_cidrs or not self.cluster_cidrs:
            return
        used = []
        for node in self.snap["nodes"]:
            used.extend((node.get("spec") or {}).get("podCIDRs") or [])
            if (node.get("spec") or {}).get("podCIDR"):
                used.append(node["spec"]["podCIDR"])
        for node in sorted(self.snap["nodes"], key=lambda n: n["metadata"].get("creationTimestamp") or ""):
            if (node.get("spec") or {}).get("podCIDR"):
                continue
            cidrs = rules.allocate_cidrs(self.cluster_cidrs, used, mask_v4=self.node_cidr_mask_size)
            name = node["metadata"]["name"]
            if cidrs is None:
                self.log("node-ipam: no CIDR left for node %s (CIDRNotAvailable)" % name)
                continue
            self.api.merge_patch("/api/v1/nodes/" + name, {"spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}})
            node.setdefault("spec", {}).update(podCIDR=cidrs[0], podCIDRs=cidrs)
            used.extend(cidrs)
            self.log("node-ipam: node %s podCIDRs %s" % (name, ",".join(cidrs)))

    # -- DaemonSet ----------------------------------------------------------------------
    @staticmethod
    def _pod_node(pod):
        """The node a daemon pod is for: spec.nodeName, or before binding the node of the
        matchFields metadata.name term (daemon/util GetTargetNodeName)."""
        node = (pod.get("spec") or {}).get("nodeName")
        if node:
            return node
        terms = ((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution") or {}).get("nodeSelectorTerms") or []
        for term in terms:
            for field in term.get("matchFields") or []:
                if field.get("key") == "metadata.name" and field.get("values"):
                    return field["values"][0]
        return None

    def _ensure_revision(self, ds, hash_value):
        """pkg/controller/daemon/update.go constructHistory: one ControllerRevision per
        template, named <ds>-<hash>, data = getPatch(ds) (the template with
        "$patch": "replace"), revision = max + 1; an existing one that matches the template
        again gets revision max(old) + 1 (the upgrade controller of NVIDIA's k8s-operator-libs
        takes the highest revision for the current one)."""
        namespace, name = ns_name(ds)
        revisions = [r for r in self.snap["controllerrevisions"] if rules.owned_by(r, ds)]
        current = [r for r in revisions
                   if (r["metadata"].get("labels") or {}).get("controller-revision-hash") == hash_value]
        if current:
            # constructHistory: the current history's revision is raised to max(old) + 1 when
            # the template goes back to an earlier one (the newest revision is the current)
            wanted = max([r.get("revision", 0) for r in revisions if r not in current] + [0]) + 1
            cur = current[0]
            if cur.get("revision", 0) < wanted:
                body = copy.deepcopy(cur)
                body["revision"] = wanted
                self.api.replace(obj_path(APPS, "controllerrevisions", namespace, cur["metadata"]["name"]), body)
                cur["revision"] = wanted
                self.log("daemonset: controllerrevision %s/%s is revision %d again" % (
                    namespace, cur["metadata"]["name"], wanted))
            return
        template = copy.deepcopy(ds["spec"]["template"])
        template["$patch"] = "replace"
        labels = dict((ds["spec"]["template"].get("metadata") or {}).get("labels") or {})
        labels["controller-revision-hash"] = hash_value
        revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                    "metadata": {"name": "%s-%s" % (name, hash_value), "namespace": namespace, "labels": labels,
                                 "ownerReferences": [rules.owner_reference(ds, "apps/v1", "DaemonSet")]},
                    "data": {"spec": {"template": template}},
                    "revision": max([r.get("revision", 0) for r in revisions] + [0]) + 1}
        try:
            created = self.api.create(obj_path(APPS, "controllerrevisions", namespace), revision)
            self.snap["controllerrevisions"].append(created or revision)
            self.log("daemonset: created controllerrevision %s/%s" % (namespace, revision["metadata"]["name"]))
        except ApiError as err:
            if err.status not in (404, 405, 409):
                raise

    def sync_daemonsets(self):
        """pkg/controller/daemon/daemon_controller.go syncDaemonSet -> manage (podsShouldBeOnNode:
        create on nodes that should run a pod and have none, delete where it should not
        continue, the extras, and Failed/Succeeded pods), rollingUpdate (update.go: old pods
        deleted while the unavailable count stays within maxUnavailable; OnDelete: nothing),
        updateDaemonSetStatus.

        getNodesToDaemonPods keeps the pods being deleted (only terminal ones that are being
        deleted are dropped): a node whose daemon pod is terminating gets no new pod until it
        is gone (podsShouldBeOnNode "shouldRun && !exists"), and the status counts it."""
        now = self.now()
        for ds in self.snap["daemonsets"]:
            if ds["metadata"].get("deletionTimestamp"):
                continue
            namespace, name = ns_name(ds)
            spec = ds.get("spec") or {}
            template = spec.get("template") or {}
            hash_value = scheduling.compute_hash(template, (ds.get("status") or {}).get("collisionCount"))
            self._ensure_revision(ds, hash_value)
            claimed = [p for p in self.pods_owned(ds)
                       if not (rules.is_terminal(p) and p["metadata"].get("deletionTimestamp"))]
            owned = [p for p in claimed if not p["metadata"].get("deletionTimestamp")]
            by_node = {}
            for pod in claimed:
                by_node.setdefault(self._pod_node(pod), []).append(pod)
            nodes = {n["metadata"]["name"]: n for n in self.snap["nodes"]}
            desired = scheduled = misscheduled = ready = available = updated = 0
            should_nodes = []
            for node_name, node in sorted(nodes.items()):
                should_run, should_continue = scheduling.daemon_should_run(ds, node)
                pods = by_node.pop(node_name, [])
                live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
                if should_run and not pods:
                    self._create_daemon_pod(ds, node_name, hash_value)
                elif should_continue:
                    # podsShouldBeOnNode: Failed and Succeeded daemon pods are deleted, and of
                    # more than one running pod all but the oldest (no surge)
                    done = [p for p in live if rules.pod_phase(p) in ("Failed", "Succeeded")]
                    for pod in done:
                        self.delete_pod(pod, "daemonset %s/%s (%s pod)" % (
                            namespace, name, rules.pod_phase(pod).lower()))
                    running = sorted((p for p in live if p not in done), key=_daemon_pod_order)
                    for extra in running[1:]:
                        self.delete_pod(extra, "daemonset %s/%s (extra pod)" % (namespace, name))
                elif pods:
                    # a pod on a node it should not continue running on is deleted
                    for pod in live:
                        self.delete_pod(pod, "daemonset %s/%s (node %s no longer eligible)" % (namespace, name, node_name))
                # updateDaemonSetStatus: the oldest daemon pod of each node that should run one
                if should_run:
                    desired += 1
                    should_nodes.append(node_name)
                    if pods:
                        pod = sorted(pods, key=_daemon_pod_order)[0]
                        scheduled += 1
                        if rules.is_ready(pod):
                            ready += 1
                            if rules.is_available(pod, spec.get("minReadySeconds", 0), now):
                                available += 1
                        # util.IsPodUpdated: the pod's controller-revision-hash is the current one
                        if (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == hash_value:
                            updated += 1
                elif pods:
                    misscheduled += 1
            for node_name, pods in by_node.items():  # pods for nodes that are gone
                for pod in pods:
                    if not pod["metadata"].get("deletionTimestamp"):
                        self.delete_pod(pod, "daemonset %s/%s (node %s gone)" % (namespace, name, node_name))
            self._daemon_rolling_update(ds, hash_value, owned, should_nodes, desired, now)
            status = {"desiredNumberScheduled": desired, "currentNumberScheduled": scheduled,
                      "numberMisscheduled": misscheduled, "numberReady": ready,
                      "numberAvailable": available, "updatedNumberScheduled": updated,
                      "numberUnavailable": desired - available,
                      "observedGeneration": ds["metadata"].get("generation", 1)}
            old = ds.get("status") or {}
            if any(old.get(k, 0) != v for k, v in status.items()):
                if not status["numberUnavailable"]:
                    status["numberUnavailable"] = None  # omitempty upstream
                if not status["numberAvailable"]:
                    status["numberAvailable"] = None
                self.patch_status(obj_path(APPS, "daemonsets", namespace, name), status)
                self.log("daemonset: %s/%s desired %d current %d ready %d updated %d available %d" % (
                    namespace, name, desired, scheduled, ready, updated, available))

    def _create_daemon_pod(self, ds, node_name, hash_value):
        """daemon_controller.go syncNodes + util.CreatePodTemplate: template labels plus
        controller-revision-hash and pod-template-generation, the daemon tolerations, and
        node affinity pinning the pod to its node (the scheduler binds it)."""
        namespace, name = ns_name(ds)
        template = ds["spec"]["template"]
        pod = self.new_pod_from_template(
            template, rules.owner_reference(ds, "apps/v1", "DaemonSet"), name + "-", namespace,
            labels={"controller-revision-hash": hash_value,
                    "pod-template-generation": str(ds["metadata"].get("generation", 1))})
        tspec = pod["spec"]
        tspec["tolerations"] = scheduling.daemon_pod_tolerations(tspec.get("tolerations"), tspec.get("hostNetwork", False))
        tspec["affinity"] = scheduling.daemon_pod_node_affinity(tspec.get("affinity"), node_name)
        self.create_pod(namespace, pod, "daemonset %s/%s (node %s)" % (namespace, name, node_name))

    def _daemon_rolling_update(self, ds, hash_value, owned, should_nodes, desired, now):
        """pkg/controller/daemon/update.go rollingUpdate (maxSurge 0): old pods that are not
        available are deleted at once; old available ones only while the number of
        unavailable daemon pods stays below maxUnavailable (default 1, a percentage of
        desiredNumberScheduled rounded up: util.UnavailableCount). OnDelete: nothing."""
        strategy = (ds.get("spec") or {}).get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        namespace, name = ns_name(ds)
        max_unavailable = rules.scaled_value(
            (strategy.get("rollingUpdate") or {}).get("maxUnavailable", 1), desired, True) or 0
        min_ready = (ds.get("spec") or {}).get("minReadySeconds", 0)
        per_node = {}
        for pod in owned:
            node = self._pod_node(pod)
            if node in should_nodes and rules.pod_phase(pod) != "Failed":
                per_node.setdefault(node, pod)
        unavailable = sum(1 for n in should_nodes if n not in per_node or not rules.is_available(per_node[n], min_ready, now))
        old_available = []
        for node in should_nodes:
            pod = per_node.get(node)
            if pod is None or (pod["metadata"].get("labels") or {}).get("controller-revision-hash") == hash_value:
                continue
            if rules.is_available(pod, min_ready, now):
                old_available.append(pod)
            else:
                self.delete_pod(pod, "daemonset %s/%s (rolling update, old unavailable)" % (namespace, name))
        for pod in old_available:
            if unavailable >= max_unavailable:
                break
            self.delete_pod(pod, "daemonset %s/%s (rolling update)" % (namespace, name))
            unavailable += 1

    # -- Deployment and ReplicaSet ------------------------------------------------------
    def sync_deployments(self):
        """pkg/controller/deployment/deployment_controller.go syncDeployment:
        getAllReplicaSetsAndSyncRevision (new RS <name>-<pod-template-hash>, revision
        annotation), rolloutRolling (rolling.go reconcileNewReplicaSet /
        reconcileOldReplicaSets) or rolloutRecreate (recreate.go), syncRolloutStatus."""
        now_text = self.now_text()
        for dep in self.snap["deployments"]:
            if dep["metadata"].get("deletionTimestamp"):
                continue
            namespace, name = ns_name(dep)
            spec = dep.get("spec") or {}
            replicas = spec.get("replicas", 1)
            template = copy.deepcopy(spec.get("template") or {})
            hash_value = scheduling.compute_hash(template, (dep.get("status") or {}).get("collisionCount"))
            owned = [r for r in self.snap["replicasets"] if rules.owned_by(r, dep)]

            def without_hash(rs):
                t = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
                ((t.get("metadata") or {}).get("labels") or {}).pop("pod-template-hash", None)
                if t.get("metadata") is not None and not t["metadata"].get("labels"):
                    t["metadata"].pop("labels", None)
                return t

            tcmp = copy.deepcopy(template)
            if tcmp.get("metadata") is not None and not tcmp["metadata"].get("labels"):
                tcmp["metadata"].pop("labels", None)
            # deployment/util EqualIgnoreHash: templates equal apart from pod-template-hash
            new_rs = next((r for r in owned if without_hash(r) == tcmp), None)
            old = [r for r in owned if r is not new_rs]
            revisions = [int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "0") or 0) for r in owned]
            strategy = spec.get("strategy") or {}
            surge, unavailable = rules.resolve_fenceposts(
                (strategy.get("rollingUpdate") or {}).get("maxSurge"),
                (strategy.get("rollingUpdate") or {}).get("maxUnavailable"), replicas)
            if strategy.get("type") == "Recreate":
                surge, unavailable = 0, replicas
            if new_rs is None and not spec.get("paused"):
                new_rs = self._create_replicaset(dep, template, hash_value, max(revisions + [0]) + 1, old, replicas, surge)
            if spec.get("paused"):
                pass
            elif strategy.get("type") == "Recreate":
                self._recreate(dep, new_rs, old, replicas)
            else:
                self._rolling(dep, new_rs, old, replicas, surge, unavailable)
            all_rs = old + ([new_rs] if new_rs else [])

            def status_of(r, k):
                return (r.get("status") or {}).get(k, 0)
            total = sum(status_of(r, "replicas") for r in all_rs)
            available = sum(status_of(r, "availableReplicas") for r in all_rs)
            ready = sum(status_of(r, "readyReplicas") for r in all_rs)
            updated = status_of(new_rs, "replicas") if new_rs else 0
            status = {"observedGeneration": dep["metadata"].get("generation", 1), "replicas": total,
                      "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": available,
                      "unavailableReplicas": max(0, replicas - available)}
            status["conditions"] = rules.deployment_conditions(
                (dep.get("status") or {}).get("conditions"), replicas, available, updated, total,
                new_rs["metadata"]["name"] if new_rs else "", unavailable, now_text)
            old_status = dep.get("status") or {}

            def strip(conds):
                return [(c["type"], c["status"], c.get("reason"), c.get("message")) for c in conds or []]
            if (any(old_status.get(k, 0) != v for k, v in status.items() if k != "conditions")
                    or strip(old_status.get("conditions")) != strip(status["conditions"])):
                self.patch_status(obj_path(APPS, "deployments", namespace, name), status)
                self.log("deployment: %s/%s replicas %d updated %d ready %d available %d" % (
                    namespace, name, total, updated, ready, available))

    def _create_replicaset(self, dep, template, hash_value, revision, old, replicas, surge):
        namespace, name = ns_name(dep)
        spec = dep["spec"]
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = hash_value
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})["pod-template-hash"] = hash_value
        # sync.go getNewReplicaSet: the new RS starts with NewRSNewReplicas
        current_total = sum((r.get("spec") or {}).get("replicas", 0) for r in old)
        if (spec.get("strategy") or {}).get("type") == "Recreate":
            start = 0 if current_total else replicas
        else:
            start = max(0, min(replicas, replicas + surge - current_total))
        annotations = {k: v for k, v in (dep["metadata"].get("annotations") or {}).items()
                       if k not in ("kubectl.kubernetes.io/last-applied-configuration", "deployment.kubernetes.io/revision")}
        annotations.update({"deployment.kubernetes.io/revision": str(revision),
                            "deployment.kubernetes.io/desired-replicas": str(replicas),
                            "deployment.kubernetes.io/max-replicas": str(replicas + surge)})
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": "%s-%s" % (name, hash_value), "namespace": namespace,
                           "labels": dict(rs_template["metadata"]["labels"]), "annotations": annotations,
                           "ownerReferences": [rules.owner_reference(dep, "apps/v1", "Deployment")]},
              "spec": {"replicas": start, "minReadySeconds": spec.get("minReadySeconds", 0),
                       "selector": selector, "template": rs_template}}
        created = self.api.create(obj_path(APPS, "replicasets", namespace), rs) or rs
        self.snap["replicasets"].append(created)
        self.api.merge_patch(obj_path(APPS, "deployments", namespace, name),
                             {"metadata": {"annotations": {"deployment.kubernetes.io/revision": str(revision)}}})
        self.log("deployment: %s/%s created replicaset %s (%d replicas)" % (namespace, name, rs["metadata"]["name"], start))
        return created

    def _scale(self, rs, count, why):
        if (rs.get("spec") or {}).get("replicas", 1) == count:
            return
        namespace, name = ns_name(rs)
        self.api.merge_patch(obj_path(APPS, "replicasets", namespace, name), {"spec": {"replicas": count}})
        rs.setdefault("spec", {})["replicas"] = count
        self.log("deployment: scaled replicaset %s/%s to %d (%s)" % (namespace, name, count, why))

    def _recreate(self, dep, new_rs, old, replicas):
        """recreate.go rolloutRecreate: old RSs to 0, then the new one up once no old pod runs."""
        for rs in old:
            self._scale(rs, 0, "recreate")
        running = [p for rs in old for p in self.pods_owned(rs) if not rules.is_terminal(p)]
        if new_rs and not running:
            self._scale(new_rs, replicas, "recreate")

    def _rolling(self, dep, new_rs, old, replicas, surge, unavailable):
        """rolling.go: reconcileNewReplicaSet (NewRSNewReplicas: up to replicas + maxSurge in
        all RSs) and reconcileOldReplicaSets (cleanupUnhealthyReplicas first, then scale
        down while available pods stay at replicas - maxUnavailable)."""
        def spec_of(r):
            return (r.get("spec") or {}).get("replicas", 0)

        def avail_of(r):
            return (r.get("status") or {}).get("availableReplicas", 0)

        if new_rs is not None:
            want = spec_of(new_rs)
            if spec_of(new_rs) > replicas:
                want = replicas
            elif spec_of(new_rs) < replicas:
                total = sum(spec_of(r) for r in old) + spec_of(new_rs)
                want = spec_of(new_rs) + max(0, min(replicas + surge - total, replicas - spec_of(new_rs)))
            self._scale(new_rs, want, "rolling update")
        all_rs = old + ([new_rs] if new_rs else [])
        min_available = replicas - unavailable
        new_unavailable = spec_of(new_rs) - avail_of(new_rs) if new_rs else 0
        max_scaled_down = sum(spec_of(r) for r in all_rs) - min_available - new_unavailable
        if max_scaled_down <= 0:
            return
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if max_scaled_down <= 0:
                break
            unhealthy = spec_of(rs) - avail_of(rs)
            cut = min(max_scaled_down, max(unhealthy, 0))
            if cut:
                self._scale(rs, spec_of(rs) - cut, "cleanup unhealthy")
                max_scaled_down -= cut
        all_available = sum(avail_of(r) for r in all_rs)
        can_remove = all_available - min_available
        for rs in sorted(old, key=lambda r: r["metadata"].get("creationTimestamp") or ""):
            if can_remove <= 0:
                break
            cut = min(spec_of(rs), can_remove)
            if cut:
                self._scale(rs, spec_of(rs) - cut, "rolling update")
                can_remove -= cut

    def sync_replicasets(self):
        """pkg/controller/replicaset/replica_set.go syncReplicaSet -> manageReplicas (create
        or delete the difference; deletion order getPodsToDelete) and
        calculateStatus (replica_set_utils.go)."""
        now = self.now()
        for rs in self.snap["replicasets"]:
            if rs["metadata"].get("deletionTimestamp"):
                continue
            namespace, name = ns_name(rs)
            spec = rs.get("spec") or {}
            want = spec.get("replicas", 1)
            active = [p for p in self.pods_owned(rs) if rules.is_active(p)]
            diff = len(active) - want
            if diff < 0:
                for _unused in range(min(-diff, 500)):  # replica_set.go burstReplicas
                    pod = self.new_pod_from_template(spec.get("template"), rules.owner_reference(rs, "apps/v1", "ReplicaSet"),
                                                     name + "-", namespace)
                    active.append(self.create_pod(namespace, pod, "replicaset %s/%s" % (namespace, name)) or pod)
            elif diff > 0:
                for pod in sorted(active, key=rules.deletion_rank)[:diff]:
                    self.delete_pod(pod, "replicaset %s/%s (scale down)" % (namespace, name))
                    active.remove(pod)
            labels_ok = [p for p in active if rules.selector_matches({"matchLabels": (spec.get("template") or {}).get("metadata", {}).get("labels") or {}},
                                                                     p["metadata"].get("labels"))]
            status = {"replicas": len(active), "fullyLabeledReplicas": len(labels_ok),
                      "readyReplicas": sum(1 for p in active if rules.is_ready(p)),
                      "availableReplicas": sum(1 for p in active if rules.is_available(p, spec.get("minReadySeconds", 0), now)),
                      "observedGeneration": rs["metadata"].get("generation", 1)}
            old = rs.get("status") or {}
            if any(old.get(k, 0) != v for k, v in status.items()):
                self.patch_status(obj_path(APPS, "replicasets", namespace, name), status)
                rs["status"] = dict(old, **status)
                self.log("replicaset: %s/%s replicas %d ready %d available %d" % (
                    namespace, name, status["replicas"], status["readyReplicas"], status["availableReplicas"]))

    # -- Job ----------------------------------------------------------------------------
    def sync_jobs(self):
        for job in self.snap["jobs"]:
            if job["metadata"].get("deletionTimestamp"):
                continue
            self.sync_job(job)
        # job_controller.go: pods whose Job is gone lose the tracking finalizer
        # (handling of orphan pods in syncOrphanPod)
        job_uids = {j["metadata"].get("uid") for j in self.snap["jobs"]}
        for pod in self.snap["pods"]:
            ref = rules.controller_ref(pod)
            if (rules.JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])
                    and ref and ref.get("kind") == "Job" and ref.get("uid") not in job_uids):
                self._remove_finalizer(pod_path(pod), pod, rules.JOB_TRACKING_FINALIZER, "job (orphan pod)")

    def _remove_finalizer(self, path, obj, finalizer, why):
        rest = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        self.api.merge_patch(path, {"metadata": {"finalizers": rest or None}})
        obj["metadata"]["finalizers"] = rest
        self.log("%s: removed finalizer %s from %s" % (why, finalizer, path))

    def sync_job(self, job):
        """pkg/controller/job/job_controller.go syncJob: pods tracked with the
        batch.kubernetes.io/job-tracking finalizer (trackJobStatusAndRemoveFinalizers:
        terminated pods go to status.uncountedTerminatedPods, lose the finalizer, then
        are counted in succeeded/failed), backoffLimit / activeDeadlineSeconds
        (FailureTarget then Failed), completions (SuccessCriteriaMet then Complete, the
        terminal condition only once no pod is still running), suspend
        (Suspended=True/JobSuspended, startTime cleared; JobResumed), manageJob
        (create pods up to min(parallelism, completions - succeeded), with the pod
        failure backoff)."""
        namespace, name = ns_name(job)
        path = obj_path(BATCH, "jobs", namespace, name)
        uid = job["metadata"].get("uid")
        now = self.now()
        now_text = rules.now_rfc3339(now)
        spec = job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        conds = status.get("conditions") or []

        def is_true(kind):
            return any(c.get("type") == kind and c.get("status") == "True" for c in conds)
        pods = self.pods_owned(job)
        # 1. count terminated pods through uncountedTerminatedPods
        uncounted = status.get("uncountedTerminatedPods") or {}
        u_succ, u_fail = list(uncounted.get("succeeded") or []), list(uncounted.get("failed") or [])
        with_finalizer = [p for p in pods if rules.JOB_TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])]
        added = False
        for pod in with_finalizer:
            puid = pod["metadata"].get("uid")
            if puid in u_succ or puid in u_fail:
                continue
            if rules.pod_phase(pod) == "Succeeded":
                u_succ.append(puid)
                added = True
            elif rules.pod_phase(pod) == "Failed" or pod["metadata"].get("deletionTimestamp"):
                # job_controller.go getNewFinishedPods / isPodFailed: a deleted pod that did not succeed is failed
                u_fail.append(puid)
                added = True
        if added:
            self.patch_status(path, {"uncountedTerminatedPods": {"succeeded": u_succ or None, "failed": u_fail or None}})
        for pod in with_finalizer:
            if pod["metadata"].get("uid") in u_succ or pod["metadata"].get("uid") in u_fail:
                self._remove_finalizer(pod_path(pod), pod, rules.JOB_TRACKING_FINALIZER, "job %s/%s" % (namespace, name))
        still = {p["metadata"].get("uid") for p in with_finalizer
                 if rules.JOB_TRACKING_FINALIZER in (p["metadata"].get("finalizers") or [])}
        moved_s = [u for u in u_succ if u not in still]
        moved_f = [u for u in u_fail if u not in still]
        succeeded = status.get("succeeded", 0) + len(moved_s)
        failed = status.get("failed", 0) + len(moved_f)
        if moved_f:
            self._job_failure_time[uid] = now
        u_succ = [u for u in u_succ if u in still]
        u_fail = [u for u in u_fail if u in still]
        active_pods = [p for p in pods if rules.is_active(p)]
        terminating = [p for p in pods if not rules.is_terminal(p) and p["metadata"].get("deletionTimestamp")]
        new = {"succeeded": succeeded, "failed": failed}
        finished = is_true("Complete") or is_true("Failed")
        if finished:
            for pod in active_pods:
                self.delete_pod(pod, "job %s/%s (finished)" % (namespace, name))
            self._write_job_status(job, path, status, new, conds, u_succ, u_fail, [], terminating, now_text)
            return
        if not status.get("startTime") and not spec.get("suspend"):
            new["startTime"] = now_text
            status["startTime"] = now_text
            job.setdefault("status", {})["startTime"] = now_text
        conds = [dict(c) for c in conds]
        target = next((c for c in conds if c.get("type") in ("FailureTarget", "SuccessCriteriaMet") and c.get("status") == "True"), None)
        decision = rules.job_decision(dict(job, status=status), succeeded, failed, len(active_pods), now)
        if target is None and decision["finished"]:
            kind = "FailureTarget" if decision["finished"] == "Failed" else "SuccessCriteriaMet"
            target = {"type": kind, "status": "True", "reason": decision["reason"], "message": decision["message"],
                      "lastProbeTime": now_text, "lastTransitionTime": now_text}
            conds.append(target)
            self.log("job: %s/%s %s (%s)" % (namespace, name, kind, decision["reason"]))
        if target is not None:
            # the job's pods are terminated first, then the terminal condition
            # (job_controller.go: finishedCondition after all pods are gone or terminal)
            for pod in active_pods:
                self.delete_pod(pod, "job %s/%s (%s)" % (namespace, name, target["reason"]))
            if not active_pods and not terminating and not u_succ and not u_fail:
                final = "Failed" if target["type"] == "FailureTarget" else "Complete"
                conds.append({"type": final, "status": "True", "reason": target["reason"], "message": target["message"],
                              "lastProbeTime": now_text, "lastTransitionTime": now_text})
                if final == "Complete":
                    new["completionTime"] = now_text
                self.log("job: %s/%s %s" % (namespace, name, final))
                active_pods = []
            self._write_job_status(job, path, status, new, conds, u_succ, u_fail,
                                   [p for p in active_pods if not p["metadata"].get("deletionTimestamp")], terminating, now_text)
            return
        suspended = rules.condition(job, "Suspended")
        if spec.get("suspend"):
            for pod in active_pods:
                self.delete_pod(pod, "job %s/%s (suspended)" % (namespace, name))
            active_pods = []
            if not (suspended and suspended.get("status") == "True"):
                conds = [c for c in conds if c.get("type") != "Suspended"]
                conds.append({"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended",
                              "lastProbeTime": now_text, "lastTransitionTime": now_text})
                new["startTime"] = None
                self.log("job: %s/%s suspended" % (namespace, name))
        else:
            if suspended and suspended.get("status") == "True":
                conds = [c for c in conds if c.get("type") != "Suspended"]
                conds.append({"type": "Suspended", "status": "False", "reason": "JobResumed", "message": "Job resumed",
                              "lastProbeTime": now_text, "lastTransitionTime": now_text})
                new["startTime"] = now_text
                self.log("job: %s/%s resumed" % (namespace, name))
            diff = decision["want_active"] - len(active_pods)
            last_failure = self._job_failure_time.get(uid)
            wait = rules.job_backoff_seconds(failed)
            if diff > 0 and (last_failure is None or (now - last_failure).total_seconds() >= wait):
                for _unused in range(diff):
                    active_pods.append(self._create_job_pod(job))
            elif diff < 0:
                for pod in sorted(active_pods, key=rules.deletion_rank)[:-diff]:
                    self.delete_pod(pod, "job %s/%s (parallelism)" % (namespace, name))
                    active_pods.remove(pod)
        self._write_job_status(job, path, status, new, conds, u_succ, u_fail, active_pods, terminating, now_text)

    def _create_job_pod(self, job):
        """job_controller.go manageJob -> podControl.CreatePodsWithGenerateName: template
        labels (the API server adds batch.kubernetes.io/controller-uid, job-name and the
        legacy controller-uid/job-name: pkg/registry/batch/job/strategy.go
        generateSelector; added here too when absent), the tracking finalizer, the
        controller reference."""
        namespace, name = ns_name(job)
        uid = job["metadata"]["uid"]
        labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": name,
                  "controller-uid": uid, "job-name": name}
        pod = self.new_pod_from_template(job["spec"].get("template"), rules.owner_reference(job, "batch/v1", "Job"),
                                         name + "-", namespace, labels=labels)
        pod["metadata"]["finalizers"] = list(pod["metadata"].get("finalizers") or []) + [rules.JOB_TRACKING_FINALIZER]
        return self.create_pod(namespace, pod, "job %s/%s" % (namespace, name)) or pod

    def _write_job_status(self, job, path, status, new, conds, u_succ, u_fail, active_pods, terminating, now_text):
        update = dict(new)
        update["active"] = len(active_pods)
        update["ready"] = sum(1 for p in active_pods if rules.is_ready(p))
        update["terminating"] = len(terminating)
        update["conditions"] = conds or None
        update["uncountedTerminatedPods"] = {"succeeded": u_succ or None, "failed": u_fail or None}
        old = job.get("status") or {}
        changed = False
        for key, value in update.items():
            if key == "uncountedTerminatedPods":
                was = old.get(key) or {}
                if (was.get("succeeded") or []) != u_succ or (was.get("failed") or []) != u_fail:
                    changed = True
                continue
            if old.get(key, 0 if key in ("active", "ready", "terminating", "succeeded", "failed") else None) != value:
                changed = True
        if changed:
            self.patch_status(path, update)
            self.log("job: %s/%s active %d ready %d succeeded %d failed %d terminating %d" % (
                job["metadata"].get("namespace"), job["metadata"]["name"], update["active"], update["ready"],
                update["succeeded"], update["failed"], update["terminating"]))

    # -- garbage collector -------------------------------------------------------------
    GC_DEPENDENTS = (("/api/v1", "pods"), (APPS, "replicasets"), (APPS, "controllerrevisions"),
                     (APPS, "daemonsets"), (APPS, "deployments"), (BATCH, "jobs"),
                     (COORD, "leases"), ("/api/v1", "configmaps"), ("/api/v1", "secrets"),
                     ("/api/v1", "services"))

    def _gc_objects(self):
        cached = {("/api/v1", "pods"): "pods", (APPS, "replicasets"): "replicasets",
                  (APPS, "controllerrevisions"): "controllerrevisions", (APPS, "daemonsets"): "daemonsets",
                  (APPS, "deployments"): "deployments", (BATCH, "jobs"): "jobs"}
        out = []
        for base, plural in self.GC_DEPENDENTS:
            if (base, plural) in cached:
                items = self.snap[cached[(base, plural)]]
            else:
                items = self._list(base + "/" + plural)
            out.extend((base, plural, item) for item in items)
        return out

    def _resolve_kind(self, api_version, kind):
        if (api_version, kind) in KIND_PATHS:
            return KIND_PATHS[(api_version, kind)]
        for base, plural, namespaced, version, k in self._discover():
            if version == api_version and k == kind:
                return base, plural, namespaced
        return None

    def _owner_exists(self, ref, namespace):
        """garbagecollector.go isDangling: the owner is looked up by its coordinates; it
        is absent when the API answers 404 or the uid differs. Unresolvable kinds are
        treated as present (upstream waits too: the dependent stays)."""
        where = self._resolve_kind(ref.get("apiVersion"), ref.get("kind"))
        if where is None:
            return True
        base, plural, namespaced = where
        owner = self.api.get(obj_path(base, plural, namespace if namespaced else None, ref.get("name")))
        return owner is not None and owner["metadata"].get("uid") == ref.get("uid")

    def sync_garbage_collector(self):
        """pkg/controller/garbagecollector/garbagecollector.go attemptToDeleteItem (a
        dependent whose owners are all gone is deleted, background; dangling references
        next to a live owner are removed), processDeletingDependentsItem (foreground:
        owner with deletionTimestamp and finalizer foregroundDeletion waits for its
        blocking dependents, then loses the finalizer) and orphanDependents (finalizer
        orphan: the owner's references are removed from the dependents, then the
        finalizer)."""
        if self._pass % 2:
            return
        objects = self._gc_objects()
        uids = {item["metadata"].get("uid") for _b, _p, item in objects}
        uids.update(n["metadata"].get("uid") for n in self.snap["nodes"])
        uids.update(n["metadata"].get("uid") for n in self.snap["namespaces"])
        dependents_of = {}
        for base, plural, item in objects:
            for ref in item["metadata"].get("ownerReferences") or []:
                dependents_of.setdefault(ref.get("uid"), []).append((base, plural, item, ref))
        for base, plural, item in objects:
            m = item["metadata"]
            refs = m.get("ownerReferences") or []
            if not refs or m.get("deletionTimestamp"):
                continue
            unknown = [r for r in refs if r.get("uid") not in uids]
            if not unknown:
                continue
            dangling = [r for r in unknown if not self._owner_exists(r, m.get("namespace"))]
            if not dangling:
                continue
            path = obj_path(base, plural, m.get("namespace"), m["name"])
            if len(dangling) == len(refs):
                self.api.delete(path, params={"propagationPolicy": "Background"})
                self.log("garbage-collector: deleted %s/%s %s (owner %s %s gone)" % (
                    plural, m.get("namespace") or "", m["name"], dangling[0].get("kind"), dangling[0].get("name")))
            else:
                keep = [r for r in refs if r not in dangling]
                self.api.merge_patch(path, {"metadata": {"ownerReferences": keep}})
                self.log("garbage-collector: removed dangling owner references from %s %s" % (plural, m["name"]))
        # owners being deleted with foreground / orphan finalizers
        for base, plural, item in objects + [("/api/v1", "nodes", n) for n in self.snap["nodes"]]:
            m = item["metadata"]
            if not m.get("deletionTimestamp"):
                continue
            finalizers = m.get("finalizers") or []
            path = obj_path(base, plural, m.get("namespace"), m["name"])
            deps = dependents_of.get(m.get("uid"), [])
            if "orphan" in finalizers:
                for dbase, dplural, dep, ref in deps:
                    keep = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != m.get("uid")]
                    self.api.merge_patch(obj_path(dbase, dplural, dep["metadata"].get("namespace"), dep["metadata"]["name"]),
                                         {"metadata": {"ownerReferences": keep or None}})
                    self.log("garbage-collector: orphaned %s %s from %s %s" % (dplural, dep["metadata"]["name"], plural, m["name"]))
                self._remove_finalizer(path, item, "orphan", "garbage-collector")
            elif "foregroundDeletion" in finalizers:
                blocking = [d for d in deps if d[3].get("blockOwnerDeletion")]
                for dbase, dplural, dep, ref in deps:
                    if not dep["metadata"].get("deletionTimestamp"):
                        self.api.delete(obj_path(dbase, dplural, dep["metadata"].get("namespace"), dep["metadata"]["name"]),
                                        params={"propagationPolicy": "Foreground"})
                        self.log("garbage-collector: deleted %s %s (foreground deletion of %s %s)" % (
                            dplural, dep["metadata"]["name"], plural, m["name"]))
                if not blocking:
                    self._remove_finalizer(path, item, "foregroundDeletion", "garbage-collector")

    # -- discovery (GC owner kinds, namespace deletion) -------------------------------
    def _discover(self):
        """Every served resource (staging/src/k8s.io/client-go/discovery): /api/v1 and the
        preferred version of each group of /apis. Cached for 30 s."""
        if self._discovery is not None and time.monotonic() - self._discovery_time < 30:
            return self._discovery
        found = []
        sources = [("/api/v1", "v1")]
        try:
            groups = self.api.get("/apis") or {}
        except ApiError:
            groups = {}
        for group in groups.get("groups") or []:
            preferred = group.get("preferredVersion") or (group.get("versions") or [{}])[0]
            if preferred.get("groupVersion"):
                sources.append(("/apis/" + preferred["groupVersion"], preferred["groupVersion"]))
        for base, version in sources:
            try:
                listing = self.api.get(base) or {}
            except ApiError:
                continue
            for res in listing.get("resources") or []:
                if "/" in res.get("name", ""):
                    continue
                found.append((base, res["name"], bool(res.get("namespaced")), version, res.get("kind"),
                              tuple(res.get("verbs") or ())))
        self._discovery = found
        self._discovery_time = time.monotonic()
        return [f[:5] for f in found]

    def _namespaced_resources(self):
        self._discover()
        return [(b, p) for b, p, n, _v, _k, verbs in self._discovery
                if n and "list" in verbs and "delete" in verbs and p != "events"] + \
               [(b, p) for b, p, n, _v, _k, verbs in self._discovery if n and p == "events"]

    # -- namespace ---------------------------------------------------------------------
    def sync_namespaces(self):
        """pkg/controller/namespace/deletion/namespaced_resources_deleter.go Delete: for a
        namespace with deletionTimestamp, delete every namespaced resource in it
        (deleteAllContent), and once none remains remove the "kubernetes" finalizer
        through the finalize subresource (finalizeNamespace)."""
        for ns in self.snap["namespaces"]:
            m = ns["metadata"]
            if not m.get("deletionTimestamp"):
                continue
            finalizers = (ns.get("spec") or {}).get("finalizers") or []
            if "kubernetes" not in finalizers:
                continue
            remaining = 0
            for base, plural in self._namespaced_resources():
                try:
                    items = self.api.list(obj_path(base, plural, m["name"]))
                except ApiError:
                    continue
                for item in items:
                    remaining += 1
                    if not item["metadata"].get("deletionTimestamp"):
                        self.api.delete(obj_path(base, plural, m["name"], item["metadata"]["name"]),
                                        params={"propagationPolicy": "Background"})
                        self.log("namespace: deleted %s %s/%s" % (plural, m["name"], item["metadata"]["name"]))
            if remaining:
                continue
            body = copy.deepcopy(ns)
            body["spec"]["finalizers"] = [f for f in finalizers if f != "kubernetes"]
            self.api.replace("/api/v1/namespaces/%s/finalize" % m["name"], body)
            self.log("namespace: finalized %s" % m["name"])

    # -- disruption --------------------------------------------------------------------
    def sync_pdbs(self):
        """pkg/controller/disruption/disruption.go trySync: pods matching the selector,
        countHealthyPods (ready, not being deleted), getExpectedPodCount (scale of the
        pods' controllers: Deployment through its ReplicaSet, ReplicaSet, StatefulSet),
        updatePdbStatus with the DisruptionAllowed condition (SufficientPods /
        InsufficientPods, pkg/apis/policy/types.go)."""
        if self._pass % 3:
            return
        now_text = self.now_text()
        by_uid = {}
        for key in ("replicasets", "deployments", "statefulsets"):
            for obj in self.snap.get(key, []):
                by_uid[obj["metadata"].get("uid")] = (key, obj)
        for pdb in self.snap["pdbs"]:
            namespace, name = ns_name(pdb)
            selector = (pdb.get("spec") or {}).get("selector")
            pods = [p for p in self.snap["pods"] if p["metadata"].get("namespace") == namespace
                    and rules.selector_matches(selector, p["metadata"].get("labels"))]
            healthy = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and rules.is_ready(p))
            scale = 0
            seen = set()
            for pod in pods:
                ref = rules.controller_ref(pod)
                found = by_uid.get(ref.get("uid")) if ref else None
                if found and found[0] == "replicasets":
                    # disruption.go getPodReplicaSet / getPodDeployment: a ReplicaSet
                    # owned by a Deployment counts the Deployment's scale
                    parent = rules.controller_ref(found[1])
                    if parent and parent.get("uid") in by_uid:
                        found = by_uid[parent["uid"]]
                if found is None:
                    scale = None  # no scale finder: fall back to the pod count
                    break
                owner = found[1]
                if owner["metadata"]["uid"] not in seen:
                    seen.add(owner["metadata"]["uid"])
                    scale += (owner.get("spec") or {}).get("replicas", 1)
            expected, desired, allowed = rules.pdb_numbers(pdb, healthy, len(pods), scale if pods else 0)
            old = pdb.get("status") or {}
            prev = rules.condition(pdb, "DisruptionAllowed")
            cond_status = "True" if allowed > 0 else "False"
            reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
            status = {"currentHealthy": healthy, "desiredHealthy": desired, "disruptionsAllowed": allowed,
                      "expectedPods": expected, "observedGeneration": pdb["metadata"].get("generation", 1)}
            if (any(old.get(k) != v for k, v in status.items())
                    or not prev or prev.get("status") != cond_status or prev.get("reason") != reason):
                status["disruptedPods"] = old.get("disruptedPods") or None
                if prev and prev.get("status") == cond_status and prev.get("lastTransitionTime"):
                    transition = prev["lastTransitionTime"]
                else:
                    transition = now_text
                status["conditions"] = [{"type": "DisruptionAllowed", "status": cond_status, "reason": reason,
                                         "message": "", "observedGeneration": status["observedGeneration"],
                                         "lastTransitionTime": transition}]
                self.patch_status(obj_path(POLICY, "poddisruptionbudgets", namespace, name), status)
                self.log("disruption: %s/%s healthy %d desired %d allowed %d expected %d" % (
                    namespace, name, healthy, desired, allowed, expected))

    # -- certificates ------------------------------------------------------------------
    def _openssl(self, args, stdin=None):
        return subprocess.run(["openssl"] + args, input=stdin, capture_output=True, check=True, timeout=30).stdout

    def csr_subject(self, pem):
        """The request's subject as (CN, [O...]) via `openssl req -subject`."""
        out = self.run_openssl(["req", "-noout", "-subject", "-nameopt", "RFC2253"], stdin=pem).decode()
        text = out.strip()
        if text.startswith("subject="):
            text = text[len("subject="):]
        cn, orgs = None, []
        for part in text.split(","):
            key, _sep, value = part.strip().partition("=")
            if key == "CN":
                cn = value
            elif key == "O":
                orgs.append(value)
        return cn, orgs

    def sync_csrs(self):
        """pkg/controller/certificates/approver/sarapprove.go handle (the csrapproving
        controller) and pkg/controller/certificates/signer/signer.go handle (csrsigning)."""
        for csr in self.snap["csrs"]:
            try:
                self._sync_csr(csr)
            except (subprocess.SubprocessError, OSError) as err:
                self.log("csr: %s: %s" % (csr["metadata"]["name"], err))

    def _sync_csr(self, csr):
        name = csr["metadata"]["name"]
        spec = csr.get("spec") or {}
        status = csr.get("status") or {}
        types = {c.get("type") for c in status.get("conditions") or []}
        if "Denied" in types or "Failed" in types or status.get("certificate"):
            return
        pem = base64.b64decode(spec.get("request") or "")
        if "Approved" not in types:
            if not self._approvable(spec, pem):
                return
            body = copy.deepcopy(csr)
            body.setdefault("status", {}).setdefault("conditions", []).append({
                "type": "Approved", "status": "True", "reason": "AutoApproved",
                "message": "Auto approving kubelet client certificate after SubjectAccessReview.",
                "lastUpdateTime": self.now_text(), "lastTransitionTime": self.now_text()})
            csr = self.api.replace(CERTS + "/certificatesigningrequests/%s/approval" % name, body) or body
            self.log("csr: approved %s (%s)" % (name, spec.get("username")))
        if spec.get("signerName") not in KNOWN_SIGNERS or not (self.signing_cert and self.signing_key):
            return
        certificate = self.sign(pem, spec)
        body = copy.deepcopy(csr)
        body.setdefault("status", {})["certificate"] = base64.b64encode(certificate).decode()
        self.api.replace(CERTS + "/certificatesigningrequests/%s/status" % name, body)
        self.log("csr: signed %s" % name)

    def _approvable(self, spec, pem):
        """sarapprove.go recognizers: isNodeClientCert (signer
        kube-apiserver-client-kubelet, O=[system:nodes], CN system:node:<name>) requested
        by a bootstrapper ("nodeclient", kubeadm grants it to system:bootstrappers) or by
        the node itself ("selfnodeclient", username == CN). Authorisation is not simulated:
        the SubjectAccessReview is the group check kubeadm's RBAC would answer."""
        if spec.get("signerName") != KUBELET_CLIENT_SIGNER:
            return False
        cn, orgs = self.csr_subject(pem)
        if orgs != ["system:nodes"] or not cn or not cn.startswith("system:node:"):
            return False
        # sarapprove.go isNodeClientCert -> certificates.IsKubeletClientCSR: usages
        usages = set(spec.get("usages") or [])
        if not usages <= {"digital signature", "key encipherment", "client auth"} or "client auth" not in usages:
            return False
        groups = spec.get("groups") or []
        username = spec.get("username") or ""
        if "system:bootstrappers" in groups or username.startswith("system:bootstrap:"):
            return True
        return username == cn and "system:nodes" in groups

    def sign(self, pem, spec):
        """signer.go sign / authority.go Sign: a certificate for the request's subject and
        key, the usages as key usage / extended key usage, CA:FALSE, valid
        spec.expirationSeconds or --cluster-signing-duration (1 year), never past the CA."""
        seconds = spec.get("expirationSeconds") or 365 * 24 * 3600
        days = max(1, int(seconds // 86400))
        usages = spec.get("usages") or []
        key_usage = [u for u in ("digital signature", "key encipherment") if u in usages]
        ext_usage = [{"client auth": "clientAuth", "server auth": "serverAuth"}[u] for u in usages if u in ("client auth", "server auth")]
        lines = ["basicConstraints=critical,CA:FALSE"]
        if key_usage:
            lines.append("keyUsage=critical," + ",".join({"digital signature": "digitalSignature",
                                                          "key encipherment": "keyEncipherment"}[u] for u in key_usage))
        if ext_usage:
            lines.append("extendedKeyUsage=" + ",".join(ext_usage))
        with tempfile.TemporaryDirectory(prefix="kubegpu-sim-csr-") as tmp:
            req = os.path.join(tmp, "req.pem")
            ext = os.path.join(tmp, "ext.cnf")
            with open(req, "wb") as stream:
                stream.write(pem)
            with open(ext, "w") as stream:
                stream.write("\n".join(lines) + "\n")
            return self.run_openssl(["x509", "-req", "-in", req, "-CA", self.signing_cert, "-CAkey", self.signing_key,
                                     "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", str(days),
                                     "-extfile", ext, "-sha256"])


def parse_duration(text):
    """A Go duration like 40s, 1m30s, 2h (time.ParseDuration, the units used in flags)."""
    import re
    total = 0.0
    for value, unit in re.findall(r"([0-9.]+)(h|m|s|ms)", text):
        total += float(value) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total or float(text)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="kube-controller-manager (kubegpu-sim)")
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--cluster-signing-cert-file")
    parser.add_argument("--cluster-signing-key-file")
    parser.add_argument("--cluster-cidr", default="")
    parser.add_argument("--allocate-node-cidrs", default="false")
    parser.add_argument("--node-cidr-mask-size", type=int, default=24)
    parser.add_argument("--node-monitor-grace-period", default="40s")
    parser.add_argument("--sync-period", type=float, default=1.0, help="seconds between passes")
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        log("ignoring flags %s" % " ".join(unknown))
    while True:
        try:
            api = Client.from_kubeconfig(args.kubeconfig, timeout=15)
            break
        except (OSError, KeyError, ValueError) as err:
            log("cannot read kubeconfig %s: %s (retrying)" % (args.kubeconfig, err))
            time.sleep(5)
    manager = ControllerManager(
        api, signing_cert=args.cluster_signing_cert_file, signing_key=args.cluster_signing_key_file,
        cluster_cidr=args.cluster_cidr, allocate_node_cidrs=args.allocate_node_cidrs.lower() == "true",
        node_cidr_mask_size=args.node_cidr_mask_size,
        node_monitor_grace=parse_duration(args.node_monitor_grace_period))
    log("controller-manager + scheduler started against %s:%s" % (api.host, api.port))
    try:
        manager.run(interval=args.sync_period)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
