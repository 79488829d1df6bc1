"""The set-up pages: forms call the services, show their refusals in words, and change nothing on error."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from ctims.models import AuditEvent
from trials.models import ImagingProtocol, Membership, Site, Trial, Visit


def post(client, user, name, args, data):
    client.force_login(user)
    return client.post(reverse(name, args=args), data)


def test_an_admin_creates_a_trial_through_the_page_and_becomes_its_admin(world, client):
    response = post(
        client,
        world.alice,
        "trial-create",
        (),
        {"code": "BETA", "title": "Beta", "sponsor": "S", "protocol_number": "B-1", "status": "setup"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("trial-detail", args=["BETA"])
    assert Membership.objects.filter(trial__code="BETA", user=world.alice, role="trial_admin").exists()


def test_a_duplicate_trial_code_is_shown_on_the_form(world, client):
    response = post(
        client,
        world.alice,
        "trial-create",
        (),
        {"code": "ALPHA", "title": "Again", "sponsor": "S", "protocol_number": "P", "status": "setup"},
    )
    assert response.status_code == 200 and "already exists" in response.content.decode()
    assert Trial.objects.filter(code="ALPHA").count() == 1


def test_an_overlapping_visit_window_is_explained_and_nothing_changes(world, client):
    events = AuditEvent.objects.exclude(action="login").count()  # logging in is an event of its own
    response = post(
        client,
        world.alice,
        "trial-schedule",
        ("ALPHA",),
        {"code": "W8", "label": "Week 8", "order": 3, "target_day": 45, "window_before": 7, "window_after": 7},
    )
    assert response.status_code == 200 and "overlaps" in response.content.decode()
    assert not Visit.objects.filter(code="W8").exists()
    assert AuditEvent.objects.exclude(action="login").count() == events


def test_a_visit_whose_sdtm_visit_name_another_has_is_explained_by_the_field(world, client):
    response = post(
        client,
        world.alice,
        "trial-schedule",
        ("ALPHA",),
        {
            "code": "W42",
            "label": "Sixth week",
            "order": 3,
            "target_day": 84,
            "window_before": 0,
            "window_after": 0,
            "sdtm_name": "Week 6",
        },
    )
    assert response.status_code == 200
    assert response.context["visit_form"].errors["sdtm_name"] == ["Already the SDTM visit name of visit W6."]
    assert not Visit.objects.filter(code="W42").exists()


def test_a_subject_code_pattern_no_url_can_hold_is_shown_on_the_form(world, client):
    data = {"code": "BETA", "title": "Beta", "sponsor": "S", "protocol_number": "B-1", "status": "setup"}
    response = post(client, world.alice, "trial-create", (), {**data, "subject_code_pattern": "<b>{n}</b>"})
    assert response.status_code == 200 and "subject_code_pattern" in response.context["form"].errors
    assert not Trial.objects.filter(code="BETA").exists()


def test_an_admin_adds_a_site_a_visit_and_a_protocol(world, client):
    assert (
        post(
            client, world.alice, "trial-sites", ("ALPHA",), {"code": "DAE", "name": "Daegu", "country": "KR"}
        ).status_code
        == 302
    )
    assert Site.objects.filter(trial=world.trial, code="DAE").exists()
    assert (
        post(
            client,
            world.alice,
            "trial-schedule",
            ("ALPHA",),
            {"code": "W12", "label": "Week 12", "order": 3, "target_day": 84, "window_before": 7, "window_after": 7},
        ).status_code
        == 302
    )
    response = post(
        client,
        world.alice,
        "protocol-create",
        ("ALPHA", "W12"),
        {"modality": "CT", "body_region": "cap", "contrast": "required", "max_slice_thickness_mm": "5"},
    )
    assert response.status_code == 302
    assert ImagingProtocol.objects.filter(visit__code="W12", visit__trial=world.trial, modality="CT").exists()


@pytest.mark.parametrize(("thickness", "status"), [("0.1", 302), ("20", 302), ("0.09", 200), ("20.01", 200)])
def test_the_protocol_forms_slice_thickness_bounds_are_inclusive(world, client, thickness, status):
    data = {"modality": "CT", "body_region": "cap", "contrast": "required", "max_slice_thickness_mm": thickness}
    response = post(client, world.alice, "protocol-create", ("ALPHA", "W6"), data)
    assert response.status_code == status, response.content.decode()[:2000]
    assert ImagingProtocol.objects.filter(visit__code="W6", visit__trial=world.trial).exists() == (status == 302)


def test_a_coordinator_cannot_enroll_through_the_page(world, client):
    count = world.trial.subjects.count()
    assert post(client, world.cora, "trial-subjects", ("ALPHA",), {"site": "SEO"}).status_code == 403
    assert world.trial.subjects.count() == count


def test_enrolling_in_a_closed_trial_is_refused_on_the_page(world, client):
    Trial.objects.filter(pk=world.trial.pk).update(status=Trial.Status.CLOSED)
    count = world.trial.subjects.count()
    response = post(client, world.alice, "trial-subjects", ("ALPHA",), {"site": "SEO"})
    assert response.status_code == 200 and "Trial ALPHA is closed" in response.content.decode()
    assert world.trial.subjects.count() == count


def test_granting_a_role_invites_the_person_once(world, client, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(
            client,
            world.alice,
            "trial-people",
            ("ALPHA",),
            {"email": "nora@example.org", "full_name": "Nora", "role": "coordinator", "sites": ["SEO", "BUS"]},
        )
    assert response.status_code == 302
    assert not Membership.objects.filter(user__email="nora@example.org").exists()  # not until she accepts
    invitation = world.trial.invitations.get(email="nora@example.org")
    assert sorted(invitation.sites.values_list("code", flat=True)) == ["BUS", "SEO"]
    assert len(mailoutbox) == 1
    assert b"nora@example.org" in client.get(reverse("trial-people", args=["ALPHA"])).content


def test_revoking_a_role_takes_the_trial_away(world, client):
    membership = Membership.objects.get(user=world.rhea, trial=world.trial)
    assert post(client, world.alice, "membership-revoke", ("ALPHA", membership.pk), {}).status_code == 302
    client.force_login(world.rhea)
    assert client.get(reverse("trial-detail", args=["ALPHA"])).status_code == 404


def test_revoking_the_last_trial_admin_is_refused_on_the_page_and_nothing_changes(world, client):
    client.force_login(world.alice)
    only_admin = Membership.objects.get(trial=world.trial, user=world.alice, role="trial_admin")
    response = client.post(reverse("membership-revoke", args=["ALPHA", only_admin.pk]), follow=True)
    assert response.status_code == 200
    assert "A trial must keep at least one trial admin." in response.content.decode()
    assert Membership.objects.filter(pk=only_admin.pk).exists()
    assert not AuditEvent.objects.filter(action="membership.revoke").exists()


def test_a_token_key_is_shown_once_on_the_page(world, client):
    response = post(client, world.cora, "trial-tokens", ("ALPHA",), {"name": "PACS bridge", "role": "coordinator"})
    key = re.search(r'value="(ctims_[^"]+)"', response.content.decode()).group(1)
    assert response.status_code == 200 and len(key) > 40
    assert key not in client.get(reverse("trial-tokens", args=["ALPHA"])).content.decode()


def test_the_audit_page_filters_by_action(world, client):
    client.force_login(world.alice)
    page = client.get(reverse("trial-audit", args=["ALPHA"]), {"action": "site.create"}).content.decode()
    assert page.count('<span title="site.create">Site added</span></td>') == 2
    assert 'title="subject.enroll"' not in page


@pytest.mark.parametrize("since", ["0001-01-01", "2026-13-40"])
def test_the_audit_page_shows_a_date_it_cannot_use_and_lists_nothing(world, client, since):
    client.force_login(world.alice)
    response = client.get(reverse("trial-audit", args=["ALPHA"]), {"since": since, "action": "site.create"})
    page = response.content.decode()
    assert response.status_code == 200 and "has-error" in page
    assert 'title="site.create"' not in page


def test_the_sponsor_page_shows_counts_and_no_subject_or_site(world, client):
    client.force_login(world.sam)
    page = client.get(reverse("trial-detail", args=["ALPHA"])).content.decode()
    assert "ALPHA-SEO-001" not in page and "Seoul Hospital" not in page and "cora@" not in page


def test_the_audit_trail_is_paginated_and_keeps_its_filter(world, client):
    from trials import services

    for _ in range(55):
        services.subject_enroll(actor=world.alice, site=world.seo)
    client.force_login(world.alice)
    first = client.get(reverse("trial-audit", args=["ALPHA"]), {"action": "subject.enroll"}).content.decode()
    assert "Page 1 of 2" in first and "action=subject.enroll&amp;page=2" in first
    second = client.get(
        reverse("trial-audit", args=["ALPHA"]), {"action": "subject.enroll", "page": 2}
    ).content.decode()
    assert (
        "Page 2 of 2" in second and second.count('<span title="subject.enroll">Subject enrolled</span></td>') == 58 - 50
    )


def test_the_sites_page_offers_countries_by_name_and_refuses_one_iso_does_not_know(world, client):
    client.force_login(world.alice)
    url = reverse("trial-sites", args=["ALPHA"])
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert re.search(r'<select name="country"[^>]*>', page)
    assert re.search(r'<option value="KR">\s*대한민국\s*</option>', page)
    # The list of sites names each site's country too, in the reader's language.
    assert "대한민국" in page.split("<table", 1)[1]
    response = client.post(url, {"code": "ZED", "name": "Nowhere", "country": "ZZ"})
    assert response.status_code == 200
    assert "ISO" in response.content.decode()
    assert not Site.objects.filter(trial=world.trial, code="ZED").exists()


@pytest.mark.parametrize(
    ("who", "pages"),
    [
        ("quinn", ["trial-subjects", "qc-worklist", "query-list"]),
        ("cora", ["trial-subjects", "query-list"]),
        ("rhea", ["read-worklist"]),
        ("ada", ["read-worklist"]),
        ("sam", ["read-results", "read-quality", "read-transfers"]),
        ("alice", ["trial-subjects", "query-list", "read-design", "read-results", "read-quality", "read-transfers"]),
    ],
)
def test_the_overview_leads_each_role_to_the_pages_its_work_is_on(world, client, who, pages):
    """The overview's "Go to" named only the visit grid (and the admin's set-up pages): the QC reviewer was not
    led to the QC worklist, a reader or adjudicator nowhere, the sponsor not to the results."""
    client.force_login(world.people[who])
    page = client.get(reverse("trial-detail", args=["ALPHA"])).content.decode()
    assert 'id="next"' in page, who
    tiles = re.findall(r'<a class="tile" href="([^"]+)"', page.split('id="next"', 1)[1])
    urls = [reverse(name) if name == "read-worklist" else reverse(name, args=["ALPHA"]) for name in pages]
    assert set(urls) <= set(tiles), (who, tiles)
    for url in tiles:
        assert client.get(url).status_code == 200, (who, url)


def test_an_operator_with_no_trial_is_told_what_they_can_do_and_where_the_operator_admin_is(world, client):
    """The operator's home said only "A trial admin adds you to a trial", which never happens to an operator: it
    names New trial (they may create one and become its admin) and links the operator admin."""
    from django.contrib.auth.models import Permission

    from tests.conftest import make_user

    operator = make_user("olaf", is_staff=True, is_superuser=True)
    client.force_login(operator)
    page = client.get(reverse("home")).content.decode()
    assert f'href="{reverse("admin:index")}"' in page
    assert "Start one with New trial" in page and "A trial admin adds you to a trial" not in page
    creator = make_user("carl")
    creator.user_permissions.add(Permission.objects.get(codename="add_trial"))
    client.force_login(creator)
    page = client.get(reverse("home")).content.decode()
    assert "Start one with New trial" in page and f'href="{reverse("admin:index")}"' not in page
    client.force_login(make_user("nina"))
    page = client.get(reverse("home")).content.decode()
    assert "A trial admin adds you to a trial" in page and "New trial" not in page


def _enroll(world, n):
    from trials import services

    for _ in range(n):
        services.subject_enroll(actor=world.alice, site=world.seo)


def _page_queries(client, url, params=None) -> tuple[str, int]:
    """The page and the number of queries it asked (after a first request, which also saves the new session)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url, params or {})
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return response.content.decode(), len(queries)


