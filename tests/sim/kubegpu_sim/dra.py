# SPDX-License-Identifier: Apache-2.0
"""Dynamic Resource Allocation (resource.k8s.io/v1) in the simulated control plane (test-only).

Four parts, each following its upstream source (kubernetes/kubernetes at v1.35 unless said):

- the resource-claim controller (pkg/controller/resourceclaim/controller.go): a ResourceClaim
  per pod claim made from a ResourceClaimTemplate, the pod's status.resourceClaimStatuses,
  reservations of pods that are gone dropped, deallocation of claims no pod reserves, and the
  deletion of a generated claim whose pod is done;
- the scheduler's DRA plugin with the structured allocator
  (pkg/scheduler/framework/plugins/dynamicresources/dynamicresources.go;
  staging/src/k8s.io/dynamic-resource-allocation/structured/allocator.go): devices of the
  node's ResourceSlices that match the DeviceClass's CEL selectors and are not allocated to
  another claim; status.allocation (results + nodeSelector) and reservedFor written before
  the pod is bound;
- a CEL subset (staging/src/k8s.io/dynamic-resource-allocation/cel/compile.go): ``&&`` of
  ``device.driver == '<name>'`` and ``device.attributes['<domain>'].<name> == <value>``
  (an attribute without a domain belongs to the driver's, as compile.go maps it); anything
  else does not match (never a silent true);
- NVIDIA's DRA driver for GPUs (github.com/NVIDIA/k8s-dra-driver-gpu v25.12.0): its GPU kubelet
  plugin publishes one ResourceSlice for its node, driver ``gpu.nvidia.com``, pool = node
  name, one device ``gpu-<minor>`` per GPU with attributes type=gpu, uuid, productName,
  driverVersion (cmd/gpu-kubelet-plugin/deviceinfo.go GpuInfo.CanonicalName,
  PartDevAttributes; the simulated GPUs have no minor number, their NVML index stands in);
  NodePrepareResources gives the container the claimed GPUs as a CDI device, which the
  simulated containers see as NVIDIA_VISIBLE_DEVICES=<uuids> (what nvidia-smi there reads).
"""
from __future__ import annotations

import os
import re

from . import scheduling

GROUP = "/apis/resource.k8s.io/v1"
NVIDIA_DRIVER = "gpu.nvidia.com"
# controller.go: podResourceClaimAnnotation
POD_CLAIM_ANNOTATION = "resource.kubernetes.io/pod-claim-name"
# dynamicresources.go: the Filter failure text
REASON_CANNOT_ALLOCATE = "cannot allocate all claims"
REASON_CLAIM_MISSING = "waiting for resource claims to be created"


class DraError(Exception):
    """A claim the kubelet cannot prepare (kubelet pkg/kubelet/cm/dra/manager.go PrepareResources)."""


def claims_path(namespace, name=None):
    path = "%s/namespaces/%s/resourceclaims" % (GROUP, namespace)
    return path + "/" + name if name else path


# ----------------------------------------------------------------------------- CEL subset
_CLAUSE_DRIVER = re.compile(r"""^device\.driver\s*==\s*(['"])(.*?)\1$""")
_CLAUSE_ATTR = re.compile(r"""^device\.attributes\[(['"])(.*?)\1\]\.([A-Za-z0-9_]+)\s*==\s*(.+)$""")


def _literal(text):
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text in ("true", "false"):
        return text == "true"
    if re.match(r"^-?\d+$", text):
        return int(text)
    raise ValueError("not a literal: %s" % text)


def _attribute_value(attribute):
    """The value of a ResourceSlice device attribute (resource/v1 DeviceAttribute: exactly one of
    int, bool, string, version)."""
    for key in ("string", "int", "bool", "version"):
        if key in (attribute or {}):
            return attribute[key]
    return None


def device_attributes(driver, device):
    """{(domain, name): value}: compile.go gives an unqualified attribute the driver's domain."""
    out = {}
    for name, attribute in ((device or {}).get("attributes") or {}).items():
        domain, _sep, short = name.rpartition("/")
        out[(domain or driver, short)] = _attribute_value(attribute)
    return out


def cel_matches(expression, driver, device):
    """Whether the CEL subset expression holds for the device of this driver (False for any
    expression outside the subset)."""
    attrs = device_attributes(driver, device)
    for clause in [c.strip().strip("()").strip() for c in str(expression or "").split("&&")]:
        found = _CLAUSE_DRIVER.match(clause)
        if found:
            if driver != found.group(2):
                return False
            continue
        found = _CLAUSE_ATTR.match(clause)
        if not found:
            return False
        try:
            wanted = _literal(found.group(4))
        except ValueError:
            return False
        if attrs.get((found.group(2), found.group(3))) != wanted:
            return False
    return True


