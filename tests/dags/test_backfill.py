"""Backfills under a real scheduler (LocalExecutor on SQLite) against the emulator.

Airflow 3 runs tasks through its execution API, so the test starts ``airflow
api-server``, ``airflow dag-processor`` and ``airflow scheduler`` (LocalExecutor, which
Airflow 3 allows on SQLite) with a private ``AIRFLOW_HOME``, then drives them with
``airflow backfill create`` and ``airflow tasks clear``. The sensor pokes every second
(Airflow configuration); the DAG's bucket is created beforehand, as a user does.

It holds both deployment modes: ``per_version`` (one immutable stack per model version,
each function on its own model key, retention keeping the newest ``keep_versions``, the
deployment tag) and ``stable`` (one stack updated in place; a cleared older run restores
that version's model without retraining it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.local.aws import free_port
from testkit.aws_state import live_stacks, model_keys_of_stacks
from testkit.example_dag import DAG_ID, wait_settings
from tests.conftest import AIRFLOW, DAGS

pytestmark = pytest.mark.e2e


class Scheduler:
    """api-server + dag-processor + scheduler with LocalExecutor, on a private home."""

    def __init__(self, home: Path, base_env: dict[str, str]) -> None:
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        self.home = home
        self.env = {
            **base_env,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(16),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            **wait_settings("poke", poll_interval=1),
        }
        self.env.pop("AWS_PROFILE", None)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.scheduler: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str, timeout: float = 180, retry_on: str = "") -> str:
        """Run ``airflow *args``; its output. ``retry_on``: an error text after which the
        scheduler runs a few seconds (e.g. to mark a finished backfill complete)."""
        for _ in range(12):  # SQLite: a busy scheduler may hold the write lock
            done = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True,
                                  text=True, timeout=timeout, check=False)
            output = done.stdout + done.stderr
            if retry_on and retry_on in output and self.scheduler is None:
                self.scheduler = self._spawn("scheduler")
                time.sleep(10)
                self._stop(self.scheduler)
                self.scheduler = None
                continue
            if done.returncode == 0 or "database is locked" not in output:
                break
            time.sleep(2)
        if done.returncode != 0:
            pytest.fail(f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n"
                        f"{done.stderr[-5000:]}", pytrace=False)
        return done.stdout

    def start(self) -> Scheduler:
        self.cli("db", "migrate", timeout=600)
        for name in ("api-server", "dag-processor"):
            self.procs.append(self._spawn(name))
        self._wait(lambda: self._http_ok(f"{self.api}/api/v2/version"), 120, "api-server")
        self._wait(lambda: DAG_ID in self.cli("dags", "list", "-o", "plain"), 120,
                   "the DAG to be parsed")
        return self

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        with open(self.home / f"{name}.log", "ab") as log:
            return subprocess.Popen(  # noqa: S603 - fixed argv
                [AIRFLOW, name], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)

    def while_scheduler_stopped(self, *args: str) -> None:
        """Run a CLI command that writes runs while no scheduler runs, then (re)start it.

        On SQLite a scheduler racing a CLI write can die on a stale ``dag_run`` row, so
        writes happen between scheduler sessions.
        """
        if self.scheduler is not None:
            self._stop(self.scheduler)
            self.procs.remove(self.scheduler)
            self.scheduler = None
        self.cli(*args, retry_on="AlreadyRunningBackfill")
        self.scheduler = self._spawn("scheduler")
        self.procs.append(self.scheduler)

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    @staticmethod
    def _http_ok(url: str) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=3) as answer:  # noqa: S310 - loopback
                return bool(answer.status == 200)
        except OSError:
            return False

    def _wait(self, check: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                assert proc.poll() is None, f"{proc.args!r} exited\n{self.logs()}"
            if check():
                return
            time.sleep(1)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def logs(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
            for p in sorted(self.home.glob("*.log")))

    def query(self, sql: str, *params: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the metadata DB (SQLite in WAL mode: readers do
        not block the scheduler). Polling with ``airflow dags list-runs`` instead would
        start Airflow once a second, about a core's worth of CPU on this machine."""
        uri = f"file:{self.home / 'airflow.db'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            return db.execute(sql, params).fetchall()

    def runs(self) -> dict[str, str]:
        """State of every run, by logical date (``YYYY-MM-DD``)."""
        return {str(date)[:10]: str(state) for date, state in self.query(
            "SELECT logical_date, state FROM dag_run WHERE dag_id = ?", DAG_ID)}

    def wait_runs(self, dates: list[str], timeout: float = 900) -> None:
        def done() -> bool:
            states = self.runs()
            failed = [d for d in dates if states.get(d) == "failed"]
            assert not failed, f"runs failed: {failed}\n{self.logs()}"
            return all(states.get(d) == "success" for d in dates)
        self._wait(done, timeout, f"runs {dates} to succeed")

    def stop(self) -> None:
        for proc in self.procs:
            self._stop(proc)


