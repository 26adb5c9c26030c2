"""Callback XML, read safely and written simply.

WeCom's callback bodies and their decrypted messages are flat ``<xml>`` documents.  They are read
with ``defusedxml`` with DTDs forbidden outright, so no entity (internal or external) is ever
expanded: a "billion laughs" body is refused before it can grow.
"""

from __future__ import annotations

from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

__all__ = ["XmlError", "envelope", "message_xml", "parse_flat"]


class XmlError(ValueError):
    """The XML is malformed, has a DTD or entities, or is not a flat ``<xml>`` document."""


def parse_flat(data: bytes | str) -> dict[str, str]:
    """The children of a flat ``<xml>`` document as ``{tag: text}`` (text stripped of nothing).

    Nested elements (e.g. ``<ScheduleList>``) are kept as their direct text only.

    :raises XmlError: malformed XML, any DTD or entity, or a root other than ``<xml>``.
    """
    try:
        root = fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError) as exc:
        raise XmlError(f"unreadable XML ({type(exc).__name__})") from None
    if root.tag != "xml":
        raise XmlError("the root element is not <xml>")
    return {child.tag: (child.text or "") for child in root}


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def message_xml(fields: dict[str, str | int]) -> bytes:
    """A flat ``<xml>`` message; strings go in CDATA, integers as text (as WeCom writes them)."""
    parts = ["<xml>"]
    for tag, value in fields.items():
        text = str(value) if isinstance(value, int) else _cdata(value)
        parts.append(f"<{tag}>{text}</{tag}>")
    parts.append("</xml>")
    return "".join(parts).encode()


def envelope(to_user: str, encrypted: str, agent_id: str | int) -> bytes:
    """The POST body of an encrypted callback: ``ToUserName``, ``Encrypt``, ``AgentID``."""
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<AgentID>{_cdata(str(agent_id))}</AgentID></xml>").encode()
