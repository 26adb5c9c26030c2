"""The hub's conformance kit against the Kuaishou sandbox."""

from hub.testing import AdapterConformance


class TestKuaishouConformance(AdapterConformance):
    platform = "kuaishou"
    fans = 300
