"""A dependency layer copied from the packages installed in this environment.

Only valid on a Linux worker whose machine matches the function's architecture (the
Python minor always matches: the runtime follows the worker's Python). What the Lambda
runtime provides itself (:data:`RUNTIME_DISTRIBUTIONS`) is not copied unless named.
"""

from __future__ import annotations

import logging
import platform
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.layer_build import (
    ARCHITECTURES,
    DEPS_LAYER_KIND,
    cache_key,
    cached_build,
    check_architecture,
    python_minor,
)
from tdv_airflow.core.zips import deterministic_zip, keep_in_layer, tree_files
from tdv_airflow.exceptions import InvalidInputError

log = logging.getLogger(__name__)

#: The packages the Lambda Python runtime provides, as distribution name: import name.
RUNTIME_PACKAGES = {"boto3": "boto3", "botocore": "botocore", "s3transfer": "s3transfer",
                    "jmespath": "jmespath", "python-dateutil": "dateutil", "six": "six",
                    "urllib3": "urllib3"}
#: Distributions the Lambda Python runtime provides; not copied unless named.
RUNTIME_DISTRIBUTIONS = frozenset(RUNTIME_PACKAGES)
#: The import names of :data:`RUNTIME_DISTRIBUTIONS` (e.g. ``dateutil``).
RUNTIME_MODULES = tuple(RUNTIME_PACKAGES.values())


def _distributions_of(name: str) -> list[Any]:
    from importlib import metadata

    dists = []
    for dist_name in metadata.packages_distributions().get(name, []):
        dists.append(metadata.distribution(dist_name))
    if not dists:
        try:
            dists.append(metadata.distribution(name))
        except metadata.PackageNotFoundError:
            pass
    return dists


def _module_files(name: str) -> dict[str, Path]:
    """Files of an importable module found without importing it (no metadata)."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.origin:
        raise InvalidInputError(f"from_installed: {name!r} is neither an installed "
                                "distribution nor an importable module")
    files: dict[str, Path] = {}
    if spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            root = Path(location)
            files.update(tree_files(root, f"python/{root.name}", slim=False))
            libs = root.parent / f"{root.name}.libs"
            if libs.is_dir():
                files.update(tree_files(libs, f"python/{libs.name}", slim=False))
    else:
        origin = Path(spec.origin)
        files[f"python/{origin.name}"] = origin
    return files


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _required_names(dist: Any) -> list[str]:
    """The names of a distribution's unconditional requirements on this platform."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # no packaging: skip extras, keep the rest
        Requirement = None  # type: ignore[assignment,misc]  # noqa: N806
    names = []
    for line in dist.requires or []:
        if Requirement is None:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
            if match and not re.search(r"extra\s*==", line):
                names.append(match.group(1))
            continue
        try:
            req = Requirement(line)
        except ValueError:
            log.warning("%s: unreadable requirement %r, ignored", dist.metadata["Name"], line)
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            names.append(req.name)
    return names


