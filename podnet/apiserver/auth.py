"""Who is asking: a ServiceAccount bearer token this cluster signed (``podnet.pki``) whose pod
still exists (tokens are bound to their pod, as the API server's are). No token is anonymous,
which RBAC lets read only the health paths; a token that does not verify is refused (401).
"""
from __future__ import annotations

from collections.abc import Callable

from podnet.pki import ClusterCA, InvalidToken, service_account_username, verify_token

from .rbac import AUTHENTICATED, UNAUTHENTICATED, User

ANONYMOUS = User("system:anonymous", (UNAUTHENTICATED,))
PodUid = Callable[[str, str], "str | None"]  # (namespace, name) → the pod's uid, None if it is gone


def authenticate(header: str | None, ca: ClusterCA, pod_uid: PodUid, now: float) -> User:
    """The user of an ``Authorization`` header; raises InvalidToken for a bad token."""
    if not header:
        return ANONYMOUS
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidToken("not a bearer token")
    claims = verify_token(ca, token.strip(), now)
    info = claims.get("kubernetes.io") or {}
    namespace = str(info.get("namespace", ""))
    account = str((info.get("serviceaccount") or {}).get("name", ""))
    if not namespace or not account or claims.get("sub") != service_account_username(namespace, account):
        raise InvalidToken("not a ServiceAccount token")
    pod = info.get("pod") or {}
    if pod and pod_uid(namespace, str(pod.get("name", ""))) != pod.get("uid"):
        raise InvalidToken("the pod this token is bound to no longer exists")
    return User(service_account_username(namespace, account),
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED))
