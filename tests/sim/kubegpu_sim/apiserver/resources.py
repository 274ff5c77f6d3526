# SPDX-License-Identifier: Apache-2.0
"""The resources the simulated server serves: a built-in table (what kube-apiserver
1.35 registers for these groups, kubernetes pkg/controlplane/instance.go and
pkg/registry/*/rest/storage_*.go) plus the ones CustomResourceDefinitions add
(apiextensions-apiserver pkg/apiserver/customresource_discovery_controller.go)."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple
    group: str = ""      # response kind's group/version when it differs (pods/eviction)
    version: str = ""


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple = ()
    status: bool = False
    subresources: tuple = ()
    verbs: tuple = ALL_VERBS
    singular: str = ""
    categories: tuple = ()
    crd: str = ""        # name of the CRD serving it, "" for built-ins
    schema: dict = field(default=None, compare=False, hash=False, repr=False)  # CRD openAPIV3Schema

    @property
    def group_version(self):
        return "%s/%s" % (self.group, self.version) if self.group else self.version

    @property
    def prefix(self):
        return "/apis/%s/%s" % (self.group, self.version) if self.group else "/api/%s" % self.version

    @property
    def group_resource(self):
        return "%s.%s" % (self.plural, self.group) if self.group else self.plural

    @property
    def singular_name(self):
        return self.singular or self.kind.lower()

    @property
    def all_subresources(self):
        subs = list(self.subresources)
        if self.status:
            subs.insert(0, Subresource("status", self.kind, ("get", "patch", "update")))
        return tuple(subs)

    def subresource(self, name):
        return next((s for s in self.all_subresources if s.name == name), None)


def _r(group, version, kind, plural, namespaced, short=(), status=False, subs=(), verbs=ALL_VERBS, cats=()):
    return Resource(group, version, kind, plural, namespaced, tuple(short), status, tuple(subs), verbs,
                    categories=tuple(cats))


_POD_SUBS = (
    Subresource("binding", "Binding", ("create",)),
    Subresource("eviction", "Eviction", ("create",), "policy", "v1"),
    Subresource("log", "Pod", ("get",)),
)
# pkg/registry/apps/deployment/storage/storage.go and replicaset/storage/storage.go: ScaleREST
# (autoscaling/v1 Scale, get/update/patch)
_SCALE_SUBS = (Subresource("scale", "Scale", ("get", "patch", "update"), "autoscaling", "v1"),)
_CSR_SUBS = (Subresource("approval", "CertificateSigningRequest", ("get", "patch", "update")),)
_NS_SUBS = (Subresource("finalize", "Namespace", ("update",)),)

# kubernetes pkg/registry/*/rest/storage_*.go: NewRESTStorage (which resources each group serves)
BUILTIN = (
    _r("", "v1", "Namespace", "namespaces", False, ("ns",), True, _NS_SUBS,
       ("create", "delete", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "Node", "nodes", False, ("no",), True),
    _r("", "v1", "Pod", "pods", True, ("po",), True, _POD_SUBS, cats=("all",)),
    _r("", "v1", "Secret", "secrets", True),
    _r("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
    _r("", "v1", "Service", "services", True, ("svc",), True, cats=("all",),
       verbs=("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")),
    _r("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",)),
    _r("", "v1", "Event", "events", True, ("ev",)),
    _r("", "v1", "Endpoints", "endpoints", True, ("ep",)),
    _r("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), True, cats=("all",)),
    _r("apps", "v1", "Deployment", "deployments", True, ("deploy",), True, _SCALE_SUBS, cats=("all",)),
    _r("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), True, _SCALE_SUBS, cats=("all",)),
    _r("apps", "v1", "ControllerRevision", "controllerrevisions", True),
    _r("batch", "v1", "Job", "jobs", True, (), True, cats=("all",)),
    _r("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
    _r("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), True),
    _r("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
       ("crd", "crds"), True),
    _r("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    _r("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
    _r("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
    _r("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False,
       ("csr",), True, _CSR_SUBS),
    _r("coordination.k8s.io", "v1", "Lease", "leases", True),
    _r("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
    _r("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
    _r("events.k8s.io", "v1", "Event", "events", True, ("ev",)),
    _r("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
    _r("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
       "validatingwebhookconfigurations", False),
    _r("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration",
       "mutatingwebhookconfigurations", False),
    _r("resource.k8s.io", "v1", "DeviceClass", "deviceclasses", False),
    _r("resource.k8s.io", "v1", "ResourceClaim", "resourceclaims", True, (), True),
    _r("resource.k8s.io", "v1", "ResourceClaimTemplate", "resourceclaimtemplates", True),
    _r("resource.k8s.io", "v1", "ResourceSlice", "resourceslices", False),
)


def resources_from_crd(crd):
    """Resources a CRD serves (apiextensions-apiserver pkg/apiserver/
    customresource_discovery_controller.go: sync): every served version."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    out = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        subs = version.get("subresources") or {}
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        out.append(Resource(
            spec.get("group", ""), version["name"], names.get("kind", ""), names.get("plural", ""),
            spec.get("scope", "Namespaced") == "Namespaced", tuple(names.get("shortNames") or ()),
            "status" in subs, (), ALL_VERBS, names.get("singular", ""),
            tuple(names.get("categories") or ()), crd["metadata"]["name"], schema))
    return out


class Registry:
    """Lookup of served resources; CRD-backed ones are replaced whenever CRDs change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._builtin = list(BUILTIN)
        self._custom = []

    def set_crds(self, crds):
        """Serve the resources of these CRDs (only Established ones are passed)."""
        custom = []
        for crd in crds:
            custom.extend(resources_from_crd(crd))
        with self._lock:
            self._custom = custom

    def all(self):
        with self._lock:
            return self._builtin + self._custom

    def lookup(self, group, version, plural):
        return next((r for r in self.all() if (r.group, r.version, r.plural) == (group, version, plural)), None)

    def by_kind(self, group, version, kind):
        return next((r for r in self.all() if (r.group, r.version, r.kind) == (group, version, kind)), None)

    def group_versions(self):
        """[(group, [versions])] in registration order, core group first."""
        order = {}
        for res in self.all():
            versions = order.setdefault(res.group, [])
            if res.version not in versions:
                versions.append(res.version)
        return list(order.items())
