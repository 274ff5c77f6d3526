# SPDX-License-Identifier: Apache-2.0
"""The REST verbs on stored objects (staging/src/k8s.io/apiserver/pkg/registry/generic/
registry/store.go: Store.Create/Update/Get/List/Delete) with each kind's strategy
(pkg/registry/*/strategy.go) and subresources."""
from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import random
import uuid

from . import defaults, errors, patch as patching, schema as schemas_mod, selectors, ssa, validation

_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user_agent_manager(user_agent):
    """staging/src/k8s.io/apiserver/pkg/endpoints/handlers/rest.go: prefixFromUserAgent."""
    return (user_agent or "unknown").split("/")[0][:128] or "unknown"


class Request:
    """What a verb needs from the HTTP request."""

    def __init__(self, params=None, user=None, user_agent=""):
        self.params = params or {}
        self.user = user
        self.user_agent = user_agent
        self.warnings = []

    def param(self, name, default=None):
        return self.params.get(name, default)

    @property
    def dry_run(self):
        return self.params.get("dryRun") == "All"

    @property
    def field_validation(self):
        return self.params.get("fieldValidation") or "Strict"

    @property
    def manager(self):
        return self.params.get("fieldManager") or _user_agent_manager(self.user_agent)


class Api:
    def __init__(self, store, registry, schemas, service_cidr="10.96.0.0/12"):
        self.store = store
        self.registry = registry
        self.schemas = schemas
        self.service_net = ipaddress.ip_network(service_cidr, strict=False)

    # -- keys and lookups -------------------------------------------------------
    @staticmethod
    def key(resource, namespace, name):
        return (resource.group, resource.plural, namespace or "" if resource.namespaced else "", name)

    def builtin(self, group, plural):
        return next(r for r in self.registry.all() if (r.group, r.plural) == (group, plural))

    def _get_or_404(self, resource, namespace, name):
        obj = self.store.get(self.key(resource, namespace, name))
        if obj is None:
            raise errors.not_found(resource, name)
        return obj

    # -- startup ----------------------------------------------------------------
    def bootstrap(self):
        """Objects kube-apiserver creates itself: the system namespaces (pkg/controlplane/
        controller/systemnamespaces), the system PriorityClasses (pkg/apis/scheduling:
        SystemPriorityClasses, pkg/registry/scheduling/rest/storage_scheduling.go) and the
        kubernetes Service (pkg/controlplane/controller/kubernetesservice/controller.go)."""
        req = Request(user_agent="kube-apiserver")
        ns = self.builtin("", "namespaces")
        for name in ("default", "kube-system", "kube-public", "kube-node-lease"):
            if self.store.get(self.key(ns, "", name)) is None:
                self.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, req)
        pcs = self.builtin("scheduling.k8s.io", "priorityclasses")
        for name, value in (("system-node-critical", 2000001000), ("system-cluster-critical", 2000000000)):
            if self.store.get(self.key(pcs, "", name)) is None:
                self.create(pcs, "", {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                                      "metadata": {"name": name}, "value": value,
                                      "description": "Used for system critical pods that must not be moved "
                                                     "from their current node." if "node" in name else
                                      "Used for system critical pods that must run in the cluster, but can "
                                      "be moved to another node if necessary.", "preemptionPolicy":
                                      "PreemptLowerPriority"}, req)
        svc = self.builtin("", "services")
        if self.store.get(self.key(svc, "default", "kubernetes")) is None:
            first = str(next(self.service_net.hosts()))
            self.create(svc, "default", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": first, "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                        "targetPort": 6443}]}}, req)
        self.refresh_crds()

    def refresh_crds(self):
        crd = self.builtin("apiextensions.k8s.io", "customresourcedefinitions")
        items, _rv = self.store.list(crd.group, crd.plural)
        self.registry.set_crds([c for c in items if not c["metadata"].get("deletionTimestamp")])

    # -- helpers used by defaults -------------------------------------------------
    def _priority_of(self, name):
        """plugin/pkg/admission/priority/admission.go: admitPod (priority from the class, 0 or
        the globalDefault class when none is named, Forbidden when it does not exist)."""
        pcs = self.builtin("scheduling.k8s.io", "priorityclasses")
        if not name:
            items, _rv = self.store.list(pcs.group, pcs.plural)
            default = next((p for p in items if p.get("globalDefault")), None)
            return default.get("value", 0) if default else 0
        pc = self.store.get(self.key(pcs, "", name))
        if pc is None:
            raise errors.ApiError(403, "Forbidden", 'pods "" is forbidden: no PriorityClass with name %s was '
                                  "found" % name)
        return pc.get("value", 0)

    def _allocate_ip(self):
        """pkg/registry/core/service/ipallocator: the next free address of the range."""
        svc = self.builtin("", "services")
        items, _rv = self.store.list(svc.group, svc.plural)
        used = {(s.get("spec") or {}).get("clusterIP") for s in items}
        for index, host in enumerate(self.service_net.hosts()):
            if index >= 9 and str(host) not in used:
                return str(host)
        raise errors.internal("failed to allocate a serviceIP: range is full")

    # -- admission chain -----------------------------------------------------------
    def _schema(self, resource):
        if resource.crd:
            return resource.schema, schemas_mod.no_refs, True
        node, resolve = self.schemas.root(resource.group, resource.version, resource.kind)
        return node, resolve or schemas_mod.no_refs, False

    def _decode(self, resource, obj, req, apply_patch=False):
        """Strict decoding / CR pruning with fieldValidation (staging/src/k8s.io/apiserver/pkg/
        endpoints/handlers/create.go + rest.go: fieldValidation; apiextensions-apiserver
        pkg/apiserver/customresource_handler.go: unknownFieldsDirective)."""
        if not isinstance(obj, dict):
            raise errors.bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj)[:200])
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version and api_version != resource.group_version or kind and kind != resource.kind:
            # Go's %q quotes the value (apimachinery runtime/serializer/versioning).
            if api_version != resource.group_version:
                message = "the API version in the data (%s) does not match the expected API version (%s)" % (
                    api_version, resource.group_version)
            else:
                message = '%s in version "%s" cannot be handled as a %s' % (kind, resource.version, resource.kind)
            raise errors.bad_request(message)
        obj["apiVersion"], obj["kind"] = resource.group_version, resource.kind
        node, resolve, crd = self._schema(resource)
        if not node:
            return
        result = schemas_mod.check(obj, node, resolve, crd=crd)
        if result.type_errors:
            if crd:
                raise errors.invalid(resource, (obj.get("metadata") or {}).get("name", ""),
                                     [(p, "FieldValueTypeInvalid", "Invalid value: %s" % m)
                                      for p, m in result.type_errors])
            raise errors.bad_request('%s in version "%s" cannot be handled as a %s: json: cannot unmarshal %s'
                                     % (resource.kind, resource.version, resource.kind,
                                        "; ".join("%s (%s)" % (m, p) for p, m in result.type_errors)))
        if result.unknown:
            mode = req.field_validation
            if mode == "Strict":
                if apply_patch:
                    raise errors.bad_request("failed to create typed patch object (%s, Kind=%s) %s: %s"
                                             % (resource.group_version if resource.group else "/v1",
                                                resource.kind, (obj.get("metadata") or {}).get("name", ""),
                                                ", ".join(".%s: field not declared in schema" % p
                                                          for p in result.unknown)))
                raise errors.bad_request('%s in version "%s" cannot be handled as a %s: %s' % (
                    resource.kind, resource.version, resource.kind, schemas_mod.strict_message(result.unknown)))
            if mode == "Warn":
                req.warnings += ['unknown field "%s"' % p for p in result.unknown]

    def _validate(self, resource, obj, old=None):
        node, resolve, crd = self._schema(resource)
        causes = validation.metadata(resource, obj)
        if node:
            causes += schemas_mod.check(copy.deepcopy(obj), node, resolve, crd=crd).invalid
        causes += validation.kind_rules(resource, obj)
        if old is not None:
            causes += validation.immutable(resource, old, obj)
        if causes:
            raise errors.invalid(resource, obj["metadata"].get("name", ""), causes)

    def _defaults(self, resource, obj):
        if not resource.crd:
            defaults.apply(resource, obj, self._priority_of, self._allocate_ip)

    def _managed(self, resource, old, new, req, subresource=""):
        node, resolve, _crd = self._schema(resource)
        new["metadata"]["managedFields"] = ssa.record_update(
            old, new, req.manager, subresource, resource.group_version, now_rfc3339(), node, resolve,
            resource.status)
        if not new["metadata"]["managedFields"]:
            del new["metadata"]["managedFields"]

    # -- create -------------------------------------------------------------------
    def _check_namespace(self, resource, namespace):
        """plugin/pkg/admission/namespace/lifecycle/admission.go: Admit."""
        if not resource.namespaced:
            return
        ns = self.store.get(self.key(self.builtin("", "namespaces"), "", namespace))
        if ns is None:
            raise errors.not_found(self.builtin("", "namespaces"), namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise errors.ApiError(403, "Forbidden", 'unable to create new content in namespace %s because it is '
                                  "being terminated" % namespace, {"name": namespace, "kind": "namespaces",
                                                                   "causes": [{"reason": "NamespaceTerminating"}]})

    def create(self, resource, namespace, obj, req, managed=None):
        self._decode(resource, obj, req)
        meta = obj.setdefault("metadata", {})
        if resource.namespaced:
            if meta.get("namespace") and namespace and meta["namespace"] != namespace:
                raise errors.bad_request("the namespace of the provided object does not match the namespace "
                                         "sent on the request")
            namespace = namespace or meta.get("namespace") or "default"
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            # staging/src/k8s.io/apiserver/pkg/storage/names/generate.go: SimpleNameGenerator
            meta["name"] = meta["generateName"] + "".join(random.choice(_SUFFIX_CHARS) for _unused in range(5))
        # store.go: BeforeCreate (system fields)
        for key in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if resource.status and resource.kind != "Node":
            obj.pop("status", None)   # the strategies' PrepareForCreate reset status
        self._defaults(resource, obj)
        if resource.kind == "CertificateSigningRequest":
            # kubernetes pkg/registry/certificates/certificates/strategy.go: PrepareForCreate
            # fills the requester's identity from the request's user, whatever was sent.
            user = req.user or {}
            spec = obj.setdefault("spec", {})
            spec["username"] = user.get("username", "")
            spec["groups"] = list(user.get("groups", []))
            spec.pop("uid", None)
            spec.pop("extra", None)
        if resource.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        self._validate(resource, obj)
        with self.store.lock:
            self._check_namespace(resource, namespace)
            key = self.key(resource, namespace, meta["name"])
            if self.store.get(key) is not None:
                raise errors.already_exists(resource, meta["name"])
            if managed is not None:
                meta["managedFields"] = managed
            else:
                self._managed(resource, None, obj, req)
            if req.dry_run:
                return obj
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(key, obj, "ADDED")
        if resource.kind == "CustomResourceDefinition":
            self.refresh_crds()
        return obj

    @staticmethod
    def _crd_status(crd):
        """apiextensions-apiserver pkg/controller/establish/establishing_controller.go and
        pkg/controller/status/naming_controller.go: NamesAccepted and Established."""
        now = now_rfc3339()
        spec = crd.get("spec") or {}
        status = crd.setdefault("status", {})
        status["acceptedNames"] = copy.deepcopy(spec.get("names") or {})
        status["storedVersions"] = sorted({v["name"] for v in spec.get("versions") or [] if v.get("storage")}
                                          | set(status.get("storedVersions") or []))
        status["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted", "lastTransitionTime": now}]

    # -- read -----------------------------------------------------------------------
    def get(self, resource, namespace, name):
        return self._get_or_404(resource, namespace, name)

    def list(self, resource, namespace, params):
        label_reqs = selectors.parse_labels(params.get("labelSelector"))
        field_reqs = selectors.parse_fields(params.get("fieldSelector"), resource)
        items, rv = self.store.list(resource.group, resource.plural, namespace if resource.namespaced else None)
        items = [self.versioned(resource, o) for o in items
                 if selectors.match_labels(label_reqs, o["metadata"].get("labels"))
                 and selectors.match_fields(field_reqs, o)]
        return {"apiVersion": resource.group_version, "kind": resource.kind + "List",
                "metadata": {"resourceVersion": str(rv)}, "items": items}

    @staticmethod
    def versioned(resource, obj):
        """Objects of a multi-version CRD are served in the version asked for."""
        obj["apiVersion"] = resource.group_version
        obj["kind"] = resource.kind
        return obj

    # -- update ---------------------------------------------------------------------
    def update(self, resource, namespace, name, obj, req, subresource=""):
        """PUT (store.go: Update) of the main resource or its status."""
        self._decode(resource, obj, req)
        with self.store.lock:
            old = self._get_or_404(resource, namespace, name)
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, name, errors.OPTIMISTIC_LOCK)
            if (obj.get("metadata") or {}).get("name", name) != name:
                raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                         % (obj["metadata"]["name"], name))
            return self._write(resource, old, obj, req, subresource)

    def _write(self, resource, old, new, req, subresource="", managed=None):
        """The common end of update and patch: strategy PrepareForUpdate, validation,
        generation, storage (no-op writes keep the resourceVersion)."""
        meta = new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "namespace",
                    "generation", "name"):
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if subresource == "status":
            # the strategies' PrepareForUpdate of */status: only status changes
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif subresource == "approval":
            # pkg/registry/certificates/certificates/strategy.go: csrApprovalStrategy.PrepareForUpdate
            conditions = (new.get("status") or {}).get("conditions")
            new = copy.deepcopy(old)
            new.setdefault("status", {})["conditions"] = conditions
        elif resource.status:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        # The status and approval branches replaced `new`: what follows (generation, managed
        # fields, the new resourceVersion) is about the object that is stored. Every write
        # that changes an object gets a new resourceVersion, whatever its subresource
        # (staging/src/k8s.io/apiserver/pkg/storage/etcd3/store.go: GuaranteedUpdate stores
        # the update and the object takes the revision of that write), so watchers from the
        # previous version see it.
        meta = new.setdefault("metadata", {})
        if old["metadata"].get("deletionTimestamp") and len(meta.get("finalizers") or []) > \
                len(old["metadata"].get("finalizers") or []):
            # staging/src/k8s.io/apiserver/pkg/registry/rest/update.go: no new finalizers once deleting
            raise errors.invalid(resource, old["metadata"]["name"], [
                ("metadata.finalizers", "FieldValueForbidden", "Forbidden: no new finalizers can be added if the "
                 "object is being deleted")])
        self._defaults(resource, new)
        if resource.kind == "CustomResourceDefinition" and not subresource:
            self._crd_status(new)
            if old.get("status", {}).get("conditions"):
                new["status"]["conditions"] = old["status"]["conditions"]
        self._validate(resource, new, old if not subresource else None)
        # generation: the strategies' PrepareForUpdate bump it when the spec changes
        skip = ("metadata", "status") if resource.status else ("metadata",)
        if {k: v for k, v in new.items() if k not in skip} != {k: v for k, v in old.items() if k not in skip}:
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        if managed is not None:
            meta["managedFields"] = managed
        else:
            self._managed(resource, old, new, req, subresource)
        if new == old:
            return old   # store.go: GuaranteedUpdate does not write an unchanged object
        if req.dry_run:
            return new
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not self._graceful_pending(resource, new):
            return self._remove(resource, new)
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.put(self.key(resource, meta.get("namespace"), meta["name"]), new, "MODIFIED")
        if resource.kind == "CustomResourceDefinition":
            self.refresh_crds()
        return new

    @staticmethod
    def _graceful_pending(resource, obj):
        return resource.kind == "Pod" and resource.group == "" and (obj["metadata"].get(
            "deletionGracePeriodSeconds") or 0) > 0

    # -- patch ----------------------------------------------------------------------
    def patch(self, resource, namespace, name, body, content_type, req, subresource=""):
        """staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go: PatchResource."""
        content_type = (content_type or "").split(";")[0].strip()
        if content_type == "application/apply-patch+yaml":
            return self.apply(resource, namespace, name, body, req, subresource)
        try:
            patch_doc = json.loads(body or b"null")
        except ValueError as err:
            raise errors.bad_request("error decoding patch: %s" % err)
        with self.store.lock:
            old = self._get_or_404(resource, namespace, name)
            if content_type == "application/json-patch+json":
                new = patching.json_patch(old, patch_doc)
            elif content_type == "application/merge-patch+json":
                new = patching.merge_patch(old, patch_doc)
            elif content_type == "application/strategic-merge-patch+json":
                if resource.crd:
                    raise errors.unsupported_media_type(content_type)
                node, resolve, _crd = self._schema(resource)
                new = patching.strategic_merge(old, patch_doc, node, resolve)
            else:
                raise errors.unsupported_media_type(content_type)
            if not isinstance(new, dict):
                raise errors.bad_request("patch did not produce an object")
            rv = (new.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, name, errors.OPTIMISTIC_LOCK)
            new.setdefault("metadata", {}).pop("managedFields", None)
            self._decode(resource, new, req)
            return self._write(resource, old, new, req, subresource)

    def apply(self, resource, namespace, name, body, req, subresource=""):
        """Server-side apply (patch.go: applyPatcher)."""
        from .. import yamlish
        try:
            config = yamlish.load(body.decode() if isinstance(body, bytes) else body)
        except Exception as err:  # noqa: BLE001 - any YAML error is the client's
            raise errors.bad_request("error decoding YAML: %s" % err)
        if not isinstance(config, dict):
            raise errors.bad_request("apply patch must be an object")
        if not req.params.get("fieldManager"):
            raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
        self._decode(resource, config, req, apply_patch=True)
        cmeta = config.setdefault("metadata", {})
        if cmeta.get("name") and cmeta["name"] != name:
            raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                     % (cmeta["name"], name))
        force = req.params.get("force") in ("true", "1")
        node, resolve, _crd = self._schema(resource)
        status_sub = resource.status and subresource != "status"
        with self.store.lock:
            old = self.store.get(self.key(resource, namespace, name))
            if old is None:
                cmeta["name"] = name
                merged = ssa.apply({}, config, req.manager, force, resource.group_version, now_rfc3339(), node,
                                   resolve, status_sub, resource, name)
                managed = merged["metadata"].pop("managedFields")
                merged["metadata"]["name"] = name
                if namespace:
                    merged["metadata"]["namespace"] = namespace
                return self.create(resource, namespace, merged, req, managed=managed)
            rv = cmeta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, name, errors.OPTIMISTIC_LOCK)
            merged = ssa.apply(old, config, req.manager, force, resource.group_version, now_rfc3339(), node,
                               resolve, status_sub, resource, name)
            managed = merged["metadata"].get("managedFields")
            if _same_ignoring_time(managed, old["metadata"].get("managedFields")):
                managed = old["metadata"].get("managedFields")
            return self._write(resource, old, merged, req, subresource, managed=managed)

    # -- delete ---------------------------------------------------------------------
    def delete(self, resource, namespace, name, req, options=None):
        """store.go: Delete with the pod strategy's CheckGracefulDelete
        (pkg/registry/core/pod/strategy.go) and finalizers (store.go: updateForGracefulDeletionAndFinalizers)."""
        options = options or {}
        with self.store.lock:
            obj = self._get_or_404(resource, namespace, name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"].get("uid"):
                raise errors.conflict(resource, name, "Precondition failed: UID in precondition: %s, UID in object "
                                      "meta: %s" % (pre["uid"], obj["metadata"].get("uid")))
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, name, errors.OPTIMISTIC_LOCK)
            policy = options.get("propagationPolicy") or req.param("propagationPolicy")
            if options.get("orphanDependents") is True:
                policy = "Orphan"
            grace = options.get("gracePeriodSeconds", req.param("gracePeriodSeconds"))
            grace = int(grace) if grace not in (None, "") else None
            meta = obj["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            # store.go: deletionFinalizersForGarbageCollection
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            if policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            grace = self._pod_grace(resource, obj, grace)
            if req.dry_run:
                return obj
            if resource.kind == "Namespace" and not resource.group:
                return self._delete_namespace(resource, obj)
            if not finalizers and grace == 0:
                return self._remove(resource, obj)
            if meta.get("deletionTimestamp") and finalizers == list(meta.get("finalizers") or []) and \
                    (grace is None or grace >= (meta.get("deletionGracePeriodSeconds") or 0)):
                return obj
            meta["finalizers"] = finalizers
            if not meta.get("deletionTimestamp") or grace == 0:
                stamp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=grace or 0)
                meta["deletionTimestamp"] = stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = grace or 0
            if not finalizers and grace == 0:
                return self._remove(resource, obj)
            meta["resourceVersion"] = str(self.store.next_rv())
            self.store.put(self.key(resource, meta.get("namespace"), name), obj, "MODIFIED")
            return obj

    def _pod_grace(self, resource, obj, grace):
        """pkg/registry/core/pod/strategy.go: CheckGracefulDelete — unscheduled and terminated pods
        go at once; bound pods wait for their kubelet (DELETE with gracePeriodSeconds=0). A pod
        on a node that does not exist goes at once (the pod GC, pkg/controller/podgc/gc_controller.go:
        gcOrphaned)."""
        if not (resource.kind == "Pod" and resource.group == ""):
            return 0 if grace is None else grace if grace == 0 else 0
        spec = obj.get("spec") or {}
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        if not spec.get("nodeName") or (obj.get("status") or {}).get("phase") in ("Failed", "Succeeded"):
            return 0
        node = self.store.get(self.key(self.builtin("", "nodes"), "", spec["nodeName"]))
        if node is None:
            return 0
        return max(grace, 0) if grace > 0 else 0

    def _remove(self, resource, obj):
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self.store.next_rv())
        self.store.remove(self.key(resource, meta.get("namespace"), meta["name"]), obj)
        if resource.kind == "CustomResourceDefinition":
            self._delete_crs(obj)
            self.refresh_crds()
        if resource.kind == "Pod" and not resource.group:
            return obj
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": meta["name"], "group": resource.group, "kind": resource.plural,
                            "uid": meta.get("uid")}}

    def _delete_crs(self, crd):
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        for key in self.store.keys(group, plural):
            obj = self.store.get(key)
            obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.remove(key, obj)

    def _delete_namespace(self, resource, ns):
        """The namespace controller, run in-process (pkg/controller/namespace/deletion/
        namespaced_resources_deleter.go: Delete): every object in it goes, then the namespace."""
        name = ns["metadata"]["name"]
        for key in self.store.keys(namespace=name):
            if key[2] == name:
                obj = self.store.get(key)
                obj["metadata"]["resourceVersion"] = str(self.store.next_rv())
                self.store.remove(key, obj)
        ns.setdefault("status", {})["phase"] = "Terminating"
        return self._remove(resource, ns)

    def delete_collection(self, resource, namespace, req, options=None):
        listed = self.list(resource, namespace, req.params)
        for item in listed["items"]:
            try:
                self.delete(resource, item["metadata"].get("namespace"), item["metadata"]["name"], req, options)
            except errors.ApiError as err:
                if err.code != 404:
                    raise
        return listed

    # -- scale subresource ------------------------------------------------------------
    @staticmethod
    def scale_of(obj):
        """pkg/registry/apps/deployment/storage/storage.go: scaleFromDeployment (and
        pkg/registry/apps/replicaset/storage/storage.go: scaleFromReplicaSet): an autoscaling/v1
        Scale carrying the owner's name, namespace, uid, resourceVersion and creationTimestamp,
        spec.replicas and status.replicas, status.selector = LabelSelectorAsSelector().String()."""
        meta = obj["metadata"]
        scale_meta = {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                      if k in meta}
        status = {"replicas": (obj.get("status") or {}).get("replicas", 0)}
        selector = _selector_string((obj.get("spec") or {}).get("selector"))
        if selector:
            status["selector"] = selector
        return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)}, "status": status}

    def get_scale(self, resource, namespace, name):
        return self.scale_of(self._get_or_404(resource, namespace, name))

    def update_scale(self, resource, namespace, name, scale, req, patch_body=None, content_type=""):
        """storage.go: ScaleREST.Update with scaleUpdatedObjectInfo.UpdatedObject — the new Scale
        (a PUT body, or the current Scale patched) is validated (pkg/apis/autoscaling/validation:
        ValidateScale), its resourceVersion (when set) must match, then spec.replicas goes to the
        owner, which is written as an update of subresource "scale" (managedFields recorded
        for the owner, staging/src/k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager/
        scalehandler.go)."""
        with self.store.lock:
            old = self._get_or_404(resource, namespace, name)
            current = self.scale_of(old)
            if patch_body is not None:
                ctype = (content_type or "").split(";")[0].strip()
                try:
                    doc = json.loads(patch_body or b"null")
                except ValueError as err:
                    raise errors.bad_request("error decoding patch: %s" % err)
                if ctype == "application/json-patch+json":
                    scale = patching.json_patch(current, doc)
                elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
                    scale = patching.merge_patch(current, doc)   # Scale has no lists: SMP == merge patch
                else:
                    raise errors.unsupported_media_type(ctype)
            if not isinstance(scale, dict):
                raise errors.bad_request("Object 'Kind' is missing")
            if scale.get("kind", "Scale") != "Scale" or scale.get("apiVersion", "autoscaling/v1") != "autoscaling/v1":
                raise errors.bad_request("%s in version %s cannot be handled as a Scale" % (
                    scale.get("kind"), scale.get("apiVersion")))
            smeta = scale.get("metadata") or {}
            if smeta.get("name", name) != name:
                raise errors.bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                                         % (smeta["name"], name))
            replicas = (scale.get("spec") or {}).get("replicas", 0)
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise errors.ApiError(422, "Invalid", 'Scale.autoscaling "%s" is invalid: spec.replicas: Invalid '
                                      "value: %s: must be greater than or equal to 0" % (name, replicas),
                                      {"name": name, "group": "autoscaling", "kind": "Scale", "causes": [
                                          {"reason": "FieldValueInvalid", "field": "spec.replicas",
                                           "message": "Invalid value: %s: must be greater than or equal to 0"
                                           % replicas}]})
            rv = smeta.get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, name, errors.OPTIMISTIC_LOCK)
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["replicas"] = replicas
            written = self._write(resource, old, new, req, "scale")
            return self.scale_of(written)

    # -- pod subresources ------------------------------------------------------------
    def bind(self, namespace, name, binding, req):
        """pkg/registry/core/pod/storage/storage.go: BindingREST.Create / assignPod."""
        pods = self.builtin("", "pods")
        target = (binding or {}).get("target") or {}
        if not target.get("name"):
            raise errors.invalid(self.builtin("", "pods"), name,
                                 [("target.name", "FieldValueRequired", "Required value")])
        with self.store.lock:
            pod = self._get_or_404(pods, namespace, name)
            if pod["metadata"].get("deletionTimestamp"):
                raise errors.conflict(pods, name, "pod %s is being deleted, cannot be assigned to a host" % name)
            if (pod.get("spec") or {}).get("nodeName"):
                raise errors.ApiError(409, "Conflict", 'Operation cannot be fulfilled on pods/binding "%s": pod %s '
                                      'is already assigned to node "%s"' % (name, name, pod["spec"]["nodeName"]),
                                      {"name": name, "kind": "pods/binding"})
            new = copy.deepcopy(pod)
            new["spec"]["nodeName"] = target["name"]
            conditions = new.setdefault("status", {}).setdefault("conditions", [])
            conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                               "lastTransitionTime": now_rfc3339()})
            if req.dry_run:
                return _success()
            new["metadata"]["resourceVersion"] = str(self.store.next_rv())
            self.store.put(self.key(pods, namespace, name), new, "MODIFIED")
        return _success()

    def evict(self, namespace, name, eviction, req):
        """pkg/registry/core/pod/storage/eviction.go: EvictionREST.Create."""
        pods = self.builtin("", "pods")
        pdbs = self.builtin("policy", "poddisruptionbudgets")
        with self.store.lock:
            pod = self._get_or_404(pods, namespace, name)
            options = (eviction or {}).get("deleteOptions") or {}
            # eviction.go: propagateDryRun (the body's deleteOptions.dryRun and ?dryRun= agree)
            body_dry = options.get("dryRun") or []
            query_dry = [req.params["dryRun"]] if req.params.get("dryRun") else []
            if body_dry and query_dry and body_dry != query_dry:
                raise errors.bad_request("Specified DryRun of eviction and CreateOptions do not match")
            if body_dry == ["All"] and not query_dry:
                req.params["dryRun"] = "All"
            phase = (pod.get("status") or {}).get("phase")
            # eviction.go: canIgnorePDB (terminal, pending or already deleting pods)
            if phase in ("Succeeded", "Failed", "Pending") or pod["metadata"].get("deletionTimestamp"):
                self.delete(pods, namespace, name, req, options)
                return _success()
            items, _rv = self.store.list(pdbs.group, pdbs.plural, namespace)
            matching = [p for p in items if selectors.selects((p.get("spec") or {}).get("selector"),
                                                              pod["metadata"].get("labels"))]
            if len(matching) > 1:
                raise errors.ApiError(500, "InternalError", "This pod has more than one PodDisruptionBudget, which "
                                      "the eviction subresource does not support.")
            if matching:
                pdb = copy.deepcopy(matching[0])
                status = pdb.get("status") or {}
                pdb_name = pdb["metadata"]["name"]
                # eviction.go: checkAndDecrement. A PDB the disruption controller has not seen
                # yet (no status) is "still being processed": 429 with Retry-After 10
                # (createTooManyRequestsError); no disruptions left: 429 without Retry-After.
                if status.get("observedGeneration", 0) < pdb["metadata"].get("generation", 1):
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [{"reason": "DisruptionBudget", "message": "The disruption budget %s is still being "
                          "processed by the server." % pdb_name}], retry_after=10)
                if status.get("disruptionsAllowed", 0) < 0:
                    raise errors.ApiError(403, "Forbidden", 'pods "%s" is forbidden: pdb disruptions allowed is '
                                          "negative" % name, {"name": name, "kind": "pods"})
                if status.get("disruptionsAllowed", 0) == 0:
                    raise errors.too_many_requests(
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        [{"reason": "DisruptionBudget", "message": "The disruption budget %s needs %d healthy pods "
                          "and has %d currently" % (pdb_name, status.get("desiredHealthy", 0),
                                                    status.get("currentHealthy", 0))}], retry_after=0)
                if not req.dry_run:
                    status["disruptionsAllowed"] -= 1
                    status.setdefault("disruptedPods", {})[name] = now_rfc3339()
                    pdb["status"] = status
                    pdb["metadata"]["resourceVersion"] = str(self.store.next_rv())
                    self.store.put(self.key(pdbs, namespace, pdb["metadata"]["name"]), pdb, "MODIFIED")
            self.delete(pods, namespace, name, req, options)
        return _success()


