"""Webhook receiver throughput: signed WeCom callbacks at concurrency 32 against ``siyu serve`` and ``siyu daemon``.

Each run starts, as separate processes, the WeCom sandbox (``siyu sandbox wecom``: the platform
the contact changes' follow-ups read) and the server under test (``siyu serve`` or
``siyu daemon``) with its own ``siyu.toml`` and a fresh database (a SQLite file, or a new
PostgreSQL database on 127.0.0.1:5432).  This process then builds every callback before the clock
starts, as WeCom sends them (the message XML AES-256-CBC encrypted into the ``Encrypt`` envelope,
``msg_signature`` the SHA-1 over token, timestamp, nonce and ciphertext), and sends them over
loopback from ``--concurrency`` keep-alive connections.  Callbacks are distinct: text messages
with their own ``MsgId`` and sender, and ``change_external_contact`` events (``--contact-changes``
of them) each naming its own ``ExternalUserID``; ``--replays`` of the sends repeat a callback
already sent (the same bytes, as a platform re-delivering it).

Reported per run: accepted callbacks per second (2xx answers over the send window), p50 and p99
latency of those answers, errors (anything but the expected acknowledgement), and, read from the
database after the server stopped, whether every distinct callback was stored exactly once and
how many are processed.  ``processed_after_s`` is how long after the last send every callback was
processed (the follow-ups' calls out included).

    .venv/bin/python benchmarks/bench_webhooks.py --callbacks 5000 --rounds 3
    .venv/bin/python benchmarks/bench_webhooks.py --targets serve --backends sqlite --callbacks 2000
    git archive OLD | tar -x -C /tmp/old && \
        .venv/bin/python benchmarks/bench_webhooks.py --baseline-tree /tmp/old --rounds 3
    # a baseline from before httptools and uvloop were dependencies runs without them:
    .venv/bin/python benchmarks/bench_webhooks.py --baseline-tree /tmp/old --baseline-hide httptools,uvloop
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from databases import throwaway  # noqa: E402
from hub.storage import database as storage  # noqa: E402
from plugins.wecom.wire import MsgCrypt, envelope, message_xml  # noqa: E402

SIYU = [sys.executable, "-m", "hub.cli"]
START_TIMEOUT = 60.0


@dataclass
class Callback:
    """One prepared request and the dedupe key the receiver must store it under."""

    request: bytes
    key: str


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(folder: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any], str]:
    """``siyu sandbox wecom`` on a free port; returns the process, the account and its TOML."""
    proc = subprocess.Popen([*SIYU, "sandbox", "wecom", "--fans", "50", "--json"], cwd=folder,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    text = b""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        text += line
        if line.startswith(b"}"):
            doc = json.loads(text)
            return proc, doc["account"], doc["toml"]
    proc.kill()
    raise SystemExit("the WeCom sandbox did not start")


def write_config(path: Path, url: str, account_toml: str) -> None:
    path.write_text("\n".join([
        "[database]", f"url = {json.dumps(url)}", "",
        "[security]", 'phone_key = "bench-phone-key-0123456789abcdef"', "",
        # the daemon: no sync during the measurement (its first one runs at start, before it)
        "[daemon]", "sync_interval_seconds = 86400", "jitter_seconds = 0", "",
        account_toml.replace('id = "sandbox"', 'id = "hq"'), "",
    ]), encoding="utf-8")


def hiding(folder: Path, modules: list[str]) -> str:
    """A folder whose modules of these names fail to import: put on ``PYTHONPATH``, the baseline
    runs as it did before they were dependencies (uvicorn picks httptools and uvloop when present)."""
    shim = folder / "hidden-modules"
    shim.mkdir(exist_ok=True)
    for name in modules:
        (shim / f"{name}.py").write_text(f"raise ImportError('{name} is hidden from the baseline')\n")
    return str(shim)


def start_server(target: str, config: Path, port: int, log: Path, tree: str | None,
                 hide: list[str] | None = None) -> subprocess.Popen[bytes]:
    command = [*SIYU, "--config", str(config), target, "--port", str(port)]
    if target == "daemon":
        command.append("--json-logs")
    env = dict(os.environ)
    if tree:  # the server from another source tree (an older commit): the baseline
        env["PYTHONPATH"] = os.pathsep.join([tree, hiding(config.parent, hide)] if hide else [tree])
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=err, env=env)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"siyu {target} exited: {log.read_text(errors='replace')[-1500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"siyu {target} did not answer /healthz within {START_TIMEOUT}s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM if "daemon" in proc.args else signal.SIGINT)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def build_callbacks(account: dict[str, Any], count: int, contact_changes: float, prefix: str,
                    rng: random.Random) -> list[Callback]:
    """``count`` distinct callbacks, encrypted and signed as WeCom sends them."""
    crypt = MsgCrypt(account["token"], account["encoding_aes_key"], account["corp_id"])
    path = "/webhooks/wecom/hq"
    now = int(time.time())
    out = []
    for i in range(count):
        if rng.random() < contact_changes:
            message = message_xml({
                "ToUserName": account["corp_id"], "FromUserName": "sys", "CreateTime": now, "MsgType": "event",
                "Event": "change_external_contact", "ChangeType": "add_external_contact", "UserID": "staff001",
                "ExternalUserID": f"wm{prefix}{i:07d}", "State": "bench", "WelcomeCode": f"WC{prefix}{i}"})
            key = "evt:" + hashlib.sha256(message).hexdigest()
        else:
            msg_id = f"{int(hashlib.md5(prefix.encode()).hexdigest()[:5], 16)}{i:09d}"
            message = message_xml({
                "ToUserName": account["corp_id"], "FromUserName": f"user{prefix}{i}", "CreateTime": now,
                "MsgType": "text", "Content": f"你好 {i}", "MsgId": msg_id, "AgentID": account["agent_id"]})
            key = f"msg:{msg_id}"
        encrypted = crypt.encrypt(message)
        timestamp, nonce = str(now), str(rng.randrange(10**9))
        query = urlencode({"msg_signature": crypt.sign(timestamp, nonce, encrypted), "timestamp": timestamp,
                           "nonce": nonce})
        body = envelope(account["corp_id"], encrypted, account["agent_id"])
        head = (f"POST {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        out.append(Callback(head + body, key))
    return out


async def _send_all(port: int, requests: list[bytes], concurrency: int) -> tuple[list[float], list[str], float]:
    """Send every request over ``concurrency`` keep-alive connections; latencies of 200s, errors, seconds."""
    queue = list(reversed(requests))
    latencies: list[float] = []
    errors: list[str] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                request = queue.pop()
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                body = await reader.readexactly(length) if length else b""
                elapsed = time.perf_counter() - started
                if status == 200 and body == b"":
                    latencies.append(elapsed)
                else:
                    errors.append(f"{status} {body[:60]!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    results = await asyncio.gather(*(connection() for _ in range(concurrency)), return_exceptions=True)
    seconds = time.perf_counter() - started
    errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    return latencies, errors, seconds


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def wait_processed(engine: sa.Engine, expected: int, timeout: float) -> tuple[int, float | None]:
    """Poll until ``expected`` events left ``received``; returns (processed, seconds or None)."""
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < timeout:
        with engine.connect() as conn:
            done = conn.exec_driver_sql(
                "SELECT count(*) FROM webhook_events WHERE status <> 'received'").scalar_one()
        if done >= expected:
            return done, time.monotonic() - started
        time.sleep(0.2)
    return done, None


def run(target: str, backend: str, args: argparse.Namespace, folder: Path, seed: int,
        tree: str | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    url, drop = throwaway(backend, folder)
    sandbox, account, account_toml = start_sandbox(folder)
    server = None
    try:
        engine = storage.create_engine(url)
        storage.upgrade(engine)
        config = folder / f"siyu-{target}-{backend}.toml"
        write_config(config, url, account_toml)
        port = free_port()
        log = folder / f"{target}-{backend}.log"
        hide = args.baseline_hide.split(",") if tree and args.baseline_hide else None
        server = start_server(target, config, port, log, tree, hide)
        prefix = f"{target[0]}{backend[0]}{seed}"
        warm = build_callbacks(account, 200, args.contact_changes, prefix + "w", rng)
        calls = build_callbacks(account, args.callbacks, args.contact_changes, prefix, rng)
        sends = [c.request for c in calls]
        replays = int(len(calls) * args.replays)
        for _ in range(replays):  # a re-delivery of one sent before it
            at = rng.randrange(len(sends) // 2, len(sends) + 1)
            sends.insert(at, calls[rng.randrange(at // 2 + 1)].request)
        asyncio.run(_send_all(port, [c.request for c in warm], args.concurrency))
        wait_processed(engine, len(warm), 60)
        if target == "daemon":
            time.sleep(1.0)  # its first sync of the sandbox's 50 fans is over by now
        # the thousands of prepared requests stay out of this process's collector while it sends: a
        # full pass over them would pause the load generator and count as the server's latency
        gc.collect()
        gc.freeze()
        try:
            latencies, errors, seconds = asyncio.run(_send_all(port, sends, args.concurrency))
        finally:
            gc.unfreeze()
        processed, drained = wait_processed(engine, len(warm) + len(calls), args.drain_timeout)
        stop(server)
        server = None
        with engine.connect() as conn:
            keys = [k for (k,) in conn.exec_driver_sql("SELECT dedupe_key FROM webhook_events")]
            statuses = dict(conn.exec_driver_sql(
                "SELECT status, count(*) FROM webhook_events GROUP BY status").all())
        engine.dispose()
        expected = {c.key for c in calls} | {c.key for c in warm}
        counts: dict[str, int] = {}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        stored_once = sum(1 for key in expected if counts.get(key) == 1)
        log_text = log.read_text(errors="replace")
        leaked = any(secret in log_text for secret in (account["token"], account["encoding_aes_key"], "你好"))
        return {
            "code": "baseline" if tree else "current", "target": target, "backend": backend, "callbacks": len(calls), "replays": replays,
            "sent": len(sends), "concurrency": args.concurrency,
            "accepted_per_s": round(len(latencies) / seconds, 1),
            "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
            "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
            "errors": len(errors), "error_samples": sorted(set(errors))[:3],
            "stored_exactly_once": stored_once == len(expected) and len(keys) == len(expected),
            "rows": len(keys), "rows_expected": len(expected),
            "statuses": statuses, "processed_after_s": None if drained is None else round(drained, 2),
            "secrets_in_log": leaked, "seconds": round(seconds, 2),
        }
    finally:
        if server is not None:
            stop(server)
        stop(sandbox)
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--callbacks", type=int, default=5000, help="distinct callbacks a run sends")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--contact-changes", type=float, default=0.5,
                        help="share of change_external_contact events (the rest are text messages)")
    parser.add_argument("--replays", type=float, default=0.1, help="re-deliveries, as a share of --callbacks")
    parser.add_argument("--targets", default="serve,daemon")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the median is reported")
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--baseline-tree", help="also run the servers from this source tree (e.g. an older "
                        "commit's `git archive`), interleaved, and report the ratios")
    parser.add_argument("--baseline-hide", default="", help="modules the baseline server must not import, "
                        "comma-separated (e.g. httptools,uvloop: dependencies it did not have)")
    args = parser.parse_args()
    codes: list[tuple[str, str | None]] = [("current", None)]
    if args.baseline_tree:
        codes.append(("baseline", str(Path(args.baseline_tree).resolve())))
    combos = [(t, b) for t in args.targets.split(",") for b in args.backends.split(",")]
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for target, backend in combos:
                for _name, tree in codes if round_no % 2 == 0 else codes[::-1]:  # interleaved
                    result = run(target, backend, args, Path(tmp), seed=round_no, tree=tree)
                    print(json.dumps(result, ensure_ascii=False), file=sys.stderr, flush=True)
                    runs.append(result)
    summary = []
    for name, _tree in codes:
        for target, backend in combos:
            mine = [r for r in runs if r["code"] == name and r["target"] == target and r["backend"] == backend]
            summary.append({
                "code": name, "target": target, "backend": backend, "rounds": len(mine),
                "accepted_per_s": statistics.median(r["accepted_per_s"] for r in mine),
                "p50_ms": statistics.median(r["p50_ms"] for r in mine),
                "p99_ms": statistics.median(r["p99_ms"] for r in mine),
                "errors": sum(r["errors"] for r in mine),
                "stored_exactly_once": all(r["stored_exactly_once"] for r in mine),
                "processed_after_s": [r["processed_after_s"] for r in mine],
                "secrets_in_log": any(r["secrets_in_log"] for r in mine),
            })
    ratios = []
    if args.baseline_tree:
        for target, backend in combos:
            now, before = (next(s for s in summary if s["code"] == c and s["target"] == target
                                and s["backend"] == backend) for c in ("current", "baseline"))
            ratios.append({"target": target, "backend": backend,
                           "accepted_per_s": round(now["accepted_per_s"] / before["accepted_per_s"], 2),
                           "p99_ms": round(now["p99_ms"] / before["p99_ms"], 3)})
    print(json.dumps({"callbacks": args.callbacks, "concurrency": args.concurrency,
                      "contact_changes": args.contact_changes, "replays": args.replays,
                      "cpus": os.cpu_count(), "median": summary, "current_over_baseline": ratios, "runs": runs},
                     indent=2, ensure_ascii=False))

if __name__ == "__main__":
    main()
