"""The hub's conformance kit against the WeCom sandbox."""

from hub.testing import AdapterConformance


class TestWeComConformance(AdapterConformance):
    platform = "wecom"
    fans = 250
