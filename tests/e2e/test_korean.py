"""Every role's day in Korean, in a real browser: no English word is left in the visible text of the pages each
person uses, apart from what is not ours to translate (DICOM values and codes, UIDs, the trial's own data as its
people typed it, and a few names and units listed below with their reason).

The story runs through the services first (an upload with another patient's file, a QC failure with a query
answered by the site, two readers who disagree at week 6, an adjudication, a sponsor transfer), so that every
generated text the issue names is on a page: rejection reasons, QC reasons and the query title, the overall
response, the signature meaning, RECIST explanation lines, the audit trail, dates.
"""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.conf import settings
from django.urls import reverse
from pydicom.datadict import keyword_dict

from ctims.models import User
from reads.models import Adjudication, ReaderAssignment
from reads.services import read_design_set
from reads.transfers import transfer_request
from tests.conftest import PASSWORD, authenticator_of, build_world, ct_protocol, make_user, upload_files
from tests.e2e.conftest import click_to_page, log_in, page_in, screenshot, settled
from tests.reads.flow import SUBJECT, adjudicate, baseline_content, follow_up_content, ready, save_and_sign, task_of
from trials import qc_services
from trials import services as trial_services
from trials.ingest.synthetic import real_ct_template, synthesize_ct_series
from trials.models import QCFinding, Role, Series, Site, Subject, Timepoint, Trial, Visit
from trials.qc import DEFAULT_RULES

# Words that stay as they are on a Korean page, each for a reason:
ALLOWED = {
    "CTIMS",  # the product's name
    "English",  # the language switcher names each language in its own words
    "mm",  # units
    "KB",
    "MB",
    # Names of standards and formats, written so in Korean too: the criteria (RECIST 1.1), DICOM and its parts,
    # CDISC's SDTM with its domains (TU, TR, RS) and define.xml, file formats, ISO (country codes), OCR.
    "RECIST",
    "DICOM",
    "UID",
    "PACS",
    "CDISC",
    "SDTM",
    "TU",
    "TR",
    "RS",
    "SAS",
    "define.xml",
    "CSV",
    "ISO",
    "OCR",
    "API",  # the application programming interface, as Korean developers write it
    "ID",
    "QC",  # quality control, as Korean core labs write it
    "CT",  # DICOM modality codes (0008,0060)
    "MR",
    "SR",
    "CR",  # RECIST 1.1 response codes, which Korean reports keep beside their names
    "PR",
    "SD",
    "PD",
    "NE",
    "SOP",  # DICOM's SOP Instance UID
    "Page",  # the names printed on keyboard keys (Page Up, Page Down, Home, End, Esc, Delete, Backspace)
    "Up",
    "Down",
    "Home",
    "End",
    "Esc",
    "Delete",
    "Backspace",
    # The viewer's corner letters: DICOM patient orientation (anterior, posterior, right, left, head, foot) and
    # window and level (W 400 · L 40), as radiologists read them in any language.
    "A",
    "P",
    "R",
    "L",
    "H",
    "F",
    "W",
}
# A placeholder of a pattern the admin types ({trial}-{site}-{n:03d}) is syntax, not a word.
PLACEHOLDER = re.compile(r"\{[^{}\s]*\}")
# A token holding a digit is a code, a UID, a date, a number with its unit or a hash: never a word to translate.
HAS_DIGIT = re.compile(r"\d")
# A run of Latin letters inside a token ("QC를" holds "QC"), with the dots, hyphens and apostrophes of a word.
DICOM_KEYWORDS = frozenset(keyword_dict)
LATIN_RUN = re.compile(r"[A-Za-z](?:[A-Za-z'’._-]*[A-Za-z])?")


