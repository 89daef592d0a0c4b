"""tdv-airflow dependency bundle: the libraries that do not fit in Lambda's 250 MB.

Zipped into the function code beside ``lbd_request_processor.py``; standard library
and the runtime's boto3 client only, never ``tdv_airflow``. The request processor calls
:func:`ensure_bundle` in its load, which runs in the init phase, so a SnapStart
snapshot holds the extracted bundle, the imported libraries and the model together.

Environment contract (set by the CloudFormation stack when a bundle is attached):

``TDV_DEPS_BUNDLE_KEY`` / ``TDV_DEPS_BUNDLE_SHA256``
    The bundle's key in ``TDV_BUCKET`` (a zip of ``python/...``: the dependency
    layer's own bytes) and its lowercase hex SHA-256. Unset or empty: no bundle.
``TDV_BUNDLE_DIR`` (optional)
    Where bundles are extracted; default ``/tmp`` (the ephemeral storage, kept for the
    execution environment's life). The local runner points it at a folder of its own.
``TDV_BUNDLE_THREADS`` (optional)
    Parallel ranged GETs and extraction threads; default 8.

Steps, once per execution environment: if ``<dir>/tdv-bundle-<sha256>/.tdv-verified``
exists (written last, after a verified and complete extraction), the folder is reused.
Otherwise the object's size is read (HeadObject), its bytes are fetched with parallel
``Range: bytes=a-b`` GETs into ``<dir>/tdv-bundle-<sha256>.zip.part``, hashed in order
as the parts arrive, and compared with ``TDV_DEPS_BUNDLE_SHA256``: a mismatch deletes
the download and raises :class:`BundleError` (nothing extracted, nothing on
``sys.path``, nothing imported). A verified zip is extracted by several threads (zlib
releases the GIL) into a temporary folder renamed into place, the zip is deleted, and
``<dir>/tdv-bundle-<sha256>/python`` goes to the front of ``sys.path``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import shutil
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

ENV_KEY = "TDV_DEPS_BUNDLE_KEY"
ENV_SHA256 = "TDV_DEPS_BUNDLE_SHA256"
ENV_DIR = "TDV_BUNDLE_DIR"
ENV_THREADS = "TDV_BUNDLE_THREADS"
DEFAULT_DIR = "/tmp"  # noqa: S108 - Lambda's ephemeral storage, private to the environment
DEFAULT_THREADS = 8
#: Bytes per ranged GET.
PART_BYTES = 8 * 1024 * 1024
MARKER = ".tdv-verified"

_LOG = logging.getLogger("lbd_request_processor.bundle")


class BundleError(Exception):
    """The bundle cannot be fetched, does not match its digest, or cannot be extracted."""


def _threads(environ: Any) -> int:
    try:
        return max(1, min(64, int(environ.get(ENV_THREADS, DEFAULT_THREADS))))
    except ValueError:
        return DEFAULT_THREADS


def _ranges(size: int, part: int) -> list[tuple[int, int]]:
    """``(first, last)`` byte ranges (inclusive) covering ``size`` bytes."""
    return [(start, min(start + part, size) - 1) for start in range(0, size, part)] or [(0, -1)]


def download(client: Any, bucket: str, key: str, path: str, threads: int) -> str:
    """Fetch an object into ``path`` with parallel ranged GETs; return its SHA-256.

    :param client: an S3 client.
    :param bucket: the bucket.
    :param key: the key.
    :param path: the file to write (created or truncated).
    :param threads: parallel GETs.
    """
    size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)

        def fetch(span: tuple[int, int]) -> bytes:
            if span[1] < span[0]:
                return b""
            body = client.get_object(Bucket=bucket, Key=key,
                                     Range=f"bytes={span[0]}-{span[1]}")["Body"]
            try:
                data = body.read()
            finally:
                body.close()
            if len(data) != span[1] - span[0] + 1:
                raise BundleError(f"s3://{bucket}/{key}: range {span} gave {len(data)} bytes")
            os.pwrite(fd, data, span[0])
            return bytes(data)

        with ThreadPoolExecutor(threads, thread_name_prefix="tdv-bundle-get") as pool:
            for part in pool.map(fetch, _ranges(size, PART_BYTES)):  # in order
                digest.update(part)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _safe_members(zf: zipfile.ZipFile, root: str) -> list[zipfile.ZipInfo]:
    """The zip's file entries, refused when one would land outside ``root``."""
    real_root = os.path.realpath(root)
    files = []
    for info in zf.infolist():
        target = os.path.realpath(os.path.join(real_root, info.filename))
        if target != real_root and not target.startswith(real_root + os.sep):
            raise BundleError(f"bundle entry {info.filename!r} would land outside {root}")
        if not info.is_dir():
            files.append(info)
    return files


