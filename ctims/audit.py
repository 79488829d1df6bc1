"""The audit trail: append an event in the caller's transaction, and verify the chain.

Each event stores the hash of the one before it and its own hash over its content, so a changed,
removed or inserted event breaks the chain at that point. On PostgreSQL a trigger also refuses
UPDATE and DELETE on the table (migration 0002).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone

from .models import AuditEvent, AuditHead, User

GENESIS = "0" * 64


def _canonical(value: Any) -> Any:
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True))


def event_hash(event: AuditEvent) -> str:
    """The hash of an event's content and of the event before it."""
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
    blob = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def audit_record(
    *,
    actor: User | None,
    action: str,
    obj: models.Model,
    trial_id: int | None = None,
    summary: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Call it inside the service's transaction so the change and its record commit together.

    The summary must hold no identifying patient value and no secret: it is shown to trial admins.
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
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            object_label=str(obj)[:200],
            trial_id=trial_id,
            summary=_canonical(summary or {}),
            prev_hash=head.hash,
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


def audit_verify(*, batch: int = 2000) -> ChainReport:
    """Walk every event in order and report the first one whose link or content does not hold."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    for event in AuditEvent.objects.order_by("seq").iterator(chunk_size=batch):
        if event.seq != expected_seq:
            return ChainReport(checked, expected_seq, f"event #{expected_seq} is missing")
        if event.prev_hash != expected_prev:
            return ChainReport(checked, event.seq, f"event #{event.seq} does not link to the event before it")
        if event_hash(event) != event.hash:
            return ChainReport(checked, event.seq, f"event #{event.seq} was changed after it was written")
        expected_prev, expected_seq, checked = event.hash, expected_seq + 1, checked + 1
    head = AuditHead.objects.filter(pk=1).first()
    if head is not None and (head.seq != checked or head.hash != expected_prev):
        return ChainReport(checked, checked + 1, f"events after #{checked} are missing")
    return ChainReport(checked)
