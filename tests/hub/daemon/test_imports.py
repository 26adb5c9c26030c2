"""Importing the daemon's modules changes nothing in the process: no signal handler, no logging
handler, no lock, no thread."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import logging, signal, threading
before = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), list(logging.getLogger().handlers),
          threading.active_count())
import hub.daemon.engine_pg, hub.daemon.local, hub.daemon.metrics, hub.daemon.schedule, hub.daemon.server
import hub.daemon.service, hub.daemon.state, hub.daemon.work, hub.cli.daemon, hub.cli.status
after = (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT), list(logging.getLogger().handlers),
         threading.active_count())
assert before == after, (before, after)
print("ok")
"""


def test_importing_the_daemon_has_no_side_effect():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
