"""Shared helpers for tests that sync from the test platform's sandbox over loopback."""

from __future__ import annotations

from typing import Any

from hub.config import Settings, parse_settings
from hub.plugins import PluginHost
from siyu_testplatform.sandbox import account_settings

FAST_RETRY = {"attempts": 8, "initial_wait": 0.01, "max_wait": 0.05, "jitter": 0.01}


def settings_for(host: PluginHost, database_url: str, *accounts: dict[str, Any], retry: dict | None = None) -> Settings:
    raw = {
        "database": {"url": database_url},
        "security": {"phone_key": "test-phone-key-0123456789abcdef"},
        "retry": retry or FAST_RETRY,
        "accounts": list(accounts),
    }
    return parse_settings(raw, host)


def tp_account(base_url: str, account_id: str = "main", **extra: Any) -> dict[str, Any]:
    return {**account_settings(base_url, account_id), **extra}


def toml_for(settings_raw: dict[str, Any]) -> str:
    """Render a small config dict as TOML (strings, numbers, lists and tables only)."""
    import json

    lines = []
    for section in ("database", "security", "retry"):
        if section in settings_raw:
            lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in settings_raw[section].items()]
    for account in settings_raw.get("accounts", []):
        lines.append("[[accounts]]")
        for k, v in account.items():
            if isinstance(v, dict):
                inner = ", ".join(f"{json.dumps(a)} = {json.dumps(b)}" for a, b in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            else:
                lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def interruptible() -> None:
    """``preexec_fn`` for a child the test will stop with SIGINT, as Ctrl-C would.

    A shell without job control starts background commands with SIGINT ignored, and children
    inherit that (CI runs the suite so); restore the default so the child's Python turns SIGINT
    into ``KeyboardInterrupt`` as on a terminal.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServeProcess:
    """A ``siyu serve`` child on a loopback port; ``log`` holds its stderr once it stopped."""

    def __init__(self, command: list[str], port: int, cwd: str | None = None) -> None:
        self.command, self.port, self.cwd = command, port, cwd
        self.url = f"http://127.0.0.1:{port}"
        self.log = ""

    def __enter__(self) -> ServeProcess:
        import os
        import subprocess
        import time

        import httpx

        env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
        self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=env, preexec_fn=interruptible,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:  # wait until it listens (or has died)
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                assert time.monotonic() < deadline, "siyu serve did not start"
                time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)  # as Ctrl-C: a graceful stop that finishes background work
        try:
            self.proc.wait(30)
        finally:
            self.proc.kill()
        self.log = self.proc.stderr.read() if self.proc.stderr else ""
