"""How commands speak: values as people read them, plain full-width tables to a pipe, one JSON shape, hints."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from hub.cli import output
from hub.cli.output import emit, human, table


@pytest.mark.parametrize("value, shown", [
    (["门店", "会员"], "门店, 会员"),
    ([], "-"),
    (None, "-"),
    ("", "-"),
    (True, "yes"),
    ({"source": "门店"}, "source=门店"),
    (datetime(2026, 12, 3, 8, 30, 1, 123456), "2026-12-03 08:30:01"),
    (42, "42"),
])
def test_values_are_shown_as_people_read_them(value, shown):
    assert human(value) == shown


def test_a_table_to_a_pipe_is_plain_and_never_cut(capsys):
    uid = "fan-0-" + "0" * 150
    table("Fans", ["platform", "uid", "tags", "member"], [("douyin", uid, ["门店"], None)])
    out = capsys.readouterr().out
    assert uid in out and "['" not in out and "None" not in out and "…" not in out
    lines = out.splitlines()
    assert lines[0] == "Fans" and lines[1].split() == ["platform", "uid", "tags", "member"]
    assert lines[2].split() == ["douyin", uid, "门店", "-"]
    assert lines[1].index("tags") == lines[2].index("门店")  # columns line up


def test_every_json_document_is_one_object_with_ok(capsys):
    emit({"ok": True, "fans": [{"uid": "u1"}]}, True, print)
    assert json.loads(capsys.readouterr().out) == {"ok": True, "fans": [{"uid": "u1"}]}
    with pytest.raises(TypeError):
        emit([{"uid": "u1"}], True, print)  # a bare array is refused


def test_hints_name_the_command_as_it_runs(monkeypatch, tmp_path):
    script = tmp_path / ".venv" / "bin" / "siyu"
    script.parent.mkdir(parents=True)
    script.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", [str(script)])
    monkeypatch.setattr("shutil.which", lambda name: None)  # not on the PATH
    assert output.command_name() == str(Path(".venv/bin/siyu"))
    assert output.hint("run `siyu db upgrade`") == "run `.venv/bin/siyu db upgrade`"
    monkeypatch.setattr("shutil.which", lambda name: str(script))  # on the PATH, and this one
    assert output.command_name() == "siyu"
    assert output.hint("run `siyu db upgrade`") == "run `siyu db upgrade`"


def test_hints_carry_the_config_the_command_was_given(monkeypatch):
    monkeypatch.setattr(output, "command_name", lambda: "siyu")
    output.use_config_in_hints(Path("demo dir/siyu.toml"))
    try:
        assert output.hint("then `siyu config check`") == "then `siyu --config 'demo dir/siyu.toml' config check`"
    finally:
        output.use_config_in_hints(None)
    assert output.hint("then `siyu config check`") == "then `siyu config check`"
