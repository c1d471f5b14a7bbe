"""Cache key format and TTLs: the one place that defines them.

Every key is ``{prefix}:{kind}:…``. Data keys follow the design's seed keys
(ARCHITECTURE.md, "Cache keys") and add the store's data version, so an ingest
is never hidden by an old entry — old entries are simply never asked for again
and age out with their TTL:

=========  ==================================================================  ========
kind       key                                                                 TTL (s)
=========  ==================================================================  ========
stats      ``fg:stats:{countries}:{years}:v{version}:{{digest}}``              1800
geojson    ``fg:geojson:{country}:v{version}:{{digest}}``                      3600
agg        ``fg:agg:{name}:v{version}:{{digest}}``                             3600
session    ``fg:session:{user_id}``                                            86400
lock       ``fg:lock:{key without prefix}`` (stampede lock, milliseconds)      —
meta       ``fg:meta:counters`` (hit/miss/error totals of every process)       —
=========  ==================================================================  ========

``{countries}`` is the filter's country when it names exactly one, ``*`` when it
names none (all countries) and the sorted, comma-joined list when it names
several; ``{years}`` is the year (``2020``), ``*``, or a range (``2015-2020``,
``2015-``, ``-2020``). The readable parts are for people and ``SCAN``; what makes
a key unique is ``{digest}``, a hash of everything else the value depends on
(store identity, group keys, the whole filter), so two filters that share a
readable part never share a value. ``agg`` (datashader aggregates) is not in the
design table; it takes the GeoJSON TTL because both feed the same map views.

Redis Cluster: ``{{digest}}`` is the key's hash tag (the digest inside literal
braces), so a value and its stampede lock — read together by one ``MGET`` — hash
to the same slot, while different values spread over every slot. Braces in the
readable parts are escaped (``%7B``/``%7D``, ``%`` as ``%25``), so the digest is
always the first, and only, hash tag of a data key.

The prefix isolates deployments that share one Redis. It may hold only letters,
digits, ``_``, ``.`` and ``-`` — no ``:`` — so one prefix's keys can never match
another's ``{prefix}:*`` pattern (``cache clear`` relies on this).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Sequence

from ..config import redact
from ..errors import UserError

if TYPE_CHECKING:  # stores pull in geopandas; the cache itself does not need it
    from ..stores.base import ZoneFilter, ZoneStore

#: Seconds each kind of entry lives (ARCHITECTURE.md, "Cache keys").
TTL_SECONDS: dict[str, int] = {"stats": 1800, "geojson": 3600, "agg": 3600, "session": 86400}

#: Kinds that hold data (counted per kind in the metrics).
DATA_KINDS: tuple[str, ...] = ("stats", "geojson", "agg", "session")

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_BRACES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})
#: Redis Cluster's rule: the first ``{`` and the first ``}`` after it enclose the hash tag, if not empty.
_HASH_TAG = re.compile(r"^[^{]*\{([^}]+)\}")


def hash_tag(key: str) -> str | None:
    """What Redis Cluster hashes a key by when the key has a hash tag (None: the whole key)."""
    found = _HASH_TAG.match(key)
    return found.group(1) if found else None


def _readable(value: object) -> str:
    """A readable key part that cannot open a hash tag (escaping is one-to-one)."""
    return str(value).translate(_BRACES)


def digest(parts: Iterable[object]) -> str:
    """A short stable hash of the parts (64 bits: collisions are not a practical concern)."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=8).hexdigest()


def store_scope(store: ZoneStore) -> str:
    """Identity of a store for cache keys: engine and URL (redacted, so no secret is hashed).

    Two stores at the same data version must not share entries, whatever
    process or container asks; the same ``DATABASE_URL`` everywhere gives the
    same scope everywhere.
    """
    return f"{store.engine}:{redact(store.url)}"


def _segment(values: Sequence[str]) -> str:
    if not values:
        return "*"
    return ",".join(sorted(_readable(v) for v in values))


def _years(year_from: int | None, year_to: int | None) -> str:
    if year_from is None and year_to is None:
        return "*"
    if year_from is not None and year_from == year_to:
        return str(year_from)
    return f"{'' if year_from is None else year_from}-{'' if year_to is None else year_to}"


@dataclass(frozen=True)
class KeySpace:
    """Builds every key of one deployment (one prefix)."""

    prefix: str = "fg"

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise UserError(
                f"cache prefix {self.prefix!r} is not valid: use 1-64 letters, digits, '_', '.' or '-' (no ':')"
            )

    # -- data keys -------------------------------------------------------------
    def stats(self, scope: str, where: ZoneFilter, by: Sequence[str], version: int) -> str:
        countries = _segment(where.countries)
        years = _years(where.year_from, where.year_to)
        rest = digest([scope, ",".join(by), where.key()])
        return f"{self.prefix}:stats:{countries}:{years}:v{int(version)}:{{{rest}}}"

    def geojson(self, country: str, version: int, scope: str = "") -> str:
        return f"{self.prefix}:geojson:{_readable(country)}:v{int(version)}:{{{digest([scope])}}}"

    def agg(self, name: str, parts: Iterable[object], version: int) -> str:
        return f"{self.prefix}:agg:{_readable(name)}:v{int(version)}:{{{digest(parts)}}}"

    def session(self, user_id: str) -> str:
        return f"{self.prefix}:session:{user_id}"

    # -- bookkeeping keys ------------------------------------------------------
    def lock(self, key: str) -> str:
        """The stampede lock guarding ``key``: same prefix, same hash tag, so the same cluster slot.

        ``key`` must carry a hash tag (every data key built here does): without
        one, Redis Cluster would hash the two names to different slots.
        """
        if hash_tag(key) is None:
            raise ValueError(f"cache key {key!r} has no hash tag: build it with KeySpace")
        return f"{self.prefix}:lock:{key.removeprefix(self.prefix + ':')}"

    @property
    def counters(self) -> str:
        return f"{self.prefix}:meta:counters"

    @property
    def pattern(self) -> str:
        """``SCAN MATCH`` pattern of every key of this prefix, glob characters escaped."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + ":*"

    def kind_of(self, key: str) -> str:
        """The kind of a key built here (``stats``, ``geojson``, …)."""
        rest = key.removeprefix(self.prefix + ":")
        return rest.split(":", 1)[0]

    def ttl(self, kind: str) -> int:
        return TTL_SECONDS[kind]
