"""What waits for a person, across the trials they are in: their inbox.

An entry is derived from the current state of the work, never stored: a query open at one of the coordinator's
sites, a query the site answered for the QC reviewers, a read or adjudication task of the reader's that is not
signed, a built transfer the sponsor has not downloaded yet. Acting on it (answering, closing, signing,
downloading) is what takes it out of the inbox; there is no separate "seen" mark to keep in step.

Each app adds the sources it knows (trials: the queries; reads: tasks and transfers) to `SOURCES` when it is
ready, so that this module imports nothing above `trials`. A source scopes itself to the actor exactly as the
page it links to does: what a person may not open never shows in their inbox, and a reader's entries carry
only what their worklist shows (case label, visit label, due date).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from django.db.models import CharField, Count, IntegerField, Max, Q, QuerySet, Value
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy

from .access import Actor
from .models import Query, Trial


@dataclass(frozen=True)
class Entry:
    """One thing waiting for the person, with the page where they act on it."""

    kind: str
    trial: str  # the trial's code
    title: str
    about: str  # what it concerns: a subject and visit, or a reader's case label and visit label
    url: str
    due: date | None = None
    overdue: bool = False
    since: datetime | None = None  # when it started waiting (left out where it could unblind)

    @property
    def label(self) -> str:
        return str(KIND_LABELS[self.kind])


@dataclass(frozen=True)
class Tally:
    """What a source counts for the person: the queryset of its entries, and which of them are past their due
    date (None for a kind that is never overdue). `inbox_counts` counts every source's in one query."""

    queryset: QuerySet
    overdue: Q | None = None


@dataclass(frozen=True)
class Source:
    """One kind of entry: what to count for an actor (`tally`), and the entries themselves."""

    kind: str
    tally: Callable[[Actor, date], Tally]
    entries: Callable[[Actor, date, Trial | None], list[Entry]]


KIND_LABELS = {
    "query": gettext_lazy("Query to answer"),
    "answered": gettext_lazy("Answered query to review"),
    "read": gettext_lazy("Read"),
    "adjudication": gettext_lazy("Adjudication"),
    "transfer": gettext_lazy("Transfer ready"),
}

SOURCES: list[Source] = []


def register(source: Source) -> None:
    """Add a source once (an app's `ready` may run more than once in tests)."""
    if all(s.kind != source.kind for s in SOURCES):
        SOURCES.append(source)


def tally_of(qs: QuerySet, *, overdue: Q | None = None) -> Tally:
    """What to count of a source: the rows of `qs`, and those of them matching `overdue`."""
    return Tally(queryset=qs, overdue=overdue)


# The top bar's links that only some people have, each with the rows that earn it (reads: "My reads", for anyone
# ever given a case to read). Asked in the same query as the inbox's counts, which the top bar shows beside them.
LINKS: dict[str, Callable[[Actor], QuerySet]] = {}


def register_link(name: str, rows: Callable[[Actor], QuerySet]) -> None:
    """Add a top bar link, shown to an actor for whom `rows` holds any row (once, as `register`)."""
    LINKS.setdefault(name, rows)


@dataclass(frozen=True)
class Counts:
    """The person's inbox in numbers: the top bar's badge and each kind's count; and the top bar's links they have."""

    total: int
    overdue: int
    by_kind: dict[str, int] = field(default_factory=dict)
    links: frozenset[str] = frozenset()


def inbox_counts(actor: Actor) -> Counts:
    """How much waits for the actor, every kind counted in one query (a UNION ALL of one row per kind), and which
    of the top bar's `LINKS` they have (a row each, in the same query).

    It runs on every page that shows the top bar; each kind's row counts exactly the rows its entries list.
    """
    if not actor.is_authenticated:
        return Counts(0, 0)
    today = timezone.localdate()
    parts = [_counted(source.kind, source.tally(actor, today)) for source in SOURCES]
    parts += _link_parts(actor)
    by_kind = dict.fromkeys((source.kind for source in SOURCES), 0)
    overdue = 0
    links = set()
    # An empty part (a queryset known to hold nothing, such as a token's tasks) is left out of the UNION by
    # Django; its kind keeps its 0.
    for row in _union(parts):
        kind = row["inbox_kind"]
        if kind.startswith(LINK_PREFIX):
            if row["total"]:
                links.add(kind.removeprefix(LINK_PREFIX))
            continue
        by_kind[kind] = row["total"]
        overdue += row["overdue"]
    return Counts(total=sum(by_kind.values()), overdue=overdue, by_kind=by_kind, links=frozenset(links))


def top_bar_links(actor: Actor) -> frozenset[str]:
    """Which of the top bar's `LINKS` the actor has, alone (one query): for a page that shows no inbox count."""
    if not actor.is_authenticated:
        return frozenset()
    return frozenset(row["inbox_kind"].removeprefix(LINK_PREFIX) for row in _union(_link_parts(actor)) if row["total"])


