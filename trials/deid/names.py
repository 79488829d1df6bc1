"""The written forms of a person's name: caret, comma, spaced, reversed, initials, Hangul and romanised.

A name reaches free text in many forms: ``HONG^GILDONG`` is written "Hong Gildong", "HONG, GILDONG",
"Gildong Hong", "G. Hong", "Hong Gil-dong" or, in Hangul, "홍길동"; ``홍^길동`` is written "홍길동" or "홍 길동".
Where the input gives only one script, the other is derived: Hangul syllables are romanised (Revised
Romanization, with the usual spellings of common surnames: 이 Lee/Yi/Rhee, 박 Park, 최 Choi...) and compared
by a loose key that forgives the usual spelling differences (g/k, d/t, b/p, j/ch, eo/u).
"""

from __future__ import annotations

import re
from functools import lru_cache

_HANGUL_BASE, _HANGUL_LAST = 0xAC00, 0xD7A3
_INITIALS = ["g", "kk", "n", "d", "tt", "r", "m", "b", "pp", "s", "ss", "", "j", "jj", "ch", "k", "t", "p", "h"]
_VOWELS = [
    "a", "ae", "ya", "yae", "eo", "e", "yeo", "ye", "o", "wa", "wae", "oe", "yo",
    "u", "wo", "we", "wi", "yu", "eu", "ui", "i",
]  # fmt: skip
_FINALS = [
    "", "k", "k", "k", "n", "n", "n", "t", "l", "k", "m", "l", "l", "l", "p", "l",
    "m", "p", "p", "t", "t", "ng", "t", "t", "k", "t", "p", "t",
]  # fmt: skip
# How the commonest Korean surnames are spelled in passports and hospital systems (beyond Revised Romanization).
_SURNAMES = {
    "김": ("kim", "gim"), "이": ("lee", "yi", "rhee", "rhie", "i"), "박": ("park", "pak", "bak"),
    "최": ("choi", "choe"), "정": ("jung", "jeong", "chung", "cheong"), "강": ("kang", "gang"),
    "조": ("cho", "jo", "joe"), "윤": ("yoon", "yun"), "장": ("jang", "chang"), "임": ("lim", "im", "rim"),
    "한": ("han",), "오": ("oh", "o"), "서": ("seo", "suh", "so"), "신": ("shin", "sin"),
    "권": ("kwon", "gwon"), "황": ("hwang",), "안": ("ahn", "an"), "송": ("song",), "류": ("ryu", "yoo", "yu"),
    "유": ("yoo", "yu", "ryu"), "전": ("jeon", "jun", "chun", "chon"), "홍": ("hong",), "고": ("ko", "go"),
    "문": ("moon", "mun"), "양": ("yang",), "손": ("son", "sohn"), "배": ("bae", "pae"), "백": ("baek", "paik"),
    "허": ("heo", "huh", "hur"), "남": ("nam",), "심": ("shim", "sim"), "노": ("noh", "roh", "no"),
    "하": ("ha",), "곽": ("kwak", "gwak"), "성": ("sung", "seong"), "차": ("cha",), "주": ("joo", "ju", "chu"),
    "우": ("woo", "u"), "구": ("koo", "ku", "gu"), "민": ("min",), "나": ("na", "ra"), "진": ("jin", "chin"),
    "지": ("ji", "chi"), "엄": ("um", "eom"), "채": ("chae",), "원": ("won",), "천": ("cheon", "chun"),
    "방": ("bang", "pang"), "공": ("kong", "gong"), "현": ("hyun", "hyeon"), "함": ("ham",), "변": ("byun", "byeon"),
    "염": ("yeom", "yum"), "여": ("yeo", "yuh"), "추": ("choo", "chu"), "도": ("do", "doh"), "소": ("so",),
    "석": ("seok", "suk"), "선": ("sun", "seon"), "설": ("seol", "sul"), "마": ("ma",), "길": ("gil", "kil"),
    "연": ("yeon", "yun"), "위": ("wi", "wee"), "표": ("pyo",), "명": ("myung", "myeong"), "기": ("ki", "gi"),
    "반": ("ban", "pan"), "왕": ("wang",), "금": ("keum", "geum"), "옥": ("ok",), "육": ("yook", "yuk"),
    "인": ("in",), "맹": ("maeng",), "제": ("je", "jae"), "모": ("mo",), "탁": ("tak",), "국": ("kook", "guk"),
    "어": ("eo", "uh"), "은": ("eun",), "편": ("pyun", "pyeon"), "용": ("yong",), "예": ("ye",), "경": ("kyung", "gyeong"),
    "봉": ("bong",), "사": ("sa",), "부": ("boo", "bu"), "황보": ("hwangbo",), "남궁": ("namgung", "namkung"),
    "제갈": ("jegal",), "선우": ("sunwoo", "seonu"), "독고": ("dokgo",), "사공": ("sagong",),
}  # fmt: skip
_LOOSE = (
    ("eo", "o"), ("eu", "u"), ("oo", "u"), ("ae", "e"), ("oe", "e"), ("ee", "i"), ("wo", "o"), ("yeo", "yo"),
    ("ch", "j"), ("sh", "s"), ("kk", "g"), ("tt", "d"), ("pp", "b"), ("ss", "s"), ("jj", "j"),
    ("k", "g"), ("t", "d"), ("p", "b"), ("r", "l"), ("h", ""),
)  # fmt: skip
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3]{2,}")
_NON_LETTERS = re.compile(r"[^a-z]")


