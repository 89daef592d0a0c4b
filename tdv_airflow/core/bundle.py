"""Dependencies beyond Lambda's 250 MB: the dependency bundle.

Lambda refuses a function whose code plus layers pass 250 MB unzipped, but its
ephemeral storage (``/tmp``, 512 to 10,240 MB, kept for an execution environment's life)
can hold much more. A *bundle* is the dependency layer's own deterministic zip
(``python/...`` entries, the same bytes and build cache), uploaded under its own
content-addressed key (artifact kind :data:`BUNDLE_KIND`) and attached through the
template parameters ``DepsBundleKey``/``DepsBundleSha256`` instead of ``DepsLayerKey``.
The function fetches it once per execution environment with parallel ranged GETs,
checks its SHA-256, extracts it into ``/tmp`` and puts it on ``sys.path`` before it
unpickles anything (``lambda_src/tdv_bundle.py``).

:class:`~tdv_airflow.core.layers.Dependencies` ``(packaging=...)`` chooses:
``"layer"`` (as before), ``"bundle"``, or ``"auto"`` (the default): a layer while code
plus layers stay within 250 MB unzipped, a bundle past it (:func:`choose`). Layers
given by ARN are not counted (their unzipped size is unknown without asking AWS).
"""

from __future__ import annotations

import io
import logging
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.layer_build import DEPS_LAYER_KIND
from tdv_airflow.exceptions import InvalidInputError

log = logging.getLogger(__name__)

#: The artifact kind (and ``sha256`` entry) of a dependency bundle.
BUNDLE_KIND = "deps_bundle"
#: ``Dependencies.packaging`` values.
PACKAGINGS = ("auto", "layer", "bundle")
#: Lambda's limit on the unzipped size of a function's code plus all its layers
#: (250 MB, i.e. 262,144,000 bytes as AWS counts them).
LAMBDA_UNZIPPED_LIMIT_BYTES = 262_144_000
#: Lambda's ephemeral storage range, in MB (``EphemeralStorage.Size``).
EPHEMERAL_MIN_MB, EPHEMERAL_MAX_MB = 512, 10240
#: ``/tmp`` kept free beside the bundle for the function's own use.
HEADROOM_BYTES = 64 * 2**20
#: What one file may waste on the file system (a block).
BLOCK_BYTES = 4096
#: The template parameters a bundle needs.
BUNDLE_PARAMETERS = ("DepsBundleKey", "DepsBundleSha256")
_NAMES = {"lambda_code": "function code", "layer": "dill layer",
          DEPS_LAYER_KIND: "dependency layer"}


def check_packaging(value: Any) -> str:
    """Return ``value`` if it is one of :data:`PACKAGINGS`.

    :param value: the candidate.
    :raises InvalidInputError: naming the value and the choices.
    """
    if value not in PACKAGINGS:
        raise InvalidInputError(f"invalid packaging {value!r}: expected one of "
                                f"{list(PACKAGINGS)}")
    return str(value)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


@dataclass(frozen=True)
class BundleSize:
    """A bundle's sizes.

    :param zipped: the zip's bytes (what is downloaded).
    :param unzipped: its files' bytes once extracted.
    :param files: how many files it holds.
    """

    zipped: int
    unzipped: int
    files: int

    @classmethod
    def of(cls, data: bytes) -> BundleSize:
        """Measure a zip.

        :param data: the zip's bytes.
        """
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
        return cls(len(data), sum(i.file_size for i in infos), len(infos))

    @property
    def ephemeral_mb(self) -> int:
        """The ephemeral storage (MB) the function needs: the download and the extracted
        files side by side (the zip is deleted after extraction), a block per file, and
        :data:`HEADROOM_BYTES`; at least Lambda's 512."""
        needed = self.zipped + self.unzipped + self.files * BLOCK_BYTES + HEADROOM_BYTES
        return max(EPHEMERAL_MIN_MB, math.ceil(needed / 2**20))

    def check(self) -> BundleSize:
        """Fail when no ephemeral storage can hold the bundle.

        :raises InvalidInputError: naming the sizes and Lambda's 10,240 MB.
        """
        if self.ephemeral_mb > EPHEMERAL_MAX_MB:
            raise InvalidInputError(
                f"the dependency bundle is {_mb(self.zipped)} zipped and "
                f"{_mb(self.unzipped)} ({self.unzipped} bytes) unzipped: it needs "
                f"{self.ephemeral_mb} MB of ephemeral storage, above AWS Lambda's maximum of "
                f"{EPHEMERAL_MAX_MB} MB; drop packages from the dependencies")
        return self


@dataclass
class Packaging:
    """How the dependencies are attached.

    :param choice: ``"layer"``, ``"bundle"`` or ``None`` (no dependencies).
    :param reason: why, with the sizes (logged by the prepare step).
    :param artifact: the artifact to upload (kind ``deps_layer`` or ``deps_bundle``).
    :param size: the bundle's sizes, for a bundle.
    """

    choice: str | None = None
    reason: str = "no dependencies"
    artifact: Artifact | None = None
    size: BundleSize | None = None


