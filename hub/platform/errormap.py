"""Platform faults become hub errors at one boundary, from data tables.

Each adapter ships ``error_codes``: a table from its platform's body codes to hub error classes,
optionally with the documented block time, e.g.::

    error_codes = {
        42001: hub.TokenExpired,
        45009: (hub.RateLimited, 60.0),
        -1: hub.TransientError,
    }

and says where the code is in a response body with :meth:`hub.Adapter.error_code`.
:func:`check_response` applies both, after the HTTP status; a body code that is not in the table
is a :class:`PermanentError` (never retried blindly).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeAlias

import httpx
from pydantic_core import from_json

from hub.errors import (
    PermanentError,
    PlatformConfigError,
    PlatformError,
    RateLimited,
    TokenExpired,
    TransientError,
)

__all__ = [
    "ErrorEntry",
    "ErrorSource",
    "as_int",
    "check_response",
    "error_for_code",
    "parse_retry_after",
    "response_json",
]

ErrorEntry: TypeAlias = type[PlatformError] | tuple[type[PlatformError], float]


class ErrorSource(Protocol):
    """What maps a platform's responses to hub errors: an adapter, or a token flow with a table of
    its own (:attr:`hub.TokenAuth.error_codes`)."""

    @property
    def platform(self) -> str: ...

    @property
    def error_codes(self) -> Mapping[Any, ErrorEntry] | None: ...

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None: ...

_MISSING = object()

STATUS_ERRORS: Mapping[int, type[PlatformError]] = {
    401: TokenExpired,
    403: PlatformConfigError,
    408: TransientError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or unusable."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None


def error_for_code(
    table: Mapping[Any, ErrorEntry], code: Any, message: str, **context: Any
) -> PlatformError:
    """The hub error for one platform body code (``PermanentError`` when the table lacks it)."""
    entry = table.get(code, PermanentError)
    cls, block = entry if isinstance(entry, tuple) else (entry, None)
    if issubclass(cls, RateLimited):
        return cls(message, retry_after=context.pop("retry_after", None) or block, code=code, **context)
    context.pop("retry_after", None)
    return cls(message, code=code, **context)


def response_json(response: httpx.Response, *, platform: str, account_id: str | None = None) -> Any:
    """The response body as JSON, or a :class:`PermanentError` naming platform and endpoint.

    The parsed body is kept on the response, so the error check and the adapter parse it once.
    """
    cached = response.extensions.get("siyu.json", _MISSING)
    if cached is not _MISSING:
        return cached
    try:
        # pydantic-core's parser, about twice json.loads's speed; it keeps one copy of each key (a
        # page repeats its items' keys), not of values, which are mostly unique ids and names
        body = from_json(response.content, cache_strings="keys")
        response.extensions["siyu.json"] = body
        return body
    except (ValueError, UnicodeDecodeError):
        raise PermanentError(
            "response is not valid JSON", platform=platform, account_id=account_id,
            endpoint=response.request.url.path, code=response.status_code,
        ) from None


def check_response(source: ErrorSource, response: httpx.Response, *, account_id: str | None = None) -> None:
    """Raise the hub error that ``response`` stands for, if any.

    :param source: the adapter (or a token flow with a table of its own) whose
        :meth:`~hub.Adapter.error_code` finds the body code and whose ``error_codes`` maps it.

    A 5xx is a TransientError and a 429 is RateLimited (honouring Retry-After) whatever the body.
    Otherwise the body code the adapter finds is looked up in its ``error_codes`` table; failing
    that, a 4xx maps by status (401 TokenExpired, 403 PlatformConfigError, 408 TransientError,
    others PermanentError).
    """
    platform = source.platform
    endpoint = response.request.url.path
    context: dict[str, Any] = dict(platform=platform, account_id=account_id, endpoint=endpoint)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    status = response.status_code
    if status >= 500:
        raise TransientError(f"HTTP {status}", code=status, **context)
    if status == 429:
        raise RateLimited(f"HTTP {status}", retry_after=retry_after, code=status, **context)
    try:
        found = source.error_code(response)
    except PermanentError:
        if status < 400:
            raise
        found = None  # not the platform's body (an HTML error page, say): the HTTP status decides
    if found is not None:
        code, message = found
        raise error_for_code(source.error_codes or {}, code, message or "platform error", retry_after=retry_after, **context)
    if status >= 400:
        raise STATUS_ERRORS.get(status, PermanentError)(f"HTTP {status}", code=status, **context)


def as_int(value: Any, default: int = 0) -> int:
    """A whole number a platform may send as ``12``, ``"12"`` or ``12.0``; ``default`` when absent.

    :param value: the field's value.
    :param default: what an absent (``None`` or ``""``) value means.
    :raises ValueError: for anything else that is not a whole number (a boolean, ``"1.5"``, …).
    """
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise ValueError(f"not a whole number: {type(value).__name__}")
