"""Where a series' slices lie: positions along the slice normal, spacing, gaps, duplicates, orientations."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, replace

from .series import InstanceInfo

# Positions closer than this along the normal are the same slice (DS values carry rounding noise).
POSITION_TOLERANCE_MM = 0.05
# A step longer than this many median spacings means slices are missing.
GAP_FACTOR = 1.5
# Steps that vary by more than this fraction of the median spacing make the spacing inconsistent.
SPACING_TOLERANCE = 0.10
_AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class Gap:
    """Slices missing between two positions (mm along the slice normal)."""

    start_mm: float
    end_mm: float
    missing: int


@dataclass(frozen=True)
class Stack:
    """The geometry of a series' largest group of parallel slices."""

    orientation_groups: int = 0
    plane: str = ""  # axial, coronal, sagittal or oblique: the plane of the slices analysed
    images: int = 0  # images in the analysed group that have a position
    positions: tuple[float, ...] = ()  # distinct positions along the normal, ascending
    images_per_position: int = 1  # more than 1 for multi-volume series (DWI b-values, echoes, phases)
    duplicates: int = 0  # images beyond images_per_position at one position
    spacing_mm: float | None = None  # median step between distinct positions
    gaps: tuple[Gap, ...] = ()
    spacing_variation: float = 0.0  # (largest - smallest step) / median, steps that are not gaps only
    smallest_step_mm: float | None = None
    largest_step_mm: float | None = None

    @property
    def missing(self) -> int:
        return sum(gap.missing for gap in self.gaps)


def slice_normal(orientation: tuple[float, ...]) -> tuple[float, float, float]:
    """The unit normal of a slice: row direction x column direction."""
    r, c = orientation[:3], orientation[3:6]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    length = math.sqrt(sum(v * v for v in n)) or 1.0
    return (n[0] / length, n[1] / length, n[2] / length)


def plane_name(normal: tuple[float, float, float]) -> str:
    axis = max(range(3), key=lambda i: abs(normal[i]))
    if abs(normal[axis]) < 0.9:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def analyse(instances: tuple[InstanceInfo, ...] | list[InstanceInfo]) -> Stack:
    """The geometry of the largest group of parallel slices among the instances that have a position."""
    placed = [i for i in instances if i.image_position is not None]
    if not placed:
        return Stack()
    known = [i.image_orientation for i in placed if i.image_orientation is not None and len(i.image_orientation) == 6]
    fallback = Counter(known).most_common(1)[0][0] if known else _AXIAL

    groups: list[tuple[tuple[float, float, float], list[InstanceInfo]]] = []
    for instance in placed:
        orientation = (
            instance.image_orientation
            if instance.image_orientation and len(instance.image_orientation) == 6
            else fallback
        )
        normal = slice_normal(orientation)
        for group_normal, members in groups:
            if abs(sum(a * b for a, b in zip(normal, group_normal, strict=True))) > 0.9999:
                members.append(instance)
                break
        else:
            groups.append((normal, [instance]))
    normal, members = max(groups, key=lambda g: len(g[1]))

    distances = sorted(sum(p * n for p, n in zip(i.image_position, normal, strict=True)) for i in members)  # type: ignore[arg-type]
    positions: list[float] = []
    counts: list[int] = []
    for d in distances:
        if positions and d - positions[-1] <= POSITION_TOLERANCE_MM:
            counts[-1] += 1
        else:
            positions.append(d)
            counts.append(1)
    # A multi-volume series has the same number of images at every position; surplus beyond that number
    # (the most common count, the smaller on a tie) is duplication.
    per_position = min(Counter(counts).most_common(), key=lambda kv: (-kv[1], kv[0]))[0]
    duplicates = sum(max(0, c - per_position) for c in counts)

    stack = Stack(
        orientation_groups=len(groups),
        plane=plane_name(normal),
        images=len(members),
        positions=tuple(positions),
        images_per_position=per_position,
        duplicates=duplicates,
    )
    steps = [b - a for a, b in zip(positions, positions[1:], strict=False)]
    if not steps:
        return stack
    spacing = statistics.median(steps)
    gaps = []
    regular = []
    for start, step in zip(positions, steps, strict=False):
        if len(steps) >= 2 and step > GAP_FACTOR * spacing:
            gaps.append(Gap(start_mm=start, end_mm=start + step, missing=max(1, round(step / spacing) - 1)))
        else:
            regular.append(step)
    variation = (max(regular) - min(regular)) / spacing if regular else 0.0
    return replace(
        stack,
        spacing_mm=spacing,
        gaps=tuple(gaps),
        spacing_variation=variation,
        smallest_step_mm=min(regular) if regular else None,
        largest_step_mm=max(regular) if regular else None,
    )


def missing_instance_numbers(instances: tuple[InstanceInfo, ...] | list[InstanceInfo]) -> int:
    """How many instance numbers are absent between the smallest and the largest present."""
    numbers = {i.instance_number for i in instances if i.instance_number is not None}
    if len(numbers) < 2:
        return 0
    return (max(numbers) - min(numbers) + 1) - len(numbers)
