"""The Alipay sandbox's generated world: its users (deterministic in the seed) and its key pairs.

Users are Alipay accounts that may open the brand's card: an ``open_id``, a legacy ``user_id``
(2088…), a phone and a name.  Names hold braces, quotes and a backslash on purpose, so every
answer that carries them tests a reader's quote-aware scan.

Given shared people (a :class:`hub.Population`), the users are the people who hold the brand's
card: user ``index`` of the population, with the person's mobile (what their activation form
shows) and name (with the same braces and quotes).

Keys are generated when the sandbox starts (no seed): the app's key pair (the sandbox keeps the
public half to verify callers; the private half goes to the hub in a key file) and the sandbox's
own "Alipay" key pair (it signs answers and notifies; the public half goes to the hub).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import hub

__all__ = ["KeyFiles", "User", "card_holders", "generate_keys", "make_user", "population"]


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
