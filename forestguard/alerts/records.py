"""What the stores keep for alerts: watches of saved areas and the outbox of deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: A delivery's states: waiting to be sent (or re-sent), received by the webhook, given up on.
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True)
class Watch:
    """A saved area whose new clearing is posted to a webhook, signed with the secret a variable holds."""

    area: str
    webhook_url: str
    secret_env: str  #: the environment variable's name; its value is never stored
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "webhook": self.webhook_url, "secret_env": self.secret_env,
                "created_at": None if self.created_at is None else self.created_at.isoformat(timespec="seconds")}


@dataclass(frozen=True)
class Delivery:
    """One alert in the outbox: recorded in the ingest's transaction, sent (and re-sent) after it.

    ``body`` is the exact JSON text posted every time, so the signature and the receiver's
    de-duplication by ``id`` hold across retries.
    """

    id: str
    area: str
    webhook_url: str
    secret_env: str
    data_version: int
    body: str
    created_at: datetime
    status: str = PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat(timespec="seconds")

        return {"id": self.id, "area": self.area, "webhook": self.webhook_url, "data_version": self.data_version,
                "status": self.status, "attempts": self.attempts, "created_at": when(self.created_at),
                "next_attempt_at": when(self.next_attempt_at) if self.status == PENDING else None,
                "delivered_at": when(self.delivered_at), "last_error": self.last_error}
