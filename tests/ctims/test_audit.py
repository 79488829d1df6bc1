"""The audit trail: every service records its event, the chain finds tampering, PostgreSQL refuses changes."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from ctims.audit import audit_verify
from ctims.models import AuditEvent
from trials import services
from trials.models import Membership, Role


def last_event() -> AuditEvent:
    return AuditEvent.objects.order_by("-seq").first()


SERVICE_CALLS = {
    "trial.create": lambda w: services.trial_create(
        actor=w.alice, code="NEW", title="New", sponsor="S", protocol_number="P"
    ),
    "trial.update": lambda w: services.trial_update(actor=w.alice, trial=w.trial, title="Renamed"),
    "site.create": lambda w: services.site_create(actor=w.alice, trial=w.trial, code="DAE", name="Daegu", country="KR"),
    "visit.create": lambda w: services.visit_create(
        actor=w.alice, trial=w.trial, code="W12", label="Week 12", order=3, target_day=84, window_before=7
    ),
    "protocol.create": lambda w: services.protocol_create(
        actor=w.alice,
        visit=w.trial.visits.get(code="BL"),
        modality="MR",
        body_region="head",
        contrast="none",
        max_slice_thickness_mm="3",
    ),
    "subject.enroll": lambda w: services.subject_enroll(actor=w.alice, site=w.seo),
    "membership.grant": lambda w: services.membership_grant(
        actor=w.alice, trial=w.trial, user=w.otto, role=Role.READER
    ),
    "membership.update": lambda w: services.membership_grant(
        actor=w.alice, trial=w.trial, user=w.cora, role=Role.SITE_COORDINATOR, sites=[w.seo, w.bus]
    ),
    "membership.revoke": lambda w: services.membership_revoke(
        actor=w.alice, membership=Membership.objects.get(user=w.rhea, trial=w.trial)
    ),
    "invitation.create": lambda w: services.invitation_create(
        actor=w.alice, trial=w.trial, email="new@example.org", full_name="New", role=Role.READER
    ),
    "token.create": lambda w: services.api_token_create(
        actor=w.cora, membership=Membership.objects.get(user=w.cora, trial=w.trial), name="PACS bridge"
    ),
}


@pytest.mark.parametrize("action", sorted(SERVICE_CALLS))
def test_every_service_writes_its_event_in_the_same_transaction(world, action):
    before = last_event().seq
    SERVICE_CALLS[action](world)
    event = AuditEvent.objects.filter(seq__gt=before, action=action).get()
    assert event.actor_label.endswith("@example.org")
    assert event.at.utcoffset().total_seconds() == 0
    assert audit_verify().intact


def test_a_failed_service_writes_no_event(world):
    before = AuditEvent.objects.count()
    with pytest.raises(Exception):
        services.site_create(actor=world.alice, trial=world.trial, code="SEO", name="Again", country="KR")
    assert AuditEvent.objects.count() == before


def test_token_revocation_is_audited(world):
    token, _ = services.api_token_create(
        actor=world.cora, membership=Membership.objects.get(user=world.cora, trial=world.trial), name="Bridge"
    )
    services.api_token_revoke(actor=world.cora, token=token)
    assert last_event().action == "token.revoke"


def test_events_chain_each_to_the_one_before(world):
    events = list(AuditEvent.objects.order_by("seq"))
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(b.prev_hash == a.hash for a, b in zip(events, events[1:], strict=False))
    assert audit_verify().checked == len(events)


def test_the_summary_never_holds_the_pseudonym_key(world):
    key = bytes(world.trial.pseudonym_key).hex()
    assert not any(key in str(e.summary) for e in AuditEvent.objects.all())


@pytest.fixture
def trigger_off():
    """Disable the append-only trigger for a raw-SQL tamper, as an attacker with owner rights could."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # flush deferred FK checks so the table can be altered
        cursor.execute("ALTER TABLE ctims_auditevent DISABLE TRIGGER ctims_audit_append_only")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE ctims_auditevent ENABLE TRIGGER ctims_audit_append_only")


