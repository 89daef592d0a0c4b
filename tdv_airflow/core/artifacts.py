"""Build the deployment artifacts as bytes with their SHA-256 digests.

Every builder is deterministic: the same inputs give the same bytes, hence the same
digest and the same content-addressed S3 key (see :mod:`tdv_airflow.core.store`).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tdv_airflow.core.pickling import dumps_by_value
from tdv_airflow.core.resources import (
    BUNDLE_SOURCE_NAME,
    LAMBDA_SOURCE_NAME,
    UNZIP_SOURCE_NAME,
    bundle_source_path,
)
from tdv_airflow.core.zips import deterministic_zip, tree_files
from tdv_airflow.exceptions import ArtifactError, InvalidInputError


@dataclass(frozen=True)
class Artifact:
    """One file to upload.

    :param kind: what it is: ``layer``, ``prepro_fn``, ``lambda_code`` or ``template``.
    :param filename: the file name under its content-addressed prefix.
    :param data: the bytes.
    """

    kind: str
    filename: str
    data: bytes

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of :attr:`data`."""
        return hashlib.sha256(self.data).hexdigest()


def _read_file(path: str | Path, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"{what} {str(p)!r} does not exist or is not a file")
    return p.read_bytes()


def package_files(package: str) -> dict[str, Path]:
    """The source files of an installed package laid out for a layer
    (``python/<package>/...``), slimmed (see :func:`tdv_airflow.core.zips.keep_in_layer`).

    :param package: an importable top-level package name, e.g. ``"dill"``.
    """
    import importlib

    module = importlib.import_module(package)
    root = Path(module.__file__ or "").parent
    files = tree_files(root, f"python/{root.name}")
    if not files:
        raise ArtifactError(f"package {package!r} has no files to put in a layer")
    return files


def build_layer(layer_zip_local_path: str | Path | None = None) -> Artifact:
    """The Lambda layer: the installed ``dill`` laid out as ``python/dill/...``.

    :param layer_zip_local_path: a ready-made layer zip to use instead.
    """
    if layer_zip_local_path is not None:
        data = _read_file(layer_zip_local_path, "layer_zip_local_path")
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise InvalidInputError(f"layer_zip_local_path {str(layer_zip_local_path)!r} "
                                    "is not a zip file")
        return Artifact("layer", "layer.zip", data)
    return Artifact("layer", "layer.zip", deterministic_zip(package_files("dill")))


def build_lambda_code(source_path: str | Path) -> Artifact:
    """The function's code zip, holding the request processor at its root, with the
    dependency bundle module (``tdv_bundle.py``, with its zip reader ``tdv_unzip.py``)
    beside it.

    :param source_path: a ``.py`` file (zipped as ``lbd_request_processor.py``, with the
        shipped ``tdv_bundle.py``) or a ready-made ``.zip``, used as is: a custom zip that
        serves a dependency bundle must hold its own ``tdv_bundle.py`` and ``tdv_unzip.py``.
    """
    data = _read_file(source_path, "deployment_lbd_local_path")
    if str(source_path).endswith(".zip"):
        if not zipfile.is_zipfile(io.BytesIO(data)):
            raise InvalidInputError(f"deployment_lbd_local_path {str(source_path)!r} "
                                    "is not a zip file")
        return Artifact("lambda_code", "lambda_code.zip", data)
    try:
        compile(data, str(source_path), "exec")
    except SyntaxError as exc:
        raise InvalidInputError(f"deployment_lbd_local_path {str(source_path)!r} is not "
                                f"valid Python: {exc}") from exc
    return Artifact("lambda_code", "lambda_code.zip",
                    deterministic_zip([(LAMBDA_SOURCE_NAME, data),
                                       (BUNDLE_SOURCE_NAME, bundle_source_path()),
                                       (UNZIP_SOURCE_NAME,
                                        bundle_source_path().with_name(UNZIP_SOURCE_NAME))]))


def build_prepro_fn(prepro_fn: Callable[..., Any], by_value_modules: Iterable[str] = ()
                    ) -> Artifact:
    """The preprocessing function, pickled by value with dill.

    :param prepro_fn: the user's function.
    :param by_value_modules: further modules whose functions must travel by value.
    """
    return Artifact("prepro_fn", "prepro_fn.pkl", dumps_by_value(prepro_fn, by_value_modules))


def build_template(data: bytes) -> Artifact:
    """The CloudFormation template, already read and checked.

    :param data: the template's bytes.
    """
    return Artifact("template", "stack_template.json", data)
