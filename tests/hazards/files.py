"""Hazard input files, written at test time: malformed, hostile and out-of-range zone sources.

Each hazard is a name, the bytes of the file, the extra command-line arguments
it needs and what ``forestguard ingest`` must do with it:

- ``load``: exit 0, this many zones stored;
- ``reject``: exit 1, one ``FILE: feature N: FIELD: REASON`` line for each bad
  record (``lines``: expected (feature, field, reason fragment) triples), nothing stored;
- ``file``: exit 1, one ``error: FILE: REASON`` line, nothing stored;
- ``empty``: exit 0, "nothing loaded", nothing stored.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from forestguard.schema import current_year

ROOT = Path(__file__).resolve().parents[2]

GOOD = {"country": "Brazil", "year": 2020, "classification": "Illégale", "confidence": 0.8, "verified": True}


def square(x: float = 10.0, y: float = 0.0, size: float = 0.01) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Polygon", "coordinates": [ring]}


def feature(properties: object = None, geometry: object = "square") -> dict:
    return {"type": "Feature", "properties": GOOD if properties is None else properties, "geometry": square() if geometry == "square" else geometry}


def collection(*features: object) -> dict:
    return {"type": "FeatureCollection", "features": list(features)}


def dumps(document: object) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def with_props(**changes: object) -> dict:
    return feature({**GOOD, **changes})


@dataclass
class Hazard:
    name: str
    content: bytes | None  # None: the path is made by ``make`` (a directory, …) or left missing
    outcome: str  # load | reject | file | empty
    zones: int = 0
    lines: list[tuple[int, str, str]] = field(default_factory=list)
    reason: str = ""  # for ``file``: a fragment of the one-line error
    args: tuple[str, ...] = ()

    def write(self, folder: Path) -> Path:
        path = folder / self.name
        if self.name.startswith("directory"):
            path.mkdir()
        elif self.content is not None:
            path.write_bytes(self.content)
        return path


_NAN_RING = '{"type":"Polygon","coordinates":[[[NaN,0],[1,0],[1,1],[0,1],[NaN,0]]]}'
_NEXT_YEAR = current_year() + 1
_SQ = json.dumps(square())

HAZARDS: list[Hazard] = [
    # -- readable, loads --------------------------------------------------------
    Hazard("good.geojson", dumps(collection(feature())), "load", 1),
    Hazard("single-feature.geojson", dumps(feature()), "load", 1),
    Hazard("bare-geometry.geojson", dumps(square()), "load", 1, args=("--set", "country=Peru", "--set", "year=2019")),
    Hazard("bom.geojson", b"\xef\xbb\xbf" + dumps(collection(feature())), "load", 1),
    Hazard("path with spaces é ü.geojson", dumps(collection(feature())), "load", 1),
    Hazard("z-coordinates.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[10, 0, 5], [10.01, 0, 5], [10.01, 0.01, 5], [10, 0, 5]]]}))), "load", 1),
    Hazard("zm-coordinates.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[10, 0, 5, 1], [10.01, 0, 5, 1], [10.01, 0.01, 5, 1], [10, 0, 5, 1]]]}))), "load", 1),
    Hazard("year-as-text-and-float.geojson", dumps(collection(with_props(year="2020"), with_props(year=2020.0))), "load", 2),
    Hazard("mixed-types.geojson", dumps(collection(with_props(country="Peru", confidence="0.5"), with_props(country=123, confidence=1))), "load", 2),
    Hazard("duplicate-key-ignored-column.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"Peru","year":2020,"note":1,"note":2},"geometry":%s}]}' % _SQ).encode(), "load", 1),
    Hazard("limits-exact.geojson", dumps(collection(with_props(country="c" * 100, region="r" * 200, source="s" * 100), with_props(country="🌳" * 100))), "load", 2),
    Hazard("hostile-text.geojson", dumps(collection(with_props(country="'); DROP TABLE deforestation_zones; --", region="<script>alert(1)</script>", source="\"quoted\" 'single' 🌳 \\ back"))), "load", 1),
    Hazard("pole-wedge.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[0, 89], [1, 89], [1, 90], [0, 90], [0, 89]]]}))), "load", 1),
    Hazard("touches-180.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[179.99, 0], [180, 0], [180, 0.01], [179.99, 0], ]]}))), "load", 1),
    Hazard("multipolygon-shared-area.geojson", dumps(collection(feature({**GOOD, "area_ha": 100}, {"type": "MultiPolygon", "coordinates": [square(10)["coordinates"], square(11)["coordinates"], square(12)["coordinates"]]}))), "load", 3),
    Hazard("crs-member-3857.geojson", dumps({**collection(feature(geometry={"type": "Polygon", "coordinates": [[[1113194.9, 0], [1114308.1, 0], [1114308.1, 1113.2], [1113194.9, 0]]]})), "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}}}), "load", 1),
    Hazard("classification-spellings.geojson", dumps(collection(*(with_props(classification=c) for c in ["LEGAL", "légale", "ILLÉGALE", "Illegale", " legal ", "", None]))), "load", 7),
    # -- records rejected ---------------------------------------------------------
    Hazard("nan-coordinates.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"B","year":2020},"geometry":%s}]}' % _NAN_RING).encode(), "reject", lines=[(0, "geometry", "not finite")]),
    Hazard("overflow-coordinates.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"B","year":2020},"geometry":{"type":"Polygon","coordinates":[[[1e400,0],[1,0],[1,1],[1e400,0]]]}}]}').encode(), "reject", lines=[(0, "geometry", "not finite")]),
    Hazard("infinity-confidence.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"B","year":2020,"confidence":Infinity},"geometry":%s}]}' % _SQ).encode(), "reject", lines=[(0, "confidence", "outside 0..1")]),
    Hazard("nan-area.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"B","year":2020,"area_ha":NaN},"geometry":%s}]}' % _SQ).encode(), "reject", lines=[(0, "area_ha", "not a number")]),
    Hazard("huge-numbers.geojson", dumps(collection(with_props(year=10**30), with_props(confidence=10**400), with_props(area_ha=1e300))), "reject", lines=[(0, "year", "outside"), (1, "confidence", "outside 0..1"), (2, "area_ha", "DECIMAL(10,2)")]),
    Hazard("years.geojson", dumps(collection(with_props(year=2020.5), with_props(year=True), with_props(year="abc"), with_props(year=1969), with_props(year=_NEXT_YEAR), with_props(year=None), with_props(year=[2020]))),
           "reject", lines=[(0, "year", "whole number"), (1, "year", "whole number"), (2, "year", "whole number"), (3, "year", "outside 1970"), (4, "year", "outside 1970"), (5, "year", "required"), (6, "year", "whole number")]),
    Hazard("confidence-verified.geojson", dumps(collection(with_props(confidence="high"), with_props(confidence=-0.01), with_props(confidence=1.01), with_props(verified="maybe"), with_props(verified=2))),
           "reject", lines=[(0, "confidence", "not a number"), (1, "confidence", "outside 0..1"), (2, "confidence", "outside 0..1"), (3, "verified", "not true or false"), (4, "verified", "not true or false")]),
    Hazard("nul-byte.geojson", dumps(collection(with_props(region="before\u0000after"))), "reject", lines=[(0, "region", "NUL")]),
    Hazard("lone-surrogate.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"a\\ud800","year":2020},"geometry":%s}]}' % _SQ).encode(), "reject", lines=[(0, "country", "Unicode")]),
    Hazard("too-long.geojson", dumps(collection(with_props(country="c" * 101), with_props(region="r" * 201), with_props(source="s" * 101))), "reject",
           lines=[(0, "country", "101 characters"), (1, "region", "201 characters"), (2, "source", "101 characters")]),
    Hazard("country-missing-or-blank.geojson", dumps(collection(with_props(country=None), with_props(country="   "), feature({"year": 2020}))), "reject",
           lines=[(0, "country", "required"), (1, "country", "required"), (2, "country", "required")]),
    Hazard("not-text.geojson", dumps(collection(with_props(country=True), with_props(country={"name": "Brazil"}), with_props(region=["a"]))), "reject",
           lines=[(0, "country", "not text"), (1, "country", "not text"), (2, "region", "not text")]),
    Hazard("classification-unknown.geojson", dumps(collection(with_props(classification="unknown"), with_props(classification=1), with_props(classification="ilegal"))), "reject",
           lines=[(0, "classification", "not legal or illegal"), (1, "classification", "not legal or illegal"), (2, "classification", "not legal or illegal")]),
    Hazard("duplicate-key.geojson", ('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"country":"A","country":"B","year":2020},"geometry":%s}]}' % _SQ).encode(), "reject", lines=[(0, "country", "duplicate key")]),
    Hazard("unclosed-ring.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[10, 0], [10.01, 0], [10.01, 0.01], [10, 0.01]]]}))), "reject", lines=[(0, "geometry", "not closed")]),
    Hazard("wrong-geometries.geojson", dumps(collection(feature(geometry={"type": "Point", "coordinates": [0, 0]}), feature(geometry=None), feature(geometry={"type": "Polygon", "coordinates": []}),
                                                          feature(geometry={"type": "GeometryCollection", "geometries": [square()]}), feature(geometry={"type": "LineString", "coordinates": [[0, 0], [1, 1]]}),
                                                          feature(geometry="POLYGON((0 0,1 0,1 1,0 0))"), feature(geometry={"type": "Polygon", "coordinates": [[["a", 0], [1, 0], [1, 1], ["a", 0]]]}))),
           "reject", lines=[(0, "geometry", "Point"), (1, "geometry", "missing"), (2, "geometry", "empty"), (3, "geometry", "GeometryCollection"), (4, "geometry", "LineString"), (5, "geometry", "not a GeoJSON geometry"), (6, "geometry", "not numbers")]),
    Hazard("self-intersection.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}))), "reject", lines=[(0, "geometry", "Self-intersection")]),
    Hazard("self-intersection-repaired.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}))), "load", 2, args=("--repair",)),
    Hazard("outside-lonlat.geojson", dumps(collection(feature(geometry=square(200)), feature(geometry=square(0, 95)))), "reject", lines=[(0, "geometry", "outside EPSG:4326"), (1, "geometry", "outside EPSG:4326")]),
    Hazard("antimeridian.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[179.9, 0], [-179.9, 0], [-179.9, 0.1], [179.9, 0.1], [179.9, 0]]]}))), "reject", lines=[(0, "geometry", "antimeridian")]),
    Hazard("polar-cap.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[-180, 80], [180, 80], [180, 90], [-180, 90], [-180, 80]]]}))), "reject", lines=[(0, "geometry", "antimeridian")]),
    Hazard("sliver.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[10, 0], [10 + 1e-10, 0], [10 + 1e-10, 1e-10], [10, 0]]]}))), "reject", lines=[(0, "area_ha", "rounds to 0.00")]),
    Hazard("continent.geojson", dumps(collection(feature(geometry={"type": "Polygon", "coordinates": [[[-60, -30], [0, -30], [0, 30], [-60, 30], [-60, -30]]]}))), "reject", lines=[(0, "area_ha", "DECIMAL(10,2)")]),
    Hazard("area-values.geojson", dumps(collection(*(with_props(area_ha=a) for a in [0, -1, 0.004, 100_000_000, "big", True]))), "reject",
           lines=[(0, "area_ha", "> 0"), (1, "area_ha", "> 0"), (2, "area_ha", "rounds to 0.00"), (3, "area_ha", "DECIMAL(10,2)"), (4, "area_ha", "not a number"), (5, "area_ha", "not a number")]),
    Hazard("not-features.geojson", dumps(collection(1, None, {"type": "Foo"}, feature("properties as text"), feature())), "reject",
           lines=[(0, "feature", "not a GeoJSON Feature"), (1, "feature", "not a GeoJSON Feature"), (2, "feature", "not a GeoJSON Feature"), (3, "properties", "not an object")]),
    Hazard("one-bad-among-good.geojson", dumps(collection(feature(), feature(), with_props(year=1900), feature())), "reject", lines=[(2, "year", "outside 1970")]),
    # -- files that cannot be read at all ----------------------------------------------
    Hazard("empty-collection.geojson", dumps(collection()), "empty"),
    Hazard("truncated.geojson", dumps(collection(feature(), feature()))[:77], "file", reason="not valid JSON"),
    Hazard("latin1.geojson", dumps(collection(with_props(region="XX"))).replace(b"XX", "Ceará".encode("latin-1")), "file", reason="not UTF-8"),
    Hazard("utf16.geojson", json.dumps(collection(feature())).encode("utf-16"), "file", reason="not UTF-8"),
    Hazard("binary.geojson", bytes(range(256)) * 8, "file", reason="not UTF-8"),
    Hazard("binary.gpkg", b"\x00\x01garbage\xff" * 300, "file", reason="cannot be read"),
    Hazard("binary.shp", b"\x00\x01garbage\xff" * 300, "file", reason="cannot be read"),
    Hazard("binary.parquet", b"PAR1 not really" * 100, "file", reason="cannot be read"),
    Hazard("zero-bytes.geojson", b"", "file", reason="empty (0 bytes)"),
    Hazard("zero-bytes.gpkg", b"", "file", reason="empty (0 bytes)"),
    Hazard("directory.geojson", None, "file", reason="is a directory"),
    Hazard("missing.geojson", None, "file", reason="no such file"),
    Hazard("zones.csv", b"country,year\nBrazil,2020\n", "file", reason="unsupported format .csv"),
    Hazard("top-level-list.geojson", dumps([feature()]), "file", reason="top level is an array"),
    Hazard("top-level-string.geojson", b'"FeatureCollection"', "file", reason="top level is a string"),
    Hazard("not-geojson-type.geojson", dumps({"type": "Topology", "objects": {}}), "file", reason="not GeoJSON"),
    Hazard("features-not-list.geojson", dumps({"type": "FeatureCollection", "features": {"0": feature()}}), "file", reason="'features' is an object"),
    Hazard("deep-nesting.geojson", b"[" * 200_000 + b"]" * 200_000, "file", reason="nested too deeply"),
    Hazard("no-properties.geojson", dumps(collection({"type": "Feature", "geometry": square()})), "file", reason="no country or year column"),
    Hazard("unknown-crs.geojson", dumps({**collection(feature()), "crs": {"type": "name", "properties": {"name": "EPSG:999999"}}}), "file", reason="unknown CRS"),
    Hazard("duplicate-top-level-key.geojson", ('{"type":"FeatureCollection","features":[],"features":[]}').encode(), "file", reason="duplicate key"),
]


def subprocess_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, honour_file_modes: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python -m forestguard ARGS`` in a fresh interpreter, as a user runs it.

    ``honour_file_modes`` makes root obey file permissions like any user, by dropping the
    capabilities that let it read any file (util-linux ``setpriv``), so permission errors are testable.
    """
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    environment.pop("FORESTGUARD_DEBUG", None)
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if honour_file_modes and os.geteuid() == 0 else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "forestguard", *args], capture_output=True, text=True, cwd=cwd, env=environment, timeout=120
    )
