from django.urls import path

from . import browser_views, views

t = "trials/<str:code>/"
urlpatterns = [
    path("inbox/", views.InboxApi.as_view(), name="api-inbox"),
    path("trials/", views.TrialListApi.as_view(), name="api-trials"),
    path(t, views.TrialDetailApi.as_view(), name="api-trial"),
    path(t + "summary/", views.TrialSummaryApi.as_view(), name="api-trial-summary"),
    path(t + "sites/", views.SiteListApi.as_view(), name="api-sites"),
    path(t + "visits/", views.VisitListApi.as_view(), name="api-visits"),
    path(t + "visits/<str:visit_code>/protocols/", views.ProtocolListApi.as_view(), name="api-protocols"),
    path(t + "subjects/", views.SubjectListApi.as_view(), name="api-subjects"),
    path(t + "subjects/<str:subject_code>/", views.SubjectDetailApi.as_view(), name="api-subject"),
    path(t + "memberships/", views.MembershipListApi.as_view(), name="api-memberships"),
    path(t + "memberships/<int:pk>/", views.MembershipDetailApi.as_view(), name="api-membership"),
    path(t + "tokens/", views.TokenListApi.as_view(), name="api-tokens"),
    path(t + "tokens/<int:pk>/", views.TokenDetailApi.as_view(), name="api-token"),
    path(t + "audit/", views.AuditListApi.as_view(), name="api-audit"),
    path(
        t + "subjects/<str:subject_code>/visits/<str:visit_code>/uploads/",
        views.UploadOpenApi.as_view(),
        name="api-upload-open",
    ),
    path(t + "uploads/<int:pk>/", views.UploadDetailApi.as_view(), name="api-upload"),
    path(t + "uploads/<int:pk>/finish/", views.UploadFinishApi.as_view(), name="api-upload-finish"),
    path(t + "uploads/<int:pk>/subject-key/", browser_views.UploadSubjectKeyApi.as_view(), name="api-upload-key"),
    path(t + "uploads/<int:pk>/records/", browser_views.UploadBrowserRecordsApi.as_view(), name="api-upload-records"),
]