def test_audit_verify_finds_a_changed_event(world, trigger_off):
    target = AuditEvent.objects.order_by("seq")[3]
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ctims_auditevent SET summary = %s WHERE seq = %s", ['{"code": "FORGED"}', target.seq])
    report = audit_verify()
    assert report.broken_seq == target.seq and "changed" in report.problem
    with pytest.raises(CommandError, match=f"#{target.seq}"):
        call_command("audit_verify")


def test_audit_verify_finds_a_removed_event(world, trigger_off):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ctims_auditevent WHERE seq = 5")
    report = audit_verify()
    assert report.broken_seq == 5 and "missing" in report.problem


def test_audit_verify_finds_a_rewritten_chain_tail(world, trigger_off):
    last = last_event()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM ctims_auditevent WHERE seq = %s", [last.seq])
    report = audit_verify()
    assert not report.intact and report.broken_seq == last.seq


def test_audit_verify_command_reports_an_intact_chain(world, capsys):
    call_command("audit_verify")
    assert "intact" in capsys.readouterr().out


def test_audit_verify_names_the_last_event_and_its_hash_to_be_kept_outside(world, capsys):
    # Whoever owns the tables can cut the chain's tail and set its head back to an earlier event: only a record of
    # the last event kept outside the database (the command's output, a ticket) shows that events went missing.
    last = last_event()
    call_command("audit_verify")
    assert f"last event #{last.seq} {last.hash}" in capsys.readouterr().out


@pytest.mark.parametrize("sql", ["UPDATE ctims_auditevent SET action = 'x'", "DELETE FROM ctims_auditevent"])
def test_postgresql_refuses_update_and_delete(world, sql):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    assert AuditEvent.objects.exclude(action="x").count() == AuditEvent.objects.count() > 0


def plain_rewrite(event: AuditEvent, **changes) -> None:
    """What a superuser without the key can do: change an event and recompute every later hash in plain SHA-256."""
    import hashlib

    from ctims.audit import event_content

    events = list(AuditEvent.objects.filter(seq__gte=event.seq).order_by("seq"))
    prev = events[0].prev_hash
    with connection.cursor() as cursor:
        for e in events:
            for field, value in (changes if e.pk == event.pk else {}).items():
                setattr(e, field, value)
            e.prev_hash = prev
            e.hash = hashlib.sha256(event_content(e)).hexdigest()
            cursor.execute(
                "UPDATE ctims_auditevent SET summary = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [json.dumps(e.summary), e.prev_hash, e.hash, e.pk],
            )
            prev = e.hash
        cursor.execute("UPDATE ctims_audithead SET hash = %s", [prev])


def test_audit_verify_finds_events_rewritten_with_recomputed_plain_hashes(world, trigger_off):
    target = AuditEvent.objects.order_by("seq")[3]
    plain_rewrite(target, summary={"code": "FORGED"})
    report = audit_verify()
    assert report.broken_seq == target.seq and "changed" in report.problem


def test_the_chain_is_keyed_by_a_secret_outside_the_database(world, settings):
    assert audit_verify().intact
    settings.AUDIT_HMAC_KEY = "another-key"
    report = audit_verify()
    assert report.broken_seq == 1 and "changed" in report.problem


def test_a_rotated_key_keeps_older_events_verifiable(world, settings):
    before = last_event().seq
    settings.AUDIT_HMAC_OLD_KEYS = {settings.AUDIT_HMAC_KEY_ID: settings.AUDIT_HMAC_KEY}
    settings.AUDIT_HMAC_KEY_ID, settings.AUDIT_HMAC_KEY = "2", "the-next-key"
    services.site_create(actor=world.alice, trial=world.trial, code="DAE", name="Daegu", country="KR")
    assert last_event().seq == before + 1 and last_event().key_id == "2"
    assert audit_verify().intact
    settings.AUDIT_HMAC_OLD_KEYS = {}
    report = audit_verify()
    assert report.broken_seq == 1 and "key" in report.problem


