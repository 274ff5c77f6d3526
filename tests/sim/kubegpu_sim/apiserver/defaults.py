# SPDX-License-Identifier: Apache-2.0
"""API defaulting for the kinds kubegpu uses: what kube-apiserver fills in before it
stores an object. Each rule names its upstream source. Functions mutate `obj` in place."""
from __future__ import annotations

import ipaddress


def _setdefault(mapping, key, value):
    if mapping.get(key) is None:
        mapping[key] = value


def pod_spec(spec):
    """kubernetes pkg/apis/core/v1/defaults.go: SetDefaults_PodSpec, SetDefaults_Container,
    SetDefaults_ContainerPort (applied to Pods and every embedded PodTemplateSpec)."""
    _setdefault(spec, "restartPolicy", "Always")
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    _setdefault(spec, "terminationGracePeriodSeconds", 30)
    _setdefault(spec, "schedulerName", "default-scheduler")
    _setdefault(spec, "securityContext", {})
    for key in ("containers", "initContainers"):
        for container in spec.get(key) or []:
            _setdefault(container, "terminationMessagePath", "/dev/termination-log")
            _setdefault(container, "terminationMessagePolicy", "File")
            image = container.get("image") or ""
            tagged = ":" in image.rsplit("/", 1)[-1] or "@" in image
            latest = image.endswith(":latest") or not tagged
            # defaults.go: SetDefaults_Container (imagePullPolicy from the tag)
            _setdefault(container, "imagePullPolicy", "Always" if latest else "IfNotPresent")
            for port in container.get("ports") or []:
                _setdefault(port, "protocol", "TCP")
    for volume in spec.get("volumes") or []:
        for kind in ("secret", "configMap"):
            if isinstance(volume.get(kind), dict):
                _setdefault(volume[kind], "defaultMode", 420)  # SetDefaults_SecretVolumeSource
        if isinstance(volume.get("hostPath"), dict):
            _setdefault(volume["hostPath"], "type", "")        # SetDefaults_HostPathVolumeSource


def pod(obj, priority_of):
    """A Pod: PodSpec defaults, then the admission plugins that default fields:
    plugin/pkg/admission/priority/admission.go (priority from priorityClassName),
    plugin/pkg/admission/defaulttolerationseconds/admission.go, and
    plugin/pkg/admission/serviceaccount/admission.go (serviceAccountName default)."""
    spec = obj.setdefault("spec", {})
    pod_spec(spec)
    _setdefault(spec, "serviceAccountName", "default")
    spec["serviceAccount"] = spec["serviceAccountName"]
    _setdefault(spec, "enableServiceLinks", True)
    if spec.get("priority") is None:
        spec["priority"] = priority_of(spec.get("priorityClassName"))
    _setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key or (not t.get("key") and t.get("operator") == "Exists")
                   for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                "tolerationSeconds": 300})
    status = obj.setdefault("status", {})
    _setdefault(status, "phase", "Pending")       # pkg/registry/core/pod/strategy.go: PrepareForCreate
    _setdefault(status, "qosClass", "BestEffort")


def pod_template(template):
    if isinstance(template, dict):
        pod_spec(template.setdefault("spec", {}))


def deployment(obj):
    """pkg/apis/apps/v1/defaults.go: SetDefaults_Deployment."""
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "replicas", 1)
    strategy = spec.setdefault("strategy", {})
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        _setdefault(rolling, "maxUnavailable", "25%")
        _setdefault(rolling, "maxSurge", "25%")
    _setdefault(spec, "revisionHistoryLimit", 10)
    _setdefault(spec, "progressDeadlineSeconds", 600)
    pod_template(spec.get("template"))


def daemonset(obj):
    """pkg/apis/apps/v1/defaults.go: SetDefaults_DaemonSet."""
    spec = obj.setdefault("spec", {})
    strategy = spec.setdefault("updateStrategy", {})
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = strategy.setdefault("rollingUpdate", {})
        _setdefault(rolling, "maxUnavailable", 1)
        _setdefault(rolling, "maxSurge", 0)
    _setdefault(spec, "revisionHistoryLimit", 10)
    pod_template(spec.get("template"))


def replicaset(obj):
    """pkg/apis/apps/v1/defaults.go: SetDefaults_ReplicaSet."""
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "replicas", 1)
    pod_template(spec.get("template"))


