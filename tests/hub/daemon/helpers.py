"""Running ``siyu daemon`` processes in tests: config, start, wait, stop, poll.

Daemons run as ``python -m tests.hub.daemon.siyu_main`` (``siyu`` with the ``cardtest`` platform
installed besides the built-in ones).  Every wait polls a condition with a generous deadline:
the machine running the suite may be loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from hub.testing import free_port
from tests.hub.outbox_helpers import PHONE_KEY
from tests.hub.sandboxes import interruptible

ROOT = Path(__file__).resolve().parents[3]
START_TIMEOUT = 90.0


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def write_config(path: Path, database_url: str, accounts: list[dict[str, Any]], *,
                 daemon: dict[str, Any] | None = None, outbox: dict[str, Any] | None = None,
                 retry: dict[str, Any] | None = None) -> Path:
    """A siyu.toml with short intervals for tests."""
    sections = {
        "database": {"url": database_url},
        "security": {"phone_key": PHONE_KEY},
        "retry": {"attempts": 2, "initial_wait": 0.05, "max_wait": 0.1, "jitter": 0, **(retry or {})},
        "daemon": {"sync_interval_seconds": 3600, "jitter_seconds": 0, "apply_interval_seconds": 1,
                   "outbox_interval_seconds": 0.5, "stop_timeout_seconds": 20, "failure_backoff_seconds": 1,
                   **(daemon or {})},
        "outbox": outbox or {},
    }
    lines = []
    for name, values in sections.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items() if v is not None]
        lines.append("")
    for account in accounts:
        lines.append("[[accounts]]")
        for key, value in account.items():
            if isinstance(value, dict):
                inner = ", ".join(f"{json.dumps(k)} = [{', '.join(map(str, v))}]" for k, v in value.items())
                lines.append(f"{key} = {{ {inner} }}")
            else:
                lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


class Daemon:
    """One ``siyu daemon`` child process.

    :param config: its siyu.toml.
    :param log: where its stderr goes.
    """

    def __init__(self, config: Path, log: Path, *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hub.daemon.siyu_main", "--config", str(config), "daemon",
             "--port", str(self.port), "--json-logs"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self._log, preexec_fn=interruptible)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The ready line the daemon prints on stdout once it serves."""
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        os.set_blocking(self.proc.stdout.fileno(), False)
        buffer = b""
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()
            if chunk:
                buffer += chunk
                if b"\n" in buffer:
                    return json.loads(buffer.split(b"\n", 1)[0])
            if self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}: {self.log()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError(f"the daemon did not start within {timeout}s: {self.log()[-2000:]}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str, timeout: float = 30.0) -> httpx.Response:
        return httpx.get(self.url + path, timeout=timeout)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        if self.proc.stdout:
            self.proc.stdout.close()
        self._log.close()


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it is truthy (and return it), or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def siyu(config: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SIYU_CONFIG"}
    return subprocess.run([sys.executable, "-m", "tests.hub.daemon.siyu_main", "--config", str(config), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def douyin_callback(account: dict[str, Any], event: str, content: dict[str, Any], *, sender: str,
                    msg_id: str) -> tuple[bytes, dict[str, str]]:
    """A Douyin callback signed with the account's client secret (SHA-1 of secret + body)."""
    body = json.dumps({"event": event, "from_user_id": sender, "to_user_id": account["open_id"],
                       "client_key": account["client_key"], "content": json.dumps(content, ensure_ascii=False),
                       "log_id": msg_id}, ensure_ascii=False).encode()
    signature = hashlib.sha1(str(account["client_secret"]).encode() + body).hexdigest()
    return body, {"Content-Type": "application/json", "X-Douyin-Signature": signature, "Msg-Id": msg_id}
