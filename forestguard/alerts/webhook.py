"""Posting an alert to a webhook: signed, and never to an address inside our own network.

A webhook URL comes from a user, so it is a server-side request forgery risk: it could name
the cloud's metadata service (169.254.169.254, which hands out credentials), the database or
any loopback service. The host is resolved once, every address it resolves to is checked
(loopback, private, link-local, multicast, reserved, unspecified, IPv4-mapped forms of
those: refused unless ``FORESTGUARD_WEBHOOK_ALLOW_PRIVATE=1``), and the connection goes to
the checked address itself, so a second DNS answer cannot swap it (DNS rebinding).
Redirects are not followed. The body is signed like GitHub's webhooks:
``X-ForestGuard-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>``.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from .. import __version__
from ..config import redact, settings
from ..errors import UserError

TIMEOUT_S = 10.0
#: Bytes of a webhook's answer read (then the connection is closed): the status is what counts.
ANSWER_BYTES = 4096
DELIVERY_HEADER = "X-ForestGuard-Delivery"
SIGNATURE_HEADER = "X-ForestGuard-Signature-256"
EVENT_HEADER = "X-ForestGuard-Event"
EVENT = "area.new_clearing"


class WebhookRefused(UserError):
    """A webhook URL that is malformed or points where requests must not go."""


@dataclass(frozen=True)
class Target:
    """A webhook URL taken apart, with the address it will be reached at."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def signature(secret: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of ``body`` with ``secret``: what a receiver recomputes."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def check_url(url: str) -> tuple[str, str, int, str]:
    """Scheme, host, port and path of an http(s) URL without credentials; refused in one line otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookRefused(f"webhook {redact(url)!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise WebhookRefused(f"webhook {redact(url)!r} must be an http:// or https:// URL")
    if not parts.hostname:
        raise WebhookRefused(f"webhook {redact(url)!r} names no host")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused("webhook URLs may not carry credentials (user:password@); sign with --secret-env instead")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def forbidden(address: str) -> str | None:
    """Why requests may not go to ``address`` (None: a public address)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, test in (("loopback", ip.is_loopback), ("link-local (cloud metadata)", ip.is_link_local), ("private", ip.is_private),
                       ("multicast", ip.is_multicast), ("reserved", ip.is_reserved), ("unspecified", ip.is_unspecified)):
        if test:
            return name
    if not ip.is_global:
        return "not public"
    return None


def resolve(url: str) -> Target:
    """The URL's target at an address requests may go to, or :class:`WebhookRefused`."""
    scheme, host, port, path = check_url(url)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookRefused(f"webhook host {host!r} does not resolve: {exc}") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise WebhookRefused(f"webhook host {host!r} does not resolve")
    if not settings().webhook_allow_private:
        for address in addresses:
            reason = forbidden(address)
            if reason:
                raise WebhookRefused(
                    f"webhook host {host!r} resolves to {address}, a {reason} address: refused "
                    "(FORESTGUARD_WEBHOOK_ALLOW_PRIVATE=1 allows it on private networks)"
                )
    return Target(scheme, host, port, path, addresses[0])


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, with the URL's host name for SNI and certificate checks."""

    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=ssl.create_default_context())
        self._address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(url: str, body: bytes, *, delivery_id: str, secret: str, timeout: float = TIMEOUT_S) -> int:
    """POST ``body`` (JSON) to ``url``, signed; the HTTP status. Network failures raise OSError."""
    target = resolve(url)
    connection = (_PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection)(target, timeout)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": f"ForestGuard/{__version__}",
        DELIVERY_HEADER: delivery_id,
        SIGNATURE_HEADER: signature(secret, body),
        EVENT_HEADER: EVENT,
    }
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(ANSWER_BYTES)
        return response.status
    finally:
        connection.close()
