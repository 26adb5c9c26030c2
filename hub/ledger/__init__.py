"""The points ledger: append-only entries, lots that expire, balances the database enforces.

Public operations (each one write transaction, idempotent by key):

- :func:`post` credits earned points (:func:`post_many` a page of them in one transaction), :func:`redeem` spends them (oldest unexpired lots first),
  :func:`reverse` appends the reversal of an entry (once), :func:`expire` writes each due
  expiry once;
- :func:`balance` and :func:`history` read; :func:`verify` recomputes every invariant;
- :func:`earn_from_order` turns a paid or refunded order into points through ``earn_points``.

See ``docs/ledger.md`` for the rules.
"""

from hub.ledger.batch import Earn, post_many
from hub.ledger.cards import DEFAULT_LEVEL_THRESHOLDS, LedgerPolicy
from hub.ledger.lots import Posted
from hub.ledger.orders import earn_from_order
from hub.ledger.postings import expire, post, redeem, reverse
from hub.ledger.queries import balance, history
from hub.ledger.verify import Violation, verify

__all__ = [
    "DEFAULT_LEVEL_THRESHOLDS",
    "Earn",
    "LedgerPolicy",
    "Posted",
    "Violation",
    "balance",
    "earn_from_order",
    "expire",
    "history",
    "post",
    "post_many",
    "redeem",
    "reverse",
    "verify",
]
