"""A small signed-JSON webhook platform for the receiver's tests, and a loopback server.

``hooktest`` signs ``timestamp + "." + body`` with HMAC-SHA256 under the account's secret, in
``X-Hook-Timestamp`` / ``X-Hook-Signature``; a request more than five minutes old is stale.  A
``GET`` with ``echostr`` is the URL-verification handshake, answered with the echo.  It answers
a callback with ``{"result":1}``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from pydantic import SecretStr

import hub
from hub.config import parse_settings
from hub.plugins import load_plugins
from schemas import Capability, Fan, FollowState

SECRET = "hook-secret-0123456789"
PHONE_KEY = "test-phone-key-0123456789abcdef"
FRESH_SECONDS = 300
ACK = b'{"result":1}'


def sign(body: bytes, timestamp: int, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signed(payload: dict[str, Any], *, timestamp: int | None = None, secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """A body and the headers that sign it."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    ts = int(time.time()) if timestamp is None else timestamp
    return body, {"X-Hook-Timestamp": str(ts), "X-Hook-Signature": sign(body, ts, secret),
                  "Content-Type": "application/json"}


class HookAdapter(hub.Adapter):
    platform = "hooktest"
    capabilities = frozenset({Capability.WEBHOOKS})

    class Config(hub.AdapterConfig):
        secret: SecretStr

    def _verify(self, message: bytes, timestamp: str | None, signature: str | None) -> None:
        if not timestamp or not signature or not timestamp.isdigit():
            raise hub.WebhookRejected("missing signature headers", status_code=401)
        secret = self.config.secret.get_secret_value()
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise hub.WebhookRejected("bad signature", status_code=401)
        if abs(time.time() - int(timestamp)) > FRESH_SECONDS:
            raise hub.WebhookRejected("stale timestamp", status_code=403)

    async def parse_webhook(self, account, request):
        if request.method == "GET":
            echo = request.query.get("echostr", "")
            self._verify(echo.encode(), request.query.get("timestamp"), request.query.get("signature"))
            return hub.WebhookResult(body=echo.encode())
        self._verify(request.body, request.headers.get("x-hook-timestamp"), request.headers.get("x-hook-signature"))
        data = json.loads(request.body)
        if "event" in data:  # an event the hub has no record for: kept raw
            return hub.WebhookResult(dedupe_key=data["msg_id"], raw={"event": data["event"]}, body=ACK,
                                     media_type="application/json")
        fan = Fan(platform=account.platform, account_id=account.account_id, platform_uid=data["uid"],
                  nickname=data.get("nickname"), phone=data.get("phone"),
                  follow_state=FollowState(data.get("follow", "following")))
        return hub.WebhookResult(events=[fan], dedupe_key=data["msg_id"], body=ACK, media_type="application/json")


class QuietAdapter(hub.Adapter):
    """A platform without the webhooks capability."""

    platform = "quiethook"
    capabilities = frozenset({Capability.FANS})

    async def fetch_fans(self, account, cursor):
        return hub.Page(items=[])


class Tracker:
    def __init__(self) -> None:
        self.events: list[hub.Event] = []

    @hub.hookimpl
    def register_platforms(self, register):
        register(HookAdapter)
        register(QuietAdapter)

    @hub.hookimpl
    def track_event(self, event):
        self.events.append(event)


def make_host(tracker: Tracker | None = None):
    return load_plugins(extra=[(tracker or Tracker(), "undo-hooktest")])


def make_settings(host, database_url: str):
    raw = {
        "database": {"url": database_url},
        "security": {"phone_key": PHONE_KEY},
        "accounts": [
            {"platform": "hooktest", "id": "shop", "secret": SECRET},
            {"platform": "quiethook", "id": "shop"},
        ],
    }
    return parse_settings(raw, host)


def free_socket(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


@contextmanager
def serving(app) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields its base URL."""
    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def write_config(path, database_url: str):
    path.write_text(
        f'[database]\nurl = "{database_url}"\n\n[security]\nphone_key = "{PHONE_KEY}"\n\n'
        f'[[accounts]]\nplatform = "hooktest"\nid = "shop"\nsecret = "{SECRET}"\n',
        encoding="utf-8",
    )
    return path


if __name__ == "__main__":  # ``siyu`` with hooktest installed: python -m tests.hub.webhook_helpers serve …
    import sys

    from hub.cli import build_app
    from hub.cli.context import Context

    context = Context()
    context._host = make_host()
    try:
        build_app(context)(args=sys.argv[1:], prog_name="siyu")
    except KeyboardInterrupt:
        sys.exit(130)
