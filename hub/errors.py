"""The hub's error hierarchy.

::

    HubError                      anything the hub reports to a person, one line, no secrets
    ├── ConfigError               bad siyu.toml, a missing env:/file: value, a bad plugin config
    │   └── UnknownPlatform       no installed plugin registers that platform
    ├── PluginError               a plugin broke the contract (duplicate platform, bad adapter, typo'd hook)
    ├── StorageError              the database cannot be reached or used
    │   └── SchemaOutOfDate       migrations are pending: run ``siyu db upgrade``
    ├── NotFound                  a record the caller named does not exist
    ├── LedgerError               a points or member operation was refused; nothing was written
    │   ├── InvalidPosting        zero or negative points, a missing reason or key, a naive time
    │   ├── Overdraw              the debit exceeds the points the member can use
    │   ├── IdempotencyConflict   the key was used before for a different body
    │   ├── AlreadyReversed       the entry was reversed before (an entry is reversed once)
    │   ├── NotReversible         transfers and reversals are not reversed; split or post instead
    │   └── MergeRefused          into itself, into or from a merged member, a fan it lacks
    ├── PlatformError             a platform refused or failed a call
    │   ├── RateLimited           retry after ``retry_after`` seconds
    │   ├── TokenExpired          refresh the token once, then re-send
    │   ├── TransientError        retry with backoff (timeouts, 5xx, "system busy")
    │   ├── PermanentError        do not retry (bad request, malformed response)
    │   └── PlatformConfigError   credentials or permissions are wrong; do not retry
    └── WebhookRejected           a callback failed verification; nothing was stored

Retryability is decided by the class: :attr:`PlatformError.retryable`.  Context travels in
keyword-only attributes.  Messages never carry secrets or phone numbers: callers pass identifiers
and codes, never payloads.
"""

from __future__ import annotations

__all__ = [
    "AlreadyReversed",
    "ConfigError",
    "HubError",
    "IdempotencyConflict",
    "InvalidPosting",
    "LedgerError",
    "MergeRefused",
    "NotFound",
    "NotReversible",
    "Overdraw",
    "PermanentError",
    "PlatformConfigError",
    "PlatformError",
    "PluginError",
    "RateLimited",
    "SchemaOutOfDate",
    "StorageError",
    "TokenExpired",
    "TransientError",
    "UnknownPlatform",
    "WebhookRejected",
]


class HubError(Exception):
    """Base of every error the hub reports; its message is one line meant for a person."""


class ConfigError(HubError):
    """The configuration is wrong; ``problems`` lists every ``(location, message)`` found."""

    def __init__(self, message: str, *, problems: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


class UnknownPlatform(ConfigError):
    """No installed plugin registers the platform."""

    def __init__(self, platform: str, *, known: list[str] | None = None) -> None:
        known_text = ", ".join(sorted(known or [])) or "none"
        super().__init__(f"unknown platform {platform!r} (installed: {known_text})")
        self.platform = platform


class PluginError(HubError):
    """A plugin broke the contract; ``plugin`` names it."""

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(f"plugin {plugin!r}: {message}" if plugin else message)
        self.plugin = plugin


class StorageError(HubError):
    """The database cannot be reached or used."""


class SchemaOutOfDate(StorageError):
    """The database schema is behind this version of siyu-hub."""


class NotFound(HubError):
    """A record the caller named does not exist."""


class LedgerError(HubError):
    """A points or member operation was refused; the transaction wrote nothing.

    :param member_id: the member concerned, when there is one.
    :param entry_id: the ledger entry concerned, when there is one.
    """

    def __init__(self, message: str, *, member_id: int | None = None, entry_id: int | None = None) -> None:
        super().__init__(message)
        self.member_id = member_id
        self.entry_id = entry_id


class InvalidPosting(LedgerError):
    """The request itself is wrong: zero or negative points, no reason, no key, a naive time."""


class Overdraw(LedgerError):
    """The debit is larger than the points the member can use; ``available`` says how many."""

    def __init__(self, message: str, *, available: int, **context: int | None) -> None:
        super().__init__(message, **context)
        self.available = available


class IdempotencyConflict(LedgerError):
    """The idempotency key was used before for a different body; ``key`` names it."""

    def __init__(self, message: str, *, key: str, **context: int | None) -> None:
        super().__init__(message, **context)
        self.key = key


class AlreadyReversed(LedgerError):
    """The entry has a reversal already; an entry is reversed at most once."""


class NotReversible(LedgerError):
    """Transfers (undo the merge or split instead) and reversals cannot be reversed."""


class MergeRefused(LedgerError):
    """A merge or split that would break the member graph: into itself, into a merged member, …"""


class PlatformError(HubError):
    """A platform refused or failed a call.

    :param platform: the platform's name.
    :param account_id: the account the call was made for.
    :param code: the platform's own error code (body code or HTTP status), if any.
    :param endpoint: the path that was called, without its query string.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        platform: str | None = None,
        account_id: str | None = None,
        code: int | str | None = None,
        endpoint: str | None = None,
    ) -> None:
        where = " ".join(p for p in (platform, account_id, endpoint) if p)
        prefix = f"[{where}] " if where else ""
        suffix = f" (code {code})" if code is not None else ""
        super().__init__(f"{prefix}{message}{suffix}")
        self.platform = platform
        self.account_id = account_id
        self.code = code
        self.endpoint = endpoint


class RateLimited(PlatformError):
    """The platform throttled us; wait ``retry_after`` seconds (``None``: back off)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **context: object) -> None:
        super().__init__(message, **context)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TokenExpired(PlatformError):
    """The access token is expired or invalid; refresh it once and re-send."""


class TransientError(PlatformError):
    """A fault that may pass: a timeout, a 5xx, a "system busy" code."""

    retryable = True


class PermanentError(PlatformError):
    """A fault that will not pass by retrying: a bad request or a malformed response."""


class PlatformConfigError(PlatformError):
    """Credentials or permissions are wrong; an operator must act."""


class WebhookRejected(HubError):
    """A callback failed verification (signature, decryption, freshness, replay)."""

    def __init__(self, message: str, *, status_code: int = 400) -> None:
        super().__init__(message)
        self.status_code = status_code
