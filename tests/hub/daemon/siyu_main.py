"""``siyu`` with the ``cardtest`` platform installed besides the built-in ones, as the real entry
point runs it (exit codes, one-line errors): ``python -m tests.hub.daemon.siyu_main ARGS``."""

from __future__ import annotations

import sys

from hub.cli import main
from tests.hub.outbox_helpers import make_host

if __name__ == "__main__":
    sys.exit(main(host=make_host()))
