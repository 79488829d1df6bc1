from django.urls import path

from .scopes import trial_scope
from .stow import UploadStowApi
from .views import dicomweb_urls

urlpatterns = [
    path("trials/<str:code>/uploads/<int:upload_id>/studies", UploadStowApi.as_view(), name="stow-upload"),
    *dicomweb_urls("trials/<str:scope_code>/", trial_scope, "trial"),
]
