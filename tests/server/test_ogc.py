"""OGC API – Features under /ogc, read through OWSLib (an independent client) and plain HTTP."""

from __future__ import annotations

import json
import urllib.parse

import pandas as pd
import pytest
import shapely

from forestguard import stores
from tests.fixtures.services import make_store

from .conftest import server_env, start_server, stop_server

pytestmark = pytest.mark.duckdb

#: Region and source values a hostile file could carry: HTML and SQL, stored and served as data.
HOSTILE_REGION = "<script>alert('x')</script>"
HOSTILE_SOURCE = "'; DROP TABLE deforestation_zones; --"


@pytest.fixture(scope="module")
def ogc_store(tmp_path_factory, demo_small) -> str:
    hostile = demo_small[demo_small["country"] == "Peru"].head(3).copy()
    hostile["region"] = HOSTILE_REGION
    hostile["source"] = HOSTILE_SOURCE
    zones = pd.concat([demo_small, hostile], ignore_index=True)
    return make_store(tmp_path_factory.mktemp("ogc") / "zones.duckdb", zones)


@pytest.fixture(scope="module")
def ogc_server(tmp_path_factory, ogc_store):
    served = start_server(tmp_path_factory.mktemp("ogc-server"), ogc_store)
    yield served
    stop_server(served)


@pytest.fixture(scope="module")
def features(ogc_server):
    from owslib.ogcapi.features import Features

    return Features(ogc_server.base + "/ogc")


def cli_zones(served, *args: str) -> int:
    """How many zones `forestguard stats` counts for these options (0 when none match)."""
    rows = json.loads(served.cli("stats", *args, "--by", "", "--format", "json"))["rows"]
    return rows[0]["zones"] if rows else 0


def test_owslib_lists_the_collection_and_conformance(features):
    assert features.feature_collections() == ["zones"]
    conformance = features.conformance()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conformance
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conformance
    zones = features.collection("zones")
    assert zones["itemType"] == "feature"
    xmin, ymin, xmax, ymax = zones["extent"]["spatial"]["bbox"][0]
    assert -180 <= xmin < xmax <= 180 and -90 <= ymin < ymax <= 90
    assert zones["extent"]["temporal"]["interval"][0][0] <= zones["extent"]["temporal"]["interval"][0][1]
    api = features.api()  # the service-desc link leads to an OpenAPI 3.0 document
    assert api["openapi"].startswith("3.0") and "/collections/zones/items" in api["paths"]


def test_owslib_pages_through_a_country_and_gets_the_cli_count(features, ogc_server):
    expected = cli_zones(ogc_server, "--country", "Peru")
    ids: list[int] = []
    offset, limit = 0, 17
    while True:
        page = features.collection_items("zones", country="Peru", limit=limit, offset=offset)
        assert page["numberMatched"] == expected
        ids.extend(f["id"] for f in page["features"])
        assert {f["properties"]["country"] for f in page["features"]} <= {"Peru"}
        has_next = any(link["rel"] == "next" for link in page["links"])
        assert has_next == (offset + limit < expected)
        assert any(link["rel"] == "prev" for link in page["links"]) == (offset > 0)
        if not has_next:
            break
        offset += limit
    assert len(ids) == expected and len(set(ids)) == expected and expected > limit * 2


def test_next_links_walk_the_whole_selection(ogc_server):
    """A client that only follows `next` (as QGIS does) sees every zone once."""
    expected = cli_zones(ogc_server, "--country", "Brazil", "--classification", "illegal")
    url = ogc_server.base + "/ogc/collections/zones/items?country=Brazil&classification=illegal&limit=50"
    seen = []
    while url:
        status, headers, body = ogc_server.get(url.removeprefix(ogc_server.base))
        assert status == 200 and headers["Content-Type"].startswith("application/geo+json")
        page = json.loads(body)
        seen.extend(f["id"] for f in page["features"])
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    assert len(seen) == len(set(seen)) == expected


