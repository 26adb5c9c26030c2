"""One of the processes of the concurrency test: earn, redeem and reverse against shared members."""

from __future__ import annotations

import random
from typing import Any

from hub import ledger

from hub.storage import database as storage
from hub.errors import HubError


def work(url: str, seed: int, ops: int, member_ids: list[int]) -> list[dict[str, Any]]:
    """Run ``ops`` random postings; return what each call reported (or the refusal)."""
    rng = random.Random(seed)
    engine = storage.create_engine(url)
    mine: list[int] = []
    out: list[dict[str, Any]] = []
    try:
        for i in range(ops):
            member = rng.choice(member_ids)
            roll = rng.random()
            try:
                if roll < 0.35:
                    p = ledger.post(engine, member_id=member, points=rng.randint(1, 50), reason="earn",
                                    key=f"w{seed}-{i}")
                elif roll < 0.5:
                    shared = rng.randrange(20)  # every process posts these same keys with the same body
                    p = ledger.post(engine, member_id=member_ids[shared % len(member_ids)], points=7,
                                    reason="shared", key=f"shared-{shared}")
                elif roll < 0.8:
                    p = ledger.redeem(engine, member_id=member, points=rng.randint(1, 60), key=f"r{seed}-{i}")
                else:
                    target = rng.choice(mine) if mine and rng.random() < 0.5 else rng.randint(1, ops * 4)
                    p = ledger.reverse(engine, target, key=f"rev-{target}", reason="correction")
            except HubError as exc:
                out.append({"error": type(exc).__name__})
                continue
            if p.created:
                mine.append(p.entry.entry_id)
            out.append({"key": p.entry.idempotency_key, "created": p.created, "entry_id": p.entry.entry_id,
                        "member_id": p.member_id, "points": p.entry.points, "balance": p.balance})
    finally:
        engine.dispose()
    return out
