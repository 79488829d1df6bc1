"""Why an instance was not accepted, in words a site coordinator can act on."""

from __future__ import annotations


def gettext_noop(message: str) -> str:
    """Marks a reason's template for the translation catalogue (makemessages); this library stays Django-free."""
    return message


class DeidRejected(Exception):
    """An instance that cannot be de-identified safely.

    `code` is short and stable for machines; `reason` is a sentence for people, in English, made from `template`
    (the translation catalogue's msgid) and `params`, which a page uses to say it in its reader's language.
    Neither ever holds a value read from the instance's identifying attributes, so all can be logged and shown.
    """

    def __init__(self, code: str, template: str, **params: str) -> None:
        reason = template % params if params else template
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.template = getattr(template, "template", template)  # a ctims.i18n.Text keeps its own
        self.params = getattr(template, "params", params)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"DeidRejected({self.code!r}, {self.reason!r})"
