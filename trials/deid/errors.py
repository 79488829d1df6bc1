"""Why an instance was not accepted, in words a site coordinator can act on."""

from __future__ import annotations


class DeidRejected(Exception):
    """An instance that cannot be de-identified safely.

    `code` is short and stable for machines; `reason` is a sentence for people. Neither ever holds a value
    read from the instance's identifying attributes, so both can be logged and shown as they are.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"DeidRejected({self.code!r}, {self.reason!r})"
