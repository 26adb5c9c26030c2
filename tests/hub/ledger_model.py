"""An in-memory model of members and the ledger, small enough to trust, for the stateful tests.

It mirrors the documented rules (docs/ledger.md): lots consumed oldest first, a reversal takes
back its own lot first, merges move every lot, splits move the lots the split fans earned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


class Refused(Exception):
    """The model expects the hub to refuse with ``kind`` (an error class name)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Lot:
    seq: int
    member: int
    source: int
    origin: int
    fan: int | None
    points: int
    remaining: int
    earned: int
    earned_at: datetime
    expires_at: datetime | None


@dataclass
class Member:
    balance: int = 0
    lifetime: int = 0
    merged_into: int | None = None
    fans: set[int] = field(default_factory=set)


@dataclass
class Entry:
    entry_id: int
    kind: str
    points: int
    member: int
    reversed: bool = False


@dataclass
class ChangeRec:
    change_id: int
    action: str
    member: int
    other: int
    fan_ids: list[int]
    lot_seqs: list[int]
    lifetime: int
    undoes: int | None
    undone: bool = False


class Model:
    def __init__(self) -> None:
        self.members: dict[int, Member] = {}
        self.lots: list[Lot] = []
        self.entries: dict[int, Entry] = {}
        self.uses: dict[int, list[tuple[Lot, int]]] = {}
        self.changes: dict[int, ChangeRec] = {}

    def live(self, member_id: int) -> int:
        while self.members[member_id].merged_into is not None:
            member_id = self.members[member_id].merged_into  # type: ignore[assignment]
        return member_id

    def _lot(self, **kw: object) -> Lot:
        lot = Lot(seq=len(self.lots), **kw)  # type: ignore[arg-type]
        self.lots.append(lot)
        return lot

    def _take(self, member: int, points: int, *, usable_at: datetime | None = None,
              prefer: int | None = None) -> list[tuple[Lot, int]]:
        held = [lot for lot in self.lots if lot.member == member and lot.remaining > 0
                and (usable_at is None or lot.expires_at is None or lot.expires_at > usable_at)]
        held.sort(key=lambda lot: (lot.origin != prefer, lot.earned_at, lot.seq))
        if sum(lot.remaining for lot in held) < points:
            raise Refused("Overdraw")
        taken, left = [], points
        for lot in held:
            if not left:
                break
            n = min(left, lot.remaining)
            lot.remaining -= n
            taken.append((lot, n))
            left -= n
        return taken

    def check_earn(self, member_id: int) -> int:
        return self.live(member_id)

    def earn(self, entry_id: int, member_id: int, points: int, fan: int | None, now: datetime,
             expires_at: datetime | None) -> None:
        live = self.live(member_id)
        self.entries[entry_id] = Entry(entry_id, "earn", points, live)
        self._lot(member=live, source=entry_id, origin=entry_id, fan=fan, points=points, remaining=points,
                  earned=points, earned_at=now, expires_at=expires_at)
        self.members[live].balance += points
        self.members[live].lifetime += points

    def redeem_check(self, member_id: int, points: int, now: datetime) -> None:
        live = self.live(member_id)
        usable = sum(lot.remaining for lot in self.lots if lot.member == live and lot.remaining > 0
                     and (lot.expires_at is None or lot.expires_at > now))
        if usable < points:
            raise Refused("Overdraw")

    def redeem(self, entry_id: int, member_id: int, points: int, now: datetime) -> None:
        live = self.live(member_id)
        self.entries[entry_id] = Entry(entry_id, "redeem", -points, live)
        self.uses[entry_id] = self._take(live, points, usable_at=now)
        self.members[live].balance -= points

    def reverse_check(self, entry_id: int) -> None:
        original = self.entries[entry_id]
        if original.kind in ("reversal", "transfer_in", "transfer_out"):
            raise Refused("NotReversible")
        if original.reversed:
            raise Refused("AlreadyReversed")
        live = self.live(original.member)
        if original.points > 0 and self.members[live].balance < original.points:
            raise Refused("Overdraw")

    def reverse(self, new_id: int, entry_id: int) -> None:
        original = self.entries[entry_id]
        live = self.live(original.member)
        original.reversed = True
        self.entries[new_id] = Entry(new_id, "reversal", -original.points, live)
        m = self.members[live]
        if original.points > 0:
            self.uses[new_id] = self._take(live, original.points, prefer=entry_id)
            if original.kind == "earn":
                m.lifetime = max(0, m.lifetime - original.points)
                for lot in self.lots:
                    if lot.source == entry_id and lot.member == live:
                        lot.earned = 0
        else:
            for lot, n in self.uses.get(entry_id, []):
                self._lot(member=live, source=new_id, origin=lot.origin, fan=lot.fan, points=n, remaining=n,
                          earned=0, earned_at=lot.earned_at, expires_at=lot.expires_at)
        m.balance -= original.points

    def due(self, as_of: datetime) -> list[Lot]:
        """Lots the expiry run will write off, in the order it writes them."""
        due = [lot for lot in self.lots if lot.remaining > 0 and lot.expires_at is not None and lot.expires_at <= as_of]
        return sorted(due, key=lambda lot: (lot.member, lot.earned_at, lot.seq))

    def expire(self, lot: Lot, entry_id: int) -> None:
        self.entries[entry_id] = Entry(entry_id, "expiry", -lot.remaining, lot.member)
        self.uses[entry_id] = [(lot, lot.remaining)]
        self.members[lot.member].balance -= lot.remaining
        lot.remaining = 0

    def merge_check(self, survivor: int, merged: int) -> None:
        if survivor == merged or self.members[survivor].merged_into is not None \
                or self.members[merged].merged_into is not None:
            raise Refused("MergeRefused")

    def _move(self, change_id: int, action: str, source: int, target: int, fan_ids: list[int],
              lots: list[Lot], lifetime: int, undoes: int | None) -> None:
        points = sum(lot.remaining for lot in lots)
        for lot in lots:
            lot.member = target
        s, t = self.members[source], self.members[target]
        s.fans -= set(fan_ids)
        t.fans |= set(fan_ids)
        s.balance -= points
        t.balance += points
        s.lifetime = max(0, s.lifetime - lifetime)
        t.lifetime = max(0, t.lifetime + lifetime)
        self.changes[change_id] = ChangeRec(change_id, action, source, target, sorted(fan_ids),
                                            [lot.seq for lot in lots], lifetime, undoes)
        if undoes is not None:
            self.changes[undoes].undone = True

    def merge(self, change_id: int, survivor: int, merged: int, undoes: int | None = None) -> None:
        lots = [lot for lot in self.lots if lot.member == merged]
        self._move(change_id, "merge", merged, survivor, sorted(self.members[merged].fans), lots,
                   self.members[merged].lifetime, undoes)
        for m in self.members.values():
            if m.merged_into == merged:
                m.merged_into = survivor
        self.members[merged].merged_into = survivor

    def split_check(self, member_id: int, fan: int) -> None:
        if self.members[member_id].merged_into is not None or fan not in self.members[member_id].fans:
            raise Refused("MergeRefused")

    def split(self, change_id: int, member_id: int, new_member: int, fan: int) -> None:
        self.members[new_member] = Member()
        lots = [lot for lot in self.lots if lot.member == member_id and lot.fan == fan]
        lifetime = min(self.members[member_id].lifetime, sum(lot.earned for lot in lots))
        self._move(change_id, "split", member_id, new_member, [fan], lots, lifetime, None)

    def undo_check(self, change_id: int) -> None:
        c = self.changes[change_id]
        if c.undoes is not None or c.undone:
            raise Refused("MergeRefused")
        if c.action == "split":
            self.merge_check(c.member, c.other)
        elif self.members[c.member].merged_into != self.live(c.other):
            raise Refused("MergeRefused")

    def undo(self, new_change: int, change_id: int) -> None:
        c = self.changes[change_id]
        if c.action == "split":
            self.merge(new_change, c.member, c.other, undoes=change_id)
            return
        survivor = self.live(c.other)
        self.members[c.member].merged_into = None
        fans = [f for f in c.fan_ids if f in self.members[survivor].fans]
        lots = [self.lots[seq] for seq in c.lot_seqs if self.lots[seq].member == survivor]
        lifetime = min(self.members[survivor].lifetime, c.lifetime)
        self._move(new_change, "unmerge", survivor, c.member, fans, lots, lifetime, change_id)