def _selector_string(selector):
    """staging/src/k8s.io/apimachinery/pkg/apis/meta/v1/helpers.go: LabelSelectorAsSelector, then
    labels.Selector.String() (pkg/labels/selector.go: requirements sorted by key; "k=v",
    "k in (a,b)", "k notin (a,b)", "k", "!k")."""
    if not selector:
        return ""
    reqs = [(k, "=", [v]) for k, v in (selector.get("matchLabels") or {}).items()]
    reqs += [(e.get("key", ""), e.get("operator", ""), sorted(e.get("values") or []))
             for e in selector.get("matchExpressions") or []]
    out = []
    for key, op, values in sorted(reqs, key=lambda r: r[0]):
        if op == "=":
            out.append("%s=%s" % (key, values[0]))
        elif op == "In":
            out.append("%s in (%s)" % (key, ",".join(values)))
        elif op == "NotIn":
            out.append("%s notin (%s)" % (key, ",".join(values)))
        elif op == "Exists":
            out.append(key)
        elif op == "DoesNotExist":
            out.append("!" + key)
    return ",".join(out)


def _success():
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def _same_ignoring_time(a, b):
    def norm(entries):
        return [{k: v for k, v in e.items() if k != "time"} for e in entries or []]
    return norm(a) == norm(b)
