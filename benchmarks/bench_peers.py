"""CPU and memory per synced record: ``siyu sync`` beside a bare loop and a dlt pipeline, in one run.

One WeCom sandbox (``siyu sandbox wecom``, its own process, loopback) holds ``--customers``
customers (about 1.18 follow relations each).  Each round runs, each in a fresh process and
into a fresh SQLite file:

- ``siyu``: the real CLI, ``siyu --config … sync --stream fans --no-apply --json`` with a fresh
  config (``complete_follows = false``, the default) and a freshly migrated database.  Start-up
  imports count in, as they do for a user; ``siyu_startup`` is the same command up to the point
  where it checks its selection (``--account`` naming no account: imports, config, plugins),
  measured the same way, a lower bound of what start-up costs;
- ``bare``: ``httpx.Client`` and ``sqlite3`` only (this file's ``--child bare``): the same calls
  (token, staff list, ``batch/get_by_user`` per chunk and cursor), the same rows into the same
  ``fans`` table (a customer's relations as ``follows`` merged by ``staff_id``, remark mobiles
  as keyed phone hashes in ``identity_keys``) with one ``executemany`` upsert and the checkpoint
  in one transaction a page; no validation, no token store, no rate limiter, no retries;
- ``dlt``: a dlt pipeline (``--child dlt``, the ``bench`` extra) whose resource makes the same
  calls (with dlt's own ``requests`` helper) and yields each page's relations, one row per
  (customer, staff member), merged on that key (``--dlt-write append`` to append) into SQLite
  through dlt's ``sqlalchemy`` destination.

The clients run one after another, in an order rotated every round, so that the machine's
drifts favour none.  Each child's CPU (user + sys, its waited-for children included) and peak
RSS come from ``os.wait4``; the sandbox counts the calls each one made.  Figures are medians over
the rounds; ``records`` are the follow relations read (the same for the three).

``--rss-sizes 10000,100000,1000000`` instead runs ``siyu sync`` alone against a sandbox of each
size and prints its peak RSS and CPU per size (is memory flat?).

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_peers.py --customers 20000 --rounds 5
    .venv/bin/python benchmarks/bench_peers.py --rss-sizes 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SIYU = shutil.which("siyu", path=str(BIN)) or "siyu"
PHONE_KEY = "bench-phone-key-0123456789abcdef"
CLIENTS = ("siyu", "bare", "dlt")
IMPORTS = {"bare": "httpx, sqlite3", "dlt": "dlt, dlt.sources.helpers.requests, dlt.destinations"}
"""What the peers import before their first call (their share of start-up, a lower bound)."""


# -- the sandbox and the clients' processes -----------------------------------------------------


def start_sandbox(customers: int, folder: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """``siyu sandbox wecom`` in its own process; its ``--json`` document (account and TOML)."""
    out = folder / f"sandbox-{customers}.json"
    with out.open("wb") as sink:
        proc = subprocess.Popen([SIYU, "sandbox", "wecom", "--fans", str(customers), "--json"],
                                stdout=sink, stderr=subprocess.DEVNULL, cwd=folder)
    deadline = time.monotonic() + 1800  # a corp of a million customers takes a while to generate
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the sandbox exited with {proc.returncode}")
        try:
            doc = json.loads(out.read_text())
            stats(doc["base_url"])
            return proc, doc
        except (ValueError, OSError):
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("the sandbox did not start")


def stats(base_url: str) -> dict[str, int]:
    """Calls the sandbox answered so far, per endpoint."""
    with urllib.request.urlopen(f"{base_url}/_admin/stats", timeout=5) as answer:
        return json.loads(answer.read())  # type: ignore[no-any-return]


def measured(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``argv``; its CPU seconds (user + sys), peak RSS (MB), exit status and stdout."""
    out = cwd / "stdout.txt"
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE, cwd=cwd, env=env)
        started = time.monotonic()
        # wait4 reaps the child: read stderr only after it has gone (a child writing more than a
        # pipe's buffer to stderr would block; none of these does unless it fails)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return {"cpu_s": usage.ru_utime + usage.ru_stime, "user_s": usage.ru_utime, "sys_s": usage.ru_stime,
            "rss_mb": usage.ru_maxrss / 1024, "wall_s": wall, "exit": proc.returncode,
            "stdout": out.read_text(errors="replace"), "stderr": err[-2000:]}


