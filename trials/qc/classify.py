"""Series classification (CT phase, MR sequence, body region) by ordered rules kept as data."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .series import SeriesInfo

RULES_PATH = Path(__file__).with_name("classification_rules.json")

# The kinds a series can be given, and how a person reads them.
KINDS: dict[str, str] = {
    "ct.non_contrast": "CT non-contrast",
    "ct.arterial": "CT arterial",
    "ct.portal_venous": "CT portal venous",
    "ct.delayed": "CT delayed",
    "ct.contrast": "CT with contrast (phase unknown)",
    "mr.t1": "MR T1",
    "mr.t1_post_contrast": "MR T1 post-contrast",
    "mr.t2": "MR T2",
    "mr.flair": "MR FLAIR",
    "mr.dwi": "MR diffusion (DWI)",
    "mr.adc": "MR ADC map",
    "mr.other": "MR other sequence",
    "localizer": "Localizer",
    "unknown": "Unknown",
}


def kind_modality(kind: str) -> str:
    """The modality a kind belongs to ("CT", "MR"), or "" for a kind of any modality (localizer, unknown)."""
    return {"ct": "CT", "mr": "MR"}.get(kind.partition(".")[0], "")


def kinds_for_modality(modality: str) -> list[str]:
    """The kinds a series of this modality can be given: its own and those of any modality, in KINDS' order."""
    return [kind for kind in KINDS if kind_modality(kind) in ("", modality)]


# Kinds that say by themselves whether contrast was given; any other kind leaves it to the headers.
CONTRAST_KINDS = frozenset({"ct.arterial", "ct.portal_venous", "ct.delayed", "ct.contrast", "mr.t1_post_contrast"})
# The rules give mr.t1 only where they found no sign of contrast (a recorded agent makes it post-contrast).
NON_CONTRAST_KINDS = frozenset({"ct.non_contrast", "mr.t1"})

# Body parts head to toe. A region is one part, "cap", "whole_body", or several parts joined by "_" in this
# order ("abdomen_pelvis"); the protocol vocabulary (ImagingProtocol.Region) is a subset of these names.
PARTS = ("head", "neck", "chest", "abdomen", "pelvis")
_NAMED_REGIONS = {"cap": frozenset({"chest", "abdomen", "pelvis"}), "whole_body": frozenset(PARTS)}
_REGION_WORDS = {"cap": "chest-abdomen-pelvis", "whole_body": "whole body"}


def gettext_noop(message: str) -> str:
    """Marks a template for the translation catalogue (makemessages); this library stays Django-free."""
    return message


class Why(str):
    """One reason for a classification, in English, with the template (the catalogue's msgid) and parameters it
    was made from, so a page can say it in its reader's language (trials.views.qc). A parameter is a value from
    the headers (a word of the description, a code), a number, a rule's id, or a nested Why or list of them."""

    template: str
    params: dict

    def __new__(cls, template: str, **params) -> Why:
        why = super().__new__(cls, template % _english(params) if params else template)
        why.template, why.params = template, params
        return why

    def as_json(self) -> dict:
        return {"text": str(self), "template": self.template, "params": {k: _json(v) for k, v in self.params.items()}}


def _english(params: dict) -> dict:
    """The parameters as the English text reads them: lists joined, a region code ("cap") in words."""
    return {
        k: ", ".join(v) if isinstance(v, list | tuple) else region_label(v) if k == "region" else v
        for k, v in params.items()
    }


def _json(value):
    if isinstance(value, Why):
        return value.as_json()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def region_parts(region: str) -> frozenset[str]:
    """The body parts a region covers ("cap" -> chest, abdomen, pelvis); ValueError for an unknown name."""
    if not region:
        return frozenset()
    if region in _NAMED_REGIONS:
        return _NAMED_REGIONS[region]
    parts = region.split("_")
    if not all(part in PARTS for part in parts):
        raise ValueError(f"Unknown body region {region!r}.")
    return frozenset(parts)


