"""testplat's protocol as data: paths, body codes and the callback signature."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

import hub

__all__ = ["ERROR_CODES", "FRESHNESS_SECONDS", "PATHS", "SIGNATURE_HEADER", "TIMESTAMP_HEADER", "body_error", "sign"]

PATHS = {
    "token": "/oauth/token",
    "fans": "/v1/fans",
    "fan": "/v1/fans/{uid}",
    "orders": "/v1/orders",
    "cards": "/v1/cards",
}

SIGNATURE_HEADER = "x-testplat-signature"
TIMESTAMP_HEADER = "x-testplat-timestamp"
FRESHNESS_SECONDS = 300

ERROR_CODES: dict[int, Any] = {
    1001: hub.TokenExpired,
    1002: (hub.RateLimited, 1.0),
    2001: hub.TransientError,
    4001: hub.PermanentError,
    4003: hub.PlatformConfigError,
}
"""Body ``code`` → hub error (0 is success)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The callback signature: hex HMAC-SHA256 under the client secret of ``timestamp.body``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def body_error(response: httpx.Response, platform: str) -> tuple[Any, str] | None:
    """``(code, message)`` of a failed answer, ``None`` when ``code`` is 0."""
    body = hub.response_json(response, platform=platform)
    code = body.get("code", 0) if isinstance(body, dict) else 0
    return None if code == 0 else (code, str(body.get("message", "")))
