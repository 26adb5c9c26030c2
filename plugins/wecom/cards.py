"""Member-card push-back to a 公众号 member card (微信卡券): ``card/membercard/updateuser``.

WeCom has no points or membership API (research file A5), so a brand whose member card lives in
a 公众号 configures that 公众号 on its WeCom account (``mp_app_id``, ``mp_app_secret``,
``card_id``).  The push sends ``bonus`` (the new total, which the card shows) together with
``add_bonus`` (used only in the notification text), so sending the same card twice leaves it as
the first send did: the push is idempotent.

The 公众号 has its own access token, ``GET {mp_base_url}/cgi-bin/token?grant_type=client_credential
&appid=&secret=``.  :class:`WeComMpAuth` keeps it apart from the corp token: it is a second
:class:`hub.platform.auth.TokenAuth` stored under ``"<account id>:mp"``, and
:class:`plugins.wecom.adapter.WeComAuth` hands it the requests that go to the 公众号's endpoints
(:func:`mp_endpoint`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

import hub
from hub import Token, TokenAuth, TokenStore, expires_in
from hub import check_response, response_json
from schemas import Account, MemberCard

if TYPE_CHECKING:
    from hub import Adapter

__all__ = ["ADD_BONUS", "MP_KEYS", "MP_PATHS", "MP_STORE_SUFFIX", "WeComMpAuth", "missing_keys", "mp_endpoint",
           "mp_url", "push_card"]

MP_PATHS = {
    "token": "/cgi-bin/token",
    "update": "/card/membercard/updateuser",
}
"""The 公众号 paths, relative to ``mp_base_url``."""

MP_KEYS = ("mp_app_id", "mp_app_secret", "card_id")
"""The options an account needs to push member cards."""

MP_STORE_SUFFIX = ":mp"
"""The 公众号 token is stored under the account id plus this suffix, never with the corp token."""

ADD_BONUS = 0
"""The hub's card carries only the new total, so the delta is not known honestly: 0.  The
research file says ``add_bonus`` only feeds the notification text; ``bonus`` sets the total."""


def mp_url(config: Any, key: str) -> str:
    """The absolute URL of a 公众号 endpoint for this account."""
    return f"{str(config.mp_base_url).rstrip('/')}{MP_PATHS[key]}"


def mp_endpoint(config: Any, url: httpx.URL) -> str | None:
    """``"token"`` or ``"update"`` when ``url`` is that 公众号 endpoint of this account, else ``None``.

    Matched by scheme, host, port *and* path, so the corp's calls never take the 公众号 token even
    when both base URLs point at one server (as the sandbox does).
    """
    base = httpx.URL(str(config.mp_base_url).rstrip("/"))
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        return None
    prefix = base.path.rstrip("/")
    for key, path in MP_PATHS.items():
        if url.path == prefix + path:
            return key
    return None


def missing_keys(config: Any) -> list[str]:
    """The member-card options this account lacks (empty when it can push)."""
    return [key for key in MP_KEYS if not getattr(config, key)]


class WeComMpAuth(TokenAuth):
    """The 公众号 token: ``GET cgi-bin/token?grant_type=client_credential&appid=&secret=``.

    :param account_id: the account's own id; the token is stored under ``account_id + ":mp"``,
        while errors keep naming the account.
    """

    def __init__(self, adapter: Adapter, store: TokenStore, account_id: str) -> None:
        super().__init__(adapter, store, f"{account_id}{MP_STORE_SUFFIX}")
        self.owner = account_id

    def build_token_request(self, current: Token | None) -> httpx.Request:
        config: Any = self.adapter.config
        missing = missing_keys(config)
        if missing:
            raise _missing(missing, self.owner)
        return self.adapter.client.build_request("GET", mp_url(config, "token"), params={
            "grant_type": "client_credential", "appid": config.mp_app_id,
            "secret": config.mp_app_secret.get_secret_value()})

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        check_response(self.adapter, response, account_id=self.owner)
        body = response_json(response, platform=self.adapter.platform, account_id=self.owner)
        try:
            return Token(access_token=body["access_token"], expires_at=expires_in(int(body["expires_in"])))
        except (KeyError, TypeError, ValueError):
            raise hub.PermanentError("the 公众号 token endpoint answered without access_token/expires_in",
                                     platform=self.adapter.platform, account_id=self.owner,
                                     endpoint=response.request.url.path) from None

    def apply(self, request: httpx.Request, token: Token) -> None:
        request.url = request.url.copy_merge_params({"access_token": token.access_token})


def _missing(missing: list[str], account_id: str) -> hub.PlatformConfigError:
    return hub.PlatformConfigError(
        f"member-card push-back needs {', '.join(missing)} (the 公众号 holding the card) in this account",
        platform="wecom", account_id=account_id)


async def push_card(adapter: Adapter, account: Account, card: MemberCard) -> hub.PushResult:
    """Set the card's ``bonus`` to ``card.balance`` (see the module docstring).

    :raises hub.PlatformConfigError: the account lacks ``mp_app_id``/``mp_app_secret``/``card_id``
        (nothing is sent).
    """
    config: Any = adapter.config
    missing = missing_keys(config)
    if missing:
        raise _missing(missing, account.account_id)
    if not card.card_no:
        return hub.PushResult(accepted=False, detail="the member has no card code (card_no) on this account")
    body = {"code": card.card_no, "card_id": config.card_id, "bonus": card.balance, "add_bonus": ADD_BONUS,
            "record_bonus": config.record_bonus}
    response = await adapter.client.post(mp_url(config, "update"), json=body)
    answer = response_json(response, platform=adapter.platform, account_id=account.account_id)
    shown = answer.get("result_bonus") if isinstance(answer, dict) else None
    if not _equals(shown, card.balance):
        return hub.PushResult(accepted=False, detail=f"the 公众号 answered result_bonus={shown!r}, "
                                                     f"not the bonus sent ({card.balance})")
    return hub.PushResult(accepted=True, detail=f"the card shows {card.balance} points")


def _equals(value: Any, expected: int) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return int(value) == expected
    except (TypeError, ValueError):
        return False
