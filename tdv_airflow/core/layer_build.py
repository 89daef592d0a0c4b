"""Building a dependency layer for Lambda's platform: the target (architecture, Python,
pip platform tags), the build cache, and the layer pip installs from requirements.

Every build is cached under :func:`tdv_airflow.core.cache.cache_dir` ``("layers")`` by a
key over its inputs (:func:`cache_key`), so a rebuild costs nothing and an unchanged
layer keeps its content-addressed S3 key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.cache import cache_dir as default_cache_dir
from tdv_airflow.core.zips import deterministic_zip, tree_files
from tdv_airflow.exceptions import ArtifactError, InvalidInputError

log = logging.getLogger(__name__)


#: The artifact kind (and S3 key folder) of the dependency layer.
DEPS_LAYER_KIND = "deps_layer"
#: Function architectures Lambda offers, and the machine names that run them.
ARCHITECTURES = {"x86_64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
#: Bumped whenever the layout or slimming rules change, so old cache entries are unused.
LAYOUT_VERSION = "1"



def python_minor() -> str:
    """This interpreter's ``3.X``: the pickles need the same minor in Lambda."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"



def check_architecture(architecture: str) -> str:
    """Return ``architecture`` if Lambda offers it (``x86_64`` or ``arm64``).

    :param architecture: the candidate.
    :raises InvalidInputError: otherwise.
    """
    if architecture not in ARCHITECTURES:
        raise InvalidInputError(f"invalid architecture {architecture!r}: Lambda offers "
                                f"{sorted(ARCHITECTURES)}")
    return architecture


def pip_platforms(python_version: str, architecture: str = "x86_64") -> list[str]:
    """The ``pip --platform`` tags whose wheels run on the Lambda Python runtime.

    python3.11 runs on Amazon Linux 2 (glibc 2.26); python3.12 and later on Amazon
    Linux 2023 (glibc 2.34). pip does not widen ``manylinux_2_X`` tags by itself, so
    every glibc level from the runtime's down to 2.17 is listed (newest first), then
    ``manylinux2014`` (which pip widens to ``manylinux2010`` and ``manylinux1``).

    :param python_version: the runtime's ``3.X``.
    :param architecture: ``x86_64`` or ``arm64``.
    """
    machine = "x86_64" if check_architecture(architecture) == "x86_64" else "aarch64"
    try:
        minor = tuple(int(p) for p in python_version.split("."))
    except ValueError:
        raise InvalidInputError(f"invalid python_version {python_version!r}: expected "
                                "'3.X'") from None
    glibc = 34 if minor >= (3, 12) else 26
    return [*(f"manylinux_2_{n}_{machine}" for n in range(glibc, 16, -1)),
            f"manylinux2014_{machine}"]


def normalize_requirements(lines: Iterable[str]) -> list[str]:
    """Requirement lines without comments, blanks or duplicates, whitespace collapsed,
    sorted (pip's result does not depend on their order).

    :param lines: requirement lines (``requirements.txt`` syntax).
    """
    out = set()
    for raw in lines:
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if line:
            out.add(re.sub(r"\s+", " ", line))
    return sorted(out)


def _requirement_lines(requirements: Sequence[str] | str | Path) -> list[str]:
    if isinstance(requirements, Path) or (isinstance(requirements, str)
                                          and ("\n" not in requirements)
                                          and Path(requirements).is_file()):
        path = Path(requirements)
        return path.read_text(encoding="utf-8").splitlines()
    if isinstance(requirements, str):
        return requirements.splitlines()
    return [str(r) for r in requirements]



# --------------------------------------------------------------------------- caching

