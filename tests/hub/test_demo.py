"""`siyu demo`: every installed sandbox synced into one database, twice without duplicates."""

import json

import sqlalchemy as sa

from hub.cli import main
from hub.storage.database import open_database


def test_demo_syncs_every_sandbox_and_a_second_run_adds_nothing(tmp_path, capsys):
    args = ["demo", "--dir", str(tmp_path / "demo"), "--fans", "40", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["ok"] and first["fans"] > 0 and first["members"] > 0
    platforms = {s["platform"] for s in first["streams"]}
    assert "testplat" in platforms
    assert all(s["complete"] and s["error"] is None for s in first["streams"])
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert sum(s["inserted"] for s in second["streams"]) == 0
    assert second["fans"] == first["fans"] and second["members"] == first["members"]
    engine = open_database(f"sqlite:///{tmp_path / 'demo' / 'siyu.db'}")
    with engine.connect() as conn:
        unmembered = conn.execute(sa.text("SELECT count(*) FROM fans WHERE member_id IS NULL")).scalar_one()
    engine.dispose()
    assert unmembered == 0
    assert (tmp_path / "demo" / "siyu.key").stat().st_mode & 0o777 == 0o600
