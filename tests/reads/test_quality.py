"""Reader quality on a scripted double-read trial: the statistics gathered from locked reads only, the charts and
their data, and the page sponsors and trial admins see (nobody else)."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from xml.etree import ElementTree

import pytest
from django.urls import reverse
from django.utils import timezone

from reads import results
from reads.quality import charts, data, report
from tests.conftest import PASSWORD, make_user
from tests.reads.flow import baseline_content, follow_up_content, ready, save_and_sign, task_of
from tests.reads.test_transfers import ADJUDICATED, AGREE, UNLOCKED, scripted_trial
from trials.models import Role
from trials.services import membership_grant


@pytest.fixture
def scripted(world):
    facts = scripted_trial(world)
    codes = data.reader_codes(world.trial)
    facts["rhea"], facts["ravi"] = codes[world.rhea.pk], codes[world.ravi.pk]
    return facts


def _csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def test_readers_are_named_by_trial_reader_code_in_the_order_they_were_first_given_a_case(world, scripted):
    assert sorted([scripted["rhea"], scripted["ravi"]]) == ["Radiologist 1", "Radiologist 2"]


def test_statistics_count_locked_visits_only(world, scripted):
    summary = report.summarise(data.quality_input(world.trial))
    rhea, ravi = scripted["rhea"], scripted["ravi"]
    pair = tuple(sorted([rhea, ravi]))
    (only,) = summary.pairs
    assert only.pair == pair
    # Week 6: both readers SD in one subject; PR (rhea) against SD (ravi) in the other. The unlocked subject is
    # nowhere (one reader of two has signed).
    responses = sorted(summary.input.visit_pairs[pair])
    by_reader = [dict(zip(pair, p, strict=True)) for p in responses]
    assert sorted((r[rhea], r[ravi]) for r in by_reader) == [("PR", "SD"), ("SD", "SD")]
    assert (only.visit.n, only.visit.agreed, only.visit.percent) == (2, 1, 50.0)
    assert (only.best_response.n, only.best_response.agreed) == (2, 1)
    # Four visits settled (two baselines, two week 6), one by adjudication.
    assert (only.adjudication.k, only.adjudication.n) == (1, 4)
    assert (summary.trial_adjudication.k, summary.trial_adjudication.n) == (1, 4)
    # The adjudicator accepted ravi's series.
    assert (summary.acceptance[ravi].k, summary.acceptance[ravi].n) == (1, 1)
    assert (summary.acceptance[rhea].k, summary.acceptance[rhea].n) == (0, 1)
    # Both readers drew the same two targets at both locked baselines: four pairs, no difference.
    assert (only.measurement.n, only.measurement.bias, only.measurement.sd) == (4, 0.0, 0.0)
    assert summary.targets[rhea].distribution == ((2, 2),)
    # No progression called: every subject agrees there is none.
    assert (only.progression.n, only.progression.neither) == (2, 2)
    # The accepted assessments: 27 of 35 mm (a lesion too small counts 5 mm) and 34 of 35 mm.
    courses = {c.subject: c for c in summary.input.courses}
    assert set(courses) == {AGREE, ADJUDICATED} and UNLOCKED not in courses
    assert courses[AGREE].best_change == pytest.approx(100 * (27 - 35) / 35)
    assert courses[ADJUDICATED].best_change == pytest.approx(100 * (34 - 35) / 35)
    assert courses[ADJUDICATED].best_response == "SD"


def test_nothing_counts_after_the_cut_off(world, scripted):
    from reads.models import TimepointResult

    first = TimepointResult.history.order_by("locked_at").first().locked_at
    summary = report.summarise(data.quality_input(world.trial, cutoff=first))
    assert summary.trial_adjudication.n == 1
    assert summary.trial_visit.n == 0


def test_each_chart_renders_as_png_and_svg_the_same_bytes_every_time(world, scripted):
    summary = report.summarise(data.quality_input(world.trial))
    for name in charts.CHARTS:
        png = charts.render(summary, name, "png")
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
        svg = charts.render(summary, name, "svg")
        assert ElementTree.fromstring(svg).tag.endswith("svg")
        assert charts.render(summary, name, "svg") == svg and charts.render(summary, name, "png") == png


def test_chart_data_csv_equals_the_statistics(world, scripted):
    summary = report.summarise(data.quality_input(world.trial))
    rows = _csv(report.table_csv(summary, "adjudication-p-chart"))
    assert [(r["adjudicated"], r["eligible"]) for r in rows] == [(str(p.k), str(p.n)) for p in summary.p_chart.points]
    assert sum(int(r["adjudicated"]) for r in rows) == 1 and sum(int(r["eligible"]) for r in rows) == 4
    assert all(float(r["centre"]) == pytest.approx(0.25, abs=1e-3) for r in rows)
    waterfall = _csv(report.table_csv(summary, "waterfall"))
    assert {r["subject"]: float(r["best_change_pct"]) for r in waterfall} == {
        AGREE: pytest.approx(-22.9, abs=0.05),
        ADJUDICATED: pytest.approx(-2.9, abs=0.05),
    }
    ba = _csv(report.table_csv(summary, "bland-altman"))
    assert len(ba) == summary.measurement.n == 4
    assert all(float(r["difference_mm"]) == 0 for r in ba)
    pairs = _csv(report.table_csv(summary, "pairs"))
    assert (pairs[0]["visit_n"], pairs[0]["visit_agreement_pct"]) == ("2", "50.0")


def test_the_csv_writes_a_cell_a_spreadsheet_would_run_as_text_and_a_negative_number_as_a_number(world, scripted):
    from trials.models import Subject

    # A code from a pattern of before subject codes were checked: ASCII was all that was asked.
    hostile = '=HYPERLINK("http://attacker.example/")'
    Subject.objects.filter(trial=world.trial, code=AGREE).update(code=hostile)
    waterfall = _csv(report.table_csv(report.summarise(data.quality_input(world.trial)), "waterfall"))
    assert {r["subject"]: r["best_change_pct"] for r in waterfall} == {"'" + hostile: "-22.9", ADJUDICATED: "-2.9"}


def test_a_sponsor_sees_the_page_with_reader_codes_and_no_case_label_or_name(world, scripted, client):
    from reads.models import ReaderAssignment

    client.force_login(world.sam)
    response = client.get(reverse("read-quality", args=["ALPHA"]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Radiologist 1" in page and "Radiologist 2" in page
    for label in ReaderAssignment.objects.values_list("case_label", flat=True):
        assert label not in page
    for person in (world.rhea, world.ravi, world.ada):
        assert person.email not in page and person.full_name not in page
    results = client.get(reverse("read-results", args=["ALPHA"])).content.decode()
    assert reverse("read-quality", args=["ALPHA"]) in results


def test_charts_and_csv_download_for_the_chosen_period(world, scripted, client):
    client.force_login(world.alice)
    svg = client.get(reverse("read-quality-chart", args=["ALPHA", "waterfall", "svg"]) + "?download=1")
    assert svg["Content-Type"] == "image/svg+xml"
    assert svg["Content-Disposition"] == 'attachment; filename="ALPHA-waterfall.svg"'
    empty = client.get(reverse("read-quality-csv", args=["ALPHA", "adjudication-p-chart"]) + "?end=2000-01-01")
    assert _csv(empty.content) == []
    assert client.get(reverse("read-quality-chart", args=["ALPHA", "nothing", "png"])).status_code == 404
    assert client.get(reverse("read-quality-chart", args=["ALPHA", "waterfall", "gif"])).status_code == 404


@pytest.mark.parametrize(
    "query", ["?start=0001-01-01&end=9999-12-31", "?end=9999-12-31", "?start=0001-01-01", "?cutoff=0001-01-01T00:00"]
)
def test_a_period_at_the_ends_of_the_calendar_is_a_form_error_not_a_server_error(
    world, scripted, client, settings, query
):
    """Found by a sponsor typing the calendar's last day: the day after it overflowed (500). A date out of the
    years a trial can have is refused by the form, as any invalid period is: the page says so and its downloads
    answer 400."""
    client.force_login(world.sam)
    page = client.get(reverse("read-quality", args=["ALPHA"]) + query)
    assert page.status_code == 200 and "between 1900 and 2999" in page.content.decode()
    for url in (
        reverse("read-quality-chart", args=["ALPHA", "waterfall", "svg"]),
        reverse("read-quality-csv", args=["ALPHA", "waterfall"]),
    ):
        assert client.get(url + query).status_code == 400, url
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    korean = client.get(reverse("read-quality", args=["ALPHA"]) + query).content.decode()
    assert "1900년에서 2999년 사이의 날짜" in korean


def test_a_sponsor_of_another_trial_gets_404(world, scripted, client):
    other_sponsor = make_user("olga")
    membership_grant(actor=world.otto, trial=world.other, user=other_sponsor, role=Role.SPONSOR_VIEWER)
    client.force_login(other_sponsor)
    assert client.get(reverse("read-quality", args=["ALPHA"])).status_code == 404
    assert client.get(reverse("read-quality-csv", args=["ALPHA", "pairs"])).status_code == 404
    assert client.get(reverse("read-quality", args=["OMEGA"])).status_code == 200


def test_the_page_says_which_time_zone_its_cutoff_is_in(world, client, settings):
    settings.TIME_ZONE = "Asia/Seoul"
    client.force_login(world.sam)
    page = client.get(reverse("read-quality", args=["ALPHA"]) + "?cutoff=2026-01-02T09:00").content.decode()
    assert "Times on this page are in Asia/Seoul (UTC+09:00)." in page


def test_the_sponsor_transfer_carries_the_reader_statistics_at_its_cut_off(world, scripted, client):
    from reads import transfers
    from tests.reads.test_transfers import transfer_zip

    transfer = transfers.transfer_request(actor=world.sam, trial=world.trial)
    archive = transfer_zip(transfer)
    names = set(archive.namelist())
    for name in charts.CHARTS:
        assert {f"reader-quality/{name}.{ext}" for ext in ("png", "svg", "csv")} <= names
    summary = report.summarise(data.quality_input(world.trial, cutoff=transfer.cutoff))
    for name in report.TABLES:
        assert archive.read(f"reader-quality/{name}.csv") == report.table_csv(summary, name)
    html = archive.read("reader-quality/summary.html").decode()
    assert '<img src="waterfall.png"' in html and "Radiologist 1" in html
    assert "Visits adjudicated: 1 of 4" in html
    client.force_login(world.sam)
    # The page's cut-off is a local time to the second: the transfer's, rounded up.
    page_csv = client.get(
        reverse("read-quality-csv", args=["ALPHA", "pairs"]),
        {"cutoff": (timezone.localtime(transfer.cutoff) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")},
    )
    assert page_csv.content == archive.read("reader-quality/pairs.csv")


def test_the_page_speaks_korean(world, scripted, client, settings):
    client.force_login(world.sam)
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ko"
    page = client.get(reverse("read-quality", args=["ALPHA"])).content.decode()
    assert "판독 품질" in page and "월별 판정 비율" in page and "판독자 쌍" in page
    assert "진행일 일치" in page and "둘 다 진행 없음: 2" in page


def test_a_progression_one_reader_called_counts_in_dates_drift_and_acceptance(world, scripted):
    """The third subject: ravi signs its baseline too; at week 6 rhea calls PD (a new lesion), ravi SD; the
    adjudicator accepts rhea's series."""
    rhea, ravi = scripted["rhea"], scripted["ravi"]
    task = task_of(world.ravi, "BL", UNLOCKED)
    save_and_sign(world.ravi, task, baseline_content(task))
    ready(world, "W6", day=42, subject=UNLOCKED)
    pd = task_of(world.rhea, "W6", UNLOCKED)
    save_and_sign(world.rhea, pd, follow_up_content(pd, "22.0", "12.0", new="unequivocal"))
    sd = task_of(world.ravi, "W6", UNLOCKED)
    save_and_sign(world.ravi, sd, follow_up_content(sd, "22.0", "12.0"))
    adjudication = sd.timepoint.adjudications.get()
    results.adjudicate(
        actor=world.ada,
        task_id=adjudication.task.pk,
        choice=str(pd.assignment.slot),
        reason="The new liver lesion is unequivocal.",
        password=PASSWORD,
        meaning_confirmed=True,
    )
    summary = report.summarise(data.quality_input(world.trial))
    (pair,) = summary.pairs
    a_is_rhea = pair.pair[0] == rhea
    progression = pair.progression
    assert (progression.n, progression.neither) == (3, 2)
    assert (progression.only_a, progression.only_b) == ((1, 0) if a_is_rhea else (0, 1))
    assert (summary.trial_adjudication.k, summary.trial_adjudication.n) == (2, 6)
    assert (summary.acceptance[rhea].k, summary.acceptance[rhea].n) == (1, 2)
    assert (summary.acceptance[ravi].k, summary.acceptance[ravi].n) == (1, 2)
    (month,) = summary.pd_drift[rhea]
    assert (summary.pd_drift[rhea][month].k, summary.pd_drift[rhea][month].n) == (1, 3)
    assert summary.pd_drift[ravi][month].k == 0
    assert (summary.lost_drift[rhea][month].k, summary.lost_drift[ravi][month].k) == (1, 1)
    courses = {c.subject: c for c in summary.input.courses}
    assert courses[UNLOCKED].best_response == "PD" and courses[UNLOCKED].progression_day == 42


