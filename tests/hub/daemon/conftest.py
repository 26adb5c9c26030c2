"""Fixtures of the daemon tests: the recording card sandbox and the plugins with its platform."""

from __future__ import annotations

import pytest

from tests.hub.outbox_helpers import CardSandbox, make_host
from tests.hub.webhook_helpers import serving


@pytest.fixture
def card_sandbox():
    box = CardSandbox()
    with serving(box.app) as base_url:
        box.base_url = base_url
        yield box
        box.release.set()


@pytest.fixture
def card_host():
    return make_host()