# A link's row in the UNION, told apart from the kinds' rows.
LINK_PREFIX = "link:"


def _link_parts(actor: Actor) -> list[QuerySet]:
    """A row (link, 1 or 0, 0) a link: whether the rows that earn it hold any (the first of them is counted)."""
    return [_counted(LINK_PREFIX + name, tally_of(rows(actor).order_by()[:1])) for name, rows in LINKS.items()]


def _union(parts: list[QuerySet]) -> list[dict]:
    return list(parts[0].union(*parts[1:], all=True)) if parts else []


def _counted(kind: str, tally: Tally) -> QuerySet:
    """One row, (kind, total, overdue), for the UNION of `inbox_counts`; no GROUP BY, so a kind with no
    entry is a row of zeros too."""
    qs = tally.queryset
    if qs.query.distinct or qs.query.is_sliced:  # as `.count()` would: through the rows it lists, not the joins
        # A sliced queryset keeps its order (its slice depends on it, and it cannot be reordered); one not sliced
        # needs none.
        qs = qs.model.objects.filter(pk__in=(qs if qs.query.is_sliced else qs.order_by()).values("pk"))
    overdue = Count("pk", filter=tally.overdue) if tally.overdue is not None else Value(0, output_field=IntegerField())
    return (
        qs.order_by()
        .values(inbox_kind=Value(kind, output_field=CharField()))
        .annotate(total=Count("pk"), overdue=overdue)
    )


def inbox_entries(actor: Actor, *, trial: Trial | None = None) -> list[Entry]:
    """What waits for the actor (in one trial, with `trial`): overdue first, then by due date, then oldest."""
    if not actor.is_authenticated:
        return []
    today = timezone.localdate()
    entries = [entry for source in SOURCES for entry in source.entries(actor, today, trial)]
    far = date.max
    return sorted(
        entries,
        key=lambda e: (not e.overdue, e.due or far, e.since.timestamp() if e.since else 0.0, e.kind, e.url),
    )


# --- the queries: the site's answer, the QC reviewer's review -------------------------------------------------


def queries_to_answer(actor: Actor) -> QuerySet[Query]:
    """Open queries at the sites where the actor uploads (answers): a coordinator's to answer."""
    return Query.objects.filter(
        state=Query.State.OPEN, timepoint__subject__site__in=actor.sites_anywhere("upload_to_site")
    )


def queries_to_review(actor: Actor) -> QuerySet[Query]:
    """Queries the site answered, in the trials where the actor reviews QC: the QC reviewer's to read and close."""
    return Query.objects.filter(state=Query.State.ANSWERED, timepoint__subject__trial__in=actor.trials("review_qc"))


def _query_entries(kind: str, qs: QuerySet[Query], today: date, trial: Trial | None, *, due_counts: bool) -> list:
    if trial is not None:
        qs = qs.filter(timepoint__subject__trial=trial)
    qs = qs.select_related("timepoint__subject__trial", "timepoint__visit").annotate(last_at=Max("messages__at"))
    out = []
    for query in qs:
        timepoint = query.timepoint
        code = timepoint.subject.trial.code
        out.append(
            Entry(
                kind=kind,
                trial=code,
                title=query.heading,
                about=f"{timepoint.subject.code} · {timepoint.visit.label}",
                url=reverse("query-detail", kwargs={"code": code, "pk": query.pk}),
                due=query.due_date,
                overdue=due_counts and query.due_date < today,
                # Since the core lab asked, or since the site's last answer.
                since=query.opened_at if kind == "query" else query.last_at,
            )
        )
    return out


register(
    Source(
        kind="query",
        tally=lambda actor, today: tally_of(queries_to_answer(actor), overdue=Q(due_date__lt=today)),
        entries=lambda actor, today, trial: _query_entries(
            "query", queries_to_answer(actor), today, trial, due_counts=True
        ),
    )
)
# The due date is the site's: an answered query is not overdue for the reviewer.
register(
    Source(
        kind="answered",
        tally=lambda actor, today: tally_of(queries_to_review(actor)),
        entries=lambda actor, today, trial: _query_entries(
            "answered", queries_to_review(actor), today, trial, due_counts=False
        ),
    )
)


def waiting_query_ids(actor: Actor, trial: Trial) -> set[int]:
    """The trial's queries that wait for the actor: to answer at their sites, or answered for their review."""
    ids = set(queries_to_answer(actor).filter(timepoint__subject__trial=trial).values_list("pk", flat=True))
    ids |= set(queries_to_review(actor).filter(timepoint__subject__trial=trial).values_list("pk", flat=True))
    return ids
