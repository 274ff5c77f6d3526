# SPDX-License-Identifier: Apache-2.0
"""Server-side printing: meta.k8s.io/v1 Table answers for `kubectl get` without -o, which
asks with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` (staging/src/k8s.io/
apiserver/pkg/endpoints/handlers/response.go: transformResponseObject / asTable).

Columns and cells follow kubernetes pkg/printers/internalversion/printers.go (AddHandlers:
nodeColumnDefinitions, podColumnDefinitions, jobColumnDefinitions, ...; printNode, printPod,
printJob, ...); kinds without a printer here get Name and Age; custom resources their CRD's
additionalPrinterColumns (apiextensions-apiserver pkg/registry/customresource/tableconvertor),
Age when there are none. Rows carry the object as PartialObjectMetadata unless
?includeObject=Object|None (apis/meta/v1 types.go: IncludeObjectPolicy, default Metadata)."""
from __future__ import annotations

import datetime
import json

_AGE_DOC = "CreationTimestamp is a timestamp representing the server time when this object was created."
_NAME_DOC = "Name must be unique within a namespace."


def wants_table(accept):
    return "as=Table" in (accept or "") and "g=meta.k8s.io" in accept


def _parse_time(stamp):
    if not stamp:
        return None
    try:
        return datetime.datetime.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


