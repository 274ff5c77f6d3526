# SPDX-License-Identifier: Apache-2.0
"""Discovery and OpenAPI documents, built from the resource registry.

* /version: staging/src/k8s.io/apimachinery/pkg/version/types.go: Info
* /api, /apis, /apis/<g>/<v>: legacy discovery (staging/src/k8s.io/apiserver/pkg/endpoints/
  discovery: APIVersions, APIGroupList, APIResourceList)
* aggregated discovery (apidiscovery.k8s.io/v2 APIGroupDiscoveryList, staging/src/k8s.io/
  apiserver/pkg/endpoints/discovery/aggregated/handler.go), served when the client asks for it
* /openapi/v3 and /openapi/v3/<gv>: one PATCH operation per kind carrying
  x-kubernetes-group-version-kind and the fieldValidation parameter — what
  staging/src/k8s.io/cli-runtime/pkg/resource/query_param_verifier_v3.go:
  supportsQueryParamV3 looks for, so kubectl and helm leave validation to the server
  (no strategic-merge-patch body: kubectl's client-side apply then takes its patch metadata
  from its compiled-in types, staging/src/k8s.io/kubectl/pkg/cmd/apply/patcher.go:
  gvkSupportsPatchOpenAPIV3)
* /openapi/v2: an empty document (kubectl only falls back to it)
"""
from __future__ import annotations

import hashlib
import json

VERSION = {"major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
           "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": "v1.35.4",
           "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
           "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.25.5", "compiler": "gc",
           "platform": "linux/amd64"}
AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def api_versions(address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}]}


def api_group_list(registry):
    groups = []
    for group, versions in registry.group_versions():
        if not group:
            continue
        gvs = [{"groupVersion": "%s/%s" % (group, v), "version": v} for v in versions]
        groups.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_resource_list(registry, group, version):
    resources = [r for r in registry.all() if r.group == group and r.version == version]
    if not resources:
        return None
    out = []
    for r in resources:
        entry = {"name": r.plural, "singularName": r.singular_name, "namespaced": r.namespaced,
                 "kind": r.kind, "verbs": list(r.verbs)}
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.categories:
            entry["categories"] = list(r.categories)
        out.append(entry)
        for sub in r.all_subresources:
            item = {"name": "%s/%s" % (r.plural, sub.name), "singularName": "", "namespaced": r.namespaced,
                    "kind": sub.kind, "verbs": list(sub.verbs)}
            if sub.group or sub.version:
                item["group"], item["version"] = sub.group, sub.version
            out.append(item)
    gv = "%s/%s" % (group, version) if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}


def aggregated(registry, legacy_core):
    """APIGroupDiscoveryList of the core group (legacy_core) or of the named groups."""
    items = []
    for group, versions in registry.group_versions():
        if bool(group) == legacy_core:
            continue
        vlist = []
        for version in versions:
            resources = []
            for r in registry.all():
                if (r.group, r.version) != (group, version):
                    continue
                entry = {"resource": r.plural,
                         "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                         "scope": "Namespaced" if r.namespaced else "Cluster",
                         "singularResource": r.singular_name, "verbs": list(r.verbs)}
                if r.short_names:
                    entry["shortNames"] = list(r.short_names)
                if r.categories:
                    entry["categories"] = list(r.categories)
                subs = [{"subresource": s.name, "verbs": list(s.verbs),
                         "responseKind": {"group": s.group or r.group, "version": s.version or r.version,
                                          "kind": s.kind}} for s in r.all_subresources]
                if subs:
                    entry["subresources"] = subs
                resources.append(entry)
            vlist.append({"version": version, "resources": resources, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": vlist})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": items}


def _gv_key(group, version):
    return "apis/%s/%s" % (group, version) if group else "api/%s" % version


def openapi_v3_gv(registry, group, version):
    """The OpenAPI v3 document of one group/version (kube-openapi pkg/spec3)."""
    paths = {}
    schemas = {}
    for r in registry.all():
        if (r.group, r.version) != (group, version):
            continue
        ns = "/namespaces/{namespace}" if r.namespaced else ""
        gvk = {"group": r.group, "version": r.version, "kind": r.kind}
        ref = "%s.%s.%s" % (r.group or "core", r.version, r.kind)
        schemas[ref] = _component_schema(r, gvk)
        params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                  {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                  {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                  {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                  {"name": "force", "in": "query", "schema": {"type": "boolean"}}]
        body = {"content": {t: {"schema": {"$ref": "#/components/schemas/" + ref}}
                            for t in ("application/apply-patch+yaml", "application/json-patch+json",
                                      "application/merge-patch+json")},
                "required": True}
        ok = {"responses": {"200": {"description": "OK", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/" + ref}}}}}}
        paths["%s%s/%s/{name}" % (r.prefix, ns, r.plural)] = {
            "get": dict(ok, operationId="read" + r.kind,
                        **{"x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk}),
            "put": dict(ok, operationId="replace" + r.kind,
                        **{"x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk}),
            "patch": dict(ok, operationId="patch" + r.kind, requestBody=body, parameters=params,
                          **{"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk}),
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
            "paths": paths, "components": {"schemas": schemas}}


def _component_schema(r, gvk):
    """A permissive schema per kind: the server validates (fieldValidation=Strict)."""
    return {"type": "object", "x-kubernetes-group-version-kind": [gvk],
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"},
                           "metadata": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}


def openapi_v3_root(registry):
    paths = {}
    for group, versions in registry.group_versions():
        for version in versions:
            doc = json.dumps(openapi_v3_gv(registry, group, version), sort_keys=True).encode()
            digest = hashlib.sha512(doc).hexdigest()[:128].upper()
            paths[_gv_key(group, version)] = {"serverRelativeURL": "/openapi/v3/%s?hash=%s"
                                              % (_gv_key(group, version), digest)}
    return {"paths": paths}


OPENAPI_V2 = {"swagger": "2.0", "info": {"title": "Kubernetes", "version": VERSION["gitVersion"]},
              "paths": {}, "definitions": {}}
