"""Fixtures of the example DAG's tests: its bucket, which a user creates before a run."""

from __future__ import annotations

from typing import Any

import pytest

from testkit.example_dag import DAG_BUCKET, ensure_bucket


@pytest.fixture
def dag_bucket(s3: Any) -> str:
    """The DAG's default bucket (Param ``bucket``), created on the emptied emulator."""
    return ensure_bucket(s3, DAG_BUCKET)
