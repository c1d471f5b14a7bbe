"""The ForestGuard dashboard (Panel). Serve it with ``forestguard serve``."""

from __future__ import annotations

from .viewer import FILTERS, URL_PARAMETERS, ZonesDashboard

__all__ = ["FILTERS", "URL_PARAMETERS", "ZonesDashboard", "dashboard_page", "notice_page"]


def dashboard_page():
    """One session's page: the dashboard, or a plain notice when the store cannot be read.

    A missing or unreachable store is an operator's matter (``/readyz`` says so too, and the
    log says why); the visitor sees one generic sentence instead of a broken page. When the
    server found the store unreadable before the session (off the event loop), the notice
    is shown without asking the store again.
    """
    import panel as pn

    from ..errors import UserError
    from .host import host

    served = host()
    if served.session_problem(pn.state.curdoc) is None:
        try:
            return ZonesDashboard().__panel__()
        except UserError as exc:
            served.store_lost(exc)
    return notice_page()


def notice_page():
    """The page shown instead of the dashboard while the store cannot be read.

    A plain column, not the dashboard's template: during an outage every visit builds it on
    the event loop, where a template costs ~100 ms a page and a column ~15 ms. The server
    builds one at start-up, so the first outage does not pay the Markdown renderer's import.
    """
    import panel as pn

    from .host import STORE_NOTICE

    return pn.Column(pn.pane.Markdown("## ForestGuard · Deforestation zones"), pn.pane.Alert(STORE_NOTICE, alert_type="warning"))
