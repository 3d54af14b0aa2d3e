"""Who may call the API: one bearer token, compared in constant time; audit rows carry its fingerprint only."""

from __future__ import annotations

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
