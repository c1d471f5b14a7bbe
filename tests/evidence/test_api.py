"""``/api/stats`` groups by the suggested class and filters by layer kind, its stored answers following each evidence run."""

from __future__ import annotations

import pytest

from forestguard import stores
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.rules import load_rules

from ..server.conftest import start_server, stop_server
from .conftest import add_layers, case_zones

pytestmark = pytest.mark.postgis


def test_api_stats_by_suggested_and_overlaps_follow_each_evidence_run(tmp_path, zones_db):
    with stores.open(zones_db, create=True) as store:
        store.insert(case_zones())
        add_layers(store, tmp_path)
        compute_evidence(store, load_rules())
    served = start_server(tmp_path, zones_db)
    try:
        status, document = served.json("/api/stats?by=suggested")
        assert status == 200 and {r["suggested"]: r["zones"] for r in document["rows"]} == {"illegal": 2, "legal": 1, "undetermined": 7}
        status, document = served.json("/api/stats?by=&overlaps=protected_area,embargo")
        assert status == 200 and document["rows"][0]["zones"] == 3  # half_in_pa, pa_created_later, embargo_later
        status, document = served.json("/api/stats?overlaps=bogus")
        assert status == 400 and "unknown layer kind 'bogus'" in document["error"]

        with stores.open(zones_db) as store:  # evidence changes; the zones' data version does not
            version = store.data_version()
            store.remove_layer("Embargos <IBAMA>")
            compute_evidence(store, load_rules())
            assert store.data_version() == version
        status, document = served.json("/api/stats?by=suggested")
        assert {r["suggested"]: r["zones"] for r in document["rows"]} == {"illegal": 1, "legal": 1, "undetermined": 8}
        status, document = served.json("/api/stats?by=&overlaps=protected_area,embargo")
        assert document["rows"][0]["zones"] == 2
    finally:
        stop_server(served)
