"""siyu-hub: the public API for plugin authors (the plugin SDK).

Import what a plugin needs from here (and canonical records from :mod:`schemas`; test helpers
and the conformance kit from :mod:`hub.testing`); everything else in ``hub`` may change between
releases, and a test fails when a built-in plugin imports a ``hub`` sub-module.

- the contract: :class:`Adapter`, :class:`AdapterConfig`, :class:`Page`, :class:`PushResult`,
  :class:`WebhookRequest`, :class:`WebhookResult`, :class:`Capability`, :data:`hookimpl`;
- tokens: :class:`TokenAuth` (override points listed on it), :class:`GrantTokenAuth` and
  :class:`GrantConfig` (tokens a merchant's authorisation issued), :class:`Token`,
  :class:`TokenStore`, :class:`MemoryTokenStore`, :func:`expires_in`;
- responses: :func:`check_response`, :func:`response_json`, :func:`error_for_code`,
  :data:`ErrorEntry`, :func:`as_int`;
- sandboxes: :class:`SandboxSpec`, and the people they share: :class:`Person`,
  :class:`Population`, :func:`population`;
- errors (the tree is drawn in :mod:`hub.errors`) and events for ``track_event``.
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING, Any as _Any

# Every name is imported when first used (PEP 562), so ``import hub`` stays cheap for commands
# that need none of it (``siyu --help``); ``hub.Adapter`` and ``from hub import Adapter`` work as ever.
_ERRORS = (
    "AlreadyReversed", "ConfigError", "HubError", "IdempotencyConflict", "InvalidPosting", "LedgerError",
    "MergeRefused", "NotFound", "NotReversible", "Overdraw", "PermanentError", "PlatformConfigError",
    "PlatformError", "PluginError", "RateLimited", "SchemaOutOfDate", "StorageError", "TokenExpired",
    "TransientError", "UnknownPlatform", "WebhookRejected",
)
_SOURCES: dict[str, tuple[str, ...]] = {
    "hub.adapter": ("Adapter", "AdapterConfig", "Page", "PushResult", "WebhookRequest", "WebhookResult"),
    "hub.errors": _ERRORS,
    "hub.events": ("Event", "FanUpserted", "MembersMerged", "MessageReceived", "PointsPosted"),
    "hub.platform.auth": ("GrantConfig", "GrantTokenAuth", "TokenAuth"),
    "hub.platform.tokens": ("MemoryTokenStore", "Token", "TokenStore", "expires_in"),
    "hub.platform.errormap": ("ErrorEntry", "as_int", "check_response", "error_for_code", "response_json"),
    "hub.platform.population": ("Person", "Population", "population"),
    "hub.platform.sandbox": ("SandboxSpec",),
    "schemas": ("Capability",),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

if _TYPE_CHECKING:  # pragma: no cover - what type checkers and IDEs see
    from hub.adapter import Adapter, AdapterConfig, Page, PushResult, WebhookRequest, WebhookResult
    from hub.errors import (
        AlreadyReversed,
        ConfigError,
        HubError,
        IdempotencyConflict,
        InvalidPosting,
        LedgerError,
        MergeRefused,
        NotFound,
        NotReversible,
        Overdraw,
        PermanentError,
        PlatformConfigError,
        PlatformError,
        PluginError,
        RateLimited,
        SchemaOutOfDate,
        StorageError,
        TokenExpired,
        TransientError,
        UnknownPlatform,
        WebhookRejected,
    )
    from hub.events import Event, FanUpserted, MembersMerged, MessageReceived, PointsPosted
    from hub.platform.auth import GrantConfig, GrantTokenAuth, TokenAuth
    from hub.platform.errormap import ErrorEntry, as_int, check_response, error_for_code, response_json
    from hub.platform.population import Person, Population, population
    from hub.platform.sandbox import SandboxSpec
    from hub.platform.tokens import MemoryTokenStore, Token, TokenStore, expires_in
    from schemas import Capability

    __version__: str
    hookimpl: _Any
    """Marker for hook implementations: ``@hub.hookimpl``."""


def __getattr__(name: str) -> _Any:
    """Import an exported name on first use and keep it in the module."""
    if name in _MODULE_OF:
        import importlib

        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    elif name == "hookimpl":
        import pluggy

        value = pluggy.HookimplMarker("siyu")
    elif name == "__version__":
        from importlib import metadata

        try:
            value = metadata.version("siyu-hub")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
            value = "0+unknown"
    else:
        raise AttributeError(f"module 'hub' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "Adapter",
    "AdapterConfig",
    "AlreadyReversed",
    "Capability",
    "ConfigError",
    "ErrorEntry",
    "Event",
    "FanUpserted",
    "GrantConfig",
    "GrantTokenAuth",
    "HubError",
    "IdempotencyConflict",
    "InvalidPosting",
    "LedgerError",
    "MembersMerged",
    "MemoryTokenStore",
    "MergeRefused",
    "MessageReceived",
    "NotFound",
    "NotReversible",
    "Overdraw",
    "Page",
    "PermanentError",
    "Person",
    "PlatformConfigError",
    "PlatformError",
    "PluginError",
    "PointsPosted",
    "Population",
    "PushResult",
    "RateLimited",
    "SandboxSpec",
    "SchemaOutOfDate",
    "StorageError",
    "Token",
    "TokenAuth",
    "TokenExpired",
    "TokenStore",
    "TransientError",
    "UnknownPlatform",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResult",
    "__version__",
    "as_int",
    "check_response",
    "error_for_code",
    "expires_in",
    "hookimpl",
    "population",
    "response_json",
]
