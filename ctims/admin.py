"""The operators' admin: read-only views of the audit trail; people managed as usual, every change audited."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from .audit import audit_record
from .models import AuditEvent, User


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

    def save_model(self, request, obj, form, change):
        """Save, and record who changed which of the account's fields (names only: no password, no value)."""
        super().save_model(request, obj, form, change)
        fields = sorted(name for name in form.changed_data if not name.startswith("password"))
        audit_record(
            actor=request.user,
            action="user.update" if change else "user.create",
            obj=obj,
            summary={"email": obj.email, "fields": fields, "by": "operator admin"},
        )


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