def selectors_match(selectors, driver, device):
    """Every selector holds (allocator.go: class selectors and request selectors are ANDed)."""
    return all(cel_matches((s.get("cel") or {}).get("expression"), driver, device) for s in selectors or [])


# ----------------------------------------------------------------------------- claims
def pod_claim_entries(pod):
    return list(((pod or {}).get("spec") or {}).get("resourceClaims") or [])


def claim_name_for(pod, entry):
    """The ResourceClaim a pod claim names (k8s.io/dynamic-resource-allocation/resourceclaim
    Name): resourceClaimName, else the generated one recorded in status.resourceClaimStatuses;
    None while the controller has not created it."""
    if entry.get("resourceClaimName"):
        return entry["resourceClaimName"]
    for status in ((pod.get("status") or {}).get("resourceClaimStatuses") or []):
        if status.get("name") == entry.get("name"):
            return status.get("resourceClaimName")
    return None


def generate_name(pod_name, claim_name):
    """controller.go handleClaim: "<pod>-<claim>-", both cut in proportion when longer than 57."""
    base = pod_name + "-" + claim_name + "-"
    if len(base) > 57:
        base = pod_name[:len(pod_name) * 57 // len(base)] + "-" + claim_name[:len(claim_name) * 57 // len(base)]
    return base


def claim_from_template(pod, entry, template):
    """The ResourceClaim controller.go handleClaim creates for a pod claim: metadata from the
    template's spec.metadata, the pod-claim-name annotation, the pod as controlling owner,
    spec = the template's spec.spec."""
    tspec = (template or {}).get("spec") or {}
    tmeta = tspec.get("metadata") or {}
    meta = pod["metadata"]
    prefix = generate_name(meta["name"], entry["name"])
    annotations = dict(tmeta.get("annotations") or {})
    annotations[POD_CLAIM_ANNOTATION] = entry["name"]
    claim = {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceClaim",
             "metadata": {"name": prefix + scheduling.random_suffix(), "generateName": prefix,
                          "namespace": meta["namespace"], "annotations": annotations,
                          "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"],
                                               "uid": meta.get("uid"), "controller": True,
                                               "blockOwnerDeletion": True}]},
             "spec": dict(tspec.get("spec") or {})}
    if tmeta.get("labels"):
        claim["metadata"]["labels"] = dict(tmeta["labels"])
    return claim


def allocated_devices(claims, skip=None):
    """{(driver, pool, device)} allocated to any claim but ``skip`` (allocator.go: allocated
    devices are not available)."""
    used = set()
    for claim in claims or []:
        if skip is not None and claim["metadata"].get("uid") == skip["metadata"].get("uid"):
            continue
        results = ((((claim.get("status") or {}).get("allocation") or {}).get("devices") or {}).get("results") or [])
        for result in results:
            used.add((result.get("driver"), result.get("pool"), result.get("device")))
    return used


def node_devices(slices, node_name):
    """[(driver, pool, device)] the node's ResourceSlices publish (spec.nodeName)."""
    out = []
    for item in slices or []:
        spec = item.get("spec") or {}
        if spec.get("nodeName") != node_name:
            continue
        pool = (spec.get("pool") or {}).get("name")
        for device in spec.get("devices") or []:
            out.append((spec.get("driver"), pool, device))
    return out


