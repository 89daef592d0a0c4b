"""``docs/aws-behaviour.md`` cannot drift from the code: every emulator fidelity fix is
documented there, and every test file it cites as pinning a behaviour exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "aws-behaviour.md").read_text()


def test_every_fidelity_fix_is_documented() -> None:
    fixes = sorted(p.stem for p in (ROOT / "tdv_airflow" / "local").glob("fix_*.py"))
    assert fixes, "no fidelity fix found"
    assert [f for f in fixes if f not in DOC] == []


def test_every_cited_test_file_exists() -> None:
    cited = sorted(set(re.findall(r"tests/[\w/]+\.py", DOC)))
    assert len(cited) > 20
    assert [c for c in cited if not (ROOT / c).is_file()] == []
