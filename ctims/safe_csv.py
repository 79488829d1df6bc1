"""CSV for people to open in a spreadsheet, with no cell the spreadsheet would run as a formula.

Every CSV CTIMS writes (downloads, transfer tables, the audit export) goes through these writers. A text cell
that starts like a formula (OWASP "CSV injection": = + - @, tab, carriage return) gets a leading apostrophe,
which spreadsheets take as "this is text"; a plain number such as -12.5 is left as it is, since a spreadsheet
reads it as that number and runs nothing. Plain Python, no Django: the reader quality report uses it too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """The value as it may go into a cell: numbers as they are, text that a spreadsheet would run made inert."""
    if value is None or isinstance(value, bool | int | float | Decimal):
        return value
    text = str(value)
    if text.startswith(FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class Writer:
    """`csv.writer` whose every cell goes through `cell`."""

    def __init__(self, out, **fmtparams):
        self._writer = csv.writer(out, **fmtparams)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class DictWriter(csv.DictWriter):
    """`csv.DictWriter` whose every cell goes through `cell`."""

    def writerow(self, rowdict: dict):
        return super().writerow({key: cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[dict]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
