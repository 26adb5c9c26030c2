"""Access tokens as an ``httpx.Auth`` flow, cached in the database per account.

A plugin subclasses :class:`TokenAuth` (``hub.TokenAuth``) and overrides small methods:

- :meth:`~TokenAuth.build_token_request` — the request that obtains (or refreshes) a token;
- :meth:`~TokenAuth.parse_token` — the :class:`Token` in the platform's answer;
- :meth:`~TokenAuth.apply` — put the token on a request (a bearer header by default; WeCom wants
  a query parameter);

and, where the platform needs them:

- :meth:`~TokenAuth.initial_token` / :meth:`~TokenAuth.reconcile` — a token an operator
  configured, and which of it and the stored one to start from;
- :meth:`~TokenAuth.needs_renewal`, :meth:`~TokenAuth.build_renewal_request`,
  :meth:`~TokenAuth.parse_renewal`, :meth:`~TokenAuth.renewal_refused` — a step that runs before
  the refresh, for a credential that itself expires (Douyin renews its refresh token);
- :meth:`~TokenAuth.check_token_response`, :attr:`~TokenAuth.error_codes`,
  :meth:`~TokenAuth.error_code` — how the token endpoint's and this credential's answers map to
  hub errors, when that differs from the adapter's table.

The flow refreshes a token ahead of its expiry, refreshes exactly once however many requests
wait on an expired token (an ``asyncio.Lock`` and a version check), persists a rotated refresh
token before the new access token is used, and when the platform rejects a token mid-flight
(a :class:`hub.TokenExpired` code in the body) refreshes once and re-sends.  A token request is
part of the request that needed it, so the HTTP client's per-request retries cover it.

**Second credentials.**  An account may need another token besides its main one (WeCom's 公众号
token for member cards, Douyin's app ``client_token``, Alipay's ``app_auth_token``).  The adapter
declares each as ``credentials = {"mp": MpAuth}``; the hub builds the flow with the account's
token store, keyed ``"<account_id>#mp"``, and the adapter passes ``auth=self.credential("mp")``
on the requests that use it.  The flow's own :attr:`~TokenAuth.error_codes` map those requests'
answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable, Mapping
import hashlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
from pydantic import AwareDatetime, Field, SecretStr

from hub.adapter import AdapterConfig
from hub.errors import PlatformError, TokenExpired
from hub.platform.errormap import ErrorEntry, ErrorSource, check_response
from hub.platform.tokens import Token, TokenStore

if TYPE_CHECKING:
    from hub.adapter import Adapter

__all__ = ["GrantConfig", "GrantTokenAuth", "TokenAuth"]


class TokenAuth(httpx.Auth):
    """The token flow of one account's credential; see the module docstring for the override points.

    :param adapter: the account's adapter (its ``config`` holds the credentials, its ``client``
        builds token requests).
    :param store: where tokens are kept between processes.
    :param account_id: the account; errors and logs name it.
    :param credential: ``None`` for the account's main token, else the name of a second credential
        (see :attr:`hub.Adapter.credentials`); its token is stored apart, under
        ``"<account_id>#<credential>"``.
    """

    requires_response_body = True
    refresh_margin: ClassVar[timedelta] = timedelta(minutes=5)
    """Refresh this long before the token expires."""

    error_codes: ClassVar[Mapping[Any, ErrorEntry] | None] = None
    """The body codes of responses to requests this flow authorised, when they mean something
    else than the adapter's table says (a second credential talking to another API); ``None``:
    the adapter's :attr:`hub.Adapter.error_codes`."""

    def __init__(self, adapter: Adapter, store: TokenStore, account_id: str, *, credential: str | None = None) -> None:
        self.adapter = adapter
        self.store = store
        self.account_id = account_id
        self.credential = credential
        self.store_key = account_id if credential is None else f"{account_id}#{credential}"
        self._lock = asyncio.Lock()
        self._token: Token | None = None
        self.refreshes = 0

    @property
    def platform(self) -> str:
        return self.adapter.platform

    # -- override points: obtaining and using a token ------------------------------------

    def build_token_request(self, current: Token | None) -> httpx.Request:
        """The request that obtains a token; ``current`` is the old one (for refresh tokens)."""
        raise NotImplementedError

    def parse_token(self, response: httpx.Response, current: Token | None) -> Token:
        """The token in the platform's answer (already checked by :meth:`check_token_response`);
        raise a hub error when there is none."""
        raise NotImplementedError

    def apply(self, request: httpx.Request, token: Token) -> None:
        """Put the token on ``request`` (a bearer header by default)."""
        request.headers["Authorization"] = f"Bearer {token.access_token}"

    def initial_token(self) -> Token | None:
        """A token known before any is fetched (e.g. one an operator configured)."""
        return None

    def reconcile(self, stored: Token | None) -> Token | None:
        """The token to start from, given the stored one (``None``: none stored).

        By default the stored token, else :meth:`initial_token`.  Override to prefer a token an
        operator configured after the stored one was issued (a new authorisation); a token
        returned here that differs from ``stored`` is saved.
        """
        return stored or self.initial_token()

    def is_fresh(self, token: Token | None) -> bool:
        """Whether ``token`` may be used as it is (not within :attr:`refresh_margin` of expiry)."""
        return token is not None and token.expires_at - self.refresh_margin > datetime.now(UTC)

    def check_token_response(self, response: httpx.Response) -> None:
        """Raise the hub error a token (or renewal) answer stands for; by default the same table
        as every other response of this flow (:meth:`check`)."""
        self.check(response)

    # -- override points: a step before the refresh (e.g. renewing a refresh token) -------

    def needs_renewal(self, token: Token | None) -> bool:
        """Whether a renewal step must run before anything else is sent (default: never).

        A renewal is for a credential that itself expires (Douyin renews its refresh token).
        """
        return False

    def build_renewal_request(self, token: Token) -> httpx.Request:
        """The renewal request, when :meth:`needs_renewal` says so."""
        raise NotImplementedError

    def parse_renewal(self, response: httpx.Response, token: Token) -> Token:
        """The token after a successful renewal (already checked by :meth:`check_token_response`)."""
        raise NotImplementedError

    def renewal_refused(self, error: PlatformError, token: Token) -> Token:
        """What to go on with when the platform refuses the renewal: by default the error stands.

        Return a token (e.g. ``token`` marked so that :meth:`needs_renewal` says no for a while)
        to go on with the current credential; it is saved.  Retryable errors should be raised
        again so that the request is retried.
        """
        raise error

    # -- helpers for subclasses ----------------------------------------------------------

    def check(self, response: httpx.Response) -> None:
        """Raise the hub error ``response`` stands for, through this flow's error table."""
        check_response(self.errors, response, account_id=self.account_id)

    @property
    def errors(self) -> ErrorSource:
        """What maps this flow's responses to hub errors: the flow itself when it declares
        :attr:`error_codes`, else the adapter."""
        return self if self.error_codes is not None else self.adapter

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        """Where the code is in a response of this flow (default: where the adapter finds it)."""
        return self.adapter.error_code(response)

    # -- the flow ------------------------------------------------------------------------

    def _rejects_token(self, response: httpx.Response) -> bool:
        try:
            self.check(response)
        except TokenExpired:
            return True
        except PlatformError:
            return False
        return False

    async def current(self) -> Token | None:
        """The token in use (loaded from the store and reconciled on first use)."""
        if self._token is None:  # the store is read (and written) off the event loop
            stored = await asyncio.to_thread(self.store.load, self.adapter.platform, self.store_key)
            token = self.reconcile(stored)
            if token is not None and token is not stored:
                await asyncio.to_thread(self.store.save, self.adapter.platform, self.store_key, token)
            self._token = token
        return self._token

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.current()
        steps: list[tuple[str, Callable[[Token | None], bool]]] = [
            ("renewal", self.needs_renewal), ("refresh", lambda t: not self.is_fresh(t))]
        while True:
            for step, due in steps:
                if due(token):
                    exchange = self._exchange(step, due)
                    try:  # relay the exchange's request (if any) and its answer between httpx and it
                        answer = yield await exchange.__anext__()
                        await exchange.asend(answer)
                    except StopAsyncIteration:
                        pass
                    finally:
                        await exchange.aclose()
                    token = self._token
            assert token is not None
            self._apply(request, token)
            response = yield request
            await response.aread()
            if len(steps) == 1 or not self._rejects_token(response):
                return
            rejected = token  # refreshed once, unless another request put a new one in its place
            steps = [("refresh", lambda t: t is rejected)]

    async def _exchange(self, step: str, due: Callable[[Token | None], bool]) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """One renewal or refresh, single-flight: in this process (an ``asyncio.Lock``) and across
        processes (the store's :class:`~hub.platform.tokens.TokenSlot`).  Under both, the stored
        token is read again; when another process already replaced the one this flow holds, that
        one is taken and nothing is sent.  Otherwise yields the one request, then saves the new
        token through the slot before anything uses it."""
        async with self._lock:
            token = self._token
            if not due(token):
                return  # done by another request of this process meanwhile
            slot = self.store.slot(self.adapter.platform, self.store_key)
            await slot.acquire()
            try:
                stored = await slot.load()
                if stored is not None and stored != token:  # another process renewed or refreshed it
                    self._token = token = stored
                    if not due(token):
                        return
                if token is None and step == "renewal":
                    return
                answer = yield (self.build_renewal_request(token) if step == "renewal"  # type: ignore[arg-type]
                                else self.build_token_request(token))
                await answer.aread()
                if step == "renewal":
                    assert token is not None
                    try:
                        self.check_token_response(answer)
                        fresh = self.parse_renewal(answer, token)
                    except PlatformError as exc:
                        fresh = self.renewal_refused(exc, token)
                else:
                    self.check_token_response(answer)
                    fresh = self.parse_token(answer, token)
                    self.refreshes += 1
                await slot.save(fresh)  # persisted before use
                self._token = fresh
            finally:
                await slot.release()

    def _apply(self, request: httpx.Request, token: Token) -> None:
        self.apply(request, token)
        request.extensions["siyu.auth"] = self  # its responses map through self.errors

    def sync_auth_flow(self, request: httpx.Request) -> Any:  # pragma: no cover - the hub is async
        raise RuntimeError("TokenAuth works with httpx.AsyncClient only")


