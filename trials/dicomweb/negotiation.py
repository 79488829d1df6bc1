"""Reading the Accept header the way PS3.18 8.7 asks: media types with their type and transfer-syntax parameters."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation

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
        if not q > 0:
            continue  # RFC 9110 12.4.2: q=0 says the client does not accept it
        result.append(Accepted(pieces[0].lower(), params.get("type", "").lower(), params.get("transfer-syntax", ""), q))
    return sorted(result, key=lambda a: -a.q)


def covers(media_range: str, media_type: str) -> bool:
    """Whether an Accept entry's media range (`*/*`, `application/*` or a type) covers `media_type` (RFC 9110
    12.5.1)."""
    return media_range in (media_type, "*/*", media_type.split("/")[0] + "/*")


# PS3.18 Table 8.7.3-5: the media type of a compressed frame, by its transfer syntax (with the names older
# editions and clients still send). This server makes none of them: a frame comes in one only as stored.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": ("image/x-dicom-rle", "image/dicom-rle"),
    "1.2.840.10008.1.2.4.50": ("image/jpeg",),
    "1.2.840.10008.1.2.4.51": ("image/jpeg",),
    "1.2.840.10008.1.2.4.57": ("image/jpeg",),
    "1.2.840.10008.1.2.4.70": ("image/jpeg",),
    "1.2.840.10008.1.2.4.80": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.81": ("image/jls", "image/x-jls"),
    "1.2.840.10008.1.2.4.90": ("image/jp2",),
    "1.2.840.10008.1.2.4.91": ("image/jp2",),
    "1.2.840.10008.1.2.4.92": ("image/jpx",),
    "1.2.840.10008.1.2.4.93": ("image/jpx",),
    "1.2.840.10008.1.2.4.201": ("image/jphc",),
    "1.2.840.10008.1.2.4.202": ("image/jphc",),
    "1.2.840.10008.1.2.4.203": ("image/jphc",),
    "1.2.840.10008.1.2.4.100": ("video/mpeg2",),
    "1.2.840.10008.1.2.4.101": ("video/mpeg2",),
    "1.2.840.10008.1.2.4.102": ("video/mp4",),
    "1.2.840.10008.1.2.4.103": ("video/mp4",),
    "1.2.840.10008.1.2.4.104": ("video/mp4",),
    "1.2.840.10008.1.2.4.105": ("video/mp4",),
    "1.2.840.10008.1.2.4.106": ("video/mp4",),
    "1.2.840.10008.1.2.4.107": ("video/H265",),
    "1.2.840.10008.1.2.4.108": ("video/H265",),
}
OCTET_STREAM = "application/octet-stream"


def frame_choice(accepted: list[Accepted], stored: str, *, one: bool = True) -> tuple[str, str, bool] | None:
    """(the frames' media type, the transfer syntax to make them in, single part?) for the first acceptable
    entry this server can answer (PS3.18 8.7.3): application/octet-stream as stored ('*', or the stored syntax)
    or decoded (the default, Explicit VR Little Endian); a compressed media type only if the frames are stored
    in it. A single part media type (application/octet-stream itself) only for `one` frame: PS3.18 10.4.4 has
    it ignored for several. None if no entry can be answered (406)."""
    own = FRAME_MEDIA_TYPES.get(stored, ())
    for entry in accepted:
        if entry.media_type == "*/*":
            return OCTET_STREAM, "*", False
        single = not covers(entry.media_type, "multipart/related")
        if single and not one:
            continue
        if not single:
            part_type = entry.part_type or OCTET_STREAM
        elif covers(entry.media_type, OCTET_STREAM):
            part_type = OCTET_STREAM
        else:
            continue
        if part_type in (OCTET_STREAM, "*/*", "application/*"):
            if entry.transfer_syntax in ("", "*", EXPLICIT_VR_LE, stored):
                return OCTET_STREAM, entry.transfer_syntax, single
            continue
        if entry.transfer_syntax not in ("", "*", stored):
            continue  # a compressed syntax other than the stored one: this server transcodes to none
        named = next((media_type for media_type in own if media_type.lower() == part_type), None)
        if named:
            return named, stored, single
        if own and part_type == own[0].split("/")[0] + "/*":
            return own[0], stored, single
    return None


class DicomNegotiation(BaseContentNegotiation):
    """DRF's content negotiation for a DICOMweb view answered through DRF (STOW-RS): the renderer of the client's
    most preferred acceptable media type, by q-value (DRF's own ranks by specificity and ignores q, so
    `application/dicom+json;q=0.5, application/dicom+xml` was answered in JSON); 406 if none."""

    def select_parser(self, request, parsers):
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(self, request, renderers, format_suffix=None):
        for entry in parse_accept(request.META.get("HTTP_ACCEPT")):
            for renderer in renderers:
                if covers(entry.media_type, renderer.media_type):
                    return renderer, renderer.media_type
        raise exceptions.NotAcceptable(available_renderers=renderers)
