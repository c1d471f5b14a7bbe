"""The zone schema: classification spellings, limits, the DDL kept verbatim."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from forestguard.schema import (
    AREA_MAX_HA,
    GROUP_KEYS,
    POSTGIS_DDL,
    REQUIRED_COLUMNS,
    TEXT_LIMITS,
    YEAR_MIN,
    ZONE_COLUMNS,
    Classification,
    current_year,
)


@pytest.mark.parametrize("text", ["legal", "Legal", "LEGAL", "légale", "Légale", "LÉGALE", "legale", " legal\t", "le\u0301gale", "ＬＥＧＡＬ"])
def test_legal_spellings(text: str) -> None:
    assert Classification.parse(text) is Classification.LEGAL


@pytest.mark.parametrize("text", ["illegal", "ILLEGAL", "illégale", "Illégale", "ILLÉGALE", "illegale", "Ille\u0301gale"])
def test_illegal_spellings(text: str) -> None:
    assert Classification.parse(text) is Classification.ILLEGAL


@pytest.mark.parametrize("text", ["", "ilegal", "legal illegal", "lega", "illégal-e", "illicit", "true"])
def test_other_text_is_not_a_class(text: str) -> None:
    with pytest.raises(ValueError, match="not legal or illegal"):
        Classification.parse(text)


def test_stored_values_are_the_ddls() -> None:
    assert (Classification.LEGAL.stored, Classification.ILLEGAL.stored) == ("Légale", "Illégale")
    assert Classification.from_stored("Illégale") is Classification.ILLEGAL and Classification.from_stored(None) is None
    check = re.search(r"CHECK \(classification IN \('(.+)', '(.+)'\)\)", POSTGIS_DDL)
    assert check and set(check.groups()) == {c.stored for c in Classification}


def test_columns_and_limits_match_the_ddl() -> None:
    for column in ZONE_COLUMNS:
        assert re.search(rf"^\s+{column} ", POSTGIS_DDL, re.M), column
    for column, limit in TEXT_LIMITS.items():
        assert f"{column} VARCHAR({limit})" in POSTGIS_DDL
    assert "area_ha DECIMAL(10,2) NOT NULL" in POSTGIS_DDL and AREA_MAX_HA == 99_999_999.99
    assert "confidence DECIMAL(3,2)" in POSTGIS_DDL
    assert set(REQUIRED_COLUMNS) == {"country", "year"} and YEAR_MIN == 1970
    assert GROUP_KEYS == ("country", "year", "classification")
    assert current_year() == dt.date.today().year
