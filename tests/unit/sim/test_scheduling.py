# SPDX-License-Identifier: Apache-2.0
"""Pure decisions of the simulated scheduler and controllers (tests/sim/kubegpu_sim/
scheduling.py, controllers_rules.py). Cases follow upstream tests where named."""
from __future__ import annotations

import datetime
import os
import sys
from fractions import Fraction

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "sim"))

from kubegpu_sim import controllers_rules as rules  # noqa: E402
from kubegpu_sim import scheduling as s  # noqa: E402

CP_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
T0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def node(name, cpu="4", memory="8Gi", gpus=None, taints=None, labels=None, unschedulable=False, pods="110"):
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {"metadata": {"name": name, "labels": dict(labels or {}, **{"kubernetes.io/hostname": name})},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": allocatable}}


def pod(name="p", requests=None, limits=None, node_name=None, tolerations=None, selector=None, affinity=None,
        phase="Pending", init=None):
    container = {"name": "c", "image": "x", "resources": {}}
    if requests:
        container["resources"]["requests"] = requests
    if limits:
        container["resources"]["limits"] = limits
    spec = {"containers": [container]}
    if node_name:
        spec["nodeName"] = node_name
    if tolerations:
        spec["tolerations"] = tolerations
    if selector:
        spec["nodeSelector"] = selector
    if affinity:
        spec["affinity"] = affinity
    if init:
        spec["initContainers"] = init
    return {"metadata": {"name": name, "namespace": "default"}, "spec": spec, "status": {"phase": phase}}


# -- quantities (apimachinery resource/quantity_test.go TestQuantityParse) -------------
@pytest.mark.parametrize("text, value", [
    ("1", 1), ("100m", Fraction(1, 10)), ("1Gi", 2 ** 30), ("1G", 10 ** 9), ("1.5", Fraction(3, 2)),
    ("1e3", 1000), ("128974848", 128974848), ("129M", 129 * 10 ** 6), ("123Mi", 123 * 2 ** 20), ("0", 0),
])
def test_parse_quantity(text, value):
    assert s.parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "1Q", "abc", "1.2.3Gi"])
def test_parse_quantity_rejects(bad):
    with pytest.raises(ValueError):
        s.parse_quantity(bad)


# -- tolerations (api/core/v1/toleration_test.go TestTolerationToleratesTaint) ----------
@pytest.mark.parametrize("toleration, taint, expected", [
    ({"key": "foo", "operator": "Exists", "effect": "NoSchedule"}, {"key": "foo", "effect": "NoSchedule"}, True),
    ({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"},
     {"key": "foo", "value": "bar", "effect": "NoSchedule"}, True),
    ({"key": "foo", "operator": "Equal", "value": "bar", "effect": "NoSchedule"},
     {"key": "foo", "value": "baz", "effect": "NoSchedule"}, False),
    ({"key": "foo", "value": "bar"}, {"key": "foo", "value": "bar", "effect": "NoExecute"}, True),  # empty effect: all
    ({"key": "foo", "operator": "Exists", "effect": "NoExecute"}, {"key": "foo", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "v", "effect": "NoExecute"}, True),  # empty key + Exists
    ({"key": "bar", "operator": "Exists"}, {"key": "foo", "effect": "NoSchedule"}, False),
    ({"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}, CP_TAINT, True),
])
def test_toleration_tolerates(toleration, taint, expected):
    assert s.toleration_tolerates(toleration, taint) is expected


# -- node affinity (component-helpers nodeaffinity_test.go TestNodeSelectorMatch) ------
def _affinity(expressions=None, fields=None):
    term = {}
    if expressions:
        term["matchExpressions"] = expressions
    if fields:
        term["matchFields"] = fields
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


@pytest.mark.parametrize("affinity, selector, expected", [
    (None, {"gpu": "true"}, True),
    (None, {"gpu": "false"}, False),
    (_affinity([{"key": "gpu", "operator": "In", "values": ["true", "yes"]}]), None, True),
    (_affinity([{"key": "gpu", "operator": "NotIn", "values": ["true"]}]), None, False),
    (_affinity([{"key": "missing", "operator": "NotIn", "values": ["x"]}]), None, True),
    (_affinity([{"key": "gpu", "operator": "Exists"}]), None, True),
    (_affinity([{"key": "gpu", "operator": "DoesNotExist"}]), None, False),
    (_affinity([{"key": "count", "operator": "Gt", "values": ["3"]}]), None, True),
    (_affinity([{"key": "count", "operator": "Lt", "values": ["3"]}]), None, False),
    (_affinity([{"key": "gpu", "operator": "Gt", "values": ["3"]}]), None, False),  # not an integer
    (_affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["n1"]}]), None, True),
    (_affinity(fields=[{"key": "metadata.name", "operator": "In", "values": ["n2"]}]), None, False),
    ({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{}]}}}, None, False),
    (_affinity([{"key": "gpu", "operator": "In", "values": ["true"]}]), {"gpu": "false"}, False),  # both must hold
])
def test_required_node_affinity(affinity, selector, expected):
    n = node("n1", labels={"gpu": "true", "count": "5"})
    assert s.required_node_affinity_matches(pod(affinity=affinity, selector=selector), n) is expected


