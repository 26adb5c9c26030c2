"""Phone numbers at rest: a keyed hash always, the number itself only encrypted.

The hash (HMAC-SHA256 under the deployment's phone key) lets the hub recognise the same number on
two platforms without storing it.  The clear number is kept only when the operator configured a
Fernet ``phone_encryption_key``; otherwise it is dropped after hashing.
"""

from __future__ import annotations

import hmac
import os

from cryptography.fernet import Fernet, InvalidToken
from pydantic import SecretStr

from hub.errors import ConfigError

__all__ = ["PhoneVault", "generate_phone_key"]

MIN_KEY_LENGTH = 16


def generate_phone_key() -> str:
    return os.urandom(32).hex()


class PhoneVault:
    """Hashes and (optionally) encrypts normalised phone numbers."""

    def __init__(self, key: SecretStr | str | None, encryption_key: SecretStr | str | None = None) -> None:
        key = key.get_secret_value() if isinstance(key, SecretStr) else key
        key = key or os.environ.get("SIYU_PHONE_KEY")
        if not key or len(key) < MIN_KEY_LENGTH:
            raise ConfigError(
                f"security.phone_key (or SIYU_PHONE_KEY) must be set to at least {MIN_KEY_LENGTH} characters"
            )
        self._key = key.encode()
        self._keyed = hmac.new(self._key, digestmod="sha256")  # copied per number: the key is set up once
        enc = encryption_key.get_secret_value() if isinstance(encryption_key, SecretStr) else encryption_key
        try:
            self._fernet = Fernet(enc) if enc else None
        except ValueError:
            raise ConfigError("security.phone_encryption_key is not a Fernet key (32 url-safe base64 bytes)") from None

    def __getstate__(self) -> dict[str, object]:  # a keyed HMAC does not copy or pickle: made again
        return {name: value for name, value in self.__dict__.items() if name != "_keyed"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._keyed = hmac.new(self._key, digestmod="sha256")

    def __repr__(self) -> str:
        return f"PhoneVault(encrypting={self._fernet is not None})"

    @property
    def encrypts(self) -> bool:
        """Whether numbers are kept encrypted (a ``phone_encryption_key`` is configured)."""
        return self._fernet is not None

    def hash(self, phone: str) -> str:
        """The keyed hash of a normalised number (64 hex characters)."""
        mac = self._keyed.copy()
        mac.update(phone.encode())
        return mac.hexdigest()

    def encrypt(self, phone: str) -> str | None:
        """The encrypted number, or ``None`` when no encryption key is configured."""
        return self._fernet.encrypt(phone.encode()).decode() if self._fernet else None

    def decrypt(self, token: str) -> str:
        if self._fernet is None:
            raise ConfigError("no phone_encryption_key is configured")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise ConfigError("phone_encryption_key does not decrypt the stored number") from None