def region_from_parts(parts: frozenset[str] | set[str]) -> str:
    """The region name for a set of body parts."""
    if not parts:
        return ""
    for name, covered in _NAMED_REGIONS.items():
        if set(parts) == covered:
            return name
    return "_".join(part for part in PARTS if part in parts)


def region_label(region: str) -> str:
    """How a coordinator reads a region: "chest-abdomen-pelvis", "head", "abdomen-pelvis"."""
    return _REGION_WORDS.get(region) or region.replace("_", "-")


@dataclass(frozen=True)
class Classification:
    """What a series is (its kind and body region), how sure the rules are, and why."""

    kind: str
    region: str = ""
    confidence: float = 0.0
    reasons: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Unknown series kind {self.kind!r}.")
        region_parts(self.region)
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError("Confidence is between 0 and 1.")
        object.__setattr__(self, "reasons", tuple(self.reasons))

    @classmethod
    def by_reviewer(cls, kind: str, region: str = "") -> Classification:
        """A QC reviewer's correction of a series' label: it replaces the rules' answer."""
        return cls(kind=kind, region=region, confidence=1.0, reasons=(Why(gettext_noop("set by a QC reviewer")),))

    def label(self) -> str:
        return KINDS[self.kind]

    @property
    def modality(self) -> str:
        return kind_modality(self.kind)

    @property
    def contrast(self) -> bool | None:
        """True or False where the kind itself says whether contrast was given; None where it does not."""
        if self.kind in CONTRAST_KINDS:
            return True
        if self.kind in NON_CONTRAST_KINDS:
            return False
        return None


# -- rules ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """[low, high) with None for an open end."""

    low: float | None
    high: float | None

    def __contains__(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value < self.high)


@dataclass(frozen=True)
class Rule:
    """One classification rule: a kind, the conditions that must all hold, and the confidence it gives."""

    id: str
    kind: str
    modality: str | None
    confidence: float
    reason: str
    text: tuple[re.Pattern[str], ...] = ()
    text_absent: tuple[re.Pattern[str], ...] = ()
    image_type_any: frozenset[str] = frozenset()
    contrast: bool | None = None
    b_value: bool | None = None
    delay_s: Range | None = None
    tr_ms: Range | None = None
    te_ms: Range | None = None
    ti_ms: Range | None = None

    def evidence(self, facts: _Facts) -> list[Why] | None:
        """What in the series made the rule hold, or None if it does not."""
        if self.modality is not None and facts.modality != self.modality:
            return None
        found: list[str] = []
        for pattern in self.text:
            match = pattern.search(facts.text)
            if not match:
                return None
            found.append(Why(gettext_noop("description has '%(words)s'"), words=match.group(0).strip()))
        if any(pattern.search(facts.text) for pattern in self.text_absent):
            return None
        if self.image_type_any:
            hits = sorted(self.image_type_any & facts.image_type)
            if not hits:
                return None
            found.append(Why(gettext_noop("image type %(value)s"), value=hits[0]))
        if self.contrast is not None:
            if facts.contrast != self.contrast:
                return None
            recorded = gettext_noop("contrast agent recorded")
            found.append(Why(recorded if self.contrast else gettext_noop("no contrast agent recorded")))
        if self.b_value is not None:
            if (facts.b_max > 0) != self.b_value:
                return None
            if self.b_value:
                found.append(Why(gettext_noop("b-value %(value)s"), value=f"{facts.b_max:g}"))
        for name, value, template in (
            ("delay_s", facts.delay, gettext_noop("delay %(value)s s")),
            ("tr_ms", facts.tr, gettext_noop("TR %(value)s ms")),
            ("te_ms", facts.te, gettext_noop("TE %(value)s ms")),
            ("ti_ms", facts.ti, gettext_noop("TI %(value)s ms")),
        ):
            allowed = getattr(self, name)
            if allowed is None:
                continue
            if value is None or value not in allowed:
                return None
            found.append(Why(template, value=f"{value:.0f}"))
        return found


