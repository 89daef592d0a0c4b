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

This module holds the user's option (:class:`Dependencies`), Lambda's layer limits and
the merge of built layers; the builders live in :mod:`tdv_airflow.core.layer_build`
(target platform, build cache, pip) and :mod:`tdv_airflow.core.layer_installed` (from
this environment), the zip writer and slimming rules in :mod:`tdv_airflow.core.zips`.
Their public names are importable from here too.

::

    Deploy(..., dependencies=Dependencies(requirements=["scikit-learn==1.5.2"]),
           extra_layer_arns=["arn:aws:lambda:eu-west-1:123456789012:layer:tools:3"])
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.bundle import LAMBDA_UNZIPPED_LIMIT_BYTES, check_packaging
from tdv_airflow.core.layer_build import (
    ARCHITECTURES,
    DEPS_LAYER_KIND,
    build_requirements_layer,
    check_architecture,
    python_minor,
)
from tdv_airflow.core.layer_installed import (
    RUNTIME_DISTRIBUTIONS,
    RUNTIME_MODULES,
    build_installed_layer,
    installed_files,
)
from tdv_airflow.core.zips import deterministic_zip, unzipped_size
from tdv_airflow.exceptions import InvalidInputError

__all__ = [
    "ARCHITECTURES", "DEPS_LAYER_KIND", "LAMBDA_MAX_LAYERS", "LAMBDA_UNZIPPED_LIMIT_BYTES",
    "RUNTIME_DISTRIBUTIONS", "RUNTIME_MODULES", "Dependencies", "build_installed_layer",
    "build_requirements_layer", "check_layer_arns", "check_layer_count",
    "check_unzipped_size", "installed_files", "merge_layers", "unzipped_size",
]

#: Lambda's limit on the number of layers of one function.
LAMBDA_MAX_LAYERS = 5
_LAYER_ARN_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z]{2}(-[a-z]+)+-\d:\d{12}:layer:[A-Za-z0-9_-]{1,140}:\d+$")


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
            "drop packages from the dependency layer, or ship them as a bundle fetched "
            "into /tmp at start (Dependencies(packaging='bundle' or 'auto'))")
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
    :param cache_dir: where built layers are cached (default
        :func:`tdv_airflow.core.cache.cache_dir` ``("layers")``).
    :param slim: drop tests, byte code and other files Lambda never uses.
    :param compresslevel: the deflate level (0-9) of the built zip.
    :param installed_requirements: with ``from_installed``, also copy the installed
        requirements of the named packages, transitively.
    :param packaging: how the function gets them: ``"layer"``, ``"bundle"`` (a zip in S3
        fetched into ``/tmp`` at start, see :mod:`tdv_airflow.core.bundle`) or ``"auto"``
        (a layer while code plus layers stay within 250 MB unzipped, else a bundle).
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
    packaging: str = "auto"

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
        check_packaging(self.packaging)
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
        version = self.python_version or python_minor()
        if self.from_installed and version != python_minor():
            raise InvalidInputError(
                f"from_installed copies packages built for Python {python_minor()}, but "
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
        data = deterministic_zip(files, compresslevel)
    return Artifact(DEPS_LAYER_KIND, "deps_layer.zip", data)


def check_layer_options(template_body: Mapping[str, Any], deps: Dependencies | None,
                         layer_arns: Sequence[str]) -> None:
    """Fail when the template cannot attach the asked layers, or there are too many.

    :param template_body: the parsed template.
    :param deps: the dependency layer asked for, if any.
    :param layer_arns: the extra layer ARNs.
    """
    declared = template_body.get("Parameters") or {}
    for wanted, parameter in ((deps is not None, "DepsLayerKey"),
                              (bool(layer_arns), "ExtraLayerArns")):
        if wanted and parameter not in declared:
            raise InvalidInputError(
                f"the template does not declare the parameter {parameter!r}, which "
                f"{'dependencies' if parameter == 'DepsLayerKey' else 'extra_layer_arns'} "
                "needs; add it (see the shipped templates/stack_template.json)")
    check_layer_count(1 + (deps is not None) + len(layer_arns))


def check_function_size(built: Sequence[Artifact]) -> dict[str, int]:
    """The unzipped size of the code and each layer, checked against Lambda's limit.

    Extra layers given by ARN are not counted (their size is unknown until AWS is asked).

    :param built: the built artifacts.
    """
    names = {"lambda_code": "function code", "layer": "dill layer",
             DEPS_LAYER_KIND: "dependency layer"}
    sizes = {a.kind: unzipped_size(a.data) for a in built if a.kind in names}
    check_unzipped_size({names[kind]: size for kind, size in sizes.items()})
    return sizes