@pytest.fixture(scope="module")
def scheduler(local_aws: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scheduler]:
    local_aws.reset()
    sched = Scheduler(tmp_path_factory.mktemp("airflow-scheduler"),
                      {**os.environ, **local_aws.environ()})
    try:
        yield sched.start()
    finally:
        sched.stop()


def _dates(start: int, end: int, month: str) -> list[str]:
    return [f"2025-{month}-{day:02d}" for day in range(start, end + 1)]


def _key(model: str, date: str) -> str:
    return f"models/{model}/{date.replace('-', '')}T020000/model.pkl"


def _stack(model: str, date: str) -> str:
    """The per-version stack of the run of ``date`` (the version is its logical date)."""
    return f"tdv-{model}-{date.replace('-', '')}T020000"


def _backfill(sched: Scheduler, dates: list[str], max_active_runs: int, **conf: Any) -> None:
    # the schedule runs at 02:00: the window ends at the last date's run
    sched.while_scheduler_stopped(
        "backfill", "create", "--dag-id", DAG_ID, "--from-date", dates[0],
        "--to-date", f"{dates[-1]}T02:00:00+00:00", "--max-active-runs", str(max_active_runs),
        "--dag-run-conf", json.dumps(conf))
    sched.wait_runs(dates)
    # only one backfill per DAG may run: wait until the scheduler marks this one complete
    sched._wait(lambda: _backfills_open(sched) == 0, 180, "the backfill to be completed")


def _backfills_open(sched: Scheduler) -> int:
    return int(sched.query("SELECT count(*) FROM backfill WHERE completed_at IS NULL")[0][0])


def test_backfill_per_version_then_stable_then_clear(
        scheduler: Scheduler, local_aws: Any, boto_session: Any, dag_bucket: str) -> None:
    """Both modes as a user drives them: a backfill, a later run, a cleared older run.

    Three dates per backfill: the five-date backfill, in order, under a scheduler killed
    midway, is the fault suite's (``tests/faults/test_component_faults.py``).
    """
    cfn = boto_session.client("cloudformation", endpoint_url=local_aws.endpoint_url)
    s3 = boto_session.client("s3", endpoint_url=local_aws.endpoint_url)

    # per_version: one stack per date, each function on its own model key
    dates = _dates(1, 3, "05")
    _backfill(scheduler, dates, 2, stack_mode="per_version", model_name="bf",
              keep_versions=3)
    keys = model_keys_of_stacks(boto_session, local_aws.endpoint_url, cfn, "tdv-bf-")
    assert sorted(keys.values()) == sorted(_key("bf", d) for d in dates), keys
    assert len(set(keys.values())) == 3

    # retention: one more version with keep_versions=2 leaves exactly the newest 2 stacks
    _backfill(scheduler, ["2025-05-04"], 1, stack_mode="per_version", model_name="bf",
              keep_versions=2)
    keys = model_keys_of_stacks(boto_session, local_aws.endpoint_url, cfn, "tdv-bf-")
    assert keys == {_stack("bf", d): _key("bf", d) for d in ("2025-05-03", "2025-05-04")}, keys
    tags = {t["Key"]: t["Value"] for t in cfn.describe_stacks(
        StackName=_stack("bf", "2025-05-04"))["Stacks"][0]["Tags"]}
    assert tags["tdv-airflow:deployment"] == "tdv-bf"

    # stable: one stack, serving the newest version; updates never overlapped
    stable = _dates(1, 3, "06")
    _backfill(scheduler, stable, 1, model_name="sb")
    assert [s for s in live_stacks(cfn) if s.startswith("tdv-sb")] == ["tdv-sb"]
    assert model_keys_of_stacks(boto_session, local_aws.endpoint_url, cfn, "tdv-sb") == {
        "tdv-sb": _key("sb", stable[-1])}
    events = [e["ResourceStatus"] for e in reversed(
        cfn.describe_stack_events(StackName="tdv-sb")["StackEvents"])
        if e["LogicalResourceId"] == "tdv-sb" and e["ResourceStatus"].startswith("UPDATE")]
    assert events == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"] * (len(events) // 2), events
    assert len(events) >= 4, events  # 2 updates after the create

    # clearing an older run redeploys exactly that version's model on the stable stack,
    # not retrained (same object); the run's logical date is 02:00 that day: the window
    # must reach it
    before = s3.head_object(Bucket=dag_bucket, Key=_key("sb", stable[1]))
    scheduler.while_scheduler_stopped("tasks", "clear", DAG_ID, "-s", stable[1], "-e",
                                      f"{stable[1]}T02:00:00+00:00", "-y")
    scheduler.wait_runs(stable)
    assert model_keys_of_stacks(boto_session, local_aws.endpoint_url, cfn, "tdv-sb") == {
        "tdv-sb": _key("sb", stable[1])}
    after = s3.head_object(Bucket=dag_bucket, Key=_key("sb", stable[1]))
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert [s for s in live_stacks(cfn) if s.startswith("tdv-sb")] == ["tdv-sb"]
