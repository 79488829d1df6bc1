"""The operators' admin: read-only views of the audit trail; people managed as usual, every change audited.

One-time codes and authenticators are the person's own: operators see devices and delete one that was lost
(the person enrols again at the next log-in), audited; they never make or change one, so they cannot choose
a code that signs in as someone else.
"""

from axes.admin import AccessAttemptAdmin as BaseAccessAttemptAdmin
from axes.admin import AccessFailureLogAdmin as BaseAccessFailureLogAdmin
from axes.admin import AccessLogAdmin as BaseAccessLogAdmin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.db import transaction
from django_otp.plugins.otp_static.admin import StaticDeviceAdmin as BaseStaticDeviceAdmin
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin as BaseTOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .models import AuditEvent, User

BY = "operator admin"


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_staff", "last_login"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password", "full_name"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "full_name", "password1", "password2"]})]
    # What the system records about a log-in and an account's start, not an operator's to set.
    readonly_fields = ["last_login", "date_joined"]

    def save_model(self, request, obj, form, change):
        """Save, and record who changed which of the account's fields, with the values before and after (never
        the password: it is not a field of the change form, and the add form's password fields are left out)."""
        super().save_model(request, obj, form, change)
        fields = sorted(name for name in form.changed_data if not name.startswith("password"))
        summary = {"email": obj.email, "fields": fields, "by": BY}
        if change:
            summary["changes"] = {
                name: [_shown(form.initial.get(name)), _shown(form.cleaned_data.get(name))] for name in fields
            }
        audit_record(actor=request.user, action="user.update" if change else "user.create", obj=obj, summary=summary)

    def user_change_password(self, request, id, form_url=""):
        """Django's set-password page, and an event naming the operator and the person when it changed (never
        the password or its hash)."""
        user = self.get_object(request, unquote(id))
        with transaction.atomic():
            response = super().user_change_password(request, id, form_url)
            if user is not None:
                after = User.objects.get(pk=user.pk)
                if after.password != user.password:
                    audit_record(
                        actor=request.user,
                        action="user.password_set",
                        obj=after,
                        summary={"email": after.email, "usable": after.has_usable_password(), "by": BY},
                    )
        return response

    def get_readonly_fields(self, request, obj=None):
        # A user ID is one person's for good (21 CFR 11.100(a)): changed, the old email would be free for a new
        # account that the trail and the signatures made under it would then name. A new address is a new account.
        return [*self.readonly_fields, "email"] if obj is not None else self.readonly_fields

    def has_delete_permission(self, request, obj=None):
        """Never: an account leaves by being deactivated, so its user ID is never issued again (11.100(a))."""
        return False


def _shown(value):
    """A field's value as the trail shows it: groups and permissions by name, sorted."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        return value
    return sorted(str(item) for item in value)


# --- two-factor devices: seen, and deleted when lost; never made or changed here ------------------------------


class _DeviceAdmin:
    """Mixed into django-otp's device admins."""

    kind = ""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def get_inline_instances(self, request, obj=None):
        return []  # a static device's codes are never shown or typed in here

    def delete_model(self, request, obj):
        with transaction.atomic():
            self._audit_delete(request.user, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for device in queryset.select_related("user"):
                self._audit_delete(request.user, device)
            super().delete_queryset(request, queryset)

    def _audit_delete(self, actor: User, device) -> None:
        """Recorded on the person whose device it was: the lost-device procedure, done by this operator."""
        audit_record(
            actor=actor,
            action="two_factor.device_delete",
            obj=device.user,
            summary={"email": device.user.email, "device": self.kind, "device_id": device.pk, "by": BY},
        )


admin.site.unregister(TOTPDevice)
admin.site.unregister(StaticDevice)


@admin.register(TOTPDevice)
class TOTPDeviceAdmin(_DeviceAdmin, BaseTOTPDeviceAdmin):
    kind = "authenticator"


@admin.register(StaticDevice)
class StaticDeviceAdmin(_DeviceAdmin, BaseStaticDeviceAdmin):
    kind = "recovery codes"


# --- lock-out records -----------------------------------------------------------------------------------------


admin.site.unregister(AccessAttempt)
admin.site.unregister(AccessLog)
admin.site.unregister(AccessFailureLog)


@admin.register(AccessAttempt)
class AccessAttemptAdmin(BaseAccessAttemptAdmin):
    """Failed log-ins counting towards a lock-out: deleting one unlocks the account and erases the failures it
    counted, so each deletion is recorded with what it held (never a password: axes keeps none)."""

    actions = []  # axes' own clean-up of expired attempts deletes unaudited; axes expires them by itself

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        with transaction.atomic():
            _audit_lockout_clear(request.user, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for attempt in queryset:
                _audit_lockout_clear(request.user, attempt)
            super().delete_queryset(request, queryset)


def _audit_lockout_clear(actor: User, attempt: AccessAttempt) -> None:
    audit_record(
        actor=actor,
        action="login.lockout_clear",
        obj=attempt,
        summary={
            "username": attempt.username,
            "ip_address": attempt.ip_address,
            "failures": attempt.failures_since_start,
            "attempt_time": attempt.attempt_time,
            "by": BY,
        },
    )


@admin.register(AccessLog)
class AccessLogAdmin(BaseAccessLogAdmin):
    """Successful log-ins: a record, read-only."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AccessFailureLog)
class AccessFailureLogAdmin(BaseAccessFailureLogAdmin):
    """Every failed log-in: a record, read-only."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- groups: what they grant, changed only on the record -------------------------------------------------------


def _group_state(group: Group) -> dict:
    return {"name": group.name, "permissions": sorted(str(p) for p in group.permissions.all())}


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin):
    """Django's groups, every change audited with the operator as actor: what a group grants, before and after."""

    def save_model(self, request, obj, form, change):
        obj._audit_before = _group_state(Group.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)  # the permissions are saved here
        group, before = form.instance, getattr(form.instance, "_audit_before", None)
        after = _group_state(group)
        summary = {**after, "by": BY}
        if before is not None:
            summary["changes"] = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit_record(
            actor=request.user, action="group.update" if change else "group.create", obj=group, summary=summary
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            audit_record(actor=request.user, action="group.delete", obj=obj, summary={**_group_state(obj), "by": BY})
            super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for group in queryset:
                audit_record(
                    actor=request.user, action="group.delete", obj=group, summary={**_group_state(group), "by": BY}
                )
            super().delete_queryset(request, queryset)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["seq", "at", "actor_label", "action", "object_type", "object_label", "trial_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["actor_label", "object_label"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
