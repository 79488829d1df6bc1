"""The pseudonym space of a trial: keyed, deterministic, and unlinkable across trials."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from trials.deid import PseudonymSpace

from .factories import KEY_ALPHA, KEY_OMEGA, uid


def test_it_maps_a_uid_to_a_2_25_uid_from_the_hmac_of_the_original():
    original = uid(1, 2, 3)
    mapped = PseudonymSpace(KEY_ALPHA).uid(original)
    digest = hmac.new(KEY_ALPHA, original.encode(), hashlib.sha256).digest()
    assert mapped == "2.25." + str(int.from_bytes(digest[:16], "big"))
    assert len(mapped) <= 64 and len(mapped.split(".")[2]) <= 39


def test_it_maps_the_same_uid_the_same_way_and_different_uids_differently():
    space = PseudonymSpace(KEY_ALPHA)
    assert space.uid(uid(1)) == space.uid(uid(1)) == space.uid(uid(1) + "\x00")
    assert space.uid(uid(1)) != space.uid(uid(2))


def test_two_trials_share_no_uid_patient_hash_or_date_offset():
    alpha, omega = PseudonymSpace(KEY_ALPHA), PseudonymSpace(KEY_OMEGA)
    assert alpha.uid(uid(1)) != omega.uid(uid(1))
    assert alpha.patient_hash("MRN4455667") != omega.patient_hash("MRN4455667")
    assert alpha.date_offset_days("SEO-001") != omega.date_offset_days("SEO-001")


def test_a_patient_hash_is_a_keyed_digest_that_ignores_padding():
    space = PseudonymSpace(KEY_ALPHA)
    digest = space.patient_hash("MRN4455667")
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest == space.patient_hash("MRN4455667 ")
    assert digest != space.patient_hash("MRN4455668")
    assert "MRN4455667" not in digest


def test_a_subject_keeps_one_date_offset_between_one_and_ten_years_back():
    space = PseudonymSpace(KEY_ALPHA)
    offsets = {code: space.date_offset_days(code) for code in (f"SEO-{n:03d}" for n in range(200))}
    assert all(-3650 <= offset <= -365 for offset in offsets.values())
    assert len(set(offsets.values())) > 150  # spread, not one shared offset
    assert space.date_offset_days("SEO-007") == offsets["SEO-007"]


@pytest.mark.parametrize("key", [b"", b"short", KEY_ALPHA.hex().encode(), "x" * 32])
def test_it_refuses_a_key_that_is_not_32_raw_bytes(key):
    with pytest.raises(ValueError):
        PseudonymSpace(key)


def test_its_repr_does_not_show_the_key():
    assert KEY_ALPHA.hex() not in repr(PseudonymSpace(KEY_ALPHA))
    assert repr(KEY_ALPHA) not in repr(PseudonymSpace(KEY_ALPHA))
