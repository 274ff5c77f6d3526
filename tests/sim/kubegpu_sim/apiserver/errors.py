# SPDX-License-Identifier: Apache-2.0
"""metav1.Status errors, worded like kube-apiserver's
(kubernetes staging/src/k8s.io/apimachinery/pkg/api/errors/errors.go)."""
from __future__ import annotations


class ApiError(Exception):
    """An error answered as a metav1.Status with HTTP `code`."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self):
        """The metav1.Status body."""
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def _qualified(resource):
    """`jobs.batch` / `pods` (errors.go uses schema.GroupResource.String())."""
    return resource.group_resource if resource is not None else ""


def _details(resource, name, kind_field=None):
    details = {"name": name} if name else {}
    if resource is not None:
        if resource.group:
            details["group"] = resource.group
        details["kind"] = kind_field or resource.plural
    return details


def not_found(resource, name):
    # errors.go: NewNotFound
    return ApiError(404, "NotFound", '%s "%s" not found' % (_qualified(resource), name),
                    _details(resource, name))


def already_exists(resource, name):
    # errors.go: NewAlreadyExists
    return ApiError(409, "AlreadyExists", '%s "%s" already exists' % (_qualified(resource), name),
                    _details(resource, name))


def conflict(resource, name, why):
    # errors.go: NewConflict; registry/generic/registry/store.go: Update (OptimisticLockErrorMsg)
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (_qualified(resource), name, why), _details(resource, name))


OPTIMISTIC_LOCK = "the object has been modified; please apply your changes to the latest version and try again"


def invalid(resource, name, causes):
    """causes: [(field, reason, message)] -> 422 (errors.go: NewInvalid)."""
    kind = resource.kind + ("." + resource.group if resource.group else "") if resource else ""
    texts = ["%s: %s" % (field, message) if field else message for field, _reason, message in causes]
    message = '%s "%s" is invalid: ' % (kind, name)
    message += texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details = _details(resource, name, resource.kind if resource else None)
    details["causes"] = [{"reason": reason, "message": msg, "field": field}
                         for field, reason, msg in causes]
    return ApiError(422, "Invalid", message, details)


def bad_request(message):
    # errors.go: NewBadRequest
    return ApiError(400, "BadRequest", message)


def unauthorized(message="Unauthorized"):
    # errors.go: NewUnauthorized
    return ApiError(401, "Unauthorized", message)


def method_not_supported(resource, verb):
    # errors.go: NewMethodNotSupported
    return ApiError(405, "MethodNotAllowed", "%s is not supported on resources of kind %r"
                    % (verb, _qualified(resource)), _details(resource, ""))


def gone(message):
    # errors.go: NewResourceExpired
    return ApiError(410, "Expired", message)


def unsupported_media_type(content_type):
    # staging/src/k8s.io/apiserver/pkg/endpoints/handlers/patch.go: PatchResource
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                    "accepted media types include: application/json-patch+json, "
                    "application/merge-patch+json, application/apply-patch+yaml")


def too_many_requests(message, causes=None, retry_after=10):
    # errors.go: NewTooManyRequests(message, retryAfterSeconds); the Retry-After header only
    # when retryAfterSeconds > 0 (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/
    # responsewriters/writers.go: ErrorNegotiated). client-go retries a 429 with Retry-After up
    # to 10 times inside one request (rest/with_retry.go), kubectl drain's --timeout included.
    details = {"causes": causes} if causes else {}
    if retry_after > 0:
        details["retryAfterSeconds"] = retry_after
    return ApiError(429, "TooManyRequests", message, details or None,
                    headers={"Retry-After": str(retry_after)} if retry_after > 0 else None)


def internal(message):
    return ApiError(500, "InternalError", "Internal error occurred: %s" % message)


def raw_not_found(path):
    """404 for a path that names no resource (the mux's answer)."""
    return ApiError(404, "NotFound", "the server could not find the requested resource",
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
