"""The adapter contract: what a platform plugin implements.

An adapter class describes one platform.  It declares what it is with class attributes and its
per-account options with a nested pydantic model; the hub reads those declarations and never
probes with ``hasattr``::

    class WeComAdapter(hub.Adapter):
        platform = "wecom"
        default_base_url = "https://qyapi.weixin.qq.com"
        capabilities = frozenset({hub.Capability.FANS, hub.Capability.WEBHOOKS})

        class Config(hub.AdapterConfig):
            corp_id: str
            secret: pydantic.SecretStr

        async def fetch_fans(self, account, cursor):
            ...
            return hub.Page(items=fans, next_cursor=cursor_or_none)

The hub builds one adapter per configured account, handing it the validated ``Config`` and an
``httpx.AsyncClient`` whose base URL, timeouts, retries and logging it owns.  Each capability
implies the methods below; declaring a capability without overriding its methods is a plugin
error at registration.

Paged reads are stateless: ``fetch_*(account, cursor)`` returns a :class:`Page`; a ``None``
``next_cursor`` ends the stream.  The hub owns the loop and stores the cursor together with the
page's records in one transaction.  Pushes must be idempotent: the hub may send the same push
again after a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from hub.errors import PluginError
from hub.platform.tokens import MemoryTokenStore
from schemas import Capability

if TYPE_CHECKING:
    import httpx

    from hub.platform.tokens import TokenStore

    from schemas import Account, Fan, MemberCard, Message, Order, PointsEvent, Record

__all__ = [
    "CAPABILITY_METHODS",
    "Adapter",
    "AdapterConfig",
    "Page",
    "PushResult",
    "WebhookRequest",
    "WebhookResult",
]

T = TypeVar("T")


class AdapterConfig(BaseModel):
    """Base of an adapter's per-account options (the platform keys of an ``[[accounts]]`` entry).

    Unknown keys are rejected, so a misspelled option is an error rather than ignored.  Declare
    secrets as ``pydantic.SecretStr`` so that they never print.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a paged read.

    :param items: the canonical records of this page (may be empty).
    :param next_cursor: the opaque cursor of the next page; ``None`` when the stream is done.
    :param notes: facts the sync summary should report (e.g. a platform cap that was reached).
    :param resume_cursor: on the last page (``next_cursor`` ``None``) of a stream read by update
        time: where the next pass starts (its high-water mark), stored as the stream's checkpoint;
        ``None``: the next pass starts from the beginning.
    """

    items: Sequence[T]
    next_cursor: str | None = None
    notes: tuple[str, ...] = ()
    resume_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: ``accepted`` by the platform, with the platform's reference if any.

    :param card_no: the card's number on the platform, when a card push learned it (it opened the
        card, or found the one the member holds); the hub records it on the member card, and on
        the fan that reported the number the push was sent to, in the transaction that records
        the push; later pushes of that card carry it.
    """

    accepted: bool
    reference: str | None = None
    detail: str | None = None
    card_no: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """A callback exactly as it arrived: the body is the raw bytes, before any parsing."""

    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """What an adapter made of a verified callback.

    :param events: canonical records (fans, messages, orders, points events) to store.
    :param dedupe_key: the platform's message id, so a replay is stored once.
    :param status_code: the HTTP status the platform expects.
    :param body: the exact response body the platform expects (``success``, an echo, …).
    :param media_type: the response's content type.
    :param raw: the event as the platform sent it, minus phone numbers and secrets, stored with the
        callback (JSON-serialisable); how an event the hub has no record for is kept.
    :param follow_up: what is left to do that needs the platform (a customer to read, an order to
        fetch): a small JSON-serialisable mapping stored with the callback and handed later to
        :meth:`Adapter.complete_webhook`.  ``parse_webhook`` itself never calls out.
    :param sequence: the state this event changes (``"follow:<open_id>"``, ``"account"``), when it
        is one of several events that overwrite each other; with ``occurred_at``, an event older
        than one already applied for the same ``sequence`` changes nothing.
    :param occurred_at: when the platform says the event happened (from the signed content).
    """

    events: Sequence[object] = ()
    dedupe_key: str | None = None
    status_code: int = 200
    body: bytes = b""
    media_type: str = "text/plain"
    raw: Mapping[str, object] = field(default_factory=dict)
    follow_up: Mapping[str, object] | None = None
    sequence: str | None = None
    occurred_at: datetime | None = None


CAPABILITY_METHODS: dict[Capability, tuple[str, ...]] = {
    Capability.FANS: ("fetch_fans",),
    Capability.ORDERS: ("fetch_orders",),
    Capability.POINTS: ("fetch_points",),
    Capability.CARDS: ("push_card",),
    Capability.MESSAGES: ("send_message",),
    Capability.WEBHOOKS: ("parse_webhook",),
}
"""The methods each capability obliges an adapter to implement."""