# -- requests (SetDefaults_Pod limits -> requests; component-helpers PodRequests) -------
@pytest.mark.parametrize("p, expected", [
    (pod(limits={"nvidia.com/gpu": "1"}), {"nvidia.com/gpu": 1}),
    (pod(requests={"cpu": "100m"}, limits={"cpu": "1", "memory": "1Gi"}), {"cpu": Fraction(1, 10), "memory": 2 ** 30}),
    (pod(requests={"cpu": "1"}, init=[{"name": "i", "resources": {"requests": {"cpu": "2"}}}]), {"cpu": 2}),
    (pod(requests={"cpu": "3"}, init=[{"name": "i", "resources": {"requests": {"cpu": "2"}}}]), {"cpu": 3}),
    (pod(requests={"cpu": "1"}, init=[{"name": "side", "restartPolicy": "Always",
                                       "resources": {"requests": {"cpu": "1"}}}]), {"cpu": 2}),
])
def test_pod_requests(p, expected):
    assert s.pod_requests(p) == expected


# -- filters and FitError ---------------------------------------------------------------
@pytest.mark.parametrize("p, n, expected", [
    (pod(), node("n", unschedulable=True), ("NodeUnschedulable", [s.REASON_UNSCHEDULABLE])),
    (pod(tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]),
     node("n", unschedulable=True), None),
    (pod(node_name="other"), node("n"), ("NodeName", [s.REASON_NODE_NAME])),
    (pod(), node("n", taints=[CP_TAINT]), ("TaintToleration", [s.REASON_TAINT])),
    (pod(), node("n", taints=[{"key": "k", "effect": "PreferNoSchedule"}]), None),
    (pod(selector={"gpu": "true"}), node("n"), ("NodeAffinity", [s.REASON_AFFINITY])),
    (pod(limits={"nvidia.com/gpu": "1"}), node("n"), ("NodeResourcesFit", ["Insufficient nvidia.com/gpu"])),
    (pod(requests={"cpu": "8", "memory": "16Gi"}), node("n"),
     ("NodeResourcesFit", ["Insufficient cpu", "Insufficient memory"])),
    (pod(limits={"nvidia.com/gpu": "1"}), node("n", gpus=1), None),
])
def test_run_filters(p, n, expected):
    assert s.run_filters(p, n) == expected


def test_resources_fit_counts_non_terminated_pods_on_the_node():
    gpu = node("gpu1", gpus=2)
    running = [pod("a", limits={"nvidia.com/gpu": "1"}, node_name="gpu1", phase="Running"),
               pod("b", limits={"nvidia.com/gpu": "1"}, node_name="gpu1", phase="Pending"),
               pod("done", limits={"nvidia.com/gpu": "1"}, node_name="gpu1", phase="Succeeded")]
    name, message = s.schedule(pod(limits={"nvidia.com/gpu": "1"}), [gpu], running)
    assert name is None
    assert message.startswith("0/1 nodes are available: 1 Insufficient nvidia.com/gpu.")
    name, _message = s.schedule(pod(limits={"nvidia.com/gpu": "1"}), [gpu], running[:1] + running[2:])
    assert name == "gpu1"


