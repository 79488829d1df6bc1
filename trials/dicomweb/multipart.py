"""multipart/related bodies as STOW-RS sends them (RFC 2387), read from a stream one part at a time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import BinaryIO

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_TYPE = re.compile(r'type="?([^";]+)"?', re.IGNORECASE)


class MultipartError(ValueError):
    """A body that is not a well-formed multipart/related message."""


def parse_content_type(header: str) -> tuple[str, str, str]:
    """(media type, boundary, the `type` parameter) of a multipart/related Content-Type header."""
    media = header.split(";", 1)[0].strip().lower()
    if media != "multipart/related":
        raise MultipartError("the body must be multipart/related")
    boundary = _BOUNDARY.search(header)
    if not boundary:
        raise MultipartError("the Content-Type header has no boundary")
    part_type = _TYPE.search(header)
    return media, boundary.group(1), (part_type.group(1).lower() if part_type else "")


def iter_parts(stream: BinaryIO, boundary: str, *, max_part: int, chunk: int = 1 << 20) -> Iterator[tuple[dict, bytes]]:
    """Yield (headers, body) of each part, holding at most one part and one chunk in memory."""
    delimiter = b"--" + boundary.encode("latin-1")
    buffer = b""
    # Skip the preamble up to the first delimiter.
    while True:
        at = buffer.find(delimiter)
        if at >= 0:
            buffer = buffer[at + len(delimiter) :]
            break
        data = stream.read(chunk)
        if not data:
            raise MultipartError("no part delimiter found")
        buffer = buffer[-len(delimiter) :] + data
    separator = b"\r\n" + delimiter
    while True:
        while len(buffer) < 2:
            data = stream.read(chunk)
            if not data:
                raise MultipartError("the body ends without a closing delimiter")
            buffer += data
        if buffer.startswith(b"--"):
            return
        # Find the end of this part.
        search_from = 0
        while True:
            end = buffer.find(separator, search_from)
            if end >= 0:
                break
            search_from = max(0, len(buffer) - len(separator))
            if len(buffer) > max_part + 65536:
                raise MultipartError("a part is larger than the largest file accepted")
            data = stream.read(chunk)
            if not data:
                raise MultipartError("the body ends in the middle of a part")
            buffer += data
        part, buffer = buffer[:end], buffer[end + len(separator) :]
        head_end = part.find(b"\r\n\r\n")
        if not part.startswith(b"\r\n") or head_end < 0:
            raise MultipartError("a part has no header section")
        headers = {}
        for line in part[2:head_end].split(b"\r\n"):
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")
        yield headers, part[head_end + 4 :]
