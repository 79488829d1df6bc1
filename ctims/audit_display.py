"""The audit trail in the reader's language: what an event's codes mean, put into words at display time.

An event's stored content (action, object type and label, summary keys and values) is hashed into the chain and
never changes, so it stays in the codes it was written with: "qc.fail", {"due": "2026-12-20"}. Each app says what
its codes mean in an `audit_labels` module (ACTIONS, KEYS, VALUES: lazily translated strings; DATA_LABELS: the
object types whose stored label is their own data, a code or a name); a summary key that is a field of the
event's object reads as that field's translated name, a value of a field with choices as the choice's label. A code nobody describes is shown as it is, so an event of an older release is still shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import import_module
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.utils.formats import localize
from django.utils.functional import Promise
from django.utils.module_loading import module_has_submodule
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from .models import AuditEvent

ACTIONS = {
    "audit.export": pgettext_lazy("audit action", "Audit trail exported"),
    "signature.create": pgettext_lazy("audit action", "Signed"),
    "signature.refuse": pgettext_lazy("audit action", "Signature refused (wrong user ID, password or code)"),
    "two_factor.enrol": pgettext_lazy("audit action", "Authenticator app enrolled"),
    "two_factor.recovery_code_used": pgettext_lazy("audit action", "Recovery code used"),
    "user.create": pgettext_lazy("audit action", "Account created"),
    "user.update": pgettext_lazy("audit action", "Account changed"),
    "login": pgettext_lazy("audit action", "Logged in"),
    "logout": pgettext_lazy("audit action", "Logged out"),
    "login.fail": pgettext_lazy("audit action", "Log-in refused"),
    "login.lockout": pgettext_lazy("audit action", "Locked out after failed log-ins"),
    "login.lockout_clear": pgettext_lazy("audit action", "Lock-out cleared"),
    "user.password_change": pgettext_lazy("audit action", "Password changed"),
    "user.password_reset_request": pgettext_lazy("audit action", "Password reset requested"),
    "user.password_reset": pgettext_lazy("audit action", "Password reset"),
    "user.password_set": pgettext_lazy("audit action", "Password set by an operator"),
    "user.delete": pgettext_lazy("audit action", "Account deleted"),
    "two_factor.device_delete": pgettext_lazy("audit action", "Two-factor device deleted"),
    "two_factor.recovery_codes_new": pgettext_lazy("audit action", "New recovery codes issued"),
    "group.create": pgettext_lazy("audit action", "Group created"),
    "group.update": pgettext_lazy("audit action", "Group changed"),
    "group.delete": pgettext_lazy("audit action", "Group deleted"),
}
KEYS = {
    "meaning": pgettext_lazy("audit key", "meaning"),
    "object": pgettext_lazy("audit key", "object"),
    "content_hash": pgettext_lazy("audit key", "hash of the signed content"),
    "email": pgettext_lazy("audit key", "email"),
    "left": pgettext_lazy("audit key", "recovery codes left"),
    "fields": pgettext_lazy("audit key", "fields"),
    "by": pgettext_lazy("audit key", "by"),
    "filters": pgettext_lazy("audit key", "filters"),
    "events": pgettext_lazy("audit key", "events"),
    "chain_intact": pgettext_lazy("audit key", "chain intact"),
    "changes": pgettext_lazy("audit key", "changes"),
    "ip_address": pgettext_lazy("audit key", "client address"),
    "reason": pgettext_lazy("audit key", "reason"),
    "username": pgettext_lazy("audit key", "email tried"),
    "failures": pgettext_lazy("audit key", "failed log-ins"),
    "attempt_time": pgettext_lazy("audit key", "last attempt"),
    "device": pgettext_lazy("audit key", "device"),
    "device_id": pgettext_lazy("audit key", "device id"),
    "usable": pgettext_lazy("audit key", "password usable"),
    "codes": pgettext_lazy("audit key", "codes issued"),
    "sent": pgettext_lazy("audit key", "email sent"),
}
# Values written as words in English (a reason, who did it): gettext_noop'd where they are written.
VALUES = {
    "by": {
        "invitation": pgettext_lazy("audit value", "invitation"),
        "operator admin": pgettext_lazy("audit value", "operator admin"),
    },
    "reason": {
        "password": pgettext_lazy("audit value", "wrong password"),
        "one-time code": pgettext_lazy("audit value", "wrong one-time code"),
        "user ID": pgettext_lazy("audit value", "not the signer's user ID"),
        "locked out": pgettext_lazy("audit value", "account locked out (password not checked)"),
    },
    "device": {
        "authenticator": pgettext_lazy("audit value", "authenticator app"),
        "recovery codes": pgettext_lazy("audit value", "recovery codes"),
    },
}
OBJECT_TYPES = {
    "ctims.user": pgettext_lazy("audit object", "account"),
    "ctims.signature": pgettext_lazy("audit object", "signature"),
    "axes.accessattempt": pgettext_lazy("audit object", "failed log-ins of an address"),
}
DATA_LABELS = {"ctims.user"}
SYSTEM = "system"


@dataclass(frozen=True)
class _Registry:
    actions: dict
    keys: dict
    values: dict
    object_types: dict
    data_labels: frozenset


@cache
def _registry() -> _Registry:
    actions, keys, values = dict(ACTIONS), dict(KEYS), {k: dict(v) for k, v in VALUES.items()}
    object_types, data_labels = dict(OBJECT_TYPES), set(DATA_LABELS)
    for config in apps.get_app_configs():
        if not module_has_submodule(config.module, "audit_labels"):
            continue
        module = import_module(f"{config.name}.audit_labels")
        actions.update(getattr(module, "ACTIONS", {}))
        keys.update(getattr(module, "KEYS", {}))
        object_types.update(getattr(module, "OBJECT_TYPES", {}))
        data_labels.update(getattr(module, "DATA_LABELS", ()))
        for key, mapping in getattr(module, "VALUES", {}).items():
            values.setdefault(key, {}).update(mapping)
    return _Registry(actions, keys, values, object_types, frozenset(data_labels))


def _model(object_type: str) -> type[models.Model] | None:
    try:
        return apps.get_model(object_type)
    except (LookupError, ValueError):
        return None


def _field(model: type[models.Model] | None, name: str) -> models.Field | None:
    if model is None:
        return None
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.Field) else None


def action_label(action: str) -> str:
    """What an event did, in words ("QC failed: query sent"); an unknown action as its code."""
    label = _registry().actions.get(action)
    return str(label) if label is not None else action


def object_type_label(object_type: str) -> str:
    """The kind of object ("visit of a subject"); an unknown one as its code."""
    label = _registry().object_types.get(object_type)
    if label is not None:
        return str(label)
    model = _model(object_type)
    if model is not None and isinstance(model._meta.verbose_name, Promise):
        return str(model._meta.verbose_name)
    return object_type


def key_label(key: str, object_type: str = "") -> str:
    """A summary key in words: the app's label for it, or the name of the object's field it is."""
    label = _registry().keys.get(key)
    if label is not None:
        return str(label)
    field = _field(_model(object_type), key)
    if field is not None and isinstance(field.verbose_name, Promise):  # a name given for translation
        return str(field.verbose_name)
    return key


def value_text(key: str, value: Any, object_type: str = "") -> str:
    """A summary value for people: a coded word in words, yes/no, lists and changes spelled out."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, list):
        return ", ".join(value_text(key, v, object_type) for v in value) if value else "—"
    if isinstance(value, dict):
        return "; ".join(f"{key_label(k, object_type)}: {value_text(k, v, object_type)}" for k, v in value.items())
    if isinstance(value, str):
        label = _registry().values.get(key, {}).get(value)
        if label is not None:
            return str(label)
        field = _field(_model(object_type), key)
        if field is not None and field.choices:
            return str(dict(field.flatchoices).get(value, value))
    return str(localize(value))


