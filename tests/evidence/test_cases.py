"""The shipped rules, case by case, on zones and layers built for each case."""

from __future__ import annotations

import pytest

from forestguard import stores
from forestguard.evidence.compute import compute_evidence
from forestguard.evidence.rules import load_rules

from .conftest import zone_ids


@pytest.fixture
def computed(case_store):
    with stores.open(case_store) as store:
        compute_evidence(store, load_rules())
        ids = zone_ids(store)
        yield {name: store.zone_evidence(ids[name]) for name in ids}


def test_an_authorization_valid_the_year_before_but_not_in_the_zones_year_proves_nothing(computed):
    evidence = computed["auth_year_before"]
    assert [(f.kind, f.feature_id, f.valid_at_zone_year) for f in evidence.findings] == [("authorization", "ASV-1", False)]
    assert evidence.findings[0].overlap_share == pytest.approx(1.0)
    assert evidence.suggested == "undetermined"


def test_an_authorization_valid_in_the_zones_year_suggests_legal(computed):
    evidence = computed["auth_valid"]
    assert [(f.feature_id, f.valid_at_zone_year) for f in evidence.findings] == [("ASV-2", True)]
    assert (evidence.suggested, evidence.rule) == ("legal", "covered by an authorization valid in the zone's year")


def test_an_authorization_covering_90_percent_is_not_enough(computed):
    evidence = computed["auth_partial"]
    assert evidence.findings[0].overlap_share == pytest.approx(0.9, abs=0.002)
    assert evidence.suggested == "undetermined"


def test_a_zone_touching_but_not_entering_a_protected_area_has_no_finding(computed):
    for name in ("touches_pa", "corner_pa"):  # an edge, a corner in common
        assert computed[name].findings == ()
        assert computed[name].suggested == "undetermined"
    assert computed["touches_pa"].classification == "illegal"  # its stored class stays what it was


def test_half_inside_a_protected_area_suggests_illegal_whatever_the_stored_class(computed):
    evidence = computed["half_in_pa"]
    assert [(f.kind, f.feature_id, f.valid_at_zone_year) for f in evidence.findings] == [("protected_area", "UC-half", True)]
    assert evidence.findings[0].overlap_share == pytest.approx(0.5, abs=0.001)
    assert evidence.findings[0].overlap_ha == pytest.approx(evidence.findings[0].overlap_ha / evidence.findings[0].overlap_share * 0.5, rel=1e-3)
    assert (evidence.classification, evidence.suggested) == ("legal", "illegal")


def test_a_zone_split_across_two_properties_has_both(computed):
    evidence = computed["two_properties"]
    assert sorted((f.feature_id, round(f.overlap_share, 3)) for f in evidence.findings) == [("PA-1500107-AAAA", 0.6), ("PA-1500107-BBBB", 0.4)]
    assert sum(f.overlap_share for f in evidence.findings) == pytest.approx(1.0, abs=1e-6)  # two cuts measured apart: ~1e-7 ha
    assert evidence.suggested == "undetermined"  # properties say who, not whether


def test_an_embargo_dated_after_the_clearing_still_suggests_illegal(computed):
    evidence = computed["embargo_later"]
    assert [(f.kind, f.layer, f.valid_at_zone_year) for f in evidence.findings] == [("embargo", "Embargos <IBAMA>", False)]
    assert evidence.suggested == "illegal"


def test_a_protected_area_created_after_the_clearing_proves_nothing(computed):
    evidence = computed["pa_created_later"]
    assert [(f.feature_id, f.valid_at_zone_year) for f in evidence.findings] == [("UC-new", False)]
    assert evidence.suggested == "undetermined"


def test_findings_carry_their_layers_provenance(computed):
    finding = computed["half_in_pa"].findings[0]
    assert (finding.layer, finding.source, finding.as_of.isoformat()) == ("UCs", "UCs source", "2024-06-30")
    assert computed["nothing"].findings == () and computed["nothing"].suggested == "undetermined"
    document = computed["two_properties"].to_dict()
    assert list(document) == ["zone_id", "classification", "suggested", "rules_version", "findings"]
    assert list(document["findings"][0]) == ["layer", "kind", "source", "as_of", "feature_id", "overlap_ha", "overlap_share", "valid_at_zone_year"]
