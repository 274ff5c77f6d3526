# SPDX-License-Identifier: Apache-2.0
"""API validation rules kube-apiserver applies beyond the schema, for the kinds kubegpu
uses. Each function returns [(field, reason, message)] (field.ErrorList)."""
from __future__ import annotations

import re

from . import selectors

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_PATH_SEGMENT_KINDS = {("rbac.authorization.k8s.io", k)
                       for k in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")}
_LABEL_NAMED = {("", "Namespace"), ("", "Service")}


def dns1123_subdomain(value):
    """staging/src/k8s.io/apimachinery/pkg/util/validation/validation.go: IsDNS1123Subdomain."""
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
                "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
                "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return None


def dns1123_label(value):
    """validation.go: IsDNS1123Label."""
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not _DNS1123_LABEL.match(value):
        return ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
                "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used "
                "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    return None


def qualified_name(key):
    """validation.go: IsQualifiedName (label and annotation keys)."""
    prefix, _sep, name = key.rpartition("/")
    if prefix and dns1123_subdomain(prefix):
        return "prefix part " + dns1123_subdomain(prefix)
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
                "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return None


def metadata(resource, obj):
    """staging/src/k8s.io/apimachinery/pkg/api/validation/objectmeta.go: ValidateObjectMeta,
    with the name rule of each kind (pkg/apis/core/validation/validation.go:
    ValidateNamespaceName / ValidateServiceName are DNS-1123 labels, most others subdomains;
    RBAC names are path segments, pkg/apis/rbac/validation: ValidateRBACName)."""
    errs = []
    meta = obj.get("metadata") or {}
    name = meta.get("name") or ""
    if not name:
        errs.append(("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"))
    elif (resource.group, resource.kind) in _PATH_SEGMENT_KINDS:
        if name in (".", "..") or "/" in name or "%" in name:
            errs.append(("metadata.name", "FieldValueInvalid", 'Invalid value: "%s": may not contain \'/\' or \'%%\''
                         % name))
    else:
        check = dns1123_label if (resource.group, resource.kind) in _LABEL_NAMED else dns1123_subdomain
        if resource.kind == "CustomResourceDefinition" or resource.crd:
            check = dns1123_subdomain
        problem = check(name)
        if problem:
            errs.append(("metadata.name", "FieldValueInvalid", 'Invalid value: "%s": %s' % (name, problem)))
    for field in ("labels", "annotations"):
        for key, value in (meta.get(field) or {}).items():
            problem = qualified_name(key)
            if problem:
                errs.append(("metadata.%s" % field, "FieldValueInvalid", 'Invalid value: "%s": %s' % (key, problem)))
            if field == "labels":
                # validation.go: IsValidLabelValue
                if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
                    errs.append(("metadata.labels", "FieldValueInvalid",
                                 'Invalid value: "%s": a valid label must be an empty string or consist of '
                                 "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                 "alphanumeric character" % value))
    return errs


def containers(spec, path):
    """pkg/apis/core/validation/validation.go: validateContainers (name and image required,
    names unique)."""
    errs = []
    if not spec.get("containers"):
        errs.append(("%s.containers" % path, "FieldValueRequired", "Required value"))
    seen = set()
    for key in ("initContainers", "containers"):
        for index, container in enumerate(spec.get(key) or []):
            where = "%s.%s[%d]" % (path, key, index)
            name = container.get("name")
            if not name:
                errs.append((where + ".name", "FieldValueRequired", "Required value"))
            elif name in seen:
                errs.append((where + ".name", "FieldValueDuplicate", 'Duplicate value: "%s"' % name))
            seen.add(name)
            if not container.get("image") and key == "containers":
                errs.append((where + ".image", "FieldValueRequired", "Required value"))
    return errs


def _selector_matches_template(spec, path):
    """pkg/apis/apps/validation/validation.go: ValidateDeploymentSpec / ValidateDaemonSetSpec,
    pkg/apis/batch/validation/validation.go: validateJobSpec: `selector` does not match
    template `labels`."""
    errs = []
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    if selector is None:
        errs.append(("%s.selector" % path, "FieldValueRequired", "Required value"))
    elif not (selector.get("matchLabels") or selector.get("matchExpressions")):
        errs.append(("%s.selector" % path, "FieldValueInvalid",
                     "Invalid value: %s: empty selector is invalid for deployment" % "{}"))
    elif not selectors.selects(selector, labels):
        errs.append(("%s.template.metadata.labels" % path, "FieldValueInvalid",
                     "Invalid value: %s: `selector` does not match template `labels`" % _go_map(labels)))
    return errs


def _go_map(labels):
    return "map[string]string{%s}" % ", ".join('"%s":"%s"' % kv for kv in sorted(labels.items()))


def kind_rules(resource, obj):
    """Kind-specific rules."""
    kind = (resource.group, resource.kind)
    spec = obj.get("spec") or {}
    errs = []
    if kind == ("", "Pod"):
        errs += containers(spec, "spec")
    elif kind in (("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "ReplicaSet")):
        errs += _selector_matches_template(spec, "spec")
        errs += containers((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
        policy = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy")
        if policy not in (None, "Always"):
            # pkg/apis/apps/validation/validation.go: ValidatePodTemplateSpecForReplicaSet
            errs.append(("spec.template.spec.restartPolicy", "FieldValueNotSupported",
                         'Unsupported value: "%s": supported values: "Always"' % policy))
    elif kind == ("batch", "Job"):
        errs += _selector_matches_template(spec, "spec")
        tspec = (spec.get("template") or {}).get("spec") or {}
        errs += containers(tspec, "spec.template.spec")
        policy = tspec.get("restartPolicy")
        if policy not in ("OnFailure", "Never"):
            # pkg/apis/batch/validation/validation.go: validateJobSpec (restartPolicy)
            errs.append(("spec.template.spec.restartPolicy", "FieldValueRequired" if policy is None else
                         "FieldValueNotSupported", 'Unsupported value: "%s": supported values: "OnFailure", '
                         '"Never"' % (policy or "")))
    return errs


def immutable(resource, old, new):
    """Immutable fields on update (pkg/apis/batch/validation/validation.go: ValidateJobSpecUpdate,
    pkg/apis/apps/validation: ValidateDeploymentUpdate, core: ValidatePodUpdate's nodeName)."""
    kind = (resource.group, resource.kind)
    errs = []
    ospec, nspec = old.get("spec") or {}, new.get("spec") or {}
    if kind in (("apps", "Deployment"), ("apps", "DaemonSet"), ("apps", "ReplicaSet"), ("batch", "Job")):
        if ospec.get("selector") != nspec.get("selector"):
            errs.append(("spec.selector", "FieldValueInvalid", "Invalid value: %s: field is immutable"
                         % _go_map((nspec.get("selector") or {}).get("matchLabels") or {})))
    if kind == ("batch", "Job") and ospec.get("template") != nspec.get("template") and not ospec.get("suspend"):
        errs.append(("spec.template", "FieldValueInvalid", "Invalid value: ...: field is immutable"))
    if kind == ("", "Pod") and ospec.get("nodeName") and ospec.get("nodeName") != nspec.get("nodeName"):
        errs.append(("spec", "FieldValueForbidden", "Forbidden: pod updates may not change fields other "
                     "than `spec.containers[*].image`, `spec.initContainers[*].image`, "
                     "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                     "tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                     "was previously negative)"))
    return errs
