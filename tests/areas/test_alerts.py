"""Alerts on new clearing: the outbox is written by the ingest's transaction, deliveries are signed and retried.

A real HTTP receiver on loopback takes the POSTs (tests allow loopback targets with
FORESTGUARD_WEBHOOK_ALLOW_PRIVATE=1, as operators of private networks would).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import geopandas as gpd
import pytest
import shapely

from forestguard import stores
from forestguard.alerts.deliver import MAX_ATTEMPTS, deliver_due
from forestguard.alerts.watch import start_watching
from forestguard.areas import Area
from forestguard.demo import DemoSpec, demo_zones
from forestguard.errors import UserError
from forestguard.ingest import IngestRejected, ingest

from .helpers import CLASS_NAMES, geodesic_ha

SECRET = "s3cr3t-for-tests"
WATCHED = shapely.box(-58, -8, -52, -2)


@pytest.fixture(autouse=True)
def _webhook_settings(monkeypatch):
    monkeypatch.setenv("FORESTGUARD_WEBHOOK_ALLOW_PRIVATE", "1")
    monkeypatch.setenv("FG_HOOK_SECRET", SECRET)
    monkeypatch.setenv("FORESTGUARD_PUBLIC_URL", "https://forestguard.example.org")


@pytest.fixture(scope="module")
def new_zones() -> gpd.GeoDataFrame:
    zones = demo_zones(DemoSpec(zones=1000, seed=11))
    meets = shapely.intersects(zones.geometry.values, WATCHED)
    assert meets.sum() >= 5
    return zones


def zones_file(path: Path, zones: gpd.GeoDataFrame) -> Path:
    zones[["country", "region", "classification", "year", "source", "confidence", "verified", "geometry"]].to_file(path, driver="GeoJSON")
    return path


@pytest.fixture
def watched_store(tmp_path, demo_small, webhook_receiver) -> str:
    url = str(tmp_path / "zones.duckdb")
    with stores.open(url, create=True) as store:
        store.insert(demo_small.iloc[:100])
        store.save_area(Area.of("Concession <12>", WATCHED))
        start_watching(store, "Concession <12>", webhook_receiver.url, "FG_HOOK_SECRET")
    return url


def test_an_ingest_into_a_watched_area_posts_one_signed_alert(tmp_path, watched_store, webhook_receiver, new_zones):
    result = ingest([zones_file(tmp_path / "new.geojson", new_zones)], watched_store)
    assert result.alerts == 1 and result.delivery.startswith("delivered 1, retrying 0, failed 0")
    [hit] = webhook_receiver.received
    assert hit.path == "/hook" and hit.headers["Content-Type"].startswith("application/json")
    expected = "sha256=" + hmac.new(SECRET.encode(), hit.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(hit.headers["X-ForestGuard-Signature-256"], expected)
    payload = json.loads(hit.body)
    assert hit.headers["X-ForestGuard-Delivery"] == payload["id"]
    assert payload["area"] == "Concession <12>" and payload["data_version"] == result.data_version
    inside = new_zones[shapely.intersects(new_zones.geometry.values, WATCHED)]
    assert payload["new_zones"] == len(inside)
    assert payload["years"] == sorted(int(y) for y in inside["year"].unique())
    for stored, key in (*CLASS_NAMES.items(), (None, "unclassified")):
        chosen = inside[inside["classification"].isna()] if stored is None else inside[inside["classification"] == stored]
        reference = sum(geodesic_ha(shapely.intersection(g, WATCHED)) for g in chosen.geometry.values)
        assert payload["hectares_inside"][key] == pytest.approx(reference, abs=0.01), key
    assert payload["dashboard"] == "https://forestguard.example.org/?area=Concession%20%3C12%3E"
    with stores.open(watched_store, read_only=True) as store:
        [delivery] = store.deliveries()
        assert (delivery.id, delivery.status, delivery.attempts) == (payload["id"], "delivered", 1)
        assert SECRET not in json.dumps([d.to_dict() for d in store.deliveries()]) and store.watches()[0].secret_env == "FG_HOOK_SECRET"


def test_zones_elsewhere_alert_nobody(tmp_path, watched_store, webhook_receiver, new_zones):
    elsewhere = new_zones[~shapely.intersects(new_zones.geometry.values, WATCHED)].iloc[:50]
    result = ingest([zones_file(tmp_path / "far.geojson", elsewhere)], watched_store)
    assert result.loaded == 50 and result.alerts == 0 and result.delivery is None
    assert webhook_receiver.received == []


def test_a_refused_ingest_records_no_alert(tmp_path, watched_store, webhook_receiver, new_zones):
    """The outbox row exists exactly when the zones do: a load that rolls back leaves neither."""
    inside = new_zones[shapely.intersects(new_zones.geometry.values, WATCHED)].copy()
    path = zones_file(tmp_path / "bad.geojson", inside)
    document = json.loads(path.read_text())
    document["features"][-1]["properties"]["year"] = 1800  # the last record is bad: the load rolls back after the others
    path.write_text(json.dumps(document))
    with stores.open(watched_store, read_only=True) as store:
        before = store.count()
    with pytest.raises(IngestRejected):
        ingest([path], watched_store)
    with stores.open(watched_store, read_only=True) as store:
        assert store.deliveries() == [] and store.count() == before
    assert webhook_receiver.received == []


def test_a_receiver_that_was_down_gets_the_alert_once_it_is_back(tmp_path, watched_store, webhook_receiver, new_zones):
    webhook_receiver.stop()
    result = ingest([zones_file(tmp_path / "new.geojson", new_zones)], watched_store)
    assert result.loaded == len(new_zones) and result.alerts == 1  # the failing webhook did not fail the ingest
    assert result.delivery.startswith("delivered 0, retrying 1, failed 0")
    with stores.open(watched_store) as store:
        [pending] = store.deliveries()
        assert pending.status == "pending" and pending.attempts == 1 and "ConnectionRefusedError" in pending.last_error
        assert pending.next_attempt_at - pending.created_at >= timedelta(seconds=59)
        webhook_receiver.start()
        assert deliver_due(store).summary().startswith("delivered 0, retrying 0")  # not due yet: the backoff holds
        assert webhook_receiver.received == []
        later = datetime.now(timezone.utc) + timedelta(minutes=2)
        assert deliver_due(store, now=later).summary() == "delivered 1, retrying 0, failed 0"
        assert deliver_due(store, now=later + timedelta(hours=1), waiting_too=True).summary() == "delivered 0, retrying 0, failed 0"
        [done] = store.deliveries()
    assert (done.status, done.attempts) == ("delivered", 2)
    ids = [r.headers["X-ForestGuard-Delivery"] for r in webhook_receiver.received]
    assert ids == [pending.id]  # once, under the id recorded by the ingest


def test_errors_are_retried_with_backoff_then_given_up(watched_store, webhook_receiver, tmp_path, new_zones):
    webhook_receiver.status = 500
    ingest([zones_file(tmp_path / "new.geojson", new_zones)], watched_store)
    now = datetime.now(timezone.utc)
    with stores.open(watched_store) as store:
        for attempt in range(2, MAX_ATTEMPTS + 1):
            now += timedelta(hours=7)  # past the longest backoff
            report = deliver_due(store, now=now)
        [failed] = store.deliveries()
    assert report.failed and failed.status == "failed" and failed.attempts == MAX_ATTEMPTS and failed.last_error == "HTTP 500"
    assert len(webhook_receiver.received) == MAX_ATTEMPTS
    assert len({r.headers["X-ForestGuard-Delivery"] for r in webhook_receiver.received}) == 1  # retries, not new alerts
    assert len({r.body for r in webhook_receiver.received}) == 1  # the same signed body each time


def test_the_cli_delivers_lists_and_never_fails_the_ingest(tmp_path, watched_store, webhook_receiver, new_zones, capsys):
    from forestguard.cli import main

    webhook_receiver.stop()
    main(["ingest", str(zones_file(tmp_path / "new.geojson", new_zones)), "--db", watched_store])
    out = capsys.readouterr().out
    assert "alerts: 1 watched area(s) met; delivered 0, retrying 1" in out
    webhook_receiver.start()
    main(["alerts", "deliver", "--db", watched_store, "--all"])
    assert capsys.readouterr().out.strip() == "delivered 1, retrying 0, failed 0"
    main(["alerts", "list", "--db", watched_store, "--format", "json"])
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["status"] == "delivered" and listed["attempts"] == 2 and listed["area"] == "Concession <12>"
    assert len(webhook_receiver.received) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/x",
                                 "http://[::1]/x", "http://localhost/x", "http://[::ffff:169.254.169.254]/x", "ftp://example.org/x",
                                 "http://user:pw@example.org/x", "not a url"])
def test_webhooks_into_our_own_network_are_refused(monkeypatch, tmp_path, url):
    monkeypatch.delenv("FORESTGUARD_WEBHOOK_ALLOW_PRIVATE")
    db = str(tmp_path / "zones.duckdb")
    with stores.open(db, create=True) as store:
        store.save_area(Area.of("A", WATCHED))
        with pytest.raises(UserError) as refused:
            start_watching(store, "A", url, "FG_HOOK_SECRET")
        assert store.watches() == []
    assert "\n" not in str(refused.value) and "pw" not in str(refused.value)


def test_a_target_that_turned_private_is_refused_at_delivery(monkeypatch, tmp_path, watched_store, webhook_receiver, new_zones):
    """The address is checked again when sending: a watch made on a private network does not leak out of it."""
    monkeypatch.delenv("FORESTGUARD_WEBHOOK_ALLOW_PRIVATE")
    result = ingest([zones_file(tmp_path / "new.geojson", new_zones)], watched_store)
    assert result.delivery.startswith("delivered 0, retrying 1")
    with stores.open(watched_store, read_only=True) as store:
        assert "loopback address: refused" in store.deliveries()[0].last_error
    assert webhook_receiver.received == []


def test_watching_needs_a_saved_area_and_a_set_secret(monkeypatch, tmp_path, webhook_receiver):
    db = str(tmp_path / "zones.duckdb")
    with stores.open(db, create=True) as store:
        with pytest.raises(UserError, match="no saved area 'A'"):
            start_watching(store, "A", webhook_receiver.url, "FG_HOOK_SECRET")
        store.save_area(Area.of("A", WATCHED))
        with pytest.raises(UserError, match="the secret variable FG_UNSET is not set"):
            start_watching(store, "A", webhook_receiver.url, "FG_UNSET")
        start_watching(store, "A", webhook_receiver.url, "FG_HOOK_SECRET")
        with pytest.raises(UserError, match="is watched; run 'forestguard area unwatch' first"):
            store.remove_area("A")
        store.unwatch_area("A")
        store.remove_area("A")
        assert store.saved_areas() == [] and store.watches() == []
