"""Extract a zip from its bytes in order, while they arrive (tdv-airflow, function side).

Zipped into the function code beside ``tdv_bundle.py``, which uses it for the dependency
bundle; standard library only. A zip whose local file headers carry each member's sizes
and CRC-32 (no data descriptor; tdv-airflow's deterministic zips are written so) can be
extracted member after member as its bytes come: :class:`StreamUnzip` reads each local
header, hands members whose bytes are at hand to a thread pool that inflates them (zlib
releases the GIL) and writes them, inflates a member larger than
:data:`WHOLE_MEMBER_BYTES` piece by piece as its bytes arrive, checks each member's size
and CRC-32, and at the end cross-checks the central directory (names, offsets, methods,
CRCs, sizes, ZIP64 extra fields read) against the members written and applies its
executable modes. Entries that would land outside the folder are refused. A zip it cannot
read in order (data descriptors, encryption, ZIP64 sizes in a local header, a method other
than stored or deflate, bytes before the first member) raises :class:`NotInOrder`: the
caller falls back to :func:`extract` on the downloaded file.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

#: A member whose compressed bytes are not all at hand is waited for up to this size;
#: a larger one is inflated piece by piece as its bytes arrive.
WHOLE_MEMBER_BYTES = 4 * 1024 * 1024
#: Compressed bytes handed to the inflating threads and not yet written, at most.
PENDING_BYTES = 64 * 1024 * 1024

_LOCAL = struct.Struct("<IHHHHHIIIHH")  # local file header, 30 bytes
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")  # central directory header, 46 bytes
_LOCAL_SIG, _CENTRAL_SIG = 0x04034B50, 0x02014B50
_END_SIGS = (0x06054B50, 0x06064B50)  # end of central directory, and its ZIP64 form
_NOT_IN_ORDER = 0x0001 | 0x0008 | 0x0040  # encrypted, data descriptor, strong encryption
_UTF8 = 0x0800
_MAX32 = 0xFFFFFFFF


class UnzipError(Exception):
    """The zip is malformed, disagrees with itself, or has an entry outside the folder."""


class NotInOrder(Exception):
    """The zip cannot be extracted in order from its stream (a foreign zip)."""


def _safe(name: str, root: str) -> str:
    """``name`` relative to ``root``, refused when it would land outside it."""
    rel = os.path.normpath(name)
    if "\0" in name or os.path.isabs(rel) or rel == os.pardir or rel.startswith(os.pardir + os.sep):
        raise UnzipError(f"zip entry {name!r} would land outside {root}")
    return rel


def extract(path: str, root: str) -> int:
    """Extract the zip file at ``path`` into ``root`` (a zip the stream cannot read in order).

    :param path: the zip.
    :param root: an empty folder.
    :returns: the number of files written.
    """
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        for info in infos:
            _safe(info.filename, root)
        zf.extractall(root)
    for info in infos:
        if (info.external_attr >> 16) & 0o111 and not info.is_dir():
            os.chmod(os.path.join(root, info.filename), 0o755)  # noqa: S103 - stays executable
    return sum(1 for info in infos if not info.is_dir())


class _Member:
    """One member written as its bytes come, checked against its header's size and CRC."""

    def __init__(self, target: str, method: int, crc: int, size: int, left: int) -> None:
        self.target, self.expected, self.left = target, (crc, size), left
        self.inflater = zlib.decompressobj(-15) if method == zipfile.ZIP_DEFLATED else None
        self.handle = open(target, "wb")  # noqa: SIM115 - closed by finish()
        self.crc = self.size = 0

    def feed(self, data: memoryview) -> None:
        self.left -= len(data)
        self._out(self.inflater.decompress(data) if self.inflater else data)

    def _out(self, piece: bytes | memoryview) -> None:
        self.crc, self.size = zlib.crc32(piece, self.crc), self.size + len(piece)
        self.handle.write(piece)

    def finish(self) -> None:
        if self.inflater:
            self._out(self.inflater.flush())
        self.handle.close()
        if (self.inflater and not self.inflater.eof) or (self.crc, self.size) != self.expected:
            raise UnzipError(f"zip member {self.target!r}: {self.size} bytes or CRC-32 "
                              f"differ from its header ({self.expected[1]} bytes)")


