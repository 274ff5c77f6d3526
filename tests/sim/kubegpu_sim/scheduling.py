# SPDX-License-Identifier: Apache-2.0
"""Pure scheduling and placement decisions of the simulated kube-scheduler and of the
DaemonSet controller (test-only). No I/O: every function takes plain API dicts.

Each rule cites the upstream source it follows (github.com/kubernetes/kubernetes unless
another repository is named). Plugin order and messages are those of Kubernetes 1.35.
"""
from __future__ import annotations

import hashlib
import json
import re
from fractions import Fraction

# -- resource.Quantity ----------------------------------------------------------------
# staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go ParseQuantity: a signed
# decimal number, an optional exponent (e/E) or one suffix, binary (Ki..Ei) or decimal
# (n u m "" k M G T P E).
_BINARY = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
_DECIMAL = {"n": Fraction(1, 10 ** 9), "u": Fraction(1, 10 ** 6), "m": Fraction(1, 1000), "": 1,
            "k": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9, "T": 10 ** 12, "P": 10 ** 15, "E": 10 ** 18}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")


def parse_quantity(value) -> Fraction:
    """A Kubernetes quantity as an exact Fraction (raises ValueError when malformed)."""
    if isinstance(value, (int, float)):
        return Fraction(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError("quantities must match the regular expression: %r" % value)
    number, suffix = Fraction(match.group(1)), match.group(2) or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix and suffix[0] in "eE":
        return number * Fraction(10) ** int(suffix[1:])
    return number * _DECIMAL[suffix]


def format_quantity(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return "%dm" % int(value * 1000)


# -- pod resource requests -------------------------------------------------------------
def container_requests(container) -> dict:
    """Requests of one container; a limit stands for an unset request.

    pkg/apis/core/v1/defaults.go SetDefaults_Pod: "If limits are specified but requests
    are not, default requests to limits" (this is how nvidia.com/gpu, which may only be
    given as a limit, becomes a request)."""
    resources = container.get("resources") or {}
    requests = dict(resources.get("limits") or {})
    requests.update(resources.get("requests") or {})
    return {name: parse_quantity(value) for name, value in requests.items()}


def pod_requests(pod) -> dict:
    """Effective requests of a pod.

    staging/src/k8s.io/component-helpers/resource/helpers.go PodRequests: the sum over
    containers, then per resource the max with each init container (restartable "sidecar"
    init containers add to the sum), plus spec.overhead."""
    spec = pod.get("spec") or {}
    total: dict = {}
    for container in spec.get("containers") or []:
        for name, value in container_requests(container).items():
            total[name] = total.get(name, 0) + value
    sidecars: dict = {}
    for init in spec.get("initContainers") or []:
        requests = container_requests(init)
        if init.get("restartPolicy") == "Always":
            for name, value in requests.items():
                total[name] = total.get(name, 0) + value
                sidecars[name] = sidecars.get(name, 0) + value
            continue
        for name, value in requests.items():
            # an init container runs next to the sidecars started before it
            value = value + sidecars.get(name, 0)
            if value > total.get(name, 0):
                total[name] = value
    for name, value in (spec.get("overhead") or {}).items():
        total[name] = total.get(name, 0) + parse_quantity(value)
    return total


def is_terminal(pod) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed")


def node_requested(pods, node_name) -> tuple:
    """(requests summed, pod count) of the non-terminated pods bound to node_name.

    pkg/scheduler/framework/types.go NodeInfo.AddPod: the scheduler cache holds every
    assigned pod that is not terminated (pkg/scheduler/eventhandlers.go
    assignedPod / isTerminated), terminating pods included."""
    total: dict = {}
    count = 0
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name or is_terminal(pod):
            continue
        count += 1
        for name, value in pod_requests(pod).items():
            total[name] = total.get(name, 0) + value
    return total, count


# -- taints and tolerations ------------------------------------------------------------
def toleration_tolerates(toleration, taint) -> bool:
    """staging/src/k8s.io/api/core/v1/toleration.go Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        # an empty key with operator Exists matches every key (and every value)
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def tolerations_tolerate(tolerations, taint) -> bool:
    """pkg/apis/core/v1/helper/helpers.go TolerationsTolerateTaint."""
    return any(toleration_tolerates(t, taint) for t in tolerations or [])


def find_untolerated_taint(taints, tolerations, effects=("NoSchedule", "NoExecute")):
    """staging/src/k8s.io/component-helpers/scheduling/corev1/helpers.go
    FindMatchingUntoleratedTaint with DoNotScheduleTaintsFilterFunc
    (pkg/scheduler/framework/plugins/helper/taint.go): only NoSchedule and NoExecute."""
    for taint in taints or []:
        if taint.get("effect") in effects and not tolerations_tolerate(tolerations, taint):
            return taint
    return None


# -- node affinity ---------------------------------------------------------------------
def _requirement_matches(requirement, values_of) -> bool:
    """staging/src/k8s.io/component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go
    nodeSelectorRequirementsAsSelector + labels.Requirement.Matches
    (staging/src/k8s.io/apimachinery/pkg/labels/selector.go)."""
    key = requirement.get("key")
    operator = requirement.get("operator")
    values = requirement.get("values") or []
    present, value = values_of(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        # labels.Requirement.Matches: both sides parsed as integers, else no match
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def node_selector_term_matches(term, node) -> bool:
    """nodeaffinity.go nodeSelectorTerms.match: matchExpressions on labels AND matchFields
    (only metadata.name is supported: validation in pkg/apis/core/validation). A term
    with neither matches nothing."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    name = (node.get("metadata") or {}).get("name")
    for req in expressions:
        if not _requirement_matches(req, lambda key: (key in labels, labels.get(key))):
            return False
    for req in fields:
        if not _requirement_matches(
                req, lambda key: (key == "metadata.name", name if key == "metadata.name" else None)):
            return False
    return True


def required_node_affinity_matches(pod, node) -> bool:
    """staging/src/k8s.io/component-helpers/scheduling/corev1/nodeaffinity/nodeaffinity.go
    GetRequiredNodeAffinity(pod).Match(node): spec.nodeSelector (every label equal) AND
    requiredDuringSchedulingIgnoredDuringExecution (any of the terms, ORed)."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is not None:
        terms = required.get("nodeSelectorTerms") or []
        if not any(node_selector_term_matches(term, node) for term in terms):
            return False
    return True


# -- filter plugins (pkg/scheduler/framework/plugins/...) --------------------------------
# Messages as the plugins' ErrReason constants of 1.35.
REASON_UNSCHEDULABLE = "node(s) were unschedulable"                 # nodeunschedulable.ErrReasonUnschedulable
REASON_NODE_NAME = "node(s) didn't match the requested node name"  # nodename.ErrReason
REASON_TAINT = "node(s) had untolerated taint(s)"                  # tainttoleration.Filter (1.33+: no taint in text)
REASON_AFFINITY = "node(s) didn't match Pod's node affinity/selector"  # nodeaffinity.ErrReasonPod
REASON_TOO_MANY_PODS = "Too many pods"                              # noderesources.fit.go fitsRequest

UNSCHEDULABLE_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def filter_node_unschedulable(pod, node):
    """nodeunschedulable/node_unschedulable.go Filter: spec.unschedulable unless the pod
    tolerates node.kubernetes.io/unschedulable:NoSchedule."""
    if not (node.get("spec") or {}).get("unschedulable"):
        return None
    if tolerations_tolerate((pod.get("spec") or {}).get("tolerations"), UNSCHEDULABLE_TAINT):
        return None
    return [REASON_UNSCHEDULABLE]


def filter_node_name(pod, node):
    """nodename/node_name.go Fits: spec.nodeName empty or equal to the node's name."""
    wanted = (pod.get("spec") or {}).get("nodeName")
    if wanted and wanted != node["metadata"]["name"]:
        return [REASON_NODE_NAME]
    return None


def filter_taint_toleration(pod, node):
    """tainttoleration/taint_toleration.go Filter."""
    taint = find_untolerated_taint((node.get("spec") or {}).get("taints"),
                                   (pod.get("spec") or {}).get("tolerations"))
    return [REASON_TAINT] if taint else None


def filter_node_affinity(pod, node):
    """nodeaffinity/node_affinity.go Filter."""
    return None if required_node_affinity_matches(pod, node) else [REASON_AFFINITY]


def filter_resources_fit(pod, node, used, used_count):
    """noderesources/fit.go fitsRequest: pod count against allocatable pods, then every
    requested resource against allocatable minus what the node's pods request; one
    reason "Insufficient <name>" per short resource. Zero requests never fail."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    if "pods" in allocatable and used_count + 1 > parse_quantity(allocatable["pods"]):
        reasons.append(REASON_TOO_MANY_PODS)
    for name, value in sorted(pod_requests(pod).items()):
        if value == 0 or name == "pods":
            continue
        have = parse_quantity(allocatable[name]) if name in allocatable else Fraction(0)
        if value > have - used.get(name, 0):
            reasons.append("Insufficient %s" % name)
    return reasons or None


def run_filters(pod, node, used=None, used_count=0):
    """The default profile's Filter plugins in their order
    (pkg/scheduler/apis/config/v1/default_plugins.go getDefaultPlugins); the framework
    stops at the first plugin that rejects a node (pkg/scheduler/framework/runtime/
    framework.go RunFilterPlugins). Returns (plugin, reasons) or None when it fits."""
    checks = (
        ("NodeUnschedulable", lambda: filter_node_unschedulable(pod, node)),
        ("NodeName", lambda: filter_node_name(pod, node)),
        ("TaintToleration", lambda: filter_taint_toleration(pod, node)),
        ("NodeAffinity", lambda: filter_node_affinity(pod, node)),
        ("NodeResourcesFit", lambda: filter_resources_fit(pod, node, used or {}, used_count)),
    )
    for plugin, check in checks:
        reasons = check()
        if reasons:
            return plugin, reasons
    return None


# Plugins whose rejection preemption cannot help (they return UnschedulableAndUnresolvable).
_UNRESOLVABLE = {"NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity"}


def fit_error_message(num_nodes, failures) -> str:
    """pkg/scheduler/framework/types.go FitError.Error: "0/N nodes are available:" then the
    histogram of reasons "<count> <reason>" sorted as strings, then the PostFilter
    (preemption) message. failures: {node name: (plugin, reasons)}.

    The preemption part follows pkg/scheduler/framework/preemption/preemption.go
    Evaluator.Preempt / findCandidates: nodes rejected as unresolvable are "Preemption is
    not helpful for scheduling"; the others have no lower-priority victims here (the
    simulation never preempts): "No preemption victims found for incoming pod"."""
    histogram: dict = {}
    for _plugin, reasons in failures.values():
        for reason in reasons:
            histogram[reason] = histogram.get(reason, 0) + 1
    message = "0/%d nodes are available:" % num_nodes
    parts = sorted("%d %s" % (count, reason) for reason, count in histogram.items())
    if parts:
        message += " %s." % ", ".join(parts)
    if num_nodes == 0:
        return "no nodes available to schedule pods"  # pkg/scheduler/schedule_one.go ErrNoNodesAvailable
    unhelpful = sum(1 for plugin, _reasons in failures.values() if plugin in _UNRESOLVABLE)
    victims = len(failures) - unhelpful
    post = []
    if victims:
        post.append("%d No preemption victims found for incoming pod" % victims)
    if unhelpful:
        post.append("%d Preemption is not helpful for scheduling" % unhelpful)
    message += " preemption: 0/%d nodes are available: %s." % (num_nodes, ", ".join(sorted(post)))
    return message


def least_allocated_score(pod, node, used) -> int:
    """noderesources/least_allocated.go leastResourceScorer with the default resources
    cpu and memory, weight 1 each: ((allocatable - requested) * 100 / allocatable)
    averaged; requested includes this pod. Pods without requests count the non-zero
    defaults 100m cpu / 200Mi memory (pkg/scheduler/util/pod_resources.go)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    requests = pod_requests(pod)
    defaults = {"cpu": Fraction(1, 10), "memory": Fraction(200 * 2 ** 20)}
    scores = []
    for name in ("cpu", "memory"):
        capacity = parse_quantity(allocatable.get(name, 0))
        if capacity == 0:
            scores.append(0)
            continue
        requested = used.get(name, 0) + (requests.get(name) or defaults[name])
        if requested > capacity:
            scores.append(0)
            continue
        scores.append(int((capacity - requested) * 100 / capacity))
    return sum(scores) // len(scores)


def schedule(pod, nodes, pods):
    """One scheduling cycle (pkg/scheduler/schedule_one.go schedulePod): filter every
    node, score the feasible ones, pick the highest score (ties: the first by name; the
    real scheduler picks a tie at random, selectHost). Returns (node name, None) or
    (None, FitError message)."""
    failures = {}
    best = None
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        used, count = node_requested(pods, name)
        failed = run_filters(pod, node, used, count)
        if failed:
            failures[name] = failed
            continue
        score = least_allocated_score(pod, node, used)
        if best is None or score > best[0]:
            best = (score, name)
    if best:
        return best[1], None
    return None, fit_error_message(len(nodes), failures)


# -- DaemonSet placement ---------------------------------------------------------------
def daemon_pod_tolerations(tolerations, host_network=False):
    """pkg/controller/daemon/util/daemonset_util.go AddOrUpdateDaemonPodTolerations:
    every daemon pod tolerates not-ready and unreachable (NoExecute, no tolerationSeconds),
    disk-, memory- and pid-pressure and unschedulable (NoSchedule), and with hostNetwork
    also network-unavailable (NoSchedule). Existing tolerations with the same key and
    effect are replaced (v1helper.AddOrUpdateTolerationInPodSpec)."""
    added = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
    ]
    if host_network:
        added.append({"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                      "effect": "NoSchedule"})
    result = [dict(t) for t in tolerations or []]
    for toleration in added:
        for i, existing in enumerate(result):
            if existing.get("key") == toleration["key"] and existing.get("effect") == toleration["effect"]:
                result[i] = toleration
                break
        else:
            result.append(toleration)
    return result


def daemon_pod_node_affinity(affinity, node_name):
    """pkg/controller/daemon/util/daemonset_util.go ReplaceDaemonSetPodNodeNameNodeAffinity:
    the required node affinity becomes exactly one term matching metadata.name, the
    preferred part and pod (anti-)affinity are kept."""
    affinity = json.loads(json.dumps(affinity or {}))
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return affinity


def daemon_should_run(ds, node):
    """pkg/controller/daemon/daemon_controller.go NodeShouldRunDaemonPod: a pod built from
    the template (with the daemon tolerations) must match the node's required node
    affinity / nodeSelector and tolerate its NoSchedule/NoExecute taints (predicates:
    nodeaffinity + tainttoleration). Returns (shouldRun, shouldContinueRunning):
    continue running on a node whose NoSchedule taint is new, stop on NoExecute."""
    template_spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    pod = {"spec": dict(template_spec)}
    pod["spec"]["tolerations"] = daemon_pod_tolerations(template_spec.get("tolerations"),
                                                        template_spec.get("hostNetwork", False))
    wanted = template_spec.get("nodeName")
    if wanted and wanted != node["metadata"]["name"]:
        return False, False
    if not required_node_affinity_matches(pod, node):
        return False, False
    taints = (node.get("spec") or {}).get("taints")
    if find_untolerated_taint(taints, pod["spec"]["tolerations"], ("NoExecute",)):
        return False, False
    if find_untolerated_taint(taints, pod["spec"]["tolerations"], ("NoSchedule",)):
        return False, True
    return True, True


# -- hashes and names --------------------------------------------------------------------
# staging/src/k8s.io/apimachinery/pkg/util/rand/rand.go SafeEncodeString's alphabet
# (no vowels, no 0/1/3 that read as letters).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def safe_encode_string(text):
    """staging/src/k8s.io/apimachinery/pkg/util/rand/rand.go SafeEncodeString: every
    byte mapped to alphanums[byte % len(alphanums)]."""
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in text)


def compute_hash(template, collision_count=None):
    """pkg/controller/controller_utils.go ComputeHash: SafeEncodeString of the decimal
    32-bit hash of the pod template (and the collision count). Upstream hashes the
    object's spew dump with FNV-32a; the simulation hashes its canonical JSON (SHA-256
    cut to 32 bits), so values differ from a real cluster's but have the same form and
    change exactly when the template does."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":"))
    if collision_count:
        data += str(collision_count)
    number = int.from_bytes(hashlib.sha256(data.encode()).digest()[:4], "big")
    return safe_encode_string(str(number))


def random_suffix(length=5):
    """staging/src/k8s.io/apiserver/pkg/storage/names/generate.go simpleNameGenerator:
    generateName + 5 random SafeEncodeString characters."""
    import random
    return "".join(random.choice(SAFE_ALPHABET) for _unused in range(length))