def is_hangul(text: str) -> bool:
    return bool(text) and all(_HANGUL_BASE <= ord(c) <= _HANGUL_LAST for c in text)


def romanize_syllables(text: str) -> str:
    """Revised Romanization of Hangul syllables one by one (as names are romanised), lower case."""
    out = []
    for char in text:
        code = ord(char) - _HANGUL_BASE
        if not 0 <= code <= _HANGUL_LAST - _HANGUL_BASE:
            out.append(char.lower())
            continue
        out.append(_INITIALS[code // 588] + _VOWELS[(code % 588) // 28] + _FINALS[code % 28])
    return "".join(out)


def loose_key(latin: str) -> str:
    """A spelling-forgiving key of a romanised name: "Gil-dong", "KILDONG" and "gildong" share one."""
    key = _NON_LETTERS.sub("", latin.lower())
    for old, new in _LOOSE:
        key = key.replace(old, new)
    return re.sub(r"(.)\1+", r"\1", key)


def surname_spellings(surname: str) -> tuple[str, ...]:
    """Latin spellings of a Hangul surname: the usual ones and its Revised Romanization."""
    usual = _SURNAMES.get(surname, ())
    rr = romanize_syllables(surname)
    return usual if rr in usual else (*usual, rr)


def _given_spellings(given: str) -> list[str]:
    syllables = [romanize_syllables(c) for c in given]
    joined = "".join(syllables)
    forms = [joined]
    if len(syllables) > 1:
        forms += ["-".join(syllables), " ".join(syllables)]
    return forms


def components(group: str) -> list[str]:
    """The non-empty components of one component group of a PN value (family, given, middle...)."""
    return [c.strip() for c in group.split("^") if c.strip()]


@lru_cache(maxsize=1024)
def full_name_forms(group: str) -> tuple[str, ...]:
    """Forms of a whole name (never a single component): what the verifier also searches for."""
    present = components(group)
    if not present:
        return ()
    forms = [group.rstrip("^ "), " ".join(present), "^".join(present)]
    if len(present) >= 2:
        family, given = present[0], present[1]
        forms += [f"{given} {family}", f"{family}, {given}", f"{family},{given}"]
        if not family.isascii() or not given.isascii():
            forms += [family + given]  # CJK names are written without a space: 홍길동
        if is_hangul(family) and is_hangul(given):
            for surname in surname_spellings(family):
                for spelled in _given_spellings(given):
                    forms += [f"{surname} {spelled}", f"{spelled} {surname}", f"{surname}, {spelled}"]
                    forms += [f"{surname}^{spelled}", surname + spelled]
    return tuple(forms)


@lru_cache(maxsize=1024)
def part_forms(group: str) -> tuple[str, ...]:
    """Forms of a name's parts and initials, removed from kept text but not searched by the verifier.

    Single parts can be ordinary words (White, Long), so only text the engine keeps is cleaned of them.
    """
    present = components(group)
    forms: list[str] = []
    for component in present:
        forms.append(component)
        forms += component.split()
        if is_hangul(component) and len(component) >= 2:
            forms += _given_spellings(component)
    if len(present) >= 2:
        family, given = present[0], present[1]
        latin: list[tuple[str, str]] = []
        if family.isascii() and given.isascii():
            latin.append((family, given))
        elif is_hangul(family) and is_hangul(given):
            latin += [(s, g) for s in surname_spellings(family) for g in _given_spellings(given)]
        for surname, spelled in latin:
            initials = [w[0] for w in re.split(r"[\s-]+", spelled) if w]
            dotted, bare = ". ".join(initials) + ".", "".join(initials)
            forms += [f"{dotted} {surname}", f"{bare} {surname}", f"{surname} {bare}", f"{surname}, {dotted}"]
            forms += [f"{surname}, {bare}", f"{surname} {dotted}"]
        if is_hangul(given) and len(given) == 1:
            forms.append(family + given)
    return tuple(forms)


class HangulNameFinder:
    """Finds Hangul writings of names that the input gives only in Latin letters ("홍길동" for HONG^GILDONG)."""

    def __init__(self) -> None:
        self._names: list[tuple[str, str]] = []  # (loose family, loose given)

    def __bool__(self) -> bool:
        return bool(self._names)

    @property
    def names(self) -> tuple[tuple[str, str], ...]:
        return tuple(self._names)

    def add(self, group: str) -> None:
        present = components(group)
        if len(present) >= 2 and present[0].isascii() and present[1].isascii():
            family, given = loose_key(present[0]), loose_key(present[1])
            if family and len(given) >= 3:
                self._names.append((family, given))

    def _matches(self, run: str) -> bool:
        for split in (1, 2):
            if len(run) <= split:
                continue
            surname, given = run[:split], run[split:]
            given_key = loose_key(romanize_syllables(given))
            family_keys = {loose_key(s) for s in surname_spellings(surname)}
            for family, name in self._names:
                if name == given_key and family in family_keys:
                    return True
        whole = loose_key(romanize_syllables(run))
        # The given name alone (two syllables or more), as "길동" is written for HONG^GILDONG.
        return any(len(run) >= 2 and whole == name for _family, name in self._names)

    def spans(self, text: str) -> list[tuple[int, int]]:
        if not self._names:
            return []
        spans = []
        for match in _HANGUL_RUN.finditer(text):
            run = match.group()
            # The longest leading part that is the name: "홍길동님" (with an honorific) is the name and 님.
            for end in range(min(len(run), 6), 1, -1):
                if self._matches(run[:end]):
                    spans.append((match.start(), match.start() + end))
                    break
        return spans
