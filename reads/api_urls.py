from django.urls import path

from . import api

urlpatterns = [
    path("trials/<str:code>/read-results/", api.ReadResultListApi.as_view(), name="api-read-results"),
    path("trials/<str:code>/read-results/<int:pk>/sr/", api.ReadResultSrApi.as_view(), name="api-read-result-sr"),
    path("trials/<str:code>/transfers/", api.TransferListApi.as_view(), name="api-transfers"),
    path("trials/<str:code>/transfers/<int:number>/", api.TransferDetailApi.as_view(), name="api-transfer"),
    path(
        "trials/<str:code>/transfers/<int:number>/download/",
        api.TransferDownloadApi.as_view(),
        name="api-transfer-download",
    ),
]
