"""``siyu ledger verify``: recompute every invariant from the entries and report violations.

Nothing here trusts the stored balances: each is recomputed from the entries, the lots and the
member graph, and every disagreement is one :class:`Violation`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa

from hub.ledger.cards import LedgerPolicy
from hub.ledger.lots import entries, lots, members
from schemas import LedgerKind
from schemas.tables import FanRow

__all__ = ["Violation", "verify"]

fans = FanRow.__table__
POSITIVE = {LedgerKind.EARN, LedgerKind.TRANSFER_IN}
NEGATIVE = {LedgerKind.REDEEM, LedgerKind.EXPIRY, LedgerKind.TRANSFER_OUT}


@dataclass(frozen=True)
class Violation:
    """One broken invariant: which check, which record, and what is wrong."""

    check: str
    subject: str
    detail: str


def verify(engine: sa.Engine, *, policy: LedgerPolicy | None = None) -> list[Violation]:
    """Check balances, running balances, lots, keys, reversals, transfers and merge pointers.

    :param policy: when given, levels are checked against its thresholds too.
    :return: every violation found; empty when the ledger is sound.
    """
    found: list[Violation] = []
    with engine.connect() as conn:
        member_rows = {m.member_id: m for m in conn.execute(sa.select(members))}
        running: dict[int, int] = defaultdict(int)
        negative_seen: set[int] = set()
        by_id: dict[int, sa.Row] = {}
        reversed_by: dict[int, list[int]] = defaultdict(list)
        keys: dict[str, int] = {}
        transfer_sum = 0
        for e in conn.execute(sa.select(entries).order_by(entries.c.entry_id)).yield_per(5_000):
            by_id[e.entry_id] = e
            running[e.member_id] += e.points
            if running[e.member_id] < 0 and e.member_id not in negative_seen:
                negative_seen.add(e.member_id)
                found.append(Violation("running_balance", f"member {e.member_id}",
                                       f"balance fell to {running[e.member_id]} at entry {e.entry_id}"))
            if e.idempotency_key in keys:
                found.append(Violation("unique_key", f"entry {e.entry_id}",
                                       f"key also used by entry {keys[e.idempotency_key]}"))
            keys[e.idempotency_key] = e.entry_id
            found.extend(_check_entry(e, by_id, reversed_by))
            if e.kind in (LedgerKind.TRANSFER_IN, LedgerKind.TRANSFER_OUT):
                transfer_sum += e.points
        if transfer_sum:
            found.append(Violation("transfers", "ledger", f"transfer entries sum to {transfer_sum}, not 0"))
        lot_sums = dict(conn.execute(sa.select(lots.c.member_id, sa.func.sum(lots.c.remaining)).group_by(lots.c.member_id)).all())
        bad_lots = conn.execute(sa.select(sa.func.count()).select_from(lots).where(
            sa.or_(lots.c.remaining < 0, lots.c.remaining > lots.c.points))).scalar_one()
        if bad_lots:
            found.append(Violation("lots", "ledger", f"{bad_lots} lot(s) hold more than they were given or less than 0"))
        fan_owners = dict(conn.execute(sa.select(fans.c.member_id, sa.func.count()).where(
            fans.c.member_id.is_not(None)).group_by(fans.c.member_id)).all())
    for member_id, m in member_rows.items():
        subject = f"member {member_id}"
        if m.balance != running.get(member_id, 0):
            found.append(Violation("balance", subject, f"stored {m.balance}, entries sum to {running.get(member_id, 0)}"))
        if m.balance < 0:
            found.append(Violation("negative", subject, f"balance {m.balance}"))
        if int(lot_sums.get(member_id) or 0) != m.balance:
            found.append(Violation("lots", subject, f"lots hold {int(lot_sums.get(member_id) or 0)}, balance is {m.balance}"))
        if policy is not None and m.level != policy.level_for(m.lifetime_points):
            found.append(Violation("level", subject, f"level {m.level} for {m.lifetime_points} lifetime points"))
        if m.merged_into is not None:
            survivor = member_rows.get(m.merged_into)
            if survivor is None or survivor.merged_into is not None:
                found.append(Violation("merge_pointer", subject, f"merged into {m.merged_into}, not a live member"))
            if m.balance:
                found.append(Violation("merged_balance", subject, f"merged but holds {m.balance} points"))
            if fan_owners.get(member_id):
                found.append(Violation("merged_fans", subject, f"merged but owns {fan_owners[member_id]} fan(s)"))
    for member_id in fan_owners.keys() - member_rows.keys():
        found.append(Violation("fan_member", f"member {member_id}", "fans point at a member that does not exist"))
    return found


def _check_entry(e: sa.Row, by_id: dict[int, sa.Row], reversed_by: dict[int, list[int]]) -> list[Violation]:
    out = []
    kind = LedgerKind(e.kind)
    subject = f"entry {e.entry_id}"
    if e.points == 0 or (kind in POSITIVE and e.points < 0) or (kind in NEGATIVE and e.points > 0):
        out.append(Violation("sign", subject, f"{kind} entry of {e.points} points"))
    if kind is LedgerKind.REVERSAL and e.reverses_entry_id is not None:
        original = by_id.get(e.reverses_entry_id)
        if original is None:
            out.append(Violation("reversal", subject, f"reverses entry {e.reverses_entry_id}, which is not earlier"))
        elif original.points != -e.points:
            out.append(Violation("reversal", subject, f"reverses {original.points} points with {e.points}"))
        reversed_by[e.reverses_entry_id].append(e.entry_id)
        if len(reversed_by[e.reverses_entry_id]) > 1:
            out.append(Violation("reversal", f"entry {e.reverses_entry_id}", "reversed more than once"))
    elif e.reverses_entry_id is not None:
        out.append(Violation("reversal", subject, f"a {kind} entry references entry {e.reverses_entry_id}"))
    return out
