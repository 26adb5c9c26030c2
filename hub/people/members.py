"""Merging and splitting members, audited and reversible, with their points.

A merge moves every fan, lot and card of the merged member to the survivor and records the
balance that moved as a ``transfer_out`` / ``transfer_in`` pair of ledger entries; the merged
member keeps a pointer to its survivor (members merged into it earlier are re-pointed, so every
pointer names a live member).  A split moves chosen fans, the lots those fans earned and their
cards to a new member, with the same pair of entries.  Each change is one ``member_changes`` row
saying what moved, why, when, by whom or by which rule; :func:`undo` reverses one, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from hub.errors import InvalidPosting, MergeRefused, NotFound
from hub.events import MembersMerged
from hub.ledger.cards import LedgerPolicy, card_target, enqueue_card_updates
from hub.ledger.lots import apply_change, body_hash, insert_entry, lots, members
from hub.ledger.postings import DEFAULT_POLICY
from hub.ledger.tx import lock_members, resolve_member, run_write
from schemas import LedgerKind
from schemas.tables import FanRow, MemberCardRow, MemberChangeRow, OutboxRow, utcnow

__all__ = ["Change", "FanRef", "create_member", "merge", "merge_in", "refresh_tiers", "split", "undo"]

fans = FanRow.__table__
cards = MemberCardRow.__table__
outbox = OutboxRow.__table__
changes = MemberChangeRow.__table__


@dataclass(frozen=True)
class FanRef:
    """A fan named the way people name it: ``PLATFORM:ACCOUNT:UID``."""

    platform: str
    account_id: str
    platform_uid: str

    @classmethod
    def parse(cls, text: str) -> FanRef:
        parts = text.split(":", 2)
        if len(parts) != 3 or not all(p.strip() for p in parts):
            raise InvalidPosting(f"a fan is written PLATFORM:ACCOUNT:UID, got {text!r}")
        return cls(*(p.strip() for p in parts))

    def __str__(self) -> str:
        return f"{self.platform}:{self.account_id}:{self.platform_uid}"


@dataclass(frozen=True)
class Change:
    """One audited merge, split or undo: what moved from ``member_id`` to ``other_member_id``."""

    change_id: int
    action: str
    member_id: int
    other_member_id: int
    fan_ids: list[int]
    lot_ids: list[int]
    points: int
    lifetime_points: int
    reason: str
    actor: str
    rule: str | None
    undoes_change_id: int | None


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidPosting("a reason is required for a merge or split")
    return reason.strip()


def create_member(conn: sa.Connection) -> int:
    now = utcnow()
    return conn.execute(
        members.insert().values(level=0, lifetime_points=0, balance=0, inserted_at=now, updated_at=now)
        .returning(members.c.member_id)
    ).scalar_one()


def _move(
    conn: sa.Connection, *, action: str, source: Any, target: Any, fan_ids: list[int], lot_ids: list[int],
    lifetime: int, reason: str, actor: str, rule: str | None, undoes: int | None, policy: LedgerPolicy,
    card_filter: sa.ColumnElement[bool] | None,
) -> Change:
    """Move fans, lots and cards from ``source`` to ``target`` (both locked) and audit it."""
    points = int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(lots.c.remaining), 0)).where(
        lots.c.lot_id.in_(lot_ids), lots.c.member_id == source.member_id)).scalar_one()) if lot_ids else 0
    change_id = conn.execute(changes.insert().values(
        action=action, member_id=source.member_id, other_member_id=target.member_id, fan_ids=fan_ids,
        lot_ids=lot_ids, points=points, lifetime_points=lifetime, reason=reason, actor=actor, rule=rule,
        undoes_change_id=undoes, created_at=utcnow(),
    ).returning(changes.c.id)).scalar_one()
    if fan_ids:
        conn.execute(fans.update().where(fans.c.id.in_(fan_ids)).values(member_id=target.member_id, updated_at=utcnow()))
    if lot_ids:
        conn.execute(lots.update().where(lots.c.lot_id.in_(lot_ids), lots.c.member_id == source.member_id)
                     .values(member_id=target.member_id))
    if card_filter is not None:
        taken = {(c.platform, c.account_id) for c in conn.execute(
            sa.select(cards.c.platform, cards.c.account_id).where(cards.c.member_id == target.member_id))}
        for card in conn.execute(sa.select(cards.c.id, cards.c.platform, cards.c.account_id).where(
                cards.c.member_id == source.member_id, card_filter)).all():
            if (card.platform, card.account_id) not in taken:
                conn.execute(cards.update().where(cards.c.id == card.id).values(member_id=target.member_id))
            elif action == "merge":
                # the survivor already holds a card on that account: it shows the unified balance,
                # and this one is closed rather than pushed an empty balance
                conn.execute(cards.update().where(cards.c.id == card.id).values(status="closed", updated_at=utcnow()))
                conn.execute(outbox.update().where(
                    outbox.c.platform == card.platform, outbox.c.account_id == card.account_id,
                    outbox.c.target == card_target(source.member_id), outbox.c.status == "pending",
                ).values(status="superseded", updated_at=utcnow()))
    if points:
        digest = body_hash({"op": "transfer", "change": change_id})
        for member, sign, kind in ((source, -1, LedgerKind.TRANSFER_OUT), (target, 1, LedgerKind.TRANSFER_IN)):
            insert_entry(conn, key=f"member-change:{change_id}:{kind}", member_id=member.member_id, kind=kind,
                         points=sign * points, reason=f"{action} #{change_id}: {reason}", digest=digest)
    for member, sign in ((source, -1), (target, 1)):
        balance, _, level = apply_change(conn, member, points=sign * points, lifetime=sign * lifetime,
                                         policy=policy, queue_cards=False)
        enqueue_card_updates(conn, member.member_id, balance=balance, level=level)
    return _change(conn, change_id)


def _change(conn: sa.Connection, change_id: int) -> Change:
    row = conn.execute(sa.select(changes).where(changes.c.id == change_id)).one()
    return Change(row.id, row.action, row.member_id, row.other_member_id, list(row.fan_ids), list(row.lot_ids),
                  row.points, row.lifetime_points, row.reason, row.actor, row.rule, row.undoes_change_id)


def merge_in(
    conn: sa.Connection, survivor_id: int, merged_id: int, *, reason: str, actor: str, rule: str | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY, undoes: int | None = None,
) -> Change:
    """Merge ``merged_id`` into ``survivor_id`` inside an open write transaction (see :func:`merge`)."""
    reason = _reason(reason)
    if survivor_id == merged_id:
        raise MergeRefused(f"cannot merge member {survivor_id} into itself", member_id=survivor_id)
    rows = lock_members(conn, [survivor_id, merged_id])
    for member_id in (survivor_id, merged_id):
        if rows[member_id].merged_into is not None:
            raise MergeRefused(f"member {member_id} was merged into member {rows[member_id].merged_into}",
                               member_id=member_id)
    source, target = rows[merged_id], rows[survivor_id]
    fan_ids = list(conn.execute(sa.select(fans.c.id).where(fans.c.member_id == merged_id).order_by(fans.c.id)).scalars())
    lot_ids = list(conn.execute(sa.select(lots.c.lot_id).where(lots.c.member_id == merged_id).order_by(lots.c.lot_id)).scalars())
    change = _move(conn, action="merge", source=source, target=target, fan_ids=fan_ids, lot_ids=lot_ids,
                   lifetime=source.lifetime_points, reason=reason, actor=actor, rule=rule, undoes=undoes,
                   policy=policy, card_filter=sa.true())
    conn.execute(members.update().where(members.c.merged_into == merged_id).values(merged_into=survivor_id))
    conn.execute(members.update().where(members.c.member_id == merged_id).values(merged_into=survivor_id, updated_at=utcnow()))
    return change


def merge(
    engine: sa.Engine, survivor_id: int, merged_id: int, *, reason: str, actor: str, rule: str | None = None,
    policy: LedgerPolicy = DEFAULT_POLICY, host: Any = None,
) -> Change:
    """Merge member ``merged_id`` into ``survivor_id``, moving its fans, points and cards.

    :param survivor_id: the member that stays.
    :param merged_id: the member that goes; it will point to the survivor.
    :param reason: why, for the audit.
    :param actor: who asked (a person, ``cli``, ``stitch``).
    :param rule: the rule that decided it, for automatic merges (``stitch:phone``).
    :raises NotFound: either member does not exist.
    :raises MergeRefused: the same member twice, or either one is already merged.
    """
    change = run_write(engine, lambda conn: merge_in(conn, survivor_id, merged_id, reason=reason, actor=actor,
                                                      rule=rule, policy=policy))
    if host is not None:
        host.hook.track_event(event=MembersMerged(survivor=survivor_id, merged=merged_id, reason=change.reason))
    return change


def split(
    engine: sa.Engine, member_id: int, fan_refs: list[FanRef], *, reason: str, actor: str,
    policy: LedgerPolicy = DEFAULT_POLICY,
) -> Change:
    """Move ``fan_refs`` out of ``member_id`` into a new member, with the points they earned.

    The lots those fans' activity opened go with them (their balance as a transfer pair of
    entries), and so does the lifetime those lots earned; cards on a platform account where the
    member keeps no other fan go too.

    :raises NotFound: the member or a fan does not exist.
    :raises MergeRefused: the member is merged, or a fan is not one of its fans.
    """
    reason = _reason(reason)
    if not fan_refs:
        raise InvalidPosting("name at least one fan to split off")

    def work(conn: sa.Connection) -> Change:
        source = lock_members(conn, [member_id])[member_id]
        if source.merged_into is not None:
            raise MergeRefused(f"member {member_id} was merged into member {source.merged_into}; split that one",
                               member_id=member_id)
        fan_rows = []
        for ref in fan_refs:
            row = conn.execute(sa.select(fans.c.id, fans.c.member_id, fans.c.platform, fans.c.account_id).where(
                fans.c.platform == ref.platform, fans.c.account_id == ref.account_id,
                fans.c.platform_uid == ref.platform_uid)).first()
            if row is None:
                raise NotFound(f"no fan {ref}")
            if row.member_id != member_id:
                raise MergeRefused(f"fan {ref} is not a fan of member {member_id}", member_id=member_id)
            fan_rows.append(row)
        fan_ids = sorted({f.id for f in fan_rows})
        target = lock_members(conn, [create_member(conn)])
        target_row = next(iter(target.values()))
        held = conn.execute(sa.select(lots.c.lot_id, lots.c.earned).where(
            lots.c.member_id == member_id, lots.c.fan_id.in_(fan_ids)).order_by(lots.c.lot_id)).all()
        lifetime = min(source.lifetime_points, sum(lot.earned for lot in held))
        staying = {(f.platform, f.account_id) for f in conn.execute(sa.select(fans.c.platform, fans.c.account_id).where(
            fans.c.member_id == member_id, fans.c.id.not_in(fan_ids)))}
        leaving = {(f.platform, f.account_id) for f in fan_rows} - staying
        card_filter = sa.or_(*(sa.and_(cards.c.platform == p, cards.c.account_id == a) for p, a in sorted(leaving))) \
            if leaving else None
        return _move(conn, action="split", source=source, target=target_row, fan_ids=fan_ids,
                     lot_ids=[lot.lot_id for lot in held], lifetime=lifetime, reason=reason, actor=actor, rule=None,
                     undoes=None, policy=policy, card_filter=card_filter)

    return run_write(engine, work)


def undo(engine: sa.Engine, change_id: int, *, reason: str, actor: str, policy: LedgerPolicy = DEFAULT_POLICY) -> Change:
    """Undo a merge or a split, once.

    Undoing a split merges the split-off member back.  Undoing a merge revives the merged member
    and moves back the fans and lots the merge moved that its survivor still holds.

    :raises NotFound: no such change.
    :raises MergeRefused: the change was undone already, is itself an undo, or the members it
        names have since been merged elsewhere.
    """
    reason = _reason(reason)

    def work(conn: sa.Connection) -> Change:
        row = conn.execute(sa.select(changes).where(changes.c.id == change_id)).first()
        if row is None:
            raise NotFound(f"no member change {change_id}")
        if row.undoes_change_id is not None:
            raise MergeRefused(f"change {change_id} is itself an undo; merge or split again instead")
        done = conn.execute(sa.select(changes.c.id).where(changes.c.undoes_change_id == change_id)).first()
        if done is not None:
            raise MergeRefused(f"change {change_id} was undone by change {done.id}")
        if row.action == "split":
            return merge_in(conn, row.member_id, row.other_member_id, reason=reason, actor=actor,
                            rule=f"undo:{change_id}", policy=policy, undoes=change_id)
        survivor = resolve_member(conn, row.other_member_id)
        revived = lock_members(conn, [row.member_id])[row.member_id]
        if revived.merged_into != survivor.member_id:
            raise MergeRefused(f"member {row.member_id} is no longer merged into {survivor.member_id}")
        conn.execute(members.update().where(members.c.member_id == row.member_id).values(merged_into=None))
        revived = lock_members(conn, [row.member_id])[row.member_id]
        fan_ids = list(conn.execute(sa.select(fans.c.id).where(
            fans.c.id.in_(row.fan_ids or [-1]), fans.c.member_id == survivor.member_id)).scalars())
        lot_rows = conn.execute(sa.select(lots.c.lot_id, lots.c.earned).where(
            lots.c.lot_id.in_(row.lot_ids or [-1]), lots.c.member_id == survivor.member_id)).all()
        lifetime = min(survivor.lifetime_points, row.lifetime_points)
        return _move(conn, action="unmerge", source=survivor, target=revived, fan_ids=sorted(fan_ids),
                     lot_ids=sorted(lot.lot_id for lot in lot_rows), lifetime=lifetime, reason=reason, actor=actor,
                     rule=f"undo:{change_id}", undoes=change_id, policy=policy, card_filter=None)

    return run_write(engine, work)


def refresh_tiers(
    engine: sa.Engine, *, host: Any = None, member_id: int | None = None,
    fond_interactions: int | None = None, devoted_interactions: int | None = None,
) -> int:
    """Recompute the tier of each fan (of one member, or all) through ``decide_tier``.

    :param host: the plugin host whose ``decide_tier`` implementations decide (default: the hub's rule).
    :param member_id: only this member's fans.
    :param fond_interactions: threshold passed to the rule in ``stats`` (its default otherwise).
    :param devoted_interactions: likewise.
    :return: how many fans changed tier.
    """
    from hub import defaults
    from schemas import Fan, FollowState

    query = sa.select(fans.c.id, fans.c.platform, fans.c.account_id, fans.c.platform_uid, fans.c.follow_state,
                      fans.c.interactions, fans.c.tier, members.c.lifetime_points).outerjoin(
        members, members.c.member_id == fans.c.member_id)
    if member_id is not None:
        query = query.where(fans.c.member_id == member_id)
    extra = {k: v for k, v in (("fond_interactions", fond_interactions),
                               ("devoted_interactions", devoted_interactions)) if v is not None}
    changed: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for row in conn.execute(query.order_by(fans.c.id)):
            fan = Fan(platform=row.platform, account_id=row.account_id, platform_uid=row.platform_uid,
                      follow_state=FollowState(row.follow_state), interactions=dict(row.interactions or {}))
            stats = {"interactions": sum(fan.interactions.values()), "lifetime_points": row.lifetime_points or 0,
                     **extra}
            tier = host.hook.decide_tier(fan=fan, stats=stats) if host is not None else defaults.decide_tier(fan, stats)
            if tier is not None and str(tier) != row.tier:
                changed.append({"fan_id": row.id, "tier": str(tier)})
    if changed:
        with engine.begin() as conn:
            for item in changed:
                conn.execute(fans.update().where(fans.c.id == item["fan_id"]).values(tier=item["tier"], updated_at=utcnow()))
    return len(changed)