def siyu_config(folder: Path, database: Path, account_toml: str) -> Path:
    config = folder / "siyu.toml"
    config.write_text(f'[database]\nurl = "sqlite:///{database}"\n\n[security]\nphone_key = "{PHONE_KEY}"\n\n'
                      f"{account_toml}complete_follows = false\n")
    return config


def migrated_template(folder: Path, account_toml: str) -> Path:
    """An empty database at the current schema revision, copied for each round."""
    template = folder / "template.db"
    config = siyu_config(folder, template, account_toml)
    subprocess.run([SIYU, "--config", str(config), "db", "upgrade"], check=True, stdout=subprocess.DEVNULL)
    return template


def fresh_copy(template: Path, folder: Path) -> Path:
    folder.mkdir(parents=True)
    database = folder / "fans.db"
    shutil.copyfile(template, database)
    return database


def run_client(name: str, folder: Path, template: Path, doc: dict[str, Any], dlt_write: str) -> dict[str, Any]:
    """One client's run in a fresh folder and database: its measures, calls and records."""
    before = stats(doc["base_url"])
    if name in ("siyu", "siyu_startup"):
        database = fresh_copy(template, folder)
        config = siyu_config(folder, database, doc["toml"])
        argv = [SIYU, "--config", str(config), "sync", "--stream", "fans", "--no-apply", "--json"]
        if name == "siyu_startup":
            argv += ["--account", "no-such-account"]
        result = measured(argv, folder)
        if name == "siyu_startup":
            return result
        if result["exit"] != 0:
            raise RuntimeError(f"siyu sync exited {result['exit']}: {result['stderr']}")
        [stream] = json.loads(result["stdout"])["streams"]
        result.update(rows=_count(database, "fans"), hub_api_calls=stream["api_calls"])
    elif name == "bare":
        database = fresh_copy(template, folder)
        argv = [sys.executable, __file__, "--child", "bare", "--child-db", str(database),
                "--child-account", json.dumps(doc["account"])]
        result = measured(argv, folder)
        if result["exit"] != 0:
            raise RuntimeError(f"the bare loop exited {result['exit']}: {result['stderr']}")
        result.update(json.loads(result["stdout"]), rows=_count(database, "fans"))
    else:
        folder.mkdir(parents=True)
        database = folder / "dlt.db"
        env = {**os.environ, "RUNTIME__DLTHUB_TELEMETRY": "false", "DLT_DATA_DIR": str(folder / "dlt-data")}
        argv = [sys.executable, __file__, "--child", "dlt", "--child-db", str(database),
                "--child-account", json.dumps(doc["account"]), "--dlt-write", dlt_write]
        result = measured(argv, folder, env=env)
        if result["exit"] != 0:
            raise RuntimeError(f"the dlt pipeline exited {result['exit']}: {result['stderr']}")
        result.update(json.loads(result["stdout"]))
    after = stats(doc["base_url"])
    result["calls"] = sum(after.values()) - sum(before.values())
    del result["stdout"], result["stderr"]
    return result


def _count(database: Path, table: str) -> int:
    import sqlite3

    with sqlite3.connect(database) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


# -- the bare loop and the dlt pipeline (each runs as ``--child``) ------------------------------


def _wecom_pages(get: Any, post: Any, account: dict[str, Any]) -> Any:
    """Every ``batch/get_by_user`` page of the corp: the calls the hub makes, in its order
    (token, staff list, then ≤100 staff a chunk, 100 relations a call, following ``next_cursor``)."""
    token = get("/cgi-bin/gettoken", {"corpid": account["corp_id"], "corpsecret": account["secret"]})
    auth = {"access_token": token["access_token"]}
    staff = sorted(set(get("/cgi-bin/externalcontact/get_follow_user_list", auth)["follow_user"]))
    for start in range(0, len(staff), 100):
        chunk, cursor = staff[start:start + 100], ""
        while True:
            body = post("/cgi-bin/externalcontact/batch/get_by_user", auth,
                        {"userid_list": chunk, "cursor": cursor, "limit": 100})
            if body.get("errcode"):
                raise RuntimeError(f"WeCom answered {body.get('errcode')}: {body.get('errmsg')}")
            yield body["external_contact_list"]
            cursor = body.get("next_cursor") or ""
            if not cursor:
                break


