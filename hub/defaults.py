"""The hub's own default rules, registered as the last implementation of the decision hooks.

Their parameters come from the ``[ledger]`` section of siyu.toml (see :class:`DefaultRules`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pluggy

from schemas import Fan, FanTier, FollowState, Order

hookimpl = pluggy.HookimplMarker("siyu")

DEFAULT_FOND_INTERACTIONS = 3
DEFAULT_DEVOTED_INTERACTIONS = 20
DEFAULT_POINTS_PER_YUAN = 1


@dataclass
class DefaultRules:
    """The default ``decide_tier`` and ``earn_points`` rules and their parameters."""

    points_per_yuan: int = DEFAULT_POINTS_PER_YUAN
    fond_interactions: int = DEFAULT_FOND_INTERACTIONS
    devoted_interactions: int = DEFAULT_DEVOTED_INTERACTIONS

    @hookimpl(trylast=True)
    def decide_tier(self, fan: Fan, stats: dict[str, Any]) -> FanTier:
        if fan.follow_state is not FollowState.FOLLOWING:
            return FanTier.PROSPECT
        interactions = int(stats.get("interactions", sum(fan.interactions.values())))
        devoted = int(stats.get("devoted_interactions", self.devoted_interactions))
        if interactions >= devoted or int(stats.get("lifetime_points", 0)) > 0:
            return FanTier.DEVOTED
        if interactions >= int(stats.get("fond_interactions", self.fond_interactions)):
            return FanTier.FOND
        return FanTier.PASSERBY

    @hookimpl(trylast=True)
    def earn_points(self, order: Order) -> int:
        return (order.amount_fen // 100) * self.points_per_yuan


_DEFAULT = DefaultRules()


def decide_tier(fan: Fan, stats: dict[str, Any]) -> FanTier:
    """The default tier rule with default parameters (for callers without a plugin host)."""
    return _DEFAULT.decide_tier(fan, stats)


def earn_points(order: Order) -> int:
    """The default earning rule with default parameters (for callers without a plugin host)."""
    return _DEFAULT.earn_points(order)
