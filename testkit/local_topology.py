"""The Compose topology without Celery: tasks run on the scheduler's LocalExecutor.

:class:`LocalExecutorTopology` is :class:`testkit.topology.Topology` (PostgreSQL, the
local AWS, api-server, scheduler, dag-processor and triggerer, with the Compose file's
settings) minus Redis and the Celery worker: the scheduler's LocalExecutor runs each
task in a child process of its own, so its logs land in ``AIRFLOW_HOME/logs``, where
the api-server reads them. For tests that exercise the UI rather than the executor:
two fewer long-running processes (and no broker) on a small machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from testkit.topology import DAGS, Topology

_T = TypeVar("_T", bound=Topology)


@contextlib.contextmanager
def running(topology: _T) -> Iterator[_T]:
    """Start ``topology`` (which stops what it started when it fails), yield it, stop it,
    and fail when a process outlived it and had to be killed (for module fixtures).

    :param topology: a topology not yet started.
    """
    topology.start()
    try:
        yield topology
    finally:
        left = topology.stop(check=False)
        assert left == [], f"processes outlived the topology and had to be killed: {left}"


class LocalExecutorTopology(Topology):
    """PostgreSQL, the local AWS and four Airflow services; no Redis, no worker.

    :param workdir: where AIRFLOW_HOME and the logs go (created).
    :param parallelism: task processes the LocalExecutor runs at once.
    :param extra_env: further variables for every Airflow process.
    :param startup_timeout: seconds the whole start may take.
    :param dags_folder: the DAGs folder.
    """

    AIRFLOW_SERVICES: tuple[str, ...] = ("api-server", "scheduler", "dag-processor", "triggerer")

    def __init__(self, workdir: Path, *, parallelism: int = 4,
                 extra_env: Mapping[str, str] | None = None,
                 startup_timeout: float = 420.0, dags_folder: Path = DAGS) -> None:
        settings = {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                    "AIRFLOW__CORE__PARALLELISM": str(parallelism), **(extra_env or {})}
        super().__init__(workdir, extra_env=settings, startup_timeout=startup_timeout,
                         dags_folder=dags_folder)

    def _start_redis(self) -> None:
        """No broker: the LocalExecutor needs none."""
