"""The operator's commands end to end: tokens, fans, db upgrade --create-dirs, config check, numbers, -h."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
import typer

import hub
from hub.cli import main
from hub.plugins import load_plugins
from hub.testing import serve_asgi
from schemas.tables import TokenRow
from siyu_testplatform.sandbox import make_app
from tests.hub.sandboxes import toml_for, tp_account

SECRET_TOKEN = "at-very-secret-0123"


@pytest.fixture
def config(tmp_path, database_url):
    path = tmp_path / "siyu.toml"
    path.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32}}))
    return path


def run(config, *args):
    return main(["--config", str(config), *args])


def test_tokens_list_shows_expiries_never_tokens_and_clear_forgets_them(config, database_url, capsys):
    engine = sa.create_engine(database_url)
    now = datetime.now(UTC).replace(microsecond=0)
    with engine.begin() as conn:
        for platform, account, expires in (("douyin", "hq", now + timedelta(hours=2)),
                                           ("douyin", "shop", now - timedelta(hours=1)),
                                           ("wecom", "hq", now + timedelta(days=1))):
            conn.execute(sa.insert(TokenRow.__table__).values(
                platform=platform, account_id=account, access_token=SECRET_TOKEN, expires_at=expires,
                refresh_token="rt-secret", extra={}, updated_at=now))
    engine.dispose()
    assert run(config, "tokens", "list", "--json") == 0
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert SECRET_TOKEN not in out and "rt-secret" not in out
    assert doc["ok"] is True
    assert [(t["platform"], t["account_id"], t["state"]) for t in doc["tokens"]] == [
        ("douyin", "hq", "valid"), ("douyin", "shop", "expired"), ("wecom", "hq", "valid")]
    assert doc["tokens"][0]["has_refresh_token"] is True
    assert run(config, "tokens", "list", "--platform", "douyin", "--account", "shop") == 0
    out = capsys.readouterr().out
    assert "expired" in out and SECRET_TOKEN not in out and "wecom" not in out
    assert run(config, "tokens", "clear", "--platform", "douyin", "--account", "hq", "--json") == 0
    assert json.loads(capsys.readouterr().out)["cleared"] == 1
    assert run(config, "tokens", "clear", "--platform", "douyin") == 0
    assert "1 stored token(s) cleared" in capsys.readouterr().out
    assert run(config, "tokens", "list", "--json") == 0
    assert [t["platform"] for t in json.loads(capsys.readouterr().out)["tokens"]] == ["wecom"]


def test_fans_list_and_show_print_objects_and_values_people_read(tmp_path, database_url, capsys):
    with serve_asgi(make_app(30)) as url:
        config = tmp_path / "siyu.toml"
        config.write_text(toml_for({"database": {"url": database_url}, "security": {"phone_key": "k" * 32},
                                    "accounts": [tp_account(url)]}))
        assert run(config, "sync", "--stream", "fans", "--json") == 0
        capsys.readouterr()
    assert run(config, "fans", "list", "--limit", "2", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and [f["platform_uid"] for f in doc["fans"]] == ["u0000000", "u0000001"]
    assert run(config, "fans", "show", "testplat", "main", "u0000003", "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["fan"]["union_id"] == "un3"
    assert run(config, "fans", "show", "testplat", "main", "u0000003") == 0
    out = capsys.readouterr().out
    assert "un3" in out and "None" not in out and "['" not in out and "{'" not in out
    member = doc["fan"]["member_id"]
    assert member is not None
    for args in (["members", "show", str(member)], ["ledger", "balance", str(member)]):
        assert run(config, *args) == 0
        out = capsys.readouterr().out
        assert "None" not in out and "['" not in out and "{'" not in out
    assert run(config, "fans", "show", "testplat", "main", "nobody", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["error"]["type"] == "NotFound"


def test_db_upgrade_refuses_a_missing_folder_unless_asked(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", "k" * 32)
    config = tmp_path / "siyu.toml"
    config.write_text('[database]\nurl = "sqlite:///typo/deeper/siyu.db"\n')
    assert run(config, "db", "upgrade") == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "--create-dirs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "typo").exists()
    assert run(config, "db", "status") == 1
    assert not (tmp_path / "typo").exists()
    assert run(config, "config", "check", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["database_check"]["reachable"] is False
    assert not (tmp_path / "typo").exists()
    assert run(config, "db", "upgrade", "--create-dirs", "--json") == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert (tmp_path / "typo" / "deeper" / "siyu.db").exists()
    assert run(config, "config", "check", "--json") == 0
    check = json.loads(capsys.readouterr().out)["database_check"]
    assert check["reachable"] and check["up_to_date"]


def test_config_check_says_when_postgresql_does_not_answer(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", "k" * 32)
    config = tmp_path / "siyu.toml"
    config.write_text('[database]\nurl = "postgresql+psycopg://nobody@127.0.0.1:1/siyu"\n')
    assert run(config, "config", "check", "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and "not reachable" in doc["database_check"]["message"]


@pytest.mark.parametrize("args", [
    ["ledger", "post", "--member", "1", "--points", "99999999999999999999", "--reason", "r", "--key", "k"],
    ["ledger", "redeem", "--member", "1", "--points", "0", "--key", "k"],
    ["ledger", "balance", "99999999999999999999"],
    ["members", "show", "0"],
    ["members", "tiers", "--member", "99999999999"],
    ["fans", "list", "--limit", "0"],
    ["outbox", "list", "--limit", "99999999999"],
    ["outbox", "drain", "--lease", "1e300"],
    ["sync", "--max-pages", "99999999999999"],
    ["sandbox", "testplat", "--fans", "-5"],
])
def test_every_number_typed_is_range_checked_in_one_line(tmp_path, capsys, args):
    assert main(["--config", str(tmp_path / "none.toml"), *args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("Error:")] != []
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # usage, try -h, the error
    assert main(["--config", str(tmp_path / "none.toml"), *args, "--json"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["error"]["type"] == "UsageError" and doc["error"]["message"]


@pytest.mark.parametrize("args", [["-h"], ["fans", "-h"], ["fans", "list", "-h"], ["tokens", "clear", "-h"]])
def test_dash_h_works_like_help(args, capsys):
    assert main(args) == 0
    assert "Usage:" in capsys.readouterr().out


def test_an_unexpected_error_is_one_line_unless_debug(capsys):
    class Plugin:
        @hub.hookimpl
        def register_commands(self, cli: typer.Typer) -> None:
            @cli.command("boom")
            def boom() -> None:
                raise RuntimeError("secret detail")

    host = load_plugins(extra=[(Plugin(), "boom-plugin")])
    assert main(["boom"], host=host) == 1
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "--debug" in err and "secret detail" not in err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(RuntimeError):
        main(["--debug", "boom"], host=load_plugins(extra=[(Plugin(), "boom-plugin")]))


def test_a_plugins_command_runs_though_siyu_help_does_not_load_plugins(monkeypatch, capsys):
    import hub.plugins

    class Plugin:
        @hub.hookimpl
        def register_commands(self, cli: typer.Typer) -> None:
            @cli.command("hello")
            def hello(name: str) -> None:
                typer.echo(f"hello {name}")

    loads = []
    real = hub.plugins.load_plugins

    def load_plugins(*args, **kwargs):
        loads.append(1)
        return real(*args, extra=[(Plugin(), "hello-plugin")])

    monkeypatch.setattr(hub.plugins, "load_plugins", load_plugins)
    assert main(["--help"]) == 0 and loads == []
    assert "Plugins may add commands" in capsys.readouterr().out
    assert main(["hello", "weibo"]) == 0 and loads == [1]
    assert capsys.readouterr().out == "hello weibo\n"
    assert main(["nosuch"]) == 2
    assert "No such command" in capsys.readouterr().err
