"""Model dependencies as Lambda layers.

A scikit-learn (or any other) model needs its libraries in Lambda. tdv-airflow offers
three ways to provide them, combinable:

* ``extra_layer_arns=[...]``: layers that already exist (your own, or public ones),
  attached after tdv-airflow's layers, in the given order;
* :class:`Dependencies` ``(requirements=[...])``: a layer built with pip for the
  Lambda platform (manylinux wheels only, for the runtime's Python minor and the
  function's architecture), whatever the worker's own platform;
* :class:`Dependencies` ``(from_installed=["sklearn", "numpy", ...])``: a layer made
  of the distributions installed in the current environment (with their bundled
  shared libraries such as ``numpy.libs``). Only valid on a Linux worker whose
  machine and Python minor match the function's.

Every built layer is a deterministic zip (fixed timestamps and modes, sorted entries),
slimmed (no tests, ``__pycache__``, type stubs, Cython sources, console scripts or
install records), and cached by a key over its inputs, so a rebuild costs nothing and
an unchanged layer gets the same content-addressed S3 key. The whole function
(code plus every layer) must stay under Lambda's 250 MB unzipped limit: this is
checked with :func:`check_unzipped_size` before anything is sent to AWS.

::

    Deploy(..., dependencies=Dependencies(requirements=["scikit-learn==1.5.2"]),
           extra_layer_arns=["arn:aws:lambda:eu-west-1:123456789012:layer:tools:3"])
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import platform
import re
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.exceptions import ArtifactError, InvalidInputError

log = logging.getLogger(__name__)

#: Lambda's limit on the unzipped size of a function's code plus all its layers
#: (250 MB, i.e. 262,144,000 bytes as AWS counts them).
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
#: Lambda's limit on the number of layers of one function.
LAMBDA_MAX_LAYERS = 5
#: The artifact kind (and S3 key folder) of the dependency layer.
DEPS_LAYER_KIND = "deps_layer"
#: Function architectures Lambda offers, and the machine names that run them.
ARCHITECTURES = {"x86_64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
#: Bumped whenever the layout or slimming rules change, so old cache entries are unused.
LAYOUT_VERSION = "1"

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_SLIM_DIRS = frozenset({"__pycache__", "tests", "test"})
_SLIM_SUFFIXES = frozenset({".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi"})
_DIST_INFO_NOISE = frozenset({"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"})
_LAYER_ARN_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:layer:[A-Za-z0-9_-]{1,140}:\d+$")


def default_cache_dir() -> Path:
    """Where built layers are cached: ``$TDV_LAYER_CACHE``, else ``~/.cache/tdv-airflow/layers``."""
    env = os.environ.get("TDV_LAYER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdv-airflow" / "layers"


def _python_minor() -> str:
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


def zip_files(files: Mapping[str, Path], compresslevel: int = 6) -> bytes:
    """A deterministic zip of ``files`` (name in the zip to file on disk).

    Entries are sorted, dated 1980-01-01 and given mode 0644, so equal inputs give
    equal bytes on any machine.

    :param files: layer path to source file.
    :param compresslevel: the deflate level (0-9).
    """
    if isinstance(compresslevel, bool) or compresslevel not in range(10):
        raise InvalidInputError(f"compresslevel must be 0-9, got {compresslevel!r}")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[name].read_bytes(), compresslevel=compresslevel)
    return buf.getvalue()


def unzipped_size(data: bytes) -> int:
    """The total unzipped size of a zip's files, as Lambda counts it.

    :param data: the zip's bytes.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(info.file_size for info in zf.infolist())


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def check_unzipped_size(sizes: Mapping[str, int], limit: int | None = None) -> int:
    """Fail when the function's code plus its layers exceed Lambda's unzipped limit.

    :param sizes: part name (``"function code"``, ``"dill layer"`` ...) to unzipped bytes.
    :param limit: the limit in bytes (default :data:`LAMBDA_UNZIPPED_LIMIT_BYTES`).
    :returns: the total.
    :raises InvalidInputError: naming every part's size when the total is above ``limit``.
    """
    limit = LAMBDA_UNZIPPED_LIMIT_BYTES if limit is None else limit
    total = sum(sizes.values())
    if total > limit:
        parts = ", ".join(f"{name} {_mb(size)}" for name, size in sizes.items())
        raise InvalidInputError(
            f"the function would be {_mb(total)} ({total} bytes) unzipped ({parts}), above "
            f"AWS Lambda's limit of {_mb(limit)} ({limit} bytes) for code plus layers; "
            "drop packages from the dependency layer, or use a container image")
    return total


def check_layer_arns(arns: Sequence[str] | str | None) -> list[str]:
    """Return the extra layer ARNs as a list, each checked.

    :param arns: ARNs such as ``arn:aws:lambda:eu-west-1:123456789012:layer:name:3``, a
        comma-separated string of them, or ``None``.
    :raises InvalidInputError: when an ARN is not a layer version ARN.
    """
    if arns is None:
        return []
    items = [a.strip() for a in arns.split(",")] if isinstance(arns, str) else list(arns)
    items = [a for a in items if a]
    for arn in items:
        if not isinstance(arn, str) or not _LAYER_ARN_RE.match(arn):
            raise InvalidInputError(
                f"invalid layer ARN {arn!r}: expected a layer version ARN such as "
                "'arn:aws:lambda:eu-west-1:123456789012:layer:my-layer:3'")
    return items


