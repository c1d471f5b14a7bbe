"""The zone schema: columns, limits, classification spellings and the seed DDL.

One place for each fact. Every engine and every input path imports from here.
"""

from __future__ import annotations

import datetime as _dt
import enum
import unicodedata

TABLE = "deforestation_zones"
SCHEMA_VERSION = 1

#: The table of the original infrastructure design, kept verbatim so an
#: existing PostGIS database works unchanged (ARCHITECTURE.md, "The zone table").
POSTGIS_DDL = """\
CREATE TABLE IF NOT EXISTS deforestation_zones (
    id SERIAL PRIMARY KEY,
    country VARCHAR(100) NOT NULL,
    region VARCHAR(200),
    classification VARCHAR(20) CHECK (classification IN ('Légale', 'Illégale')),
    area_ha DECIMAL(10,2) NOT NULL,
    year INTEGER NOT NULL,
    source VARCHAR(100),
    confidence DECIMAL(3,2),
    verified BOOLEAN DEFAULT false,
    geometry GEOMETRY(Polygon, 4326) NOT NULL,
    created_at TIMESTAMP DEFAULT NOW(),
    updated_at TIMESTAMP DEFAULT NOW()
);
CREATE INDEX IF NOT EXISTS idx_zones_geometry ON deforestation_zones USING GIST (geometry);
CREATE INDEX IF NOT EXISTS idx_zones_country ON deforestation_zones (country);
CREATE INDEX IF NOT EXISTS idx_zones_year ON deforestation_zones (year);
CREATE INDEX IF NOT EXISTS idx_zones_classification ON deforestation_zones (classification);
"""

#: Columns written by ingest, in table order (id and timestamps are the store's).
ZONE_COLUMNS: tuple[str, ...] = (
    "country",
    "region",
    "classification",
    "area_ha",
    "year",
    "source",
    "confidence",
    "verified",
    "geometry",
)
REQUIRED_COLUMNS: tuple[str, ...] = ("country", "year")
TEXT_LIMITS: dict[str, int] = {"country": 100, "region": 200, "source": 100}

YEAR_MIN = 1970
#: DECIMAL(10,2): eight digits before the point.
AREA_MAX_HA = 99_999_999.99
CONFIDENCE_MIN, CONFIDENCE_MAX = 0.0, 1.0
GEOMETRY_SRID = 4326

#: Dimensions statistics are grouped by unless told otherwise, in their sort order.
GROUP_KEYS: tuple[str, ...] = ("country", "year", "classification")
#: Every dimension statistics can be grouped by: ``suggested`` is the class evidence suggests
#: (``legal``, ``illegal``, ``undetermined``; none where evidence was never computed).
ALL_GROUP_KEYS: tuple[str, ...] = (*GROUP_KEYS, "suggested")
MEASURES: tuple[str, ...] = ("zones", "area_ha", "mean_confidence", "verified_zones")


def current_year() -> int:
    return _dt.date.today().year


def _fold(text: str) -> str:
    """Lower-case and strip accents so 'Illégale', 'ILLEGALE' and 'illegale' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


class Classification(str, enum.Enum):
    """Legal status of a clearing. Python names it in English; the table stores the DDL's French."""

    LEGAL = "legal"
    ILLEGAL = "illegal"

    @property
    def stored(self) -> str:
        return _STORED[self]

    @classmethod
    def parse(cls, text: str) -> "Classification":
        """Accept any spelling (legal, légale, Illegale, …); raise ValueError otherwise."""
        try:
            return _SPELLINGS[_fold(text)]
        except KeyError:
            raise ValueError(f"{text!r} is not legal or illegal (légale/illégale)") from None

    @classmethod
    def from_stored(cls, value: str | None) -> "Classification | None":
        return None if value is None else _FROM_STORED[value]


_STORED = {Classification.LEGAL: "Légale", Classification.ILLEGAL: "Illégale"}
_FROM_STORED = {v: k for k, v in _STORED.items()}
_SPELLINGS = {
    "legal": Classification.LEGAL,
    "legale": Classification.LEGAL,
    "illegal": Classification.ILLEGAL,
    "illegale": Classification.ILLEGAL,
}