def allocate(claim, node_name, slices, classes, used):
    """allocator.go Allocate for one claim on one node: for each request (``exactly``,
    allocationMode ExactCount with ``count`` (default 1) or All), devices of the node matching
    the DeviceClass's selectors and the request's, not in ``used``. Returns the
    AllocationResult (resource/v1) or None when the node cannot satisfy every request."""
    by_class = dict((c["metadata"]["name"], c) for c in classes or [])
    taken = set(used)
    results = []
    for request in ((claim.get("spec") or {}).get("devices") or {}).get("requests") or []:
        exact = request.get("exactly") or {}
        device_class = by_class.get(exact.get("deviceClassName"))
        if device_class is None:
            return None     # dynamicresources.go: a claim of a missing class is not schedulable
        selectors = list((device_class.get("spec") or {}).get("selectors") or []) + list(exact.get("selectors") or [])
        fits = [(driver, pool, device) for driver, pool, device in node_devices(slices, node_name)
                if (driver, pool, device["name"]) not in taken and selectors_match(selectors, driver, device)]
        mode = exact.get("allocationMode") or "ExactCount"
        count = len(fits) if mode == "All" else int(exact.get("count") or 1)
        if count == 0 or len(fits) < count:
            return None
        for driver, pool, device in fits[:count]:
            taken.add((driver, pool, device["name"]))
            results.append({"request": request["name"], "driver": driver, "pool": pool, "device": device["name"]})
    return {"devices": {"results": results},
            "nodeSelector": {"nodeSelectorTerms": [{"matchFields": [
                {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}}


def allocation_node(claim):
    """The node an allocated claim is bound to (its nodeSelector's metadata.name), or None."""
    terms = ((((claim.get("status") or {}).get("allocation") or {}).get("nodeSelector") or {})
             .get("nodeSelectorTerms") or [])
    for term in terms:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("values"):
                return field["values"][0]
    return None


def reserved_for(pod):
    """The ResourceClaimConsumerReference of a pod (resource/v1)."""
    return {"resource": "pods", "name": pod["metadata"]["name"], "uid": pod["metadata"].get("uid")}


def feasible_nodes(pod, nodes, claims, slices, classes):
    """(nodes where every claim of the pod is or can be allocated, {node: {claim name: allocation}},
    message when the pod waits for claims to exist). dynamicresources.go PreFilter (every claim
    must exist) and Filter (allocated claims pin the node; others must be allocatable there)."""
    namespace = pod["metadata"]["namespace"]
    by_name = dict((c["metadata"]["name"], c) for c in claims if c["metadata"].get("namespace") == namespace)
    wanted = []
    for entry in pod_claim_entries(pod):
        name = claim_name_for(pod, entry)
        if not name or name not in by_name:
            return [], {}, REASON_CLAIM_MISSING
        wanted.append(by_name[name])
    plans = {}
    ok = []
    for node in nodes:
        node_name = node["metadata"]["name"]
        used = allocated_devices(claims)
        plan = {}
        for claim in wanted:
            if (claim.get("status") or {}).get("allocation"):
                if allocation_node(claim) not in (None, node_name):
                    plan = None
                    break
                continue
            result = allocate(claim, node_name, slices, classes, used)
            if result is None:
                plan = None
                break
            used |= allocated_devices([{"metadata": {}, "status": {"allocation": result}}])
            plan[claim["metadata"]["name"]] = result
        if plan is not None:
            ok.append(node)
            plans[node_name] = plan
    return ok, plans, None


# ----------------------------------------------------------------------------- controller
def claims_to_create(pods, claims):
    """[(pod, entry)] whose claim from a template does not exist yet (controller.go syncPod)."""
    out = []
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp") or scheduling.is_terminal(pod):
            continue
        for entry in pod_claim_entries(pod):
            if entry.get("resourceClaimTemplateName") and not claim_name_for(pod, entry):
                out.append((pod, entry))
    return out


def claim_cleanup(claim, pods):
    """What controller.go syncClaim does with a claim: ("keep"|"unreserve"|"deallocate"|"delete",
    reservedFor to keep). Reservations of pods that are gone or done are dropped; a claim no
    pod reserves is deallocated; a claim generated for a pod (controlling owner) is deleted
    once that pod is gone or done and nothing reserves it."""
    by_uid = dict((p["metadata"].get("uid"), p) for p in pods)
    status = claim.get("status") or {}
    reserved = status.get("reservedFor") or []
    valid = [r for r in reserved if r.get("uid") in by_uid and not scheduling.is_terminal(by_uid[r["uid"]])]
    owner = next((o for o in claim["metadata"].get("ownerReferences") or []
                  if o.get("controller") and o.get("kind") == "Pod"), None)
    owner_done = owner is not None and (owner.get("uid") not in by_uid or scheduling.is_terminal(by_uid[owner["uid"]]))
    if owner_done and not valid:
        return "delete", valid
    if len(valid) != len(reserved):
        return ("deallocate" if not valid else "unreserve"), valid
    if not valid and status.get("allocation") and owner is not None and owner_done:
        return "deallocate", valid
    return "keep", valid


# ----------------------------------------------------------------------------- kubelet plugin
def node_slice(node_name, gpus, driver_version=None):
    """The ResourceSlice NVIDIA's GPU kubelet plugin publishes for its node (one pool, one
    slice; its name is generated upstream, "<node>-gpu.nvidia.com-" here for a stable one)."""
    devices = []
    for gpu in gpus or []:
        attributes = {"type": {"string": "gpu"}, "uuid": {"string": gpu["uuid"]},
                      "productName": {"string": gpu.get("name") or ""}}
        if driver_version:
            attributes["driverVersion"] = {"version": driver_version}
        device = {"name": "gpu-%s" % gpu["index"], "attributes": attributes}
        if gpu.get("memory_mib"):
            device["capacity"] = {"memory": {"value": "%dMi" % int(gpu["memory_mib"])}}
        devices.append(device)
    name = re.sub(r"[^a-z0-9.-]", "-", ("%s-%s" % (node_name, NVIDIA_DRIVER)).lower())[:253]
    return {"apiVersion": "resource.k8s.io/v1", "kind": "ResourceSlice",
            "metadata": {"name": name},
            "spec": {"driver": NVIDIA_DRIVER, "nodeName": node_name,
                     "pool": {"name": node_name, "generation": 1, "resourceSliceCount": 1},
                     "devices": devices}}


def publish_slice(api, node_name, gpus, driver_version=None):
    """Create or replace the node's slice (the plugin's resourceslice controller keeps it)."""
    wanted = node_slice(node_name, gpus, driver_version)
    path = GROUP + "/resourceslices"
    current = api.get(path + "/" + wanted["metadata"]["name"])
    if current is None:
        api.create(path, wanted)
    elif current.get("spec") != wanted["spec"]:
        api.merge_patch(path + "/" + wanted["metadata"]["name"], {"spec": wanted["spec"]})
    return wanted


def prepare_pod(pod, claims, node_name, gpus, drivers):
    """NodePrepareResources for every claim of the pod (kubelet cm/dra/manager.go
    PrepareResources, then the driver's): {container name: env} with the claimed GPUs'
    UUIDs as NVIDIA_VISIBLE_DEVICES for the containers naming the claim. Raises DraError where
    kubelet would fail to prepare: a claim missing, not allocated to this node, not reserved
    for the pod, or of a driver no running plugin serves here."""
    by_name = dict((c["metadata"]["name"], c) for c in claims or [])
    uuid_of = dict(("gpu-%s" % g["index"], g["uuid"]) for g in gpus or [])
    visible = {}
    for entry in pod_claim_entries(pod):
        name = claim_name_for(pod, entry)
        claim = by_name.get(name)
        if claim is None:
            raise DraError("failed to fetch ResourceClaim %s referenced by pod %s" % (name, pod["metadata"]["name"]))
        status = claim.get("status") or {}
        if not status.get("allocation") or allocation_node(claim) not in (None, node_name):
            raise DraError("ResourceClaim %s is not allocated to node %s" % (name, node_name))
        if pod["metadata"].get("uid") not in [r.get("uid") for r in status.get("reservedFor") or []]:
            raise DraError("pod %s is not allowed to use ResourceClaim %s" % (pod["metadata"]["name"], name))
        ids = []
        for result in status["allocation"]["devices"].get("results") or []:
            if result.get("driver") not in drivers:
                raise DraError('DRA driver %s is not registered' % result.get("driver"))
            if result.get("device") in uuid_of:
                ids.append(uuid_of[result["device"]])
        visible[entry["name"]] = ids
    envs = {}
    for container in (pod["spec"].get("initContainers") or []) + (pod["spec"].get("containers") or []):
        ids = []
        for ref in (container.get("resources") or {}).get("claims") or []:
            ids.extend(visible.get(ref.get("name"), []))
        if ids:
            envs[container["name"]] = {"NVIDIA_VISIBLE_DEVICES": ",".join(ids)}
    return envs


def kubelet_plugin(ctx):
    """What the image nvcr.io/nvidia/k8s-dra-driver-gpu does in the simulated kubelet:
    the init container's kubelet-plugin-prestart.sh waits for the driver under the driver root
    (NVIDIA_DRIVER_ROOT) and exits 0; gpu-kubelet-plugin loads NVML from there (not through the
    NVIDIA runtime: its container has NVIDIA_VISIBLE_DEVICES=void), publishes the node's
    ResourceSlice and serves NodePrepareResources (kubelet: prepare_pod) while it runs."""
    from . import workloads      # imported here: workloads.start calls this function
    argv = ctx.argv
    if any(a.endswith("kubelet-plugin-prestart.sh") for a in argv):
        if not ctx.nvml_on_host:
            return workloads.Process(logs=["waiting for the NVIDIA driver under %s (simulated)"
                                           % ctx.env.get("NVIDIA_DRIVER_ROOT", "/")], ready=False)
        return workloads.exited(0, ["NVIDIA driver found under %s (simulated)" % ctx.env.get("NVIDIA_DRIVER_ROOT", "/")])
    if not argv or "gpu-kubelet-plugin" not in os.path.basename(argv[0]):
        return workloads.generic(ctx)
    if not ctx.nvml_on_host:
        return workloads.exited(1, ["error creating driver: failed to initialize NVML: ERROR_LIBRARY_NOT_FOUND"])
    node = ctx.env.get("NODE_NAME") or ctx.node_name
    try:
        published = publish_slice(ctx.api, node, ctx.gpus, ctx.driver_version)
    except Exception as err:  # noqa: BLE001 - the plugin exits on an API error
        return workloads.exited(1, ["error publishing ResourceSlice: %s" % err])
    proc = workloads.Process(logs=["Starting gpu-kubelet-plugin (simulated): driver %s, %d device(s) in ResourceSlice %s"
                                   % (NVIDIA_DRIVER, len(published["spec"]["devices"]), published["metadata"]["name"])])
    proc.dra_driver = NVIDIA_DRIVER
    return proc
