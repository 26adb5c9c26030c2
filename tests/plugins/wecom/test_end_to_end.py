"""End to end over loopback: the WeCom sandbox → ``siyu sync --platform wecom`` → fans in the
database → callbacks from the sandbox through the webhook receiver change them."""

from __future__ import annotations

import json

import httpx
import sqlalchemy as sa

from hub.cli import main
from hub.plugins import load_plugins
from hub.testing import free_port, serve_asgi
from hub.webhooks.receiver import create_app
from plugins.wecom.sandbox import make_sandbox
from schemas.tables import FanRow, MessageRow, WebhookEventRow
from tests.hub.sandboxes import ServeProcess, settings_for, toml_for

HOST = load_plugins()
FANS = FanRow.__table__


def fan_rows(engine):
    with engine.connect() as conn:
        return {r["platform_uid"]: dict(r) for r in conn.execute(sa.select(FANS).where(FANS.c.platform == "wecom")).mappings()}


def test_sync_then_callbacks_change_fans(tmp_path, database_url, engine, capsys):
    port = free_port()
    spec = make_sandbox(7, 300, f"http://127.0.0.1:{port}")
    corp = spec.app.state.sandbox.corp
    account = dict(spec.account)
    raw = {"database": {"url": database_url}, "security": {"phone_key": "k" * 32}, "accounts": [account]}
    config = tmp_path / "siyu.toml"
    config.write_text(toml_for(raw))
    with serve_asgi(spec.app, port=port) as sandbox_url:
        assert main(["--config", str(config), "sync", "--platform", "wecom", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        [fans] = [s for s in doc["streams"] if s["stream"] == "fans"]
        assert fans["complete"] and fans["inserted"] == 300 and fans["error"] is None
        rows = fan_rows(engine)
        assert len(rows) == 300
        shared = [uid for uid in corp.contacts if len(corp.followers_of(uid)) > 1]
        assert shared  # the population has customers followed by several staff ...
        for uid in shared:  # ... each one fan carrying every relation
            assert sorted(f["staff_id"] for f in rows[uid]["follows"]) == corp.followers_of(uid)
        with_union = [uid for uid, c in corp.contacts.items() if c.get("unionid")]
        assert all(rows[uid]["union_id"] == corp.contacts[uid]["unionid"] for uid in with_union)
        # a page knows some of a customer's relations: the remark mobiles become hashed identity
        # keys (they accumulate across pages) and the tags stay on each relation
        assert sum(1 for r in rows.values() if any(k.startswith("phone:") for k in r["identity_keys"])) > 0
        assert any(f["tag_ids"] for r in rows.values() for f in r["follows"])

        # a second pass changes nothing
        assert main(["--config", str(config), "sync", "--platform", "wecom", "--full", "--json"]) == 0
        again = json.loads(capsys.readouterr().out)
        assert [(s["inserted"], s["updated"]) for s in again["streams"]] == [(0, 0)]

        # callbacks: the receiver on loopback, the sandbox delivering signed, encrypted events
        settings = settings_for(HOST, database_url, account)
        target, other = shared[0], corp.followers_of(shared[0])
        leaving, staying = other[0], other[1:]
        with serve_asgi(create_app(HOST, settings, engine)) as hub_url:
            hook = f"{hub_url}/webhooks/wecom/{account['id']}"
            verified = httpx.post(f"{sandbox_url}/_admin/verify", json={"url": hook}).json()
            assert verified["status"] == 200 and verified["body"] == verified["expected"]
            added = httpx.post(f"{sandbox_url}/_admin/callback", json={
                "change": "add_external_contact", "userid": "staff0000", "external_userid": "wmNEW0001",
                "url": hook, "repeat": 2}).json()
            assert [a["status"] for a in added["answers"]] == [200, 200]
            ended = httpx.post(f"{sandbox_url}/_admin/callback", json={
                "change": "del_follow_user", "userid": leaving, "external_userid": target, "url": hook}).json()
            assert ended["answers"][0]["status"] == 200
            forged = httpx.post(hook, params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "1"},
                                content=b"<xml><Encrypt>AAAA</Encrypt></xml>")
            assert forged.status_code == 401
        # leaving the block waits for the receiver's background work
    rows = fan_rows(engine)
    assert rows["wmNEW0001"]["follow_state"] == "following"
    assert [f["staff_id"] for f in rows["wmNEW0001"]["follows"]] == ["staff0000"]
    follows = {f["staff_id"]: f for f in rows[target]["follows"]}
    assert follows[leaving]["ended_at"] is not None  # marked ended, not dropped
    assert all(follows[s]["ended_at"] is None for s in staying)
    assert rows[target]["follow_state"] == "following"
    with engine.connect() as conn:
        events = conn.execute(sa.select(WebhookEventRow.__table__)).mappings().all()
        notes = conn.execute(sa.select(MessageRow.__table__).where(MessageRow.__table__.c.platform == "wecom")).mappings().all()
    assert len(events) == 2 and {e["status"] for e in events} == {"processed"}  # the repeat was stored once
    assert sorted(n["body"]["ChangeType"] for n in notes) == ["add_external_contact", "del_follow_user"]


def test_callbacks_through_the_siyu_serve_command(tmp_path, database_url, engine):
    """The real ``siyu serve`` process: URL verification, an encrypted add event, a forgery."""
    import sys
    import time
    from pathlib import Path

    sandbox_port, hub_port = free_port(), free_port()
    spec = make_sandbox(3, 40, f"http://127.0.0.1:{sandbox_port}")
    account = dict(spec.account)
    config = tmp_path / "siyu.toml"
    config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                "accounts": [account]}))
    siyu = str(Path(sys.executable).parent / "siyu")
    with serve_asgi(spec.app, port=sandbox_port) as sandbox_url:
        with ServeProcess([siyu, "--config", str(config), "serve", "--port", str(hub_port)], hub_port) as served:
            hook = f"{served.url}/webhooks/wecom/{account['id']}"
            verified = httpx.post(f"{sandbox_url}/_admin/verify", json={"url": hook}).json()
            added = httpx.post(f"{sandbox_url}/_admin/callback", json={
                "change": "add_external_contact", "userid": "staff0000", "external_userid": "wmSERVE01",
                "url": hook, "repeat": 2}).json()
            forged = httpx.post(hook, params={"msg_signature": "0" * 40, "timestamp": "1", "nonce": "1"},
                                content=b"<xml><Encrypt>AAAA</Encrypt></xml>")
            for _ in range(200):
                if "wmSERVE01" in fan_rows(engine):
                    break
                time.sleep(0.05)
    log_text = served.log
    assert verified["status"] == 200 and verified["body"] == verified["expected"]
    assert [a["status"] for a in added["answers"]] == [200, 200] and forged.status_code == 401
    assert fan_rows(engine)["wmSERVE01"]["follow_state"] == "following"
    secret = account["secret"]
    for leaked in (secret, account["encoding_aes_key"], account["token"]):
        assert leaked not in log_text
