"""Emulator fidelity (cost): a ranged ``GetObject`` reads only the bytes it answers with.

On AWS, ``GetObject`` with ``Range: bytes=a-b`` sends bytes ``a`` to ``b`` and nothing
else, and parallel ranged GETs of 8-16 MB are S3's documented way to more throughput
(https://docs.aws.amazon.com/whitepapers/latest/s3-optimizing-performance-best-practices/use-byte-range-fetches.html).
moto 5.2.5 builds every ``GetObject`` answer from the whole object (``FakeKey.value``
reads the object's buffer from its first byte to its last) and cuts the range out
afterwards, so ``N`` ranged GETs of an object read it ``N`` times: on the emulator the
function's parallel download of a 117 MB dependency bundle is slower than one GET, which
S3 is not. The answers are right; their cost is moto's, not AWS's.

:func:`install` makes a ranged ``GetObject`` hand moto's range handling a view of the
object that reads from the buffer only the slice asked for (under the key's lock, as
moto's own read). Status codes, headers and bytes stay moto's, for every kind of range
(``bytes=a-b``, ``a-``, ``-n``, several ranges, an unsatisfiable one) and without one.
Nothing else changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import threading
from typing import Any

_MARK = "_tdv_reads_ranges"
_RANGED = threading.local()  # set while this thread answers a ranged GetObject


class _ObjectBytes:
    """An object's bytes, read from its buffer only where sliced."""

    def __init__(self, key: Any) -> None:
        """:param key: a moto ``FakeKey``."""
        self.key = key

    def __len__(self) -> int:
        return int(self.key.size)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, index: slice) -> bytes:
        start, stop, step = index.indices(len(self))
        with self.key.lock:
            buffer = self.key._value_buffer
            buffer.seek(start)
            data: bytes = buffer.read(max(0, stop - start))
        return data if step == 1 else data[::step]

    def whole(self) -> bytes:
        """All the object's bytes (the answer when moto serves the whole object)."""
        return self[0:len(self)]


def install() -> None:
    """Make ranged ``GetObject`` read only its range (idempotent)."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    moto_get_object = S3Response.get_object
    if getattr(moto_get_object, _MARK, False):
        return
    moto_value: Any = vars(FakeKey)["value"]  # the property itself

    def value(self: Any) -> Any:
        if getattr(_RANGED, "on", False):
            return _ObjectBytes(self)
        return moto_value.fget(self)

    def get_object(self: Any) -> Any:
        if not self.headers.get("range"):
            return moto_get_object(self)
        _RANGED.on = True
        try:
            return moto_get_object(self)
        finally:
            _RANGED.on = False

    moto_key_response = S3Response.key_response

    def key_response(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        status, response_headers, body = moto_key_response(self, request, full_url, headers)
        if isinstance(body, _ObjectBytes):  # moto answered with the whole object
            body = body.whole()
        return status, response_headers, body

    setattr(get_object, _MARK, True)
    FakeKey.value = property(value, moto_value.fset)  # type: ignore[method-assign,assignment]
    S3Response.get_object = get_object  # type: ignore[method-assign]
    S3Response.key_response = key_response  # type: ignore[method-assign]
