from django.urls import path

from .stow import UploadStowApi

urlpatterns = [
    path("trials/<str:code>/uploads/<int:upload_id>/studies", UploadStowApi.as_view(), name="stow-upload"),
]
