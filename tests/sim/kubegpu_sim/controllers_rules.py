# SPDX-License-Identifier: Apache-2.0
"""Pure decisions of the simulated controllers (test-only): pod states, Job conditions,
PDB arithmetic, Deployment rolling-update numbers, node CIDR allocation, node
lifecycle taints. No I/O. Each rule cites the upstream source it follows
(github.com/kubernetes/kubernetes unless another repository is named)."""
from __future__ import annotations

import datetime
import ipaddress
import math

# -- time ------------------------------------------------------------------------------


def now_rfc3339(now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    if not text:
        return None
    text = text.replace("Z", "+00:00")
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


# -- pods ------------------------------------------------------------------------------


def pod_phase(pod):
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminal(pod):
    return pod_phase(pod) in ("Succeeded", "Failed")


def is_active(pod):
    """pkg/controller/controller_utils.go IsPodActive: not Succeeded/Failed and not being
    deleted."""
    return not is_terminal(pod) and not (pod.get("metadata") or {}).get("deletionTimestamp")


def condition(obj, kind):
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def is_ready(pod):
    """pkg/api/v1/pod/util.go IsPodReady: condition Ready is True."""
    cond = condition(pod, "Ready")
    return bool(cond and cond.get("status") == "True")


def is_available(pod, min_ready_seconds, now):
    """pkg/api/v1/pod/util.go IsPodAvailable: ready, and ready for minReadySeconds."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(condition(pod, "Ready").get("lastTransitionTime"))
    return since is None or since + datetime.timedelta(seconds=min_ready_seconds) <= now


def controller_ref(obj):
    """staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/controller_ref.go GetControllerOf."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def owned_by(obj, owner):
    ref = controller_ref(obj)
    return bool(ref and ref.get("uid") == owner["metadata"].get("uid"))


def owner_reference(owner, api_version, kind):
    """pkg/controller/controller_ref_manager.go / metav1.NewControllerRef."""
    return {"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def deletion_rank(pod):
    """pkg/controller/controller_utils.go ActivePods.Less (the order the ReplicaSet
    controller deletes in, getPodsToDelete): unassigned < assigned, Pending < Unknown <
    Running, not ready < ready, then more restarts first, then newer first."""
    assigned = 1 if (pod.get("spec") or {}).get("nodeName") else 0
    phase = {"Pending": 0, "Unknown": 1, "Running": 2}.get(pod_phase(pod), 0)
    ready = 1 if is_ready(pod) else 0
    restarts = sum(c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or [])
    created = (pod.get("metadata") or {}).get("creationTimestamp") or ""
    return (assigned, phase, ready, -restarts, _negate(created))


def _negate(text):
    # newer (larger timestamp) sorts first
    return "".join(chr(0x10FFFF - ord(ch)) for ch in text)


# -- int-or-percent --------------------------------------------------------------------


def scaled_value(value, total, round_up):
    """staging/src/k8s.io/apimachinery/pkg/util/intstr/intstr.go GetScaledValueFromIntOrPercent."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    text = str(value)
    if text.endswith("%"):
        percent = int(text[:-1])
        exact = percent * total / 100
        return int(math.ceil(exact)) if round_up else int(math.floor(exact))
    return int(text)


# -- Deployment ------------------------------------------------------------------------


def resolve_fenceposts(max_surge, max_unavailable, replicas):
    """pkg/controller/deployment/util/deployment_util.go ResolveFenceposts: surge rounded
    up, unavailable rounded down; both zero -> unavailable 1. Defaults 25%/25%
    (pkg/apis/apps/v1/defaults.go SetDefaults_Deployment)."""
    surge = scaled_value("25%" if max_surge is None else max_surge, replicas, True)
    unavailable = scaled_value("25%" if max_unavailable is None else max_unavailable, replicas, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def deployment_conditions(previous, replicas, available, updated, total, new_rs_name,
                          max_unavailable, now_text):
    """pkg/controller/deployment/sync.go syncRolloutStatus + progress.go: Available
    (MinimumReplicasAvailable / MinimumReplicasUnavailable) and Progressing
    (NewReplicaSetAvailable when the rollout is complete, ReplicaSetUpdated while it
    progresses, NewReplicaSetCreated first). Reasons and messages from
    pkg/controller/deployment/util/deployment_util.go."""
    conditions = {c["type"]: c for c in previous or []}
    out = []

    def put(kind, status, reason, message):
        old = conditions.get(kind)
        transition = old["lastTransitionTime"] if old and old.get("status") == status and old.get("lastTransitionTime") else now_text
        update = now_text
        if old and old.get("status") == status and old.get("reason") == reason and old.get("lastUpdateTime"):
            update = old["lastUpdateTime"]
        out.append({"type": kind, "status": status, "lastUpdateTime": update,
                    "lastTransitionTime": transition, "reason": reason, "message": message})

    if available >= replicas - max_unavailable:
        put("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
    else:
        put("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.")
    # deployment_util.go DeploymentComplete: updated == replicas, total == replicas,
    # available == replicas
    if updated == replicas and total == replicas and available == replicas:
        put("Progressing", "True", "NewReplicaSetAvailable",
            'ReplicaSet "%s" has successfully progressed.' % new_rs_name)
    else:
        put("Progressing", "True", "ReplicaSetUpdated", 'ReplicaSet "%s" is progressing.' % new_rs_name)
    return out


# -- Job -------------------------------------------------------------------------------
JOB_TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"  # pkg/apis/batch/types.go JobTrackingFinalizer


def job_backoff_seconds(failures):
    """pkg/controller/job/job_controller.go DefaultJobPodFailureBackOff 10 s, doubling per
    failure, MaxJobPodFailureBackOff 10 min (backoff_utils.go getRemainingTimePerIndex)."""
    if failures <= 0:
        return 0
    return min(10 * 2 ** (failures - 1), 600)


def job_decision(job, succeeded, failed, active, now):
    """What pkg/controller/job/job_controller.go syncJob decides, without I/O.

    Returns a dict: finished (None | "Complete" | "Failed"), reason, message,
    want_active (pods that should be active now)."""
    spec = job.get("spec") or {}
    status = job.get("status") or {}
    completions = spec.get("completions")
    parallelism = spec.get("parallelism", 1)
    backoff_limit = spec.get("backoffLimit", 6)  # pkg/apis/batch/v1/defaults.go
    start = parse_time(status.get("startTime"))
    deadline = spec.get("activeDeadlineSeconds")
    # job_controller.go syncJob: exceedsBackoffLimit := failed > backoffLimit
    if failed > backoff_limit:
        return {"finished": "Failed", "reason": "BackoffLimitExceeded",
                "message": "Job has reached the specified backoff limit", "want_active": 0}
    # job_controller.go pastActiveDeadline: now - startTime >= activeDeadlineSeconds
    if deadline is not None and start is not None and (now - start).total_seconds() >= deadline:
        return {"finished": "Failed", "reason": "DeadlineExceeded",
                "message": "Job was active longer than specified deadline", "want_active": 0}
    # NonIndexed completion (job_controller.go syncJob "complete" computation): with
    # completions unset, the first success with no active pods completes the job; else
    # succeeded >= completions.
    if completions is None:
        if succeeded > 0 and active == 0:
            return {"finished": "Complete", "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods", "want_active": 0}
        want = parallelism if succeeded == 0 else active
    else:
        if succeeded >= completions:
            return {"finished": "Complete", "reason": "CompletionsReached",
                    "message": "Reached expected number of succeeded pods", "want_active": 0}
        # job_controller.go manageJob: wantActive = min(completions - succeeded, parallelism)
        want = min(completions - succeeded, parallelism)
    if spec.get("suspend"):
        want = 0
    return {"finished": None, "reason": None, "message": None, "want_active": max(want, 0)}


# -- PodDisruptionBudget ----------------------------------------------------------------


def pdb_numbers(pdb, healthy, pods_count, expected_scale):
    """pkg/controller/disruption/disruption.go getExpectedPodCount + updatePdbStatus:
    maxUnavailable or percent minAvailable use the controllers' scale (expected_scale,
    or the pod count when it is None), integer minAvailable the pod count;
    disruptionsAllowed = currentHealthy - desiredHealthy (not below 0).
    Returns (expectedPods, desiredHealthy, disruptionsAllowed)."""
    spec = pdb.get("spec") or {}
    min_available = spec.get("minAvailable")
    max_unavailable = spec.get("maxUnavailable")
    scale = pods_count if expected_scale is None else expected_scale
    if max_unavailable is not None:
        expected = scale
        desired = max(0, expected - scaled_value(max_unavailable, expected, True))
    elif min_available is not None and (isinstance(min_available, int) or not str(min_available).endswith("%")):
        expected = pods_count
        desired = int(min_available)
    elif min_available is not None:
        expected = scale
        desired = scaled_value(min_available, expected, True)
    else:
        # pkg/apis/policy/v1/defaults.go: neither given -> minAvailable 1
        expected = pods_count
        desired = 1
    allowed = max(0, healthy - desired)
    return expected, desired, allowed


# -- node IPAM -------------------------------------------------------------------------


def allocate_cidrs(cluster_cidrs, used, mask_v4=24, mask_v6=64):
    """pkg/controller/nodeipam/ipam/range_allocator.go AllocateOrOccupyCIDR with
    cidrset.CIDRSet.AllocateNext (pkg/controller/nodeipam/ipam/cidrset/cidr_set.go):
    the next free subnet of --node-cidr-mask-size (default 24 IPv4, 64 IPv6) in each
    cluster CIDR. Returns the list (one per family) or None when a range is full."""
    result = []
    for text in cluster_cidrs:
        network = ipaddress.ip_network(text.strip(), strict=False)
        mask = mask_v4 if network.version == 4 else mask_v6
        if mask < network.prefixlen:
            mask = network.prefixlen
        taken = {ipaddress.ip_network(c, strict=False) for c in used if ipaddress.ip_network(c, strict=False).version == network.version}
        choice = None
        for subnet in network.subnets(new_prefix=mask):
            if not any(subnet.overlaps(t) for t in taken):
                choice = subnet
                break
        if choice is None:
            return None
        result.append(str(choice))
    return result


# -- node lifecycle --------------------------------------------------------------------
# pkg/controller/nodelifecycle/node_lifecycle_controller.go nodeConditionToTaintKeyStatusMap
# (TaintNodesByCondition): condition status -> NoSchedule taint key.
CONDITION_TAINTS = [
    ("Ready", "False", "node.kubernetes.io/not-ready"),
    ("Ready", "Unknown", "node.kubernetes.io/unreachable"),
    ("MemoryPressure", "True", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "True", "node.kubernetes.io/disk-pressure"),
    ("NetworkUnavailable", "True", "node.kubernetes.io/network-unavailable"),
    ("PIDPressure", "True", "node.kubernetes.io/pid-pressure"),
]
MANAGED_TAINT_KEYS = {key for _c, _s, key in CONDITION_TAINTS}


def desired_lifecycle_taints(node):
    """The taints the node lifecycle controller wants on a node:
    doNoScheduleTaintingPass (one NoSchedule taint per condition of
    nodeConditionToTaintKeyStatusMap; unschedulable -> node.kubernetes.io/unschedulable)
    and doNoExecuteTaintingPass (Ready False -> not-ready:NoExecute, Ready Unknown ->
    unreachable:NoExecute, NotReadyTaintTemplate / UnreachableTaintTemplate)."""
    status = {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or []}
    wanted = []
    for kind, value, key in CONDITION_TAINTS:
        if status.get(kind) == value:
            wanted.append({"key": key, "effect": "NoSchedule"})
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    if status.get("Ready") == "False":
        wanted.append({"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"})
    elif status.get("Ready") == "Unknown":
        wanted.append({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"})
    return wanted


def reconcile_taints(current, wanted, now_text):
    """Keep every taint the controller does not manage, add the wanted ones (with
    timeAdded as taints.go AddOrUpdateTaintOnNode does), drop managed ones no longer
    wanted. Returns the new list, or None when nothing changes."""
    managed = MANAGED_TAINT_KEYS | {"node.kubernetes.io/unschedulable"}
    keep = [t for t in current or [] if t.get("key") not in managed]
    have = {(t.get("key"), t.get("effect")): t for t in current or [] if t.get("key") in managed}
    result = list(keep)
    for taint in wanted:
        old = have.get((taint["key"], taint["effect"]))
        result.append(old if old else dict(taint, timeAdded=now_text))
    if sorted((t.get("key"), t.get("effect")) for t in result) == sorted((t.get("key"), t.get("effect")) for t in current or []):
        return None
    return result


def heartbeat_expired(node, lease, now, grace_seconds):
    """node_lifecycle_controller.go tryUpdateNodeHealth: the node is healthy while the
    kubelet's Lease renewTime (kube-node-lease/<node>) or the Ready condition's
    lastHeartbeatTime is within nodeMonitorGracePeriod; a node that never posted status
    gets nodeStartupGracePeriod from its creation (not simulated: creation counts as a
    heartbeat)."""
    times = []
    if lease:
        times.append(parse_time((lease.get("spec") or {}).get("renewTime")))
    ready = condition(node, "Ready")
    if ready:
        times.append(parse_time(ready.get("lastHeartbeatTime")))
    times.append(parse_time((node.get("metadata") or {}).get("creationTimestamp")))
    times = [t for t in times if t is not None]
    if not times:
        return False
    return (now - max(times)).total_seconds() > grace_seconds


# -- label selectors -------------------------------------------------------------------


def selector_matches(selector, labels):
    """staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/helpers.go LabelSelectorAsSelector:
    matchLabels AND matchExpressions (In, NotIn, Exists, DoesNotExist). An empty selector
    matches everything, a missing (None) one nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for req in selector.get("matchExpressions") or []:
        key, operator, values = req.get("key"), req.get("operator"), req.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True
