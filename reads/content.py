"""What a reader records in one read, as the read page sends it: parsed, checked and normalised here.

Lengths arrive as millimetre strings with one decimal ("23.0") and are kept as integer tenths of a
millimetre, the unit of the criteria engine; a float never enters the arithmetic. Points are image
(column, row) pixel coordinates of the measurement's two ends.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils.translation import gettext as _

from .sites import BY_CODE

TARGET_STATUSES = ("measured", "too_small", "disappeared", "not_evaluable")
NON_TARGET_STATUSES = ("present", "absent", "unequivocal_progression", "not_evaluable")
NEW_LESIONS = ("none", "equivocal", "unequivocal")
LABEL = {"target": re.compile(r"^T\d{2}$"), "non_target": re.compile(r"^NT\d{2}$"), "new": re.compile(r"^N\d{2}$")}
UID = re.compile(r"^[0-9][0-9.]{0,63}$")
MAX_LESIONS = 60
MAX_MM = Decimal("2000")


class ContentError(ValueError):
    """The content cannot be read at all; `errors` maps a place ("targets[1].long_mm") to what is wrong."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


@dataclass(frozen=True)
class ImageRef:
    study: str
    series: str
    sop: str
    frame: int = 1

    def as_json(self) -> dict:
        return {"study": self.study, "series": self.series, "sop": self.sop, "frame": self.frame}


@dataclass(frozen=True)
class Entry:
    """One lesion as recorded in one read."""

    label: str
    category: str  # target | non_target | new
    site: str
    is_node: bool
    status: str
    long_axis: int | None = None  # tenths of a millimetre
    short_axis: int | None = None
    long_points: tuple | None = None
    short_points: tuple | None = None
    image: ImageRef | None = None

    def as_json(self) -> dict:
        out = {"label": self.label, "site": self.site, "is_node": self.is_node}
        if self.category != "new":
            out["status"] = self.status
        if self.category == "target":
            out.update(
                long_mm=mm_text(self.long_axis),
                short_mm=mm_text(self.short_axis),
                long_points=_points_json(self.long_points),
                short_points=_points_json(self.short_points),
            )
        out["image"] = self.image.as_json() if self.image else None
        return out


@dataclass(frozen=True)
class Content:
    targets: tuple[Entry, ...] = ()
    non_targets: tuple[Entry, ...] = ()
    new_lesions: str = "none"
    new: tuple[Entry, ...] = field(default=())

    def entries(self) -> tuple[Entry, ...]:
        return self.targets + self.non_targets + self.new

    def images(self) -> list[ImageRef]:
        return [e.image for e in self.entries() if e.image is not None]

    def as_json(self) -> dict:
        return {
            "targets": [e.as_json() for e in self.targets],
            "non_targets": [e.as_json() for e in self.non_targets],
            "new_lesions": self.new_lesions,
            "new": [e.as_json() for e in self.new],
        }


def mm_text(tenths: int | None) -> str | None:
    """Tenths of a millimetre as the millimetre text the read page and the tables show ("23.0"); None stays None."""
    return None if tenths is None else f"{tenths // 10}.{tenths % 10}"


def drawn_length_mm(points, pixel_spacing) -> Decimal:
    """The length in millimetres of a line drawn between two image (column, row) points, at the image's Pixel
    Spacing (0028,0030): the distance between rows first, then between columns (PS3.3 C.7.6.2.1.1).

    Decimal arithmetic from the values' decimal text, so the same points and spacing always give the same length.
    """
    (x1, y1), (x2, y2) = points_mm(points, pixel_spacing)
    return ((x2 - x1) ** 2 + (y2 - y1) ** 2).sqrt()


def points_mm(points, pixel_spacing) -> list[tuple[Decimal, Decimal]]:
    """Image (column, row) points as (x, y) in millimetres at the image's Pixel Spacing (rows first), in Decimal
    arithmetic from the values' decimal text (`drawn_length_mm`)."""
    row_spacing, column_spacing = (Decimal(str(v)) for v in pixel_spacing)
    return [(Decimal(str(column)) * column_spacing, Decimal(str(row)) * row_spacing) for column, row in points]


