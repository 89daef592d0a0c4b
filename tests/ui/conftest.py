"""Fixtures of the browser tests: the Airflow services on the local AWS, and Chromium.

The services are those of the Compose file without Celery
(:class:`testkit.local_topology.LocalExecutorTopology`): a UI test exercises the
api-server, the scheduler, the dag-processor and the triggerer, and the LocalExecutor
runs its few tasks without a broker and a worker, two fewer processes on a small
machine. The nightly schedule is off (``use_job_schedule``), so unpausing the example
DAG creates no run: the only run is the one the trigger form asks for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.browser import Browser
from testkit.example_dag import wait_settings
from testkit.local_topology import LocalExecutorTopology, running

#: Airflow settings: sensors defer to the triggerer and poll every 2 s; no scheduled runs;
#: tasks wait up to 30 s (not 5) for each answer of the api-server, which also serves the
#: browser: on a loaded 2-core machine a task killed for a slow answer costs a retry.
SETTINGS = {**wait_settings("deferrable", poll_interval=2),
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "false",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30"}
#: Chromium resolves no name but loopback: a followed link shows where it goes, and
#: nothing leaves the machine.
OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``ui`` marker."""
    config.addinivalue_line(
        "markers", "ui: drives the Airflow UI in headless Chromium against running services")


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalExecutorTopology]:
    """The running services; stopped (and checked for survivors) after the module."""
    with running(LocalExecutorTopology(tmp_path_factory.mktemp("ui-services"),
                                       extra_env=SETTINGS)) as topo:
        yield topo


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium with a fresh profile; screenshots under ``tmp_path/screenshots``."""
    chromium = Browser(tmp_path, OFFLINE)
    try:
        yield chromium
    finally:
        try:
            chromium.shot("end")  # where a failed test stopped
        finally:
            chromium.close()
