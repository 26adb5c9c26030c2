"""The hub's conformance kit against the Douyin sandbox."""

from hub.testing import AdapterConformance


class TestDouyinConformance(AdapterConformance):
    platform = "douyin"
    fans = 300
