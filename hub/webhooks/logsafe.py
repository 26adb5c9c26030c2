"""What a request puts in a log line: escaped and cut, so it cannot forge lines or write escape codes."""

from __future__ import annotations

__all__ = ["MAX_LOGGED", "clean"]

MAX_LOGGED = 64
"""The most characters of one request-supplied value that reach a log line."""


def clean(value: object, limit: int = MAX_LOGGED) -> str:
    """``value`` as text with control and non-printable characters escaped, cut to ``limit``.

    >>> clean("shop\\n2026 forged")
    'shop\\\\n2026 forged'
    >>> clean("x" * 100, 8)
    'xxxxxxxx…(100 chars)'
    """
    text = str(value)
    cut = len(text) > limit
    text = text[:limit]
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return f"{text}…({len(str(value))} chars)" if cut else text
