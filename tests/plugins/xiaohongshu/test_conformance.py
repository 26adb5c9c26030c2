"""The hub's conformance kit against the Xiaohongshu sandbox."""

from hub.testing import AdapterConformance


class TestXiaohongshuConformance(AdapterConformance):
    platform = "xiaohongshu"
    fans = 300
