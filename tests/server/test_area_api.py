"""``/api/stats`` with an area: POSTed GeoJSON or a saved name, the same JSON as the CLI; limits as 413/400 JSON."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest
import shapely

from forestguard import stores
from forestguard.areas import Area

from ..areas.conftest import write_geojson
from .conftest import server_env, start_server, stop_server

AREA = shapely.Polygon([(-60, -12), (-50, -12), (-50, -4), (-55, -8), (-60, -4), (-60, -12)])


@pytest.fixture(scope="module")
def area_server(tmp_path_factory, demo_small):
    tmp = tmp_path_factory.mktemp("area-api")
    db = str(tmp / "zones.duckdb")
    with stores.open(db, create=True) as store:
        store.insert(demo_small)
        store.save_area(Area.of("Saved <area>", AREA))
    served = start_server(tmp, db, env=server_env(tmp, FORESTGUARD_API_MAX_BODY_MB="1", FORESTGUARD_AREA_MAX_VERTICES="1000"))
    yield served
    stop_server(served)


def post(served, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=30)
    try:
        connection.request("POST", "/api/stats", body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_posted_geojson_answers_what_the_cli_answers(area_server, tmp_path):
    path = write_geojson(tmp_path / "area.geojson", AREA)
    cli = json.loads(area_server.cli("stats", "--area", str(path), "--from", "2018", "--by", "year,classification", "--format", "json"))
    geometry = json.loads(shapely.to_geojson(AREA))
    for area in (geometry, {"type": "Feature", "properties": {"x": 1}, "geometry": geometry}, json.loads(path.read_text())):
        status, answer = post(area_server, json.dumps({"area": area, "from": 2018, "by": "year,classification"}).encode())
        assert status == 200, answer
        assert answer["rows"] == cli["rows"] and answer["data_version"] == cli["data_version"]
        assert answer["area"]["area_ha"] == cli["area"]["area_ha"] and answer["area"]["bbox"] == cli["area"]["bbox"]
    assert cli["rows"] and all(r["year"] >= 2018 for r in cli["rows"])


def test_a_saved_area_by_name(area_server):
    cli = json.loads(area_server.cli("stats", "--area", "Saved <area>", "--by", "year", "--format", "json"))
    status, answer = area_server.json("/api/stats?area=Saved%20%3Carea%3E&by=year")
    assert status == 200 and answer == cli and answer["area"]["name"] == "Saved <area>"
    status, posted = post(area_server, json.dumps({"area": "Saved <area>", "by": "year"}).encode())
    assert status == 200 and posted == cli
    status, answer = area_server.json("/api/stats?area=Nowhere")
    assert status == 404 and answer["error"].startswith("no saved area 'Nowhere'")


def test_too_large_bodies_are_413_before_they_are_read(area_server):
    connection = http.client.HTTPConnection("127.0.0.1", area_server.port, timeout=30)
    try:  # a client asking first (Expect: 100-continue, as curl does for big bodies) is answered before it sends a byte
        connection.putrequest("POST", "/api/stats")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(2 << 20))
        connection.putheader("Expect", "100-continue")
        connection.endheaders()
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 413 and "over 1 MB (FORESTGUARD_API_MAX_BODY_MB)" in answer["error"] and answer["request_id"]
    finally:
        connection.close()
    connection = http.client.HTTPConnection("127.0.0.1", area_server.port, timeout=30)
    try:  # streamed without a length: refused once it passes the limit
        connection.putrequest("POST", "/api/stats")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for _ in range(3):
            chunk = b"y" * (512 << 10)
            connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        assert response.status == 413 and "FORESTGUARD_API_MAX_BODY_MB" in json.loads(response.read())["error"]
    finally:
        connection.close()


@pytest.mark.parametrize(
    "body, message",
    [
        ({"area": json.loads(shapely.to_geojson(shapely.Point(-55, -5).buffer(1, quad_segs=300)))}, "1,201 vertices, over the limit of 1,000"),
        ({"area": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}, "feature 0: geometry: is a LineString"),
        ({"area": {"type": "Polygon", "coordinates": [[[-56, -6], [-55, -5], [-55, -6], [-56, -5], [-56, -6]]]}}, "invalid: Self-intersection"),
        ({"area": {"type": "Polygon", "coordinates": [[[-80, -30], [-30, -30], [-30, 10], [-80, 10], [-80, -30]]]}}, "FORESTGUARD_AREA_MAX_HA"),
        ({"area": {"type": "Nonsense"}}, "is not GeoJSON"),
        ({"area": json.loads(shapely.to_geojson(AREA)), "colour": "red"}, "unknown parameter(s) colour"),
        ({"from": 2020}, "the body has no area"),
        ([1, 2], "must be a JSON object"),
    ],
    ids=["vertices", "line", "bowtie", "too-large", "not-geojson", "unknown-parameter", "no-area", "not-an-object"],
)
def test_unusable_areas_are_400_in_one_line(area_server, body, message):
    status, answer = post(area_server, json.dumps(body).encode())
    assert status == 400 and message in answer["error"] and "\n" not in answer["error"], answer


def test_a_repairable_area_is_repaired_on_request(area_server):
    bowtie = {"type": "Polygon", "coordinates": [[[-56, -6], [-55, -5], [-55, -6], [-56, -5], [-56, -6]]]}
    status, answer = post(area_server, json.dumps({"area": bowtie, "repair": True, "by": ""}).encode())
    assert status == 200 and answer["area"]["area_ha"] > 0


def test_not_json_is_400(area_server):
    status, answer = post(area_server, b"{not json")
    assert status == 400 and answer["error"].startswith("the request body is not JSON")