def test_production_settings_require_an_audit_key():
    import os
    import subprocess
    import sys

    env = os.environ | {"DEBUG": "False", "SECRET_KEY": "x" * 50, "DJANGO_SETTINGS_MODULE": "ctims.settings"}
    env.pop("AUDIT_HMAC_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "AUDIT_HMAC_KEY must be set" in result.stderr


def test_a_chain_from_before_the_key_is_verified_then_re_keyed_by_its_migration(world, trigger_off):
    import importlib

    from django.apps import apps

    rekey = importlib.import_module("ctims.migrations.0004_audit_keyed_chain").rekey
    first = AuditEvent.objects.order_by("seq").first()
    plain_rewrite(first, summary=first.summary)  # the whole chain as it was before keys: plain SHA-256
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ctims_auditevent SET key_id = ''")
    assert not audit_verify().intact
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with connection.schema_editor(atomic=False) as editor:
        rekey(apps, editor)
    assert audit_verify().intact and set(AuditEvent.objects.values_list("key_id", flat=True)) == {"1"}


def test_the_re_keying_migration_refuses_a_chain_that_was_tampered_with(world, trigger_off):
    import importlib

    from django.apps import apps

    rekey = importlib.import_module("ctims.migrations.0004_audit_keyed_chain").rekey
    first = AuditEvent.objects.order_by("seq").first()
    plain_rewrite(first, summary=first.summary)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE ctims_auditevent SET summary = '{\"forged\": 1}' WHERE seq = 3")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with pytest.raises(RuntimeError, match="#3 was changed"), connection.schema_editor(atomic=False) as editor:
        rekey(apps, editor)


# --- log-ins, log-outs, passwords and codes (Part 11 §11.10(e), §11.300(d)) ------------------------------------


def _log_in(client, email, password, **extra):
    from django.urls import reverse

    return client.post(reverse("login"), {"username": email, "password": password}, **extra)


def _events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_a_log_in_and_a_log_out_are_audited_as_the_persons(world, client):
    from django.urls import reverse

    from tests.conftest import PASSWORD

    assert _log_in(client, world.cora.email, PASSWORD, REMOTE_ADDR="10.1.2.3").status_code == 302
    (login,) = _events("login")
    assert login.actor == world.cora and login.summary == {"email": world.cora.email, "ip_address": "10.1.2.3"}
    client.post(reverse("logout"))
    (logout,) = _events("logout")
    assert logout.actor == world.cora


def test_a_wrong_password_is_audited_with_the_address_tried_never_the_password(world, client):
    assert _log_in(client, world.cora.email, "Wrong-Guess-1!", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert _log_in(client, "nobody@example.org", "Other-Guess-2!").status_code == 200
    known, unknown = _events("login.fail")
    assert known.actor is None and known.object_id == str(world.cora.pk)
    assert known.summary == {"email": world.cora.email, "ip_address": "10.1.2.3", "reason": "password"}
    assert unknown.summary["email"] == "nobody@example.org" and unknown.object_id == ""
    assert "Guess" not in str(known.summary) + str(unknown.summary)


def test_a_lock_out_is_audited(world, client):
    for _ in range(5):
        _log_in(client, world.cora.email, "wrong-password")
    (event,) = _events("login.lockout")
    assert event.object_id == str(world.cora.pk) and event.summary["email"] == world.cora.email
    assert len(_events("login.fail")) == 5


def test_attempts_while_locked_out_are_refusals_of_a_locked_account_not_new_lock_outs(world, client):
    from tests.conftest import PASSWORD

    for _ in range(5):
        _log_in(client, world.cora.email, "wrong-password")
    # Two more tries while locked, the second with the right password: neither password was checked.
    _log_in(client, world.cora.email, "wrong-password")
    assert _log_in(client, world.cora.email, PASSWORD).status_code != 302
    assert len(_events("login.lockout")) == 1
    reasons = [e.summary["reason"] for e in _events("login.fail")]
    assert reasons == ["password"] * 5 + ["locked out"] * 2


def test_a_wrong_one_time_code_is_audited(world, client):
    from django.urls import reverse

    from tests.conftest import PASSWORD, authenticator_of

    authenticator_of(world.ada)
    _log_in(client, world.ada.email, PASSWORD)
    assert client.post(reverse("two-factor"), {"code": "000000x"}).status_code == 200
    (event,) = _events("login.fail")
    assert event.actor == world.ada and event.summary["reason"] == "one-time code"
    assert "000000x" not in str(event.summary)


def test_changing_the_password_is_audited(world, client):
    from django.urls import reverse

    from tests.conftest import PASSWORD

    client.force_login(world.cora)
    new = "Another-Horse-7!"
    answer = client.post(
        reverse("password_change"), {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert answer.status_code == 302
    (event,) = _events("user.password_change")
    assert event.actor == world.cora and new not in str(event.summary)


def test_a_password_reset_request_and_its_completion_are_audited(world, client, mailoutbox):
    import re

    from django.urls import reverse

    client.post(reverse("password_reset"), {"email": world.cora.email})
    client.post(reverse("password_reset"), {"email": "nobody@example.org"})
    known, unknown = _events("user.password_reset_request")
    assert known.actor is None and known.object_id == str(world.cora.pk)
    assert unknown.summary["email"] == "nobody@example.org" and unknown.object_id == ""
    link = re.search(r"http://[^/\s]+(/accounts/password/set/\S+)", mailoutbox[0].body).group(1)
    form = client.get(link, follow=True)
    new = "Another-Horse-7!"
    assert client.post(form.redirect_chain[-1][0], {"new_password1": new, "new_password2": new}).status_code == 302
    (event,) = _events("user.password_reset")
    assert event.actor == world.cora and event.object_id == str(world.cora.pk) and new not in str(event.summary)


def test_new_recovery_codes_are_audited_without_the_codes(world, client):
    import re

    from django.urls import reverse

    client.force_login(world.ada)
    answer = client.post(reverse("two-factor-recovery-codes"))
    codes = re.findall(r'<li><code class="code">([a-z0-9]+)</code></li>', answer.content.decode())
    (event,) = _events("two_factor.recovery_codes_new")
    assert event.actor == world.ada and event.summary == {"email": world.ada.email, "codes": len(codes)}


def test_audit_verify_under_another_key_asks_whether_the_key_is_the_right_one(world, settings):
    """Every event fails under another AUDIT_HMAC_KEY: the command said only that event #1 was changed."""
    from django.core.management import CommandError, call_command

    call_command("audit_verify")
    settings.AUDIT_HMAC_KEY = "not-the-key-the-events-were-made-with"
    with pytest.raises(CommandError, match="is AUDIT_HMAC_KEY"):
        call_command("audit_verify")


# --- a change records the values before and after (11.10(e): never obscure what was recorded) -----------------


def test_a_coordinators_sites_changed_are_recorded_before_and_after(world):
    services.membership_grant(
        actor=world.alice, trial=world.trial, user=world.cora, role=Role.SITE_COORDINATOR, sites=[world.bus]
    )
    event = last_event()
    assert event.action == "membership.update"
    assert event.summary["changes"] == {"sites": [["SEO"], ["BUS"]]}


def test_a_read_design_changed_is_recorded_before_and_after(world):
    from reads.models import ReadDesign
    from reads.services import read_design_set

    design = read_design_set(actor=world.alice, trial=world.trial)
    before = design.adjudication_trigger
    after = next(
        value for value, _label in ReadDesign._meta.get_field("adjudication_trigger").choices if value != before
    )
    read_design_set(actor=world.alice, trial=world.trial, adjudication_trigger=after)
    event = last_event()
    assert event.action == "read_design.update"
    assert event.summary["changes"] == {"adjudication_trigger": [before, after]}
