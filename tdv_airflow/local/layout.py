"""Fetching a deployed function's zips and laying them out as the Lambda runtime does.

:func:`lay_out` downloads the code and every layer (:func:`fetch`: from a presigned URL
or S3, falling back to the stack's own copy), refuses any whose SHA-256 is not the
expected one, and lays them out: the code in a task folder (Lambda's ``/var/task``, the
working directory and ``sys.path[0]``), every layer extracted in order into one
``/opt``-like folder (:func:`extract_zip`), and links to this environment's boto3 and
its dependencies standing in for the runtime's own (:func:`runtime_modules`). Layouts
are cached by digest under a work folder (default :func:`default_workdir`), so later
runs download nothing.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

from tdv_airflow.core.cache import cache_dir
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.layers import RUNTIME_DISTRIBUTIONS
from tdv_airflow.exceptions import LocalRunError
from tdv_airflow.local.find import DeployedFunction, Source

log = logging.getLogger(__name__)

#: The child's script, copied next to every layout.
RUNNER_SOURCE = Path(__file__).with_name("lambda_runner.py")


def default_workdir() -> Path:
    """Where layouts are cached: ``cache_dir("local-run")`` (``$TDV_LOCAL_RUN_DIR``, else
    ``$TDV_CACHE_DIR/local-run``, else ``~/.cache/tdv-airflow/local-run``)."""
    return cache_dir("local-run")


@cache
def runtime_modules() -> tuple[str, ...]:
    """The top-level modules of the distributions the Lambda Python runtime provides
    (:data:`~tdv_airflow.core.layers.RUNTIME_DISTRIBUTIONS`) that are installed here,
    e.g. ``dateutil`` for ``python-dateutil``."""
    from importlib import metadata

    names: set[str] = set()
    for dist_name in RUNTIME_DISTRIBUTIONS:
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue
        top_level = dist.read_text("top_level.txt")
        if top_level:
            names.update(top_level.split())
            continue
        for file in dist.files or []:
            first = PurePosixPath(str(file)).parts[0]
            if first.endswith((".dist-info", ".egg-info")) or first in {"..", "__pycache__"}:
                continue
            if str(file).endswith(".py"):
                names.add(first.removesuffix(".py"))
    return tuple(sorted(names))


@dataclass(frozen=True)
class Layout:
    """The laid-out function.

    :param task_dir: the function code (Lambda's ``/var/task``).
    :param opt_dir: every layer extracted in order (Lambda's ``/opt``).
    :param runtime_dir: boto3 and friends (the runtime's own libraries).
    :param runner: the runner script.
    :param downloaded: the names of what had to be downloaded (empty when cached).
    """

    task_dir: Path
    opt_dir: Path
    runtime_dir: Path
    runner: Path
    downloaded: tuple[str, ...] = ()


def fetch(clients: AwsClients, source: Source) -> bytes:
    """The bytes of one zip, checked against its expected digest.

    :param clients: boto3 clients (S3 for a bucket and key).
    :param source: where it comes from; its ``fallback`` is tried when that fails.
    :raises LocalRunError: when it cannot be downloaded or has another digest.
    """
    try:
        if source.url and not source.url.startswith("https://"):
            raise LocalRunError(f"{source.name} cannot be downloaded: its location is "
                                f"{source.url!r} (the emulator serves no layer content)")
        if source.url:
            with urllib.request.urlopen(source.url, timeout=120) as resp:  # noqa: S310 - https only
                data: bytes = resp.read()
        elif source.bucket and source.key:
            body = clients.s3.get_object(Bucket=source.bucket, Key=source.key)["Body"]
            data = body.read()
        else:
            raise LocalRunError(f"{source.name} has no location")
    except Exception as exc:
        if source.fallback is not None:
            log.info("%s: %s; using %s", source.name, exc, _where(source.fallback))
            return fetch(clients, source.fallback)
        if isinstance(exc, LocalRunError):
            raise
        raise LocalRunError(f"cannot download {source.name} from {_where(source)}: "
                            f"{exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if source.sha256 and actual != source.sha256:
        raise LocalRunError(f"{source.name} from {_where(source)} has SHA-256 {actual}, "
                            f"expected {source.sha256}: refusing to run it")
    if not source.sha256:
        log.warning("%s from %s: no digest to check it against", source.name, _where(source))
    return data


def _where(source: Source) -> str:
    if source.url:
        return source.url.split("?", 1)[0]
    return f"s3://{source.bucket}/{source.key}"


def extract_zip(data: bytes, dest: Path) -> None:
    """Extract a Lambda zip into ``dest`` as Lambda does: later files overwrite earlier
    ones, executable bits and symbolic links are kept, nothing lands outside ``dest``.

    :param data: the zip's bytes.
    :param dest: the target folder.
    :raises LocalRunError: on an entry that would land outside ``dest``.
    """
    root = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if target != root and root not in target.parents:
                raise LocalRunError(f"zip entry {info.filename!r} would land outside {dest}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode(), target)
                continue
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            if mode & 0o111:
                target.chmod(0o755)


def _publish(tmp: Path, final: Path) -> None:
    try:
        tmp.rename(final)
    except OSError:  # another process laid it out first
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise


def _runtime_dir(workdir: Path) -> Path:
    """A folder holding links to this environment's boto3 and its dependencies."""
    found: dict[str, Path] = {}
    for name in runtime_modules():
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        origin = Path(spec.origin)
        found[name] = origin.parent if spec.submodule_search_locations else origin
    tag = hashlib.sha256(json.dumps(sorted((k, str(v)) for k, v in found.items()))
                         .encode()).hexdigest()[:16]
    final = workdir / "runtime" / tag
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        for path in found.values():
            os.symlink(path, tmp / path.name)
        _publish(tmp, final)
    return final


def lay_out(clients: AwsClients, function: DeployedFunction,
            workdir: str | Path | None = None) -> Layout:
    """Download (unless cached), verify and lay out a function's code and layers.

    :param clients: boto3 clients.
    :param function: what :func:`find_function` found.
    :param workdir: the cache folder (default :func:`default_workdir`).
    """
    work = Path(workdir) if workdir else default_workdir()
    work.mkdir(parents=True, exist_ok=True)
    downloaded: list[str] = []

    def download(source: Source) -> tuple[bytes, str]:
        data = fetch(clients, source)
        downloaded.append(source.name)
        return data, hashlib.sha256(data).hexdigest()

    # The code: cached by its digest.
    code_data: bytes | None = None
    code_sha = function.code.sha256
    if not code_sha:
        code_data, code_sha = download(function.code)
    task_dir = work / "code" / code_sha
    if not task_dir.is_dir():
        if code_data is None:
            code_data, _ = download(function.code)
        task_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=task_dir.parent, prefix=".tmp-"))
        extract_zip(code_data, tmp)
        _publish(tmp, task_dir)

    # The layers: one folder per ordered list of layer digests.
    layer_data: dict[int, bytes] = {}
    digests = []
    for i, source in enumerate(function.layers):
        if source.sha256:
            digests.append(source.sha256)
        else:
            layer_data[i], sha = download(source)
            digests.append(sha)
    opt_key = hashlib.sha256("\n".join(["opt", *digests]).encode()).hexdigest()
    opt_dir = work / "opt" / opt_key
    if not opt_dir.is_dir():
        opt_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=opt_dir.parent, prefix=".tmp-"))
        try:
            for i, source in enumerate(function.layers):
                data = layer_data.pop(i, None)
                if data is None:
                    data, _ = download(source)
                extract_zip(data, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / ".tdv-layers.json").write_text(json.dumps(
            [{"name": s.name, "sha256": d} for s, d in zip(function.layers, digests,
                                                             strict=True)], indent=1))
        _publish(tmp, opt_dir)

    runner_bytes = RUNNER_SOURCE.read_bytes()
    runner = work / f"runner-{hashlib.sha256(runner_bytes).hexdigest()[:16]}.py"
    if not runner.is_file():
        fd, tmp_runner = tempfile.mkstemp(dir=work, suffix=".py")
        with os.fdopen(fd, "wb") as out:
            out.write(runner_bytes)
        os.replace(tmp_runner, runner)
    return Layout(task_dir, opt_dir, _runtime_dir(work), runner, tuple(downloaded))
