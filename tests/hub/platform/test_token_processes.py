"""A token is refreshed by one process at a time across every process on the database, and the
others read the token it stored (instead of refreshing again, or, for a rotating refresh token,
refreshing with one that just died)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from hub.platform.tokens import Token
from hub.storage.tokens import DatabaseTokenStore
from hub.testing import serve_asgi
from schemas.tables import utcnow
from siyu_testplatform.sandbox import make_app

ROOT = Path(__file__).resolve().parents[3]
PROCESSES = 3
REQUESTS = 50


def test_three_processes_with_fifty_requests_each_on_an_expired_token_fetch_exactly_one(engine, database_url,
                                                                                        tmp_path):
    DatabaseTokenStore(engine).save("testplat", "main", Token("stale", utcnow() - timedelta(minutes=1)))
    go = tmp_path / "go"
    with serve_asgi(make_app(10)) as url:
        procs = [subprocess.Popen([sys.executable, "-m", "tests.hub.token_worker", database_url, url, str(go),
                                   str(REQUESTS)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(PROCESSES)]
        try:
            deadline = time.monotonic() + 120
            while len(list(tmp_path.glob("go.ready.*"))) < PROCESSES:
                assert time.monotonic() < deadline, "the workers did not start"
                assert all(p.poll() is None for p in procs), [p.stderr.read().decode()[-2000:] for p in procs]
                time.sleep(0.05)
            go.touch()  # every worker holds the stale token: all of them find it expired at once
            outputs = [p.communicate(timeout=120) for p in procs]
        finally:
            for p in procs:
                p.kill()
        stats = httpx.get(f"{url}/_admin/stats").json()
    assert [p.returncode for p in procs] == [0] * PROCESSES, [err.decode()[-2000:] for _, err in outputs]
    assert [int(out) for out, _ in outputs] == [REQUESTS] * PROCESSES
    assert stats["token_requests"] == 1, stats
    stored = DatabaseTokenStore(engine).load("testplat", "main")
    assert stored.access_token != "stale" and stored.expires_at > utcnow()


def test_tokens_are_encrypted_at_rest_when_a_key_is_configured(engine):
    from cryptography.fernet import Fernet

    from hub.people.phones import PhoneVault

    vault = PhoneVault("k" * 32, Fernet.generate_key().decode())
    store = DatabaseTokenStore(engine, vault)
    store.save("testplat", "main", Token("act.SECRET-ACCESS", utcnow(), refresh_token="rft.SECRET-REFRESH"))
    with engine.connect() as conn:
        raw = conn.exec_driver_sql("SELECT access_token, refresh_token FROM tokens").one()
    assert all(value.startswith("fernet:") and "SECRET" not in value for value in raw)
    loaded = store.load("testplat", "main")
    assert (loaded.access_token, loaded.refresh_token) == ("act.SECRET-ACCESS", "rft.SECRET-REFRESH")
    # without the key the stored tokens cannot be read, and the error says what to do
    import pytest

    from hub.errors import ConfigError

    with pytest.raises(ConfigError, match="phone_encryption_key"):
        DatabaseTokenStore(engine).load("testplat", "main")
    # a deployment without a key keeps working with what it stored in clear
    DatabaseTokenStore(engine).save("testplat", "other", Token("plain", utcnow()))
    assert store.load("testplat", "other").access_token == "plain"


def test_siyu_init_configures_the_key_that_encrypts_tokens_at_rest(tmp_path):
    import subprocess as sp

    from hub.config import load_settings
    from hub.plugins import load_plugins

    result = sp.run([sys.executable, "-m", "hub.cli", "--config", str(tmp_path / "siyu.toml"), "init", "--json"],
                    cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    settings = load_settings(load_plugins(), tmp_path / "siyu.toml")
    assert settings.phones.encrypts  # the Fernet key siyu init wrote (mode 600) is configured
    from hub.storage import database as storage

    engine = storage.create_engine(settings.database_url)
    try:
        DatabaseTokenStore(engine, settings.phones).save("wecom", "hq", Token("act.SECRET", utcnow()))
        with engine.connect() as conn:
            [stored] = conn.exec_driver_sql("SELECT access_token FROM tokens").one()
    finally:
        engine.dispose()
    assert stored.startswith("fernet:") and "SECRET" not in stored
