"""multipart/related bodies as STOW-RS sends them (RFC 2046 5.1.1, RFC 2387), read from a stream in one pass.

Why not a library: measured on the same 256 MiB body of 512 KiB parts, python-multipart 0.0.34 is linear
(0.12 s) but refuses LF-only line breaks and transport padding after a boundary ("Did not find CR at end of
boundary"); werkzeug 3.1's MultipartDecoder and multipart 2.0.1 refuse every part without a
Content-Disposition header (they parse multipart/form-data, and STOW parts carry none); streaming-form-data
2.1 refuses any Content-Type but multipart/form-data, and Django's MultiPartParser is for forms too. The parser below is
small: each byte is searched at most twice (the tail kept between reads is shorter than the delimiter), a
part goes to a spooled temporary file (memory up to `spool_memory`, disk beyond), and nothing is ever copied
twice, so time grows with the body's length alone. `Counters` shows the work for tests that check linearity
without timing.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_TYPE = re.compile(r'type="?([^";]+)"?', re.IGNORECASE)

MAX_HEADER_BYTES = 16 * 1024  # the header section of one part
MAX_PADDING = 1024  # transport padding (spaces and tabs) after a boundary


class MultipartError(ValueError):
    """A body that is not a well-formed multipart/related message."""


class BodyTooLarge(MultipartError):
    """The request body is longer than the largest request accepted (413)."""


class BodyTimeout(MultipartError):
    """The request body stopped arriving, or took longer than a request may (408)."""


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


class BoundedBody:
    """A request body read with a size limit and an overall deadline.

    An idle connection is the server's socket timeout (see `stow._client_socket`); a read it interrupts
    raises TimeoutError, which becomes BodyTimeout here.
    """

    def __init__(
        self, stream, *, max_bytes: int, deadline: float | None = None, clock: Callable[[], float] = time.monotonic
    ):
        self.stream, self.max_bytes, self.deadline, self.clock = stream, max_bytes, deadline, clock
        self.received = 0

    def read(self, size: int) -> bytes:
        if self.deadline is not None and self.clock() > self.deadline:
            raise BodyTimeout("the request took longer than a request may")
        try:
            data = self.stream.read(size)
        except OSError as exc:
            # Django wraps the socket's TimeoutError in UnreadablePostError (an OSError) and keeps it as the cause.
            if isinstance(exc, TimeoutError) or isinstance(exc.__cause__, TimeoutError):
                raise BodyTimeout("the request body stopped arriving") from None
            raise MultipartError("the connection broke while the body was read") from None
        self.received += len(data)
        if self.received > self.max_bytes:
            raise BodyTooLarge(f"the request body is larger than {self.max_bytes >> 20} MB")
        return data


@dataclass
class Counters:
    """The parser's work: reads from the stream, bytes read, delimiter searches and bytes those searched."""

    reads: int = 0
    read_bytes: int = 0
    finds: int = 0
    searched_bytes: int = 0


@dataclass
class Part:
    """One body part: its headers (names in lower case) and its content in a spooled temporary file."""

    headers: dict[str, str]
    file: BinaryIO = field(repr=False)
    size: int

    @property
    def content_type(self) -> str:
        """The part's media type; a part without one is taken as the request's `type` (application/dicom)."""
        return self.headers.get("content-type", "application/dicom").split(";")[0].strip().lower()

    def read(self) -> bytes:
        self.file.seek(0)
        return self.file.read()

    def close(self) -> None:
        self.file.close()


