"""The daemon's jobs, due times and configuration, without processes."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from hub.config import parse_settings
from hub.daemon.schedule import APPLY, OUTBOX, SYNC, next_due, plan_jobs
from hub.errors import ConfigError
from schemas.tables import utcnow
from tests.hub.outbox_helpers import PHONE_KEY, make_host


def settings(**sections):
    doc = {"database": {"url": "sqlite:///x.db"}, "security": {"phone_key": PHONE_KEY},
           "accounts": [{"platform": "cardtest", "id": "shop", "base_url": "http://127.0.0.1:1"}], **sections}
    return parse_settings(doc, make_host())


def test_defaults_and_the_jobs_of_a_configuration():
    s = settings()
    assert (s.daemon.sync_interval_seconds, s.outbox.give_up_after_hours) == (900, 24)
    jobs = plan_jobs(make_host(), s)
    assert [(j.name, j.kind) for j in jobs] == [(APPLY, APPLY), (OUTBOX, OUTBOX)]  # cardtest has no stream


def test_an_accounts_interval_overrides_the_daemons():
    host = make_host()
    doc = {"database": {"url": "sqlite:///x.db"}, "security": {"phone_key": PHONE_KEY},
           "daemon": {"sync_interval_seconds": 600, "jitter_seconds": 5},
           "accounts": [{"platform": "testplat", "id": "a", "sync_interval_seconds": 60, "client_id": "k",
                         "client_secret": "s"},
                        {"platform": "testplat", "id": "b", "client_id": "k", "client_secret": "s"}]}
    s = parse_settings(doc, host)
    syncs = {j.account_id: j.interval for j in plan_jobs(host, s) if j.kind == SYNC}
    assert syncs == {"a": 60, "b": 600}


def test_config_check_names_every_bad_daemon_and_outbox_key():
    with pytest.raises(ConfigError) as caught:
        settings(daemon={"sync_interval_seconds": 0, "bogus": 1}, outbox={"give_up_after_hours": -1})
    locations = {loc for loc, _ in caught.value.problems}
    assert {"daemon.sync_interval_seconds", "daemon.bogus", "outbox.give_up_after_hours"} <= locations


def test_due_times_jitter_and_back_off():
    from hub.daemon.schedule import Job

    job = Job("sync:x:y:fans", SYNC, 100, 10, "x", "y", "fans")
    start = utcnow()
    rng = random.Random(1)
    due = next_due(job, start, failures=0, backoff=5, rng=rng)
    assert timedelta(seconds=100) <= due - start <= timedelta(seconds=110)
    waits = [(next_due(job, start, failures=n, backoff=5, rng=random.Random(0)) - start).total_seconds()
             for n in range(1, 7)]
    jitter = random.Random(0).uniform(0, 10)
    assert [round(w - jitter, 6) for w in waits] == [5, 10, 20, 40, 80, 100]
