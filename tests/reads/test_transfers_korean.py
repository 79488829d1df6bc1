"""A Korean trial delivers: visit labels and free text in Korean never reach a SAS transport v5 file (ASCII only).

VISIT is the visit's SDTM visit name, an ASCII name kept on the visit definition (by default its label when that
is ASCII, else its code); the plain CSV tables keep the label people see and the free text as written."""

from __future__ import annotations

import csv
import io

import pytest
from django.utils import translation
from lxml import etree

from ctims.exceptions import ValidationFailed
from reads import results, transfers
from tests.conftest import PASSWORD
from tests.reads.flow import follow_up_content, ready, save_and_sign, task_of
from tests.reads.test_transfers import (
    ADJUDICATED,
    DEFINE_SCHEMA,
    NS,
    W6_DAY,
    _baseline,
    read_xpt,
    transfer_zip,
)
from trials import services
from trials.forms import VisitCreateForm

REASON = "T01의 장축을 올바르게 측정한 판독자를 선택함."


def _korean_trial(world) -> None:
    labels = {"BL": "기저 방문", "W6": "6주차 방문"}
    for visit in world.trial.visits.filter(code__in=labels):
        visit.label = labels[visit.code]
        visit.save()
    both = (world.rhea, world.ravi)
    _baseline(world, ADJUDICATED, both)
    ready(world, "W6", day=W6_DAY, subject=ADJUDICATED)
    pr = task_of(world.rhea, "W6", ADJUDICATED)
    save_and_sign(world.rhea, pr, follow_up_content(pr, "16.1", "8.4"))
    sd = task_of(world.ravi, "W6", ADJUDICATED)
    save_and_sign(world.ravi, sd, follow_up_content(sd, "22.0", "12.0"))
    adjudication = task_of(world.ravi, "W6", ADJUDICATED).timepoint.adjudications.get()
    results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=str(sd.assignment.slot),
        reason=REASON,
        password=PASSWORD,
        meaning_confirmed=True,
    )


def test_a_trial_with_korean_visit_labels_and_free_text_delivers(world, tmp_path):
    _korean_trial(world)
    archive = transfer_zip(transfers.transfer_request(actor=world.sam, trial=world.trial))

    for name in ("tu", "tr", "rs"):
        frame, _meta = read_xpt(archive, name, tmp_path)
        assert len(frame), name
        # The visit's SDTM name: its code, since the label is not ASCII.
        assert set(frame["VISIT"]) - {""} <= {"BL", "W6"}, name
    rs, _meta = read_xpt(archive, "rs", tmp_path)
    assert set(rs["VISIT"]) - {""} == {"W6"}

    visits = list(csv.DictReader(io.StringIO(archive.read("tables/visits.csv").decode("utf-8"))))
    assert {row["visit_label"] for row in visits} == {"기저 방문", "6주차 방문"}
    assert REASON in {row["adjudication_reason"] for row in visits}

    document = etree.fromstring(archive.read("sdtm/define.xml"))
    schema = etree.XMLSchema(etree.parse(str(DEFINE_SCHEMA)))
    assert schema.validate(document), schema.error_log
    origin = document.xpath("//odm:ItemDef[@Name='VISIT']/def:Origin", namespaces=NS)
    assert {o.get("Type") for o in origin} == {"Protocol"}
    described = origin[0].xpath("odm:Description/odm:TranslatedText/text()", namespaces=NS)
    assert described and "SDTM visit name" in described[0]


def test_a_visit_keeps_an_ascii_sdtm_name_set_by_the_trial_admin(world):
    visit = services.visit_create(
        actor=world.alice,
        trial=world.trial,
        code="W12",
        label="12주차",
        sdtm_name="Week 12",
        order=90,
        target_day=84,
    )
    assert visit.sdtm_visit == "WEEK 12"
    visit.sdtm_name = ""
    assert visit.sdtm_visit == "W12"
    visit.label = "Week 12"
    assert visit.sdtm_visit == "WEEK 12"


def test_a_non_ascii_sdtm_visit_name_is_refused_at_entry_with_a_clear_message(world):
    with pytest.raises(ValidationFailed) as refused:
        services.visit_create(
            actor=world.alice,
            trial=world.trial,
            code="W12",
            label="12주차",
            sdtm_name="12주차",
            order=90,
            target_day=84,
        )
    assert "sdtm_name" in refused.value.fields
    assert "English letters" in str(refused.value.fields["sdtm_name"])
    form = VisitCreateForm(
        {
            "code": "W12",
            "label": "12주차",
            "sdtm_name": "12주",
            "order": 9,
            "target_day": 84,
            "window_before": 0,
            "window_after": 0,
        }
    )
    assert not form.is_valid() and "English letters" in str(form.errors["sdtm_name"])


def test_identifiers_that_become_studyid_and_usubjid_are_refused_at_entry_unless_ascii():
    from django.core.exceptions import ValidationError

    from trials.models import validate_ascii, validate_subject_pattern

    validate_subject_pattern("{trial}-{site}-{n:03d}")
    with pytest.raises(ValidationError, match="English letters"):
        validate_subject_pattern("환자-{n:03d}")
    with pytest.raises(ValidationError, match="English letters"):
        validate_ascii("임상-001")


def test_a_failed_transfer_says_why_in_the_readers_language(world, client, settings, monkeypatch):
    """The worker writes the reason in no one's language: it is kept as template and parameters, and the
    transfers page says it in Korean to a Korean trial admin and in English to an English one."""

    def broken(transfer):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transfers, "build_files", broken)
    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    transfer.refresh_from_db()
    assert transfer.state == transfer.State.FAILED
    assert transfer.error.startswith("The build failed (RuntimeError)")  # the stored English, for logs and the API
    client.force_login(world.alice)
    english = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "The build failed (RuntimeError); request the transfer again or ask the operator." in english
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    with translation.override(settings.LANGUAGE_CODE):
        korean = client.get("/reads/trials/ALPHA/transfers/").content.decode()
    assert "The build failed" not in korean and "RuntimeError" in korean and "전송을 다시 요청" in korean