class Adapter:
    """Base class of every platform adapter. See the module docstring for the contract."""

    platform: ClassVar[str]
    """The platform's name, as written in ``[[accounts]] platform = …``."""

    default_base_url: ClassVar[str] = ""
    """The platform's production URL; an account's ``base_url`` overrides it."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset()
    """What this adapter can do.  Declare only what is really implemented."""

    error_codes: ClassVar[Mapping[Any, Any]] = {}
    """The platform's body codes → hub error classes (or ``(RateLimited, block_seconds)``).
    See :mod:`hub.platform.errormap`; codes must come from the platform's documentation."""

    rate_limits: ClassVar[Mapping[str, tuple[float, float]]] = {}
    """Documented limits as ``{path or "*": (requests, per_seconds)}``; ``"*"`` is account-wide.
    An account's ``rate_limits`` in siyu.toml overrides them."""

    auth_class: ClassVar[type[Any] | None] = None
    """A :class:`hub.TokenAuth` subclass (or any ``httpx.Auth`` taking the same arguments) when the
    platform needs an access token or a signature on every request: the client's default auth."""

    credentials: ClassVar[Mapping[str, type[Any]]] = {}
    """An account's second credentials, by name: ``{"mp": MpTokenAuth}`` (:class:`hub.TokenAuth`
    subclasses).  Each is a token of its own, stored apart under ``"<account_id>#<name>"``; send a
    request with it as ``self.client.post(..., auth=self.credential("mp"))``."""

    sandbox: ClassVar[str | None] = None
    """``"module:function"`` returning the platform's sandbox (see :mod:`hub.platform.sandbox`)."""

    class Config(AdapterConfig):
        """No options."""

    def __init__(self, *, config: AdapterConfig, client: httpx.AsyncClient) -> None:
        """Built by the hub for one account.

        :param config: the account's validated :class:`Config`.
        :param client: the account's HTTP client (base URL, limits, per-request retries, error
            mapping).

        The hub then sets :attr:`account_id` and :attr:`token_store` before any call.
        """
        self.config = config
        self.client = client
        self.account_id: str = ""
        """The account's id (``[[accounts]] id``)."""
        self.token_store: TokenStore = MemoryTokenStore()
        """Where the account's tokens are kept (the database in the hub)."""
        self._credentials: dict[str, httpx.Auth] = {}

    def credential(self, name: str) -> httpx.Auth:
        """The auth flow of the second credential ``name`` (declared in :attr:`credentials`), to
        pass as ``auth=`` on the requests that use it; one flow per adapter, so its token is
        fetched once and refreshed once however many requests use it.

        :raises PluginError: the adapter declares no such credential.
        """
        flow = self._credentials.get(name)
        if flow is None:
            try:
                flow_class = type(self).credentials[name]
            except KeyError:
                raise PluginError(f"{type(self).__name__} declares no credential {name!r} "
                                  f"(declared: {', '.join(sorted(self.credentials)) or 'none'})") from None
            flow = self._credentials[name] = flow_class(self, self.token_store, self.account_id, credential=name)
        return flow

    def error_code(self, response: httpx.Response) -> tuple[Any, str] | None:
        """The platform's error ``(code, message)`` in ``response``, or ``None`` when it succeeded.

        Called by the hub for every response.  The default finds none (HTTP status only).
        """
        return None

    async def fetch_fans(self, account: Account, cursor: str | None) -> Page[Fan]:
        """Read one page of fans starting at ``cursor`` (``None``: from the beginning)."""
        raise NotImplementedError

    async def fetch_orders(self, account: Account, cursor: str | None) -> Page[Order]:
        """Read one page of orders starting at ``cursor``."""
        raise NotImplementedError

    async def fetch_points(self, account: Account, cursor: str | None) -> Page[PointsEvent]:
        """Read one page of points events starting at ``cursor``."""
        raise NotImplementedError

    async def push_card(self, account: Account, card: MemberCard) -> PushResult:
        """Make the platform's member card show ``card``'s balance and level. Idempotent."""
        raise NotImplementedError

    async def send_message(self, account: Account, message: Message) -> PushResult:
        """Send an outbound message. Idempotent on ``message.platform_msg_id``."""
        raise NotImplementedError

    async def parse_webhook(self, account: Account, request: WebhookRequest) -> WebhookResult:
        """Verify (or decrypt) a callback, then turn it into canonical records.

        Raise :class:`hub.errors.WebhookRejected` before trusting anything that fails verification.
        Verify and parse only: no HTTP call here (the receiver must store the callback and answer
        within the platform's deadline, and a replay must cost nothing upstream).  What needs the
        platform goes into :attr:`WebhookResult.follow_up`, done later by :meth:`complete_webhook`.
        Any other exception is answered 400, so bound what you parse (depth, size).
        """
        raise NotImplementedError

    async def complete_webhook(self, account: Account, follow_up: Mapping[str, Any]) -> Sequence[Record]:
        """Finish a stored callback whose :meth:`parse_webhook` returned a ``follow_up``.

        Called after the acknowledgement, by the hub's processing of stored callbacks
        (:mod:`hub.webhooks.process`: the receiver's background task, its start-up and its retries of
        callbacks still pending), with the account open and the client retrying
        each request.  Returns the records to apply together with those the callback stored.  Any
        exception leaves the callback pending: it is tried again at the next processing, never
        lost.  Only adapters whose ``parse_webhook`` returns a follow-up override it.

        :param account: the account the callback came for.
        :param follow_up: the mapping ``parse_webhook`` returned, as stored (JSON round-tripped).
        """
        raise NotImplementedError(f"{type(self).__name__} returned a webhook follow-up but does not complete it")

    @classmethod
    def missing_methods(cls) -> list[str]:
        """The methods a declared capability needs but this class does not override."""
        missing = []
        for capability in sorted(cls.capabilities):
            for name in CAPABILITY_METHODS[capability]:
                if getattr(cls, name) is getattr(Adapter, name):
                    missing.append(name)
        return missing