def check_layer_count(count: int) -> int:
    """Fail when a function would have more layers than Lambda allows.

    :param count: the number of layers.
    :raises InvalidInputError: above :data:`LAMBDA_MAX_LAYERS`.
    """
    if count > LAMBDA_MAX_LAYERS:
        raise InvalidInputError(
            f"the function would have {count} layers (the dill layer, the dependency layer "
            f"and extra_layer_arns); AWS Lambda allows at most {LAMBDA_MAX_LAYERS}: merge "
            "some of them into the dependency layer")
    return count


# --------------------------------------------------------------------------- caching

def _cache_key(parts: Any) -> str:
    blob = json.dumps([LAYOUT_VERSION, parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _cached(cache_dir: Path, key: str) -> bytes | None:
    path = cache_dir / f"{key}.zip"
    if path.is_file():
        log.info("dependency layer cache hit: %s", path)
        return path.read_bytes()
    return None


def _store(cache_dir: Path, key: str, data: bytes) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".part")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, cache_dir / f"{key}.zip")


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
    return _cache_key({
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


def _tree_files(root: Path, prefix: str, slim: bool) -> dict[str, Path]:
    files = {}
    for path in root.rglob("*"):
        if path.is_file():
            name = f"{prefix}/{path.relative_to(root).as_posix()}"
            if not slim or keep_in_layer(name):
                files[name] = path
    return files


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
    :param cache_dir: where built layers are cached (default :func:`default_cache_dir`).
    :param slim: drop what Lambda never uses (see :func:`keep_in_layer`).
    :param compresslevel: the deflate level (0-9).
    :raises InvalidInputError: when no requirement is given.
    :raises ArtifactError: when pip fails (e.g. no Linux wheel exists for a package).
    """
    version = python_version or _python_minor()
    lines = normalize_requirements(_requirement_lines(requirements))
    if not lines:
        raise InvalidInputError("requirements is empty: give at least one requirement")
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = requirements_cache_key(lines, version, architecture, pip_args, find_links,
                                 no_index, slim, compresslevel)
    data = _cached(cache, key)
    if data is None:
        with tempfile.TemporaryDirectory(prefix="tdv-layer-") as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("\n".join(lines) + "\n", encoding="utf-8")
            target = Path(tmp) / "layer" / "python"
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
                    f"pip could not install {lines} for Lambda (Python {version}, "
                    f"{architecture}, manylinux wheels only): {tail}")
            files = _tree_files(target, "python", slim)
            if not files:
                raise ArtifactError(f"pip installed no files for {lines}")
            data = zip_files(files, compresslevel)
        _store(cache, key, data)
    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", data)


# -------------------------------------------------------- from the installed packages

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
            files.update(_tree_files(root, f"python/{root.name}", slim=False))
            libs = root.parent / f"{root.name}.libs"
            if libs.is_dir():
                files.update(_tree_files(libs, f"python/{libs.name}", slim=False))
    else:
        origin = Path(spec.origin)
        files[f"python/{origin.name}"] = origin
    return files


#: Distributions the Lambda Python runtime provides; not copied unless named.
RUNTIME_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer", "jmespath",
                                   "python-dateutil", "six", "urllib3"})


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
    return _cache_key({"kind": "installed", "files": stats, "python_version": python_version,
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
    :param cache_dir: where built layers are cached (default :func:`default_cache_dir`).
    :param slim: drop what Lambda never uses (see :func:`keep_in_layer`).
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
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    key = installed_cache_key(files, _python_minor(), architecture, slim, compresslevel)
    data = _cached(cache, key)
    if data is None:
        data = zip_files(files, compresslevel)
        _store(cache, key, data)
    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", data)


# ------------------------------------------------------------------ the user's option

@dataclass(frozen=True)
class Dependencies:
    """What goes into the function's dependency layer.

    Give ``requirements`` (installed by pip for Lambda's platform), ``from_installed``
    (copied from this environment), both (merged; pip's files win), or ``zip_path`` (a
    ready-made layer zip). JSON-friendly: :meth:`coerce` accepts the same fields as a
    dict, e.g. from an Airflow XCom or DAG params.

    :param requirements: requirement lines, or a ``requirements.txt`` path.
    :param from_installed: installed packages to copy (import or distribution names).
    :param zip_path: a ready-made layer zip (``python/...`` inside) used as is.
    :param python_version: the runtime's ``3.X`` (default: this interpreter's).
    :param architecture: the function's architecture, ``x86_64`` (Lambda's default) or
        ``arm64``.
    :param pip_args: further pip arguments (e.g. ``["--index-url", URL]``).
    :param find_links: local folders or URLs of wheels (``pip --find-links``).
    :param no_index: do not consult any package index.
    :param cache_dir: where built layers are cached (default :func:`default_cache_dir`).
    :param slim: drop tests, byte code and other files Lambda never uses.
    :param compresslevel: the deflate level (0-9) of the built zip.
    :param installed_requirements: with ``from_installed``, also copy the installed
        requirements of the named packages, transitively.
    """

    requirements: tuple[str, ...] | str | None = None
    from_installed: tuple[str, ...] = ()
    zip_path: str | None = None
    python_version: str | None = None
    architecture: str = "x86_64"
    pip_args: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    no_index: bool = False
    cache_dir: str | None = None
    slim: bool = True
    compresslevel: int = 6
    installed_requirements: bool = True

    def __post_init__(self) -> None:
        def as_tuple(value: Any) -> tuple[str, ...]:
            if isinstance(value, str | Path):
                return (str(value),)
            return tuple(str(v) for v in value or ())

        reqs = self.requirements
        if reqs is not None and not isinstance(reqs, str | Path):
            object.__setattr__(self, "requirements", as_tuple(reqs))
        elif isinstance(reqs, Path):
            object.__setattr__(self, "requirements", str(reqs))
        object.__setattr__(self, "from_installed", as_tuple(self.from_installed))
        object.__setattr__(self, "pip_args", as_tuple(self.pip_args))
        object.__setattr__(self, "find_links", as_tuple(self.find_links))
        for name in ("zip_path", "cache_dir"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, str(value))
        check_architecture(self.architecture)
        if self.zip_path and (self.requirements or self.from_installed):
            raise InvalidInputError("Dependencies: give zip_path alone, or requirements "
                                    "and/or from_installed, not both")

    @classmethod
    def coerce(cls, value: Any) -> Dependencies | None:
        """A :class:`Dependencies` from itself, a dict of its fields, a list of requirement
        lines, or ``None`` (no dependency layer).

        :param value: the candidate.
        :raises InvalidInputError: on anything else, or unknown dict keys.
        """
        if value is None or isinstance(value, Dependencies):
            return None if value is None or value.is_empty() else value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(set(value) - known)
            if unknown:
                raise InvalidInputError(f"dependencies: unknown keys {unknown}; expected "
                                        f"some of {sorted(known)}")
            return cls.coerce(cls(**value))
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return cls.coerce(cls(requirements=tuple(value)))
        raise InvalidInputError(
            "dependencies must be a tdv_airflow.core.layers.Dependencies, a dict of its fields "
            f"or a list of requirement lines, got {type(value).__name__}")

    def is_empty(self) -> bool:
        """Whether no dependency layer is asked for."""
        return not (self.requirements or self.from_installed or self.zip_path)

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-friendly values (for logs and XCom)."""
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def build(self) -> Artifact:
        """Build (or take from the cache) the dependency layer.

        :raises InvalidInputError: when nothing is asked for, or the inputs are wrong.
        :raises ArtifactError: when pip fails.
        """
        if self.is_empty():
            raise InvalidInputError("Dependencies is empty: give requirements, "
                                    "from_installed or zip_path")
        if self.zip_path:
            path = Path(self.zip_path)
            if not path.is_file() or not zipfile.is_zipfile(path):
                raise InvalidInputError(f"dependencies zip_path {self.zip_path!r} is not a "
                                        "zip file")
            return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", path.read_bytes())
        version = self.python_version or _python_minor()
        if self.from_installed and version != _python_minor():
            raise InvalidInputError(
                f"from_installed copies packages built for Python {_python_minor()}, but "
                f"the layer targets Python {version}")
        installed = (build_installed_layer(self.from_installed,
                                           architecture=self.architecture,
                                           cache_dir=self.cache_dir, slim=self.slim,
                                           compresslevel=self.compresslevel,
                                           with_requirements=self.installed_requirements)
                     if self.from_installed else None)
        reqs = (build_requirements_layer(
            self.requirements, python_version=version, architecture=self.architecture,
            pip_args=self.pip_args, find_links=self.find_links, no_index=self.no_index,
            cache_dir=self.cache_dir, slim=self.slim, compresslevel=self.compresslevel)
            if self.requirements else None)
        if installed is None or reqs is None:
            result = installed or reqs
            assert result is not None
            return result
        return merge_layers([installed, reqs], self.compresslevel)


def merge_layers(parts: Sequence[Artifact], compresslevel: int = 6) -> Artifact:
    """One deterministic layer holding every part's files; later parts win on conflicts
    (as when Lambda extracts layers in order).

    :param parts: layer artifacts.
    :param compresslevel: the deflate level (0-9).
    """
    with tempfile.TemporaryDirectory(prefix="tdv-merge-") as tmp:
        root = Path(tmp)
        for part in parts:
            with zipfile.ZipFile(io.BytesIO(part.data)) as zf:
                zf.extractall(root)
        files = {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()}
        data = zip_files(files, compresslevel)
    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", data)