MERGE_FOLLOWS = """(SELECT json_group_array(json(value)) FROM (SELECT value FROM (
    SELECT value FROM json_each(fans.follows)
     WHERE json_extract(value, '$.staff_id') NOT IN
           (SELECT json_extract(value, '$.staff_id') FROM json_each(excluded.follows))
    UNION ALL SELECT value FROM json_each(excluded.follows))
    ORDER BY json_extract(value, '$.staff_id')))"""

BARE_UPSERT = f"""INSERT INTO fans (platform, account_id, platform_uid, union_id, nickname, avatar_url, gender,
    follow_state, tags, follows, interactions, identity_keys, needs_stitch, needs_card, inserted_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, 'following', '[]', ?, '{{}}', ?, 1, 0, ?, ?)
ON CONFLICT (platform_uid, platform, account_id) DO UPDATE SET
    union_id = excluded.union_id, nickname = excluded.nickname, avatar_url = excluded.avatar_url,
    gender = excluded.gender, follow_state = excluded.follow_state, follows = {MERGE_FOLLOWS},
    identity_keys = json_patch(fans.identity_keys, excluded.identity_keys), needs_stitch = 1,
    updated_at = excluded.updated_at"""

BARE_CHECKPOINT = """INSERT INTO sync_checkpoints (platform, account_id, stream, cursor, updated_at)
VALUES ('wecom', ?, 'fans', ?, ?)
ON CONFLICT (platform, account_id, stream) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at"""


