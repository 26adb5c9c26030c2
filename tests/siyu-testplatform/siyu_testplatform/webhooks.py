"""testplat callbacks: an HMAC-SHA256 header signature over ``timestamp.body``, checked before
anything is parsed, and a freshness window on the signed timestamp."""

from __future__ import annotations

import hmac
import json
import time

import hub
from schemas import Account
from siyu_testplatform.mapping import follow_event
from siyu_testplatform.wire import FRESHNESS_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

__all__ = ["parse"]


def parse(secret: str, account: Account, request: hub.WebhookRequest) -> hub.WebhookResult:
    headers = {k.lower(): v for k, v in request.headers.items()}
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    if not hmac.compare_digest(sign(secret, timestamp, request.body), headers.get(SIGNATURE_HEADER, "")):
        raise hub.WebhookRejected("bad signature", status_code=401)
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > FRESHNESS_SECONDS:
        raise hub.WebhookRejected("stale or missing timestamp", status_code=400)
    try:
        event = json.loads(request.body)
        fan = follow_event(account.account_id, event)
    except (ValueError, KeyError, TypeError) as exc:
        raise hub.WebhookRejected(f"malformed event ({type(exc).__name__})") from exc
    return hub.WebhookResult(events=[fan], dedupe_key=str(event["event_id"]), body=b'{"ok":true}',
                             media_type="application/json")
