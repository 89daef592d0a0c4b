"""Fixtures of the local-tooling tests: moto servers with chosen fidelity fixes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, LocalAws

REGION = "us-east-1"


@dataclass
class Moto:
    """A moto server and a boto3 Session on it."""

    aws: LocalAws
    session: Any

    def client(self, service: str) -> Any:
        """A client of ``service`` on this server."""
        return self.session.client(service, endpoint_url=self.aws.endpoint_url)


@pytest.fixture(scope="module")
def moto_with(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Callable[[tuple[str, ...]], Moto]]:
    """Start moto servers with only the given fixes (``()``: moto as it is); all are
    stopped after the module."""
    import boto3

    started: list[LocalAws] = []

    def start(fixes: tuple[str, ...]) -> Moto:
        log = tmp_path_factory.mktemp("moto") / "moto.log"
        aws = LocalAws(fixes=fixes, log_path=log).start()
        started.append(aws)
        session = boto3.Session(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, region_name=REGION)
        return Moto(aws, session)

    try:
        yield start
    finally:
        for aws in started:
            aws.stop()
