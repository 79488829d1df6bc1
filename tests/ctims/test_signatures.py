"""Electronic signatures: the password again, a stated meaning, and a hash of exactly what was signed."""

from __future__ import annotations

import pytest
from django.db import transaction

from ctims.audit import audit_verify
from ctims.exceptions import NotPermitted, ValidationFailed
from ctims.models import AuditEvent, Signature
from ctims.signatures import SignatureRefused, content_hash, signature_create, signature_verify, signing
from tests.conftest import PASSWORD

MEANING = "I am the author of this assessment"


def test_a_signature_binds_signer_meaning_and_content(world):
    content = {"lesions": [{"label": "T01", "long_axis": 230}], "overall": "PR"}
    signature = signature_create(
        user=world.rhea, password=PASSWORD, meaning=MEANING, obj=world.trial, content=content, trial_id=world.trial.pk
    )
    assert signature.signer == world.rhea and signature.meaning == MEANING and signature.signer_name == "Rhea"
    assert signature_verify(signature, content)
    assert not signature_verify(signature, content | {"overall": "SD"})
    event = AuditEvent.objects.get(action="signature.create")
    assert event.summary["content_hash"] == signature.content_hash and audit_verify().intact


def test_the_same_content_always_hashes_the_same():
    assert content_hash({"b": 1, "a": [2, 3]}) == content_hash({"a": [2, 3], "b": 1})


def test_a_wrong_password_signs_nothing(world):
    with pytest.raises(NotPermitted, match="password is not correct"):
        signature_create(user=world.rhea, password="wrong", meaning=MEANING, obj=world.trial, content={})
    assert not Signature.objects.exists() and not AuditEvent.objects.filter(action="signature.create").exists()


def test_a_wrong_password_is_audited_although_the_signing_transaction_rolls_back(world):
    with pytest.raises(SignatureRefused), signing(user=world.rhea), transaction.atomic():
        world.trial.title = "renamed in the transaction that fails"
        world.trial.save()
        signature_create(
            user=world.rhea, password="wrong", meaning=MEANING, obj=world.trial, content={}, trial_id=world.trial.pk
        )
    world.trial.refresh_from_db()
    assert world.trial.title != "renamed in the transaction that fails"
    event = AuditEvent.objects.get(action="signature.refuse")
    assert (event.actor, event.trial_id, event.object_id) == (world.rhea, world.trial.pk, str(world.trial.pk))
    assert event.summary["meaning"] == MEANING and "wrong" not in str(event.summary)
    assert not Signature.objects.exists() and audit_verify().intact


def test_a_deactivated_person_cannot_sign(world):
    world.rhea.is_active = False
    world.rhea.save()
    with pytest.raises(NotPermitted):
        signature_create(user=world.rhea, password=PASSWORD, meaning=MEANING, obj=world.trial, content={})


def test_a_signature_states_its_meaning(world):
    with pytest.raises(ValidationFailed, match="what the signature means"):
        signature_create(user=world.rhea, password=PASSWORD, meaning=" ", obj=world.trial, content={})


def test_the_database_refuses_to_change_or_delete_a_signature(world):
    """A signature is made once (11.70): audit_verify would find it changed, and the database refuses it."""
    from django.db import DatabaseError, connection

    signature = signature_create(
        user=world.rhea, password=PASSWORD, meaning=MEANING, obj=world.trial, content={}, trial_id=world.trial.pk
    )
    for sql in ("UPDATE ctims_signature SET meaning = 'x'", "DELETE FROM ctims_signature"):
        with pytest.raises(DatabaseError, match="never changes"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql)
    signature.refresh_from_db()
    assert signature.meaning == MEANING and signature_verify(signature, {})
