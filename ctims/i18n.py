"""Generated text that is stored in one language and shown in its reader's: keep its template and parameters.

A rejection reason is written by a worker, in no one's language, and read later by a coordinator in Korean and a
QC reviewer in English. It is stored as English text (for logs, the API's default and exports) together with
its template, which is the translation catalogue's msgid, and its parameters (codes, numbers, names of DICOM
attributes: never words to translate). A page says it in its reader's language with `text_display`.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext
from django.utils.translation import gettext_noop as gettext_noop  # re-exported: marks a template for the catalogue


class Text(str):
    """English text (a str) that remembers its template (a msgid) and its parameters."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Text:
        text = super().__new__(cls, template % params if params else template)
        text.template, text.params = template, params
        return text

    def as_json(self) -> dict[str, Any]:
        return {"template": self.template, "params": self.params}


def text_json(text: str) -> dict[str, Any]:
    """What to store beside a text so it can be shown in any language: empty for plain text."""
    return text.as_json() if isinstance(text, Text) else {}


def text_display(stored: dict[str, Any] | None, fallback: str) -> str:
    """The text in the active language: from its template and parameters when they were kept, else the stored
    text itself (translated if it is one of the catalogue's fixed sentences)."""
    if stored and stored.get("template"):
        params = stored.get("params") or {}
        template = gettext(stored["template"])
        try:
            return template % params if params else template
        except (KeyError, TypeError, ValueError):  # a translation that does not fit its parameters
            return stored["template"] % params if params else stored["template"]
    return gettext(fallback) if fallback else fallback