def _write_member(target: str, data: memoryview, method: int, crc: int, size: int) -> None:
    member = _Member(target, method, crc, size, len(data))
    member.feed(data)
    member.finish()


class StreamUnzip:
    """Extract a zip into ``root`` as its bytes arrive, member after member.

    Needs local headers that carry each member's sizes (no data descriptor): raises
    :class:`NotInOrder` otherwise, before or while writing; the caller starts over.

    :param root: the folder to write into.
    :param pool: the threads that inflate and write members.
    """

    def __init__(self, root: str, pool: ThreadPoolExecutor) -> None:
        self.root, self.pool = root, pool
        self.buf, self.pos, self.base = b"", 0, 0  # buf[pos:] unread; buf[0] at offset base
        self.entries: list[tuple[str, int, int, int, int, int]] = []
        self.jobs: deque[tuple[Future[None], int]] = deque()
        self.pending = 0
        self.large: _Member | None = None
        self.tail: list[bytes] | None = None  # after the last member: the central directory
        self.dirs = {""}

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the zip."""
        if self.tail is not None:
            self.tail.append(chunk)
            return
        if self.large is not None:
            view = memoryview(chunk)
            take = min(self.large.left, len(view))
            self.large.feed(view[:take])
            self.base += take
            if self.large.left:
                return
            self.large.finish()
            self.large, chunk = None, chunk[take:]
        self.buf = self.buf[self.pos:] + chunk if self.pos < len(self.buf) else chunk
        self.base += self.pos
        self.pos = 0
        self._read()

    def _read(self) -> None:
        buf = self.buf
        while len(buf) - self.pos >= 4:
            pos = self.pos
            if struct.unpack_from("<I", buf, pos)[0] != _LOCAL_SIG:
                self.tail = [buf[pos:]]
                self.pos = len(buf)
                return
            if len(buf) - pos < _LOCAL.size:
                return
            _, _, flags, method, _, _, crc, csize, size, nlen, xlen = _LOCAL.unpack_from(buf, pos)
            if flags & _NOT_IN_ORDER or method not in (0, 8) or _MAX32 in (csize, size):
                raise NotInOrder(f"member at offset {self.base + pos}: flags {flags:#x}, "
                                  f"method {method}")
            start = pos + _LOCAL.size + nlen + xlen
            end = start + csize
            if start > len(buf) or (end > len(buf) and csize <= WHOLE_MEMBER_BYTES):
                return  # wait for more bytes
            name = buf[pos + _LOCAL.size:pos + _LOCAL.size + nlen].decode(
                "utf-8" if flags & _UTF8 else "cp437")
            rel = _safe(name, self.root)
            self.entries.append((name, self.base + pos, method, crc, csize, size))
            if name.endswith("/"):
                self._folder(rel)
                self.pos = end
                continue
            self._folder(os.path.dirname(rel))
            target = os.path.join(self.root, rel)
            if end <= len(buf):
                self._submit(target, memoryview(buf)[start:end], method, crc, size)
                self.pos = end
                continue
            self.large = _Member(target, method, crc, size, csize)
            self.large.feed(memoryview(buf)[start:])
            self.buf, self.pos, self.base = b"", 0, self.base + len(buf)
            return

    def _folder(self, rel: str) -> None:
        if rel not in self.dirs:
            os.makedirs(os.path.join(self.root, rel), exist_ok=True)
            self.dirs.add(rel)

    def _submit(self, target: str, data: memoryview, method: int, crc: int, size: int) -> None:
        self.jobs.append((self.pool.submit(_write_member, target, data, method, crc, size),
                          len(data)))
        self.pending += len(data)
        while self.pending > PENDING_BYTES:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        job, nbytes = self.jobs.popleft()
        self.pending -= nbytes
        job.result()

    def close(self) -> int:
        """Wait for every member, cross-check the central directory, set executable modes.

        :returns: the number of files written.
        :raises UnzipError: when the zip is incomplete or its directory disagrees.
        """
        while self.jobs:
            self._wait_oldest()
        if self.large is not None or self.tail is None:
            raise UnzipError("the zip ends inside a member: not a complete zip")
        central = _central_directory(b"".join(self.tail))
        if [entry for entry, _ in central] != self.entries:
            raise UnzipError("the zip's central directory does not match its members")
        for (name, *_), mode in central:
            if mode & 0o111 and not name.endswith("/"):
                os.chmod(os.path.join(self.root, _safe(name, self.root)),
                         0o755)  # noqa: S103 - the member's own executable bit, as unzip
        return sum(1 for entry in self.entries if not entry[0].endswith("/"))


def _zip64(extra: bytes, values: tuple[int, int, int]) -> tuple[int, int, int]:
    """Size, compressed size and offset, the ones at 0xFFFFFFFF read from ZIP64 extra."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            found = iter(struct.unpack_from(f"<{length // 8}Q", extra, pos + 4))
            size, csize, offset = (next(found) if v == _MAX32 else v for v in values)
            return size, csize, offset
        pos += 4 + length
    return values


def _central_directory(data: bytes) -> list[tuple[tuple[str, int, int, int, int, int], int]]:
    """The central directory's ``((name, offset, method, crc, csize, size), unix mode)``."""
    found = []
    pos = 0
    try:
        while struct.unpack_from("<I", data, pos)[0] == _CENTRAL_SIG:
            fields = _CENTRAL.unpack_from(data, pos)
            flags, method, crc, csize, size, nlen, xlen, clen = fields[3:5] + fields[7:13]
            attr, offset = fields[15], fields[16]
            head = pos + _CENTRAL.size
            name = data[head:head + nlen].decode("utf-8" if flags & _UTF8 else "cp437")
            size, csize, offset = _zip64(data[head + nlen:head + nlen + xlen],
                                         (size, csize, offset))
            found.append(((name, offset, method, crc, csize, size), attr >> 16))
            pos = head + nlen + xlen + clen
        ended = struct.unpack_from("<I", data, pos)[0] in _END_SIGS
    except (struct.error, UnicodeDecodeError, StopIteration):
        ended = False
    if not ended:
        raise UnzipError(f"the zip's central directory is malformed at byte {pos}")
    return found


def stream_extract(chunks: Iterator[bytes], root: str,
                   threads: int) -> tuple[str, int, int | UnzipError]:
    """Extract a zip into ``root`` while its bytes arrive, hashing them to their end even
    when extraction fails.

    :param chunks: the zip's bytes in order (closed at the end when it has ``close``).
    :param root: an empty folder to extract into.
    :param threads: inflating threads.
    :returns: the SHA-256 of the bytes, their count, and the number of files extracted
        or why extraction failed.
    :raises NotInOrder: for a zip that cannot be read in order.
    """
    digest = hashlib.sha256()
    size = 0
    outcome: int | UnzipError = 0
    with ThreadPoolExecutor(threads, thread_name_prefix="tdv-bundle-unzip") as pool:
        unzip: StreamUnzip | None = StreamUnzip(root, pool)
        try:
            for data in chunks:
                digest.update(data)
                size += len(data)
                try:
                    if unzip is not None:
                        unzip.feed(data)
                except (UnzipError, OSError, zlib.error, UnicodeDecodeError) as exc:
                    unzip, outcome = None, _unzip_error(exc)
            if unzip is not None:
                try:
                    outcome = unzip.close()
                except (UnzipError, OSError, zlib.error) as exc:
                    outcome = _unzip_error(exc)
        finally:
            getattr(chunks, "close", lambda: None)()
    return digest.hexdigest(), size, outcome


def _unzip_error(exc: BaseException) -> UnzipError:
    return exc if isinstance(exc, UnzipError) else UnzipError(
        f"cannot extract: {type(exc).__name__}: {exc}")
