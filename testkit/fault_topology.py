"""The Compose topology with faults: the AWS behind a fault proxy, and services that can be
killed and restarted as a container runtime would.

:class:`FaultTopology` is :class:`testkit.topology.Topology` with two changes:

* every Airflow process reaches the local AWS through a :class:`~testkit.fault_proxy.
  FaultProxy` (the test's own clients still go straight to the emulator, so what it
  checks is never faulted);
* :meth:`FaultTopology.kill` SIGKILLs a service with every process it started, task
  processes included (they run in process groups of their own), as the kernel does when
  a container is OOM-killed; :meth:`FaultTopology.restart` starts it again as
  ``restart: always`` does, and :meth:`FaultTopology.restart_postgres` restarts the
  database server on the same data folder.

The recovery settings it runs with (:data:`RECOVERY_SETTINGS`) are the ones the README
recommends for a cluster that must recover within a minute; Airflow's defaults take
minutes (see the README's "Recovery" section).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from testkit.fault_proxy import FaultProxy
from testkit.processes import TopologyError, pids, proc_stat, wait_until
from testkit.topology import Topology

#: Airflow settings under which the topology recovers from a killed process in seconds.
RECOVERY_SETTINGS = {
    # a task whose supervisor stopped heartbeating is failed (then retried) after 20 s
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
    # a scheduler or triggerer that stopped heartbeating for 15 s is dead: its tasks are
    # adopted (checked every 10 s) and its triggers taken over
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "15",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
    # a task queued whose Celery message died with its worker is re-queued after 120 s
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "120",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
    # a failed try is retried 5 s later (the example DAG takes Airflow's default delay)
    "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
}


def descendants(root: int) -> list[int]:
    """Every live process below ``root`` (children, grandchildren ...).

    :param root: a process id.
    """
    parents: dict[int, int] = {}
    for pid in pids():
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = Path(f"/proc/{pid}/stat").read_text()
            parents[pid] = int(text[text.rindex(")") + 2:].split()[1])
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


class FaultTopology(Topology):
    """A :class:`Topology` whose AWS is behind a fault proxy and whose services can die.

    :param args: as :class:`Topology`.
    :param kwargs: as :class:`Topology`; :data:`RECOVERY_SETTINGS` are added to
        ``extra_env``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["extra_env"] = {**RECOVERY_SETTINGS, **(kwargs.get("extra_env") or {})}
        super().__init__(*args, **kwargs)
        self.proxy: FaultProxy | None = None
        #: stack name -> the model key its alias ``live`` must serve (kept by the tests)
        self.live: dict[str, str] = {}

    @property
    def aws_netloc(self) -> str:
        """The fault proxy's address (started on first use, after the emulator)."""
        if self.proxy is None:
            self.proxy = FaultProxy(self.aws.endpoint_url).__enter__()
        return f"127.0.0.1:{self.proxy.port}"

    def stop(self, check: bool = True) -> list[str]:
        """Stop the topology, then the proxy (see :meth:`Topology.stop`)."""
        try:
            return super().stop(check)
        finally:
            if self.proxy is not None:
                self.proxy.__exit__(None, None, None)

    def delete_stacks(self, names: list[str]) -> None:
        """Delete stacks a row made (and forget them in :attr:`live`).

        :param names: the stacks.
        """
        cfn = self.boto3_client("cloudformation")
        for name in names:
            cfn.delete_stack(StackName=name)
            cfn.get_waiter("stack_delete_complete").wait(
                StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            self.live.pop(name, None)

    # ----- faults

    def kill(self, name: str) -> list[int]:
        """SIGKILL service ``name`` and every process it started.

        :param name: a service (``worker``, ``triggerer``, ``scheduler`` ...).
        :returns: the processes killed.
        """
        service = self.services[name]
        if service.proc is None:
            raise TopologyError(f"{name} was never started")
        leader = service.proc.pid
        victims = [leader, *descendants(leader)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        service.signal(signal.SIGKILL)
        service.proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in victims) and time.monotonic() < deadline:
            time.sleep(0.1)
        return victims

    def restart(self, name: str, timeout: float = 120.0) -> None:
        """Start a killed service again and wait until its health check passes.

        :param name: the service.
        :param timeout: seconds it may take to become healthy.
        """
        service = self.services[name]
        if service.proc is not None and service.proc.poll() is None:
            raise TopologyError(f"{name} is still running: kill it first")
        service.start()
        self._wait_healthy_only(name, timeout)

    def restart_check(self, name: str, timeout: float = 120.0) -> None:
        """Wait until a service started again by :meth:`revive` passes its health check.

        :param name: the service.
        :param timeout: seconds.
        """
        self._wait_healthy_only(name, timeout)

    def _wait_healthy_only(self, name: str, timeout: float) -> None:
        everything = self.AIRFLOW_SERVICES
        try:
            self.AIRFLOW_SERVICES = (name,)  # type: ignore[misc]
            self._wait_healthy(timeout)
        finally:
            self.AIRFLOW_SERVICES = everything  # type: ignore[misc]

    def revive(self) -> list[str]:
        """Start again every Airflow service that exited, as Compose's ``restart: always``
        does (without waiting for its health check); the services restarted.
        """
        revived = []
        for name in self.AIRFLOW_SERVICES:
            service = self.services.get(name)
            if service is not None and service.proc is not None \
                    and service.proc.poll() is not None:
                service.start()
                revived.append(name)
        return revived

    def restart_postgres(self, down_for: float = 3.0) -> None:
        """Stop PostgreSQL (fast shutdown: every connection is cut), wait, start it again.

        :param down_for: seconds the server stays down.
        """
        from testkit.processes import postgres_bindir

        postgres = self.services["postgres"]
        postgres.stop(timeout=30.0)
        time.sleep(down_for)
        postgres.start()
        isready = [str(postgres_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1",
                   "-p", str(self.ports["postgres"]), "-U", "airflow", "-d", "airflow"]
        wait_until(lambda: subprocess.run(isready, timeout=10,  # noqa: S603 - fixed argv
                                          check=False).returncode == 0,
                   60, "postgres after its restart", postgres.check_alive, interval=0.2)


def _alive(pid: int) -> bool:
    stat = proc_stat(pid)
    return stat is not None and stat[0] != "Z"
