"""Compressed pixel data that the server can decode, decoded once at ingest.

`check_receivable` (validate.py) checks the structure of encapsulated pixel data (items, fragments, lengths), not
the codestream inside: a JPEG 2000 frame cut short or an RLE header gone wrong passes it, and the image would be
stored, pass QC and fail only when a reader opened it. So each frame of an encapsulated image is decoded here,
one at a time (a long multi-frame image is never held whole), by the same pydicom decoders that render and
transcode it for DICOMweb. An image in a syntax this server has no decoder for (video, say) is refused too: the
viewer's codecs are the same set, so no reader could see it.

Never quotes the decoder's message, which can carry bytes of the file: a code and a sentence only.
"""

from __future__ import annotations

import io

from pydicom.uid import UID

from ..deid.errors import undecodable_pixels, unsupported_syntax


def check_decodable(data: bytes, transfer_syntax_uid: str) -> None:
    """Raise `undecodable_pixels()` (code 'pixels_undecodable') if the encapsulated pixel data of Part 10 `data`
    do not decode, frame by frame, into as many frames as the file says."""
    syntax = UID(transfer_syntax_uid)
    if not syntax.is_transfer_syntax:  # newer than pydicom's dictionary (the engine refuses it first)
        raise unsupported_syntax(syntax)
    if not syntax.is_encapsulated:
        return
    if not decoder_available(syntax):  # nor the viewer, whose codecs are the same set
        raise unsupported_syntax(syntax, syntax.name)
    from pydicom import Dataset
    from pydicom.pixels import iter_pixels

    header = Dataset()
    try:
        decoded = sum(1 for _frame in iter_pixels(io.BytesIO(data), ds_out=header))
        whole = decoded == int(header.get("NumberOfFrames") or 1)  # fewer fragments than frames end it early
    except MemoryError:
        raise
    except Exception:  # noqa: BLE001 - any decoder failure is the file's damage; its message is not kept
        whole = False
    if not whole:
        raise undecodable_pixels()


def decoder_available(syntax: UID) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:
        return False
