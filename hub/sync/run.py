"""One sync run: every selected account's streams, then what the new records ask for.

:func:`run_sync` is the one entry point of ``siyu sync`` and ``siyu demo`` (and of anything else
that syncs from blocking code): it checks the selection, syncs the accounts
(:func:`hub.sync.engine.sync_accounts`) and applies the pending work
(:func:`hub.sync.apply.apply_pending`).  It leaves the interpreter as it found it; a long-running
command enters :func:`hub.sync.tuning.tuned_for_sync` around it.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from hub.config import Settings
from hub.errors import ConfigError
from hub.plugins import PluginHost
from hub.sync.engine import STREAMS, ProgressCallback, StreamSummary, sync_accounts

if TYPE_CHECKING:
    from hub.sync.apply import ApplySummary

__all__ = ["SyncRun", "check_selection", "run_sync"]


@dataclass
class SyncRun:
    """What one :func:`run_sync` did: a summary per account and stream, and what was applied
    (``None`` when applying was not asked for)."""

    streams: list[StreamSummary]
    applied: ApplySummary | None = None

    @property
    def ok(self) -> bool:
        """Whether every stream ended without an error."""
        return not any(s.error for s in self.streams)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "streams": [s.as_dict() for s in self.streams],
                "apply": asdict(self.applied) if self.applied else None}


def check_selection(host: PluginHost, settings: Settings, *, platform: str | None = None,
                    account_id: str | None = None, stream: str | None = None) -> None:
    """Refuse a selection that names nothing to sync.

    :raises ConfigError: an unknown stream, or no configured account matches.
    :raises UnknownPlatform: an unknown platform.
    """
    if stream is not None and stream not in STREAMS:
        raise ConfigError(f"unknown stream {stream!r} (streams: {', '.join(STREAMS)})")
    if platform is not None:
        host.adapter_class(platform)
    if not any((platform is None or a.platform == platform) and (account_id is None or a.id == account_id)
               for a in settings.accounts):
        raise ConfigError("no configured account matches --platform/--account")


def run_sync(
    host: PluginHost,
    settings: Settings,
    engine: sa.Engine,
    *,
    platform: str | None = None,
    account_id: str | None = None,
    stream: str | None = None,
    full: bool = False,
    max_pages: int | None = None,
    concurrency: int = 4,
    apply: bool = True,
    progress: ProgressCallback | None = None,
) -> SyncRun:
    """Sync the selected accounts' streams, then (``apply``) stitch members and post points.

    Blocking: it runs its own event loop, so call it from synchronous code.  A stream's error
    ends that stream only; it is in its summary and makes :attr:`SyncRun.ok` false.

    :param platform: only this platform's accounts; :param account_id: only this account id;
        :param stream: only this stream (see :data:`hub.sync.engine.STREAMS`).
    :param full: every stream from the beginning (nothing is duplicated).
    :param max_pages: each stream stops after this many pages (the next run resumes).
    :param concurrency: accounts synced at once.
    :param progress: called after each committed page (platform, account, stream, pages, records).
    :raises ConfigError, UnknownPlatform: see :func:`check_selection`.
    """
    check_selection(host, settings, platform=platform, account_id=account_id, stream=stream)
    streams = asyncio.run(sync_accounts(host, settings, engine, platform=platform, account_id=account_id,
                                        stream=stream, full=full, max_pages=max_pages, concurrency=concurrency,
                                        progress=progress))
    if not apply:
        return SyncRun(streams)
    from hub.sync.apply import apply_pending  # the ledger and stitching: loaded when they are used

    return SyncRun(streams, apply_pending(engine, host, settings))
