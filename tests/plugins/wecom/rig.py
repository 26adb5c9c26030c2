"""Syncing the WeCom sandbox over loopback into a test database, and reading back what landed."""

from __future__ import annotations

import math
from typing import Any

import httpx
import sqlalchemy as sa

from hub.config import Settings, parse_settings
from hub.plugins import PluginHost
from plugins.wecom.sandbox_data import Corp, account_settings
from plugins.wecom.sandbox_data import Settings as SandboxSettings
from schemas.tables import FanRow

FANS = FanRow.__table__


def hub_settings(host: PluginHost, database_url: str, account: dict[str, Any], retry: dict[str, Any]) -> Settings:
    raw = {"database": {"url": database_url}, "security": {"phone_key": "test-phone-key-0123456789abcdef"},
           "retry": retry, "accounts": [account]}
    return parse_settings(raw, host)


def account_for(url: str, sandbox: SandboxSettings, **options: Any) -> dict[str, Any]:
    return {**account_settings(url, sandbox, "hq"), **options}


def batch_pages(corp: Corp, chunk_size: int, page_size: int) -> int:
    """The fewest ``batch/get_by_user`` calls a full pass needs: per chunk of staff, one call per
    ``page_size`` relations (one for a chunk with none)."""
    staff = sorted(corp.staff)
    chunks = [staff[i:i + chunk_size] for i in range(0, len(staff), chunk_size)]
    return sum(max(1, math.ceil(sum(len(corp.pairs_of(s)) for s in chunk) / page_size)) for chunk in chunks)


def wecom_rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(FANS).where(FANS.c.platform == "wecom")).mappings()
        return {r["platform_uid"]: dict(r) for r in rows}


def row_counts(engine: sa.Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        query = sa.select(sa.func.count(), sa.func.count(sa.distinct(FANS.c.platform_uid))).where(
            FANS.c.platform == "wecom")
        return tuple(conn.execute(query).one())  # type: ignore[return-value]


def assert_every_relation_landed(engine: sa.Engine, corp: Corp) -> None:
    """One row per customer, each carrying exactly its relations (also those read on other pages
    and in other chunks), none ended."""
    rows = wecom_rows(engine)
    assert sorted(rows) == sorted(corp.contacts)
    wrong = [uid for uid in corp.contacts
             if sorted(f["staff_id"] for f in rows[uid]["follows"]) != corp.followers_of(uid)
             or any(f["ended_at"] for f in rows[uid]["follows"])]
    assert not wrong, wrong[:5]


def sandbox_stats(url: str) -> dict[str, int]:
    return httpx.get(f"{url}/_admin/stats").json()  # type: ignore[no-any-return]
