"""The sandbox's generated population: deterministic fans and orders from a seed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["Population"]


@dataclass
class Population:
    """A deterministic synthetic population of fans and their orders."""

    fans: int
    seed: int = 0

    def fan(self, i: int) -> dict[str, Any]:
        return {
            "uid": f"u{i:07d}",
            "nickname": f"fan {i}",
            "union_id": f"un{i}" if i % 3 == 0 else None,
            "mobile": f"138{i % 100_000_000:08d}" if i % 5 == 0 else None,
            "following": i % 7 != 0,
            "follow_time": 1_700_000_000 + i,
            "messages": (i * 7 + self.seed) % 30,
        }

    @property
    def orders(self) -> int:
        return self.fans // 2

    def order(self, i: int) -> dict[str, Any]:
        return {
            "order_id": f"o{i:07d}",
            "buyer_uid": f"u{(i * 2) % max(self.fans, 1):07d}",
            "amount_fen": str((i * 137) % 50_000 + 100),
            "status": "paid",
            "paid_ms": 1_700_000_000_000 + i * 1000 + 7,
        }