LONG_AGO = datetime(1970, 1, 1, tzinfo=UTC)


class GrantConfig(AdapterConfig):
    """The tokens a merchant's authorisation issued, as an operator configures them; the base of
    the ``Config`` of a platform whose tokens come that way (Douyin, Kuaishou, Xiaohongshu)."""

    access_token: SecretStr = Field(description="the access token the merchant's authorisation issued")
    refresh_token: SecretStr = Field(description="the refresh token that came with it")
    access_token_expires_at: AwareDatetime | None = Field(
        default=None, description="when the configured access token expires; unknown: refresh first")
    refresh_token_expires_at: AwareDatetime | None = Field(
        default=None, description="when the configured refresh token expires, if known")


def grant_seed(refresh_token: str) -> str:
    """Which configured grant a stored token descends from, without keeping the token itself."""
    return hashlib.sha256(refresh_token.encode()).hexdigest()[:16]


class GrantTokenAuth(TokenAuth):
    """A token flow that starts from a :class:`GrantConfig`: the configured tokens are the first
    ones; the stored token is used while it descends from the configured grant, and when an
    operator configures a new grant (the merchant authorised the app again) that one wins.

    A subclass still says how to refresh (:meth:`build_token_request`, :meth:`parse_token`,
    :meth:`apply`); :meth:`grant_extra` adds what else the configured token carries.
    """

    def grant_extra(self) -> dict[str, Any]:
        """More of the configured token's :attr:`Token.extra` (Douyin: the renewals already used)."""
        return {}

    def initial_token(self) -> Token:
        config = self.adapter.config
        refresh = config.refresh_token.get_secret_value()
        return Token(
            access_token=config.access_token.get_secret_value(),
            expires_at=config.access_token_expires_at or LONG_AGO,
            refresh_token=refresh,
            refresh_expires_at=config.refresh_token_expires_at,
            extra={**self.grant_extra(), "seed": grant_seed(refresh)},
        )

    def reconcile(self, stored: Token | None) -> Token | None:
        seed = grant_seed(self.adapter.config.refresh_token.get_secret_value())
        if stored is not None and stored.extra.get("seed") == seed:
            return stored
        return self.initial_token()