def extract(path: str, root: str, threads: int) -> int:
    """Extract the zip at ``path`` into ``root`` with ``threads`` threads.

    :returns: the number of files written.
    """
    with zipfile.ZipFile(path) as zf:
        members = _safe_members(zf, root)
        for folder in sorted({os.path.dirname(m.filename) for m in members}):
            os.makedirs(os.path.join(root, folder), exist_ok=True)
        groups: list[list[zipfile.ZipInfo]] = [[] for _ in range(threads)]
        loads = [0] * threads
        for info in sorted(members, key=lambda m: -m.compress_size):  # balance the bytes
            slot = loads.index(min(loads))
            groups[slot].append(info)
            loads[slot] += info.compress_size + 4096

        def write(group: list[zipfile.ZipInfo]) -> None:
            with zipfile.ZipFile(path) as own:  # one handle per thread: reads in parallel
                for info in group:
                    target = os.path.join(root, info.filename)
                    with own.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1024 * 1024)
                    if (info.external_attr >> 16) & 0o111:
                        os.chmod(target, 0o755)  # noqa: S103 - executables stay executable

        with ThreadPoolExecutor(threads, thread_name_prefix="tdv-bundle-unzip") as pool:
            list(pool.map(write, [g for g in groups if g]))
    return len(members)


def _log(event: str, **fields: Any) -> None:
    import json

    _LOG.log(logging.ERROR if event.endswith("refused") else logging.INFO,
             json.dumps({"event": event, **fields}, default=str, sort_keys=True))


def ensure_bundle(client: Any, bucket: str, environ: Any = None) -> str | None:
    """Make the dependency bundle importable; a no-op without ``TDV_DEPS_BUNDLE_KEY``.

    :param client: an S3 client.
    :param bucket: the artifacts' bucket (``TDV_BUCKET``).
    :param environ: the environment (default ``os.environ``).
    :returns: the folder put on ``sys.path``, or ``None`` when there is no bundle.
    :raises BundleError: when the digest is missing or differs, or a step fails; nothing
        from the bundle is on ``sys.path`` then.
    """
    env = os.environ if environ is None else environ
    key = str(env.get(ENV_KEY, "")).strip()
    if not key:
        return None
    expected = str(env.get(ENV_SHA256, "")).strip().lower()
    if len(expected) != 64 or any(c not in "0123456789abcdef" for c in expected):
        raise BundleError(f"{ENV_SHA256} is not a SHA-256 hex digest: {expected!r}")
    base = str(env.get(ENV_DIR) or DEFAULT_DIR)
    root = os.path.join(base, f"tdv-bundle-{expected}")
    python = os.path.join(root, "python")
    if not os.path.isfile(os.path.join(root, MARKER)):
        _fetch_and_extract(client, bucket, key, expected, base, root, _threads(env))
    if python not in sys.path:
        sys.path.insert(0, python)
    return python


def _fetch_and_extract(client: Any, bucket: str, key: str, expected: str, base: str,
                       root: str, threads: int) -> None:
    os.makedirs(base, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)  # an extraction cut short (no marker)
    part = f"{root}.{os.getpid()}.zip.part"
    staging = f"{root}.{os.getpid()}.tmp"
    started = time.perf_counter()
    try:
        try:
            actual = download(client, bucket, key, part, threads)
        except BundleError:
            raise
        except Exception as exc:  # botocore errors, connection errors, a full disk ...
            raise BundleError(f"cannot download the bundle s3://{bucket}/{key}: "
                              f"{type(exc).__name__}: {exc}") from exc
        fetched = time.perf_counter()
        if not hmac.compare_digest(actual, expected):
            _log("bundle_refused", key=key, expected=expected, actual=actual)
            raise BundleError(f"SHA-256 mismatch for the bundle s3://{bucket}/{key}: expected "
                              f"{expected}, got {actual}; refusing to extract or import it")
        size = os.path.getsize(part)
        shutil.rmtree(staging, ignore_errors=True)
        os.makedirs(staging)
        try:
            files = extract(part, staging, threads)
        except (OSError, zipfile.BadZipFile) as exc:
            raise BundleError(f"cannot extract the bundle s3://{bucket}/{key}: "
                              f"{type(exc).__name__}: {exc}") from exc
        with open(os.path.join(staging, MARKER), "w", encoding="ascii") as out:
            out.write(expected + "\n")  # written last: the folder is complete
        try:
            os.rename(staging, root)
        except OSError:  # another process sharing the folder finished first
            if not os.path.isfile(os.path.join(root, MARKER)):
                raise
        _log("bundle_ready", key=key, bytes=size, files=files, threads=threads,
             download_ms=round((fetched - started) * 1000, 1),
             extract_ms=round((time.perf_counter() - fetched) * 1000, 1))
    finally:
        if os.path.exists(part):
            os.unlink(part)
        shutil.rmtree(staging, ignore_errors=True)
