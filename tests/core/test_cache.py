"""Where tdv-airflow keeps its caches: one helper for every kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdv_airflow.core.cache import cache_dir
from tdv_airflow.exceptions import InvalidInputError


@pytest.fixture(autouse=True)
def no_cache_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TDV_CACHE_DIR", "TDV_LAYER_CACHE", "TDV_LOCAL_RUN_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)


def test_default_is_under_the_home_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir("layers") == tmp_path / ".cache" / "tdv-airflow" / "layers"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir("local-run") == tmp_path / "xdg" / "tdv-airflow" / "local-run"


def test_tdv_cache_dir_then_the_kinds_own_variable_win(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("TDV_CACHE_DIR", str(tmp_path / "tdv"))
    assert cache_dir("layers") == tmp_path / "tdv" / "layers"
    assert cache_dir("local-run") == tmp_path / "tdv" / "local-run"
    monkeypatch.setenv("TDV_LAYER_CACHE", str(tmp_path / "mine"))
    monkeypatch.setenv("TDV_LOCAL_RUN_DIR", str(tmp_path / "runs"))
    assert cache_dir("layers") == tmp_path / "mine"
    assert cache_dir("local-run") == tmp_path / "runs"
    assert cache_dir("other") == tmp_path / "tdv" / "other"


@pytest.mark.parametrize("kind", ["", ".", "..", "a/b", "a\\b"])
def test_a_kind_is_one_folder_name(kind: str) -> None:
    with pytest.raises(InvalidInputError, match="cache kind must be one folder name"):
        cache_dir(kind)
