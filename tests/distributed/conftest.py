"""Fixtures of the distributed tests: the Compose topology, started natively once per module.

The topology (PostgreSQL, Redis, the local AWS, api-server, scheduler, dag-processor,
triggerer and a Celery worker; see :mod:`testkit.topology`) is stopped when the
module ends, whatever happened, and the test errors if any of its processes survived.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.example_dag import wait_settings
from testkit.local_topology import running
from testkit.topology import Topology

#: Celery worker slots: fewer than the runs the test keeps waiting at once.
WORKER_CONCURRENCY = 4
#: How the example DAG's tasks wait (Airflow configuration): deferred, as the Compose file
#: already sets, with stack polls every 3 s instead of the provider's 30 s.
DAG_SETTINGS = wait_settings("deferrable", poll_interval=3)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``distributed`` marker."""
    config.addinivalue_line(
        "markers", "distributed: starts the Compose topology natively (PostgreSQL, Redis, "
                   "Celery worker, triggerer...) and drives it through the REST API")


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    """The running topology; stopped (and checked for survivors) after the module."""
    with running(Topology(tmp_path_factory.mktemp("topology"), concurrency=WORKER_CONCURRENCY,
                          extra_env=DAG_SETTINGS)) as topo:
        yield topo
