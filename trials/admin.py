"""Operators' admin for trials. The pseudonym key is not a field here: it is never shown.

What the services govern changes only through them: a trial's fields through trial_update (its rules and its
audit event), everything else is read-only here.
"""

from django.contrib import admin

from . import services
from .models import (
    ApiToken,
    ImagingProtocol,
    Instance,
    Invitation,
    Membership,
    QCFinding,
    Query,
    Series,
    Site,
    Study,
    Subject,
    Timepoint,
    Trial,
    Upload,
    UploadItem,
    Visit,
)


@admin.register(Trial)
class TrialAdmin(admin.ModelAdmin):
    list_display = ["code", "title", "sponsor", "status"]
    fields = [
        "code",
        "title",
        "sponsor",
        "protocol_number",
        "status",
        "subject_code_pattern",
        "deid_retain_dates_modified",
        "deid_clean_descriptors",
        "deid_retain_device_identity",
        "deid_retain_patient_characteristics",
        "deid_private_safelist",
        "deid_burned_in_text",
        "deid_kept_text_attributes",
    ]
    readonly_fields = ["code"]

    def get_readonly_fields(self, request, obj=None):
        """The service's rules, shown as read-only fields: options fixed once images are stored, the code
        pattern once subjects are enrolled."""
        fixed = ["code"]
        if obj is not None and obj.subjects.exists():
            fixed.append("subject_code_pattern")
        if obj is not None and obj.studies.exists():
            fixed += list(services.DEID_OPTIONS)
        return fixed

    def save_model(self, request, obj, form, change):
        """Through trial_update: the same checks as the pages and the API, and the audit event."""
        changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.TRIAL_EDITABLE}
        services.trial_update(actor=request.user, trial=Trial.objects.get(pk=obj.pk), **changes)

    def has_add_permission(self, request):
        return False  # trials are created through trial_create, which issues the key and the admin role

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Site)
class SiteAdmin(ReadOnlyAdmin):
    list_display = ["trial", "code", "name", "country"]


@admin.register(Visit)
class VisitAdmin(ReadOnlyAdmin):
    list_display = ["trial", "order", "code", "label", "target_day", "window_before", "window_after"]


@admin.register(ImagingProtocol)
class ImagingProtocolAdmin(ReadOnlyAdmin):
    list_display = ["visit", "modality", "body_region", "contrast", "max_slice_thickness_mm"]


@admin.register(Subject)
class SubjectAdmin(ReadOnlyAdmin):
    list_display = ["trial", "code", "site", "enrolled_at"]
    exclude = ["source_patient_hash"]


@admin.register(Timepoint)
class TimepointAdmin(ReadOnlyAdmin):
    list_display = ["subject", "visit", "state", "updated_at"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["trial", "user", "role"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "trial", "role", "created_at", "expires_at", "accepted_at"]
    exclude = ["secret_hash"]


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "membership", "created_at", "revoked_at"]
    exclude = ["key_hash"]


@admin.register(Upload)
class UploadAdmin(ReadOnlyAdmin):
    list_display = ["pk", "timepoint", "created_by", "state", "created_at", "closed_at"]
    list_filter = ["state"]


@admin.register(UploadItem)
class UploadItemAdmin(ReadOnlyAdmin):
    list_display = ["upload", "sha256", "size", "state", "code", "processed_at"]
    list_filter = ["state", "code"]


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ["study_instance_uid", "subject", "timepoint", "study_date"]


@admin.register(Series)
class SeriesAdmin(ReadOnlyAdmin):
    list_display = ["series_instance_uid", "study", "modality", "series_number", "description", "instance_count"]


@admin.register(Instance)
class InstanceAdmin(ReadOnlyAdmin):
    list_display = ["sop_instance_uid", "series", "instance_number", "transfer_syntax_uid", "size"]
    exclude = ["metadata"]


@admin.register(QCFinding)
class QCFindingAdmin(ReadOnlyAdmin):
    list_display = ["timepoint", "series", "code", "severity", "created_at"]
    list_filter = ["severity", "code"]


@admin.register(Query)
class QueryAdmin(ReadOnlyAdmin):
    list_display = ["pk", "timepoint", "title", "state", "due_date", "opened_at"]
    list_filter = ["state"]
