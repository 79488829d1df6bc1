from django.urls import include, path

from . import transfer_views, views

urlpatterns = [
    path("", views.worklist, name="read-worklist"),
    path("tasks/<int:pk>/", views.task_page, name="read-task"),
    path("tasks/<int:pk>/draft/", views.draft, name="read-draft"),
    path("tasks/<int:pk>/sign/", views.sign, name="read-sign"),
    path("tasks/<int:pk>/correct/", views.correct, name="read-correct"),
    path("tasks/<int:pk>/correct/discard/", views.correction_discard, name="read-correction-discard"),
    path("tasks/<int:pk>/adjudicate/", views.adjudicate, name="read-adjudicate"),
    path("trials/<str:code>/design/", views.design, name="read-design"),
    path("trials/<str:code>/adjudicators/", views.adjudicators_assign, name="read-adjudicators-assign"),
    path(
        "trials/<str:code>/assignments/<int:pk>/replace/",
        views.assignment_replace_view,
        name="read-assignment-replace",
    ),
    path("trials/<str:code>/results/", views.results_page, name="read-results"),
    path("trials/<str:code>/results.csv", views.results_csv, name="read-results-csv"),
    path("trials/<str:code>/lesions.csv", views.results_lesions_csv, name="read-lesions-csv"),
    path("trials/<str:code>/results/<int:pk>/sr.dcm", views.result_sr, name="read-result-sr"),
    path("trials/<str:code>/quality/", include("reads.quality.urls")),
    path("trials/<str:code>/transfers/", transfer_views.transfers_page, name="read-transfers"),
    path(
        "trials/<str:code>/transfers/settings/",
        transfer_views.delivery_settings,
        name="read-delivery-settings",
    ),
    path(
        "trials/<str:code>/transfers/<int:number>/download/",
        transfer_views.transfer_download,
        name="read-transfer-download",
    ),
]
