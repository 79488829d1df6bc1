"""21 CFR 11.200(a)(1): the first signing of a log-in takes both components of the signature, the user ID and the
password; later signings of the same log-in take the password alone; a new log-in asks for both again."""

from __future__ import annotations

from django.urls import reverse

from ctims.models import AuditEvent, Signature
from reads import read_services
from reads.models import Adjudication, Read
from tests.conftest import PASSWORD
from tests.reads.flow import (
    baseline_content,
    follow_up_content,
    readers_disagree_at_week_6,
    ready,
    task_of,
)

ASKED = 'name="user_id"'


def _sign_form(task) -> dict:
    read = Read.objects.get(task=task, state="draft")
    return {
        "password": PASSWORD,
        "meaning": "author",
        "confirmed_response": read.assessment["overall_response"] or "baseline",
        "revision": read_services.draft_revision(read),
    }


def _saved(reader, task, content) -> None:
    read_services.read_save(actor=reader, task_id=task.pk, raw=content)


def test_the_first_signing_of_a_log_in_takes_the_user_id_as_well(world, client):
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    _saved(world.rhea, bl, baseline_content(bl))
    client.force_login(world.rhea)
    assert ASKED in client.get(reverse("read-task", args=[bl.pk])).content.decode()
    sign = reverse("read-sign", args=[bl.pk])

    for user_id in ("", world.ravi.email):  # none, or another person's with one's own password
        refused = client.post(sign, _sign_form(bl) | {"user_id": user_id})
        assert refused.status_code == 400 and "user ID is not yours" in refused.content.decode()
    assert not Signature.objects.exists() and Read.objects.get(task=bl).state == "draft"
    refusals = AuditEvent.objects.filter(action="signature.refuse", actor=world.rhea)
    assert [e.summary["reason"] for e in refusals] == ["user ID", "user ID"]  # what was wrong, never what was typed
    assert world.ravi.email not in str([e.summary for e in refusals])

    assert client.post(sign, _sign_form(bl) | {"user_id": world.rhea.email.upper()}).status_code == 302
    assert Read.objects.get(task=bl).state == "signed"

    # The next signing of the same log-in takes the password alone.
    w6 = task_of(world.rhea, "W6")
    _saved(world.rhea, w6, follow_up_content(w6, "22.0", "11.0"))
    assert ASKED not in client.get(reverse("read-task", args=[w6.pk])).content.decode()
    assert client.post(reverse("read-sign", args=[w6.pk]), _sign_form(w6)).status_code == 302


def test_a_new_log_in_asks_for_the_user_id_again(world, client):
    ready(world, "BL")
    ready(world, "W6", day=42)
    bl = task_of(world.rhea, "BL")
    _saved(world.rhea, bl, baseline_content(bl))
    client.force_login(world.rhea)
    assert (
        client.post(reverse("read-sign", args=[bl.pk]), _sign_form(bl) | {"user_id": world.rhea.email}).status_code
        == 302
    )

    client.logout()
    client.force_login(world.rhea)
    w6 = task_of(world.rhea, "W6")
    _saved(world.rhea, w6, follow_up_content(w6, "22.0", "11.0"))
    assert ASKED in client.get(reverse("read-task", args=[w6.pk])).content.decode()
    refused = client.post(reverse("read-sign", args=[w6.pk]), _sign_form(w6))
    assert refused.status_code == 400 and Read.objects.get(task=w6, version=1).state == "draft"


def test_the_first_adjudication_of_a_log_in_takes_the_user_id_as_well(world, client):
    adjudication = readers_disagree_at_week_6(world)
    client.force_login(world.ada)
    assert ASKED in client.get(reverse("read-task", args=[adjudication.task.pk])).content.decode()
    url = reverse("read-adjudicate", args=[adjudication.task.pk])
    form = {"choice": "1", "reason": "Reader 1 measured the true long axes.", "password": PASSWORD}
    form["meaning"] = "adjudicator"
    refused = client.post(url, form | {"user_id": world.rhea.email})
    assert refused.status_code == 400 and "user ID is not yours" in refused.content.decode()
    assert Adjudication.objects.get(pk=adjudication.pk).signature is None
    assert client.post(url, form | {"user_id": world.ada.email}).status_code == 302
    assert Adjudication.objects.get(pk=adjudication.pk).signature.signer == world.ada
