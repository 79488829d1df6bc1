"""Electronic signatures (21 CFR Part 11 §11.50, §11.70, §11.200): the signer re-enters their password,
states the meaning, and the signature binds to a hash of exactly what was signed.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .audit import audit_record
from .exceptions import NotPermitted, ValidationFailed
from .models import Signature, User


def content_hash(content: Any) -> str:
    """SHA-256 of the content's canonical JSON: the same content always hashes the same."""
    blob = json.dumps(content, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def signature_create(
    *,
    user: User,
    password: str,
    meaning: str,
    obj: models.Model,
    content: Any,
    trial_id: int | None = None,
    request=None,
) -> Signature:
    """Sign `content` as `user` after checking their password again; the signature and its audit event commit together.

    A wrong password is refused and changes nothing.
    """
    if not meaning.strip():
        raise ValidationFailed(_("State what the signature means."), fields={"meaning": [_("Required.")]})
    if not password or not user.is_active or not user.check_password(password):
        raise NotPermitted(_("The password is not correct; nothing was signed."), code="signature_refused")
    with transaction.atomic():
        signature = Signature.objects.create(
            signer=user,
            signer_name=user.full_name or user.email,
            at=timezone.now(),
            meaning=meaning.strip(),
            object_type=obj._meta.label_lower,
            object_id=str(obj.pk),
            content_hash=content_hash(content),
        )
        audit_record(
            actor=user,
            action="signature.create",
            obj=signature,
            trial_id=trial_id,
            summary={
                "meaning": signature.meaning,
                "object": f"{signature.object_type}:{signature.object_id}",
                "content_hash": signature.content_hash,
            },
        )
    return signature


def signature_verify(signature: Signature, content: Any) -> bool:
    """True if `content` is exactly what was signed."""
    return signature.content_hash == content_hash(content)
