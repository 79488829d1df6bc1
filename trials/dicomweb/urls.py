from django.urls import path

from .scopes import trial_scope
from .stow import UploadStowApi
from .views import dicomweb_urls

urlpatterns = [
    path("trials/<str:code>/uploads/<int:upload_id>/studies", UploadStowApi.as_view(), name="stow-upload"),
    # PS3.18 10.5.1.1's Study resource: only the instances of that study are stored.
    path(
        "trials/<str:code>/uploads/<int:upload_id>/studies/<str:study>",
        UploadStowApi.as_view(),
        name="stow-upload-study",
    ),
    *dicomweb_urls("trials/<str:scope_code>/", trial_scope, "trial"),
]
