"""Compressed pixel data that the server can decode, decoded once at ingest.

`check_receivable` (validate.py) checks the structure of encapsulated pixel data (items, fragments, lengths), not
the codestream inside: a JPEG 2000 frame cut short or an RLE header gone wrong passes it, and the image would be
stored, pass QC and fail only when a reader opened it. So each frame of an encapsulated image is decoded here,
one at a time (a long multi-frame image is never held whole), by the same pydicom decoders that render and
transcode it for DICOMweb. An image in a syntax this server has no decoder for (video, say) is refused too: the
viewer's codecs are the same set, so no reader could see it.

Before any frame is decoded, the picture size each JPEG 2000 or JPEG frame's own header declares is read (the
codecs' header readers, no pixels) and must fit the image's Rows, Columns and Samples per Pixel, and each RLE
segment's runs are counted (without writing them) to what it would decode to: a decoder allocates what the
codestream says (pydicom's RLE decoder writes every run, then trims to the image), so a few kilobytes declaring a
1x1 image could otherwise make it allocate gigabytes before the mismatch is noticed.

Never quotes the decoder's message, which can carry bytes of the file: a code and a sentence only.
"""

from __future__ import annotations

import io
import struct

from pydicom.uid import (
    UID,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
    RLETransferSyntaxes,
)

from ..deid.errors import DeidRejected, pixels_too_long, undecodable_pixels, unsupported_syntax


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

    _check_declared_sizes(data, syntax)
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


def _check_declared_sizes(data: bytes, syntax: UID) -> None:
    """Raise `pixels_too_long()` if a frame's codestream declares more rows, columns or components than the
    image's pixel module; a frame whose header cannot be read is left to the decoder, which refuses it."""
    if syntax in JPEG2000TransferSyntaxes:
        from openjpeg import get_parameters
    elif syntax in JPEGTransferSyntaxes or syntax in JPEGLSTransferSyntaxes:
        get_parameters = _jpeg_parameters
    elif syntax in RLETransferSyntaxes:
        get_parameters = None  # its segments declare no size: what each would decode to is counted
    else:
        return
    from pydicom import dcmread
    from pydicom.encaps import generate_frames

    try:
        ds = dcmread(io.BytesIO(data))
        rows, columns = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel") or 1)
        frames = generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames") or 1))
        for frame in frames:
            if get_parameters is None:
                if _rle_decodes_past(frame, rows * columns):
                    raise pixels_too_long()
                continue
            try:
                declared = get_parameters(frame)
            except Exception:  # noqa: BLE001, S112 - an unreadable header is the decoder's to refuse
                continue
            components = declared.get("samples_per_pixel", declared.get("nr_components", 1))
            if declared["rows"] > rows or declared["columns"] > columns or components > samples:
                raise pixels_too_long()
    except DeidRejected:
        raise
    except Exception:  # noqa: BLE001 - a file the reader cannot walk is the decoder's to refuse
        return


def _jpeg_parameters(frame: bytes) -> dict:
    """A JPEG or JPEG-LS frame's size from libjpeg's header reader, else from pydicom's own reading of the frame
    header (which also reads frames whose later markers libjpeg's reader stops at, as some decoders accept)."""
    from libjpeg import get_parameters

    try:
        return get_parameters(frame)
    except Exception:  # noqa: BLE001 - try pydicom's reader of the same header
        from pydicom.pixels.utils import _get_jpg_parameters

        info = _get_jpg_parameters(frame)
        return {"rows": info["height"], "columns": info["width"], "nr_components": info["components"]}


def _rle_decodes_past(frame: bytes, segment_bytes: int) -> bool:
    """Whether an RLE frame (PS3.5 Annex G) has a segment whose runs add up to twice its `segment_bytes` (Rows x
    Columns) or more: counted run by run without writing them, stopping there, so a segment of replicate runs
    (64 times its size) costs nothing to refuse. A header that cannot be read is left to the decoder."""
    if len(frame) < 64:
        return False
    count, *offsets = struct.unpack_from("<16L", frame)
    if not 1 <= count <= 15:
        return False
    ends = [*offsets[1:count], len(frame)]
    limit = 2 * segment_bytes + 128
    for start, end in zip(offsets[:count], ends, strict=True):
        out, at = 0, start
        while at < min(end, len(frame)):
            header = frame[at]
            if header < 128:  # the next header + 1 bytes as they are
                out += header + 1
                at += header + 2
            elif header > 128:  # the next byte 257 - header times
                out += 257 - header
                at += 2
            else:  # 128: no operation
                at += 1
            if out >= limit:
                return True
    return False