def _points_json(points):
    return None if points is None else [list(p) for p in points]


def tenths(value, where: str, errors: dict) -> int | None:
    """A millimetre value ("23.0", 23 or Decimal) as integer tenths, rounded half up; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, (bool, float)):
        errors[where] = _("Send millimetres as a decimal string such as 23.0.")
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        errors[where] = _("Not a number of millimetres.")
        return None
    if not number.is_finite() or number < 0 or number > MAX_MM:
        errors[where] = _("A length must be between 0 and 2000 mm.")
        return None
    return int((number * 10).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _points(value, where: str, errors: dict):
    if value is None:
        return None
    try:
        pair = tuple((float(p[0]), float(p[1])) for p in value)
    except (TypeError, ValueError, IndexError):
        errors[where] = _("Give two (column, row) points.")
        return None
    if len(pair) != 2 or not all(-1e5 < c < 1e5 for point in pair for c in point):
        errors[where] = _("Give two (column, row) points.")
        return None
    return pair


def _image(value, where: str, errors: dict) -> ImageRef | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors[where] = _("The image reference is not readable.")
        return None
    uids = [str(value.get(k) or "") for k in ("study", "series", "sop")]
    if not all(UID.match(u) for u in uids):
        errors[where] = _("The image reference needs study, series and instance UIDs.")
        return None
    frame = value.get("frame", 1)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 1:
        errors[where] = _("The frame number must be 1 or more.")
        return None
    return ImageRef(*uids, frame=frame)


def _entries(raw, category: str, statuses, errors: dict) -> tuple[Entry, ...]:
    name = {"target": "targets", "non_target": "non_targets", "new": "new"}[category]
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_LESIONS:
        errors[name] = _("Expected a list of lesions.")
        return ()
    out = []
    for n, item in enumerate(raw):
        where = f"{name}[{n}]"
        if not isinstance(item, dict):
            errors[where] = _("Expected a lesion.")
            continue
        label = str(item.get("label") or "")
        if not LABEL[category].match(label):
            errors[f"{where}.label"] = _("%(label)s is not a valid label here.") % {"label": label[:8] or "-"}
            continue
        site = str(item.get("site") or "")
        if site and site not in BY_CODE:
            errors[f"{where}.site"] = _("Choose the location from the list.")
            continue
        status = str(item.get("status") or statuses[0])
        if status not in statuses:
            errors[f"{where}.status"] = _("Unknown status %(status)s.") % {"status": status[:32]}
            continue
        is_node = BY_CODE[site].node if site else bool(item.get("is_node"))
        entry = Entry(
            label=label,
            category=category,
            site=site,
            is_node=is_node,
            status=status,
            long_axis=tenths(item.get("long_mm"), f"{where}.long_mm", errors) if category == "target" else None,
            short_axis=tenths(item.get("short_mm"), f"{where}.short_mm", errors) if category == "target" else None,
            long_points=_points(item.get("long_points"), f"{where}.long_points", errors)
            if category == "target"
            else None,
            short_points=_points(item.get("short_points"), f"{where}.short_points", errors)
            if category == "target"
            else None,
            image=_image(item.get("image"), f"{where}.image", errors),
        )
        out.append(entry)
    return tuple(out)


def parse_content(raw) -> Content:
    """Read the page's JSON into a Content, or raise ContentError naming every unreadable place."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ContentError({"content": _("Expected an object.")})
    errors: dict[str, str] = {}
    new_lesions = str(raw.get("new_lesions") or "none")
    if new_lesions not in NEW_LESIONS:
        errors["new_lesions"] = _("Choose none, equivocal or unequivocal.")
    content = Content(
        targets=_entries(raw.get("targets"), "target", TARGET_STATUSES, errors),
        non_targets=_entries(raw.get("non_targets"), "non_target", NON_TARGET_STATUSES, errors),
        new_lesions=new_lesions,
        new=_entries(raw.get("new"), "new", ("present",), errors),
    )
    labels = [e.label for e in content.entries()]
    if len(labels) != len(set(labels)):
        errors["labels"] = _("A lesion label is used twice.")
    if errors:
        raise ContentError(errors)
    return content
