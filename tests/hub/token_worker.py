"""One process of the cross-process token test: hold a stale token, wait for the start signal,
then send many requests at once through the account's client."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from hub.platform.account import open_account
from hub.plugins import load_plugins
from hub.storage import database as storage
from tests.hub.sandboxes import settings_for, tp_account


async def run(database_url: str, base_url: str, go: Path, requests: int) -> int:
    host = load_plugins()
    settings = settings_for(host, database_url, tp_account(base_url))
    engine = storage.create_engine(database_url)
    async with open_account(host, settings, settings.accounts[0], engine=engine) as handle:
        await handle.client.auth.current()  # the stale token, read before the others refresh it
        Path(f"{go}.ready.{requests}.{id(handle)}").touch()
        while not go.exists():
            await asyncio.sleep(0.005)
        answers = await asyncio.gather(*(handle.client.get("/v1/fans", params={"count": 1}) for _ in range(requests)))
    engine.dispose()
    return sum(1 for a in answers if a.status_code == 200)


if __name__ == "__main__":
    url, base, go, n = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    started = time.monotonic()
    print(asyncio.run(run(url, base, go, n)))