@pytest.fixture
def story(transactional_db, stores):
    """ALPHA's demo story through the services; no transaction around it, so commits run the tasks."""
    world = build_world()
    # The visits as many trials name them, by their number (no service renames a visit; the labels are the
    # trial's data, and English ones would hide English interface words such as "Baseline" from the check).
    # They stay ASCII: the SDTM transfer writes them into SAS transport files, which hold ASCII only.
    for code, label in (("BL", "V1"), ("W6", "V2-W6")):
        Visit.objects.filter(trial=world.trial, code=code).update(label=label)
    ct_protocol(world, visits=("BL", "W6"))
    read_design_set(actor=world.alice, trial=world.trial, paradigm="double")
    template = real_ct_template(large=False)

    # The coordinator's first baseline upload misses a slice (a QC finding) and holds another patient's file,
    # which is rejected with its reason.
    own = synthesize_ct_series(template, slices=5, seed="ko/BL", study_date=date(2026, 3, 2))
    stranger = synthesize_ct_series(template, slices=1, seed="ko/other", patient_id="PID0999")
    timepoint = upload_files(world.cora, SUBJECT, [*own[:2], *own[3:], *stranger])
    assert QCFinding.objects.filter(timepoint=timepoint).exists()
    # QC fails it with a query; the site answers and the reviewer closes the query and passes the visit.
    series = list(Series.objects.filter(study__timepoint=timepoint))
    query = qc_services.qc_fail(
        actor=world.quinn,
        timepoint=Timepoint.objects.get(pk=timepoint.pk),
        series=series,
        reason="조영 시기를 확인해 주세요.",
    )
    qc_services.query_answer(actor=world.cora, query=query, body="문맥기 영상이 맞습니다.")
    qc_services.query_close(actor=world.quinn, query=query, body="확인했습니다.")
    qc_services.qc_pass(actor=world.quinn, timepoint=Timepoint.objects.get(pk=timepoint.pk))

    # Both readers read the baseline; at week 6 one sees stable disease, the other progression.
    readers = {a.slot: a.reader for a in ReaderAssignment.objects.filter(subject__code=SUBJECT, slot__in=(1, 2))}
    for reader in readers.values():
        task = task_of(reader, "BL")
        save_and_sign(reader, task, baseline_content(task))
    ready(world, "W6", day=42)
    for slot, (t1, t2) in {1: ("22.0", "11.0"), 2: ("30.0", "13.0")}.items():
        task = task_of(readers[slot], "W6")
        save_and_sign(readers[slot], task, follow_up_content(task, t1, t2))
    adjudication = Adjudication.objects.get(subject__code=SUBJECT, signature__isnull=True)
    adjudicate(world, adjudication, "1", "1번 판독자의 측정이 장축을 따릅니다.")
    transfer_request(actor=world.sam, trial=world.trial)
    world.query = query
    world.readers = readers
    world.adjudication_task = adjudication.task
    return world


def data_words() -> set[str]:
    """The trial's own data as its people typed it (titles, names, labels) and the DICOM values of its series:
    shown as entered, in any language."""
    texts: list[str] = []
    for trial in Trial.objects.all():
        texts += [trial.code, trial.title, trial.sponsor, trial.protocol_number]
    texts += [f"{s.code} {s.name} {s.country}" for s in Site.objects.all()]
    texts += [f"{v.code} {v.label}" for v in Visit.objects.all()]
    texts += [s.code for s in Subject.objects.all()]
    texts += [a.case_label for a in ReaderAssignment.objects.all()]  # blinded case codes, random letters
    texts += [u.full_name for u in User.objects.all()]
    for series in Series.objects.all():
        texts += [series.description, series.modality, series.body_part]
    texts += [rule.id for rule in DEFAULT_RULES.rules]  # the QC rules' ids, codes like DICOM's
    texts.append(settings.TIME_ZONE)  # the server's time zone by its IANA name (Asia/Seoul), as cut-offs name it
    words = {word for text in texts if text for word in re.split(r"[\s,;:()/]+", text) if word}
    return words | {word.lower() for word in words}  # QC's reasons quote a description's words in lower case


def english_words(text: str, allowed: set[str]) -> list[str]:
    """The words of `text` in Latin letters that are not allowed; tokens with a digit or an @ are codes, UIDs,
    numbers and addresses, and a DICOM attribute's keyword (PatientComments) is a code of the standard."""
    found = []
    for token in PLACEHOLDER.sub(" ", text).split():
        if "@" in token or HAS_DIGIT.search(token):
            continue
        for word in LATIN_RUN.findall(token):
            if word not in allowed and word not in DICOM_KEYWORDS:
                found.append(word)
    return found