def child_bare(database: str, account: dict[str, Any]) -> dict[str, Any]:
    """Pages in, rows out, one transaction a page: the least a client can do for the same rows."""
    import hmac
    import re
    import sqlite3
    from datetime import UTC, datetime

    import httpx

    genders = {0: "unknown", 1: "male", 2: "female"}
    mobile = re.compile(r"1[3-9]\d{9}")
    key = PHONE_KEY.encode()
    conn = sqlite3.connect(database, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    relations = pages = 0
    with httpx.Client(base_url=account["base_url"]) as client:
        def get(path: str, params: dict[str, str]) -> Any:
            return client.get(path, params=params).json()

        def post(path: str, params: dict[str, str], body: Any) -> Any:
            return client.post(path, params=params, json=body).json()

        for items in _wecom_pages(get, post, account):
            customers: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]] = {}
            for item in items:
                contact = item["external_contact"]
                customers.setdefault(contact["external_userid"], (contact, []))[1].append(item["follow_info"])
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            rows = []
            for uid, (contact, follows) in customers.items():
                follows.sort(key=lambda f: f["userid"])
                keys = {}
                for follow in follows:
                    for number in follow.get("remark_mobiles") or []:
                        if mobile.fullmatch(number):
                            digest = hmac.digest(key, f"+86{number}".encode(), "sha256").hex()
                            keys[f"phone:{digest[:12]}"] = digest
                relations_json = json.dumps([
                    {"staff_id": f["userid"],
                     "followed_at": datetime.fromtimestamp(f["createtime"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                     "remark": f.get("remark") or None, "tag_ids": f.get("tag_id") or [],
                     "add_way": f.get("add_way"), "state": f.get("state") or None, "ended_at": None}
                    for f in follows], ensure_ascii=False, separators=(",", ":"))
                rows.append(("wecom", account["id"], uid, contact.get("unionid"), contact.get("name") or None,
                             contact.get("avatar") or None, genders.get(contact.get("gender"), "unknown"),
                             relations_json, json.dumps(keys, separators=(",", ":")), now, now))
            conn.execute("BEGIN")
            conn.executemany(BARE_UPSERT, rows)
            conn.execute(BARE_CHECKPOINT, (account["id"], str(pages), now))
            conn.execute("COMMIT")
            relations += len(items)
            pages += 1
    conn.close()
    return {"records": relations, "pages": pages}


def child_dlt(database: str, account: dict[str, Any], write: str) -> dict[str, Any]:
    """The same pages through a dlt pipeline into SQLite (dlt's ``sqlalchemy`` destination)."""
    import dlt
    from dlt.sources.helpers import requests

    base = account["base_url"]

    def get(path: str, params: dict[str, str]) -> Any:
        return requests.get(base + path, params=params).json()

    def post(path: str, params: dict[str, str], body: Any) -> Any:
        return requests.post(base + path, params=params, json=body).json()

    counted = {"records": 0, "pages": 0}

    @dlt.resource(name="wecom_relations", write_disposition=write, primary_key=("external_userid", "userid"))
    def wecom_relations() -> Any:
        for items in _wecom_pages(get, post, account):
            counted["records"] += len(items)
            counted["pages"] += 1
            yield [{**item["external_contact"], **item["follow_info"]} for item in items]

    pipeline = dlt.pipeline(pipeline_name="bench_peers", destination=dlt.destinations.sqlalchemy(f"sqlite:///{database}"),
                            dataset_name="wecom", pipelines_dir=str(Path(database).parent / "pipelines"))
    info = pipeline.run(wecom_relations())
    info.raise_on_failed_jobs()
    with pipeline.sql_client() as client:
        rows = client.execute_sql(f"SELECT count(*) FROM {client.make_qualified_table_name('wecom_relations')}")
    return {**counted, "rows": int(rows[0][0])}


def same_fans(one: Path, other: Path) -> bool:
    """Whether two databases hold the same fans (ids and write times aside)."""
    import sqlite3

    columns = ("platform, account_id, platform_uid, union_id, phone_hash, nickname, avatar_url, gender, follow_state, "
               "followed_at, tags, json(follows), interactions, json(identity_keys), needs_stitch, needs_card")
    with sqlite3.connect(one) as conn:
        conn.execute("ATTACH DATABASE ? AS other", (str(other),))
        differ = conn.execute(f"SELECT count(*) FROM (SELECT {columns} FROM main.fans EXCEPT "
                              f"SELECT {columns} FROM other.fans)").fetchone()[0]
        counts = conn.execute("SELECT (SELECT count(*) FROM main.fans), (SELECT count(*) FROM other.fans)").fetchone()
    return differ == 0 and counts[0] == counts[1]


# -- the report ---------------------------------------------------------------------------------


def median(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


def compare(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    proc, doc = start_sandbox(args.customers, folder)
    try:
        template = migrated_template(folder, doc["toml"])
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in (*CLIENTS, "siyu_startup")}
        for round_no in range(args.rounds):
            shift = round_no % len(CLIENTS)
            order = [*CLIENTS[shift:], *CLIENTS[:shift]]
            for name in order:
                runs[name].append(run_client(name, folder / f"r{round_no}-{name}", template, doc, args.dlt_write))
            runs["siyu_startup"].append(run_client("siyu_startup", folder / f"r{round_no}-startup", template, doc,
                                                   args.dlt_write))
    finally:
        proc.terminate()
        proc.wait()
    records = runs["bare"][0]["records"]
    report: dict[str, Any] = {
        "customers": args.customers, "relations": records, "rounds": args.rounds, "dlt_write": args.dlt_write,
        "order": "rotated each round", "cpu": "user+sys of the child (os.wait4)", "rss": "ru_maxrss of the child",
    }
    for name in CLIENTS:
        rs = runs[name]
        for r in rs:
            if r.get("records", records) != records:
                raise RuntimeError(f"{name} read {r['records']} relations, the bare loop {records}")
        cpu = median([r["cpu_s"] for r in rs])
        report[name] = {
            "cpu_s_median": cpu, "cpu_s_each": [round(r["cpu_s"], 2) for r in rs],
            "user_s_median": median([r["user_s"] for r in rs]), "sys_s_median": median([r["sys_s"] for r in rs]),
            "rss_mb_median": median([r["rss_mb"] for r in rs], 1), "rss_mb_each": [round(r["rss_mb"], 1) for r in rs],
            "wall_s_median": median([r["wall_s"] for r in rs], 2),
            "records": records, "rows": rs[0]["rows"],
            "cpu_ms_per_1000_records": round(cpu * 1e6 / records, 1),
            "calls": rs[0]["calls"], "calls_per_record": round(rs[0]["calls"] / records, 4),
        }
    report["siyu"]["hub_counted_calls"] = runs["siyu"][0]["hub_api_calls"]
    startup = runs["siyu_startup"]
    report["siyu_startup"] = {"cpu_s_median": median([r["cpu_s"] for r in startup]),
                              "rss_mb_median": median([r["rss_mb"] for r in startup], 1),
                              "what": "siyu sync up to its selection check (imports, config, plugins)"}
    for name, modules in IMPORTS.items():
        alone = [measured([sys.executable, "-c", f"import {modules}"], folder) for _ in range(3)]
        report[name]["import_cpu_s_median"] = median([r["cpu_s"] for r in alone])
    s, b, d = report["siyu"], report["bare"], report["dlt"]
    report["bare_rows_equal_siyu_rows"] = same_fans(folder / "r0-siyu" / "fans.db", folder / "r0-bare" / "fans.db")
    report["ratios"] = {
        "cpu_siyu_to_dlt": round(s["cpu_s_median"] / d["cpu_s_median"], 3),
        "cpu_siyu_to_bare": round(s["cpu_s_median"] / b["cpu_s_median"], 3),
        "rss_siyu_to_dlt": round(s["rss_mb_median"] / d["rss_mb_median"], 3),
        "rss_siyu_to_bare": round(s["rss_mb_median"] / b["rss_mb_median"], 3),
    }
    report["goals"] = {"cpu_siyu_to_dlt": "< 1", "cpu_siyu_to_bare": "<= 1.5", "rss_siyu_to_dlt": "< 1"}
    return report


def rss_by_size(sizes: list[int], folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        started = time.monotonic()
        proc, doc = start_sandbox(size, folder)
        sandbox_start = time.monotonic() - started
        try:
            template = migrated_template(folder, doc["toml"])
            r = run_client("siyu", folder / f"size-{size}", template, doc, "merge")
        finally:
            proc.terminate()
            proc.wait()
        out[str(size)] = {"rss_mb": round(r["rss_mb"], 1), "cpu_s": round(r["cpu_s"], 2), "wall_s": round(r["wall_s"], 1),
                          "fans": r["rows"], "calls": r["calls"], "sandbox_start_s": round(sandbox_start, 1)}
        print(json.dumps({str(size): out[str(size)]}), file=sys.stderr, flush=True)
        shutil.rmtree(folder / f"size-{size}", ignore_errors=True)
    smallest, largest = out[str(min(sizes))], out[str(max(sizes))]
    return {"siyu_sync_by_size": out, "rss_ratio_largest_to_smallest": round(largest["rss_mb"] / smallest["rss_mb"], 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000, help="customers in the WeCom sandbox")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the three clients, in rotated order")
    parser.add_argument("--dlt-write", choices=["merge", "append"], default="merge",
                        help="dlt's write disposition (merge: idempotent, as siyu and the bare loop are)")
    parser.add_argument("--rss-sizes", default="", help="comma-separated corp sizes: siyu sync alone, peak RSS each")
    parser.add_argument("--child", choices=["bare", "dlt"], help=argparse.SUPPRESS)
    parser.add_argument("--child-db", help=argparse.SUPPRESS)
    parser.add_argument("--child-account", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "bare":
        print(json.dumps(child_bare(args.child_db, json.loads(args.child_account))))
        return
    if args.child == "dlt":
        print(json.dumps(child_dlt(args.child_db, json.loads(args.child_account), args.dlt_write)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as tmp:
        folder = Path(tmp)
        if args.rss_sizes:
            report = rss_by_size([int(s) for s in args.rss_sizes.split(",") if s], folder)
        else:
            report = compare(args, folder)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
