"""A fuzz pass over every installed plugin's ``parse_webhook``, through the receiver.

For each installed platform that takes callbacks and whose sandbox gives a ``sample_webhook``:

- **mutated**: the sample's bytes flipped, cut, grown, nested or replaced, sent with the sample's
  signature (mostly no longer valid);
- **signed**: random or mutated bodies signed again the way the platform signs them, for the
  platforms this file knows how to sign (:data:`SIGNERS`); the others get the mutated pass only.

Every answer must be a 2xx or a 4xx, never a 500; a 4xx stores nothing and a 2xx stores at most
one callback (never a partial write).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

import hub
from hub.config import parse_settings
from hub.platform.sandbox import build_sandbox
from hub.plugins import load_plugins
from hub.testing import free_port, serve_asgi
from hub.webhooks.receiver import create_app
from schemas import Capability
from schemas.tables import WebhookEventRow

HOST = load_plugins()
PLATFORMS = sorted(name for name, info in HOST.platforms.items()
                   if Capability.WEBHOOKS in info.adapter.capabilities and info.adapter.sandbox)
FAST = {"attempts": 2, "initial_wait": 0.01, "max_wait": 0.02, "jitter": 0.0}
FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
events = WebhookEventRow.__table__


# -- signing the way each platform does (for the signed pass) --------------------------------

def _douyin(account: dict[str, Any], sample: hub.WebhookRequest, body: bytes) -> hub.WebhookRequest:
    from plugins.douyin.wire import sign_body

    headers = {"content-type": "application/json", "x-douyin-signature": sign_body(account["client_secret"], body)}
    return hub.WebhookRequest("POST", sample.path, {}, headers, body)


def _wecom(account: dict[str, Any], sample: hub.WebhookRequest, body: bytes) -> hub.WebhookRequest:
    from plugins.wecom.wire import MsgCrypt, envelope

    crypt = MsgCrypt(account["token"], account["encoding_aes_key"], account["corp_id"])
    encrypted = crypt.encrypt(body)
    timestamp, nonce = str(int(time.time())), "4242"
    query = {"msg_signature": crypt.sign(timestamp, nonce, encrypted), "timestamp": timestamp, "nonce": nonce}
    return hub.WebhookRequest("POST", sample.path, query, {"content-type": "text/xml"},
                              envelope(account["corp_id"], encrypted, 1000002))


def _kuaishou(account: dict[str, Any], sample: hub.WebhookRequest, body: bytes) -> hub.WebhookRequest:
    from plugins.kuaishou.wire import encrypt_push

    return hub.WebhookRequest("POST", sample.path, {}, dict(sample.headers), encrypt_push(body, account["message_key"]))


def _xiaohongshu(account: dict[str, Any], sample: hub.WebhookRequest, body: bytes) -> hub.WebhookRequest:
    # the push signature covers the path, query, app key and timestamp, not the body
    return hub.WebhookRequest("POST", sample.path, dict(sample.query), dict(sample.headers), body)


SIGNERS: dict[str, Callable[[dict[str, Any], hub.WebhookRequest, bytes], hub.WebhookRequest]] = {
    "douyin": _douyin, "wecom": _wecom, "kuaishou": _kuaishou, "xiaohongshu": _xiaohongshu,
}
"""How to sign an arbitrary body for a platform (alipay signs with the sandbox's RSA key, kept
inside the sandbox: mutated pass only)."""


def _plain(platform: str, sample: hub.WebhookRequest, account: dict[str, Any]) -> bytes:
    """The signed content of the sample, to mutate before signing again."""
    if platform == "wecom":
        from plugins.wecom.wire import MsgCrypt, parse_flat

        crypt = MsgCrypt(account["token"], account["encoding_aes_key"], account["corp_id"])
        return crypt.decrypt(parse_flat(sample.body)["Encrypt"])
    if platform == "kuaishou":
        from plugins.kuaishou.wire import decrypt_push

        return decrypt_push(sample.body, account["message_key"])
    return sample.body


# -- the rig ---------------------------------------------------------------------------------

@dataclass
class Rig:
    platform: str
    account: dict[str, Any]
    sample: Callable[[], hub.WebhookRequest]
    client: TestClient
    engine: sa.Engine

    @property
    def path(self) -> str:
        return f"/webhooks/{self.platform}/{self.account['id']}"

    def stored(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()

    def check(self, request: hub.WebhookRequest) -> int:
        before = self.stored()
        response = self.client.request(request.method, self.path, params=dict(request.query),
                                       headers={k: v for k, v in request.headers.items() if k.lower() != "content-length"},
                                       content=request.body)
        status = response.status_code
        assert 200 <= status < 300 or 400 <= status < 500, f"{self.platform}: {status} {response.text[:200]}"
        after = self.stored()
        if status >= 400:
            assert after == before, f"{self.platform}: a {status} stored something"
        else:
            assert after - before in (0, 1)
        return status


@pytest.fixture(params=PLATFORMS)
def rig(request: pytest.FixtureRequest, engine: sa.Engine, database_url: str) -> Iterator[Rig]:
    platform = request.param
    port = free_port()
    spec = build_sandbox(HOST, platform, seed=0, fans=20, base_url=f"http://127.0.0.1:{port}")
    if spec.sample_webhook is None:
        pytest.skip(f"the {platform} sandbox offers no sample_webhook")
    account = dict(spec.account)
    raw = {"database": {"url": database_url}, "security": {"phone_key": "test-phone-key-0123456789abcdef"},
           "retry": FAST, "accounts": [account]}
    app = create_app(HOST, parse_settings(raw, HOST), engine, apply_pending_on_start=False)
    with serve_asgi(spec.app, port=port), TestClient(app, raise_server_exceptions=False) as client:
        yield Rig(platform, account, spec.sample_webhook, client, engine)


def test_every_installed_webhook_platform_is_fuzzed():
    assert {"douyin", "wecom", "alipay", "kuaishou", "xiaohongshu"} <= set(PLATFORMS)


# -- strategies ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


@st.composite
def mutations(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` flipped, cut, grown, nested, doubled or replaced."""
    kind = draw(st.sampled_from(["flip", "cut", "insert", "nest", "double", "replace", "json"]))
    at = draw(st.integers(min_value=0, max_value=2**16)) % max(len(body), 1)  # samples differ in length
    if kind == "flip" and body:
        data = bytearray(body)
        data[at] ^= draw(st.integers(min_value=1, max_value=255))
        return bytes(data)
    if kind == "cut":
        return body[:at]
    if kind == "insert":
        return body[:at] + draw(st.binary(min_size=1, max_size=64)) + body[at:]
    if kind == "nest":
        depth = draw(st.integers(min_value=50, max_value=20_000))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b"<a>", b"</a>")]))
        return body[:at] + opener * depth + closer * depth + body[at:]
    if kind == "double":
        return body + body
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=512))


