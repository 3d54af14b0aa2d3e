"""Who may call the API: one bearer token, compared in constant time; audit rows carry its fingerprint only.

The API's routes take the token as `Authorization: Bearer`; the docs pages also take it as HTTP Basic's password
(any user name) so a browser can open them: it asks for the password itself (a browser never sends a bearer header
on navigation), and a token in a query string would land in logs and history. Basic is accepted only there, so
the credential a browser keeps can read the docs but never call the API (no cross-site request can act on it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets

TOKEN_ENV = "TWIN_API_TOKEN"
MIN_TOKEN_CHARS = 16


def api_token(environ: dict | None = None) -> tuple[str, bool]:
    """($TWIN_API_TOKEN, False), or a fresh random token and True (the caller prints it once)."""
    token = (environ if environ is not None else os.environ).get(TOKEN_ENV, "").strip()
    if token:
        if len(token) < MIN_TOKEN_CHARS:
            raise ValueError(f"{TOKEN_ENV} is too short ({len(token)} characters); use at least {MIN_TOKEN_CHARS}, "
                             "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'")
        return token, False
    return secrets.token_urlsafe(32), True


def fingerprint(token: str) -> str:
    """A short, stable name for a token in the audit trail (SHA-256 prefix): tells callers apart, reveals nothing."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def token_matches(given: str, token: str) -> bool:
    """Constant-time comparison: the time taken tells nothing about how much of the token was right."""
    return hmac.compare_digest(given.strip().encode(), token.encode())


def presented_token(authorization: str | None, basic: bool = False) -> str | None:
    """The token in an Authorization header: `Bearer <token>`, or with `basic` also `Basic base64(user:token)`."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if basic and scheme.lower() == "basic":
        try:
            return base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return None