@dataclass(frozen=True)
class RuleSet:
    """A versioned, ordered list of rules and the body-region vocabulary."""

    version: str
    rules: tuple[Rule, ...]
    body_parts: dict[str, str] = field(default_factory=dict)
    region_words: tuple[tuple[str, re.Pattern[str]], ...] = ()
    part_words: tuple[tuple[str, re.Pattern[str]], ...] = ()


_WHEN_KEYS = {"text", "text_absent", "image_type_any", "contrast", "b_value", "delay_s", "tr_ms", "te_ms", "ti_ms"}


def load_rules(path: Path | str = RULES_PATH) -> RuleSet:
    """Read and check a rules file; ValueError names the first thing wrong in it."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    version = data.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError("The rules file needs a version.")
    patterns: dict[str, str] = data.get("patterns", {})

    def compile_(text: str, where: str) -> re.Pattern[str]:
        if text.startswith("@"):
            if text[1:] not in patterns:
                raise ValueError(f"{where}: no pattern named {text[1:]!r}.")
            text = patterns[text[1:]]
        try:
            return re.compile(text, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"{where}: bad regular expression ({exc}).")

    def range_(value: Any, where: str) -> Range:
        if not (isinstance(value, list) and len(value) == 2):
            raise ValueError(f"{where}: a range is [minimum, maximum].")
        low, high = (None if v is None else float(v) for v in value)
        if low is not None and high is not None and low >= high:
            raise ValueError(f"{where}: the minimum must be below the maximum.")
        return Range(low, high)

    rules = []
    seen: set[str] = set()
    for index, raw in enumerate(data.get("rules", [])):
        rule_id = raw.get("id") or f"#{index}"
        where = f"rule {rule_id}"
        if rule_id in seen:
            raise ValueError(f"{where}: the id is used twice.")
        seen.add(rule_id)
        if raw.get("kind") not in KINDS:
            raise ValueError(f"{where}: unknown kind {raw.get('kind')!r}.")
        if raw.get("modality") not in (None, "CT", "MR"):
            raise ValueError(f"{where}: modality is CT, MR or null.")
        confidence = raw.get("confidence")
        if not isinstance(confidence, int | float) or not 0 < confidence <= 1:
            raise ValueError(f"{where}: confidence is above 0 and at most 1.")
        if not raw.get("reason"):
            raise ValueError(f"{where}: needs a reason a reviewer can read.")
        when = raw.get("when", {})
        unknown = set(when) - _WHEN_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown conditions {sorted(unknown)}.")

        def texts(key: str, where: str = where, when: dict = when) -> tuple[re.Pattern[str], ...]:
            value = when.get(key, [])
            return tuple(compile_(t, where) for t in ([value] if isinstance(value, str) else value))

        rules.append(
            Rule(
                id=rule_id,
                kind=raw["kind"],
                modality=raw.get("modality"),
                confidence=float(confidence),
                reason=raw["reason"],
                text=texts("text"),
                text_absent=texts("text_absent"),
                image_type_any=frozenset(v.upper() for v in when.get("image_type_any", [])),
                contrast=when.get("contrast"),
                b_value=when.get("b_value"),
                **{k: range_(when[k], where) for k in ("delay_s", "tr_ms", "te_ms", "ti_ms") if k in when},
            )
        )
    regions = data.get("regions", {})
    body_parts = {_body_part_key(k): v for k, v in regions.get("body_part", {}).items()}
    for key, region in body_parts.items():
        try:
            region_parts(region)
        except ValueError:
            raise ValueError(f"body part {key}: unknown region {region!r}.")
    region_words = []
    for region, text in regions.get("region_words", []):
        region_parts(region)
        region_words.append((region, compile_(text, f"region words {region}")))
    part_words = []
    for part, text in regions.get("part_words", {}).items():
        if part not in PARTS:
            raise ValueError(f"part words: unknown body part {part!r}.")
        part_words.append((part, compile_(text, f"part words {part}")))
    return RuleSet(
        version=version,
        rules=tuple(rules),
        body_parts=body_parts,
        region_words=tuple(region_words),
        part_words=tuple(part_words),
    )


# -- classification ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Facts:
    modality: str
    text: str
    image_type: frozenset[str]
    contrast: bool
    b_max: float
    delay: float | None
    tr: float | None
    te: float | None
    ti: float | None


def _normalized(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


def _body_part_key(value: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", value.upper())


def classify_series(series: SeriesInfo, rules: RuleSet | None = None) -> Classification:
    """The series' kind by the first rule that holds, and its body region; "unknown" if no rule holds."""
    rules = rules or DEFAULT_RULES
    facts = _Facts(
        modality=series.modality.upper(),
        text=_normalized(" | ".join(t for t in (series.description, series.protocol_name) if t)),
        image_type=frozenset(v.strip().upper() for v in series.image_type),
        contrast=series.has_contrast_agent,
        b_max=max(series.diffusion_b_values, default=0.0),
        delay=series.contrast_delay_seconds,
        tr=series.repetition_time,
        te=series.echo_time,
        ti=series.inversion_time,
    )
    region, region_reason = detect_region(series, rules)
    region_reasons = (region_reason,) if region_reason else ()
    for rule in rules.rules:
        evidence = rule.evidence(facts)
        if evidence is not None:
            evidence = [e for e in evidence if e not in rule.reason]
            because = Why(rule.reason)  # the rules file's words: each is in the catalogue (tests/trials/qc)
            if evidence:
                template = gettext_noop("%(reason)s (%(evidence)s) [rule %(rule)s, rules %(version)s]")
                reason = Why(template, reason=because, evidence=evidence, rule=rule.id, version=rules.version)
            else:
                template = gettext_noop("%(reason)s [rule %(rule)s, rules %(version)s]")
                reason = Why(template, reason=because, rule=rule.id, version=rules.version)
            return Classification(rule.kind, region, rule.confidence, (reason, *region_reasons))
    if facts.modality:
        template = gettext_noop("no rule recognises a %(modality)s series [rules %(version)s]")
        reason = Why(template, modality=facts.modality, version=rules.version)
    else:
        template = gettext_noop("no rule recognises a series without modality [rules %(version)s]")
        reason = Why(template, version=rules.version)
    return Classification("unknown", region, 0.0, (reason, *region_reasons))


