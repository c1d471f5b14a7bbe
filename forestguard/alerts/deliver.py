"""Sending the outbox: each pending delivery posted, retried with backoff, at least once.

``forestguard alerts deliver`` (after each ingest that recorded alerts, and on a schedule)
claims the due deliveries (a lease, so concurrent deliverers never send one twice at once
and a deliverer that dies leaves them for the next), posts each, and records the outcome: a
2xx answer delivers it; anything else (refused address, unset secret, timeout, 5xx…) is
retried after 1, 2, 4… minutes, up to :data:`MAX_ATTEMPTS`, then marked failed. A receiver
can see a delivery twice (a lost answer), never a different one under the same id.
"""

from __future__ import annotations

import http.client
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from ..config import redact, secret
from ..stores.base import ZoneStore
from . import webhook
from .records import Delivery

log = logging.getLogger("forestguard.alerts")

MAX_ATTEMPTS = 10
BACKOFF_FIRST_S = 60.0
BACKOFF_MAX_S = 6 * 3600.0
#: How long a claimed delivery is left alone for its sender (longer than a post can take).
LEASE_S = 5 * webhook.TIMEOUT_S
BATCH = 100

Send = Callable[[Delivery, str], int]


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 60, 120, 240… at most 6 h."""
    return min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)


@dataclass
class DeliveryReport:
    delivered: list[str] = field(default_factory=list)
    retrying: list[tuple[str, str, datetime]] = field(default_factory=list)  # id, error, next attempt
    failed: list[tuple[str, str]] = field(default_factory=list)  # id, error

    def summary(self) -> str:
        text = f"delivered {len(self.delivered)}, retrying {len(self.retrying)}, failed {len(self.failed)}"
        if self.retrying:
            first = min(when for _, _, when in self.retrying)
            text += f" (next attempt from {first:%Y-%m-%d %H:%M:%S} UTC)"
        return text


def send(delivery: Delivery, key: str) -> int:
    """The real thing: a signed POST of the delivery's body."""
    return webhook.post(delivery.webhook_url, delivery.body.encode("utf-8"), delivery_id=delivery.id, secret=key)


def deliver_due(store: ZoneStore, *, now: datetime | None = None, waiting_too: bool = False, limit: int = BATCH, post: Send = send) -> DeliveryReport:
    """Send the pending deliveries due at ``now`` (``waiting_too``: also those waiting out a backoff)."""
    now = now or datetime.now(timezone.utc)
    report = DeliveryReport()
    for delivery in store.claim_deliveries(now, lease_s=LEASE_S, limit=limit, waiting_too=waiting_too):
        error = _attempt(delivery, post)
        attempts = delivery.attempts + 1
        if error is None:
            store.record_attempt(delivery.id, now=datetime.now(timezone.utc), delivered=True, error=None, next_attempt_at=None)
            report.delivered.append(delivery.id)
            continue
        retry_at = now + timedelta(seconds=backoff_s(attempts)) if attempts < MAX_ATTEMPTS else None
        store.record_attempt(delivery.id, now=datetime.now(timezone.utc), delivered=False, error=error, next_attempt_at=retry_at)
        log.warning("alert %s to %s: attempt %d failed: %s", delivery.id, redact(delivery.webhook_url), attempts, error)
        if retry_at is None:
            report.failed.append((delivery.id, error))
        else:
            report.retrying.append((delivery.id, error, retry_at))
    return report


def _attempt(delivery: Delivery, post: Send) -> str | None:
    """None when the webhook took it (2xx), else why not, in one line."""
    key = secret(delivery.secret_env)
    if key is None:
        return f"the secret variable {delivery.secret_env} is not set"
    try:
        status = post(delivery, key)
    except webhook.WebhookRefused as exc:
        return str(exc)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, unreachable, timed out, TLS, not HTTP…
        return redact(f"{type(exc).__name__}: {' '.join(str(exc).split())}")[:300] or type(exc).__name__
    if 200 <= status < 300:
        return None
    return f"HTTP {status}"