def test_after_a_reader_is_replaced_the_statistics_pair_the_readers_who_were_compared(world, scripted):
    from tests.reads.test_transfers import _accepted_reader_replaced

    rita = _accepted_reader_replaced(world, scripted)
    codes = data.reader_codes(world.trial)
    rhea, ravi, newcomer = scripted["rhea"], scripted["ravi"], codes[rita.pk]
    summary = report.summarise(data.quality_input(world.trial))
    # Every visit settled was settled between rhea and ravi: rita's re-reads of AGREE were compared with nothing.
    (only,) = summary.pairs
    assert only.pair == tuple(sorted([rhea, ravi]))
    assert (only.visit.n, only.visit.agreed) == (2, 1)
    assert (only.best_response.n, only.best_response.agreed) == (2, 1)
    assert (only.adjudication.k, only.adjudication.n) == (1, 4)
    assert (only.measurement.n, only.measurement.bias) == (4, 0.0)
    # What each of them signed still counts as theirs, the retired reader's calls included.
    calls = {}
    for event in summary.input.pd_calls:
        calls[event.reader] = calls.get(event.reader, 0) + 1
    assert calls == {rhea: 2, ravi: 2, newcomer: 1}
    assert summary.targets[rhea].distribution == ((2, 2),)


def test_a_visit_settled_after_a_replacement_counts_for_the_newcomer_and_the_other_reader(world, scripted):
    from tests.reads.test_transfers import _accepted_reader_replaced
    from trials.services import visit_create

    rita = _accepted_reader_replaced(world, scripted, w6=("22.0", "12.0"))
    other = world.ravi if scripted["agree_slot_of_rhea"] == 1 else world.rhea
    visit_create(actor=world.alice, trial=world.trial, code="W12", label="Week 12", order=3, target_day=84)
    ready(world, "W12", day=84, subject=AGREE)
    for reader in (rita, other):
        task = task_of(reader, "W12", AGREE)
        save_and_sign(reader, task, follow_up_content(task, "22.0", "5.0"))
    codes = data.reader_codes(world.trial)
    first_pair = tuple(sorted([scripted["rhea"], scripted["ravi"]]))
    second_pair = tuple(sorted([codes[rita.pk], codes[other.pk]]))
    summary = report.summarise(data.quality_input(world.trial))
    pairs = {p.pair: p for p in summary.pairs}
    assert set(pairs) == {first_pair, second_pair}
    # Week 12 was settled by rita and the other reader; the four earlier visits by rhea and ravi.
    assert [(s.pair, s.adjudicated) for s in summary.input.settlements if s.pair == second_pair] == [
        (second_pair, False)
    ]
    assert (pairs[first_pair].adjudication.k, pairs[first_pair].adjudication.n) == (1, 4)
    assert summary.input.visit_pairs[second_pair] == [("SD", "SD")]
    assert (pairs[first_pair].visit.n, pairs[first_pair].visit.agreed) == (2, 1)
    # AGREE's endpoints were last compared at week 12, between rita and the other reader.
    assert summary.input.best_response_pairs[second_pair] == [("SD", "SD")]
    assert len(summary.input.best_response_pairs[first_pair]) == 1
    # AGREE's course is rita's whole series (week 6: 34 of 35 mm), not her week 12 on the retired reader's week 6.
    course = next(c for c in summary.input.courses if c.subject == AGREE)
    assert [(visit, round(change, 1)) for visit, _day, change, _r in course.points] == [("W6", -2.9), ("W12", -22.9)]


