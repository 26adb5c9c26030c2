"""``python -m hub.cli``: the ``siyu`` command."""

import sys

from hub.cli import main

sys.exit(main())
