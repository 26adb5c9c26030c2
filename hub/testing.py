"""Test helpers and a conformance kit for plugin authors (a ``pytest11`` plugin).

Cheap to import: pytest imports this module in every run wherever siyu-hub is installed, so it
defines fixtures only, all opt-in (none is autouse), and imports the hub and servers lazily.

``serve_asgi(app)`` runs an ASGI app (a sandbox) on a free loopback port in a thread::

    with serve_asgi(make_app()) as base_url:
        ...

The conformance kit is a test class to subclass in a plugin's own tests; it starts the plugin's
sandbox on loopback, points an account at it and checks the contract for each capability the
adapter declares (the rest are skipped, with the reason)::

    from hub.testing import AdapterConformance

    class TestWeiboConformance(AdapterConformance):
        platform = "weibo"
        fans = 300            # population asked of the sandbox

Override the ``siyu_database_url`` fixture to run it on another database than a SQLite file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host`` (see :func:`hub.platform.sandbox.free_port`)."""
    from hub.platform import sandbox

    return sandbox.free_port(host)


def serve_asgi(app: Any, host: str = "127.0.0.1", port: int | None = None) -> Any:
    """Serve ``app`` on loopback in a thread (see :func:`hub.platform.sandbox.serve_asgi`)."""
    from hub.platform import sandbox

    return sandbox.serve_asgi(app, host, port)

__all__ = ["AdapterConformance", "free_port", "serve_asgi", "siyu_sandbox"]