def human_duration(seconds):
    """staging/src/k8s.io/apimachinery/pkg/util/duration/duration.go: HumanDuration."""
    seconds = int(seconds)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return "%ds" % seconds
    minutes = seconds // 60
    if minutes < 10:
        return "%dm" % minutes if seconds % 60 == 0 else "%dm%ds" % (minutes, seconds % 60)
    if minutes < 180:
        return "%dm" % minutes
    hours = seconds // 3600
    if hours < 8:
        return "%dh" % hours if minutes % 60 == 0 else "%dh%dm" % (hours, minutes % 60)
    if hours < 48:
        return "%dh" % hours
    if hours < 24 * 8:
        return "%dd" % (hours // 24) if hours % 24 == 0 else "%dd%dh" % (hours // 24, hours % 24)
    if hours < 24 * 365 * 2:
        return "%dd" % (hours // 24)
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return "%dy" % (hours // 24 // 365) if days == 0 else "%dy%dd" % (hours // 24 // 365, days)
    return "%dy" % (hours // 24 // 365)


def since(stamp, now=None):
    """printers.go: translateTimestampSince ("<unknown>" without a timestamp)."""
    when = _parse_time(stamp)
    if when is None:
        return "<unknown>"
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return human_duration((now - when).total_seconds())


def _col(name, typ="string", priority=0, fmt="", doc=""):
    return {"name": name, "type": typ, "format": fmt, "description": doc, "priority": priority}


NAME, AGE = _col("Name", fmt="name", doc=_NAME_DOC), _col("Age", doc=_AGE_DOC)


def _meta(obj):
    return obj.get("metadata") or {}


def _age(obj):
    return since(_meta(obj).get("creationTimestamp"))


def _cond(obj, kind):
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _has_cond(obj, kind):
    cond = _cond(obj, kind)
    return cond is not None and cond.get("status") == "True"


# -- the printers ------------------------------------------------------------------------
def _node(obj):
    """printers.go: printNode + findNodeRoles."""
    cond = _cond(obj, "Ready")
    status = [] if cond is None else ["Ready" if cond.get("status") == "True" else "NotReady"]
    status = status or ["Unknown"]
    if (obj.get("spec") or {}).get("unschedulable"):
        status.append("SchedulingDisabled")
    roles = set()
    for key, value in (_meta(obj).get("labels") or {}).items():
        if key.startswith("node-role.kubernetes.io/"):
            roles.add(key[len("node-role.kubernetes.io/"):])
        elif key == "kubernetes.io/role":
            roles.add(value)
    st = obj.get("status") or {}
    info = st.get("nodeInfo") or {}
    addresses = st.get("addresses") or []

    def address(kind):
        return next((a.get("address") for a in addresses if a.get("type") == kind), "<none>")
    return [_meta(obj).get("name"), ",".join(status), ",".join(sorted(r for r in roles if r)) or "<none>",
            _age(obj), info.get("kubeletVersion", ""), address("InternalIP"), address("ExternalIP"),
            info.get("osImage", "<unknown>") or "<unknown>", info.get("kernelVersion", "<unknown>") or "<unknown>",
            info.get("containerRuntimeVersion", "<unknown>") or "<unknown>"]


def _pod(obj):
    """printers.go: printPod (without the init-container and restartable-sidecar details)."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    total = len(spec.get("containers") or [])
    ready = restarts = 0
    reason = st.get("reason") or st.get("phase") or ""
    has_running = False
    for cs in reversed(st.get("containerStatuses") or []):
        restarts += cs.get("restartCount", 0)
        state = cs.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated") is not None:
            term = state["terminated"]
            reason = term.get("reason") or ("Signal:%d" % term["signal"] if term.get("signal") else
                                            "ExitCode:%d" % term.get("exitCode", 0))
        elif cs.get("ready") and state.get("running") is not None:
            has_running = True
            ready += 1
    if reason == "Completed" and has_running:
        reason = "Running" if _has_cond(obj, "Ready") else "NotReady"
    if _meta(obj).get("deletionTimestamp") and st.get("reason") != "NodeLost":
        reason = "Terminating"
    return [_meta(obj).get("name"), "%d/%d" % (ready, total), reason, str(restarts), _age(obj),
            st.get("podIP") or "<none>", spec.get("nodeName") or "<none>", st.get("nominatedNodeName") or "<none>",
            "<none>"]


def _containers(template_spec):
    containers = template_spec.get("containers") or []
    return ",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers)


def _selector(selector):
    from .registry import _selector_string
    return _selector_string(selector) or "<none>"


def _job(obj):
    """printers.go: printJob."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    succeeded = st.get("succeeded", 0)
    if spec.get("completions") is not None:
        completions = "%d/%d" % (succeeded, spec["completions"])
    elif (spec.get("parallelism") or 0) > 1:
        completions = "%d/1 of %d" % (succeeded, spec["parallelism"])
    else:
        completions = "%d/1" % succeeded
    start, end = _parse_time(st.get("startTime")), _parse_time(st.get("completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = human_duration((datetime.datetime.now(datetime.timezone.utc) - start).total_seconds())
    else:
        duration = human_duration((end - start).total_seconds())
    if _has_cond(obj, "Complete"):
        status = "Complete"
    elif _has_cond(obj, "Failed"):
        status = "Failed"
    elif _meta(obj).get("deletionTimestamp"):
        status = "Terminating"
    elif _has_cond(obj, "Suspended"):
        status = "Suspended"
    elif _has_cond(obj, "FailureTarget"):
        status = "FailureTarget"
    elif _has_cond(obj, "SuccessCriteriaMet"):
        status = "SuccessCriteriaMet"
    else:
        status = "Running"
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [_meta(obj).get("name"), status, completions, duration, _age(obj), names, images,
            _selector(spec.get("selector"))]


def _deployment(obj):
    """printers.go: printDeployment."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [_meta(obj).get("name"), "%d/%d" % (st.get("readyReplicas", 0), spec.get("replicas", 0)),
            st.get("updatedReplicas", 0), st.get("availableReplicas", 0), _age(obj), names, images,
            _selector(spec.get("selector"))]


def _daemonset(obj):
    """printers.go: printDaemonSet."""
    spec, st = obj.get("spec") or {}, obj.get("status") or {}
    node_selector = ((spec.get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    names, images = _containers(((spec.get("template") or {}).get("spec")) or {})
    return [_meta(obj).get("name"), st.get("desiredNumberScheduled", 0), st.get("currentNumberScheduled", 0),
            st.get("numberReady", 0), st.get("updatedNumberScheduled", 0), st.get("numberAvailable", 0),
            ",".join("%s=%s" % kv for kv in sorted(node_selector.items())) or "<none>", _age(obj), names, images,
            _selector(spec.get("selector"))]


def _service(obj):
    """printers.go: printService (External-IP simplified: externalIPs / load balancer ingress)."""
    spec = obj.get("spec") or {}
    external = list(spec.get("externalIPs") or []) + [
        i.get("ip") or i.get("hostname") for i in ((obj.get("status") or {}).get("loadBalancer") or {}).get(
            "ingress") or []]
    if not external:
        external = ["<pending>"] if spec.get("type") == "LoadBalancer" else ["<none>"]
    ports = ",".join("%d%s/%s" % (p.get("port", 0), ":%d" % p["nodePort"] if p.get("nodePort") else "",
                                  p.get("protocol", "TCP")) for p in spec.get("ports") or []) or "<none>"
    selector = ",".join("%s=%s" % kv for kv in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [_meta(obj).get("name"), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>",
            ",".join(external), ports, _age(obj), selector]


PRINTERS = {
    ("", "Node"): ([NAME, _col("Status"), _col("Roles"), AGE, _col("Version"), _col("Internal-IP", priority=1),
                    _col("External-IP", priority=1), _col("OS-Image", priority=1),
                    _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)], _node),
    ("", "Pod"): ([NAME, _col("Ready"), _col("Status"), _col("Restarts", "string"), AGE,
                   _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
                   _col("Readiness Gates", priority=1)], _pod),
    ("batch", "Job"): ([NAME, _col("Status"), _col("Completions"), _col("Duration"), AGE,
                        _col("Containers", priority=1), _col("Images", priority=1), _col("Selector", priority=1)],
                       _job),
    ("apps", "Deployment"): ([NAME, _col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), AGE,
                              _col("Containers", priority=1), _col("Images", priority=1),
                              _col("Selector", priority=1)], _deployment),
    ("apps", "DaemonSet"): ([NAME, _col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"),
                             _col("Up-to-date", "integer"), _col("Available", "integer"), _col("Node Selector"), AGE,
                             _col("Containers", priority=1), _col("Images", priority=1),
                             _col("Selector", priority=1)], _daemonset),
    ("", "Namespace"): ([NAME, _col("Status"), AGE],
                        lambda o: [_meta(o).get("name"), (o.get("status") or {}).get("phase", ""), _age(o)]),
    ("", "ConfigMap"): ([NAME, _col("Data", "integer"), AGE],
                        lambda o: [_meta(o).get("name"), len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                   _age(o)]),
    ("", "Secret"): ([NAME, _col("Type"), _col("Data", "integer"), AGE],
                     lambda o: [_meta(o).get("name"), o.get("type", ""), len(o.get("data") or {}), _age(o)]),
    ("", "Service"): ([NAME, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), AGE,
                       _col("Selector", priority=1)], _service),
}


def _json_path(obj, path):
    """The simple `.a.b` JSONPaths additionalPrinterColumns use (tableconvertor.go evaluates
    full JSONPath; array indexing and filters are not simulated)."""
    value = obj
    for part in [p for p in path.strip().lstrip("{").rstrip("}").split(".") if p]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _crd_columns(resource, crd):
    """tableconvertor.go: New — Name, then the version's additionalPrinterColumns, Age when
    none is given (apiextensions v1 defaults)."""
    version = next((v for v in ((crd or {}).get("spec") or {}).get("versions") or []
                    if v.get("name") == resource.version), {})
    extra = version.get("additionalPrinterColumns")
    if extra is None:
        extra = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    columns = [NAME] + [_col(c["name"], c.get("type", "string"), c.get("priority", 0), c.get("format", ""),
                             c.get("description", "")) for c in extra]

    def row(obj):
        cells = [_meta(obj).get("name")]
        for c in extra:
            value = _json_path(obj, c.get("jsonPath", ""))
            if c.get("type") == "date":
                value = since(value) if value else "<unknown>"
            elif isinstance(value, (dict, list)):
                value = json.dumps(value, separators=(",", ":"))
            cells.append(value)
        return cells
    return columns, row


def table(resource, objects, list_meta, include_object="Metadata", crd=None):
    """The Table of objects (one for a GET of a single object)."""
    if resource.crd:
        columns, row = _crd_columns(resource, crd)
    else:
        columns, row = PRINTERS.get((resource.group, resource.kind),
                                    ([NAME, AGE], lambda o: [_meta(o).get("name"), _age(o)]))
    rows = []
    for obj in objects:
        entry = {"cells": row(obj)}
        if include_object == "Object":
            entry["object"] = obj
        elif include_object != "None":
            entry["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                               "metadata": _meta(obj)}
        rows.append(entry)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": columns, "rows": rows}
