from django.urls import path

from . import api

urlpatterns = [
    path("trials/<str:code>/read-results/", api.ReadResultListApi.as_view(), name="api-read-results"),
    path("trials/<str:code>/read-results/<int:pk>/sr/", api.ReadResultSrApi.as_view(), name="api-read-result-sr"),
]