def cache_key(parts: Any) -> str:
    """SHA-256 over :data:`LAYOUT_VERSION` and ``parts`` (JSON with sorted keys).

    :param parts: every input of a build, JSON-serialisable.
    """
    blob = json.dumps([LAYOUT_VERSION, parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def cached_build(cache: str | Path | None, key: str, build: Callable[[], bytes]) -> bytes:
    """The layer zip cached under ``key``, or ``build()``'s bytes, then cached.

    The cache entry is written to a temporary file and renamed, so concurrent builds
    never read a half-written zip.

    :param cache: the cache folder (default ``cache_dir("layers")``).
    :param key: the build's :func:`cache_key`.
    :param build: makes the zip's bytes on a cache miss.
    """
    folder = Path(cache) if cache else default_cache_dir("layers")
    path = folder / f"{key}.zip"
    if path.is_file():
        log.info("dependency layer cache hit: %s", path)
        return path.read_bytes()
    data = build()
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)
    return data


# ------------------------------------------------------------- requirements (pip)

def requirements_cache_key(requirements: Sequence[str] | str | Path, python_version: str,
                           architecture: str = "x86_64", pip_args: Sequence[str] = (),
                           find_links: Sequence[str | Path] = (), no_index: bool = False,
                           slim: bool = True, compresslevel: int = 6) -> str:
    """The cache key of a requirements layer: SHA-256 over the normalized requirements,
    the target platform and Python version and every pip option.

    Unpinned requirements are resolved once: pin versions (or clear the cache) to
    pick up new releases.

    :param requirements: requirement lines, a ``requirements.txt`` path or its text.
    :param python_version: the runtime's ``3.X``.
    :param architecture: ``x86_64`` or ``arm64``.
    :param pip_args: further pip arguments.
    :param find_links: local folders or URLs of wheels (``--find-links``).
    :param no_index: whether PyPI is not consulted (``--no-index``).
    :param slim: whether the layer is slimmed.
    :param compresslevel: the deflate level.
    """
    return cache_key({
        "kind": "requirements",
        "requirements": normalize_requirements(_requirement_lines(requirements)),
        "platforms": pip_platforms(python_version, architecture),
        "implementation": "cp",
        "python_version": python_version,
        "pip_args": list(pip_args),
        "find_links": [str(f) for f in find_links],
        "no_index": no_index,
        "slim": slim,
        "compresslevel": compresslevel,
    })


def build_requirements_layer(
    requirements: Sequence[str] | str | Path,
    *,
    python_version: str | None = None,
    architecture: str = "x86_64",
    pip_args: Sequence[str] = (),
    find_links: Sequence[str | Path] = (),
    no_index: bool = False,
    cache_dir: str | Path | None = None,
    slim: bool = True,
    compresslevel: int = 6,
) -> Artifact:
    """A layer holding ``requirements`` installed for the Lambda platform.

    Runs ``python -m pip install --target <tmp>/python --platform manylinux... --implementation
    cp --python-version 3.X --only-binary=:all: -r requirements``, so only wheels built for
    Lambda's Linux are used, whatever the worker runs on. The result is cached by
    :func:`requirements_cache_key`.

    :param requirements: requirement lines, a ``requirements.txt`` path or its text.
    :param python_version: the runtime's ``3.X`` (default: this interpreter's, which the
        pickles need anyway).
    :param architecture: the function's architecture, ``x86_64`` or ``arm64``.
    :param pip_args: further pip arguments (e.g. ``["--index-url", URL]``).
    :param find_links: local folders or URLs of wheels (``--find-links``).
    :param no_index: do not consult any index (with ``find_links``: fully offline).
    :param cache_dir: where built layers are cached (default
        :func:`tdv_airflow.core.cache.cache_dir` ``("layers")``).
    :param slim: drop what Lambda never uses (see :func:`tdv_airflow.core.zips.keep_in_layer`).
    :param compresslevel: the deflate level (0-9).
    :raises InvalidInputError: when no requirement is given.
    :raises ArtifactError: when pip fails (e.g. no Linux wheel exists for a package).
    """
    version = python_version or python_minor()
    lines = normalize_requirements(_requirement_lines(requirements))
    if not lines:
        raise InvalidInputError("requirements is empty: give at least one requirement")
    key = requirements_cache_key(lines, version, architecture, pip_args, find_links,
                                 no_index, slim, compresslevel)

    def build() -> bytes:
        with tempfile.TemporaryDirectory(prefix="tdv-layer-") as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("\n".join(lines) + "\n", encoding="utf-8")
            target = Path(tmp) / "layer" / "python"
            _pip_install(target, reqs, version, architecture, pip_args, find_links, no_index,
                         lines)
            files = tree_files(target, "python", slim)
            if not files:
                raise ArtifactError(f"pip installed no files for {lines}")
            return deterministic_zip(files, compresslevel)

    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", cached_build(cache_dir, key, build))


def _pip_install(target: Path, reqs: Path, version: str, architecture: str,
                 pip_args: Sequence[str], find_links: Sequence[str | Path], no_index: bool,
                 lines: Sequence[str]) -> None:
    """Run pip for Lambda's platform into ``target``; fail with pip's last lines."""
    argv = [sys.executable, "-m", "pip", "install", "--target", str(target),
            "--implementation", "cp", "--python-version", version,
            "--only-binary=:all:", "--no-compile", "--disable-pip-version-check",
            "--no-input", "--quiet"]
    for tag in pip_platforms(version, architecture):
        argv += ["--platform", tag]
    for link in find_links:
        argv += ["--find-links", str(link)]
    if no_index:
        argv.append("--no-index")
    argv += [*pip_args, "-r", str(reqs)]
    log.info("building the dependency layer: %s", " ".join(argv))
    proc = subprocess.run(  # noqa: S603 - argv list of our own pip call, no shell
        argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise ArtifactError(
            f"pip could not install {list(lines)} for Lambda (Python {version}, "
            f"{architecture}, manylinux wheels only): {tail}")
