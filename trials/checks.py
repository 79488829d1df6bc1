"""System checks an operator sees in `manage.py check` (and at every start of runserver, migrate, a worker)."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Tags, Warning, register

from .deid import burned_in


@register(Tags.compatibility)
def ocr_models_check(app_configs, **kwargs) -> list[Warning]:
    """The server's OCR should read with the models the site's browser reads with (settings.OCR_MODELS_DIR)."""
    source, path = burned_in.models_in_use()
    if source == "bundle":
        return []
    if source == "system":
        return [
            Warning(
                f"The server's OCR reads burned-in text with the system's trained data ({path}), not the upload "
                "page's: the two may find different text in the same image.",
                hint=f"Build the front end (`make frontend`) or set OCR_MODELS_DIR to a folder holding the "
                f"bundle's kor.traineddata and eng.traineddata (now {settings.OCR_MODELS_DIR}).",
                id="trials.W001",
            )
        ]
    return [
        Warning(
            "The server has no Korean and English OCR models: every image that may carry text in its pixels "
            "is refused.",
            hint="Build the front end (`make frontend`), or install tesseract-ocr-kor and tesseract-ocr-eng.",
            id="trials.W002",
        )
    ]
