"""forestguard serve: the dashboard and its HTTP routes on one port (panel serve underneath)."""

from __future__ import annotations

import click

from ..config import DEFAULT_DOWNLOAD_LIMIT
from .options import db_option


@click.command("serve")
@click.argument("apps", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@db_option
@click.option("--port", type=click.IntRange(0, 65535), default=8501, show_default=True, help="Port to listen on (0: any free port).")
@click.option("--address", default=None, metavar="HOST", help="Address to listen on, e.g. 0.0.0.0 in a container. Default: all interfaces.")
@click.option("--num-procs", type=click.IntRange(0), default=1, show_default=True, help="Worker processes (0: one per CPU). Data is loaded before forking when --warm is given.")
@click.option("--num-threads", type=click.IntRange(0), default=0, show_default=True,
              help="Threads for Panel's callbacks (0: on the event loop, so a session's changes apply in the order made; the dashboard runs its slow work in threads of its own).")
@click.option("--allow-websocket-origin", "origins", multiple=True, metavar="HOST[:PORT]", help="Public host names the dashboard is reached under (repeatable).")
@click.option("--basic-auth", default=None, metavar="PASSWORD|FILE", help="Panel basic auth: one password, or a JSON file of user → password. Needs --cookie-secret.")
@click.option("--oauth-provider", default=None, metavar="NAME", help="Panel OAuth provider (github, azure, okta, generic, …). Needs --cookie-secret.")
@click.option("--oauth-key", default=None, help="OAuth client id (Panel also reads PANEL_OAUTH_KEY).")
@click.option("--oauth-secret", default=None, help="OAuth client secret (Panel also reads PANEL_OAUTH_SECRET).")
@click.option("--oauth-redirect-uri", default=None, help="OAuth redirect URI.")
@click.option("--oauth-encryption-key", default=None, help="Key encrypting OAuth tokens in cookies.")
@click.option("--cookie-secret", default=None, help="Secret signing login cookies (Panel also reads PANEL_COOKIE_SECRET).")
@click.option("--warm", is_flag=True, help="Load the zones and compile the map kernels before accepting sessions.")
@click.option("--index", default=None, metavar="TEMPLATE", help="Jinja template of the index page listing the apps.")
@click.option("--metrics-from", "metrics_from", multiple=True, metavar="CIDR",
              help="With a login: networks that may read /metrics without signing in (repeatable; default 127.0.0.0/8 and ::1, an agent in the same task).")
@click.option("--download-limit", type=click.IntRange(1), default=DEFAULT_DOWNLOAD_LIMIT, show_default=True, help="Most zones a GeoJSON/GeoParquet download or an /ogc page may hold.")
def serve_command(apps, db, port, address, num_procs, num_threads, origins, basic_auth, oauth_provider, oauth_key, oauth_secret,
                  oauth_redirect_uri, oauth_encryption_key, cookie_secret, warm, index, metrics_from, download_limit):
    """Serve the dashboard at / with /healthz, /readyz, /metrics, /api/stats and /ogc.

    /healthz is liveness (never touches the database); /readyz checks the store
    and Redis; /api/stats takes the options of `forestguard stats` as query
    parameters (country, year, from, to, by, classification, source,
    verified_only, min_confidence) and answers the same JSON (gzip, ETag, 304);
    /ogc serves the zones as OGC API - Features for QGIS, ArcGIS and OWSLib. Extra Panel apps
    given as files are served at /<file name>.

    \b
    Example:
      forestguard serve --db data/forestguard.duckdb --port 8501 --warm
      forestguard serve --address 0.0.0.0 --num-procs 2 --allow-websocket-origin maps.example.org \\
                        --basic-auth users.json --cookie-secret "$COOKIE_SECRET"
    """
    from ..server.app import ServeOptions, serve

    import ipaddress

    for network in metrics_from:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise click.UsageError(f"--metrics-from {network!r} is not an address or network (e.g. 10.0.0.0/16)") from None
    if basic_auth and oauth_provider:
        raise click.UsageError("choose one of --basic-auth and --oauth-provider")
    if (basic_auth or oauth_provider) and not cookie_secret:
        from panel import config as panel_config

        if not panel_config.cookie_secret:
            raise click.UsageError("--basic-auth and --oauth-provider need --cookie-secret (or Panel's PANEL_COOKIE_SECRET)")
    serve(
        ServeOptions(
            db=db,
            port=port,
            address=address,
            num_procs=num_procs,
            num_threads=num_threads or None,
            allow_websocket_origin=list(origins),
            basic_auth=basic_auth,
            oauth_provider=oauth_provider,
            oauth_key=oauth_key,
            oauth_secret=oauth_secret,
            oauth_redirect_uri=oauth_redirect_uri,
            oauth_encryption_key=oauth_encryption_key,
            cookie_secret=cookie_secret,
            warm=warm,
            index=index,
            apps=list(apps),
            download_limit=download_limit,
            **({"metrics_from": tuple(metrics_from)} if metrics_from else {}),
        )
    )
