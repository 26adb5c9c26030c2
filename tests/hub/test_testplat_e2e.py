"""The test platform end to end: `siyu sync`, a callback through `siyu serve`, points posted to a
member, and `siyu outbox drain` pushing the balance to the platform's member card."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

from hub.storage import database as storage
from hub.cli import main
from hub.ledger.postings import post
from hub.testing import free_port, serve_asgi
from schemas.tables import FanRow, MemberCardRow, MemberRow
from siyu_testplatform.sandbox import make_app, signed_follow
from tests.hub.sandboxes import toml_for, tp_account

SIYU = shutil.which("siyu", path=str(Path(sys.executable).parent)) or "siyu"


def test_sync_serve_post_and_drain(tmp_path, database_url, capsys):
    with serve_asgi(make_app(60)) as url:
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                    "accounts": [tp_account(url, page_size=25)]}))
        assert main(["--config", str(config), "sync", "--json"]) == 0
        capsys.readouterr()
        engine = storage.open_database(database_url)
        fans = FanRow.__table__
        with engine.connect() as conn:
            state = conn.execute(sa.select(fans.c.follow_state).where(fans.c.platform_uid == "u0000007")).scalar_one()
        assert state == "unfollowed"  # i % 7 == 0 does not follow

        port = free_port()
        server = subprocess.Popen([SIYU, "--config", str(config), "serve", "--port", str(port)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
        try:
            for _ in range(200):
                try:
                    httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            callback = signed_follow("u0000007", event_id="evt-1")
            target = f"http://127.0.0.1:{port}/webhooks/testplat/main"
            for _ in range(2):  # a re-delivery is acknowledged and stored once
                response = httpx.post(target, content=callback.body, headers=dict(callback.headers))
                assert response.status_code == 200 and response.json() == {"ok": True}
            forged = dict(callback.headers, **{"x-testplat-signature": "0" * 64})
            assert httpx.post(target, content=callback.body, headers=forged).status_code == 401
            for _ in range(100):
                with engine.connect() as conn:
                    state = conn.execute(sa.select(fans.c.follow_state)
                                         .where(fans.c.platform_uid == "u0000007")).scalar_one()
                if state == "following":
                    break
                time.sleep(0.05)
            assert state == "following"
            with engine.connect() as conn:
                stored = conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one()
            assert stored == 1
        finally:
            server.terminate()
            _, err = server.communicate(timeout=30)
        assert "k" * 32 not in err.decode() and callback.headers["x-testplat-signature"] not in err.decode()

        with engine.begin() as conn:
            member_id = conn.execute(sa.insert(MemberRow.__table__).returning(MemberRow.__table__.c.member_id)).scalar_one()
            conn.execute(sa.insert(MemberCardRow.__table__).values(member_id=member_id, platform="testplat",
                                                                   account_id="main", card_no="card-7"))
        post(engine, member_id=member_id, points=120, reason="welcome", key="welcome-7")
        post(engine, member_id=member_id, points=30, reason="order", key="order-7")
        assert main(["--config", str(config), "outbox", "drain", "--json"]) == 0
        drained = json.loads(capsys.readouterr().out)
        cards = httpx.get(f"{url}/_admin/cards").json()
        assert cards == {"card-7": {"balance": 150, "level": 0}}, (cards, drained)
        engine.dispose()
