# SPDX-License-Identifier: Apache-2.0
"""Authentication: x509 client certificates and bootstrap tokens; anonymous only where
kubeadm's RBAC lets anonymous in. No authorisation (every authenticated user may do all)."""
from __future__ import annotations

import base64
import datetime
import hmac
import re

from . import errors

_TOKEN = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
# kubeadm's anonymous access: cmd/kubeadm/app/phases/bootstraptoken/clusterinfo/clusterinfo.go
# (cluster-info in kube-public) and the system:public-info-viewer ClusterRole
# (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go: /healthz, /livez, /readyz, /version).
ANONYMOUS_PATHS = ("/version", "/version/", "/healthz", "/livez", "/readyz")
CLUSTER_INFO = "/api/v1/namespaces/kube-public/configmaps/cluster-info"


def from_certificate(peercert):
    """staging/src/k8s.io/apiserver/pkg/authentication/request/x509/x509.go: CommonNameUserConversion
    (CN = user, O = groups)."""
    if not peercert:
        return None
    user, groups = None, []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    if not user:
        return None
    return {"username": user, "groups": groups + ["system:authenticated"]}


def _b64(data, key):
    value = (data or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def from_bootstrap_token(header, get_secret, now=None):
    """plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go: TokenAuthenticator.AuthenticateToken."""
    if not header or not header.startswith("Bearer "):
        return None
    match = _TOKEN.match(header[len("Bearer "):].strip())
    if not match:
        raise errors.unauthorized()
    token_id, token_secret = match.groups()
    secret = get_secret("bootstrap-token-" + token_id)
    if not secret or secret.get("type") != "bootstrap.kubernetes.io/token":
        raise errors.unauthorized()
    if (secret.get("metadata") or {}).get("deletionTimestamp"):
        raise errors.unauthorized()
    data = secret.get("data") or {}
    if not hmac.compare_digest((_b64(data, "token-secret") or "").encode(), token_secret.encode()):
        raise errors.unauthorized()
    if _b64(data, "token-id") not in (None, token_id):
        raise errors.unauthorized()
    expiration = _b64(data, "expiration")
    if expiration:
        now = now or datetime.datetime.now(datetime.timezone.utc)
        try:
            when = datetime.datetime.fromisoformat(expiration.replace("Z", "+00:00"))
        except ValueError:
            raise errors.unauthorized()
        if when <= now:   # bootstrap.go: isSecretExpired
            raise errors.unauthorized()
    if _b64(data, "usage-bootstrap-authentication") != "true":
        raise errors.unauthorized()
    groups = ["system:bootstrappers"]
    extra = _b64(data, "auth-extra-groups")
    if extra:
        groups += [g.strip() for g in extra.split(",") if g.strip()]
    return {"username": "system:bootstrap:" + token_id, "groups": groups + ["system:authenticated"]}


def anonymous_allowed(method, path):
    return method == "GET" and (path in ANONYMOUS_PATHS or path == CLUSTER_INFO)