def test_too_many_pods():
    n = node("n", pods="1")
    assert s.run_filters(pod(), n, {}, 1) == ("NodeResourcesFit", [s.REASON_TOO_MANY_PODS])


def test_fit_error_message_as_upstream():
    """pkg/scheduler/framework/types.go FitError.Error; the preemption sentence as
    preemption.go writes it ("0/3 nodes are available: 1 No preemption victims found
    for incoming pod, 2 Preemption is not helpful for scheduling.")."""
    nodes = [node("cp1", taints=[CP_TAINT]), node("cp2", taints=[CP_TAINT]), node("gpu1", gpus=1)]
    busy = [pod("x", limits={"nvidia.com/gpu": "1"}, node_name="gpu1", phase="Running")]
    name, message = s.schedule(pod(limits={"nvidia.com/gpu": "1"}), nodes, busy)
    assert name is None
    assert message == ("0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint(s). "
                       "preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, "
                       "2 Preemption is not helpful for scheduling.")


def test_no_nodes():
    assert s.schedule(pod(), [], [])[1] == "no nodes available to schedule pods"


def test_least_allocated_node_wins():
    nodes = [node("a"), node("b")]
    pods = [pod("x", requests={"cpu": "2", "memory": "4Gi"}, node_name="a", phase="Running")]
    assert s.schedule(pod(requests={"cpu": "100m"}), nodes, pods)[0] == "b"


# -- DaemonSet placement (pkg/controller/daemon/daemon_controller_test.go) --------------
def ds(tolerations=None, selector=None, host_network=False):
    spec = {"containers": [{"name": "c", "image": "x"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    if selector:
        spec["nodeSelector"] = selector
    if host_network:
        spec["hostNetwork"] = True
    return {"metadata": {"name": "d", "namespace": "kube-system", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec}}}


@pytest.mark.parametrize("daemon, n, expected", [
    (ds(), node("w"), (True, True)),
    (ds(), node("cp", taints=[CP_TAINT]), (False, True)),          # NoSchedule: keep running, no new pod
    (ds(tolerations=[{"operator": "Exists"}]), node("cp", taints=[CP_TAINT]), (True, True)),
    (ds(), node("x", taints=[{"key": "k", "effect": "NoExecute"}]), (False, False)),
    (ds(), node("nr", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), (True, True)),
    (ds(), node("nr", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]), (False, True)),
    (ds(), node("u", unschedulable=True, taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
     (True, True)),
    (ds(), node("net", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]), (False, True)),
    (ds(host_network=True), node("net", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]),
     (True, True)),
    (ds(selector={"nvidia.com/gpu.present": "true"}), node("w"), (False, False)),
    (ds(selector={"nvidia.com/gpu.present": "true"}), node("g", labels={"nvidia.com/gpu.present": "true"}), (True, True)),
])
def test_daemon_should_run(daemon, n, expected):
    assert s.daemon_should_run(daemon, n) == expected


def test_daemon_tolerations_replace_same_key_and_effect():
    """daemonset_util.go AddOrUpdateDaemonPodTolerations via AddOrUpdateTolerationInPodSpec."""
    out = s.daemon_pod_tolerations([{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 5}, {"key": "mine", "operator": "Exists"}])
    assert {"key": "mine", "operator": "Exists"} in out
    not_ready = [t for t in out if t["key"] == "node.kubernetes.io/not-ready"]
    assert not_ready == [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}]
    assert len(out) == 7