def check_template(declared: Mapping[str, Any], packaging: str) -> None:
    """Fail when ``packaging="bundle"`` is asked of a template without its parameters.

    :param declared: the template's ``Parameters``.
    :param packaging: the asked packaging.
    """
    missing = [p for p in BUNDLE_PARAMETERS if p not in declared]
    if packaging == "bundle" and missing:
        raise InvalidInputError(
            f"packaging='bundle' needs a template that declares the parameters {missing} "
            "(see the shipped templates/stack_template.json); this one does not")


def choose(packaging: str, deps_layer: Artifact | None, sizes: Mapping[str, int],
           declared: Mapping[str, Any]) -> Packaging:
    """Decide how the built dependencies are attached, and check the limits.

    :param packaging: ``"auto"``, ``"layer"`` or ``"bundle"``.
    :param deps_layer: the built dependency layer (``None``: no dependencies).
    :param sizes: the unzipped bytes of the code and the dill layer, by artifact kind.
    :param declared: the template's ``Parameters`` (``auto`` picks a layer when the
        template cannot take a bundle).
    :raises InvalidInputError: when code plus layers pass 250 MB with a layer, or the
        bundle needs more than 10,240 MB of ephemeral storage.
    """
    if deps_layer is None:
        return Packaging()
    check_packaging(packaging)
    base = sum(sizes.values())
    layer_size = BundleSize.of(deps_layer.data)
    total = base + layer_size.unzipped
    parts = ", ".join(f"{_NAMES.get(k, k)} {_mb(v)}" for k, v in
                      [*sizes.items(), (DEPS_LAYER_KIND, layer_size.unzipped)])
    over = total > LAMBDA_UNZIPPED_LIMIT_BYTES
    can_bundle = all(p in declared for p in BUNDLE_PARAMETERS)
    if packaging == "layer" or (packaging == "auto" and (not over or not can_bundle)):
        why = ("asked" if packaging == "layer" else
               f"{'within' if not over else 'above'} the limit"
               f"{'' if can_bundle or not over else ', but the template takes no bundle'}")
        return Packaging("layer", f"layer ({packaging}: code plus layers {_mb(total)} unzipped "
                         f"({parts}), {why} of {_mb(LAMBDA_UNZIPPED_LIMIT_BYTES)})", deps_layer)
    size = layer_size.check()
    limit = _mb(LAMBDA_UNZIPPED_LIMIT_BYTES)
    why = "asked" if packaging == "bundle" else f"above the limit of {limit}"
    reason = (f"bundle ({packaging}: code plus layers would be {_mb(total)} unzipped ({parts}), "
              f"{why}; the bundle is {_mb(size.zipped)} zipped, {_mb(size.unzipped)} "
              f"unzipped in {size.files} files and needs {size.ephemeral_mb} MB of ephemeral "
              "storage)")
    return Packaging("bundle", reason, Artifact(BUNDLE_KIND, "deps_bundle.zip", deps_layer.data),
                     size)


def bundle_response(packaging: Packaging, key: str | None) -> dict[str, Any] | None:
    """The prepare result's ``deps_bundle`` entry (``None`` without a bundle).

    :param packaging: the decision.
    :param key: the bundle's S3 key.
    """
    if packaging.choice != "bundle" or packaging.size is None or packaging.artifact is None:
        return None
    size = packaging.size
    return {"key": key, "sha256": packaging.artifact.sha256, "zipped_bytes": size.zipped,
            "unzipped_bytes": size.unzipped, "files": size.files,
            "min_ephemeral_storage_mb": size.ephemeral_mb}


def bundle_parameters(response: Mapping[str, Any], ephemeral_storage_mb: int | None = None
                      ) -> dict[str, Any]:
    """The template parameters of a prepare result's bundle (empty without one).

    :param response: the prepare result (its ``deps_bundle``).
    :param ephemeral_storage_mb: the ephemeral storage the user set (``None``: the
        bundle's :attr:`BundleSize.ephemeral_mb`).
    :raises InvalidInputError: when the set ephemeral storage cannot hold the bundle.
    """
    bundle = response.get("deps_bundle")
    if not bundle:
        return {}
    needed = int(bundle["min_ephemeral_storage_mb"])
    if ephemeral_storage_mb is not None and int(ephemeral_storage_mb) < needed:
        raise InvalidInputError(
            f"ephemeral_storage={ephemeral_storage_mb} MB cannot hold the dependency bundle "
            f"({bundle['zipped_bytes']} bytes zipped, {bundle['unzipped_bytes']} unzipped): "
            f"it needs at least {needed} MB; raise it or leave it unset")
    return {"DepsBundleKey": bundle["key"], "DepsBundleSha256": bundle["sha256"],
            "EphemeralStorageSize": needed if ephemeral_storage_mb is None
            else int(ephemeral_storage_mb)}

