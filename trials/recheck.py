"""Records kept from before a rule existed, checked against today's rules (`manage.py recheck`).

Each rule below is enforced where records are made or changed (trials.services, the models' validators), so a
record made before the rule came in was never put through it: a person holding a blinded and an unblinded role in
one trial, two visits of a trial with one label or one SDTM visit name, a subject code outside today's form, a
site's country that is not an ISO 3166-1 country. What is found names the record by the codes people use
(trial, site, visit, subject, the account's e-mail for a membership) and is for the operator to mend through the
pages or the API, which then apply the rule; nothing is changed here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django_countries import countries

from .models import Membership, Role, Site, Subject, Trial, Visit, validate_subject_code
from .services import BLINDED_ROLES, visit_name_clashes


@dataclass(frozen=True)
class RecordFinding:
    trial: str
    code: str  # short and stable, for machines
    text: str  # for the operator: which record, and what today's rule says


def records_recheck(*, trial: Trial | None = None) -> Iterator[RecordFinding]:
    trials = Trial.objects.filter(pk=trial.pk) if trial is not None else Trial.objects.all()
    for t in trials.order_by("code"):
        yield from _roles(t)
        yield from _visits(t)
        yield from _subjects(t)
        yield from _sites(t)


def _roles(trial: Trial) -> Iterator[RecordFinding]:
    held = defaultdict(set)
    emails = {}
    for user_id, email, role in Membership.objects.filter(trial=trial).values_list("user_id", "user__email", "role"):
        held[user_id].add(role)
        emails[user_id] = email
    for user_id, roles in sorted(held.items(), key=lambda item: emails[item[0]]):
        if roles & BLINDED_ROLES and roles - BLINDED_ROLES:
            yield RecordFinding(
                trial.code,
                "blinded_and_unblinded_roles",
                f"{emails[user_id]} is {', '.join(sorted(str(Role(r).label) for r in roles))}: a reader or adjudicator reads blind and cannot "
                "also hold a role that sees sites, real dates or results; take one of the roles away",
            )


def _visits(trial: Trial) -> Iterator[RecordFinding]:
    visits = list(Visit.objects.filter(trial=trial).order_by("order", "code"))
    for n, visit in enumerate(visits):
        for other in visits[n + 1 :]:
            clashes = visit_name_clashes(visit, other)
            if "label" in clashes:
                yield RecordFinding(
                    trial.code,
                    "visit_label_taken",
                    f"visits {visit.code} and {other.code} have one label: give each a label of its own",
                )
            if "sdtm_name" in clashes:
                yield RecordFinding(
                    trial.code,
                    "visit_sdtm_name_taken",
                    f"visits {visit.code} and {other.code} go to the SDTM files as one VISIT ({visit.sdtm_visit}): "
                    "give one of them another SDTM visit name",
                )


def _subjects(trial: Trial) -> Iterator[RecordFinding]:
    for code in Subject.objects.filter(trial=trial).order_by("code").values_list("code", flat=True):
        try:
            validate_subject_code(code)
        except ValidationError:
            yield RecordFinding(
                trial.code,
                "subject_code_form",
                f"subject {code!r} has a code outside today's form (English letters, digits, '-', '_' and '.', "
                "starting with a letter or digit, at most 64 characters), under which its files are filed and "
                "delivered: tell the trial admin",
            )


def _sites(trial: Trial) -> Iterator[RecordFinding]:
    for site_code, country in Site.objects.filter(trial=trial).order_by("code").values_list("code", "country"):
        if not countries.alpha2(country):
            yield RecordFinding(
                trial.code,
                "site_country",
                f"site {site_code} has the country {country!r}, which is not an ISO 3166-1 country: choose it again",
            )
