"""What the server shows and to whom: readiness when only Redis is down, /metrics behind a login,
the hardened login, hostile query strings (NUL bytes, a 100 kB query) on both engines."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from forestguard import stores
from tests.fixtures.services import free_port

from .conftest import server_env, start_server, stop_server

PASSWORD = "s3cret-pass"


def test_redis_down_is_degraded_not_unready(tmp_path, served_store):
    """A whole Redis outage: every request is still served, so readiness stays 200 and says degraded."""
    env = server_env(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    served = start_server(tmp_path, served_store, env=env)
    try:
        status, body = served.json("/readyz")
        assert status == 200, body
        assert body["status"] == "degraded" and body["degraded"] == ["redis"] and body["checks"]["store"]["ok"]
        assert "127.0.0.1" not in json.dumps(body)  # where Redis lives is for the log
        assert served.json("/api/stats?by=")[0] == 200
    finally:
        stop_server(served)


def _post(served, path: str, fields: dict[str, str], headers: dict[str, str] | None = None):
    request = urllib.request.Request(served.base + path, data=urllib.parse.urlencode(fields).encode(), headers=headers or {}, method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as error:
        return error.code, error.headers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _signed_in(status: int, headers) -> bool:
    return status == 302 and any(c.startswith("user=") for c in headers.get_all("Set-Cookie") or [])


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, served_store):
    """A server with basic auth whose /metrics is open to no network (so the loopback test client is an outsider)."""
    served = start_server(tmp_path_factory.mktemp("guarded"), served_store, "--basic-auth", PASSWORD,
                          "--cookie-secret", "x" * 32, "--metrics-from", "192.0.2.0/24")
    yield served
    stop_server(served)


def test_metrics_need_a_login_or_an_allowed_network(guarded, tmp_path, served_store):
    status, _, body = guarded.get("/metrics")
    assert status == 401 and json.loads(body)["error"] == "authentication required"
    assert guarded.get("/healthz")[0] == 200
    # Default allow-list: loopback, i.e. an agent sidecar in the same task, scrapes without a login.
    local = start_server(tmp_path, served_store, "--basic-auth", PASSWORD, "--cookie-secret", "x" * 32)
    try:
        status, headers, _ = local.get("/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
    finally:
        stop_server(local)


def test_login_compares_exactly_and_flags_its_cookies(guarded):
    client = {"X-Forwarded-For": "198.51.100.1"}
    assert not _signed_in(*_post(guarded, "/login", {"username": "ana", "password": f" {PASSWORD} "}, client))
    assert not _signed_in(*_post(guarded, "/login", {"username": "ana", "password": PASSWORD.upper()}, client))
    status, headers = _post(guarded, "/login", {"username": "ana", "password": PASSWORD}, {**client, "X-Forwarded-Proto": "https"})
    assert _signed_in(status, headers)
    user_cookie = next(c for c in headers.get_all("Set-Cookie") if c.startswith("user="))
    assert "Secure" in user_cookie and "SameSite=Lax" in user_cookie and "HttpOnly" in user_cookie
    status, headers = _post(guarded, "/login", {"username": "ana", "password": PASSWORD}, client)  # plain HTTP: no Secure
    user_cookie = next(c for c in headers.get_all("Set-Cookie") if c.startswith("user="))
    assert "Secure" not in user_cookie and "SameSite=Lax" in user_cookie


def test_login_is_throttled_per_user_and_per_client(guarded):
    # Per user: five wrong passwords for bob from five addresses; the sixth try, right, is refused.
    for i in range(5):
        assert _post(guarded, "/login", {"username": "bob", "password": "wrong"}, {"X-Forwarded-For": f"203.0.113.{i}"})[0] == 302
    status, headers = _post(guarded, "/login", {"username": "bob", "password": PASSWORD}, {"X-Forwarded-For": "203.0.113.99"})
    assert status == 429 and int(headers["Retry-After"]) > 0
    # Per client: five wrong tries from one address under five names; then even a right one is refused.
    for i in range(5):
        assert _post(guarded, "/login", {"username": f"user{i}", "password": "wrong"}, {"X-Forwarded-For": "198.51.100.77"})[0] == 302
    assert _post(guarded, "/login", {"username": "carol", "password": PASSWORD}, {"X-Forwarded-For": "198.51.100.77"})[0] == 429
    # Others are not locked out.
    assert _signed_in(*_post(guarded, "/login", {"username": "carol", "password": PASSWORD}, {"X-Forwarded-For": "198.51.100.78"}))


@pytest.fixture(params=["duckdb", pytest.param("postgis", marks=pytest.mark.postgis)])
def any_engine_server(request, tmp_path, served_store, demo_small):
    if request.param == "duckdb":
        served = start_server(tmp_path, served_store)
    else:
        url = request.getfixturevalue("zones_db")
        with stores.open(url, create=True) as store:
            store.insert(demo_small.iloc[:100])
        served = start_server(tmp_path, url)
    yield served
    stop_server(served)


def test_hostile_query_strings_get_json_errors(any_engine_server):
    served = any_engine_server
    for query in ("country=Bra%00zil", "source=%00", "by=year%00", "coun%00try=Brazil"):
        status, _, body = served.get("/api/stats?" + query)
        assert status == 400 and "NUL" in json.loads(body)["error"], (query, body[:200])
    status, headers, body = served.get("/api/stats?country=" + "a" * 100_000)
    assert status == 414 and headers["Content-Type"].startswith("application/json") and "error" in json.loads(body)
    status, _, body = served.get("/healthz", headers={"X-Padding": "p" * 40_000})
    assert status == 431 and "error" in json.loads(body)
    assert served.get("/api/stats?by=")[0] == 200  # the server is none the worse
