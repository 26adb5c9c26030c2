"""``siyu sandbox PLATFORM``: serve a plugin's sandbox and print the account that points at it."""

from __future__ import annotations

import socket
import sys

import typer
import uvicorn

from hub.cli.context import get_context
from hub.cli.output import JsonOption, console, emit, err_console
from hub.platform.sandbox import account_toml, build_sandbox

__all__ = ["sandbox"]


def sandbox(
    ctx: typer.Context,
    platform: str = typer.Argument(..., help="The platform whose sandbox to run (see `siyu plugins`)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port to listen on (0: any free port)."),
    seed: int = typer.Option(0, "--seed", min=0, max=2**32 - 1, help="Seed of the generated data."),
    fans: int = typer.Option(1000, "--fans", min=0, max=10_000_000, help="How many fans the sandbox holds."),
    as_json: bool = JsonOption,
) -> None:
    """Run PLATFORM's sandbox until interrupted; print the account settings that point at it."""
    state = get_context(ctx)
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_port = sock.getsockname()[1]
    url_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{url_host}:{bound_port}"
    try:
        spec = build_sandbox(state.host, platform, seed=seed, fans=fans, base_url=base_url)
    except BaseException:
        sock.close()
        raise
    account = dict(spec.account)
    doc = {"ok": True, "platform": platform, "base_url": base_url, "seed": seed, "fans": fans,
           "account": account, "toml": account_toml(account)}
    emit(doc, as_json, lambda d: console.print(
        f"# {d['platform']} sandbox on {d['base_url']} (seed {d['seed']}, {d['fans']} fans); "
        f"add to siyu.toml:\n\n{d['toml']}"))
    sys.stdout.flush()
    err_console.print(f"siyu sandbox: serving {platform} on {base_url}; Ctrl-C stops it")
    config = uvicorn.Config(spec.app, log_level="warning", access_log=False, lifespan="auto")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
