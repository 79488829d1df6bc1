"""Subject-level RECIST 1.1 endpoints as pure functions: best overall response, date of progression, the start of
the response, and study days.

Reference: Eisenhauer EA et al., "New response evaluation criteria in solid tumours: revised RECIST guideline
(version 1.1)", Eur J Cancer 45 (2009) 228-247: section 4.3.3 (equivocal new lesions), section 4.4 and Table 3
(best overall response, confirmation, the minimum duration of stable disease), and the CDISC SDTM convention for
study days (no day 0).

Days and dates
--------------
Every visit is placed by ``day``: whole days since the subject's baseline scan (the baseline itself is day 0),
computed from the de-identified study dates, which a per-subject offset shifts without changing any interval.
:func:`study_day` turns a date into the SDTM study day (baseline scan = day 1; the day before it = day -1).
Everything is integer arithmetic: intervals compare whole days, never weeks as floats.

Public API
----------
* :class:`EndpointRules` - what the read design says about confirmation and stable disease.
* :class:`VisitResponse` - one follow-up's overall response (one reader's, or the result's).
* :func:`study_day`, :func:`days_from_baseline` - dates to days.
* :func:`progression` - the date of progression (:class:`Progression`), back-dated for a confirmed equivocal
  new lesion.
* :func:`best_overall_response` / :func:`subject_endpoints` - the best overall response with the visit the
  response starts at (:class:`Endpoints`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from .recist11 import NewLesions, OverallResponse, Reason, gettext_noop

__all__ = [
    "DEFAULT_CONFIRMATION_DAYS",
    "DEFAULT_SD_MINIMUM_DAYS",
    "DEFAULT_SD_WINDOW_DAYS",
    "EndpointRules",
    "Endpoints",
    "Progression",
    "VisitResponse",
    "best_overall_response",
    "days_from_baseline",
    "progression",
    "study_day",
    "subject_endpoints",
]

DEFAULT_CONFIRMATION_DAYS = 28  # section 4.4.2 / 4.4.3: "no less than 4 weeks after the criteria were first met"
DEFAULT_SD_MINIMUM_DAYS = 42  # set by the protocol; 6 weeks is the usual choice (section 4.4.1)
DEFAULT_SD_WINDOW_DAYS = 7  # the visit window the protocol allows around that minimum

O = OverallResponse  # noqa: E741
STABLE_OR_BETTER = frozenset({O.CR, O.PR, O.SD, O.NON_CR_NON_PD})


# --- days ----------------------------------------------------------------------------------------


def days_from_baseline(on: dt.date, baseline: dt.date) -> int:
    """Whole days from the baseline scan to ``on`` (the baseline is 0); shifted dates keep this exact."""
    return (on - baseline).days


def study_day(on: dt.date, baseline: dt.date) -> int:
    """The SDTM study day of ``on`` with the baseline scan as day 1: there is no day 0, the day before is -1."""
    delta = days_from_baseline(on, baseline)
    return delta + 1 if delta >= 0 else delta


# --- input ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointRules:
    """The read design's rules for subject-level endpoints.

    ``confirmation``: a CR or PR counts only when a later assessment at least ``confirmation_days`` after it
    confirms it (RECIST 1.1 section 4.4.2; required in non-randomised trials where response is the primary
    endpoint). ``sd_minimum_days`` and ``sd_window_days``: stable disease counts as the best response only
    when met at least once at a visit on or after day ``sd_minimum_days - sd_window_days`` (section 4.4.1).
    """

    confirmation: bool = False
    confirmation_days: int = DEFAULT_CONFIRMATION_DAYS
    sd_minimum_days: int = DEFAULT_SD_MINIMUM_DAYS
    sd_window_days: int = DEFAULT_SD_WINDOW_DAYS

    def __post_init__(self) -> None:
        for name in ("confirmation_days", "sd_minimum_days", "sd_window_days"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number of days (0 or more), got {value!r}")

    @property
    def sd_earliest_day(self) -> int:
        """The first day from baseline on which a stable assessment meets the SD minimum duration."""
        return max(self.sd_minimum_days - self.sd_window_days, 0)


@dataclass(frozen=True)
class VisitResponse:
    """One follow-up visit's overall response (one reader's, or the accepted result's).

    ``day`` is whole days since the baseline scan (> 0). ``new_lesion_ids`` name the new lesions recorded at
    the visit (their labels or tracking UIDs: the same lesion keeps its id from visit to visit), so that an
    equivocal new lesion confirmed later can be traced back to the visit where it was first seen.
    """

    visit: str
    day: int
    response: OverallResponse
    new_lesions: NewLesions = NewLesions.NONE
    new_lesion_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.day, bool) or not isinstance(self.day, int):
            raise TypeError(f"{self.visit}: day must be an int, got {type(self.day).__name__}")
        object.__setattr__(self, "response", OverallResponse(self.response))
        object.__setattr__(self, "new_lesions", NewLesions(self.new_lesions))
        object.__setattr__(self, "new_lesion_ids", tuple(self.new_lesion_ids))


def _checked(visits: Sequence[VisitResponse]) -> tuple[VisitResponse, ...]:
    visits = tuple(visits)
    last = 0
    for v in visits:
        if v.day <= last:
            raise ValueError(
                f"{v.visit}: follow-ups must come after the baseline (day 0) in increasing order of day, "
                f"got day {v.day} after day {last}"
            )
        last = v.day
    return visits


# --- progression ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progression:
    """When the subject progressed: ``visit``/``day`` is the date of progression.

    ``confirmed_at`` is the visit whose assessment was PD; it differs from ``visit`` when an equivocal new
    lesion first seen at ``visit`` was confirmed at ``confirmed_at`` (section 4.3.3: "progression should be
    declared using the date of the initial scan").
    """

    visit: str
    day: int
    confirmed_at: str
    back_dated: bool
    reason: Reason


def progression(visits: Sequence[VisitResponse]) -> Progression | None:
    """The date of progression: the first PD visit, back-dated to the visit where an equivocal new lesion that
    this PD confirms was first seen (RECIST 1.1 section 4.3.3). None if the subject has not progressed."""
    visits = _checked(visits)
    first_pd = next((n for n, v in enumerate(visits) if v.response == O.PD), None)
    if first_pd is None:
        return None
    pd = visits[first_pd]
    confirmed = set(pd.new_lesion_ids) if pd.new_lesions == NewLesions.UNEQUIVOCAL else set()
    for earlier in visits[:first_pd]:
        seen = confirmed & set(earlier.new_lesion_ids)
        if earlier.new_lesions == NewLesions.EQUIVOCAL and seen:
            return Progression(
                visit=earlier.visit,
                day=earlier.day,
                confirmed_at=pd.visit,
                back_dated=True,
                reason=Reason(
                    gettext_noop(
                        "New lesion %(lesions)s, equivocal at %(equivocal)s, confirmed at %(confirmed)s: progression "
                        "dates from %(equivocal)s (day %(day)s)."
                    ),
                    lesions=", ".join(sorted(seen)),
                    equivocal=earlier.visit,
                    confirmed=pd.visit,
                    day=str(earlier.day),
                ),
            )
    return Progression(
        visit=pd.visit,
        day=pd.day,
        confirmed_at=pd.visit,
        back_dated=False,
        reason=Reason(gettext_noop("First progression at %(visit)s (day %(day)s)."), visit=pd.visit, day=str(pd.day)),
    )


# --- best overall response -----------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """A subject's endpoints from one series of assessments.

    ``best_response`` is the best overall response (CR, PR, SD, NON_CR_NON_PD for non-target-only disease, PD
    or NE). ``response_start`` is the first visit of the CR or PR that made the best response (the start of the
    duration of response; with confirmation, the visit confirmed later); None unless the best is CR or PR.
    ``progression`` is None while the subject has not progressed.
    """

    best_response: OverallResponse
    response_start: VisitResponse | None
    progression: Progression | None
    reasons: tuple[Reason, ...]  # English text with their templates and parameters (a page says them translated)


def _confirmed(
    visits: Sequence[VisitResponse], accepted: frozenset, gap: int
) -> tuple[VisitResponse, VisitResponse] | None:
    """The first visit with a response in ``accepted`` that a later one, ``gap`` days or more after it, confirms,
    with nothing but ``accepted`` responses or NE in between (a PR, SD, PR sequence is not a confirmed PR)."""
    for i, first in enumerate(visits):
        if first.response not in accepted:
            continue
        for later in visits[i + 1 :]:
            if later.response not in accepted and later.response != O.NE:
                break
            if later.response in accepted and later.day - first.day >= gap:
                return first, later
    return None


def subject_endpoints(
    visits: Sequence[VisitResponse], *, rules: EndpointRules = EndpointRules(), has_targets: bool = True
) -> Endpoints:
    """Every subject-level endpoint of one series of follow-ups (oldest first): the best overall response by
    RECIST 1.1 section 4.4, the visit the response starts at (duration of response) and the date of progression.

    Only assessments before the date of progression count (a back-dated progression makes the equivocal
    visit the progression visit). Without confirmation the best is CR, then PR, as recorded. With
    confirmation (Table 3) a CR needs a CR, and a PR a CR or PR, at least ``rules.confirmation_days`` later;
    a CR followed by PR is a confirmed PR (Table 3, footnote a). Otherwise stable disease (or, for
    non-target-only disease, ``has_targets=False``, non-CR/non-PD) needs a CR, PR, SD or non-CR/non-PD
    assessment on or after ``rules.sd_earliest_day``; if that minimum is missed the best response is PD when
    the subject progressed (PD after too short a stable disease) and NE otherwise. NE assessments never
    count but do not break a confirmation.
    """
    visits = _checked(visits)
    prog = progression(visits)
    before = [v for v in visits if prog is None or v.day < prog.day]
    reasons: list[Reason] = []
    if prog is not None:
        reasons.append(prog.reason)

    def result(best: OverallResponse, start: VisitResponse | None, why: Reason) -> Endpoints:
        reasons.append(why)
        return Endpoints(best_response=best, response_start=start, progression=prog, reasons=tuple(reasons))

    if rules.confirmation:
        cr = _confirmed(before, frozenset({O.CR}), rules.confirmation_days)
        if cr is not None:
            return result(
                O.CR,
                cr[0],
                Reason(
                    gettext_noop("CR at %(visit)s confirmed at %(confirmed)s: best response CR."),
                    visit=cr[0].visit,
                    confirmed=cr[1].visit,
                ),
            )
        if has_targets:
            pr = _confirmed(before, frozenset({O.CR, O.PR}), rules.confirmation_days)
            if pr is not None:
                return result(
                    O.PR,
                    pr[0],
                    Reason(
                        gettext_noop("Response at %(visit)s confirmed at %(confirmed)s: best response PR."),
                        visit=pr[0].visit,
                        confirmed=pr[1].visit,
                    ),
                )
        unconfirmed = [v.visit for v in before if v.response in (O.CR, O.PR)]
        if unconfirmed:
            reasons.append(
                Reason(
                    gettext_noop("Response at %(visits)s not confirmed at least %(days)s days later."),
                    visits=", ".join(unconfirmed),
                    days=str(rules.confirmation_days),
                )
            )
    else:
        for best in (O.CR, O.PR):
            first = next((v for v in before if v.response == best), None)
            if first is not None:
                return result(
                    best,
                    first,
                    Reason(
                        gettext_noop("%(response)s at %(visit)s (no confirmation required)."),
                        response=best.value,
                        visit=first.visit,
                    ),
                )

    stable = next((v for v in before if v.response in STABLE_OR_BETTER and v.day >= rules.sd_earliest_day), None)
    best_stable = O.SD if has_targets else O.NON_CR_NON_PD
    if stable is not None:
        return result(
            best_stable,
            None,
            Reason(
                gettext_noop(
                    "%(response)s at %(visit)s (day %(day)s) meets the stable disease minimum of day %(minimum)s: "
                    "best response %(best)s."
                ),
                response=stable.response.value,
                visit=stable.visit,
                day=str(stable.day),
                minimum=str(rules.sd_earliest_day),
                best=best_stable.value,
            ),
        )
    short = [v.visit for v in before if v.response in STABLE_OR_BETTER]
    if short:
        reasons.append(
            Reason(
                gettext_noop("Stable disease at %(visits)s is before day %(minimum)s, the minimum duration."),
                visits=", ".join(short),
                minimum=str(rules.sd_earliest_day),
            )
        )
    if prog is not None:
        return result(
            O.PD,
            None,
            Reason(gettext_noop("Progression before stable disease met its minimum duration: best response PD.")),
        )
    return result(O.NE, None, Reason(gettext_noop("No assessment qualifies and no progression: best response NE.")))


def best_overall_response(
    visits: Sequence[VisitResponse], *, rules: EndpointRules = EndpointRules(), has_targets: bool = True
) -> OverallResponse:
    """The best overall response alone; see :func:`subject_endpoints` for the rule."""
    return subject_endpoints(visits, rules=rules, has_targets=has_targets).best_response