@pytest.mark.parametrize(
    "query, options",
    [
        ({"bbox": [-75.0, -15.0, -50.0, 5.0]}, ["--bbox", "-75,-15,-50,5"]),
        ({"datetime": "2019-01-01T00:00:00Z/2020-12-31T23:59:59Z"}, ["--from", "2019", "--to", "2020"]),
        ({"datetime": "2021-06-15T12:00:00Z"}, ["--year", "2021"]),
        ({"datetime": "../2017-12-31"}, ["--to", "2017"]),
        ({"bbox": [100.0, -11.0, 141.0, 6.0], "datetime": "2022-01-01/..", "classification": "illegal"},
         ["--bbox", "100,-11,141,6", "--from", "2022", "--classification", "illegal"]),
        ({"verified": "true", "min_confidence": "0.8", "source": "GLAD"}, ["--verified-only", "--min-confidence", "0.8", "--source", "GLAD"]),
    ],
)
def test_filters_agree_with_forestguard_stats(features, ogc_server, query, options):
    expected = cli_zones(ogc_server, *options)
    page = features.collection_items("zones", limit=1, **query)
    assert page["numberMatched"] == expected and expected > 0


def test_one_item_is_the_stored_zone(features, ogc_store):
    with stores.open(ogc_store, read_only=True) as store:
        zone = store.zones(limit=1)
    identifier = int(zone["id"].iloc[0])
    feature = features.collection_item("zones", str(identifier))
    assert feature["id"] == identifier and feature["type"] == "Feature"
    assert shapely.geometry.shape(feature["geometry"]).equals(zone.geometry.iloc[0])
    assert feature["properties"]["country"] == zone["country"].iloc[0]
    assert feature["properties"]["area_ha"] == pytest.approx(float(zone["area_ha"].iloc[0]))


def test_hostile_values_are_data(ogc_server):
    path = "/ogc/collections/zones/items?" + urllib.parse.urlencode({"source": HOSTILE_SOURCE, "limit": 10})
    status, _, body = ogc_server.get(path)
    page = json.loads(body)
    assert status == 200 and page["numberMatched"] == 3
    assert {f["properties"]["region"] for f in page["features"]} == {HOSTILE_REGION}
    status, headers, html = ogc_server.get(path + "&f=html")
    text = html.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text and "<script>" not in text
    feature_id = page["features"][0]["id"]
    status, _, html = ogc_server.get(f"/ogc/collections/zones/items/{feature_id}", headers={"Accept": "text/html,application/xhtml+xml"})
    assert status == 200 and "<script>" not in html.decode() and "&lt;script&gt;" in html.decode()
    # A filter value that is SQL selects nothing and breaks nothing.
    status, _, body = ogc_server.get("/ogc/collections/zones/items?" + urllib.parse.urlencode({"country": "x' OR '1'='1"}))
    assert status == 200 and json.loads(body)["numberMatched"] == 0
    assert cli_zones(ogc_server) == json.loads(ogc_server.get("/ogc/collections/zones/items?limit=1")[2])["numberMatched"]


@pytest.mark.parametrize(
    "query, code, message",
    [
        ("limit=50001", "LimitExceeded", "over this server's 50,000"),
        ("limit=0", "InvalidParameterValue", "at least 1"),
        ("offset=-3", "InvalidParameterValue", "0 or more"),
        ("bbox=1,2,3", "InvalidParameterValue", "four numbers"),
        ("bbox=10,0,-10,5", "InvalidParameterValue", "antimeridian"),
        ("datetime=yesterday", "InvalidParameterValue", "RFC 3339"),
        ("datetime=2022/2019", "InvalidParameterValue", "ends before it starts"),
        ("classification=maybe", "InvalidParameterValue", "not legal or illegal"),
        ("verified=false", "InvalidParameterValue", "verified=false"),
        ("min_confidence=2", "InvalidParameterValue", "between 0 and 1"),
        ("colour=red", "InvalidParameterValue", "unknown parameter"),
        ("f=xml", "InvalidParameterValue", "f must be one of"),
        ("country=Bra%00zil", "InvalidParameterValue", "NUL character"),
    ],
)
def test_bad_parameters_are_400_exceptions(ogc_server, query, code, message):
    status, headers, body = ogc_server.get("/ogc/collections/zones/items?" + query)
    document = json.loads(body)
    assert status == 400 and document["code"] == code and message in document["description"], document


