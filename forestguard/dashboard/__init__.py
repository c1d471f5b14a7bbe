"""The ForestGuard dashboard (Panel). Serve it with ``forestguard serve``."""

from __future__ import annotations

from .viewer import FILTERS, URL_PARAMETERS, ZonesDashboard

__all__ = ["FILTERS", "URL_PARAMETERS", "ZonesDashboard", "dashboard_page"]


def dashboard_page():
    """One session's page: the dashboard, or a plain notice when the store cannot be read.

    A missing or unreachable store is an operator's matter (``/readyz`` says so too); the
    visitor sees one escaped sentence instead of a broken page and a server traceback.
    """
    import html

    import panel as pn

    from ..config import redact
    from ..errors import UserError

    try:
        return ZonesDashboard().__panel__()
    except UserError as exc:
        notice = pn.pane.Alert(
            f"**The zone store is not available.** {html.escape(redact(str(exc)))}", alert_type="warning"
        )
        return pn.template.BootstrapTemplate(title="ForestGuard · Deforestation zones", main=[notice])
