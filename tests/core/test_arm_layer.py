"""An ``arm64`` dependency layer built from PyPI holds aarch64 wheels only.

The one download the issue allows: pip fetches numpy's manylinux aarch64 wheel for the
runtime's Python (this worker's minor), for Lambda's platform, whatever this machine is.
The built layer is cached under the user's cache (``~/.cache/tdv-airflow/arm-proof``,
keyed by requirements, Python, architecture and pip options), so a second run builds
nothing and downloads nothing: the test shows it by making pip unavailable for the second
build. Without access to PyPI the first build fails, and so does the test (CI has the
registry).
"""

from __future__ import annotations

import io
import struct
import time
import zipfile
from pathlib import Path

import pytest

from tdv_airflow.core import layer_build
from tdv_airflow.core.layers import Dependencies

#: numpy with ``manylinux_2_17_aarch64`` wheels for CPython 3.11 to 3.13 (the 2.3 series
#: needs glibc 2.28 on aarch64, newer than python3.11's Amazon Linux 2).
REQUIREMENT = "numpy==2.2.6"
#: ``e_machine`` of an AArch64 ELF file.
EM_AARCH64 = 183
CACHE = Path.home() / ".cache" / "tdv-airflow" / "arm-proof"


def elf_machine(data: bytes) -> int:
    """The ``e_machine`` field of an ELF header (little or big endian)."""
    assert data[:4] == b"\x7fELF", "not an ELF file"
    order = "<" if data[5] == 1 else ">"
    return int(struct.unpack_from(order + "H", data, 18)[0])


def test_an_arm64_layer_holds_aarch64_wheels_only(monkeypatch: pytest.MonkeyPatch) -> None:
    deps = Dependencies(requirements=[REQUIREMENT], architecture="arm64", cache_dir=str(CACHE))
    layer = deps.build()
    with zipfile.ZipFile(io.BytesIO(layer.data)) as zf:
        names = zf.namelist()
        shared = [n for n in names if n.endswith(".so") or ".so." in n]
        assert shared, "numpy ships compiled extensions: none found"
        for name in shared:
            assert elf_machine(zf.read(name)[:64]) == EM_AARCH64, name
        wheels = [n for n in names if n.endswith(".dist-info/WHEEL")]
        assert wheels
        for name in wheels:
            tags = [line.split(":", 1)[1].strip() for line in
                    zf.read(name).decode().splitlines() if line.startswith("Tag:")]
            assert tags, name
            for tag in tags:
                platform = tag.rsplit("-", 1)[-1]
                assert platform == "any" or platform.endswith("_aarch64"), (name, tag)

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the second build ran pip: the cache missed")

    monkeypatch.setattr(layer_build, "_pip_install", no_download)
    started = time.perf_counter()
    again = deps.build()
    assert again.sha256 == layer.sha256
    assert time.perf_counter() - started < 5
