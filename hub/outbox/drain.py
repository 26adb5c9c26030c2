"""Draining the outbox: member-card updates and outbound messages, sent once, in order, with retries.

An item's life::

    pending ──claim──▶ sending ──▶ done
       ▲                 │    └──▶ dead ──(siyu outbox retry)──▶ pending
       │                 └─ lease expired (the drainer crashed) ─▶ claimed again
       └──▶ superseded   (a newer card update for the same target exists)

Rules the drainer keeps:

* **Order.**  Items for one target (``card:<member_id>``, a conversation …) of one account are
  sent in ``id`` order: an item waits while an older item of its target is ``pending`` or
  ``sending``.  A ``dead`` item does not hold the others back.
* **Supersede.**  A card update carries the whole card (balance, level), so an older unsent
  ``card_update`` is ``superseded`` by any newer one of its target that is pending, in flight or
  done.  Messages are never superseded: each one is sent.
* **Card numbers.**  A card update is sent to the number its member card has when it is
  claimed (queued earlier, it may carry none, or one the platform has replaced since).  A push
  that learns the card's number (:attr:`hub.adapter.PushResult.card_no`: it opened the card)
  has it recorded on the member card when it is marked ``done``.
* **Once.**  A drainer claims an item before sending it, in one conditional ``UPDATE``
  (``status`` → ``sending``, ``available_at`` → the end of its lease, ``attempts`` + 1), so two
  drainers never send one item at the same time.  The claim's ``attempts`` value is the
  drainer's fencing token: finishing (``done``/``dead``) and lease renewals only apply while the
  row still carries it.  The lease is renewed while the send runs.
* **Crash.**  A drainer that dies leaves its item ``sending`` with a lease that runs out; the next
  drainer claims it again and sends it again.  Pushes are idempotent by contract, so a send that
  reached the platform before the crash does no harm.
* **Failure.**  The send goes through :meth:`hub.platform.account.AccountHandle.call`, under the hub's
  retry policy.  On a permanent error, or when the platform refuses the push, the item is ``dead``
  with ``last_error``; ``siyu outbox retry`` puts it back.  When the policy gives up on a
  transient fault (the platform is down, rate limits, timeouts), a drainer given a horizon
  (``give_up_after``, as ``siyu daemon`` is, from ``[outbox] give_up_after_hours``) puts the item
  back to ``pending``, due again after a capped exponential back-off, until the item is older
  than the horizon; only then is it ``dead``.  Without a horizon it is ``dead`` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa

from hub.adapter import PushResult
from hub.config import AccountSettings, Settings
from hub.errors import HubError, PermanentError, RateLimited, TokenExpired, TransientError
from hub.ledger.cards import CARD_UPDATE
from hub.plugins import PluginHost
from hub.platform.account import AccountHandle, open_account
from schemas import MemberCard, Message
from schemas.tables import FanRow, MemberCardRow, OutboxRow, utcnow

__all__ = [
    "CARD_UPDATE",
    "DEFAULT_LEASE",
    "MESSAGE",
    "STATUSES",
    "SUPERSEDING_KINDS",
    "DrainSummary",
    "Drainer",
    "ItemOutcome",
    "enqueue",
]

log = logging.getLogger("siyu.outbox")

outbox = OutboxRow.__table__
fans = FanRow.__table__
cards = MemberCardRow.__table__
MESSAGE = "message"
STATUSES = ("pending", "sending", "done", "dead", "superseded")
SUPERSEDING_KINDS = frozenset({CARD_UPDATE})
"""Kinds whose newest item carries the whole state, so that older unsent items can be dropped."""
DEFAULT_LEASE = 60.0
MAX_ERROR_LENGTH = 500


def enqueue(conn: sa.Connection, *, platform: str, account_id: str, kind: str, target: str,
            payload: dict[str, Any]) -> int:
    """Queue one item in the caller's transaction; returns its id.

    For a kind in :data:`SUPERSEDING_KINDS`, older pending items of the same target are marked
    ``superseded`` in the same transaction.

    :param conn: the transaction that made the change the item reports.
    :param platform: the platform to send to.
    :param account_id: the account to send through.
    :param kind: ``card_update`` or ``message``.
    :param target: what the item updates; items of one target are sent in order.
    :param payload: a card update's ``member_id``, ``card_no``, ``balance``, ``level``, or a
        :class:`schemas.Message` as JSON.
    """
    now = utcnow()
    if kind in SUPERSEDING_KINDS:
        conn.execute(
            outbox.update()
            .where(outbox.c.platform == platform, outbox.c.account_id == account_id, outbox.c.target == target,
                   outbox.c.kind == kind, outbox.c.status == "pending")
            .values(status="superseded", updated_at=now)
        )
    return conn.execute(
        outbox.insert()
        .values(platform=platform, account_id=account_id, kind=kind, target=target, payload=payload,
                status="pending", attempts=0, available_at=now, inserted_at=now, updated_at=now)
        .returning(outbox.c.id)
    ).scalar_one()


def _ready(now: datetime) -> sa.ColumnElement[bool]:
    """Pending items, and claims whose lease ran out, that are due."""
    return sa.and_(outbox.c.status.in_(("pending", "sending")), outbox.c.available_at <= now)


def _same_target(other: Any) -> sa.ColumnElement[bool]:
    return sa.and_(other.c.platform == outbox.c.platform, other.c.account_id == outbox.c.account_id,
                   other.c.target == outbox.c.target)


def _waits_for_older() -> sa.ColumnElement[bool]:
    older = outbox.alias("older")
    return sa.exists().where(_same_target(older), older.c.id < outbox.c.id,
                             older.c.status.in_(("pending", "sending")))


def _has_newer_state() -> sa.ColumnElement[bool]:
    newer = outbox.alias("newer")
    return sa.exists().where(_same_target(newer), newer.c.kind == outbox.c.kind, newer.c.id > outbox.c.id,
                             newer.c.status.in_(("pending", "sending", "done")))


def _accounts_filter(accounts: list[AccountSettings]) -> sa.ColumnElement[bool]:
    return sa.or_(sa.false(), *(sa.and_(outbox.c.platform == a.platform, outbox.c.account_id == a.id)
                                for a in accounts))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:MAX_ERROR_LENGTH]


@dataclass(frozen=True)
class ItemOutcome:
    """What became of one item in a drain: ``done``, ``dead`` or ``lost`` (its claim was taken over)."""

    id: int
    platform: str
    account_id: str
    kind: str
    target: str
    status: str
    attempts: int
    error: str | None = None


@dataclass
class DrainSummary:
    """What one :meth:`Drainer.drain` did."""

    sent: int = 0
    dead: int = 0
    superseded: int = 0
    lost: int = 0
    deferred: int = 0
    retries: int = 0
    items: list[ItemOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class _Claim:
    id: int
    platform: str
    account_id: str
    kind: str
    target: str
    payload: dict[str, Any]
    token: int
    inserted_at: datetime | None = None


class Drainer:
    """Sends due outbox items of the configured accounts until none is left.

    :param engine: the hub's database.
    :param host: the plugins (adapter classes).
    :param settings: the configuration: accounts and the retry policy.
    :param accounts: drain only these accounts (default: every configured one).
    :param lease: seconds a claim lasts without renewal; a crashed drainer's items wait that long.
    :param transport: the accounts' HTTP transport (a test seam).
    :param clock: the current time (a test seam for lease expiry).
    :param give_up_after: how long a transient failure is retried, counted from the item's
        creation; ``None``: the item is dead once the retry policy gives up.
    :param backoff: ``(first, longest)`` wait in seconds before a deferred item is due again;
        the wait doubles with each claim of the item.
    """

    def __init__(self, engine: sa.Engine, host: PluginHost, settings: Settings, *,
                 accounts: list[AccountSettings] | None = None, lease: float = DEFAULT_LEASE,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], datetime] = utcnow, give_up_after: timedelta | None = None,
                 backoff: tuple[float, float] = (30.0, 1800.0)) -> None:
        self.engine = engine
        self.host = host
        self.settings = settings
        self.accounts = list(settings.accounts if accounts is None else accounts)
        self.lease = timedelta(seconds=lease)
        self.transport = transport
        self.clock = clock
        self.give_up_after = give_up_after
        self.backoff = backoff

    async def drain(self, *, limit: int | None = None) -> DrainSummary:
        """Send due items until none is left (or ``limit`` items were sent or declared dead)."""
        summary = DrainSummary()
        async with contextlib.AsyncExitStack() as stack:
            handles: dict[tuple[str, str], AccountHandle] = {}
            while limit is None or summary.sent + summary.dead < limit:
                claim, superseded = await asyncio.to_thread(self._claim_next)
                summary.superseded += superseded
                if claim is None:
                    break
                key = (claim.platform, claim.account_id)
                if key not in handles:
                    account = next(a for a in self.accounts if (a.platform, a.id) == key)
                    handles[key] = await stack.enter_async_context(
                        open_account(self.host, self.settings, account, engine=self.engine,
                                     transport=self.transport))
                outcome = await self._deliver(handles[key], claim)
                summary.items.append(outcome)
                if outcome.status == "done":
                    summary.sent += 1
                elif outcome.status == "dead":
                    summary.dead += 1
                elif outcome.status == "pending":
                    summary.deferred += 1
                else:
                    summary.lost += 1
            summary.retries = sum(h.retries.total for h in handles.values())
        return summary

    def _claim_next(self) -> tuple[_Claim | None, int]:
        """Claim the oldest due item whose target has nothing older outstanding.

        A card update on the way that a newer one of its target makes useless is marked
        ``superseded`` instead; returns the claim (``None``: nothing is due) and how many were.
        Every write is a conditional update of one row, so concurrent drainers cannot deadlock.
        """
        superseded = 0
        while True:
            now = self.clock()
            eligible = sa.and_(_ready(now), _accounts_filter(self.accounts), sa.not_(_waits_for_older()))
            with self.engine.begin() as conn:
                candidate = conn.execute(
                    sa.select(outbox.c.id, outbox.c.kind).where(eligible).order_by(outbox.c.id).limit(1)
                ).one_or_none()
                if candidate is None:
                    return None, superseded
                if candidate.kind in SUPERSEDING_KINDS and conn.execute(
                    outbox.update()
                    .where(outbox.c.id == candidate.id, eligible, _has_newer_state())
                    .values(status="superseded", updated_at=now)
                ).rowcount:
                    superseded += 1
                    continue
                row = conn.execute(
                    outbox.update()
                    .where(outbox.c.id == candidate.id, eligible)
                    .values(status="sending", available_at=now + self.lease, attempts=outbox.c.attempts + 1,
                            updated_at=now)
                    .returning(outbox.c.platform, outbox.c.account_id, outbox.c.kind, outbox.c.target,
                               outbox.c.payload, outbox.c.attempts, outbox.c.inserted_at)
                ).one_or_none()
                payload = _current_card_no(conn, row) if row is not None else None
            if row is not None:  # else another drainer took it first: look again
                claim = _Claim(candidate.id, row.platform, row.account_id, row.kind, row.target,
                               payload or row.payload, row.attempts, row.inserted_at)
                return claim, superseded

    def _finish(self, claim: _Claim, status: str, error: str | None, due: datetime | None = None,
                card_no: str | None = None) -> bool:
        """Record the send's outcome; a card update the platform took also becomes what the hub's
        member card says was pushed (its balance and level, and ``card_no`` when the push learned
        the card's number and the card still has the number it was sent to), in the same
        transaction."""
        now = self.clock()
        with self.engine.begin() as conn:
            finished = conn.execute(
                outbox.update()
                .where(outbox.c.id == claim.id, outbox.c.status == "sending", outbox.c.attempts == claim.token)
                .values(status=status, last_error=error, available_at=due or now, updated_at=now)
            ).rowcount == 1
            if finished and status == "done" and claim.kind == CARD_UPDATE:
                payload = claim.payload
                values: dict[str, Any] = {"balance": payload["balance"], "level": payload["level"], "updated_at": now}
                if card_no:
                    values["card_no"] = sa.case((cards.c.card_no.is_not_distinct_from(payload.get("card_no")), card_no),
                                                else_=cards.c.card_no)
                conn.execute(cards.update().where(
                    cards.c.member_id == payload["member_id"], cards.c.platform == claim.platform,
                    cards.c.account_id == claim.account_id,
                ).values(**values))
                if card_no and payload.get("card_no") not in (None, card_no):
                    # the fan that reported the card (as not opened yet) holds its number from now on
                    conn.execute(fans.update().where(
                        fans.c.platform == claim.platform, fans.c.account_id == claim.account_id,
                        fans.c.card_no == payload["card_no"],
                    ).values(card_no=card_no, updated_at=now))
            return finished

    def _renew(self, claim: _Claim) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == claim.id, outbox.c.status == "sending", outbox.c.attempts == claim.token)
                .values(available_at=now + self.lease)
            )

    async def _keep_lease(self, claim: _Claim) -> None:
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            await asyncio.to_thread(self._renew, claim)

    async def _deliver(self, handle: AccountHandle, claim: _Claim) -> ItemOutcome:
        keeper = asyncio.create_task(self._keep_lease(claim))
        status, error, due, card_no = "done", None, None, None
        try:
            result = await _send(handle, claim)
            card_no = result.card_no
            if not result.accepted:
                status, error = "dead", f"refused by the platform: {result.detail or 'no detail'}"[:MAX_ERROR_LENGTH]
        except (TransientError, RateLimited, TokenExpired) as exc:
            status, error = "dead", _one_line(exc)
            due = self._retry_at(claim)
            if due is not None:
                status = "pending"
        except HubError as exc:
            status, error = "dead", _one_line(exc)
        except Exception as exc:  # noqa: BLE001 - an adapter bug kills the item, not the drainer
            log.exception("outbox item %d: the adapter failed", claim.id)
            status, error = "dead", _one_line(exc)
        except BaseException:  # cancelled or interrupted: the send may be incomplete, free the item
            keeper.cancel()
            self._release(claim)
            raise
        finally:
            keeper.cancel()
        finished = await asyncio.to_thread(self._finish, claim, status, error, due, card_no)
        if not finished:
            log.warning("outbox item %d: its claim expired during the send; another drainer took it", claim.id)
            status = "lost"
        log.info("outbox item %d %s %s/%s %s: %s", claim.id, claim.kind, claim.platform, claim.account_id,
                 claim.target, status)
        return ItemOutcome(claim.id, claim.platform, claim.account_id, claim.kind, claim.target, status,
                           claim.token, error)

    def _retry_at(self, claim: _Claim) -> datetime | None:
        """When a transiently failed item is due again, or ``None`` when it is past the horizon."""
        if self.give_up_after is None or claim.inserted_at is None:
            return None
        now = self.clock()
        if now - claim.inserted_at >= self.give_up_after:
            return None
        first, longest = self.backoff
        wait = min(longest, first * 2 ** min(max(claim.token - 1, 0), 30))
        return min(now + timedelta(seconds=wait), claim.inserted_at + self.give_up_after)

    def _release(self, claim: _Claim) -> None:
        now = self.clock()
        with self.engine.begin() as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.id == claim.id, outbox.c.status == "sending", outbox.c.attempts == claim.token)
                .values(status="pending", available_at=now, updated_at=now)
            )


def _current_card_no(conn: sa.Connection, row: Any) -> dict[str, Any] | None:
    """A card update's payload with the number its card has now, when that differs from the one
    it was queued with (a push that opened the card since gave it its number); else ``None``."""
    if row.kind != CARD_UPDATE or not isinstance(row.payload, dict) or "member_id" not in row.payload:
        return None
    now_no = conn.execute(sa.select(cards.c.card_no).where(
        cards.c.member_id == row.payload["member_id"], cards.c.platform == row.platform,
        cards.c.account_id == row.account_id)).scalar_one_or_none()
    if now_no is None or now_no == row.payload.get("card_no"):
        return None
    return {**row.payload, "card_no": now_no}


async def _send(handle: AccountHandle, claim: _Claim) -> PushResult:
    """Build the canonical record the item describes and push it through the retry policy."""
    account = handle.account
    if claim.kind == CARD_UPDATE:
        p = claim.payload
        card = MemberCard(member_id=p["member_id"], platform=account.platform, account_id=account.account_id,
                          card_no=p.get("card_no"), balance=p["balance"], level=p["level"])
        result = await handle.call("push_card", card)
    elif claim.kind == MESSAGE:
        result = await handle.call("send_message", Message.model_validate(claim.payload))
    else:
        raise PermanentError(f"outbox item {claim.id}: unknown kind {claim.kind!r}",
                             platform=account.platform, account_id=account.account_id)
    assert isinstance(result, PushResult), f"{type(handle.adapter).__name__} returned {type(result).__name__}"
    return result
