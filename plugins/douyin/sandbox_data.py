"""The Douyin sandbox's generated data: its fixed identities, the fans population and signed
callbacks (no routes here).

Everything but the message ids is deterministic in ``seed``: the ``i``-th fan of a sandbox is the
same in every run, so tests and benchmarks can name fans (``fan-0-000001``).  Given shared people
(a :class:`hub.Population`), the fans are the people who follow the 企业号, each named by the
person's index (``fan-<seed>-<index>``) and carrying their Douyin ``union_id`` where they have one
(the fans list has no phone: Douyin shows one only when a fan joins the 来客 membership, in the
``life_member_join`` callback, :func:`member_join`).
"""

from __future__ import annotations

import itertools
import json
import secrets
from typing import Any

import hub
from plugins.douyin.wire import sign_body

__all__ = [
    "CLIENT_KEY",
    "CLIENT_SECRET",
    "LIFE_ACCOUNT_ID",
    "OPEN_ID",
    "event_body",
    "fan",
    "member_join",
    "person_fan",
    "message_content",
    "sample_message",
    "signed_headers",
]

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


def person_fan(seed: int, person: hub.Person) -> dict[str, Any]:
    """A person of the shared population who follows the 企业号, as ``/fans/list/`` lists them."""
    i = person.index
    return {"open_id": f"fan-{seed}-{i:06d}", "union_id": person.douyin_union_id or "", "nickname": person.name,
            "avatar": f"https://example.invalid/a/{i}.jpeg", "city": "上海", "province": "上海", "country": "中国",
            "gender": i % 3}


def member_join(seed: int, person: hub.Person) -> dict[str, Any]:
    """The ``content`` of the ``life_member_join`` a follower of the shared people sends when they
    join the 来客 membership with their phone."""
    return {"account_id": LIFE_ACCOUNT_ID, "open_id": f"fan-{seed}-{person.index:06d}", "mobile": person.mobile}


def message_content(fan_open_id: str, n: int, text: str, suffix: str) -> dict[str, Any]:
    """The ``content`` of the ``n``-th ``im_receive_msg`` from ``fan_open_id``."""
    return {"conversation_short_id": f"conv-{fan_open_id}", "server_message_id": f"srv-{n}-{suffix}",
            "conversation_type": 1, "message_type": "text", "text": text, "create_time": 1_700_000_000_000 + n,
            "user_infos": [{"open_id": fan_open_id, "nick_name": "粉丝", "avatar": "https://example.invalid/f.jpeg"}]}


def event_body(event: str, content: dict[str, Any], *, from_user_id: str, to_user_id: str = OPEN_ID) -> bytes:
    """A callback body as Douyin sends it: ``content`` as a JSON *string* inside the envelope."""
    return json.dumps({"event": event, "from_user_id": from_user_id, "to_user_id": to_user_id,
                       "client_key": CLIENT_KEY, "content": json.dumps(content, ensure_ascii=False),
                       "log_id": secrets.token_hex(10)}, ensure_ascii=False).encode()


def signed_headers(body: bytes, *, msg_id: str | None, secret: str = CLIENT_SECRET) -> dict[str, str]:
    """The headers of a delivery: ``X-Douyin-Signature`` (SHA-1 of secret then body) and ``Msg-Id``."""
    headers = {"Content-Type": "application/json", "X-Douyin-Signature": sign_body(secret, body)}
    if msg_id is not None:
        headers["Msg-Id"] = msg_id
    return headers


_sample_ids = itertools.count(1)


def sample_message(fan_open_id: str = "fan-0-000001", text: str = "你好") -> hub.WebhookRequest:
    """A signed ``im_receive_msg`` from ``fan_open_id``, with fresh message ids."""
    n = next(_sample_ids)
    body = event_body("im_receive_msg", message_content(fan_open_id, n, text, secrets.token_hex(4)),
                      from_user_id=fan_open_id)
    return hub.WebhookRequest(method="POST", path="/", query={},
                              headers=signed_headers(body, msg_id=f"msg-{n}-{secrets.token_hex(6)}"), body=body)
