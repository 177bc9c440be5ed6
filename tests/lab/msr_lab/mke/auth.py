"""MKE's sessions and credentials: the admin password and the tokens /auth/login issues.

MSR authenticates against MKE (eNZi), so the replicas check requests with these same functions.
"""
from __future__ import annotations

import base64
import binascii
import secrets
import weakref

from msr_lab.common.httpbase import Request

_TOKENS: "weakref.WeakKeyDictionary[object, dict[str, tuple[str, float]]]" = weakref.WeakKeyDictionary()


def tokens(lab) -> dict[str, tuple[str, float]]:
    """MKE session tokens (auth_token -> (username, issued at)), shared with the MSR replicas for basic auth."""
    return _TOKENS.setdefault(lab, {})


def issue_token(lab, username: str) -> str:
    token = secrets.token_hex(32)
    with lab.lock:
        tokens(lab)[token] = (username, lab.now())
    return token


def token_user(lab, token: str) -> str | None:
    """The user of a token that is still valid; the token-expiry fault limits its age."""
    with lab.lock:
        entry = tokens(lab).get(token)
        if entry is None:
            return None
        ttl = lab.faults.token_ttl
        if ttl and lab.now() - entry[1] >= ttl:
            return None
        return entry[0]


def request_authorized(lab, req: Request) -> bool:
    """An MKE bearer token, or basic auth with the admin password or a token (MKE and MSR alike)."""
    header = req.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return token_user(lab, header[7:].strip()) is not None
    creds = parse_basic(header)
    return creds is not None and admin_ok(lab, *creds)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, secret = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, secret


def admin_ok(lab, username: str, secret: str) -> bool:
    """The admin user with its password or with a token MKE issued to it."""
    if username != lab.config.get("mke_username", "admin"):
        return False
    if secrets.compare_digest(secret.encode(), str(lab.config.get("mke_password", "")).encode()):
        return True
    return token_user(lab, secret) == username
