"""The hub's conformance kit against the Alipay sandbox (cards and webhooks; Alipay offers no
paged stream, so the paging checks are skipped with that reason)."""

from hub.testing import AdapterConformance


class TestAlipayConformance(AdapterConformance):
    platform = "alipay"
    fans = 50
