"""The Douyin sandbox's generated population and fixed identities (no routes here).

Everything is deterministic in ``seed``: the ``i``-th fan of a sandbox is the same in every run,
so tests and benchmarks can name fans (``fan-0-000001``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CLIENT_KEY", "CLIENT_SECRET", "LIFE_ACCOUNT_ID", "OPEN_ID", "fan", "message_content"]

CLIENT_KEY = "awsandbox000001"
CLIENT_SECRET = "sandbox-client-secret-0123456789"
OPEN_ID = "ent-0000-open-id"
"""The enterprise account's open_id."""
LIFE_ACCOUNT_ID = "7000000000000001"
"""The 来客 merchant the member cards belong to."""


def fan(seed: int, i: int) -> dict[str, Any]:
    """The ``i``-th fan of the population, as ``/fans/list/`` lists it (every other one has a union_id)."""
    return {"open_id": f"fan-{seed}-{i:06d}", "union_id": f"union-{seed}-{i:06d}" if i % 2 == 0 else "",
            "nickname": f"抖音用户{i}", "avatar": f"https://example.invalid/a/{i}.jpeg",
            "city": "上海", "province": "上海", "country": "中国", "gender": i % 3}


def message_content(fan_open_id: str, n: int, text: str, suffix: str) -> dict[str, Any]:
    """The ``content`` of the ``n``-th ``im_receive_msg`` from ``fan_open_id``."""
    return {"conversation_short_id": f"conv-{fan_open_id}", "server_message_id": f"srv-{n}-{suffix}",
            "conversation_type": 1, "message_type": "text", "text": text, "create_time": 1_700_000_000_000 + n,
            "user_infos": [{"open_id": fan_open_id, "nick_name": "粉丝", "avatar": "https://example.invalid/f.jpeg"}]}
