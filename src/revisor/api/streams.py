"""Byte streams the API sends: a blob's bytes (whole or one range) and archives, in constant memory.

Why this module exists: a 1 GB file or a whole tree must leave the server without ever being held
in memory. Blobs come from ``VersionedFile.stream`` (a git process above 8 MB); a ``Range`` is cut
out of that stream as it passes. Archives (tar.gz, zip) are written by :mod:`tarfile` /
:mod:`zipfile` in a producer thread into a small bounded queue that the response drains, so at most
a few chunks are in flight whatever the size of the tree.
"""

from __future__ import annotations

import contextlib
import enum
import queue
import re
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from revisor.errors import GitFailure
from revisor.vcs import EntryKind, FileMode, ObjectId, Repository

__all__ = ["ArchiveFormat", "ByteRange", "archive_stream", "parse_range", "slice_stream"]

CHUNK = 1 << 16
STALLED_S = 300.0  # a consumer that takes nothing for this long is gone: the producer stops
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class ByteRange:
    """The inclusive byte range ``start..end`` of a body of ``size`` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    @property
    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


class Unsatisfiable(Exception):
    """The range asks for bytes the body does not have (HTTP 416)."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks for; None to send the whole body (no header, several ranges,
    or a header that is not a byte range: RFC 9110 lets a server ignore those).

    Raises :class:`Unsatisfiable` for a well-formed range outside the body.
    """
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if len(first) > 18 or len(last) > 18:
        raise Unsatisfiable
    if first == "":  # the last N bytes
        n = int(last)
        if n == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - n), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1), size)


def slice_stream(chunks: Iterator[bytes], r: ByteRange) -> Iterator[bytes]:
    """The bytes ``r.start..r.end`` of a stream of chunks, read through once and then closed."""
    pos = 0
    try:
        for chunk in chunks:
            nxt = pos + len(chunk)
            if nxt > r.start:
                lo = max(0, r.start - pos)
                hi = min(len(chunk), r.end + 1 - pos)
                if hi > lo:
                    yield chunk[lo:hi]
            pos = nxt
            if pos > r.end:
                break
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            # the git process streaming the blob is stopped early on purpose: not a failure
            with contextlib.suppress(GitFailure):
                close()


# -- archives ---------------------------------------------------------------------------------
class ArchiveFormat(enum.StrEnum):
    TAR_GZ = "tar.gz"
    ZIP = "zip"

    @property
    def media_type(self) -> str:
        return "application/gzip" if self is ArchiveFormat.TAR_GZ else "application/zip"


class _Closed(Exception):
    """The client went away: the producer stops."""


class _QueueWriter:
    """A write-only file object handing its bytes to a bounded queue in CHUNK-sized pieces."""

    def __init__(self, out: queue.Queue[bytes | BaseException | None], stop: threading.Event):
        self._out = out
        self._stop = stop
        self._buffer = bytearray()
        self._pos = 0

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._stop.is_set():
            raise _Closed
        self._buffer += data
        self._pos += len(data)
        while len(self._buffer) >= CHUNK:
            self._put(bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        return None

    def close_out(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def _put(self, chunk: bytes) -> None:
        waited = 0.0
        while not self._stop.is_set() and waited < STALLED_S:
            try:
                self._out.put(chunk, timeout=0.5)
                return
            except queue.Full:
                waited += 0.5
        raise _Closed  # the consumer stopped, or stopped reading


class _StreamReader:
    """A read-only file object over a blob's chunks (what ``tarfile.addfile`` reads from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                break
        if n < 0:
            n = len(self._buffer)
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


def _write_archive(
    repo: Repository, commit: ObjectId, fmt: ArchiveFormat, prefix: str, sink: _QueueWriter
) -> None:
    files = sorted(repo.files(commit).items())
    mtime = int(repo.changeset(commit).committer.time.timestamp())
    if fmt is ArchiveFormat.TAR_GZ:
        with tarfile.open(fileobj=sink, mode="w|gz", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for path, (mode, _oid) in files:
                f = repo.file(commit, path)
                info = tarfile.TarInfo(prefix + path)
                info.mtime = mtime
                if f.kind is EntryKind.SYMLINK:
                    info.type = tarfile.SYMTYPE
                    info.linkname = f.data.decode("utf-8", "surrogateescape")
                    info.mode = 0o777
                    tar.addfile(info)
                elif f.kind is EntryKind.SUBMODULE:
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                else:
                    info.size = f.size
                    info.mode = 0o755 if mode == FileMode.EXECUTABLE else 0o644
                    tar.addfile(info, _StreamReader(f.stream(CHUNK)))
    else:
        with zipfile.ZipFile(cast(IO[bytes], sink), mode="w",
                             compression=zipfile.ZIP_DEFLATED) as zf:
            when = time.gmtime(max(mtime, 315532800))[:6]
            for path, (mode, _oid) in files:
                f = repo.file(commit, path)
                if f.kind is EntryKind.SUBMODULE:
                    continue
                zinfo = zipfile.ZipInfo(prefix + path, date_time=when)
                zinfo.compress_type = zipfile.ZIP_DEFLATED
                perm = 0o755 if mode == FileMode.EXECUTABLE else 0o644
                if f.kind is EntryKind.SYMLINK:
                    perm = 0o120777
                    zinfo.external_attr = perm << 16
                    zf.writestr(zinfo, f.data)
                    continue
                zinfo.external_attr = (0o100000 | perm) << 16
                with zf.open(zinfo, "w", force_zip64=f.size > (1 << 30)) as out:
                    for chunk in f.stream(CHUNK):
                        out.write(chunk)
    sink.close_out()


def archive_stream(
    repo: Repository, commit: ObjectId, fmt: ArchiveFormat, prefix: str
) -> Iterator[bytes]:
    """The archive of ``commit``'s tree, every member under ``prefix``, as a stream of chunks.

    A producer thread writes it into a queue of at most 16 chunks; closing the iterator early (the
    client disconnected) stops the producer.
    """
    out: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=16)
    stop = threading.Event()

    def produce() -> None:
        sink = _QueueWriter(out, stop)
        try:
            _write_archive(repo, commit, fmt, prefix, sink)
            item: BaseException | None = None
        except _Closed:
            return
        except BaseException as exc:  # handed to the consumer, which raises it
            item = exc
        while not stop.is_set():
            try:
                out.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    worker = threading.Thread(target=produce, name="revisor-archive", daemon=True)
    worker.start()

    def consume() -> Iterator[bytes]:
        try:
            while True:
                item: Any = out.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            worker.join(timeout=5)

    return consume()
