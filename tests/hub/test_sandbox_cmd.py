"""``siyu sandbox PLATFORM``: serve a plugin's sandbox and print the account that points at it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import build_app
from hub.cli.context import Context
from hub.config import parse_settings
from hub.errors import NotFound, PluginError, UnknownPlatform
from hub.platform.account import open_account
from hub.platform.sandbox import SandboxSpec, account_toml, build_sandbox
from tests.hub.sandbox_helpers import make_host
from tests.hub.sandboxes import interruptible

ROOT = Path(__file__).resolve().parents[2]
PHONE_KEY = "test-phone-key-0123456789abcdef"


@pytest.fixture(scope="module")
def host():
    return make_host()


def start(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
    return subprocess.Popen(preexec_fn=interruptible, args=[sys.executable, "-m", "tests.hub.sandbox_helpers", "sandbox", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_until(proc: subprocess.Popen, done) -> str:
    """Stdout up to the line for which ``done(line)`` holds (the command prints before serving)."""
    lines = []
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"siyu sandbox ended early: {proc.stderr.read()}")
        lines.append(line)
        if done(line):
            return "".join(lines)


def stop(proc: subprocess.Popen) -> int:
    """Ctrl-C: the sandbox shuts down cleanly, exit 130 as for any interrupted siyu command."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(30)
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()
    return code


async def all_fans(host, account: dict) -> list[str]:
    settings = parse_settings({"security": {"phone_key": PHONE_KEY}, "accounts": [account]}, host)
    uids, cursor = [], None
    async with open_account(host, settings, settings.accounts[0]) as handle:
        while True:
            page = await handle.call("fetch_fans", cursor)
            uids += [fan.platform_uid for fan in page.items]
            cursor = page.next_cursor
            if cursor is None:
                return uids


def test_json_account_points_at_the_running_sandbox(host):
    proc = start("sandtest", "--seed", "3", "--fans", "5", "--json")
    try:
        doc = json.loads(read_until(proc, lambda line: line == "}\n"))
        assert doc["ok"] and doc["platform"] == "sandtest" and (doc["seed"], doc["fans"]) == (3, 5)
        account = doc["account"]
        assert account["base_url"] == doc["base_url"] and doc["base_url"].startswith("http://127.0.0.1:")
        assert tomllib.loads(doc["toml"]) == {"accounts": [account]}
        uids = asyncio.run(all_fans(host, account))
        assert len(uids) == 5 and len(set(uids)) == 5
        # the same seed gives the same fans
        assert uids == asyncio.run(all_fans(host, {**account, "base_url": doc["base_url"]}))
    finally:
        assert stop(proc) == 130


def test_text_output_is_a_toml_snippet(host):
    proc = start("sandtest", "--fans", "3")
    try:
        text = read_until(proc, lambda line: line.startswith("app_secret"))
        [account] = tomllib.loads(text)["accounts"]
        assert account["platform"] == "sandtest" and account["app_key"] == "sand-key"
        assert len(asyncio.run(all_fans(host, account))) == 3
    finally:
        stop(proc)


def test_same_seed_same_data_other_seed_other_data(host):
    spec = build_sandbox(host, "sandtest", seed=1, fans=4, base_url="http://sandbox")
    assert isinstance(spec, SandboxSpec) and spec.account["base_url"] == "http://sandbox"
    again = build_sandbox(host, "sandtest", seed=1, fans=4, base_url="http://sandbox")
    other = build_sandbox(host, "sandtest", seed=2, fans=4, base_url="http://sandbox")

    async def uids(s):
        import httpx
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=s.app), base_url="http://sandbox") as c:
            return [f["uid"] for f in (await c.get("/fans", params={"cursor": 0},
                                                   headers={"X-App-Key": "sand-key"})).json()["fans"]]

    assert asyncio.run(uids(spec)) == asyncio.run(uids(again)) != asyncio.run(uids(other))


@pytest.mark.parametrize(("platform", "error", "text"), [
    ("nosandtest", NotFound, "ships no sandbox"),
    ("brokensandtest", PluginError, "not a hub.platform.sandbox.SandboxSpec"),
    ("malformedsandtest", PluginError, "module:function"),
    ("nosuchplatform", UnknownPlatform, "unknown platform"),
])
def test_platforms_without_a_usable_sandbox(host, platform, error, text):
    with pytest.raises(error, match=text):
        build_sandbox(host, platform, seed=0, fans=1, base_url="http://x")
    context = Context()
    context._host = host
    result = CliRunner().invoke(build_app(context), ["sandbox", platform, "--json"])
    assert isinstance(result.exception, error)  # main() turns it into one line and exit 1


def test_the_real_command_fails_in_one_line_for_an_unknown_platform(tmp_path):
    siyu = Path(sys.executable).parent / "siyu"
    env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
    result = subprocess.run([str(siyu), "sandbox", "nosuchplatform"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()] and "unknown platform 'nosuchplatform'" in result.stderr


def test_account_toml_quotes_what_needs_quoting():
    account = {"platform": "x", "id": "a b", "base_url": "http://h:1", "secret": 'q"uote', "n": 3,
               "flag": True, "rate": 1.5, "tags": ["a", "b"], "extra": {"k": "v"}, "键": "值"}
    assert tomllib.loads(account_toml(account)) == {"accounts": [account]}
