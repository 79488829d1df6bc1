"""The tests' cast is replayed from a snapshot of the rows one real build made (tests.snapshot): the same rows as
a build through the services, and a real build wherever a replay could differ from one."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from guardian.models import UserObjectPermission

from ctims.audit import audit_verify
from ctims.models import AuditEvent
from tests.conftest import _build_world, build_world, make_user
from tests.snapshot import RowSnapshot
from trials.models import Membership, Subject, Timepoint, Trial


def _content(world) -> dict:
    """What the cast is, without the keys and times that differ from one build to the next."""
    return {
        "cora may upload at SEO": world.cora.has_perm("trials.upload_to_site", world.seo),
        "bruno may upload at SEO": world.bruno.has_perm("trials.upload_to_site", world.seo),
        "users": sorted(get_user_model().objects.values_list("email", "full_name", "is_active")),
        "trials": sorted(Trial.objects.values_list("code", "title", "sponsor")),
        "memberships": sorted(Membership.objects.values_list("user__email", "trial__code", "role")),
        "sites": sorted(Membership.objects.values_list("user__email", "sites__code")),
        "subjects": sorted(Subject.objects.values_list("code", "site__code")),
        "timepoints": Timepoint.objects.count(),
        "permissions": sorted(
            UserObjectPermission.objects.values_list("user__email", "permission__codename", "content_type__model")
        ),
        "audit": list(AuditEvent.objects.order_by("seq").values_list("seq", "action")),
    }


def _in_a_savepoint(build):
    with transaction.atomic():
        world = build()
        content, chain = _content(world), audit_verify()
        transaction.set_rollback(True)
    return world, content, chain


def test_a_replayed_cast_is_what_a_build_through_the_services_makes(db):
    replayed, replayed_content, replayed_chain = _in_a_savepoint(build_world)
    built, built_content, built_chain = _in_a_savepoint(_build_world)
    assert replayed_content == built_content
    assert replayed_chain.intact and replayed_chain.checked == built_chain.checked > 20
    assert list(replayed.people) == list(built.people) and list(replayed.subjects) == list(built.subjects)
    assert replayed_content["cora may upload at SEO"] and not replayed_content["bruno may upload at SEO"]


def test_each_replay_gives_the_same_rows_and_a_real_build_new_ones(db):
    first, _, _ = _in_a_savepoint(build_world)
    again, _, _ = _in_a_savepoint(build_world)
    built, _, _ = _in_a_savepoint(_build_world)
    assert (first.trial.pk, first.alice.pk) == (again.trial.pk, again.alice.pk)  # the snapshot's rows
    assert built.alice.pk > again.alice.pk  # a build takes new keys


def test_a_test_that_made_rows_first_gets_the_cast_built_after_them(db):
    zed = make_user("zed")
    world = build_world()
    assert world.alice.pk > zed.pk  # built after zed, not replayed from a state without him
    assert audit_verify().intact


def test_a_replay_checks_its_references_when_it_writes_them(db):
    """Foreign keys are deferred to a commit that a test never makes: a replay checks them at once, so a row
    that names one the snapshot lacks fails there."""
    from trials.models import Site

    def build():
        return Site.objects.create(trial=Trial.objects.create(code="REF", title="R"), code="S1", name="S", country="KR")

    snapshot = RowSnapshot(build, lambda site: site.pk, lambda pk: Site.objects.get(pk=pk))
    with transaction.atomic():
        assert snapshot().code == "S1"  # the first call takes the snapshot and replays it
        transaction.set_rollback(True)
    (taken,) = snapshot._taken.values()
    taken.rows.pop(Trial._meta.db_table)
    with pytest.raises(IntegrityError), transaction.atomic():
        snapshot()


def test_a_row_the_build_changed_is_replayed_as_the_build_left_it(db):
    world = build_world()

    def build():
        Trial.objects.filter(pk=world.trial.pk).update(title="Alpha, renamed")
        return world.trial.pk

    snapshot = RowSnapshot(build, lambda pk: pk, lambda pk: Trial.objects.get(pk=pk))
    with transaction.atomic():
        snapshot()
        transaction.set_rollback(True)
    (taken,) = snapshot._taken.values()
    assert taken.gone == {Trial._meta.db_table: ("id", [str(world.trial.pk)])}
    assert snapshot().title == "Alpha, renamed"
    assert Trial.objects.count() == 2  # changed, not added beside the old row


def test_the_files_a_build_writes_are_written_again_into_the_tests_store(db, stores):
    from django.core.files.base import ContentFile
    from django.core.files.storage import storages

    def build():
        storages["images"].save("ALPHA/1.dcm", ContentFile(b"pixels"))
        return Trial.objects.create(code="FILES", title="F").pk

    snapshot = RowSnapshot(build, lambda pk: pk, lambda pk: Trial.objects.get(pk=pk), stores=("images",))
    with transaction.atomic():
        taken = snapshot().pk
        transaction.set_rollback(True)
    (stores / "images" / "ALPHA" / "1.dcm").unlink()  # as a test of its own would find its store
    assert snapshot().pk == taken  # replayed, not built again
    assert (stores / "images" / "ALPHA" / "1.dcm").read_bytes() == b"pixels"
