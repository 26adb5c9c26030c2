"""siyu-hub: the public API for plugin authors.

Import what a plugin needs from here (and canonical records from :mod:`schemas`); everything else
in ``hub`` may change between releases.
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
    "Event",
    "FanUpserted",
    "HubError",
    "IdempotencyConflict",
    "InvalidPosting",
    "LedgerError",
    "MembersMerged",
    "MergeRefused",
    "MessageReceived",
    "NotFound",
    "NotReversible",
    "Overdraw",
    "Page",
    "PermanentError",
    "PlatformConfigError",
    "PlatformError",
    "PluginError",
    "PointsPosted",
    "PushResult",
    "RateLimited",
    "SchemaOutOfDate",
    "StorageError",
    "TokenExpired",
    "TransientError",
    "UnknownPlatform",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResult",
    "__version__",
    "hookimpl",
]
