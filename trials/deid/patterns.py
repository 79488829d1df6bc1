"""Identifier patterns found in free text whoever they belong to: what no kept text value may carry.

Korea's Personal Information Protection Act and the health data pseudonymisation guideline forbid resident
registration numbers, phone numbers and e-mail addresses in pseudonymised data, so these are looked for in
every kept text value (and, for those three, in the output bytes by the verifier) rather than only the
input's own identifying values. Each detector has a reason, the words a removal is recorded with.

The detectors look for the shape of an identifier, never for medical words: "CT CHEST W CONTRAST", "AX 5mm",
"120 kV", "0.625 mm" and "B30f" match none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

RRN = "resident registration number"
PHONE = "phone number"
EMAIL = "e-mail address"
URL = "URL"
ADDRESS = "street address"
LONG_NUMBER = "long number"
DATE = "date"

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_MONTH_NAMES = "january|february|march|april|june|july|august|september|october|november|december|" + _MONTHS
# Hangul syllables, and the suffixes of Korean address parts: 특별시/광역시/시 (city), 도 (province),
# 군/구 (county, district), 읍/면/동/리 (town, township, neighbourhood, village), 로/길 (road, street), 가 (block).
_HANGUL = "\uac00-\ud7a3"
_ADDRESS_PART = rf"[{_HANGUL}0-9]*[{_HANGUL}0-9](?:시|도|군|구|읍|면|동|리|로|길|가)"
# An address names places of at least two levels (서울시 종로구, 종로구 청운동): two words of one level
# ("밀도 각도": density, angle; "자동 이동") are ordinary words that happen to end like place names.
_ADDRESS_LEVELS = {"시": 1, "도": 1, "군": 2, "구": 2, "읍": 3, "면": 3, "동": 3, "리": 3, "로": 4, "길": 4, "가": 4}
_BUILDING = r"(?:\s*\d+(?:-\d+)?(?:번지|번길|호|층)?)?"

_TEXT_DETECTORS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (EMAIL, re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")),
    (URL, re.compile(r"(?:https?|ftp)://[^\s\\]+|www\.[^\s\\]+", re.IGNORECASE)),
    # YYMMDD-GNNNNNN: a birth date, then a digit for the century and sex (1-8), then six more.
    (RRN, re.compile(r"(?<!\d)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\s?-?\s?[1-8]\d{6}(?!\d)")),
    (
        PHONE,
        re.compile(
            # International (+82 10-1234-5678, +1 (555) 123-4567), Korean mobile (010-1234-5678) and
            # landline ((02) 123-4567, 031-123-4567), with hyphens, spaces or nothing between the groups.
            r"\+\d{1,3}[\s-]?\(?\d{1,4}\)?(?:[\s-]?\d{2,4}){2,3}(?!\d)"
            r"|(?<![\d.])01[016789][\s-]?\d{3,4}[\s-]?\d{4}(?![\d.])"
            r"|(?<![\d.])\(?0(?:2|[3-6][1-5]|70|80)\)?[\s-]?\d{3,4}-\d{4}(?![\d.])"
        ),
    ),
    (
        ADDRESS,
        re.compile(
            rf"[{_HANGUL}]+(?:특별시|광역시|특별자치시|특별자치도){_BUILDING}"
            rf"|(?P<parts>{_ADDRESS_PART}(?:\s+{_ADDRESS_PART})+){_BUILDING}"
            rf"|[{_HANGUL}0-9]*[{_HANGUL}](?:로|길)\s*\d+(?:-\d+)?(?:번지|번길|호|층)?"
        ),
    ),
    (
        DATE,
        re.compile(
            rf"(?<![\w.])(?:\d{{1,2}}[\s-]?(?:{_MONTH_NAMES})\.?[\s,-]*\d{{2,4}}"
            rf"|(?:{_MONTH_NAMES})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}"
            rf"|(?:{_MONTH_NAMES})\.?[\s-]\d{{4}})(?![\w.])"
            r"|\d{4}\s*년\s*\d{1,2}\s*월(?:\s*\d{1,2}\s*일)?",
            re.IGNORECASE,
        ),
    ),
    # Numeric dates: validated below, so that "5.0.12" (a software version) is not taken for one.
    (
        DATE,
        re.compile(
            r"(?<![\w.])(?:(?P<y1>\d{4})[-/.](?P<m1>\d{1,2})[-/.](?P<d1>\d{1,2})"
            r"|(?P<a2>\d{1,2})[-/.](?P<b2>\d{1,2})[-/.](?P<y2>\d{4}|\d{2}))(?![\w.]|\.\d)"
        ),
    ),
    # Record, accession, insurance and card numbers: six digits or more, hyphens allowed between them.
    (LONG_NUMBER, re.compile(r"(?<![\d.])\d(?:-?\d){5,}(?![\d]|\.\d)")),
)

# What the verifier looks for in the output bytes (ASCII forms; a match must not be part of a longer number
# or a UID, whose components are separated by dots). One pass for the numbers, the e-mail only where an @ is.
_BYTES_NUMBERS = re.compile(
    rb"(?P<rrn>(?<![\d.])\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-?[1-8]\d{6}(?![\d.]))"
    rb"|(?P<phone>(?<![\d.])01[016789][ -]?\d{3,4}[ -]?\d{4}(?![\d.])"
    rb"|(?<![\d.])\+\d{1,3}[ -]\(?\d{1,4}\)?(?:[ -]\d{2,4}){2,3}(?![\d.]))"
)
_RUN_TABLE = bytes(0x30 if chr(i) in "0123456789 ()+-" else 0x2E for i in range(256))
_RUN = b"0" * 10  # the shortest phone number with its punctuation
_EMAIL_LOCAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_EMAIL_DOMAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_BYTES_EMAIL = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


@dataclass(frozen=True)
class Found:
    start: int
    end: int
    reason: str


def _valid_numeric_date(match: re.Match[str]) -> bool:
    groups = match.groupdict()
    if groups["y1"]:
        month, day = int(groups["m1"]), int(groups["d1"])
        return 1 <= month <= 12 and 1 <= day <= 31
    a, b = int(groups["a2"]), int(groups["b2"])
    # DD/MM/YYYY or MM/DD/YYYY: either order makes a date.
    return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)


def _several_levels(parts: str) -> bool:
    return len({_ADDRESS_LEVELS[word[-1]] for word in parts.split()}) >= 2


# Numbers and dates the trial keeps on purpose in attributes it retains (a device serial number under Retain
# Device Identity) are not taken for record numbers; the patterns the law names are removed everywhere.
NUMBERS = frozenset({LONG_NUMBER, DATE})


# Patterns that contain other identifiers (a name in an e-mail address): removed before the input's values
# are, so that an address goes whole; the others after, so that a record number goes whole with its prefix.
CONTAINERS = frozenset({EMAIL, URL})
ALL_REASONS = frozenset({RRN, PHONE, EMAIL, URL, ADDRESS, LONG_NUMBER, DATE})


def _worth_trying(reason: str, text: str, digits: int) -> bool:
    """A cheap test of whether `text` could hold a match of the detector of `reason`."""
    if reason == EMAIL:
        return "@" in text
    if reason == URL:
        return "://" in text or "www." in text.lower()
    if reason == ADDRESS:
        return _HAS_HANGUL.search(text) is not None
    if reason == DATE:
        return digits >= 2
    return digits >= 6  # RRN, phone number, long number


def find_identifiers(text: str, skip: frozenset[str] = frozenset()) -> Iterator[Found]:
    """Every identifier pattern in `text` but those of the reasons in `skip` (overlaps possible)."""
    digits = sum(map(str.isdigit, text))
    for reason, pattern in _TEXT_DETECTORS:
        if reason in skip or not _worth_trying(reason, text, digits):
            continue
        for match in pattern.finditer(text):
            if "y1" in pattern.groupindex and not _valid_numeric_date(match):
                continue
            if match.groupdict().get("parts") and not _several_levels(match.group("parts")):
                continue
            yield Found(match.start(), match.end(), reason)


# Every pattern holds a digit, an @, a Hangul syllable or a URL's start: text without any (most
# descriptors: "CT CHEST W CONTRAST") is not searched pattern by pattern.
_MAY_HOLD = re.compile(rf"[0-9@{_HANGUL}]|www\.|://", re.IGNORECASE)
_HAS_HANGUL = re.compile(rf"[{_HANGUL}]")


def may_hold_identifier(text: str) -> bool:
    """Whether `text` has a character any pattern needs (a digit, an @, Hangul, a URL's start)."""
    return _MAY_HOLD.search(text) is not None


def remove_identifiers(text: str, skip: frozenset[str] = frozenset()) -> tuple[str, list[str]]:
    """`text` with each identifier pattern replaced by a space, and the reasons of what was removed."""
    if not _MAY_HOLD.search(text):
        return text, []
    cleaned, reasons = _remove_identifiers(text, skip)
    return cleaned, list(reasons)


@lru_cache(maxsize=8192)
def _remove_identifiers(text: str, skip: frozenset[str]) -> tuple[str, tuple[str, ...]]:
    # Cached: the slices of a series repeat the same descriptions, kernels and software versions.
    found = sorted(find_identifiers(text, skip), key=lambda f: (f.start, -f.end))
    if not found:
        return text, ()
    parts, reasons, at = [], [], 0
    for item in found:
        if item.end <= at:
            continue  # inside a span already removed
        parts.append(text[at : item.start] if item.start > at else "")
        parts.append(" ")
        at = max(at, item.end)
        if item.reason not in reasons:
            reasons.append(item.reason)
    parts.append(text[at:])
    return "".join(parts), tuple(reasons)


def first_identifier_in_bytes(hay: bytes) -> str | None:
    """The reason of an identifier pattern (RRN, phone, e-mail) found in output bytes, or None."""
    # Runs of digits and phone punctuation found with C-speed byte operations: a regex scan of a whole
    # header costs more than the rest of the verification.
    runs = hay.translate(_RUN_TABLE)
    at = runs.find(_RUN)
    while at != -1:
        end = runs.find(b".", at)
        end = len(hay) if end == -1 else end
        if not (at and hay[at - 1] in b".0123456789"):  # not a component of a UID
            # The precise patterns on the run, with 2 bytes either side for their boundaries.
            match = _BYTES_NUMBERS.search(hay, max(0, at - 2), end + 2)
            if match is not None:
                return RRN if match.lastgroup == "rrn" else PHONE
        at = runs.find(_RUN, end)
    at = hay.find(b"@")
    while at != -1:
        # Binary values hold 0x40 bytes by chance: only an @ between address characters is looked at closely.
        if (
            0 < at < len(hay) - 1
            and hay[at - 1] in _EMAIL_LOCAL
            and hay[at + 1] in _EMAIL_DOMAIN
            and _BYTES_EMAIL.search(hay, max(0, at - 64), at + 256)
        ):
            return EMAIL
        at = hay.find(b"@", at + 1)
    return None