class MultipartReader:
    """Iterate over the parts of a multipart/related body read from `stream` (anything with `read(n)`).

    Accepts what RFC 2046 allows and senders do: a preamble and an epilogue, transport padding (spaces and
    tabs) after a boundary, CRLF or bare LF line breaks. A part is yielded whole once its closing delimiter is
    read; the caller closes it (the next part is read only when asked for).
    """

    def __init__(
        self,
        stream,
        boundary: str,
        *,
        max_part: int,
        chunk: int = 1 << 20,
        spool_memory: int = 8 << 20,
    ):
        self.stream, self.max_part, self.chunk, self.spool_memory = stream, max_part, chunk, spool_memory
        self.delimiter = b"--" + boundary.encode("latin-1")
        self.separator = b"\n" + self.delimiter  # CRLF or LF, then the delimiter
        self.counters = Counters()
        self._buffer = bytearray()
        self._eof = False

    # -- the buffer ---------------------------------------------------------------------------------------

    def _fill(self) -> bool:
        """Read one more chunk into the buffer; False at the end of the body."""
        if self._eof:
            return False
        data = self.stream.read(self.chunk)
        self.counters.reads += 1
        if not data:
            self._eof = True
            return False
        self.counters.read_bytes += len(data)
        self._buffer += data
        return True

    def _ensure(self, size: int) -> bool:
        while len(self._buffer) < size:
            if not self._fill():
                return False
        return True

    def _find(self, needle: bytes, start: int = 0) -> int:
        at = self._buffer.find(needle, start)
        self.counters.finds += 1
        self.counters.searched_bytes += (at + len(needle) if at >= 0 else len(self._buffer)) - start
        return at

    # -- the message --------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Part]:
        self._skip_preamble()
        while not self._after_delimiter():
            headers = self._headers()
            yield self._body(headers)
        self._drain()

    def _skip_preamble(self) -> None:
        """Drop everything before the first delimiter, which starts the body or a line."""
        buffer, at_start, start = self._buffer, True, 0
        while True:
            at = self._find(self.delimiter, start)
            if at >= 0:
                if (at == 0 and at_start) or (at > 0 and buffer[at - 1] == 0x0A):
                    del buffer[: at + len(self.delimiter)]
                    return
                start = at + 1
                continue
            keep = len(self.delimiter)  # a delimiter cut by the read, with the line break before it
            if len(buffer) > keep:
                del buffer[: len(buffer) - keep]
                at_start = False
            start = 0
            if not self._fill():
                raise MultipartError("no part delimiter found")

    def _after_delimiter(self) -> bool:
        """Read what follows a delimiter: True for the closing one, else the line break before a part's headers."""
        buffer = self._buffer
        if not self._ensure(2):
            raise MultipartError("the body ends without a closing delimiter")
        if buffer[:2] == b"--":
            return True
        padding = 0
        while True:
            if not self._ensure(1):
                raise MultipartError("the body ends without a closing delimiter")
            if buffer[0] not in b" \t":
                break
            del buffer[:1]
            padding += 1
            if padding > MAX_PADDING:
                raise MultipartError("a boundary is followed by too much padding")
        if buffer[:1] == b"\n":
            del buffer[:1]
        elif self._ensure(2) and buffer[:2] == b"\r\n":
            del buffer[:2]
        else:
            raise MultipartError("a boundary is followed by something other than a line break")
        return False

    def _headers(self) -> dict[str, str]:
        buffer, headers, size = self._buffer, {}, 0
        while True:
            start = 0
            while (end := self._find(b"\n", start)) < 0:
                start = len(buffer)
                if size + len(buffer) > MAX_HEADER_BYTES:
                    raise MultipartError("a part's header section is too long")
                if not self._fill():
                    raise MultipartError("the body ends in a part's header section")
            line = bytes(buffer[:end]).rstrip(b"\r")
            del buffer[: end + 1]
            size += end + 1
            if size > MAX_HEADER_BYTES:
                raise MultipartError("a part's header section is too long")
            if not line:
                return headers
            name, colon, value = line.partition(b":")
            if not colon:
                raise MultipartError("a part has a header line without a colon")
            headers[name.strip().decode("latin-1").lower()] = value.strip().decode("latin-1")

    def _body(self, headers: dict[str, str]) -> Part:
        """Move the part's content to a spooled file, up to and past the next delimiter."""
        buffer, separator = self._buffer, self.separator
        spool = tempfile.SpooledTemporaryFile(max_size=self.spool_memory)  # noqa: SIM115 - the Part owns it
        size = 0
        try:
            # An empty part: its header section's blank line was the delimiter's line break.
            if self._ensure(len(self.delimiter)) and buffer.startswith(self.delimiter):
                del buffer[: len(self.delimiter)]
                return Part(headers, spool, 0)
            while True:
                at = self._find(separator, 0)
                if at >= 0:
                    end = at - 1 if at > 0 and buffer[at - 1] == 0x0D else at
                    size += self._spool(spool, end)
                    del buffer[: at - end + len(separator)]  # the line break and the delimiter
                    break
                # Keep a delimiter cut by the read, and the CR that may stand before its LF.
                size += self._spool(spool, len(buffer) - len(separator))
                if size > self.max_part:
                    raise MultipartError("a part is larger than the largest file accepted")
                if not self._fill():
                    raise MultipartError("the body ends in the middle of a part")
            if size > self.max_part:
                raise MultipartError("a part is larger than the largest file accepted")
            spool.seek(0)
            return Part(headers, spool, size)
        except BaseException:
            spool.close()
            raise

    def _spool(self, spool, count: int) -> int:
        """Move the first `count` bytes of the buffer to the part's file."""
        if count <= 0:
            return 0
        with memoryview(self._buffer) as view, view[:count] as piece:
            spool.write(piece)
        del self._buffer[:count]
        return count

    def _drain(self) -> None:
        """Read the epilogue to the end of the body, so the connection can carry the next request."""
        self._buffer.clear()
        while self._fill():
            self._buffer.clear()