def _envelope_fields(platform: str, plain: bytes) -> Any:
    """The sample's signed content as data, so the signed pass can swap its values."""
    if platform == "wecom":
        return None
    try:
        return json.loads(plain)
    except ValueError:
        return None


# -- the passes ------------------------------------------------------------------------------

@FUZZ
@given(data=st.data())
def test_mutated_samples_are_answered_2xx_or_4xx(rig: Rig, data: st.DataObject) -> None:
    sample = rig.sample()
    body = data.draw(mutations(sample.body))
    rig.check(hub.WebhookRequest(sample.method, sample.path, dict(sample.query), dict(sample.headers), body))


@FUZZ
@given(data=st.data())
def test_signed_random_and_mutated_bodies_are_answered_2xx_or_4xx(rig: Rig, data: st.DataObject) -> None:
    signer = SIGNERS.get(rig.platform)
    if signer is None:
        pytest.skip(f"no signer for {rig.platform} here: mutated pass only")
    sample = rig.sample()
    plain = _plain(rig.platform, sample, rig.account)
    choice = data.draw(st.sampled_from(["mutate", "random", "swap", "deep"]))
    if choice == "deep":  # the signed content wrapped deeper than any parser should follow
        depth = data.draw(st.integers(min_value=1_000, max_value=100_000))
        opener, closer = data.draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b"<xml><a>", b"</a></xml>")]))
        body = opener * depth + plain + closer * depth
    elif choice == "mutate":
        body = data.draw(mutations(plain))
    elif choice == "random":
        body = json.dumps(data.draw(json_values)).encode()
    else:  # the sample's own shape with one value replaced by anything
        fields = _envelope_fields(rig.platform, plain)
        if isinstance(fields, dict) and fields:
            key = sorted(fields)[data.draw(st.integers(min_value=0, max_value=63)) % len(fields)]
            fields[key] = data.draw(json_values)
            body = json.dumps(fields).encode()
        elif isinstance(fields, list) and fields and isinstance(fields[0], dict):
            first = dict(fields[0])
            key = sorted(first)[data.draw(st.integers(min_value=0, max_value=63)) % len(first)]
            first[key] = data.draw(json_values)
            body = json.dumps([first]).encode()
        else:
            body = data.draw(mutations(plain))
    rig.check(signer(rig.account, sample, body))


def test_a_replayed_sample_is_stored_once(rig: Rig) -> None:
    sample = rig.sample()
    first = rig.check(sample)
    count = rig.stored()
    assert rig.check(sample) == first and rig.stored() == count
