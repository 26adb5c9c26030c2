"""The `siyu` command: init, plugins, config check, db; exit codes and --json."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hub.storage import database as storage
from hub.errors import SchemaOutOfDate
from hub.cli import main

SIYU = shutil.which("siyu", path=str(Path(sys.executable).parent)) or "siyu"


def run(args, cwd, env=None):
    full_env = {**os.environ, **(env or {})}
    full_env.pop("SIYU_CONFIG", None)
    return subprocess.run([SIYU, *args], cwd=cwd, capture_output=True, text=True, env=full_env, timeout=120)


def snapshot(folder: Path):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_init_then_plugins_in_an_empty_folder(tmp_path):
    result = run(["init", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] and doc["revision"] == storage.head_revision()
    assert (tmp_path / "siyu.toml").exists() and (tmp_path / "siyu.db").exists()
    assert (tmp_path / "siyu.key").stat().st_mode & 0o777 == 0o600
    result = run(["plugins", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    plugins = doc["plugins"]
    by_platform = {p["platform"]: p for p in plugins}
    assert {"douyin", "wecom", "alipay", "kuaishou", "xiaohongshu", "weibo"} <= set(by_platform)
    for row in plugins:
        assert {"platform", "plugin", "version", "capabilities"} <= set(row)
        assert set(row["capabilities"]) <= {"fans", "orders", "points", "cards", "messages", "webhooks"}
    assert by_platform["weibo"]["plugin"] == "siyu-weibo"
    assert by_platform["wecom"]["plugin"] == "siyu-hub"
    result = run(["config", "check", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["accounts"] == []
    result = run(["db", "status", "--json"], tmp_path)
    assert json.loads(result.stdout)["up_to_date"] is True


def test_init_refuses_to_overwrite_and_changes_nothing(tmp_path):
    assert run(["init"], tmp_path).returncode == 0
    before = snapshot(tmp_path)
    result = run(["init"], tmp_path)
    assert result.returncode == 1
    assert "already exists" in result.stderr and "Traceback" not in result.stderr
    assert snapshot(tmp_path) == before


def test_init_with_an_unreachable_database_leaves_nothing_behind(tmp_path, capsys):
    code = main(["--config", str(tmp_path / "siyu.toml"), "init",
                 "--database-url", "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"])
    assert code == 1
    assert "cannot reach database" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_config_check_names_every_bad_key_and_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    monkeypatch.setenv("SIYU_PHONE_KEY", "x" * 32)
    config = tmp_path / "siyu.toml"
    config.write_text(
        'extra = 1\n[database]\nurl = "sqlite:///siyu.db"\nport = 5\n'
        '[[accounts]]\nplatform = "nowhere"\nid = "a"\n'
        '[[accounts]]\nplatform = "weibo"\nid = "b"\napp_key = "env:NOT_SET_ANYWHERE"\n'
    )
    before = snapshot(tmp_path)
    code = main(["--config", str(config), "config", "check", "--json"])
    out, err = capsys.readouterr()
    assert code == 1
    doc = json.loads(out)
    keys = {p["key"] for p in doc["error"]["problems"]}
    assert keys == {"extra", "database.port", "accounts[0].platform", "accounts[1].app_key", "accounts[1].app_secret"}
    assert err.startswith("Error: 5 problem(s)") and err.count("\n") == 1
    assert snapshot(tmp_path) == before


def test_malformed_toml_is_one_line_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "siyu.toml").write_text("[database\n")
    result = run(["config", "check"], tmp_path)
    assert result.returncode == 1 and "not valid TOML" in result.stderr and "Traceback" not in result.stderr
    result = run(["--debug", "config", "check"], tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr


def test_usage_errors_exit_2(tmp_path):
    assert run(["no-such-command"], tmp_path).returncode == 2
    assert run(["plugins", "--no-such-flag"], tmp_path).returncode == 2


def test_commands_needing_the_database_refuse_an_old_schema(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SIYU_PHONE_KEY", "x" * 32)
    (tmp_path / "siyu.toml").write_text('[database]\nurl = "sqlite:///fresh.db"\n')
    code = main(["--config", str(tmp_path / "siyu.toml"), "db", "status", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out)["up_to_date"] is False
    from hub.cli.context import Context

    context = Context(config_path=tmp_path / "siyu.toml")
    with pytest.raises(SchemaOutOfDate, match="siyu db upgrade"):
        context.engine()
    assert main(["--config", str(tmp_path / "siyu.toml"), "db", "upgrade", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["to"] == storage.head_revision()
    context.engine().dispose()


def test_a_broken_plugin_is_named_by_the_cli(tmp_path):
    result = run(["plugins"], tmp_path, env={"SIYU_LOAD_PLUGINS": "wecom,myspace"})
    assert result.returncode == 1 and "myspace" in result.stderr and "Traceback" not in result.stderr


def test_plugins_human_table_says_what_is_not_implemented(tmp_path):
    result = run(["plugins"], tmp_path, env={"COLUMNS": "200"})
    assert result.returncode == 0
    assert "siyu-weibo" in result.stdout and "(none yet)" in result.stdout
