"""The one place that says where tdv-airflow keeps its caches on this machine."""

from __future__ import annotations

import os
from pathlib import Path

from tdv_airflow.exceptions import InvalidInputError

#: Per-kind environment variables that name a cache folder outright (kept from earlier
#: releases, where each cache had its own).
KIND_ENV_VARS = {"layers": "TDV_LAYER_CACHE", "local-run": "TDV_LOCAL_RUN_DIR"}


def cache_dir(kind: str) -> Path:
    """The folder for one kind of cache (created by whoever writes to it).

    In order: the kind's own variable from :data:`KIND_ENV_VARS` (used as is), else
    ``$TDV_CACHE_DIR/<kind>``, else ``$XDG_CACHE_HOME/tdv-airflow/<kind>``, else
    ``~/.cache/tdv-airflow/<kind>``.

    :param kind: the cache's name, one path segment such as ``"layers"`` or ``"local-run"``.
    :raises InvalidInputError: when ``kind`` is empty or not a single path segment.
    """
    if not kind or kind in {".", ".."} or "/" in kind or "\\" in kind:
        raise InvalidInputError(
            f"cache kind must be one folder name such as 'layers', got {kind!r}")
    own = KIND_ENV_VARS.get(kind)
    if own and os.environ.get(own):
        return Path(os.environ[own])
    root = os.environ.get("TDV_CACHE_DIR")
    if root:
        return Path(root) / kind
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdv-airflow" / kind
