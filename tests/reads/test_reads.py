"""The read itself: drafts assessed on save, signing with the password, the SR in the study, follow-ups in
order, corrections as new versions, agreement and adjudication, locked results."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, transaction
from django.test import Client
from django.urls import reverse

from ctims.exceptions import InvalidState, NotPermitted, ValidationFailed
from ctims.models import AuditEvent, Signature
from reads import read_services, results
from reads.models import Adjudication, Lesion, Measurement, Read, ReadTask, TimepointResult
from reads.sr import parse_measurement_report
from reads.sr_store import read_sr_dataset
from tests.conftest import PASSWORD
from tests.reads.flow import (
    SUBJECT,
    baseline_content,
    dciodvfy_errors,
    follow_up_content,
    image,
    ready,
    save_and_sign,
    signed_baseline_then_week_6,
    target,
    task_of,
)
from trials.models import Series, Timepoint


def test_a_baseline_read_is_assessed_on_save_and_its_problems_block_signing(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task, t1="9.0")  # a non-nodal target under 10 mm is not measurable
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert [p["code"] for p in read.assessment["problems"]] == ["NON_NODAL_TOO_SMALL"]
    assert ReadTask.objects.get(pk=task.pk).state == "in_progress"
    with pytest.raises(ValidationFailed):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
        )
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    assert read.assessment["sum_mm"] == "35.0" and read.assessment["problems"] == []


def test_three_targets_in_one_organ_and_three_nodes_are_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    content["targets"] = [target(task, f"T0{n}", "20.0") for n in (1, 2, 3)]
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "TOO_MANY_IN_ORGAN" in {p["code"] for p in read.assessment["problems"]}
    # Nodes of different stations are still one organ.
    content["targets"] = [
        target(task, f"T0{n}", "30.0", site=site, short="16.0", node=True)
        for n, site in ((1, "68171009"), (2, "62683002"), (3, "8928004"))
    ]
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "TOO_MANY_IN_ORGAN" in {p["code"] for p in read.assessment["problems"]}


def test_an_unreadable_draft_is_refused_and_keeps_the_saved_one(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    bad = baseline_content(task)
    bad["targets"][0]["long_mm"] = "twenty"
    with pytest.raises(ValidationFailed) as info:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=bad)
    assert "targets[0].long_mm" in info.value.fields
    assert Read.objects.get(task=task).content["targets"][0]["long_mm"] == "23.0"


def test_an_image_of_another_visit_is_refused(world):
    ready(world, "BL")
    ready(world, "BL", subject="ALPHA-SEO-002")
    task = task_of(world.rhea, "BL")
    other = ReadTask.objects.filter(timepoint__subject__code="ALPHA-SEO-002").first()
    content = baseline_content(task)
    content["targets"][0]["image"] = image(other)
    with pytest.raises(ValidationFailed, match="not part of this visit"):
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)


def test_an_image_named_with_a_study_or_series_it_is_not_part_of_is_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    for key in ("study", "series"):
        content = baseline_content(task)
        content["targets"][0]["image"] = image(task) | {key: "1.2.3.4"}
        with pytest.raises(ValidationFailed) as err:
            read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
        assert "T01" in str(err.value) and "targets[0].image" in err.value.fields
    content = baseline_content(task)
    content["non_targets"][0]["image"] = image(task, 1) | {"series": image(task, 1)["study"]}
    with pytest.raises(ValidationFailed, match="NT01"):
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert not task.reads.exists()


def test_a_frame_the_image_does_not_have_is_refused(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    content["targets"][1]["image"]["frame"] = 999
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    assert "T02" in str(err.value) and "999" in str(err.value) and "targets[1].image" in err.value.fields


def test_a_new_lesion_is_recorded_with_the_image_it_is_seen_on(world):
    bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "23.0", "12.0", new="unequivocal")
    content["new"][0]["image"] = None
    with pytest.raises(ValidationFailed) as err:
        read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    assert "N01" in str(err.value) and "new[0].image" in err.value.fields
    assert not w6.reads.exists()
    # Non-target lesions are judged, not pointed at: one at follow-up needs no image.
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=follow_up_content(w6, "23.0", "12.0"))
    assert read.content["non_targets"][0]["image"] is None and not read.assessment["problems"]


def test_a_wrong_password_signs_nothing(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    with pytest.raises(NotPermitted):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password="wrong", meaning_confirmed=True, confirmed_response="baseline"
        )
    assert Read.objects.get(task=task).state == "draft" and not Series.objects.filter(modality="SR").exists()


def test_signing_locks_the_read_writes_its_sr_into_the_study_and_opens_the_follow_up(world):
    ready(world, "BL")
    ready(world, "W6", day=42)
    task = task_of(world.rhea, "BL")
    assert task_of(world.rhea, "W6").state == "waiting"
    read = save_and_sign(world.rhea, task, baseline_content(task))
    assert read.state == "signed" and read.signature.signer == world.rhea
    assert read.signature.meaning == read_services.READER_MEANING
    assert task_of(world.rhea, "W6").state == "open"
    assert task_of(world.ravi, "W6").state == "waiting"  # the other reader has not signed their baseline

    sr = parse_measurement_report(read_sr_dataset(read))
    assert sr.study_uid == image(task)["study"]
    by_label = {lesion.tracking_label: lesion for lesion in sr.lesions}
    assert set(by_label) == {"T01", "T02", "NT01"}
    t01 = Lesion.objects.get(assignment=task.assignment, label="T01")
    assert by_label["T01"].tracking_uid == t01.tracking_uid
    assert str(by_label["T01"].long_axis_mm) == "23.0"
    assert by_label["T01"].image.sop_instance_uid == image(task)["sop"]
    drawn = read.content["targets"][0]["long_points"]  # SCOORD holds 32-bit floats
    assert [[round(c, 3) for c in p] for p in by_label["T01"].long_axis_points] == [
        [round(c, 3) for c in p] for p in drawn
    ]
    assert sr.verifying_observer_name == f"Radiologist {task.assignment.slot}^"  # the reader's code, not a name
    assert Measurement.objects.filter(read=read).count() == 3

    with pytest.raises(InvalidState):
        read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task, t1="30.0"))


def test_a_signed_read_cannot_be_changed_even_in_the_database(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read = save_and_sign(world.rhea, task, baseline_content(task))
    with pytest.raises(DatabaseError), transaction.atomic():
        Read.objects.filter(pk=read.pk).update(content={})
    with pytest.raises(DatabaseError), transaction.atomic():
        Measurement.objects.filter(read=read).update(long_axis=1)


def test_the_follow_up_is_assessed_against_the_readers_own_baseline_and_tracks_the_same_lesions(world):
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl, t1="23.0", t2="12.0"))
    w6 = task_of(world.rhea, "W6")
    # 23.0 + 12.0 = 35.0 -> 16.1 + 8.4 = 24.5: exactly -30 %, a PR with exact arithmetic.
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=follow_up_content(w6, "16.1", "8.4"))
    a = read.assessment
    assert (a["sum_mm"], a["change_from_baseline"], a["target_response"], a["overall_response"]) == (
        "24.5",
        "-30.0",
        "PR",
        "PR",
    )
    signed = read_services.read_sign(
        actor=world.rhea, task_id=w6.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="PR"
    )
    sr = parse_measurement_report(read_sr_dataset(signed))
    baseline_sr = parse_measurement_report(read_sr_dataset(Read.objects.get(task=bl)))
    uids = {lesion.tracking_label: lesion.tracking_uid for lesion in sr.lesions}
    assert uids == {lesion.tracking_label: lesion.tracking_uid for lesion in baseline_sr.lesions}
    assert sr.overall_response == "PR" and sr.target_response == "PR"


def test_a_missing_lesion_must_be_reported_before_signing(world):
    bl, w6 = signed_baseline_then_week_6(world)
    content = follow_up_content(w6, "20.0", "10.0")
    del content["targets"][1]
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=content)
    assert {p["code"] for p in read.assessment["problems"]} == {"NOT_REPORTED"}
    assert read.assessment["target_response"] == "NE"


def test_the_response_the_reader_confirmed_must_be_the_one_computed(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    with pytest.raises(ValidationFailed, match="changed"):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="PR"
        )
    with pytest.raises(ValidationFailed, match="author"):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password=PASSWORD, meaning_confirmed=False, confirmed_response="baseline"
        )


def test_a_correction_is_a_new_signed_version_linked_to_the_first(world, tmp_path):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    first = save_and_sign(world.rhea, task, baseline_content(task))
    correction = read_services.read_correct(actor=world.rhea, task_id=task.pk)
    assert correction.version == 2 and correction.supersedes == first
    second = save_and_sign(world.rhea, task, baseline_content(task, t1="25.0"))
    assert second.pk == correction.pk and second.state == "signed"
    first.refresh_from_db()
    assert first.state == "signed" and first.content["targets"][0]["long_mm"] == "23.0"
    assert first.sr_instance != second.sr_instance
    # The corrected SR names the SR it replaces.
    [predecessor] = read_sr_dataset(second).PredecessorDocumentsSequence
    assert predecessor.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == (
        first.sr_instance.sop_instance_uid
    )
    assert dciodvfy_errors(read_sr_dataset(second), tmp_path) == []
    # The lesion keeps its tracking UID across versions.
    assert Lesion.objects.filter(assignment=task.assignment, label="T01").count() == 1


def test_a_later_visit_cannot_be_signed_while_a_correction_of_an_earlier_one_is_open(world):
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl))
    read_services.read_correct(actor=world.rhea, task_id=bl.pk)
    w6 = task_of(world.rhea, "W6")
    read = read_services.read_save(actor=world.rhea, task_id=w6.pk, raw=follow_up_content(w6, "23.0", "12.0"))
    with pytest.raises(InvalidState, match="correction of Baseline"):
        read_services.read_sign(
            actor=world.rhea,
            task_id=w6.pk,
            password=PASSWORD,
            meaning_confirmed=True,
            confirmed_response=read.assessment["overall_response"],
        )
    assert ReadTask.objects.get(pk=w6.pk).state == "in_progress"
    # Once the baseline's correction is signed, the follow-up is signed against the corrected baseline.
    save_and_sign(world.rhea, bl, baseline_content(bl, t1="40.0", t2="20.0"))
    signed = save_and_sign(world.rhea, w6, follow_up_content(w6, "23.0", "12.0"))
    assert signed.assessment["baseline_sum_mm"] == "60.0" and signed.overall_response == "PR"


def test_a_correction_started_by_mistake_is_discarded_and_the_signed_read_stands(world, client):
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    first = save_and_sign(world.rhea, bl, baseline_content(bl))
    read_services.read_correct(actor=world.rhea, task_id=bl.pk)
    read_services.read_save(actor=world.rhea, task_id=bl.pk, raw=baseline_content(bl, t1="40.0"))
    client.force_login(world.rhea)
    page = client.get(reverse("read-task", args=[bl.pk])).content.decode()
    assert "read-correction-discard-form" in page and "version 1" in page
    response = client.post(reverse("read-correction-discard", args=[bl.pk]))
    assert response.status_code == 302
    bl.refresh_from_db()
    assert bl.state == "signed" and read_services.current_read(bl) == first
    assert list(bl.reads.values_list("version", flat=True)) == [1]
    (event,) = AuditEvent.objects.filter(action="read.correction_discard")
    assert event.actor == world.rhea and event.summary["version"] == 2 and event.summary["supersedes"] == first.pk
    # The later visit signs against the signed baseline, as if no correction had been started.
    w6 = task_of(world.rhea, "W6")
    signed = save_and_sign(world.rhea, w6, follow_up_content(w6, "23.0", "12.0"))
    assert signed.assessment["baseline_sum_mm"] == first.assessment["sum_mm"]
    # Nothing is left to discard; a read never signed is not a correction.
    with pytest.raises(InvalidState, match="no correction"):
        read_services.read_correction_discard(actor=world.rhea, task_id=bl.pk)
    page = client.get(reverse("read-task", args=[bl.pk])).content.decode()
    assert "read-correction-discard-form" not in page


def test_a_first_read_is_no_correction_to_discard(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    with pytest.raises(InvalidState, match="no correction"):
        read_services.read_correction_discard(actor=world.rhea, task_id=task.pk)
    assert task.reads.count() == 1


def test_a_correction_is_asked_again_at_signing_whether_it_may_still_be_made(world, monkeypatch):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    bl = task_of(world.rhea, "BL")
    # A correction that got past its first check just as the other reader's signature locked the visit.
    check = read_services._check_correction_allowed
    monkeypatch.setattr(read_services, "_check_correction_allowed", lambda task: None)
    read_services.read_correct(actor=world.rhea, task_id=bl.pk)
    monkeypatch.setattr(read_services, "_check_correction_allowed", check)
    read = read_services.read_save(actor=world.rhea, task_id=bl.pk, raw=baseline_content(bl, t1="40.0"))
    with pytest.raises(InvalidState, match="locked"):
        read_services.read_sign(
            actor=world.rhea, task_id=bl.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
        )
    read.refresh_from_db()
    assert read.state == "draft" and TimepointResult.objects.get(timepoint=bl.timepoint).read.version == 1


def test_readers_who_agree_lock_the_visit_with_reader_1s_read(world):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="BL")
    assert timepoint.state == "locked"
    result = TimepointResult.objects.get(timepoint=timepoint)
    assert result.source == "agreement" and result.read.task.assignment.slot == 1


def _both_read_baseline(world):
    ready(world, "BL")
    ready(world, "W6", day=42)
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))


def test_disagreement_goes_to_the_adjudicator_whose_choice_locks_the_visit(world):
    _both_read_baseline(world)
    w6 = {reader: task_of(reader, "W6") for reader in (world.rhea, world.ravi)}
    save_and_sign(world.rhea, w6[world.rhea], follow_up_content(w6[world.rhea], "16.1", "8.4"))  # PR
    save_and_sign(world.ravi, w6[world.ravi], follow_up_content(w6[world.ravi], "22.0", "12.0"))  # SD
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="W6")
    assert timepoint.state == "in_adjudication"
    adjudication = Adjudication.objects.get(subject__code=SUBJECT)
    task = adjudication.task
    assert task.assignment.reader == world.ada and world.ada.has_perm("reads.read_task", task)
    assert not world.rhea.has_perm("reads.read_task", task)

    with pytest.raises(ValidationFailed, match="reason"):
        results.adjudicate(
            actor=world.ada, task_id=task.pk, choice="2", reason=" ", password=PASSWORD, meaning_confirmed=True
        )
    with pytest.raises(NotPermitted):
        results.adjudicate(
            actor=world.ada, task_id=task.pk, choice="2", reason="T01", password="nope", meaning_confirmed=True
        )
    ravi_slot = w6[world.ravi].assignment.slot
    results.adjudicate(
        actor=world.ada,
        task_id=task.pk,
        choice=str(ravi_slot),
        reason="T01 is measured across the lesion's true long axis by reader 2.",
        password=PASSWORD,
        meaning_confirmed=True,
    )
    timepoint.refresh_from_db()
    assert timepoint.state == "locked"
    result = TimepointResult.objects.get(timepoint=timepoint)
    assert result.source == "adjudication" and result.read.task.assignment.reader == world.ravi
    assert result.overall_response == "SD"
    with pytest.raises(InvalidState):
        results.adjudicate(
            actor=world.ada, task_id=task.pk, choice="1", reason="again", password=PASSWORD, meaning_confirmed=True
        )
    # Both readers' SRs exist in the study, and the result SR the adjudication wrote.
    assert Series.objects.filter(study__timepoint=timepoint, modality="SR").count() == 3
    assert result.sr_instance.series.study.timepoint == timepoint


def test_a_different_date_of_progression_is_a_disagreement(world):
    _both_read_baseline(world)
    w6 = {reader: task_of(reader, "W6") for reader in (world.rhea, world.ravi)}
    save_and_sign(world.rhea, w6[world.rhea], follow_up_content(w6[world.rhea], "23.0", "12.0", new="unequivocal"))
    save_and_sign(world.ravi, w6[world.ravi], follow_up_content(w6[world.ravi], "23.0", "12.0"))
    reads = {t.assignment.slot: results.latest_signed(t) for t in w6.values()}
    timepoint = Timepoint.objects.get(subject__code=SUBJECT, visit__code="W6")
    assert set(results.disagreements(timepoint, reads)) == {"overall_response", "progression_date"}


def test_a_correction_is_refused_once_the_visit_is_locked(world):
    ready(world, "BL")
    for reader in (world.rhea, world.ravi):
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    with pytest.raises(InvalidState, match="locked"):
        read_services.read_correct(actor=world.rhea, task_id=task_of(world.rhea, "BL").pk)


def test_the_sr_of_a_signed_follow_up_passes_dciodvfy(world, tmp_path):
    bl, w6 = signed_baseline_then_week_6(world)
    # A lesion too small to measure, a non-target gone, an unequivocal new lesion: every kind of item.
    content = follow_up_content(w6, "16.1", "8.4", nt="absent", new="unequivocal")
    content["targets"][1] = target(w6, "T02", None, site="39607008", status="too_small")
    read = save_and_sign(world.rhea, w6, content)
    assert read.overall_response == "PD"
    assert dciodvfy_errors(read_sr_dataset(read), tmp_path) == []
    parsed = parse_measurement_report(read_sr_dataset(read))
    by_label = {lesion.tracking_label: lesion for lesion in parsed.lesions}
    assert by_label["T02"].status == "too_small" and by_label["N01"].category == "new"
    assert by_label["NT01"].non_target_status == "absent" and by_label["NT01"].image is None


def test_without_an_adjudicator_the_disagreement_waits_and_the_admin_assigns_it_later(world, client):
    from trials.models import Membership, Role
    from trials.services import membership_grant, membership_revoke

    membership_revoke(actor=world.alice, membership=Membership.objects.get(user=world.ada, trial=world.trial))
    _both_read_baseline(world)
    w6 = {reader: task_of(reader, "W6") for reader in (world.rhea, world.ravi)}
    save_and_sign(world.rhea, w6[world.rhea], follow_up_content(w6[world.rhea], "16.1", "8.4"))
    # The second reader's signature is never refused for want of an adjudicator.
    save_and_sign(world.ravi, w6[world.ravi], follow_up_content(w6[world.ravi], "22.0", "12.0"))
    adjudication = Adjudication.objects.get(subject__code=SUBJECT)
    assert adjudication.task is None
    assert Timepoint.objects.get(subject__code=SUBJECT, visit__code="W6").state == "in_adjudication"

    client.force_login(world.alice)
    assert "disagree" in client.get("/reads/trials/ALPHA/design/").content.decode()
    page = client.post("/reads/trials/ALPHA/adjudicators/", follow=True).content.decode()
    assert "no adjudicator" in page and Adjudication.objects.get(pk=adjudication.pk).task is None

    membership_grant(actor=world.alice, trial=world.trial, user=world.ada, role=Role.ADJUDICATOR)
    client.post("/reads/trials/ALPHA/adjudicators/")
    task = Adjudication.objects.get(pk=adjudication.pk).task
    assert task.assignment.reader == world.ada and task.timepoint.visit.code == "W6"
    assert world.ada.has_perm("reads.read_task", task)


def test_a_follow_up_that_passes_qc_first_waits_for_the_baseline(world):
    ready(world, "W6", day=42)
    assert task_of(world.rhea, "W6").state == "waiting"
    ready(world, "BL")
    assert task_of(world.rhea, "BL").state == "open"
    bl = task_of(world.rhea, "BL")
    save_and_sign(world.rhea, bl, baseline_content(bl))
    w6 = task_of(world.rhea, "W6")
    assert w6.state == "open" and not read_services.is_baseline(w6)


def test_a_correction_may_rename_a_lesions_site_and_the_first_sr_keeps_the_old_one(world):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    first = save_and_sign(world.rhea, task, baseline_content(task))
    read_services.read_correct(actor=world.rhea, task_id=task.pk)
    corrected = baseline_content(task)
    corrected["targets"][1]["site"] = "64033007"  # T02 is in the kidney, not the lung
    second = save_and_sign(world.rhea, task, corrected)
    sites = {
        read.pk: {
            lesion.tracking_label: lesion.finding_site[1]
            for lesion in parse_measurement_report(read_sr_dataset(read)).lesions
        }
        for read in (first, second)
    }
    assert sites[first.pk]["T02"] == "Lung" and sites[second.pk]["T02"] == "Kidney"
    assert Lesion.objects.get(assignment=task.assignment, label="T02").site_code == "64033007"


def test_the_draft_endpoint_answers_errors_in_the_apis_one_shape(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    client.force_login(world.rhea)
    url = f"/reads/tasks/{task.pk}/draft/"
    bad = baseline_content(task)
    bad["targets"][0]["long_mm"] = "twenty"
    answer = client.put(url, {"content": bad, "revision": ""}, content_type="application/json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["code"] and "targets[0].long_mm" in error["fields"]
    answer = client.put(url, b"not json", content_type="application/json")
    assert answer.status_code == 400 and answer.json()["error"]["message"] == "The request is not JSON."


def test_a_save_based_on_a_revision_another_tab_changed_is_refused(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    client.force_login(world.rhea)
    url = f"/reads/tasks/{task.pk}/draft/"
    opened = client.get(url).json()["revision"]  # two tabs open on the empty read
    two_targets = baseline_content(task)
    one_non_target = baseline_content(task) | {"targets": []}
    first = client.put(url, {"content": two_targets, "revision": opened}, content_type="application/json")
    assert first.status_code == 200 and first.json()["revision"] != opened
    # The other tab still holds the revision it opened with: its save would silently replace the first's.
    second = client.put(url, {"content": one_non_target, "revision": opened}, content_type="application/json")
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "read_changed" and "another tab or window" in error["message"]
    assert len(Read.objects.get(task=task).content["targets"]) == 2
    assert client.get(url).json()["revision"] == first.json()["revision"]
    # A save that changes nothing is no conflict; a save that names no revision is refused.
    same = client.put(url, {"content": two_targets, "revision": opened}, content_type="application/json")
    assert same.status_code == 200 and same.json()["revision"] == first.json()["revision"]
    unnamed = client.put(url, {"content": one_non_target}, content_type="application/json")
    assert unnamed.status_code == 400 and "revision" in unnamed.json()["error"]["fields"]
    # From the revision it was shown, a tab saves on.
    third = client.put(
        url, {"content": one_non_target, "revision": first.json()["revision"]}, content_type="application/json"
    )
    assert third.status_code == 200 and Read.objects.get(task=task).content["targets"] == []


def test_signing_names_the_revision_the_reader_saw_and_another_is_not_signed(world, client):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    client.force_login(world.rhea)
    url = f"/reads/tasks/{task.pk}/draft/"
    seen = client.put(url, {"content": baseline_content(task), "revision": ""}, content_type="application/json")
    # Another tab measures T01 again: the same response, other content.
    client.put(
        url,
        {"content": baseline_content(task, t1="30.0"), "revision": seen.json()["revision"]},
        content_type="application/json",
    )
    sign = reverse("read-sign", args=[task.pk])
    form = {"password": PASSWORD, "meaning": "author", "confirmed_response": "baseline", "user_id": world.rhea.email}
    refused = client.post(sign, form | {"revision": seen.json()["revision"]})
    assert refused.status_code == 400 and "changed in another tab or window" in refused.content.decode()
    assert Read.objects.get(task=task).state == "draft" and not Signature.objects.exists()
    # The page shown with the refusal holds the read as it is now; signing from there signs what it shows.
    shown = refused.context["read_config"]
    assert shown["content"]["targets"][0]["long_mm"] == "30.0"
    assert client.post(sign, form | {"revision": shown["revision"]}).status_code == 302
    assert Read.objects.get(task=task).state == "signed"


def test_repeated_wrong_signing_passwords_lock_signing_and_log_in_and_end_the_session(world, client, settings):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    client.force_login(world.rhea)
    sign = reverse("read-sign", args=[task.pk])
    revision = read_services.draft_revision(Read.objects.get(task=task))
    attempt = {"meaning": "author", "confirmed_response": "baseline", "revision": revision, "user_id": world.rhea.email}
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = client.post(sign, attempt | {"password": "wrong"})
        assert response.status_code == 400 and "password is not correct" in response.content.decode()
    assert client.post(sign, attempt | {"password": "wrong"}).status_code == 429  # the limit: locked
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="signature.refuse", actor=world.rhea).count() == settings.AXES_FAILURE_LIMIT

    assert client.post(reverse("login"), {"username": world.rhea.email, "password": PASSWORD}).status_code == 429
    other = Client()  # a session opened before the lock cannot sign either, even with the right password
    other.force_login(world.rhea)
    refused = other.post(sign, attempt | {"password": PASSWORD})
    assert refused.status_code == 400 and "signing is locked" in refused.content.decode()
    assert Read.objects.get(task=task).state == "draft" and not Signature.objects.exists()


def test_a_signing_that_fails_after_its_sr_was_written_leaves_no_sr_file_behind(world, stores, monkeypatch):
    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=baseline_content(task))
    files_before = sorted((stores / "images").rglob("*.dcm"))

    def settle_fails(timepoint):
        raise DatabaseError("the database went away while settling")

    monkeypatch.setattr(results, "timepoint_settle", settle_fails)
    with pytest.raises(DatabaseError):
        read_services.read_sign(
            actor=world.rhea, task_id=task.pk, password=PASSWORD, meaning_confirmed=True, confirmed_response="baseline"
        )
    assert Read.objects.get(task=task).state == "draft" and not Series.objects.filter(modality="SR").exists()
    assert sorted((stores / "images").rglob("*.dcm")) == files_before

    monkeypatch.undo()  # the next attempt signs, and writes its SR
    save_and_sign(world.rhea, task, baseline_content(task))
    assert len(sorted((stores / "images").rglob("*.dcm"))) == len(files_before) + 1


def test_each_draft_save_that_changes_the_read_is_audited_with_what_changed(world):
    """21 CFR 11.10(e): the trail records the read's creation and every change to it before it is signed, one
    event per save, naming each lesion changed with its fields before and after; a save that changes nothing
    writes nothing."""
    from ctims.audit import audit_verify

    ready(world, "BL")
    task = task_of(world.rhea, "BL")
    content = baseline_content(task)
    non_target_image = content["non_targets"][0]["image"]
    read = read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)
    content["targets"][0] = target(task, "T01", "24.0")
    del content["non_targets"][0]
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content, based_on=read_services.draft_revision(read))
    read_services.read_save(actor=world.rhea, task_id=task.pk, raw=content)  # the same again: nothing changed

    first, second = AuditEvent.objects.filter(action="read.save").order_by("seq")
    assert (first.actor, first.object_id, first.trial_id) == (world.rhea, str(read.pk), world.trial.pk)
    assert first.summary["case"] == task.assignment.case_label and first.summary["visit"] == "BL"
    assert set(first.summary["lesions"]) == {"T01", "T02", "NT01"}
    assert first.summary["lesions"]["T01"]["long_axis_mm"] == [None, "23.0"]
    assert first.summary["lesions"]["NT01"]["measured_on"] == [None, f"{non_target_image['sop']}/1"]
    assert first.summary["new_lesions"] == [None, "none"]
    changed = second.summary["lesions"]
    assert set(changed) == {"T01", "NT01"} and "new_lesions" not in second.summary
    assert changed["T01"]["long_axis_mm"] == ["23.0", "24.0"]
    assert set(changed["T01"]) == {"long_axis_mm", "long_axis_line"}
    assert changed["NT01"]["lesion_status"] == ["present", None]
    assert changed["NT01"]["lesion_category"] == ["non_target", None]
    assert audit_verify().intact
    # The audit page says it in the reader's language: every key and coded value in words.
    from django.utils import translation

    from ctims.audit_display import summary_items

    with translation.override("ko"):
        shown = " ".join(f"{key} {value}" for key, value in summary_items(first))
    for english in ("long_axis", "lesion_status", "present", "non_target", "measured_on", "none"):
        assert english not in shown, english
    assert "장축 (mm)" in shown and "없음" in shown