def test_the_subjects_grid_is_paged_counts_every_subject_and_keeps_the_query(world, client, monkeypatch):
    from trials.models import Subject

    monkeypatch.setattr("trials.views.subjects.SUBJECT_PAGE_SIZE", 3, raising=False)
    _enroll(world, 5)
    total = Subject.objects.filter(trial=world.trial).count()
    codes = list(Subject.objects.filter(trial=world.trial).order_by("code").values_list("code", flat=True))
    client.force_login(world.alice)
    url = reverse("trial-subjects", args=["ALPHA"])
    first = client.get(url, {"lang": "x"}).content.decode()
    assert f'<span class="count">{total}</span>' in first
    assert "Page 1 of" in first and "lang=x&amp;page=2" in first
    rows = re.findall(r'<th scope="row"><a class="code" href="[^"]+">([^<]+)</a>', first)
    assert rows == codes[:3]
    second = client.get(url, {"page": 2}).content.decode()
    assert re.findall(r'<th scope="row"><a class="code" href="[^"]+">([^<]+)</a>', second) == codes[3:6]
    assert f'<span class="count">{total}</span>' in second


def test_the_subjects_grid_puts_subject_1000_after_subject_999(world, client):
    """Codes are text: DEMO-SEO-1000 sorted before DEMO-SEO-101. The grid follows the subjects' numbers (within
    each site where the code names the site)."""
    from trials.models import Subject

    site = world.trial.sites.get(code="SEO")
    for number in (999, 1000, 101):
        Subject.objects.create(trial=world.trial, site=site, code=f"ALPHA-SEO-{number:03d}", number=number)
    client.force_login(world.alice)
    page = client.get(reverse("trial-subjects", args=["ALPHA"])).content.decode()
    rows = re.findall(r'<th scope="row"><a class="code" href="[^"]+">([^<]+)</a>', page)
    ours = [code for code in rows if code in {"ALPHA-SEO-999", "ALPHA-SEO-1000", "ALPHA-SEO-101"}]
    assert ours == ["ALPHA-SEO-101", "ALPHA-SEO-999", "ALPHA-SEO-1000"]


