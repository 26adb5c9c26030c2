"""The conformance kit, run against the test platform (and so itself tested)."""

from hub.testing import AdapterConformance


class TestTestplatConformance(AdapterConformance):
    platform = "testplat"
    fans = 450
