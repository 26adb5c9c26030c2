"""WeCom callback crypto (the WXBizMsgCrypt scheme), written from the platform's description.

- The AES key is ``base64decode(EncodingAESKey + "=")``: 32 bytes, so AES-256, in CBC mode with
  the first 16 key bytes as IV.
- The plaintext is 16 random bytes, the message length as a 4-byte big-endian integer, the
  message (UTF-8 bytes) and the receive id (the corp id for a self-built app), padded PKCS#7-style
  to a multiple of **32** bytes (pad values 1..32, not the 16 of AES's own block).
- The wire form is base64 of the ciphertext.
- ``msg_signature`` is the lowercase hex SHA-1 of the token, timestamp, nonce and ciphertext
  (or ``echostr``) sorted as strings and joined with no separator.

Failures raise :class:`CryptoError` carrying the sample library's return code
(-40001 signature, -40005 receive id, -40007 decryption, ...), never any key or plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = ["BLOCK", "CryptoError", "MsgCrypt", "pad", "signature", "unpad"]

BLOCK = 32
"""WeCom pads to 32-byte blocks (PKCS#7 style, pad value 1..32)."""

SIGNATURE_ERROR = -40001
AES_KEY_ERROR = -40004
RECEIVE_ID_ERROR = -40005
DECRYPT_ERROR = -40007
BUFFER_ERROR = -40008
BASE64_ERROR = -40010


class CryptoError(ValueError):
    """A callback failed verification or decryption; ``code`` is the sample library's code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(f"{message} ({code})")
        self.code = code


def signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """The ``msg_signature`` of a callback.

    :param token: the callback Token configured for the app.
    :param timestamp: the ``timestamp`` query parameter, as sent.
    :param nonce: the ``nonce`` query parameter, as sent.
    :param encrypted: the ``Encrypt`` element's text (or the URL-decoded ``echostr``).
    """
    joined = "".join(sorted([token, timestamp, nonce, encrypted]))
    return hashlib.sha1(joined.encode()).hexdigest()


def pad(data: bytes, block: int = BLOCK) -> bytes:
    """Append ``n`` bytes of value ``n`` (1..block) so that the length is a multiple of ``block``."""
    n = block - len(data) % block
    return data + bytes([n]) * n


def unpad(data: bytes, block: int = BLOCK) -> bytes:
    """Remove the padding :func:`pad` added; a malformed pad is a :class:`CryptoError`."""
    if not data or len(data) % 16:
        raise CryptoError("ciphertext length is not a whole number of AES blocks", BUFFER_ERROR)
    n = data[-1]
    if not 1 <= n <= block or data[-n:] != bytes([n]) * n:
        raise CryptoError("bad padding", DECRYPT_ERROR)
    return data[:-n]


class MsgCrypt:
    """Sign, verify, encrypt and decrypt the callbacks of one app.

    :param token: the callback Token (≤ 32 characters).
    :param encoding_aes_key: the 43-character EncodingAESKey.
    :param receive_id: the corp id (self-built app) that every plaintext must end with.
    """

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise CryptoError("EncodingAESKey must be 43 characters", AES_KEY_ERROR)
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except binascii.Error:
            raise CryptoError("EncodingAESKey is not base64", AES_KEY_ERROR) from None
        if len(key) != 32:  # pragma: no cover - 43 base64 characters always give 32 bytes
            raise CryptoError("EncodingAESKey does not decode to 32 bytes", AES_KEY_ERROR)
        self.token = token
        self.receive_id = receive_id
        self._key = key
        self._iv = key[:16]

    def __repr__(self) -> str:
        return f"MsgCrypt(receive_id={self.receive_id!r})"

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def sign(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """:func:`signature` under this app's token."""
        return signature(self.token, timestamp, nonce, encrypted)

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise :class:`CryptoError` unless ``msg_signature`` signs the other three."""
        expected = self.sign(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected, (msg_signature or "").lower()):
            raise CryptoError("msg_signature does not match", SIGNATURE_ERROR)

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside ``encrypted`` (base64), after checking its receive id.

        :raises CryptoError: bad base64, bad length or padding, or another receive id.
        """
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise CryptoError("ciphertext is not base64", BASE64_ERROR) from None
        if not raw or len(raw) % 16:
            raise CryptoError("ciphertext length is not a whole number of AES blocks", BUFFER_ERROR)
        decryptor = self._cipher().decryptor()
        plain = unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise CryptoError("plaintext too short", BUFFER_ERROR)
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError("message length exceeds the plaintext", BUFFER_ERROR)
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CryptoError("receive id does not match the corp id", RECEIVE_ID_ERROR)
        return message

    def encrypt(self, message: bytes, *, random_prefix: bytes | None = None) -> str:
        """``message`` encrypted for this app, base64-encoded.

        :param message: the XML (or echo) bytes.
        :param random_prefix: 16 bytes; random when not given (tests pin it for fixed vectors).
        """
        prefix = os.urandom(16) if random_prefix is None else random_prefix
        if len(prefix) != 16:
            raise ValueError("random_prefix must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode()

    def decrypt_verified(self, msg_signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """:meth:`verify` then :meth:`decrypt`: nothing is decrypted before the signature holds."""
        self.verify(msg_signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)
