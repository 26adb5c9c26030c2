"""The Alipay sandbox's generated world: its users (deterministic in the seed) and its key pairs.

Users are Alipay accounts that may open the brand's card: an ``open_id``, a legacy ``user_id``
(2088…), a phone and a name.  Names hold braces, quotes and a backslash on purpose, so every
answer that carries them tests a reader's quote-aware scan.

Given shared people (a :class:`hub.Population`), the users are the people who hold the brand's
card: user ``index`` of the population, with the person's mobile (what their activation form
shows) and name (with the same braces and quotes).

Notifies are what the world sends the hub: :func:`signed_notify` writes a card notify as Alipay
posts it, signed with the sandbox's "Alipay" key.

Keys are generated when the sandbox starts (no seed): the app's key pair (the sandbox keeps the
public half to verify callers; the private half goes to the hub in a key file) and the sandbox's
own "Alipay" key pair (it signs answers and notifies; the public half goes to the hub).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import hub

__all__ = ["APP_ID", "NOTIFY_KINDS", "TEMPLATE_ID", "KeyFiles", "User", "card_holders", "generate_keys",
           "make_user", "population", "signed_notify"]

APP_ID = "9021000100000001"
TEMPLATE_ID = "20260101000000000000000000000001"
NOTIFY_KINDS = {"open": "alipay.user.opencard.result.notify", "delete": "alipay.marketing.card.delete.notify"}


@dataclass
class User:
    """One Alipay user of the sandbox."""

    open_id: str
    user_id: str
    phone: str
    name: str


def make_user(seed: int, i: int, phone: str | None = None, name: str = "用户") -> User:
    """The ``i``-th user (a phone of one's own when given)."""
    return User(open_id=f"074sbx{seed % 1000:03d}{i:010d}OPENID", user_id=f"2088{seed % 1000:03d}{i:09d}",
                phone=phone or f"13{seed % 10}{i:08d}", name=f'{name}{{{i}}}"支付宝"\\')


def population(seed: int, count: int) -> list[User]:
    """``count`` users, the same for the same seed."""
    return [make_user(seed, i) for i in range(count)]


def card_holders(seed: int, people: hub.Population) -> list[User]:
    """The people who hold the brand's card, as users of the sandbox (in population order)."""
    return [make_user(seed, p.index, p.mobile, p.name) for p in people if p.alipay_card]


@dataclass
class KeyFiles:
    """The sandbox's keys: objects it uses, files the hub's account points at."""

    app_public_key: rsa.RSAPublicKey
    alipay_private_key: rsa.RSAPrivateKey
    app_private_key_file: Path
    alipay_public_key_file: Path


def generate_keys(directory: Path | None = None) -> KeyFiles:
    """Two fresh RSA-2048 key pairs; the app private key is written PKCS#1 (as Alipay's key tool
    does), Alipay's public key as a ``PUBLIC KEY`` PEM, both readable by the owner only."""
    folder = directory or Path(tempfile.mkdtemp(prefix="siyu-alipay-sandbox-"))
    app = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alipay = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_file, public_file = folder / "app_private_key.pem", folder / "alipay_public_key.pem"
    _write(private_file, app.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    _write(public_file, alipay.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return KeyFiles(app.public_key(), alipay, private_file.resolve(), public_file.resolve())


def _write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def signed_notify(users: Sequence[User], seed: int, sign: Callable[[str], str], kind: str,
                  card: dict[str, Any] | None) -> tuple[hub.WebhookRequest, str]:
    """A card notify as Alipay posts it: form fields, ``biz_content`` JSON, signed by rule V1
    (``sign`` and ``sign_type`` left out of the string to sign) with ``sign``."""
    user = users[card["user"]] if card and card.get("user") is not None else users[0]
    inner = {"template_id": TEMPLATE_ID, "biz_card_no": card["biz_card_no"] if card else f"SBX{seed % 1000:03d}X",
             "external_card_no": (card or {}).get("external_card_no") or "", "open_id": user.open_id,
             "user_id": user.user_id, "success": "true", "remark": '删卡原因{"用户"}\\解绑'}
    notify_id = secrets.token_hex(16)
    form = {"notify_id": notify_id, "utc_timestamp": str(int(time.time() * 1000)), "msg_method": NOTIFY_KINDS[kind],
            "app_id": APP_ID, "version": "1.0", "charset": "utf-8", "sign_type": "RSA2",
            "biz_content": json.dumps(inner, ensure_ascii=False)}
    content = "&".join(f"{k}={v}" for k, v in sorted(form.items()) if k not in ("sign", "sign_type") and v != "")
    form["sign"] = sign(content)
    return hub.WebhookRequest(method="POST", path="/", query={},
                              headers={"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
                              body=urlencode(form).encode("ascii")), notify_id
