"""Starting a watch: a saved area whose new clearing is posted to a webhook.

What an ingest finds in watched areas is measured by the stores themselves, in the
ingest's transaction (:class:`forestguard.stores.outbox.WatchCheck`); sending happens later
(:mod:`.deliver`).
"""

from __future__ import annotations

from ..config import DEFAULT_WEBHOOK_SECRET_VARIABLE, secret
from ..errors import UserError
from ..stores.base import ZoneStore
from ..stores.outbox import Watch
from .webhook import resolve


def start_watching(store: ZoneStore, area: str, webhook_url: str, secret_env: str | None = None) -> Watch:
    """Watch a saved area: the URL must be one requests may go to, the secret's variable set now."""
    variable = secret_env or DEFAULT_WEBHOOK_SECRET_VARIABLE
    if not variable.replace("_", "").isalnum() or variable[0].isdigit():
        raise UserError(f"--secret-env {variable!r} is not an environment variable name")
    resolve(webhook_url)  # malformed, or inside our network: refused now rather than at every ingest
    if secret(variable) is None:
        raise UserError(f"the secret variable {variable} is not set: deliveries are signed with its value (set it here and wherever alerts are delivered)")
    watch = Watch(area, webhook_url, variable)
    store.watch_area(watch)
    return watch