def summary_items(event: AuditEvent) -> list[tuple[str, str]]:
    """An event's summary as (key, value) pairs in words; a change list becomes 'field: before → after'."""
    summary, kind = event.summary, event.object_type
    if not isinstance(summary, dict):
        return [("", value_text("", summary, kind))]
    items: list[tuple[str, str]] = []
    for key, value in summary.items():
        if key == "changes" and isinstance(value, dict):
            for name, change in value.items():
                if isinstance(change, list) and len(change) == 2:
                    before, after = (value_text(name, v, kind) for v in change)
                    items.append((key_label(name, kind), f"{before} → {after}"))
                else:
                    items.append((key_label(name, kind), value_text(name, change, kind)))
        else:
            items.append((key_label(key, kind), value_text(key, value, kind)))
    return items


@dataclass(frozen=True)
class EventView:
    """One audit event as the audit page shows it; `event` keeps the stored content (title attributes, CSV)."""

    event: AuditEvent
    action: str
    object_type: str
    object_label: str
    actor: str
    summary: list[tuple[str, str]]


def event_view(event: AuditEvent) -> EventView:
    """The event in the reader's language. The stored object label was written in English for some objects
    ("upload 5 of ..."): those whose label is their own data (a code, a name) keep it, the others read as their
    kind and number."""
    kind = object_type_label(event.object_type)
    return EventView(
        event=event,
        action=action_label(event.action),
        object_type=kind,
        object_label=event.object_label
        if event.object_type in _registry().data_labels
        else f"{kind} {event.object_id}",
        actor=_("system") if event.actor_id is None and event.actor_label == SYSTEM else event.actor_label,
        summary=summary_items(event),
    )
