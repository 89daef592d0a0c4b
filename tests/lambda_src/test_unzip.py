"""The function side's zip reader (lambda_src/tdv_unzip.py): a zip extracted member after
member from its bytes in order, in pieces of any size, checked against its central
directory; a zip it cannot read in order is told apart for the caller to fall back."""

from __future__ import annotations

import hashlib
import io
import os
import random
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.zips import deterministic_zip
from testkit import lambda_fixtures as lf
from tests.lambda_src.test_bundle import foreign_zip


@pytest.fixture
def unzip() -> Any:
    lf.load_processor()  # lambda_src on sys.path, as in Lambda
    import tdv_unzip

    return tdv_unzip


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    pos, turn = 0, 0
    while pos < len(data):
        step = sizes[turn % len(sizes)]
        yield data[pos:pos + step]
        pos, turn = pos + step, turn + 1


def files() -> dict[str, bytes]:
    rnd = random.Random(13)
    out = {f"python/pkg/m{i}.py": (f"X = {i}\n" * rnd.randint(1, 400)).encode()
           for i in range(40)}
    out["python/pkg/noise.bin"] = rnd.randbytes(300_000)  # incompressible, large
    out["python/pkg/big.txt"] = b"0123456789abcdef" * 40_000  # large, inflated in pieces
    out["python/pkg/empty.txt"] = b""
    return out


@pytest.mark.parametrize("sizes", [[1, 2, 3, 5, 7, 11], [4096], [65_536, 17], [10**9]])
def test_a_deterministic_zip_is_extracted_from_pieces_of_any_size(
        unzip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sizes: list[int]) -> None:
    monkeypatch.setattr(unzip, "WHOLE_MEMBER_BYTES", 20_000)
    monkeypatch.setattr(unzip, "PENDING_BYTES", 50_000)
    content = files()
    data = deterministic_zip(content, compresslevel=6)
    digest, size, outcome = unzip.stream_extract(pieces(data, sizes), str(tmp_path), 3)
    assert (digest, size, outcome) == (hashlib.sha256(data).hexdigest(), len(data), len(content))
    for name, body in content.items():
        assert (tmp_path / name).read_bytes() == body


def test_modes_come_from_the_central_directory_and_stored_members_work(
        unzip: Any, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("python/bin/", b"")
        for name, mode in (("python/bin/tool", 0o755), ("python/lib.py", 0o644)):
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, b"#!/bin/sh\n" * 3)
    _, _, outcome = unzip.stream_extract(pieces(buf.getvalue(), [9]), str(tmp_path), 2)
    assert outcome == 2
    assert os.access(tmp_path / "python/bin/tool", os.X_OK)
    assert not os.access(tmp_path / "python/lib.py", os.X_OK)


def test_a_zip_with_data_descriptors_is_not_read_in_order(unzip: Any, tmp_path: Path) -> None:
    data = foreign_zip({"python/a.py": (b"A = 1\n", 0o644)})
    with pytest.raises(unzip.NotInOrder, match="flags 0x8"):
        unzip.stream_extract(iter([data]), str(tmp_path), 2)


def test_entries_outside_the_folder_are_refused(unzip: Any, tmp_path: Path) -> None:
    data = deterministic_zip({"python/ok.py": b"", "python/../../escape.py": b"X = 1\n"})
    root = tmp_path / "root"
    root.mkdir()
    digest, _, outcome = unzip.stream_extract(iter([data]), str(root), 2)
    assert isinstance(outcome, unzip.UnzipError) and "would land outside" in str(outcome)
    assert digest == hashlib.sha256(data).hexdigest()  # hashed to the end all the same
    assert not (tmp_path / "escape.py").exists()


def test_a_central_directory_that_disagrees_is_refused(unzip: Any, tmp_path: Path) -> None:
    data = bytearray(deterministic_zip({"python/a.py": b"A = 1\n", "python/b.py": b"B\n"}))
    central = data.index(struct.pack("<I", 0x02014B50))
    data[central + 24:central + 28] = struct.pack("<I", 999)  # first entry's size
    _, _, outcome = unzip.stream_extract(iter([bytes(data)]), str(tmp_path), 2)
    assert isinstance(outcome, unzip.UnzipError)
    assert "central directory does not match" in str(outcome)


def test_damaged_or_cut_zips_are_refused(unzip: Any, tmp_path: Path) -> None:
    data = deterministic_zip({"python/a.txt": b"abc" * 5000}, compresslevel=0)
    damaged = bytearray(data)
    damaged[100] ^= 0xFF  # inside the stored member: CRC-32 differs
    _, _, outcome = unzip.stream_extract(iter([bytes(damaged)]), str(tmp_path / "d"), 2)
    assert isinstance(outcome, unzip.UnzipError) and "CRC-32" in str(outcome)
    _, _, outcome = unzip.stream_extract(iter([data[:5000]]), str(tmp_path / "c"), 2)
    assert isinstance(outcome, unzip.UnzipError) and "not a complete zip" in str(outcome)


def test_zip64_extra_fields_replace_the_32_bit_placeholders(unzip: Any) -> None:
    extra = struct.pack("<HH", 0x5455, 1) + b"\0" + struct.pack("<HHQQ", 1, 16, 2**33, 7)
    assert unzip._zip64(extra, (0xFFFFFFFF, 5, 0xFFFFFFFF)) == (2**33, 5, 7)
    assert unzip._zip64(b"", (1, 2, 3)) == (1, 2, 3)