def test_the_subjects_grid_asks_as_many_queries_for_a_long_page_as_for_a_short_one(world, client, monkeypatch):
    _enroll(world, 12)
    client.force_login(world.alice)
    url = reverse("trial-subjects", args=["ALPHA"])
    monkeypatch.setattr("trials.views.subjects.SUBJECT_PAGE_SIZE", 2, raising=False)
    _, short = _page_queries(client, url)
    monkeypatch.setattr("trials.views.subjects.SUBJECT_PAGE_SIZE", 12, raising=False)
    page, long = _page_queries(client, url)
    assert page.count('<th scope="row"><a class="code"') == 12
    assert long == short


def _waiting_for_qc(world, n):
    from trials.models import Timepoint

    _enroll(world, n)
    baselines = Timepoint.objects.filter(subject__trial=world.trial, visit__code="BL")
    baselines.update(state=Timepoint.State.UPLOADED)
    return list(baselines.order_by("updated_at", "pk"))


def test_the_qc_worklist_is_paged_and_counts_every_visit(world, client, monkeypatch):
    monkeypatch.setattr("trials.views.qc.QC_PAGE_SIZE", 2, raising=False)
    waiting = _waiting_for_qc(world, 3)
    client.force_login(world.quinn)
    url = reverse("qc-worklist", args=["ALPHA"])
    first, short = _page_queries(client, url)
    assert f'<span class="count">{len(waiting)}</span>' in first
    assert first.count("Open QC<span") == 2 and "Page 1 of" in first and "?page=2" in first
    last = client.get(url, {"page": 99}).content.decode()
    assert f'<span class="count">{len(waiting)}</span>' in last
    assert last.count("Open QC<span") == len(waiting) - 2 * ((len(waiting) - 1) // 2)
    monkeypatch.setattr("trials.views.qc.QC_PAGE_SIZE", 50, raising=False)
    every, long = _page_queries(client, url)
    assert every.count("Open QC<span") == len(waiting) and long == short


def test_the_trial_header_is_inside_a_landmark_on_every_trial_page(world, client):
    """axe's "region": content outside any landmark is missed by those who move from landmark to landmark. The
    trial's code, title and menu belong to the page's banner, with the site's bar."""
    from lxml import html as lxml_html

    landmarks = {"header", "nav", "main", "footer", "aside"}
    client.force_login(world.alice)
    for name in ("trial-detail", "trial-subjects", "query-list", "trial-audit", "read-results"):
        tree = lxml_html.fromstring(client.get(reverse(name, args=["ALPHA"])).content)
        for element in tree.body:
            # Every top-level element but the skip link is a landmark: nothing sits between them.
            if element.get("class") != "skip-link":
                assert element.tag in landmarks, (name, element.tag, element.get("class"))
        (bar,) = tree.find_class("trialbar")
        assert [a.tag for a in bar.iterancestors()][-3:] == ["header", "body", "html"], name
        assert len(tree.xpath("//body/header")) == 1  # one banner
