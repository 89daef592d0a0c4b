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

Once per execution environment (a folder whose marker ``.tdv-verified``, written last,
exists is reused): the object's size is read (HeadObject), parallel ``Range`` GETs of
8 MiB are read in order (:func:`parts`), hashed, and extracted *as they arrive* by
``tdv_unzip.py`` (zipped beside this file) into a staging folder that is not on
``sys.path``. Only when the whole download's SHA-256 equals ``TDV_DEPS_BUNDLE_SHA256`` is
the folder renamed to ``<dir>/tdv-bundle-<sha256>`` and its ``python`` put first on
``sys.path``; a mismatch deletes it and raises :class:`BundleError` (nothing on
``sys.path``, nothing imported). A zip the stream cannot read in order (data descriptors,
encryption, ZIP64 sizes in a local header) is downloaded again into a file, verified,
then extracted.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import os
import shutil
import sys
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tdv_unzip  # noqa: TID253 - zipped beside this file

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


def parts(client: Any, bucket: str, key: str, threads: int) -> Iterator[bytes]:
    """An object's bytes in order, fetched by ``threads`` parallel ranged GETs that run at
    most ``threads + 2`` parts ahead of the reader.

    :param client: an S3 client.
    :param bucket: the bucket.
    :param key: the key.
    :param threads: parallel GETs.
    """
    size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])

    def fetch(span: tuple[int, int]) -> bytes:
        if span[1] < span[0]:
            return b""
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={span[0]}-{span[1]}")
        stream = body["Body"]
        try:
            data = bytes(stream.read())
        finally:
            stream.close()
        if len(data) != span[1] - span[0] + 1:
            raise BundleError(f"s3://{bucket}/{key}: range {span} gave {len(data)} bytes")
        return data

    spans = iter(_ranges(size, PART_BYTES))
    pool = ThreadPoolExecutor(threads, thread_name_prefix="tdv-bundle-get")
    try:
        ahead = deque(pool.submit(fetch, span) for span in itertools.islice(spans, threads + 2))
        while ahead:
            data = ahead.popleft().result()
            ahead.extend(pool.submit(fetch, span) for span in itertools.islice(spans, 1))
            yield data
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def download(client: Any, bucket: str, key: str, path: str, threads: int) -> str:
    """Fetch an object into ``path`` with parallel ranged GETs; return its SHA-256.

    :param client: an S3 client.
    :param bucket: the bucket.
    :param key: the key.
    :param path: the file to write (created or truncated).
    :param threads: parallel GETs.
    """
    digest = hashlib.sha256()
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
        for data in parts(client, bucket, key, threads):
            digest.update(data)
            out.write(data)
    return digest.hexdigest()


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


def _fresh(folder: str) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)


def _fetch_and_extract(client: Any, bucket: str, key: str, expected: str, base: str,
                       root: str, threads: int) -> None:
    os.makedirs(base, exist_ok=True)
    shutil.rmtree(root, ignore_errors=True)  # an extraction cut short (no marker)
    part = f"{root}.{os.getpid()}.zip.part"
    staging = f"{root}.{os.getpid()}.tmp"
    started = time.perf_counter()
    try:
        _fresh(staging)
        try:
            try:
                mode = "streamed"
                actual, size, outcome = tdv_unzip.stream_extract(
                    parts(client, bucket, key, threads), staging, threads)
            except tdv_unzip.NotInOrder:
                mode = "download-then-extract"
                _fresh(staging)
                actual = download(client, bucket, key, part, threads)
                size, outcome = os.path.getsize(part), 0
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
        try:
            if isinstance(outcome, tdv_unzip.UnzipError):
                raise outcome
            if mode != "streamed":
                outcome = tdv_unzip.extract(part, staging)
        except (OSError, zipfile.BadZipFile, tdv_unzip.UnzipError) as exc:
            raise BundleError(f"cannot extract the bundle s3://{bucket}/{key}: "
                              f"{type(exc).__name__}: {exc}") from exc
        with open(os.path.join(staging, MARKER), "w", encoding="ascii") as out:
            out.write(expected + "\n")  # written last: the folder is complete
        try:
            os.rename(staging, root)
        except OSError:  # another process sharing the folder finished first
            if not os.path.isfile(os.path.join(root, MARKER)):
                raise
        _log("bundle_ready", key=key, bytes=size, files=outcome, threads=threads, mode=mode,
             fetch_ms=round((fetched - started) * 1000, 1),
             finish_ms=round((time.perf_counter() - fetched) * 1000, 1))
    finally:
        if os.path.exists(part):
            os.unlink(part)
        shutil.rmtree(staging, ignore_errors=True)