@pytest.fixture
def siyu_sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A platform's sandbox on loopback: parametrise indirectly with the platform name.

    Yields ``(base_url, spec)`` where ``spec`` is the plugin's :class:`hub.platform.sandbox.SandboxSpec`.
    """
    from hub.plugins import load_plugins
    from hub.platform.sandbox import build_sandbox

    platform = request.param
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    spec = build_sandbox(load_plugins(), platform, seed=0, fans=200, base_url=base_url)
    with serve_asgi(spec.app, port=port):
        yield base_url, spec


class _Rig:
    """A sandbox on loopback, an account pointed at it, and a migrated database."""

    def __init__(self, platform: str, fans: int, seed: int, database_url: str) -> None:
        from hub.storage import database as storage
        from hub.config import parse_settings
        from hub.plugins import load_plugins
        from hub.platform.sandbox import build_sandbox

        self.host = load_plugins()
        self.adapter = self.host.adapter_class(platform)
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.spec = build_sandbox(self.host, platform, seed=seed, fans=fans, base_url=self.base_url)
        self.port = port
        engine = storage.create_engine(database_url)
        storage.upgrade(engine)
        engine.dispose()
        self.engine = storage.open_database(database_url)
        raw = {"database": {"url": database_url}, "security": {"phone_key": "conformance-phone-key-0123456789"},
               "retry": {"attempts": 6, "initial_wait": 0.01, "max_wait": 0.2, "jitter": 0.01},
               "accounts": [dict(self.spec.account)]}
        self.settings = parse_settings(raw, self.host)
        self.account = self.settings.accounts[0]

    def count(self, table: Any) -> tuple[int, int]:
        import sqlalchemy as sa

        t = table.__table__
        uid = {"fans": t.c.get("platform_uid"), "orders": t.c.get("order_id"), "points_events": t.c.get("event_id")}
        key = uid[t.name]
        with self.engine.connect() as conn:
            return tuple(conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(key)))).one())  # type: ignore[return-value]

    async def sync(self, stream: str, **kwargs: Any) -> Any:
        from hub.sync.engine import sync_accounts

        [summary] = await sync_accounts(self.host, self.settings, self.engine, stream=stream, **kwargs)
        return summary


class AdapterConformance:
    """The contract every platform adapter keeps; subclass it with ``platform = "<name>"``."""

    platform: str = ""
    fans: int = 300
    seed: int = 0

    @pytest.fixture
    def siyu_database_url(self, tmp_path: Any) -> str:
        return f"sqlite:///{tmp_path / 'conformance.db'}"

    @pytest.fixture
    def rig(self, siyu_database_url: str) -> Iterator[_Rig]:
        rig = _Rig(self.platform, self.fans, self.seed, siyu_database_url)
        with serve_asgi(rig.spec.app, port=rig.port):
            yield rig
        rig.engine.dispose()

    def _streams(self, rig: _Rig) -> list[tuple[str, Any]]:
        from hub.sync.engine import STREAMS
        from schemas.tables import FanRow, OrderRow, PointsEventRow

        tables = {"fans": FanRow, "orders": OrderRow, "points": PointsEventRow}
        found = [(s, tables[s]) for s, (cap, _) in STREAMS.items() if cap in rig.adapter.capabilities]
        if not found:
            pytest.skip(f"{self.platform} declares no paged stream")
        return found

    async def test_paging_runs_to_completion(self, rig: _Rig) -> None:
        for stream, table in self._streams(rig):
            summary = await rig.sync(stream)
            assert summary.error is None, summary.error
            assert summary.complete and summary.pages >= 1
            total, distinct = rig.count(table)
            assert total == distinct == summary.inserted > 0, (stream, total, distinct, summary)

    async def test_resume_from_a_checkpoint_gives_no_gap_and_no_duplicate(self, rig: _Rig) -> None:
        for stream, table in self._streams(rig):
            first = await rig.sync(stream, max_pages=1)
            assert first.error is None and first.pages == 1
            if first.complete:
                pytest.skip(f"{stream}: the sandbox's population fits in one page; raise `fans`")
            rest = await rig.sync(stream)
            assert rest.error is None and rest.resumed and rest.complete
            total, distinct = rig.count(table)
            assert total == distinct == first.inserted + rest.inserted

    async def test_resync_is_idempotent(self, rig: _Rig) -> None:
        for stream, table in self._streams(rig):
            await rig.sync(stream)
            before = rig.count(table)
            again = await rig.sync(stream, full=True)
            assert again.error is None and again.inserted == 0 and again.updated == 0
            assert rig.count(table) == before

    def test_error_table_lands_in_the_hierarchy(self) -> None:
        from hub.platform.errormap import error_for_code
        from hub.errors import PlatformError
        from hub.plugins import load_plugins

        adapter = load_plugins().adapter_class(self.platform)
        if not adapter.error_codes:
            pytest.skip(f"{self.platform} has no error table")
        for code, entry in adapter.error_codes.items():
            cls = entry[0] if isinstance(entry, tuple) else entry
            assert isinstance(cls, type) and issubclass(cls, PlatformError), code
            assert type(error_for_code(adapter.error_codes, code, "m", platform=self.platform)) is cls

    async def test_webhooks_accepted_forged_rejected_replay_stored_once(self, rig: _Rig) -> None:
        import httpx
        import sqlalchemy as sa

        from hub.webhooks.receiver import create_app
        from schemas import Capability
        from schemas.tables import WebhookEventRow

        if Capability.WEBHOOKS not in rig.adapter.capabilities:
            pytest.skip(f"{self.platform} does not declare webhooks")
        if rig.spec.sample_webhook is None:
            pytest.skip(f"the {self.platform} sandbox offers no sample_webhook")
        app = create_app(rig.host, rig.settings, rig.engine, apply_pending_on_start=False)
        path = f"/webhooks/{self.platform}/{rig.account.id}"

        def count() -> int:
            with rig.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(WebhookEventRow.__table__)).scalar_one()

        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub") as client:

            async def deliver(req: Any, body: bytes | None = None) -> httpx.Response:
                return await client.request(req.method, path, params=dict(req.query), headers=dict(req.headers),
                                            content=req.body if body is None else body)

            good = rig.spec.sample_webhook()
            first = await deliver(good)
            assert first.status_code < 400, first.text
            assert count() == 1
            again = await deliver(good)
            assert again.status_code == first.status_code and again.content == first.content
            assert count() == 1
            forged = rig.spec.sample_webhook()
            tampered = bytearray(forged.body or b"x")
            tampered[len(tampered) // 2] ^= 0x01
            rejected = await deliver(forged, bytes(tampered))
            assert 400 <= rejected.status_code < 500
            assert count() == 1

    async def test_card_push_is_idempotent(self, rig: _Rig) -> None:
        from hub.platform.account import open_account
        from schemas import Capability, MemberCard

        if Capability.CARDS not in rig.adapter.capabilities:
            pytest.skip(f"{self.platform} does not declare cards")
        card = MemberCard(member_id=1, platform=self.platform, account_id=rig.account.id, card_no="conformance-1",
                          level=2, balance=1234)
        async with open_account(rig.host, rig.settings, rig.account, engine=rig.engine) as handle:
            first = await handle.call("push_card", card)
            second = await handle.call("push_card", card)
        assert first.accepted and second.accepted
