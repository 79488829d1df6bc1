"""Finding the input's identifying values in text (to clean descriptors) and in output bytes (to verify).

Matching rules, shared so that whatever the cleaner leaves, the verifier accepts:
- A value is searched as written, upper-cased and lower-cased, in UTF-8 and in the input's character set,
  ASCII letters case-insensitively. A name also in each whole-name form of `names.full_name_forms` (each
  ``=`` group with ``^``, spaces or a comma between its components, reversed, Hangul without a space, and
  romanised when given in Hangul). A date also as YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, DD/MM/YYYY,
  MM/DD/YYYY, DD.MM.YYYY and DD-MM-YYYY; a DT by its date. A UID only as a whole UID.
- The cleaner also removes each name component, each word of a component, initials with the surname, and
  Hangul writings of a name given in Latin letters. The verifier does not search single components: a
  surname like White or Long legitimately appears in kept text ("White matter").
- The cleaner also removes identifier patterns (`patterns`: resident registration numbers, phone numbers,
  e-mail addresses, URLs, addresses, long numbers, dates) whoever they belong to; the verifier looks for
  resident registration numbers, phone numbers and e-mail addresses in every output byte.
- Skipped as too short to identify anyone and too common not to collide: values under 3 characters (2 when
  they hold non-ASCII characters: a CJK given name is two characters), values without a letter or digit
  ("----"), and numbers of fewer than 5 digits (series numbers, window values, ages).
- A match must stand alone at its ends: a value starting (ending) with a letter must not touch a letter or
  underscore there, one starting (ending) with a digit must not touch a digit or a decimal number. "DOE" is
  not found in "DOES" nor "TOSHIBA" in "TOSHIBA_MEC"; "12345678" is found in "MRN12345678" but not inside
  a longer number or a UID.
- The verifier reads every byte of the output except the Pixel Data value, which is binary and passed
  through unchanged: in compressed pixel data any 3-byte value turns up by chance every few hundred KB.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from pydicom.charset import encode_string
from pydicom.datadict import dictionary_VR
from pydicom.valuerep import PersonName

from .errors import DeidRejected, gettext_noop
from .fastread import dcmread_bytes
from .names import HangulNameFinder, full_name_forms, part_forms
from .patterns import (
    ALL_REASONS,
    CONTAINERS,
    NUMBERS,
    first_identifier_in_bytes,
    may_hold_identifier,
    remove_identifiers,
)

MIN_CHARS = 3
MIN_CHARS_NON_ASCII = 2
MIN_DIGITS = 5

_DIGITS = frozenset(b"0123456789")
_LETTERS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_WORD = _LETTERS | {ord("_")}
_DOT = ord(".")
_SPACES = re.compile(r"[ ]{2,}")
_UID_TOKEN = re.compile(rb"[0-9]+(?:\.[0-9]+)+")
_SEPARATORS = re.compile(r"[-./ _]")
_HANGUL_SYLLABLE = re.compile("[\uac00-\ud7a3]")
# Cleaning results by what they depend on (the identifying values, the text, the option): the slices of a
# series repeat their descriptions for the same patient. Holds values: never logged or shown.
_CLEANED: dict[tuple, tuple[str, tuple[str, ...]]] = {}
_CLEANED_SIZE = 4096
# The pattern passes of the cleaner, as the reasons each one skips.
_FIRST = ALL_REASONS - CONTAINERS
_LAST = CONTAINERS
_LAST_KEEPING_NUMBERS = CONTAINERS | NUMBERS
_ID_VRS = frozenset({"LO", "SH", "CS", "IS", "UC", "ST"})


def _worth_searching(text: str) -> bool:
    if not any(c.isalnum() for c in text):
        return False  # "----", "***": placeholders, not identifiers
    if text.isascii():
        if len(text) < MIN_CHARS:
            return False
        return not (text.isdigit() and len(text) < MIN_DIGITS)
    return len(text) >= MIN_CHARS_NON_ASCII


def _date_variants(date: str) -> list[str]:
    if len(date) != 8 or not date.isdigit():
        return [date]
    y, m, d = date[:4], date[4:6], date[6:8]
    return [
        date,
        f"{y}-{m}-{d}",
        f"{y}/{m}/{d}",
        f"{y}.{m}.{d}",
        f"{d}/{m}/{y}",
        f"{m}/{d}/{y}",
        f"{d}.{m}.{y}",
        f"{d}-{m}-{y}",
    ]


def _name_variants(name: str, components: bool) -> list[str]:
    variants: list[str] = []
    for group in name.split("="):
        variants += full_name_forms(group)
        if components:
            variants += part_forms(group)
    return variants


def text_variants(vr: str, value: str, *, components: bool = False) -> list[str]:
    """The strings under which a value of `vr` would be recognised in text; `components` adds name parts."""
    variants: list[str] = []
    for single in value.split("\\"):
        single = single.strip(" \x00")
        if not single:
            continue
        if vr == "PN":
            variants += _name_variants(single, components)
        elif vr == "DA":
            variants += _date_variants(single.replace(".", ""))
        elif vr == "DT":
            # Its date is what identifies; times differ per frame and would only multiply the searches.
            variants += _date_variants(single[:8])
        else:
            variants.append(single)
            compact = _SEPARATORS.sub("", single)
            if compact != single and compact.isalnum():
                variants.append(compact)  # an ID written without its separators: MRN-4455-667 as MRN4455667
    return variants


def _left_boundary(first: str) -> str:
    if first in "0123456789":
        return r"(?<![0-9])(?<![0-9]\.)"
    if first.isascii() and first.isalpha():
        return r"(?<![A-Za-z_])"
    return ""


def _right_boundary(last: str) -> str:
    if last in "0123456789":
        return r"(?![0-9])(?!\.[0-9])"
    if last.isascii() and last.isalpha():
        return r"(?![A-Za-z_])"
    return ""


def _stands_alone(hay: bytes, start: int, end: int, needle: bytes) -> bool:
    first, last = needle[0], needle[-1]
    if start > 0:
        before = hay[start - 1]
        if first in _DIGITS and (before in _DIGITS or (before == _DOT and start > 1 and hay[start - 2] in _DIGITS)):
            return False
        if first in _LETTERS and before in _WORD:
            return False
    if end < len(hay):
        after = hay[end]
        if last in _DIGITS and (after in _DIGITS or (after == _DOT and end + 1 < len(hay) and hay[end + 1] in _DIGITS)):
            return False
        if last in _LETTERS and after in _WORD:
            return False
    return True


def find_needle(hay: bytes, needle: bytes) -> bool:
    """Whether `needle` occurs in `hay` standing alone (both already upper-cased with bytes.upper)."""
    at = hay.find(needle)
    while at != -1:
        if _stands_alone(hay, at, at + len(needle), needle):
            return True
        at = hay.find(needle, at + 1)
    return False


@lru_cache(maxsize=4096)
def _plan(
    vr: str, value: str, encodings: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[bytes, ...]]:
    """What one value adds: name groups, IDs, texts for the cleaner, needles for the verifier.

    Cached: the slices of a series carry the same patient's values. Holds values: never logged or shown.
    """
    groups: list[str] = []
    ids: list[str] = []
    if vr == "PN":
        groups = [group for single in value.split("\\") for group in single.split("=")]
    elif vr in _ID_VRS:
        for single in value.split("\\"):
            compact = _SEPARATORS.sub("", single.strip(" \x00")).upper()
            if len(compact) >= 6 and compact.isalnum() and sum(map(str.isdigit, compact)) >= 4:
                ids.append(compact)
    texts: dict[str, None] = {}
    for variant in text_variants(vr, value, components=True):
        if _worth_searching(variant):
            for form in (variant, variant.upper(), variant.lower()):
                texts.setdefault(form, None)
    needles: dict[bytes, None] = {}
    for variant in dict.fromkeys(text_variants(vr, value)):
        if not _worth_searching(variant):
            continue
        for form in (variant, variant.upper(), variant.lower()):
            needles.setdefault(form.encode("utf-8").upper(), None)
            if form.isascii():
                continue  # ASCII text is the same bytes in every character set DICOM allows
            # As an element of the input would hold it: a name resets ISO 2022 escapes at each ^ and =.
            try:
                if vr == "PN":
                    encoded = PersonName(form).encode(list(encodings))
                else:
                    encoded = encode_string(form, list(encodings))
            except (UnicodeError, LookupError, ValueError):
                continue
            needles.setdefault(encoded.upper(), None)
    return tuple(groups), tuple(ids), tuple(texts), tuple(needles)


class IdentifyingValues:
    """The identifying values of one input instance, ready to be cleaned from text or searched in bytes.

    Holds the values themselves: never log, print or show it. Only attribute keywords come out of it.
    """

    def __init__(self, encodings: Sequence[str] = ("utf_8",)) -> None:
        self._encodings = list(encodings)
        self._needles: dict[bytes, str] = {}
        self._uids: dict[bytes, str] = {}
        self._texts: dict[str, str] = {}
        self._seen: set[tuple[str, str]] = set()
        self._pattern: re.Pattern[str] | None = None
        self._upper: tuple[str, ...] | None = None  # the texts upper-cased, for a quick test before the pattern
        # IDs (six letters or digits or more, four of them digits), matched with or without separators.
        self._ids: dict[str, str] = {}
        self._id_pattern: re.Pattern[str] | None = None
        self._fingerprint: tuple | None = None  # everything cleaning depends on, for _CLEANED
        self._hangul_names = HangulNameFinder()

    def __repr__(self) -> str:
        return f"IdentifyingValues(<{len(self._texts)} values hidden>)"

    def __len__(self) -> int:
        return len(self._texts)

    def add(self, keyword: str, vr: str, value: str) -> None:
        """Add one value of attribute `keyword`."""
        if (vr, value) in self._seen:
            return
        self._seen.add((vr, value))
        self._fingerprint = None
        if vr == "UI":
            # Multi-frame images reference hundreds of UIDs: they are looked up per UID found in the
            # output rather than searched for one by one.
            for single in value.split("\\"):
                single = single.strip(" \x00")
                if single:
                    self._uids.setdefault(single.encode("ascii", "replace"), keyword)
                    self._texts.setdefault(single, keyword)
                    self._pattern = self._upper = None
            return
        groups, ids, texts, needles = _plan(vr, value, tuple(self._encodings))
        for group in groups:
            self._hangul_names.add(group)
        for compact in ids:
            if compact not in self._ids:
                self._ids[compact] = keyword
                self._id_pattern = None
        for form in texts:
            if form not in self._texts:
                self._texts[form] = keyword
                self._pattern = self._upper = None
        for needle in needles:
            self._needles.setdefault(needle, keyword)

    def allow(self, text: str) -> None:
        """Stop searching for values that occur in `text`: text we write ourselves (subject code, method)."""
        self._fingerprint = None
        hay = text.encode("utf-8").upper()
        self._texts = {t: k for t, k in self._texts.items() if not find_needle(hay, t.encode("utf-8").upper())}
        self._needles = {n: k for n, k in self._needles.items() if not find_needle(hay, n)}
        self._uids = {u: k for u, k in self._uids.items() if not find_needle(hay, u)}
        self._pattern = self._upper = None

    def first_found_in(self, hay_upper: bytes) -> str | None:
        """The keyword of a value found in `hay_upper` (bytes.upper() of the searched bytes), or None."""
        for needle, keyword in self._needles.items():
            if find_needle(hay_upper, needle):
                return keyword
        if self._uids:
            for match in _UID_TOKEN.finditer(hay_upper):
                keyword = self._uids.get(match.group())
                if keyword is not None:
                    return keyword
        return None

    def allow_values(self, keywords: Iterable[str] | None, text: str) -> None:
        """Stop searching for values (of attributes `keywords`, or any) that are `text` itself, in any case."""
        names, folded = set(keywords) if keywords is not None else None, text.strip().upper()
        self._fingerprint = None

        def ours(keyword: str) -> bool:
            return names is None or keyword in names

        self._texts = {t: k for t, k in self._texts.items() if not (ours(k) and t.upper() == folded)}
        self._needles = {n: k for n, k in self._needles.items() if not (ours(k) and n == folded.encode("utf-8"))}
        self._pattern = self._upper = None

    def _compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            parts = [
                _left_boundary(t[0]) + re.escape(t) + _right_boundary(t[-1])
                for t in sorted(self._texts, key=len, reverse=True)
            ]
            self._pattern = re.compile("|".join(parts), re.IGNORECASE | re.ASCII)
        return self._pattern

    def _ids_compiled(self) -> re.Pattern[str]:
        if self._id_pattern is None:
            parts = [
                _left_boundary(c[0]) + "[-./ _]?".join(re.escape(ch) for ch in c) + _right_boundary(c[-1])
                for c in sorted(self._ids, key=len, reverse=True)
            ]
            self._id_pattern = re.compile("|".join(parts), re.IGNORECASE | re.ASCII)
        return self._id_pattern

    def _keyword_of(self, found: str) -> str:
        for form in (found, found.upper(), found.lower()):
            if form in self._texts:
                return self._texts[form]
        folded = found.upper()
        return next((k for t, k in self._texts.items() if t.upper() == folded), "identifying attribute")

    def clean_with_reasons(self, text: str, *, keep_numbers: bool = False) -> tuple[str, list[str]]:
        """`text` without the input's identifying values and identifier patterns, and why each went.

        Reasons are words ("PatientName", "phone number"), never the values removed. `keep_numbers` leaves
        long numbers and dates that are not the input's (a device serial number the trial retains).
        """
        if self._upper is None:
            self._upper = tuple({t.upper() for t in self._texts})
        if not may_hold_identifier(text):
            # Most kept values ("CT CHEST W CONTRAST"): no digit, @, Hangul or URL for a pattern, and none
            # of the input's values in them. One search and one pass over the values.
            upper = text.upper()
            if not any(t in upper for t in self._upper):
                return text, []
        if self._fingerprint is None:
            self._fingerprint = (
                frozenset(self._texts.items()),
                frozenset(self._ids.items()),
                tuple(self._hangul_names.names),
            )
        key = (self._fingerprint, text, keep_numbers)
        cached = _CLEANED.get(key)
        if cached is not None:
            return cached[0], list(cached[1])
        cleaned, reasons = self._clean(text, keep_numbers)
        if len(_CLEANED) >= _CLEANED_SIZE:
            _CLEANED.clear()
        _CLEANED[key] = (cleaned, tuple(reasons))
        return cleaned, reasons

    def _clean(self, text: str, keep_numbers: bool) -> tuple[str, list[str]]:
        reasons: list[str] = []
        original = text
        last = _LAST_KEEPING_NUMBERS if keep_numbers else _LAST
        for _ in range(4):
            before = text
            # E-mail addresses and URLs first: one holding the patient's name must go whole, not lose the
            # name and leave its domain. The other patterns last: "ACC778899" goes whole as a value before
            # its digits could go as a long number.
            text = self._remove_patterns(text, _FIRST, reasons)
            text = self._remove_values(text, reasons)
            text = self._remove_patterns(text, last, reasons)
            if text != before:
                text = _SPACES.sub(" ", text).strip()
            if text == before:
                break
        return (text, reasons) if text != original else (original, [])

    @staticmethod
    def _remove_patterns(text: str, skip: frozenset[str], reasons: list[str]) -> str:
        text, found = remove_identifiers(text, skip)
        reasons += [r for r in found if r not in reasons]
        return text

    def _remove_values(self, text: str, reasons: list[str]) -> str:
        """`text` without the input's values (in their forms), IDs in any spacing and Hangul writings of names."""

        def removed(match: re.Match[str]) -> str:
            keyword = self._keyword_of(match.group())
            if keyword not in reasons:
                reasons.append(keyword)
            return " "

        def removed_id(match: re.Match[str]) -> str:
            keyword = self._ids.get(_SEPARATORS.sub("", match.group()).upper(), "identifying attribute")
            if keyword not in reasons:
                reasons.append(keyword)
            return " "

        if self._texts:
            if self._upper is None:
                self._upper = tuple({t.upper() for t in self._texts})
            upper = text.upper()
            if any(t in upper for t in self._upper):
                text = self._compiled().sub(removed, text)
        if self._ids and sum(map(str.isdigit, text)) >= 4:
            text = self._ids_compiled().sub(removed_id, text)
        if self._hangul_names and _HANGUL_SYLLABLE.search(text):
            for start, end in reversed(self._hangul_names.spans(text)):
                text = text[:start] + " " + text[end:]
                if "PatientName" not in reasons:
                    reasons.append("PatientName")
        return text

    def clean(self, text: str) -> str:
        """`text` without any of the values or identifier patterns, each replaced by a space, spaces collapsed."""
        return self.clean_with_reasons(text)[0]