def test_daemon_pod_node_affinity_pins_by_metadata_name():
    aff = s.daemon_pod_node_affinity({"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}, "n1")
    assert aff["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    assert "preferredDuringSchedulingIgnoredDuringExecution" in aff["nodeAffinity"]


def test_compute_hash_form_and_stability():
    h = s.compute_hash({"spec": {"containers": [{"image": "a"}]}})
    assert h == s.compute_hash({"spec": {"containers": [{"image": "a"}]}})
    assert h != s.compute_hash({"spec": {"containers": [{"image": "b"}]}})
    assert h != s.compute_hash({"spec": {"containers": [{"image": "a"}]}}, 1)
    assert 1 <= len(h) <= 10 and set(h) <= set(s.SAFE_ALPHABET)


# -- Job (pkg/controller/job/job_controller_test.go TestControllerSyncJob cases) --------
def job(**spec):
    return {"metadata": {"name": "j"}, "spec": spec, "status": {"startTime": "2026-01-01T00:00:00Z"}}


@pytest.mark.parametrize("j, succeeded, failed, active, finished, reason, want", [
    (job(), 0, 0, 0, None, None, 1),                           # parallelism 1, completions unset
    (job(), 1, 0, 0, "Complete", "CompletionsReached", 0),
    (job(completions=3, parallelism=2), 2, 0, 0, None, None, 1),
    (job(completions=3, parallelism=2), 0, 0, 0, None, None, 2),
    (job(completions=3, parallelism=2), 3, 0, 0, "Complete", "CompletionsReached", 0),
    (job(backoffLimit=0), 0, 1, 0, "Failed", "BackoffLimitExceeded", 0),
    (job(backoffLimit=2), 0, 2, 0, None, None, 1),
    (job(backoffLimit=2), 0, 3, 0, "Failed", "BackoffLimitExceeded", 0),
    (job(), 0, 6, 0, None, None, 1),                            # default backoffLimit 6
    (job(), 0, 7, 0, "Failed", "BackoffLimitExceeded", 0),
    (job(activeDeadlineSeconds=10), 0, 0, 1, "Failed", "DeadlineExceeded", 0),
    (job(activeDeadlineSeconds=100), 0, 0, 1, None, None, 1),
    (job(suspend=True), 0, 0, 0, None, None, 0),
])
def test_job_decision(j, succeeded, failed, active, finished, reason, want):
    decision = rules.job_decision(j, succeeded, failed, active, T0 + datetime.timedelta(seconds=30))
    assert (decision["finished"], decision["reason"], decision["want_active"]) == (finished, reason, want)


@pytest.mark.parametrize("failures, seconds", [(0, 0), (1, 10), (2, 20), (3, 40), (10, 600)])
def test_job_backoff(failures, seconds):
    assert rules.job_backoff_seconds(failures) == seconds


# -- PDB (pkg/controller/disruption/disruption_test.go) -------------------------------
@pytest.mark.parametrize("spec, healthy, pods, scale, expected", [
    ({"minAvailable": 2}, 3, 3, None, (3, 2, 1)),                  # TestSingleController-like
    ({"minAvailable": 3}, 2, 3, None, (3, 3, 0)),
    ({"minAvailable": "50%"}, 3, 3, 4, (4, 2, 1)),                 # percent: controllers' scale, round up
    ({"maxUnavailable": 1}, 3, 3, 3, (3, 2, 1)),
    ({"maxUnavailable": "30%"}, 10, 10, 10, (10, 7, 3)),           # 30% of 10 rounded up = 3
    ({"maxUnavailable": 0}, 3, 3, 3, (3, 3, 0)),
    ({"minAvailable": 1}, 0, 0, None, (0, 1, 0)),
])
def test_pdb_numbers(spec, healthy, pods, scale, expected):
    assert rules.pdb_numbers({"spec": spec}, healthy, pods, scale) == expected


# -- Deployment fenceposts (deployment_util_test.go TestResolveFenceposts) ------------
@pytest.mark.parametrize("surge, unavailable, replicas, expected", [
    (None, None, 4, (1, 1)), (None, None, 1, (1, 0)), ("0%", "0%", 1, (0, 1)), (0, 0, 3, (0, 1)),
    ("50%", "50%", 3, (2, 1)), (2, "25%", 10, (2, 2)),
])
def test_resolve_fenceposts(surge, unavailable, replicas, expected):
    assert rules.resolve_fenceposts(surge, unavailable, replicas) == expected


# -- node IPAM (cidr_set_test.go) -----------------------------------------------------
@pytest.mark.parametrize("cluster, used, expected", [
    (["10.244.0.0/16"], [], ["10.244.0.0/24"]),
    (["10.244.0.0/16"], ["10.244.0.0/24", "10.244.1.0/24"], ["10.244.2.0/24"]),
    (["10.244.0.0/24"], ["10.244.0.0/24"], None),
    (["10.244.0.0/16", "fd00:10:244::/56"], [], ["10.244.0.0/24", "fd00:10:244::/64"]),
])
def test_allocate_cidrs(cluster, used, expected):
    assert rules.allocate_cidrs(cluster, used) == expected


# -- node lifecycle ---------------------------------------------------------------------
def cond_node(ready, **others):
    conditions = [{"type": "Ready", "status": ready}] + [{"type": k, "status": v} for k, v in others.items()]
    return {"metadata": {"name": "n"}, "spec": {}, "status": {"conditions": conditions}}


@pytest.mark.parametrize("n, expected", [
    (cond_node("True"), []),
    (cond_node("False"), [("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute")]),
    (cond_node("Unknown"), [("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")]),
    (cond_node("True", MemoryPressure="True"), [("node.kubernetes.io/memory-pressure", "NoSchedule")]),
    (cond_node("True", DiskPressure="False"), []),
])
def test_desired_lifecycle_taints(n, expected):
    assert [(t["key"], t["effect"]) for t in rules.desired_lifecycle_taints(n)] == expected


def test_reconcile_taints_keeps_foreign_taints():
    current = [CP_TAINT, {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
    assert rules.reconcile_taints(current, [], "t") == [CP_TAINT]
    assert rules.reconcile_taints([CP_TAINT], [], "t") is None
    added = rules.reconcile_taints([CP_TAINT], [{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}], "t")
    assert added == [CP_TAINT, {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": "t"}]


@pytest.mark.parametrize("renew, heartbeat, age, expired", [
    ("2026-01-01T00:00:00Z", None, 39, False),
    ("2026-01-01T00:00:00Z", None, 41, True),
    (None, "2026-01-01T00:00:30Z", 41, False),      # the newer of the two counts
    ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", 100, True),
])
def test_heartbeat_expired(renew, heartbeat, age, expired):
    n = {"metadata": {"name": "n", "creationTimestamp": "2025-12-31T00:00:00Z"},
         "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": heartbeat}]}}
    lease = {"spec": {"renewTime": renew}} if renew else None
    assert rules.heartbeat_expired(n, lease, T0 + datetime.timedelta(seconds=age), 40) is expired


# -- label selectors (apimachinery labels selector_test.go) ---------------------------
@pytest.mark.parametrize("selector, labels, expected", [
    ({}, {"a": "b"}, True), (None, {"a": "b"}, False),
    ({"matchLabels": {"a": "b"}}, {"a": "b", "c": "d"}, True),
    ({"matchLabels": {"a": "x"}}, {"a": "b"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["b"]}]}, {"a": "b"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["b"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
])
def test_selector_matches(selector, labels, expected):
    assert rules.selector_matches(selector, labels) is expected


@pytest.mark.parametrize("pods, expected_first", [
    # controller_utils.go ActivePods.Less: unassigned before assigned, pending before running, not ready before ready
    ([pod("run", node_name="n", phase="Running"), pod("unassigned")], "unassigned"),
    ([pod("run", node_name="n", phase="Running"), pod("pend", node_name="n", phase="Pending")], "pend"),
])
def test_deletion_rank(pods, expected_first):
    assert sorted(pods, key=rules.deletion_rank)[0]["metadata"]["name"] == expected_first