def visible_text(page) -> str:
    """The page's visible text once every folded section is open ("Why" lists), without what is marked
    translate="no" (a secret)."""
    page.evaluate("() => document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    text = page.locator("body").inner_text()
    for kept in page.locator("[translate=no]").all_inner_texts():
        text = text.replace(kept, " ")
    return text


@pytest.fixture
def page(browser, live_server):
    """A browser whose person reads Korean: it asks for Korean first (Accept-Language), the log-in pages too."""
    with page_in(browser, live_server, locale="ko-KR") as page:
        yield page


def as_korean(page, name: str) -> None:
    page.context.clear_cookies()
    log_in(page, f"{name}@example.org", PASSWORD)


def assert_korean(page, path: str, allowed: set[str], shot: str) -> None:
    page.goto(path)
    settled(page)
    assert page.evaluate("document.documentElement.lang") == "ko", path
    left = english_words(visible_text(page), allowed)
    screenshot(page, f"korean-{shot}")
    assert not left, f"English on {path}: {sorted(set(left))}"


def test_every_roles_day_reads_in_korean(story, page, live_server):
    allowed = ALLOWED | data_words()
    trial = "ALPHA"
    bl_task = task_of(story.readers[1], "BL")
    w6_task = task_of(story.readers[1], "W6")
    transfer_pages = [reverse("read-transfers", args=[trial])]
    days = {
        "cora": [
            "/",
            reverse("trial-detail", args=[trial]),
            reverse("trial-subjects", args=[trial]),
            reverse("subject-detail", args=[trial, SUBJECT]),
            reverse("timepoint-upload", args=[trial, SUBJECT, "BL"]),
            reverse("query-list", args=[trial]),
            reverse("query-detail", args=[trial, story.query.pk]),
        ],
        "quinn": [
            reverse("qc-worklist", args=[trial]),
            reverse("qc-timepoint", args=[trial, SUBJECT, "BL"]),
            reverse("query-detail", args=[trial, story.query.pk]),
        ],
        story.readers[1].email.split("@")[0]: [
            reverse("read-worklist"),
            reverse("read-task", args=[bl_task.pk]),
            reverse("read-task", args=[w6_task.pk]),
        ],
        "ada": [reverse("read-worklist"), reverse("read-task", args=[story.adjudication_task.pk])],
        "sam": [reverse("trial-detail", args=[trial]), reverse("read-results", args=[trial]), *transfer_pages],
        "alice": [
            reverse("trial-detail", args=[trial]),
            reverse("trial-edit", args=[trial]),
            reverse("trial-sites", args=[trial]),
            reverse("trial-schedule", args=[trial]),
            reverse("trial-people", args=[trial]),
            reverse("trial-tokens", args=[trial]),
            reverse("read-design", args=[trial]),
            reverse("read-results", args=[trial]),
            reverse("trial-audit", args=[trial]),
        ],
    }
    problems = []
    for name, paths in days.items():
        as_korean(page, name)
        for n, path in enumerate(paths):
            try:
                assert_korean(page, path, allowed, f"{name}-{n}")
            except AssertionError as exc:
                problems.append(str(exc))
    assert not problems, "\n".join(problems)


def test_the_two_factor_pages_read_in_korean(transactional_db, page, live_server):
    """A new trial admin enrols an authenticator app, then a QC reviewer enters a log-in code: both in Korean."""
    world = build_world()
    kim = make_user("kim")
    trial_services.membership_grant(actor=world.alice, trial=world.trial, user=kim, role=Role.TRIAL_ADMIN)
    authenticator_of(world.quinn)
    allowed = ALLOWED | data_words()
    for name, step in (("kim", "/enrol/"), ("quinn", "/accounts/two-factor/")):
        page.context.clear_cookies()
        assert_korean(page, "/accounts/login/", allowed, f"login-{name}")
        page.fill("input[name=username]", f"{name}@example.org")
        page.fill("input[name=password]", PASSWORD)
        click_to_page(page)
        assert step in page.url, page.url
        left = english_words(visible_text(page), allowed)
        screenshot(page, f"korean-two-factor-{name}")
        assert not left, f"English on {page.url}: {sorted(set(left))}"