def test_readers_who_both_call_no_progression_agree_on_its_date(world, scripted, client):
    """Neither reader called PD in either subject: they agree on the date of progression (there is none), and
    the page, the CSV and the transfer's summary say 2 of 2, not 0 of 2 "same date"."""
    summary = report.summarise(data.quality_input(world.trial))
    (row,) = _csv(report.table_csv(summary, "pairs"))
    assert (row["pd_agreement_k"], row["pd_agreement_n"], row["pd_neither"], row["pd_both"]) == ("2", "2", "2", "0")
    client.force_login(world.sam)
    page = client.get(reverse("read-quality", args=["ALPHA"])).content.decode()
    cell = page.split('data-label="Date of progression agreed"', 1)[1].split("</td>", 1)[0]
    assert "2 / 2" in cell and "neither progressed: 2" in cell
    html = report_html(summary)
    assert "<td>2 / 2</td>" in html


def report_html(summary) -> str:
    from reads.quality.transfer import summary_html
    from trials.models import Trial

    return summary_html(Trial(code="ALPHA"), summary)


def test_an_invalid_period_shows_its_error_and_no_statistics_and_its_downloads_are_refused(world, scripted, client):
    """A period that ends before it starts (or a date that is no date) must not quietly give every locked read."""
    client.force_login(world.alice)
    url = reverse("read-quality", args=["ALPHA"])
    for query in ({"start": "2026-06-01", "end": "2026-01-01"}, {"start": "garbage"}):
        response = client.get(url, query)
        assert response.status_code == 200
        page = response.content.decode()
        assert "data-stat=" not in page and "Correct the period to see the statistics." in page
        assert "Radiologist 1" not in page
        csv_response = client.get(reverse("read-quality-csv", args=["ALPHA", "pairs"]), query)
        assert csv_response.status_code == 400
        chart = client.get(reverse("read-quality-chart", args=["ALPHA", "waterfall", "png"]), query)
        assert chart.status_code == 400
    # A valid period still answers; one with nothing in it says so under each heading.
    assert client.get(url, {"start": "2026-01-01"}).content.decode().count("data-stat=") == 6
    page = client.get(url, {"end": "2000-01-01"}).content.decode()
    assert "No visit read by two readers is locked yet." in page
    assert "No reader has a locked read in this period yet." in page
    assert "No follow-up read or adjudication is locked in this period yet." in page
    assert "Only what was signed and locked by then counts." in page


