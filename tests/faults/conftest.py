"""Fixtures of the fault suite: one native Celery topology for the whole package, with
the local AWS behind a fault proxy (:class:`testkit.fault_topology.FaultTopology`).

Rows marked ``slow`` are left out of the quick suite (``pytest tests/faults -m "not
slow"``); CI runs them all. Each row leaves the topology healthy (every service it killed
restarted, every fault switched off) and checks that itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testkit.example_dag import DAG_ID, wait_settings
from testkit.fault_runs import STABLE_STACK, wait_finished
from testkit.fault_topology import FaultTopology
from testkit.local_topology import running

#: Celery worker slots.
WORKER_CONCURRENCY = 4


def pytest_configure(config: pytest.Config) -> None:
    """Register the markers of the fault suite."""
    config.addinivalue_line("markers", "faults: a fault row on the native Celery topology")
    config.addinivalue_line("markers", "slow: one of the slowest rows (left out of the quick "
                                       "suite with -m 'not slow'; CI runs them)")


@pytest.fixture(scope="package")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultTopology]:
    """The running topology, the example DAG unpaused; stopped after the package.

    Unpausing makes the scheduler start the latest nightly run at once: it deploys the
    stable stack before any row, and must succeed without any fault.
    """
    topo = FaultTopology(tmp_path_factory.mktemp("faults"), concurrency=WORKER_CONCURRENCY,
                         extra_env=wait_settings("deferrable", poll_interval=2))
    with running(topo):
        api = topo.api()
        api.wait_for_dag(DAG_ID)
        api.set_paused(DAG_ID, False)
        deadline = time.monotonic() + 120
        while not (scheduled := api.dag_runs(DAG_ID)) and time.monotonic() < deadline:
            time.sleep(1)
        assert [r["run_type"] for r in scheduled] == ["scheduled"], scheduled
        states = wait_finished(topo, {r["dag_run_id"] for r in scheduled})
        assert set(states.values()) == {"success"}, (states, topo.diagnostics())
        topo.live[STABLE_STACK] = str(api.xcom(DAG_ID, scheduled[0]["dag_run_id"],
                                               "train_model", "model_s3_key"))
        yield topo


@pytest.fixture
def clean_faults(faulty: FaultTopology) -> Iterator[FaultTopology]:
    """The topology, with every proxy fault ended after the test whatever happened."""
    yield faulty
    assert faulty.proxy is not None
    faulty.proxy.clear()
