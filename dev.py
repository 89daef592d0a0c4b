#!/usr/bin/env python3
"""The project's two commands, for a fresh machine with only Python 3.11 and PyPI.

    python3 dev.py demo    # deploy a model to the embedded local AWS, print the endpoint
    python3 dev.py test    # run the whole test suite

Each creates (or reuses) the virtual environment ``.venv`` and installs the project
with its ``dev`` extra into it when ``pyproject.toml`` changed since the last install.
Extra arguments after ``test`` go to pytest.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
PYTHON = BIN / "python"
STAMP = VENV / ".tdv-installed"


def _run(*argv: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(map(str, argv)), flush=True)
    subprocess.run([str(a) for a in argv], check=True, cwd=ROOT, env=env)  # noqa: S603 - argv list, no shell


def ensure_venv() -> None:
    """Create ``.venv`` and install the project into it when needed."""
    if sys.version_info[:2] not in {(3, 11), (3, 12), (3, 13)}:
        sys.exit(f"tdv-airflow needs Python 3.11-3.13, this is {sys.version.split()[0]}")
    if not PYTHON.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    _run(PYTHON, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    _run(PYTHON, "-m", "pip", "install", "--quiet", "-e", ".[dev]")
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    """Dispatch ``demo`` or ``test``.

    :param argv: the command line after the script name.
    """
    if not argv or argv[0] not in {"demo", "test"}:
        print(__doc__)
        return 2
    ensure_venv()
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    if argv[0] == "demo":
        return subprocess.call([str(PYTHON), "-m", "tdv_airflow.local.demo", *argv[1:]],  # noqa: S603 - venv python, no shell
                               cwd=ROOT, env=env)
    return subprocess.call([str(PYTHON), "-m", "pytest", *argv[1:]], cwd=ROOT,  # noqa: S603 - no shell
                           env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
