from django.urls import path

from . import views

urlpatterns = [
    path("new/", views.trial_create, name="trial-create"),
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
    path("<str:code>/people/", views.trial_people, name="trial-people"),
    path("<str:code>/people/<int:pk>/revoke/", views.membership_revoke, name="membership-revoke"),
    path("<str:code>/tokens/", views.trial_tokens, name="trial-tokens"),
    path("<str:code>/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("<str:code>/audit/", views.trial_audit, name="trial-audit"),
]