def _coerce(
    identifying_values: IdentifyingValues | Mapping[str, Iterable[str]] | Iterable[tuple[str, str]],
    encodings: Sequence[str],
) -> IdentifyingValues:
    if isinstance(identifying_values, IdentifyingValues):
        return identifying_values
    values = IdentifyingValues(encodings)
    pairs = identifying_values.items() if isinstance(identifying_values, Mapping) else identifying_values
    for keyword, texts in pairs:
        try:
            vr = dictionary_VR(keyword)
        except KeyError:
            vr = "LO"
        for text in [texts] if isinstance(texts, str) else texts:
            values.add(keyword, vr, str(text))
    return values


def pixel_data_span(output: bytes) -> tuple[int, int] | None:
    """Where the top-level Pixel Data value lies in a Part 10 file, or None."""
    try:
        ds = dcmread_bytes(output, force=True)
    except Exception:  # noqa: BLE001 - an unreadable file is searched whole
        return None
    raw = ds._dict.get(0x7FE00010)
    if raw is None or getattr(raw, "value_tell", None) is None or raw.value is None:
        return None
    return raw.value_tell, raw.value_tell + len(raw.value)


def verify_bytes(output: bytes, values: IdentifyingValues, skip: tuple[int, int] | None) -> None:
    """Raise DeidRejected("phi_found") naming the attribute whose value is in `output` outside `skip`."""
    if skip is None:
        hay = output.upper()
    else:
        # The NUL joins the two parts so no value can be matched across the skipped pixel data.
        hay = output[: skip[0]].upper() + b"\x00" + output[skip[1] :].upper()
    keyword = values.first_found_in(hay)
    if keyword is None:
        found = first_identifier_in_bytes(hay)
        if found is not None:
            raise DeidRejected(
                "phi_found",
                gettext_noop(
                    "A %(what)s was found in the de-identified output; the image was not accepted. "
                    "Please report this to the trial's imaging team."
                ),
                what=str(found),
            )
    if keyword is not None:
        raise DeidRejected(
            "phi_found",
            gettext_noop(
                "A value of the attribute %(name)s of the original image was found in the de-identified output; "
                "the image was not accepted. Please report this to the trial's imaging team."
            ),
            name=keyword,
        )


def verify_no_phi(
    output: bytes,
    identifying_values: IdentifyingValues | Mapping[str, Iterable[str]] | Iterable[tuple[str, str]],
    *,
    specific_character_set: str | Sequence[str] | None = None,
) -> None:
    """Raise DeidRejected("phi_found") if an identifying value of the input is in the output file.

    `identifying_values` maps attribute keywords to their input values (or is a list of (keyword, value)
    pairs, or what the engine collected); values are also searched in the input's
    `specific_character_set`. The message names the attribute, never the value.
    """
    from .charsets import encodings_for

    charset = (
        "\\".join(specific_character_set)
        if isinstance(specific_character_set, list | tuple)
        else specific_character_set
    )
    encodings = encodings_for(charset) if charset else ["utf_8"]
    verify_bytes(output, _coerce(identifying_values, encodings), pixel_data_span(output))
