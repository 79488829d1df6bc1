"""Reading the Accept header the way PS3.18 8.7 asks: media types with their type and transfer-syntax parameters."""

from __future__ import annotations

from dataclasses import dataclass

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"


@dataclass(frozen=True)
class Accepted:
    media_type: str  # e.g. multipart/related, application/dicom+json, image/png
    part_type: str = ""  # the `type` parameter of multipart/related
    transfer_syntax: str = ""  # the `transfer-syntax` parameter; "*" means as stored
    q: float = 1.0


def parse_accept(header: str | None) -> list[Accepted]:
    """The acceptable media types, most preferred first (an absent header accepts anything)."""
    if not header:
        return [Accepted("*/*")]
    result = []
    for item in header.split(","):
        pieces = [p.strip() for p in item.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            if "=" in piece:
                key, value = piece.split("=", 1)
                params[key.strip().lower()] = value.strip().strip('"')
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        result.append(Accepted(pieces[0].lower(), params.get("type", "").lower(), params.get("transfer-syntax", ""), q))
    return sorted(result, key=lambda a: -a.q)


def wants(accepted: list[Accepted], *media_types: str) -> Accepted | None:
    """The first acceptable entry matching one of `media_types` (wildcards in the header count)."""
    for entry in accepted:
        for media_type in media_types:
            major = media_type.split("/")[0]
            if entry.media_type in (media_type, "*/*", f"{major}/*"):
                return entry
    return None
