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

from importlib import metadata as _metadata

import pluggy as _pluggy

from hub.adapter import (
    Adapter,
    AdapterConfig,
    Page,
    PushResult,
    WebhookRequest,
    WebhookResult,
)
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
from hub.platform.tokens import MemoryTokenStore, Token, TokenStore, expires_in
from hub.platform.errormap import ErrorEntry, as_int, check_response, error_for_code, response_json
from hub.platform.population import Person, Population, population
from hub.platform.sandbox import SandboxSpec
from schemas import Capability

try:
    __version__ = _metadata.version("siyu-hub")
except _metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

hookimpl = _pluggy.HookimplMarker("siyu")
"""Marker for hook implementations: ``@hub.hookimpl``."""

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
