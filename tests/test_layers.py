"""The package's layers hold: import-linter's contracts (pyproject.toml) pass on the
package, and they fail when a core module imports Airflow or when a cycle appears.

The failing cases run ``lint-imports`` on a copy of the package with one import added,
so the contracts are shown to catch exactly what they exist for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run ``lint-imports`` with ``root``'s pyproject.toml and ``root`` first on the path.

    :param root: a folder holding ``pyproject.toml`` and the ``tdv_airflow`` package.
    """
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([LINT_IMPORTS, str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_package_keeps_every_contract() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout, done.stdout


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package and its pyproject.toml in a scratch folder."""
    shutil.copytree(REPO / "tdv_airflow", tmp_path / "tdv_airflow",
                    ignore=shutil.ignore_patterns("__pycache__", "_bundled"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _add_import(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n{line}\n")


@pytest.mark.parametrize(("module", "line", "expected"), [
    ("tdv_airflow.core.naming", "import airflow.sdk  # noqa",
     "tdv_airflow.core is not allowed to import airflow"),
    ("tdv_airflow.core.stacks", "from tdv_airflow.hooks import TdvDeploymentHook  # noqa",
     "tdv_airflow.core is not allowed to import tdv_airflow.hooks"),
    ("tdv_airflow.core.validation", "import tdv_airflow.core.deployment  # noqa",
     "No cycles are allowed"),
    ("tdv_airflow.endpoint.client", "import tdv_airflow.local.aws  # noqa",
     "tdv_airflow.endpoint is not allowed to import tdv_airflow.local"),
], ids=["core-imports-airflow", "core-imports-upward", "cycle-in-core", "endpoint-imports-local"])
def test_a_broken_layer_fails_the_contracts(package_copy: Path, module: str, line: str,
                                            expected: str) -> None:
    assert lint_imports(package_copy).returncode == 0, "the copy must pass before the change"
    _add_import(package_copy, module, line)
    done = lint_imports(package_copy)
    assert done.returncode != 0, done.stdout
    assert expected in done.stdout, done.stdout
