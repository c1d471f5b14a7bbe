"""Panel's basic-auth login, hardened: throttled, exact, and with cookie flags.

Panel's ``BasicLoginHandler`` compares what Tornado's ``get_argument`` returns, which strips
surrounding spaces (``" s3cret "`` passed for ``"s3cret"``), allows any number of tries, and
sets its cookies without ``Secure`` or ``SameSite``. Here the password is compared byte for
byte in constant time, failures are counted per client and per user name (too many in a
window: 429 with ``Retry-After`` until the oldest ages out), and every cookie the login sets
is ``SameSite=Lax``, and ``Secure`` when the request came over HTTPS (directly, or through
the load balancer, which says so in ``X-Forwarded-Proto``).
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
from collections import OrderedDict, deque
from typing import Any, Callable

from panel.auth import BasicAuthProvider, BasicLoginHandler

#: Failed logins allowed per client address, and per user name, within :data:`WINDOW_SECONDS`.
MAX_FAILURES = 5
WINDOW_SECONDS = 300.0
#: Keys remembered at most (oldest forgotten first): an attacker cycling names cannot grow memory.
MAX_KEYS = 10_000


class LoginThrottle:
    """Failures per key in a sliding window; thread-safe; ``clock`` injectable."""

    def __init__(self, limit: int = MAX_FAILURES, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            waits = [self.window - (now - times[0]) for key in keys if len(times := self._recent(key, now)) >= self.limit]
            return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        with self._lock:
            now = self._clock()
            for key in keys:
                times = self._recent(key, now)
                times.append(now)
                self._failures[key] = times
                self._failures.move_to_end(key)
            while len(self._failures) > MAX_KEYS:
                self._failures.popitem(last=False)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


THROTTLE = LoginThrottle()


def client_address(handler: Any) -> str:
    """The visitor's address: the load balancer appends it last to X-Forwarded-For; else the peer."""
    forwarded = [part.strip() for part in handler.request.headers.get("X-Forwarded-For", "").split(",") if part.strip()]
    return forwarded[-1] if forwarded else (handler.request.remote_ip or "")


def over_https(handler: Any) -> bool:
    proto = handler.request.headers.get("X-Forwarded-Proto", "").split(",")[-1].strip().lower()
    return handler.request.protocol == "https" or proto == "https"


def password_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def credentials_match(credentials: str | dict[str, str], user: str, password: str) -> bool:
    """Panel's rule (one password for any user name, or a user → password mapping), compared exactly."""
    expected = credentials.get(user) if isinstance(credentials, dict) else credentials
    if not isinstance(expected, str):
        password_matches(password, password)  # an unknown user takes as long to refuse as a wrong password
        return False
    return password_matches(password, expected)


def load_credentials(basic_auth: str) -> str | dict[str, str]:
    """``--basic-auth``: a JSON file of user → password when it names a file, else the password itself."""
    if os.path.isfile(basic_auth):
        with open(basic_auth, encoding="utf-8") as fh:
            return json.load(fh)
    return basic_auth


class ThrottledLoginHandler(BasicLoginHandler):
    credentials: str | dict[str, str] = ""

    def set_cookie(self, name: str, value: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("samesite", "Lax")
        if over_https(self):
            kwargs.setdefault("secure", True)
        super().set_cookie(name, value, *args, **kwargs)

    def _validate(self, username: str, password: str) -> bool:
        return credentials_match(self.credentials, username, password)

    def post(self) -> None:
        username = self.get_argument("username", "", strip=False)
        password = self.get_argument("password", "", strip=False)
        keys = (f"client:{client_address(self)}", f"user:{username}")
        wait = THROTTLE.retry_after(*keys)
        if wait > 0:
            self.set_status(429)
            self.set_header("Retry-After", str(int(wait) + 1))
            self.write(self._login_template.render(login_endpoint=self._login_endpoint,
                                                   errormessage=f"Too many failed sign-ins: try again in {int(wait) + 1} s.",
                                                   PANEL_CDN=_panel_cdn()))
            return
        if self._validate(username, password):
            THROTTLE.succeeded(keys[1])
            self.set_current_user(username)
            from panel.auth import _validate_next_url
            from panel.io.state import state

            self.redirect(_validate_next_url(self.get_cookie("next_url", state.base_url)))
            return
        THROTTLE.failed(*keys)
        from tornado.escape import url_escape

        self.redirect(self.request.path + "?error=" + url_escape("Invalid username or password!"))


def _panel_cdn() -> str:
    from panel.io.resources import CDN_DIST

    return CDN_DIST


class ThrottledBasicAuthProvider(BasicAuthProvider):
    """Panel's basic-auth provider whose login page is :class:`ThrottledLoginHandler`."""

    def __init__(self, credentials: str | dict[str, str], **kwargs: Any) -> None:
        self._credentials = credentials  # before Bokeh's constructor, which reads login_handler
        super().__init__(**kwargs)

    @property
    def login_handler(self) -> type[ThrottledLoginHandler]:
        handler = type("LoginHandler", (ThrottledLoginHandler,), {
            "_login_endpoint": self._login_endpoint,
            "_login_template": self._login_template,
            "credentials": self._credentials,
        })
        return handler
