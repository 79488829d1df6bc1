from django.urls import path

from . import views

urlpatterns = [
    path("", views.quality_page, name="read-quality"),
    path("<slug:name>.csv", views.quality_csv, name="read-quality-csv"),
    path("<slug:name>.<str:fmt>", views.quality_chart, name="read-quality-chart"),
]
