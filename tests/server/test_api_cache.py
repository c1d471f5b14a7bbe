"""/api/stats for caches and CDNs: stored bytes, gzip, ETag → 304, revalidation headers, new data seen at once."""

from __future__ import annotations

import gzip
import json

import pytest

from forestguard import stores
from forestguard.stats import statistics
from forestguard.stores.base import ZoneFilter

from .conftest import start_server, stop_server


@pytest.mark.duckdb
def test_gzip_etag_and_revalidation(server):
    status, headers, plain = server.get("/api/stats")
    assert status == 200 and headers["Cache-Control"] == "no-cache" and headers["Vary"] == "Accept-Encoding"
    etag = headers["ETag"]
    assert etag.startswith('W/"') and "Content-Encoding" not in headers
    with stores.open(server.db, read_only=True) as store:
        assert json.loads(plain) == statistics(store).to_dict()

    status, headers, packed = server.get("/api/stats", headers={"Accept-Encoding": "gzip, deflate"})
    assert status == 200 and headers["Content-Encoding"] == "gzip" and headers["ETag"] == etag
    assert gzip.decompress(packed) == plain and len(packed) < len(plain) / 4

    assert server.get("/api/stats", headers={"Accept-Encoding": "gzip;q=0"})[2] == plain  # refused: identity

    status, headers, body = server.get("/api/stats", headers={"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["ETag"] == etag
    assert server.get("/api/stats", headers={"If-None-Match": f'"other", {etag}'})[0] == 304
    assert server.get("/api/stats", headers={"If-None-Match": 'W/"stale"'})[0] == 200

    # Another view has its own tag; the same view asked again is the same bytes.
    status, headers, other = server.get("/api/stats?country=Brazil&by=year")
    assert status == 200 and headers["ETag"] != etag
    assert server.get("/api/stats?country=Brazil&by=year")[2] == other


@pytest.mark.postgis
def test_a_write_changes_the_answer_and_its_tag(tmp_path, zones_db, demo_small):
    """The cached bytes are keyed by data version: after an ingest the old tag no longer matches."""
    with stores.open(zones_db, create=True) as store:
        store.insert(demo_small.iloc[:300])
    served = start_server(tmp_path, zones_db)
    try:
        status, headers, before = served.get("/api/stats?by=")
        etag = headers["ETag"]
        assert status == 200 and json.loads(before)["rows"][0]["zones"] == 300
        assert served.get("/api/stats?by=", headers={"If-None-Match": etag})[0] == 304
        with stores.open(zones_db, create=True) as store:
            store.insert(demo_small.iloc[300:350])
            expected = statistics(store, ZoneFilter(), ()).to_dict()
        status, headers, after = served.get("/api/stats?by=", headers={"If-None-Match": etag})
        assert status == 200 and headers["ETag"] != etag
        assert json.loads(after) == expected and expected["rows"][0]["zones"] == 350
    finally:
        stop_server(served)
