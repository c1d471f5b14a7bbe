"""Filter values from text — command-line options, HTTP query parameters — checked in one place.

Every face that lets a user choose zones (``forestguard stats``, ``/api/stats``, OGC API
Features) builds its :class:`~forestguard.stores.base.ZoneFilter` here, so a value is
accepted or refused the same way everywhere. Errors are :class:`FilterError`: one line,
naming the parameter as the face spells it (``spell``); the CLI turns them into usage
errors, the server into 400 answers.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Sequence

from .errors import UserError
from .stores.evidence_records import KINDS
from .schema import Classification
from .stores.base import ZoneFilter

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
NUL = "\x00"

#: How a face names a parameter in messages (identity: query parameters; the CLI prefixes ``--``).
Spell = Callable[[str], str]


class FilterError(UserError, ValueError):
    """A filter value the user must correct (a usage error for the CLI, 400 for the server)."""


def _plain(name: str) -> str:
    return name


def refuse_nul(arguments: Mapping[str, Sequence[str]]) -> None:
    """Refuse parameters holding NUL: no zone field can hold one (PostgreSQL text refuses it outright)."""
    for name, values in arguments.items():
        if any(NUL in v for v in (name, *values)):
            shown = "a parameter name" if NUL in name else name
            raise FilterError(f"{shown} contains a NUL character, which no zone field can hold")


def parse_integer(text: str | None, name: str) -> int | None:
    """A whole number, or None for nothing given."""
    if text is None or text.strip() == "":
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise FilterError(f"{name} must be a whole number, not {text!r}") from None


def parse_boolean(text: str | None, name: str, default: bool = False) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0`` in any case; nothing given is ``default``."""
    lowered = (text or "").strip().lower()
    if lowered == "":
        return default
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise FilterError(f"{name} must be true or false, not {text!r}")


def parse_confidence(text: str | None, name: str) -> float | None:
    """A confidence from 0 to 1, or None for nothing given."""
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise FilterError(f"{name} must be a number between 0 and 1, not {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise FilterError(f"{name} must be between 0 and 1, not {value:g}")
    return value


def parse_bbox(text: str | None, name: str = "bbox") -> tuple[float, float, float, float] | None:
    """``xmin,ymin,xmax,ymax`` in lon/lat (OGC's six-number form with heights keeps the four), or None."""
    if text is None or text.strip() == "":
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise FilterError(f"{name} must be four numbers xmin,ymin,xmax,ymax (lon/lat), not {text!r}") from None
    if len(values) == 6:  # xmin, ymin, zmin, xmax, ymax, zmax
        values = [values[0], values[1], values[3], values[4]]
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise FilterError(f"{name} must be four numbers xmin,ymin,xmax,ymax (lon/lat), not {text!r}")
    xmin, ymin, xmax, ymax = values
    if not (-180 <= xmin <= 180 and -180 <= xmax <= 180 and -90 <= ymin <= 90 and -90 <= ymax <= 90):
        raise FilterError(f"{name} {text!r} is outside lon -180..180, lat -90..90")
    if ymin > ymax:
        raise FilterError(f"{name} {text!r} has its south edge above its north edge")
    if xmin > xmax:
        raise FilterError(f"{name} {text!r} crosses the antimeridian; split it into two requests")
    return (xmin, ymin, xmax, ymax)


def zone_filter(
    *,
    countries: Iterable[str] = (),
    year: int | None = None,
    year_from: int | None = None,
    year_to: int | None = None,
    classifications: Iterable[str] = (),
    sources: Iterable[str] = (),
    verified_only: bool = False,
    min_confidence: float | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    overlaps: Iterable[str] = (),
    spell: Spell = _plain,
) -> ZoneFilter:
    """The filter these values select; contradictions and unknown classes raise :class:`FilterError`.

    ``spell`` names the parameters in messages: ``year``/``from``/``to``/``classification``/``overlaps``.
    ``overlaps``: reference layer kinds (each may be a comma-separated list), any of which a zone must overlap.
    """
    if year is not None and (year_from is not None or year_to is not None):
        raise FilterError(f"{spell('year')} cannot be combined with {spell('from')}/{spell('to')}")
    if year is not None:
        year_from = year_to = year
    if year_from is not None and year_to is not None and year_from > year_to:
        raise FilterError(f"{spell('from')} {year_from} is after {spell('to')} {year_to}")
    try:
        classes = tuple(dict.fromkeys(Classification.parse(c) for c in classifications))
    except ValueError as exc:
        raise FilterError(f"{spell('classification')}: {exc}") from None
    wanted = {k.strip() for text in overlaps for k in str(text).split(",") if k.strip()}
    unknown = sorted(wanted.difference(KINDS))
    if unknown:
        raise FilterError(f"{spell('overlaps')}: unknown layer kind {unknown[0]!r}; use one of {', '.join(KINDS)}")
    return ZoneFilter(
        countries=tuple(c for c in countries if c),
        year_from=year_from,
        year_to=year_to,
        classifications=classes,
        sources=tuple(s for s in sources if s),
        verified_only=verified_only,
        min_confidence=min_confidence,
        bbox=bbox,
        overlaps=tuple(k for k in KINDS if k in wanted),
    )