def test_the_read_results_page_is_paged_and_counts_every_result(world, scripted, client, monkeypatch):
    """Every locked visit of the trial was on one page (a trial's thousands of visits in one table); the count
    beside the heading stays the trial's, and the pages together list each result once."""
    from reads import views

    monkeypatch.setattr(views, "RESULTS_PAGE_SIZE", 3)
    client.force_login(world.sam)
    url = reverse("read-results", args=["ALPHA"])
    first = client.get(url).content.decode()
    second = client.get(url, {"page": 2}).content.decode()
    assert '<span class="count">4</span>' in first and '<span class="count">4</span>' in second
    assert "Page 1 of 2" in first and "Page 2 of 2" in second
    ids = [re.findall(r'data-result="(\d+)"', page) for page in (first, second)]
    assert [len(i) for i in ids] == [3, 1] and len(set(ids[0] + ids[1])) == 4


def test_a_single_read_trial_is_told_there_is_no_second_reader_to_agree_with(world, client):
    """ "No visit read by two readers is locked yet" promised what a single-read design never gives."""
    from reads.services import read_design_set

    read_design_set(actor=world.alice, trial=world.trial, paradigm="single")
    client.force_login(world.alice)
    page = client.get(reverse("read-quality", args=["ALPHA"])).content.decode()
    assert "This trial reads each visit once" in page and "is locked yet" not in page.split('id="tables"')[1][:600]


