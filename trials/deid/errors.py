"""Why an instance was not accepted, in words a site coordinator can act on."""

from __future__ import annotations


def gettext_noop(message: str) -> str:
    """Marks a reason's template for the translation catalogue (makemessages); this library stays Django-free."""
    return message


class DeidRejected(Exception):
    """An instance that cannot be de-identified safely.

    `code` is short and stable for machines; `reason` is a sentence for people, in English, made from `template`
    (the translation catalogue's msgid) and `params`, which a page uses to say it in its reader's language.
    Neither ever holds a value read from the instance's identifying attributes, so all can be logged and shown.
    """

    def __init__(self, code: str, template: str, **params: str) -> None:
        reason = template % params if params else template
        super().__init__(code, reason)
        self.code = code
        self.reason = reason
        self.template = getattr(template, "template", template)  # a ctims.i18n.Text keeps its own
        self.params = getattr(template, "params", params)

    def __str__(self) -> str:
        return f"{self.code}: {self.reason}"

    def __repr__(self) -> str:
        return f"DeidRejected({self.code!r}, {self.reason!r})"


# The UIDs an instance is filed and found by, Type 1 in every composite object (PS3.3): a file without one of them
# is refused with its own code, by the engine (so the site's browser holds it back) and by the server's checks.
FILING_UIDS = {
    0x00080018: ("no_sop_instance_uid", gettext_noop("The file has no SOP Instance UID, so it cannot be tracked.")),
    0x0020000D: (
        "no_study_instance_uid",
        gettext_noop(
            "The file has no Study Instance UID, so it cannot be filed under its study; "
            "please export it again from the scanner or PACS."
        ),
    ),
    0x0020000E: (
        "no_series_instance_uid",
        gettext_noop(
            "The file has no Series Instance UID, so it cannot be filed under its series; "
            "please export it again from the scanner or PACS."
        ),
    ),
}


def undecodable_pixels() -> DeidRejected:
    """The rejection of an image whose compressed pixel data its decoder refuses (damaged, or frames missing):
    the decoder's own message is never kept, as it can carry bytes of the file."""
    return DeidRejected(
        "pixels_undecodable",
        gettext_noop(
            "The image's compressed pixel data cannot be decoded: it is damaged, so the image could not be shown to "
            "a reader. Please export it again from the scanner or PACS and resend it."
        ),
    )


def excess_frames(length: int, expected: int, frames: int) -> bool:
    """Whether native pixel data of `length` bytes, where the pixel module makes `expected` for `frames` frames,
    hold a whole frame or more past the image. pydicom reads such bytes as further frames (so a rendered frame
    or thumbnail failed); less than a frame it drops as padding, as some scanners write (pydicom's
    MR_small_padded.dcm), and that is received."""
    return length - expected > 1 and length - expected >= expected // max(frames, 1)


def pixels_too_long(rejection: type[DeidRejected] = DeidRejected) -> DeidRejected:
    """The rejection of an image whose pixel data hold more than its pixel module says (rows, columns, samples,
    bits, frames): uncompressed bytes past the image, or a compressed frame that would decode to a larger picture.
    What lies past the image is seen by no check and no reader, and a small compressed frame declaring a huge
    picture would make the decoder allocate it."""
    return rejection(
        "pixels_too_long",
        gettext_noop(
            "The image data hold more than the image size says (rows, columns, frames): the file looks damaged or "
            "crafted, so it was not stored. Please export it again from the scanner or PACS and resend it."
        ),
    )


def uncompressed_ybr_422(rejection: type[DeidRejected] = DeidRejected) -> DeidRejected:
    """The rejection of an image whose colour pixels are stored uncompressed as YBR_FULL_422 (each pair of pixels
    shares its two chroma samples, PS3.3 C.7.6.3.1.2): the checks that read a colour image's pixels for text take
    whole samples per pixel, so such an image could be neither examined nor shown. It was refused as "cut short",
    which sent the coordinator to export the same file again."""
    return rejection(
        "ybr_full_422",
        gettext_noop(
            "The image's colour pixels are stored uncompressed as YBR_FULL_422, which this system does not take. "
            "Please export the images in RGB colour, or compressed (JPEG), and resend them."
        ),
    )


def unsupported_syntax(syntax: str, name: str = "") -> DeidRejected:
    """The rejection of an image encoded in a transfer syntax this system cannot decode (`name`, pydicom's name
    of it, if it has one), so that neither the server nor the viewer could show it to a reader. The UID is
    named only when it is written as a UID: it is read from the file."""
    shown = name or (syntax if syntax and len(syntax) <= 64 and set(syntax) <= set("0123456789.") else "?")
    return DeidRejected(
        "transfer_syntax_unsupported",
        gettext_noop(
            "The image is encoded in a form this system cannot decode (%(syntax)s), so it could not be shown to a "
            "reader. Please export it uncompressed, or as JPEG 2000, JPEG-LS, JPEG or RLE, and resend it."
        ),
        syntax=shown,
    )


def missing_uid(tag: int, rejection: type[DeidRejected] = DeidRejected) -> DeidRejected:
    """The rejection of a file without the filing UID `tag` (a key of FILING_UIDS)."""
    code, reason = FILING_UIDS[tag]
    return rejection(code, reason)


def palette_colour(rejection: type[DeidRejected] = DeidRejected) -> DeidRejected:
    """The rejection of a palette-colour image (each pixel an index into a colour table, PS3.3 C.7.6.3.1.5) whose
    pixels must be examined for text: OCR reads grey levels and colours, and indices are neither (text drawn in a
    colour whose index is near its background's is not seen; a redaction would fill with whatever colour the
    lowest index names). An image that need not be examined is not refused for its colours."""
    return rejection(
        "palette_colour",
        gettext_noop(
            "The image's pixels are palette colour (indices into a colour table), which cannot be examined here "
            "for text that may identify the patient. Please export the images in RGB colour or greyscale, and "
            "resend them."
        ),
    )
