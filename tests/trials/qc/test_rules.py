"""The classification rules file: versioned, every rule valid, every kind reachable; bad files are refused."""

from __future__ import annotations

import json

import pytest

from trials.qc import DEFAULT_RULES, KINDS, classify_series, load_rules
from trials.qc.classify import RULES_PATH, region_parts

from .factories import series


def test_the_rules_file_has_a_version_and_every_rule_a_valid_kind():
    data = json.loads(RULES_PATH.read_text(encoding="utf-8"))
    assert isinstance(data["version"], str) and data["version"]
    assert DEFAULT_RULES.version == data["version"]
    assert len(DEFAULT_RULES.rules) == len(data["rules"])
    for rule in data["rules"]:
        assert rule["kind"] in KINDS, rule["id"]
        assert rule["modality"] in (None, "CT", "MR"), rule["id"]
        assert 0 < rule["confidence"] <= 1, rule["id"]
    assert len({rule["id"] for rule in data["rules"]}) == len(data["rules"])


def test_every_kind_but_unknown_is_given_by_some_rule():
    assert {rule.kind for rule in DEFAULT_RULES.rules} == set(KINDS) - {"unknown"}


def test_every_body_part_maps_to_a_valid_region():
    for region in DEFAULT_RULES.body_parts.values():
        assert region_parts(region)


def write(tmp_path, **changes):
    data = json.loads(RULES_PATH.read_text(encoding="utf-8")) | changes
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def rule(**overrides) -> dict:
    return {
        "id": "x",
        "kind": "ct.arterial",
        "modality": "CT",
        "when": {},
        "confidence": 0.5,
        "reason": "r",
    } | overrides


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"version": ""}, "version"),
        ({"rules": [rule(kind="ct.venous")]}, "unknown kind"),
        ({"rules": [rule(when={"colour": 1})]}, "unknown conditions"),
        ({"rules": [rule(when={"text": "(art"})]}, "regular expression"),
        ({"rules": [rule(when={"text": "@nope"})]}, "no pattern"),
        ({"rules": [rule(when={"delay_s": [45, 15]})]}, "minimum"),
        ({"rules": [rule(modality="US")]}, "modality"),
        ({"rules": [rule(confidence=2)]}, "confidence"),
        ({"rules": [rule(), rule()]}, "used twice"),
    ],
)
def test_a_broken_rules_file_is_refused_with_what_is_wrong(tmp_path, changes, complaint):
    with pytest.raises(ValueError, match=complaint):
        load_rules(write(tmp_path, **changes))


def test_a_rules_file_can_be_swapped_for_a_trial(tmp_path):
    custom = [rule(id="all-pv", kind="ct.portal_venous", confidence=0.3, reason="site sends PV only")]
    rules = load_rules(write(tmp_path, version="site-1", rules=custom))
    result = classify_series(series(n=3, description="AX"), rules)
    assert result.kind == "ct.portal_venous"
    assert "rules site-1" in result.reasons[0]


def test_every_rules_reason_is_in_the_korean_catalogue():
    """A reason is shown in its reader's language: the rules file's reasons are listed for makemessages and each
    has its Korean words (a new rule's reason without them would read English on a Korean QC page)."""
    from django.utils import translation

    from trials.qc.rule_reasons import RULE_REASONS

    data = json.loads(RULES_PATH.read_text(encoding="utf-8"))
    assert set(RULE_REASONS) == {rule["reason"] for rule in data["rules"]}
    with translation.override("ko"):
        untranslated = [reason for reason in RULE_REASONS if translation.gettext(reason) == reason]
    assert not untranslated
