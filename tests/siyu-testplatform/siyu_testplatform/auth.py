"""testplat's client-credentials token: ``POST /oauth/token`` (form), a bearer header."""

from __future__ import annotations

import httpx

import hub
from siyu_testplatform.wire import PATHS

__all__ = ["TestplatAuth"]


class TestplatAuth(hub.TokenAuth):
    def build_token_request(self, current: hub.Token | None) -> httpx.Request:
        config = self.adapter.config
        return self.adapter.client.build_request(
            "POST", PATHS["token"],
            data={"client_id": config.client_id, "client_secret": config.client_secret.get_secret_value()},
        )

    def parse_token(self, response: httpx.Response, current: hub.Token | None) -> hub.Token:
        body = hub.response_json(response, platform="testplat")
        return hub.Token(access_token=body["access_token"], expires_at=hub.expires_in(body["expires_in"]))
