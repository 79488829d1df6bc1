"""The audit trail: append an event in the caller's transaction, and verify the chain.

Each event stores the hash of the one before it and its own hash over its content, so a changed,
removed or inserted event breaks the chain at that point. The hash is an HMAC-SHA256 with a key kept
outside the database (settings.AUDIT_HMAC_KEY): someone who can rewrite rows (a superuser who disables the
trigger) cannot recompute the hashes of what they changed. Each event records the id of the key it was
made with, so keys can be rotated (older ones stay in AUDIT_HMAC_OLD_KEYS). Chains made before keys were
used were re-keyed by migration 0004 after their plain hashes were verified. On PostgreSQL a trigger also
refuses UPDATE and DELETE on the table (migration 0002).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from . import safe_csv
from .models import AuditEvent, AuditHead, User

GENESIS = "0" * 64


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True))


class UnknownAuditKey(LookupError):
    """An event names a key this installation does not hold."""


def audit_key(key_id: str) -> bytes:
    """The HMAC key with this id: the current one or one kept for verifying older events."""
    if key_id == settings.AUDIT_HMAC_KEY_ID:
        return settings.AUDIT_HMAC_KEY.encode("utf-8")
    if key_id in settings.AUDIT_HMAC_OLD_KEYS:
        return settings.AUDIT_HMAC_OLD_KEYS[key_id].encode("utf-8")
    raise UnknownAuditKey(key_id)


def event_content(event: AuditEvent) -> bytes:
    """The canonical bytes of an event's content and of the link to the event before it."""
    content = {
        "seq": event.seq,
        "at": event.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": event.actor_id,
        "actor_label": event.actor_label,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_label": event.object_label,
        "trial": event.trial_id,
        "summary": event.summary,
        "prev": event.prev_hash,
    }
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def event_hash(event: AuditEvent) -> str:
    """The keyed hash (HMAC-SHA256 under the event's key) of its content and of the event before it."""
    return hmac.new(
        audit_key(event.key_id), b"%s\n" % event.key_id.encode() + event_content(event), hashlib.sha256
    ).hexdigest()


def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: models.Model | None,
    trial_id: int | None = None,
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the service's transaction so the change and its record commit together.

    The summary must hold no identifying patient value and no secret: it is shown to trial admins. `obj` is
    None only where nothing of ours was touched (a failed log-in for an address no account has).
    """
    with transaction.atomic():
        head, _ = AuditHead.objects.select_for_update().get_or_create(pk=1)
        # Truncated to microseconds and UTC so the stored value hashes the same after a database round trip.
        event = AuditEvent(
            seq=head.seq + 1,
            at=timezone.now().astimezone(UTC),
            actor=actor,
            actor_label=actor.email if actor is not None else "system",
            action=action,
            object_type=obj._meta.label_lower if obj is not None else "",
            object_id=str(obj.pk) if obj is not None else "",
            object_label=str(obj)[:200] if obj is not None else "",
            trial_id=trial_id,
            summary=_canonical(summary or {}),
            prev_hash=head.hash,
            key_id=settings.AUDIT_HMAC_KEY_ID,
        )
        event.hash = event_hash(event)
        event.save(force_insert=True)
        head.seq, head.hash = event.seq, event.hash
        head.save(update_fields=["seq", "hash"])
    return event


@dataclass(frozen=True)
class ChainReport:
    """The outcome of walking the chain: how many events were checked and the first broken link, if any."""

    checked: int
    broken_seq: int | None = None
    problem: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_seq is None

    @property
    def key_hint(self) -> str:
        """When not one event verifies, far more often the key is another than the first event was rewritten."""
        if self.intact or self.checked:
            return ""
        return " (no event verifies: is AUDIT_HMAC_KEY, with AUDIT_HMAC_OLD_KEYS, the key these events were made with?)"


def audit_verify(*, batch: int = 2000) -> ChainReport:
    """Walk every event in order and report the first one whose link or content does not hold."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch):
        if event.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"event #{expected_seq} is missing")
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.seq, f"event #{event.seq} does not link to the event before it")
        try:
            expected = event_hash(event)
        except UnknownAuditKey:
            return ChainReport(checked, event.seq, f"event #{event.seq} names a key this installation does not hold")
        if not hmac.compare_digest(expected, event.hash):
            return ChainReport(checked, event.seq, f"event #{event.seq} was changed after it was written")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != checked or head.hash != expected_prev):
        return ChainReport(checked, checked + 1, f"events after #{checked} are missing")
    return ChainReport(checked)


# --- export ---------------------------------------------------------------------------------------------------

EXPORT_COLUMNS = [
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "object_label",
    "summary",
    "prev_hash",
    "hash",
    "key_id",
]


def _chain_text(report: ChainReport) -> str:
    if report.intact:
        return f"intact ({report.checked} events checked)"
    return f"BROKEN at event #{report.broken_seq}: {report.problem} ({report.checked} events checked before it)"


def audit_export(
    *,
    actor: User,
    obj: models.Model,
    trial_id: int | None,
    events: models.QuerySet[AuditEvent],
    filters: dict[str, str],
) -> Iterator[str]:
    """Record an export of `events` (already filtered) and return its CSV lines.

    The chain is verified first (the whole chain: a break anywhere makes every export doubtful) and the result
    heads the file, with the filters, as '#' lines; the events follow in order, up to the export's own event.
    """
    report = audit_verify()
    export = audit_record(
        actor=actor,
        action="audit.export",
        obj=obj,
        trial_id=trial_id,
        summary={"filters": filters, "events": events.count(), "chain_intact": report.intact},
    )
    head = [
        f"# Audit trail: {obj}",
        f"# Exported: {export.at.isoformat()} by {export.actor_label} (event #{export.seq})",
        "# Filters: " + ("; ".join(f"{key}={value}" for key, value in filters.items()) or "none"),
        f"# Chain verification: {_chain_text(report)}",
    ]
    return _export_lines(head, events.filter(seq__lt=export.seq).order_by("seq"))


def _export_lines(head: list[str], events: models.QuerySet[AuditEvent]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = safe_csv.Writer(buffer)  # no cell a spreadsheet would run as a formula

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    # Each note is one cell (quoted if it holds a comma): a filter typed into the query string cannot start a
    # cell of its own that a spreadsheet would run.
    for line in head:
        writer.writerow([line.replace("\n", " ").replace("\r", " ")])
    writer.writerow(EXPORT_COLUMNS)
    yield flush()
    for event in events.iterator(chunk_size=2000):
        summary = json.dumps(event.summary, sort_keys=True, ensure_ascii=False)
        row = [event.seq, event.at.astimezone(UTC).isoformat(), event.actor_label, event.action, event.object_type]
        row += [event.object_id, event.object_label, summary, event.prev_hash, event.hash, event.key_id]
        writer.writerow(row)
        yield flush()
