"""Key the audit chain: each event's hash becomes an HMAC-SHA256 under settings.AUDIT_HMAC_KEY.

Existing events were hashed with plain SHA-256, which anyone who can rewrite rows can recompute. They are
re-keyed here: the plain chain is verified first (the migration stops if it is broken: a tampered chain must
not be laundered into a keyed one), then every hash is recomputed as an HMAC in order, under the current key
id. The append-only trigger is set aside for the duration, as the table owner running migrations may.
"""

import hashlib
import hmac
import json
from datetime import UTC

from django.conf import settings
from django.db import migrations, models

GENESIS = "0" * 64


def _content(event) -> bytes:
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


def rekey(apps, schema_editor):
    AuditEvent = apps.get_model("ctims", "AuditEvent")
    AuditHead = apps.get_model("ctims", "AuditHead")
    events = list(AuditEvent.objects.order_by("seq"))
    if not events:
        return
    expected_prev = GENESIS
    for number, event in enumerate(events, start=1):
        if event.seq != number or event.prev_hash != expected_prev:
            raise RuntimeError(f"audit chain broken at event #{number}: not re-keyed; investigate first")
        if hashlib.sha256(_content(event)).hexdigest() != event.hash:
            raise RuntimeError(f"audit event #{event.seq} was changed: not re-keyed; investigate first")
        expected_prev = event.hash
    head = AuditHead.objects.filter(pk=1).first()
    if head is None or head.seq != len(events) or head.hash != expected_prev:
        raise RuntimeError("the audit head does not match the last event: not re-keyed; investigate first")

    key_id, key = settings.AUDIT_HMAC_KEY_ID, settings.AUDIT_HMAC_KEY.encode("utf-8")
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        schema_editor.execute("ALTER TABLE ctims_auditevent DISABLE TRIGGER ctims_audit_append_only")
    prev = GENESIS
    for event in events:
        event.prev_hash, event.key_id = prev, key_id
        event.hash = hmac.new(key, key_id.encode() + b"\n" + _content(event), hashlib.sha256).hexdigest()
        # Two passes cannot collide on the unique hash: an HMAC and a plain SHA-256 never coincide in practice.
        AuditEvent.objects.filter(pk=event.pk).update(prev_hash=event.prev_hash, key_id=key_id, hash=event.hash)
        prev = event.hash
    AuditHead.objects.filter(pk=1).update(hash=prev)
    if postgres:
        schema_editor.execute("ALTER TABLE ctims_auditevent ENABLE TRIGGER ctims_audit_append_only")


class Migration(migrations.Migration):
    dependencies = [("ctims", "0003_signature")]
    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="key_id",
            field=models.CharField(
                default="", help_text="The id of the HMAC key the hash was made with.", max_length=16
            ),
            preserve_default=False,
        ),
        migrations.RunPython(rekey, migrations.RunPython.noop),
    ]
