"""A tiny platform with a sandbox, for ``siyu sandbox``'s tests.

``sandtest`` lists fans at ``GET /fans?cursor=N`` (two per page), for callers that send the
account's ``X-App-Key``; the fans are drawn from ``random.Random(seed)``.  Run as a module it is
``siyu`` with this platform installed: ``python -m tests.hub.sandbox_helpers sandbox sandtest``.
"""

from __future__ import annotations

import random
import sys

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import hub
from hub.plugins import load_plugins
from hub.platform.sandbox import SandboxSpec
from schemas import Capability, Fan

APP_KEY = "sand-key"
PAGE = 2


class SandAdapter(hub.Adapter):
    platform = "sandtest"
    capabilities = frozenset({Capability.FANS})
    sandbox = "tests.hub.sandbox_helpers:make_sandbox"

    class Config(hub.AdapterConfig):
        app_key: str
        app_secret: SecretStr

    async def fetch_fans(self, account, cursor):
        response = await self.client.get("/fans", params={"cursor": cursor or "0"},
                                         headers={"X-App-Key": self.config.app_key})
        body = response.json()
        fans = [Fan(platform=account.platform, account_id=account.account_id, platform_uid=f["uid"],
                    nickname=f["nick"]) for f in body["fans"]]
        return hub.Page(items=fans, next_cursor=body["next"])


class NoSandboxAdapter(hub.Adapter):
    platform = "nosandtest"


class BrokenSandboxAdapter(hub.Adapter):
    platform = "brokensandtest"
    sandbox = "tests.hub.sandbox_helpers:not_a_spec"


class MalformedSandboxAdapter(hub.Adapter):
    platform = "malformedsandtest"
    sandbox = "tests.hub.sandbox_helpers.make_sandbox"


def not_a_spec(seed: int, fans: int, base_url: str) -> object:
    return {"app": None}


def make_sandbox(seed: int, fans: int, base_url: str) -> SandboxSpec:
    rng = random.Random(seed)
    people = [{"uid": f"u{rng.randrange(10**9):09d}", "nick": f"fan-{i}"} for i in range(fans)]

    async def list_fans(request: Request) -> JSONResponse:
        if request.headers.get("x-app-key") != APP_KEY:
            return JSONResponse({"error": "bad key"}, status_code=401)
        start = int(request.query_params.get("cursor", "0"))
        end = start + PAGE
        return JSONResponse({"fans": people[start:end], "next": str(end) if end < len(people) else None})

    app = Starlette(routes=[Route("/fans", list_fans)])
    account = {"platform": "sandtest", "id": "demo", "base_url": base_url, "app_key": APP_KEY,
               "app_secret": "sand-secret"}
    return SandboxSpec(app=app, account=account)


class SandPlugin:
    @hub.hookimpl
    def register_platforms(self, register):
        for adapter in (SandAdapter, NoSandboxAdapter, BrokenSandboxAdapter, MalformedSandboxAdapter):
            register(adapter)


def make_host():
    return load_plugins(extra=[(SandPlugin(), "undo-sandtest")])


if __name__ == "__main__":
    from hub.cli import build_app
    from hub.cli.context import Context

    context = Context()
    context._host = make_host()
    try:
        build_app(context)(args=sys.argv[1:], prog_name="siyu")
    except KeyboardInterrupt:  # as hub.cli.main: Ctrl-C is exit 130
        sys.exit(130)
