"""Deterministic zips, and what a Lambda zip leaves out (slimming).

Every zip tdv-airflow builds (the function's code, the dill layer, the dependency layer)
is written by :func:`deterministic_zip`: sorted entries, one fixed timestamp and mode,
so equal inputs give equal bytes on any machine, hence equal content-addressed S3 keys.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath

from tdv_airflow.exceptions import InvalidInputError

#: The timestamp of every zip entry (the zip format's epoch), so bytes never vary.
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)

_SLIM_DIRS = frozenset({"__pycache__", "tests", "test"})
_SLIM_SUFFIXES = frozenset({".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi"})
_DIST_INFO_NOISE = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})


def deterministic_zip(entries: Iterable[tuple[str, bytes | Path]] | Mapping[str, bytes | Path],
                      compresslevel: int = 9) -> bytes:
    """A zip of ``entries`` whose bytes depend on their names and contents only.

    Entries are sorted by name, dated 1980-01-01 and given mode 0644; a file on disk is
    read when its entry is written.

    :param entries: ``(name in the zip, bytes or file)`` pairs, or a mapping of them.
    :param compresslevel: the deflate level (0-9).
    :raises InvalidInputError: when ``compresslevel`` is not 0-9.
    """
    if isinstance(compresslevel, bool) or compresslevel not in range(10):
        raise InvalidInputError(f"compresslevel must be 0-9, got {compresslevel!r}")
    items = entries.items() if isinstance(entries, Mapping) else entries
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in sorted(items, key=lambda item: item[0]):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = content.read_bytes() if isinstance(content, Path) else content
            zf.writestr(info, data, compresslevel=compresslevel)
    return buf.getvalue()


def unzipped_size(data: bytes) -> int:
    """The total unzipped size of a zip's files, as Lambda counts it.

    :param data: the zip's bytes.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(info.file_size for info in zf.infolist())


def keep_in_layer(rel_path: str) -> bool:
    """Whether slimming keeps a file (``rel_path`` is relative to the layer root).

    Dropped: ``__pycache__``, ``tests`` and ``test`` folders, byte code, type stubs,
    Cython sources, console scripts (``python/bin``) and install records (a
    distribution's ``RECORD``, ``INSTALLER``, ``REQUESTED``, ``direct_url.json``).

    :param rel_path: a POSIX path such as ``python/numpy/__init__.py``.
    """
    path = PurePosixPath(rel_path)
    parts = path.parts
    if _SLIM_DIRS.intersection(parts[:-1]) or path.suffix in _SLIM_SUFFIXES:
        return False
    if len(parts) > 1 and parts[1] == "bin":
        return False
    return not (len(parts) > 2 and parts[-2].endswith(".dist-info")
                and parts[-1] in _DIST_INFO_NOISE)


def tree_files(root: Path, prefix: str, slim: bool = True) -> dict[str, Path]:
    """The files under ``root`` as zip entries named ``prefix/<relative path>``.

    :param root: the folder to walk.
    :param prefix: the entries' folder in the zip, e.g. ``python`` or ``python/dill``.
    :param slim: leave out what :func:`keep_in_layer` drops.
    """
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if not slim or keep_in_layer(name):
                files[name] = path
    return files
