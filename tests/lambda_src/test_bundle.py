"""The dependency bundle on the function side (lambda_src/tdv_bundle.py) against S3 on the
emulator: fetched with ranged GETs, verified, extracted and put on sys.path before the
model is unpickled; refused, with nothing imported, when its digest differs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.zips import deterministic_zip
from testkit import lambda_fixtures as lf

BUNDLE_KEY = "tdv-airflow/deps_bundle/x/deps_bundle.zip"
MODULE = "tdv_bundled_model"
# Importing the module writes the file named by TDV_TEST_IMPORT_MARKER: proof of import.
SOURCE = '''
import os
with open(os.environ["TDV_TEST_IMPORT_MARKER"], "a") as out:
    out.write("imported\\n")


class Model:
    def predict(self, rows):
        return [sum(r) for r in rows]
'''


def bundle_zip(extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"python/{MODULE}.py", SOURCE)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def model_pickle(tmp_path: Path) -> Iterator[bytes]:
    """A model pickled by reference to a module that only the bundle holds."""
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{MODULE}.py").write_text(SOURCE.replace(
        'with open(os.environ["TDV_TEST_IMPORT_MARKER"], "a") as out:\n    out.write(',
        'if 0:\n    print('))
    sys.path.insert(0, str(src))
    try:
        module = __import__(MODULE)
        data = pickle.dumps(module.Model())
    finally:
        sys.path.remove(str(src))
        sys.modules.pop(MODULE, None)
    yield data
    sys.modules.pop(MODULE, None)


@pytest.fixture
def proc() -> Iterator[Any]:
    module = lf.load_processor()
    module._reset_cache()
    before = list(sys.path)
    yield module
    module._reset_cache()
    sys.path[:] = before


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "imported.txt"
    monkeypatch.setenv("TDV_TEST_IMPORT_MARKER", str(path))
    monkeypatch.setenv("TDV_BUNDLE_DIR", str(tmp_path / "lambda-tmp"))
    return path


def with_bundle(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, model: bytes,
                data: bytes, sha256: str | None = None) -> None:
    lf.deploy(s3, bucket, monkeypatch, model=model,
              prepro=lf.prepro_bytes(lambda payload: payload["rows"]))
    s3.put_object(Bucket=bucket, Key=BUNDLE_KEY, Body=data)
    monkeypatch.setenv("TDV_DEPS_BUNDLE_KEY", BUNDLE_KEY)
    monkeypatch.setenv("TDV_DEPS_BUNDLE_SHA256", sha256 or hashlib.sha256(data).hexdigest())


def function_side_bundle() -> Any:
    lf.load_processor()  # lambda_src on sys.path, as in Lambda
    import tdv_bundle

    return tdv_bundle


def predict(proc: Any, rows: list[list[int]]) -> dict[str, Any]:
    result: dict[str, Any] = proc.handler(lf.v1_event(json.dumps({"rows": rows})),
                                          lf.FakeContext())
    return result


def test_bundle_goes_on_sys_path_before_the_model_is_unpickled(
        proc: Any, s3: Any, bucket: str, marker: Path, model_pickle: bytes,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = bundle_zip()
    with_bundle(s3, bucket, monkeypatch, model_pickle, data)
    response = predict(proc, [[1, 2], [3, 4]])
    assert response["statusCode"] == 200, response
    assert lf.answer(response) == {"predictions": [3, 7]}
    root = tmp_path / "lambda-tmp" / f"tdv-bundle-{hashlib.sha256(data).hexdigest()}"
    assert sys.path[0] == str(root / "python")
    assert (root / ".tdv-verified").is_file() and marker.read_text() == "imported\n"
    assert not list((tmp_path / "lambda-tmp").glob("*.part"))  # the zip is deleted
    # Reused once verified: a second load in the environment does not download again.
    s3.delete_object(Bucket=bucket, Key=BUNDLE_KEY)
    proc._reset_cache()
    sys.modules.pop(MODULE, None)
    assert predict(proc, [[5, 5]])["statusCode"] == 200


def test_bundle_with_another_digest_is_refused_before_anything_is_imported(
        proc: Any, s3: Any, bucket: str, marker: Path, model_pickle: bytes,
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    data = bundle_zip()
    claimed = hashlib.sha256(b"another bundle").hexdigest()
    with_bundle(s3, bucket, monkeypatch, model_pickle, data, sha256=claimed)
    response = predict(proc, [[1, 2]])
    assert response["statusCode"] == 500
    assert not marker.exists() and MODULE not in sys.modules
    assert not [p for p in sys.path if "tdv-bundle-" in p]
    assert [p.name for p in (tmp_path / "lambda-tmp").iterdir()] == []  # nothing extracted
    text = caplog.text
    assert "SHA-256 mismatch for the bundle" in text and claimed in text
    assert hashlib.sha256(data).hexdigest() in text


def test_ranged_parallel_download_and_extraction_keep_every_byte(
        s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = function_side_bundle()
    monkeypatch.setattr(bundle, "PART_BYTES", 64 * 1024)  # many ranges
    files = {f"python/pkg/f{i}.bin": os.urandom(4000 + 37 * i) for i in range(60)}
    files["python/pkg/tool.sh"] = b"#!/bin/sh\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o755 if name.endswith(".sh") else 0o644) << 16
            zf.writestr(info, content)
    data = buf.getvalue()
    assert len(data) > 3 * 64 * 1024
    s3.put_object(Bucket=bucket, Key=BUNDLE_KEY, Body=data)
    env = {"TDV_DEPS_BUNDLE_KEY": BUNDLE_KEY, "TDV_BUNDLE_THREADS": "4",
           "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest(),
           "TDV_BUNDLE_DIR": str(tmp_path)}
    before = list(sys.path)
    try:
        python = Path(bundle.ensure_bundle(s3, bucket, env))
    finally:
        sys.path[:] = before
    for name, content in files.items():
        assert (python.parent / name).read_bytes() == content
    assert os.access(python / "pkg" / "tool.sh", os.X_OK)
    assert bundle.ensure_bundle(s3, bucket, {}) is None  # no key: no bundle


def test_entries_outside_the_folder_are_refused(s3: Any, bucket: str, tmp_path: Path) -> None:
    bundle = function_side_bundle()
    data = bundle_zip({"python/../../escape.py": b"X = 1\n"})
    s3.put_object(Bucket=bucket, Key=BUNDLE_KEY, Body=data)
    env = {"TDV_DEPS_BUNDLE_KEY": BUNDLE_KEY, "TDV_BUNDLE_DIR": str(tmp_path / "t"),
           "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest()}
    with pytest.raises(bundle.BundleError, match="would land outside"):
        bundle.ensure_bundle(s3, bucket, env)
    assert not (tmp_path / "escape.py").exists()
    assert [p.name for p in (tmp_path / "t").iterdir()] == []


class _Unseekable(io.RawIOBase):
    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += b
        return len(b)

    def tell(self) -> int:
        raise OSError("unseekable")


def foreign_zip(entries: dict[str, tuple[bytes, int]]) -> bytes:
    """A zip written to a stream without seek: each member's sizes come after its data
    (a data descriptor), as zip tools that stream write them."""
    out = _Unseekable()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, (content, mode) in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, content)
    return bytes(out.data)


class CountingClient:
    """The real S3 client, noting before each ranged GET how many bundle files are
    already written in the staging folder (``*.tmp``) under ``base``."""

    def __init__(self, client: Any, base: Path) -> None:
        self.client, self.base, self.seen = client, base, []

    def head_object(self, **kwargs: Any) -> Any:
        return self.client.head_object(**kwargs)

    def get_object(self, **kwargs: Any) -> Any:
        self.seen.append(sum(1 for staging in self.base.glob("*.tmp")
                             for path in staging.rglob("*") if path.is_file()))
        return self.client.get_object(**kwargs)


def test_members_are_extracted_while_the_download_goes_on(
        s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = function_side_bundle()
    monkeypatch.setattr(bundle, "PART_BYTES", 32 * 1024)
    files = {f"python/pkg/f{i:02d}.bin": os.urandom(20_000) for i in range(30)}
    data = deterministic_zip(files)
    assert len(data) > 16 * 32 * 1024
    s3.put_object(Bucket=bucket, Key=BUNDLE_KEY, Body=data)
    client = CountingClient(s3, tmp_path)
    env = {"TDV_DEPS_BUNDLE_KEY": BUNDLE_KEY, "TDV_BUNDLE_THREADS": "1",
           "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest(),
           "TDV_BUNDLE_DIR": str(tmp_path)}
    before = list(sys.path)
    try:
        python = Path(bundle.ensure_bundle(client, bucket, env))
    finally:
        sys.path[:] = before
    # The last GETs start when most members are already on disk (3 parts ahead at most).
    assert client.seen[-1] >= 10, client.seen
    assert client.seen == sorted(client.seen)
    for name, content in files.items():
        assert (python.parent / name).read_bytes() == content
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.part"))


def test_a_foreign_zip_with_data_descriptors_is_downloaded_then_extracted(
        s3: Any, bucket: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bundle = function_side_bundle()
    data = foreign_zip({"python/tool.sh": (b"#!/bin/sh\n" * 50, 0o755),
                        "python/mod.py": (b"X = 1\n" * 50, 0o644)})
    assert struct.unpack_from("<H", data, 6)[0] & 0x08  # a data descriptor follows
    s3.put_object(Bucket=bucket, Key=BUNDLE_KEY, Body=data)
    env = {"TDV_DEPS_BUNDLE_KEY": BUNDLE_KEY, "TDV_BUNDLE_DIR": str(tmp_path),
           "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest()}
    before = list(sys.path)
    try:
        with caplog.at_level("INFO"):
            python = Path(bundle.ensure_bundle(s3, bucket, env))
    finally:
        sys.path[:] = before
    assert (python / "mod.py").read_bytes() == b"X = 1\n" * 50
    assert os.access(python / "tool.sh", os.X_OK)
    assert '"mode": "download-then-extract"' in caplog.text
