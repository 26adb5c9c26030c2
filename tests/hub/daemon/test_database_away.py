"""The database away for a while: the daemon does not exit, ``/healthz`` says 503, and the jobs
resume once it answers again (PostgreSQL behind a proxy the test switches off and on)."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from hub.platform.sandbox import build_sandbox
from hub.plugins import load_plugins
from hub.storage import database as storage
from hub.testing import free_port, serve_asgi
from schemas.tables import DaemonJobRow
from tests.hub.daemon.helpers import Daemon, wait_for, write_config
from tests.hub.daemon.tcp_proxy import Proxy

AWAY_SECONDS = 15


def runs(url):
    engine = storage.create_engine(url)
    try:
        with engine.connect() as conn:
            return {r.name: r.runs for r in conn.execute(sa.select(DaemonJobRow.__table__))}
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_the_daemon_waits_for_the_database_and_resumes(tmp_path, database_url):
    url = sa.make_url(database_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    port = free_port()
    spec = build_sandbox(load_plugins(), "douyin", seed=0, fans=50, base_url=f"http://127.0.0.1:{port}")
    config = write_config(tmp_path / "siyu.toml", proxied, [dict(spec.account)],
                          daemon={"sync_interval_seconds": 2})
    with serve_asgi(spec.app, port=port):
        daemon = Daemon(config, tmp_path / "daemon.log")
        try:
            daemon.wait_ready()
            wait_for(lambda: daemon.get("/healthz").status_code == 200, 60, "a healthy daemon")
            proxy.down()
            wait_for(lambda: daemon.get("/healthz").status_code == 503, 60, "/healthz to say 503")
            time.sleep(AWAY_SECONDS)  # the outage itself, not an assertion
            assert daemon.proc.poll() is None, daemon.log()[-2000:]
            before = runs(database_url)
            proxy.up()
            wait_for(lambda: daemon.get("/healthz").status_code == 200, 90, "/healthz to recover")
            wait_for(lambda: all(v >= before.get(k, 0) + 2 for k, v in runs(database_url).items()), 120,
                     "every job to run again")
            assert daemon.terminate() == 0
        finally:
            daemon.close()
            proxy.close()
