"""The hub's own default rules, registered as the last implementation of the decision hooks."""

from __future__ import annotations

from typing import Any

import pluggy

from schemas import Fan, FanTier, FollowState, Order

hookimpl = pluggy.HookimplMarker("siyu")

DEFAULT_FOND_INTERACTIONS = 3
DEFAULT_DEVOTED_INTERACTIONS = 20
DEFAULT_POINTS_PER_YUAN = 1


@hookimpl(trylast=True)
def decide_tier(fan: Fan, stats: dict[str, Any]) -> FanTier:
    if fan.follow_state is not FollowState.FOLLOWING:
        return FanTier.PROSPECT
    interactions = int(stats.get("interactions", sum(fan.interactions.values())))
    if interactions >= int(stats.get("devoted_interactions", DEFAULT_DEVOTED_INTERACTIONS)) or (
        int(stats.get("lifetime_points", 0)) > 0
    ):
        return FanTier.DEVOTED
    if interactions >= int(stats.get("fond_interactions", DEFAULT_FOND_INTERACTIONS)):
        return FanTier.FOND
    return FanTier.PASSERBY


@hookimpl(trylast=True)
def earn_points(order: Order) -> int:
    return (order.amount_fen // 100) * DEFAULT_POINTS_PER_YUAN