def test_the_results_page_and_the_quality_page_name_the_same_visits_adjudicated(world, scripted, client):
    """The adjudication of week 6 also settled the baseline (its result follows the chosen reader's series):
    the results page said "Adjudicated" for both, the quality page counted one. The visit the adjudicator
    decided is "Adjudicated" on both pages; the baseline says it was agreed and follows the decision."""
    client.force_login(world.sam)
    html = client.get(reverse("read-results", args=["ALPHA"])).content.decode()
    rows = re.findall(
        r'<th scope="row" class="code">([^<]+)</th>\s*<td data-label="Visit">([^<]+)</td>.*?'
        r'<td data-label="Decided by">([^<]+)</td>',
        html,
        re.S,
    )
    decided = {(subject, visit): by for subject, visit, by in rows}
    assert decided[(ADJUDICATED, "Week 6")] == "Adjudicated"
    assert decided[(ADJUDICATED, "Baseline")] == "Readers agreed; follows the adjudication"
    assert decided[(AGREE, "Baseline")] == decided[(AGREE, "Week 6")] == "Readers agreed"
    summary = report.summarise(data.quality_input(world.trial))
    assert list(decided.values()).count("Adjudicated") == summary.trial_adjudication.k == 1
    # Both pages say what they count.
    assert "a later adjudication" in html
    quality = client.get(reverse("read-quality", args=["ALPHA"])).content.decode()
    assert "visits already agreed that an adjudication settled are not counted" in quality


def test_the_results_page_says_which_visits_were_adjudicated_in_korean_too(world, scripted, client):
    client.force_login(world.sam)
    html = client.get(reverse("read-results", args=["ALPHA"]), HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert html.count(">판정됨</td>") == 1 and html.count(">판독자 일치; 판정 결과를 따름</td>") == 1
    quality = client.get(reverse("read-quality", args=["ALPHA"]), HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "이미 일치한 방문이 판정으로 정해진 경우는 세지 않습니다" in quality
