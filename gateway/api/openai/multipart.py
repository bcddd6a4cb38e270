"""Multipart uploads (audio to transcribe, files), streamed through to the upstream.

The body is read from the client once. Only its beginning is read before routing, up to the end
of the ``model`` part (the route depends on it): python-multipart's streaming parser is fed the
chunks as they come and reports the parts' names and data without holding the body, so a
``model`` field after a 20 MB file costs a scan, not a copy. Then the body goes to the upstream
as it arrives (the part read first, then the rest straight from the client), never joined in
memory.

Every byte read is also written to a spool (in memory up to ``SPOOL_MEMORY``, then a temporary
file) so that an attempt refused by one key (a 429 after the upload) can be sent again to the
next key: one copy, on disk for a large file. A body without a Content-Length is spooled whole
first (so its length is known and the limit checked before anything is sent). The limit is
``server.max_body_mb``: a larger Content-Length is refused (413) before the body is read.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator

from python_multipart.multipart import MultipartParser, parse_options_header

from ...errors import InvalidRequest, RequestTooLarge

SPOOL_MEMORY = 1 << 20  # bytes of an upload kept in memory before the spool moves to a temporary file
PIECE = 1 << 16  # bytes per piece when the spool is sent again
MAX_FIELD = 256  # the longest model (or other text field) read from the form


class FieldScan:
    """Feeds multipart chunks to python-multipart's parser and keeps the short text fields asked for."""

    def __init__(self, content_type: str, wanted: frozenset[str]):
        kind, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise InvalidRequest("The request body must be multipart/form-data with a boundary.")
        self.wanted = wanted
        self.fields: dict[str, str] = {}
        self._name: str | None = None
        self._header = b""
        self._value = b""
        self._value_header = b""
        self._data = bytearray()
        self.finished = False
        self._parser = MultipartParser(boundary, {
            "on_header_field": self._on_field, "on_header_value": self._on_value,
            "on_header_end": self._on_header_end, "on_part_begin": self._on_begin,
            "on_part_data": self._on_data, "on_part_end": self._on_end, "on_end": self._on_finish,
        })

    def feed(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except Exception as exc:  # python-multipart's errors: the body is not the form it says it is
            raise InvalidRequest(f"The multipart body is malformed: {exc}.") from None

    def has_all(self) -> bool:
        return self.wanted.issubset(self.fields)

    def _on_begin(self) -> None:
        self._name, self._data = None, bytearray()

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value_header += data[start:end]

    def _on_header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            _, params = parse_options_header(self._value_header)
            name = params.get(b"name")
            self._name = name.decode("utf-8", "replace") if name is not None else None
        self._header = self._value_header = b""

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        if self._name in self.wanted and len(self._data) <= MAX_FIELD:
            self._data += data[start:min(end, start + MAX_FIELD + 1)]

    def _on_end(self) -> None:
        if self._name in self.wanted and self._name is not None:
            if len(self._data) > MAX_FIELD:
                raise InvalidRequest(f"The form field '{self._name}' is longer than {MAX_FIELD} bytes.",
                                     param=self._name)
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    def _on_finish(self) -> None:
        self.finished = True


class UploadBody:
    """The client's body, read once: streamed to the first attempt, spooled for any later one.

    An ``Upload`` (``providers/base.py``): ``chunks()`` is one pass over the whole body.
    """

    def __init__(self, source: AsyncIterator[bytes], content_type: str, length: int | None):
        self.content_type = content_type
        self.length = length
        self._source = source
        self._source_done = False
        self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 (closed by close())
        self._size = 0
        self._passes = 0

    @property
    def size(self) -> int:
        """Bytes read from the client so far."""
        return self._size

    async def pull(self) -> bytes | None:
        """The next chunk from the client (spooled), None at its end."""
        if self._source_done:
            return None
        try:
            chunk = await self._source.__anext__()
        except StopAsyncIteration:
            self._source_done = True
            return None
        self._spool.seek(0, 2)
        self._spool.write(chunk)
        self._size += len(chunk)
        return chunk

    async def drain(self, limit: int) -> None:
        """Read the rest of the body into the spool; 413 past ``limit`` bytes."""
        while await self.pull() is not None:
            if self._size > limit:
                raise RequestTooLarge(f"The request body is over the limit of {limit} bytes.")
        self.length = self._size

    def chunks(self) -> AsyncIterator[bytes]:
        self._passes += 1
        return self._first_pass() if self._passes == 1 else self._again()

    async def _first_pass(self) -> AsyncIterator[bytes]:
        read = self._size
        for piece in self.spooled(read):
            yield piece
        while (chunk := await self.pull()) is not None:
            yield chunk

    async def _again(self) -> AsyncIterator[bytes]:
        while await self.pull() is not None:  # what an attempt cut short left unread
            pass
        for piece in self.spooled(self._size):
            yield piece

    def spooled(self, upto: int) -> Iterator[bytes]:
        """The first ``upto`` spooled bytes, piece by piece (each read where it lies: ``pull`` appends)."""
        position = 0
        while position < upto:
            self._spool.seek(position)
            piece = self._spool.read(min(PIECE, upto - position))
            if not piece:
                return
            position += len(piece)
            yield piece

    def close(self) -> None:
        self._spool.close()


async def open_upload(stream: AsyncIterator[bytes], content_type: str, length: int | None, limit: int,
                      wanted: frozenset[str]) -> tuple[UploadBody, dict[str, str]]:
    """Start reading an upload: the body (not read further than needed) and the ``wanted`` fields
    found in it. ``wanted`` empty: nothing is scanned."""
    if length is not None and length > limit:
        raise RequestTooLarge(f"The request body is {length} bytes; the limit is {limit} bytes.")
    scan = FieldScan(content_type, wanted)
    body = UploadBody(stream, content_type, length)
    if length is None:
        await body.drain(limit)
    if not wanted:
        return body, {}
    if length is None:  # all in the spool already
        for piece in body.spooled(body.size):
            scan.feed(piece)
            if scan.has_all():
                break
        return body, scan.fields
    while not scan.has_all() and not scan.finished:
        chunk = await body.pull()
        if chunk is None:
            break
        scan.feed(chunk)
    return body, scan.fields