def job(obj):
    """pkg/apis/batch/v1/defaults.go: SetDefaults_Job, and pkg/registry/batch/job/strategy.go:
    generateSelector (selector on batch.kubernetes.io/controller-uid, labels
    batch.kubernetes.io/controller-uid and batch.kubernetes.io/job-name, plus the legacy
    controller-uid and job-name labels) unless spec.manualSelector."""
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    _setdefault(spec, "parallelism", 1)
    _setdefault(spec, "backoffLimit", 6)
    _setdefault(spec, "completionMode", "NonIndexed")
    _setdefault(spec, "suspend", False)
    _setdefault(spec, "podReplacementPolicy", "TerminatingOrFailed")
    template = spec.setdefault("template", {})
    pod_template(template)
    if not spec.get("manualSelector"):
        uid = obj["metadata"]["uid"]
        name = obj["metadata"]["name"]
        labels = template.setdefault("metadata", {}).setdefault("labels", {})
        labels.setdefault("batch.kubernetes.io/controller-uid", uid)
        labels.setdefault("batch.kubernetes.io/job-name", name)
        labels.setdefault("controller-uid", uid)
        labels.setdefault("job-name", name)
        if not spec.get("selector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}


def service(obj, allocate_ip):
    """pkg/apis/core/v1/defaults.go: SetDefaults_Service, SetDefaults_ServicePort and the
    ClusterIP allocator (pkg/registry/core/service/ipallocator)."""
    spec = obj.setdefault("spec", {})
    _setdefault(spec, "type", "ClusterIP")
    _setdefault(spec, "sessionAffinity", "None")
    if spec["type"] != "ExternalName":
        if not spec.get("clusterIP"):
            spec["clusterIP"] = allocate_ip()
        if spec["clusterIP"] != "None":
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            fam = "IPv6" if ipaddress.ip_address(spec["clusterIP"]).version == 6 else "IPv4"
            _setdefault(spec, "ipFamilies", [fam])
        _setdefault(spec, "ipFamilyPolicy", "SingleStack")
        _setdefault(spec, "internalTrafficPolicy", "Cluster")
    for port in spec.get("ports") or []:
        _setdefault(port, "protocol", "TCP")
        _setdefault(port, "targetPort", port.get("port"))
    obj.setdefault("status", {}).setdefault("loadBalancer", {})


def namespace(obj):
    """pkg/registry/core/namespace/strategy.go: PrepareForCreate (spec.finalizers
    ["kubernetes"], phase Active) and pkg/apis/core/v1/defaults.go: SetDefaults_Namespace
    (label kubernetes.io/metadata.name)."""
    obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    obj.setdefault("status", {})["phase"] = obj.get("status", {}).get("phase") or "Active"
    obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def secret(obj):
    """pkg/apis/core/v1/defaults.go: SetDefaults_Secret."""
    _setdefault(obj, "type", "Opaque")


def pdb(obj):
    """pkg/registry/policy/poddisruptionbudget/strategy.go: PrepareForCreate (empty status)."""
    obj.setdefault("status", {})
    for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
        obj["status"].setdefault(key, 0)


def crd(obj):
    """apiextensions-apiserver pkg/apis/apiextensions/v1/defaults.go: SetDefaults_CustomResourceDefinitionSpec
    (singular/listKind from kind, conversion None)."""
    spec = obj.setdefault("spec", {})
    names = spec.setdefault("names", {})
    _setdefault(names, "singular", (names.get("kind") or "").lower())
    _setdefault(names, "listKind", (names.get("kind") or "") + "List")
    spec.setdefault("conversion", {"strategy": "None"})


def apply(resource, obj, priority_of, allocate_ip):
    """Defaults of obj (a built-in kind) on create and update."""
    kind = (resource.group, resource.kind)
    if kind == ("", "Pod"):
        pod(obj, priority_of)
    elif kind == ("apps", "Deployment"):
        deployment(obj)
    elif kind == ("apps", "DaemonSet"):
        daemonset(obj)
    elif kind == ("apps", "ReplicaSet"):
        replicaset(obj)
    elif kind == ("batch", "Job"):
        job(obj)
    elif kind == ("", "Service"):
        service(obj, allocate_ip)
    elif kind == ("", "Namespace"):
        namespace(obj)
    elif kind == ("", "Secret"):
        secret(obj)
    elif kind == ("policy", "PodDisruptionBudget"):
        pdb(obj)
    elif kind == ("apiextensions.k8s.io", "CustomResourceDefinition"):
        crd(obj)