def detect_region(series: SeriesInfo, rules: RuleSet | None = None) -> tuple[str, str]:
    """The body region and why: from the series description, else the protocol name, else BodyPartExamined.

    The description comes first because BodyPartExamined is often set once for the whole examination (a
    chest reconstruction of a chest-abdomen-pelvis scan still says ABDOMEN, or CHEST for all of it).
    """
    rules = rules or DEFAULT_RULES
    for template, text in (
        (gettext_noop("region %(region)s from the description"), series.description),
        (gettext_noop("region %(region)s from the protocol name"), series.protocol_name),
    ):
        region = _region_in_text(_normalized(text), rules)
        if region:
            return region, Why(template, region=region)
    key = _body_part_key(series.body_part)
    if key:
        region = rules.body_parts.get(key) or _region_in_text(_normalized(series.body_part), rules)
        if region:
            template = gettext_noop("region %(region)s from the body part examined (%(key)s)")
            return region, Why(template, region=region, key=key)
        return "", Why(gettext_noop("the body part examined (%(key)s) is no region the protocols use"), key=key)
    return "", ""


def _region_in_text(text: str, rules: RuleSet) -> str:
    if not text:
        return ""
    parts: set[str] = set()
    for region, pattern in rules.region_words:
        if pattern.search(text):
            parts |= region_parts(region)
    for part, pattern in rules.part_words:
        if pattern.search(text):
            parts.add(part)
    return region_from_parts(frozenset(parts))


DEFAULT_RULES = load_rules()
