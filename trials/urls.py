from django.urls import path

from . import views

urlpatterns = [
    path("new/", views.trial_create, name="trial-create"),
    path("invitations/<str:secret>/", views.invitation, name="invitation"),
    path("<str:code>/", views.trial_detail, name="trial-detail"),
    path("<str:code>/edit/", views.trial_edit, name="trial-edit"),
    path("<str:code>/sites/", views.trial_sites, name="trial-sites"),
    path("<str:code>/schedule/", views.trial_schedule, name="trial-schedule"),
    path("<str:code>/schedule/<str:visit_code>/protocols/", views.protocol_create, name="protocol-create"),
    path("<str:code>/subjects/", views.trial_subjects, name="trial-subjects"),
    path("<str:code>/subjects/<str:subject_code>/", views.subject_detail, name="subject-detail"),
    path(
        "<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/upload/",
        views.timepoint_upload,
        name="timepoint-upload",
    ),
    path(
        "<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/viewer/",
        views.timepoint_viewer,
        name="timepoint-viewer",
    ),
    path("<str:code>/qc/", views.qc_worklist, name="qc-worklist"),
    path("<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/qc/", views.qc_timepoint, name="qc-timepoint"),
    path(
        "<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/qc/series/<str:series_uid>/relabel/",
        views.qc_relabel,
        name="qc-relabel",
    ),
    path("<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/qc/fail/", views.qc_fail, name="qc-fail"),
    path("<str:code>/subjects/<str:subject_code>/visits/<str:visit_code>/qc/pass/", views.qc_pass, name="qc-pass"),
    path("<str:code>/queries/", views.query_list, name="query-list"),
    path("<str:code>/queries/<int:pk>/", views.query_detail, name="query-detail"),
    path("<str:code>/queries/<int:pk>/answer/", views.query_answer, name="query-answer"),
    path("<str:code>/queries/<int:pk>/close/", views.query_close, name="query-close"),
    path("<str:code>/people/", views.trial_people, name="trial-people"),
    path("<str:code>/people/<int:pk>/revoke/", views.membership_revoke, name="membership-revoke"),
    path("<str:code>/people/invitations/<int:pk>/withdraw/", views.invitation_withdraw, name="invitation-withdraw"),
    path("<str:code>/tokens/", views.trial_tokens, name="trial-tokens"),
    path("<str:code>/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("<str:code>/audit/", views.trial_audit, name="trial-audit"),
    path("<str:code>/audit/export.csv", views.trial_audit_export, name="trial-audit-export"),
]