def installed_files(packages: Iterable[str], with_requirements: bool = True
                    ) -> dict[str, Path]:
    """The files of installed distributions, laid out as a layer (``python/...``).

    Each name may be an import name (``sklearn``) or a distribution name
    (``scikit-learn``). A distribution's recorded files are used, which include its
    bundled shared libraries (``numpy.libs``, ``scikit_learn.libs``) and single-module
    distributions (``threadpoolctl.py``); without a record, the module's folder and a
    sibling ``<name>.libs`` folder are used. With ``with_requirements``, the installed
    requirements of each distribution are added too, transitively (e.g. joblib's
    ``cloudpickle``), except those the Lambda runtime provides
    (:data:`RUNTIME_DISTRIBUTIONS`).

    :param packages: names of installed packages.
    :param with_requirements: also copy what they require.
    :raises InvalidInputError: when a name is not installed.
    """
    from importlib import metadata

    files: dict[str, Path] = {}
    seen: set[str] = set()
    pending = [(name, True) for name in packages]
    while pending:
        name, named = pending.pop(0)
        dists = _distributions_of(name)
        recorded = [d for d in dists if d.files]
        if not recorded:
            if not named:
                log.warning("from_installed: %s is required but not installed; skipped", name)
                continue
            files.update(_module_files(name))
            continue
        for dist in recorded:
            key = _canonical(dist.metadata["Name"])
            if key in seen:
                continue
            seen.add(key)
            for entry in dist.files:
                src = Path(str(dist.locate_file(entry))).resolve()
                rel = PurePosixPath(*Path(str(entry)).parts)
                if ".." in rel.parts or rel.is_absolute() or not src.is_file():
                    continue  # console scripts and data outside site-packages
                files[f"python/{rel.as_posix()}"] = src
            if with_requirements:
                for req in _required_names(dist):
                    if _canonical(req) in RUNTIME_DISTRIBUTIONS | seen:
                        continue
                    try:
                        metadata.distribution(req)
                    except metadata.PackageNotFoundError:
                        log.warning("from_installed: %s requires %s, which is not "
                                    "installed; skipped", key, req)
                        continue
                    pending.append((req, False))
    return files


def installed_cache_key(files: Mapping[str, Path], python_version: str, architecture: str,
                        slim: bool = True, compresslevel: int = 6) -> str:
    """The cache key of a layer made from installed files: their names, sizes and
    modification times, with the platform.

    :param files: layer path to source file.
    :param python_version: this interpreter's ``3.X``.
    :param architecture: the function's architecture.
    :param slim: whether the layer is slimmed.
    :param compresslevel: the deflate level.
    """
    stats = []
    for name in sorted(files):
        st = files[name].stat()
        stats.append([name, st.st_size, st.st_mtime_ns])
    return cache_key({"kind": "installed", "files": stats, "python_version": python_version,
                       "architecture": architecture, "platform": sys.platform,
                       "slim": slim, "compresslevel": compresslevel})


def build_installed_layer(
    packages: Sequence[str],
    *,
    architecture: str = "x86_64",
    cache_dir: str | Path | None = None,
    slim: bool = True,
    compresslevel: int = 6,
    with_requirements: bool = True,
) -> Artifact:
    """A layer made of packages installed in this environment (see :func:`installed_files`).

    Compiled extensions only work in Lambda when built for its platform: this needs a
    Linux worker whose machine matches ``architecture`` (the Python minor always
    matches, since the runtime follows the worker's Python).

    :param packages: import or distribution names, e.g. ``["sklearn", "numpy", "scipy",
        "joblib", "threadpoolctl"]``.
    :param architecture: the function's architecture, ``x86_64`` or ``arm64``.
    :param cache_dir: where built layers are cached (default
        :func:`tdv_airflow.core.cache.cache_dir` ``("layers")``).
    :param slim: drop what Lambda never uses (see :func:`tdv_airflow.core.zips.keep_in_layer`).
    :param compresslevel: the deflate level (0-9).
    :param with_requirements: also copy the installed requirements of ``packages``,
        transitively (see :func:`installed_files`).
    :raises InvalidInputError: on a non-Linux worker, a machine that does not match
        ``architecture``, or a package that is not installed.
    """
    check_architecture(architecture)
    machine = platform.machine().lower()
    if not sys.platform.startswith("linux") or machine not in ARCHITECTURES[architecture]:
        raise InvalidInputError(
            f"from_installed copies this environment's packages, which only run in Lambda "
            f"({architecture} Linux) when the worker is {architecture} Linux too; this one "
            f"is {sys.platform}/{machine}: use Dependencies(requirements=[...]) instead")
    if not packages:
        raise InvalidInputError("from_installed is empty: name at least one package")
    files = installed_files(packages, with_requirements)
    if slim:
        files = {name: path for name, path in files.items() if keep_in_layer(name)}
    key = installed_cache_key(files, python_minor(), architecture, slim, compresslevel)
    data = cached_build(cache_dir, key, lambda: deterministic_zip(files, compresslevel))
    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", data)