def test_unknown_collection_and_feature_are_404(ogc_server):
    assert ogc_server.get("/ogc/collections/areas/items")[0] == 404
    assert ogc_server.get("/ogc/collections/zones/items/99999999")[0] == 404
    assert ogc_server.get("/ogc/collections/zones/items/not-a-number")[0] == 404


def test_html_and_json_are_negotiated(ogc_server):
    status, headers, body = ogc_server.get("/ogc", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"/ogc/collections" in body
    status, headers, body = ogc_server.get("/ogc/collections?f=html")
    assert status == 200 and headers["Content-Type"].startswith("text/html") and b"Deforestation zones" in body
    status, headers, body = ogc_server.get("/ogc/collections", headers={"Accept": "application/json"})
    assert status == 200 and headers["Content-Type"].startswith("application/json") and json.loads(body)["collections"]
    assert headers["Access-Control-Allow-Origin"] == "*"  # no login: web maps elsewhere may read it


def test_a_country_page_is_cached_under_its_geojson_key(tmp_path, ogc_store, redis_server, cache_prefix):
    served = start_server(tmp_path, ogc_store, env=server_env(tmp_path, REDIS_URL=redis_server.url, FORESTGUARD_CACHE_PREFIX=cache_prefix))
    try:
        first = served.get("/ogc/collections/zones/items?country=Peru&limit=5")[2]
        again = served.get("/ogc/collections/zones/items?country=Peru&limit=5")[2]
        assert json.loads(first)["features"] == json.loads(again)["features"]
        import redis

        client = redis.Redis.from_url(redis_server.url)
        keys = list(client.scan_iter(match=f"{cache_prefix}:geojson:Peru:*"))
        assert len(keys) == 1 and 3500 < client.ttl(keys[0]) <= 3600
        served.get("/ogc/collections/zones/items?limit=5")  # no single country: not a geojson:{country} entry
        assert len(list(client.scan_iter(match=f"{cache_prefix}:geojson:*"))) == 1
    finally:
        stop_server(served)


def test_a_login_guards_the_features_too(tmp_path, ogc_store):
    import http.cookiejar
    import urllib.error
    import urllib.request

    from .conftest import _NoRedirect

    served = start_server(tmp_path, ogc_store, "--basic-auth", "s3cret-pass", "--cookie-secret", "y" * 32)
    try:
        status, _, body = served.get("/ogc/collections/zones/items")
        assert status == 401 and json.loads(body)["code"] == "NotAuthorized"
        assert "Access-Control-Allow-Origin" not in served.get("/ogc/collections")[1]
        assert served.get("/ogc")[0] == 401
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), _NoRedirect)  # no dashboard session
        form = urllib.parse.urlencode({"username": "ana", "password": "s3cret-pass"}).encode()
        with pytest.raises(urllib.error.HTTPError) as redirected:
            opener.open(urllib.request.Request(served.base + "/login", data=form), timeout=30)
        assert redirected.value.code == 302 and any(c.name == "user" for c in jar)
        with opener.open(served.base + "/ogc/collections/zones/items?limit=2", timeout=30) as response:
            assert response.status == 200 and len(json.loads(response.read())["features"]) == 2
        with opener.open(served.base + "/api/stats?by=year", timeout=30) as response:
            assert response.status == 200 and response.headers["Cache-Control"] == "private, no-cache"
    finally:
        stop_server(served)


def test_gdal_reads_the_layer(ogc_server, tmp_path):
    """GDAL's OAPIF driver (what QGIS builds on) is a third, independent client: all of a country's zones, paged."""
    import shutil
    import subprocess

    from tests.fixtures.services import unavailable

    if shutil.which("ogr2ogr") is None:
        unavailable("GDAL's ogr2ogr is not installed (apt-get install gdal-bin, or make system-deps)")
    out = tmp_path / "peru.geojson"
    done = subprocess.run(["ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{ogc_server.base}/ogc", "zones", "-where", "country = 'Peru'",
                           "-oo", "PAGE_SIZE=25"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    features = json.loads(out.read_text())["features"]
    assert len(features) == cli_zones(ogc_server, "--country", "Peru") > 25
    assert {f["properties"]["country"] for f in features} == {"Peru"}
