"""Concurrent model-version deployments on the Compose topology (CeleryExecutor), natively.

Starts the topology of docker-compose.yml with the harness of the distributed test
(:mod:`testkit.topology`: PostgreSQL, Redis, the local AWS, api-server,
scheduler, dag-processor, triggerer, a Celery worker), then for each N deploys N model
versions at once: a backfill of N dates of ``retrain_and_deploy`` with
``max_active_runs=N``, in the DAG's per-version mode (one stack per version).

The emulator completes a stack at once, which a real CloudFormation stack never does:
every stack is held in CREATE_IN_PROGRESS and released ``--hold`` seconds after it
appeared, as if CloudFormation took that long. Meanwhile the REST API is sampled every
second for the sensors that wait and the worker slots they hold (``wait_for_stack``
task instances in state running; a deferred sensor holds none).

Run inside the project's venv (root, or with postgresql and redis-server installed):

    python bench/bench_scale.py [--versions 1,5,10] [--hold 60] [--concurrency 4]
                                [--modes deferrable,poke]

Prints, per mode and N: the wall time from the backfill's creation until its last run
succeeded, the most sensors waiting at once, the most and mean worker slots they held
while waiting, and the machine's mean load average (other work on the 2 cores skews the
times); then the ratios of N versions against 1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from testkit.airflow_api import FINISHED_RUN, AirflowApi  # noqa: E402
from testkit.example_dag import (  # noqa: E402
    DAG_ID,
    check_per_version_mode,
    per_version_conf,
    wait_settings,
)
from testkit.held_stack import deployment_template_with_hold  # noqa: E402
from testkit.topology import Topology  # noqa: E402

#: Sensor states in which a sensor is still waiting for its stack.
WAITING = frozenset({"running", "deferred", "up_for_reschedule", "queued", "scheduled"})


@dataclass
class Result:
    """One measurement: N versions deployed at once."""

    mode: str
    versions: int
    wall: float
    most_waiting: int = 0
    most_slots_held: int = 0
    slots_held: list[int] = field(default_factory=list)
    load: list[float] = field(default_factory=list)

    @property
    def mean_slots_held(self) -> float:
        """Mean worker slots held by waiting sensors, over the samples with one waiting."""
        return statistics.fmean(self.slots_held) if self.slots_held else 0.0

    @property
    def mean_load(self) -> float:
        """The machine's mean 1-minute load average during the measurement."""
        return statistics.fmean(self.load) if self.load else 0.0


def _wait_idle(api: AirflowApi, timeout: float) -> None:
    """Wait until no run of the DAG is unfinished (e.g. the scheduled run of unpausing)."""
    deadline = time.monotonic() + timeout
    while any(r["state"] not in FINISHED_RUN for r in api.dag_runs(DAG_ID)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs of {DAG_ID} still unfinished after {timeout} s")
        time.sleep(2.0)


def deploy_versions(topo: Topology, api: AirflowApi, mode: str, versions: int, first: datetime,
                    conf: dict[str, Any], hold: float, timeout: float) -> Result:
    """Backfill ``versions`` dates from ``first``; hold each stack ``hold`` s; sample."""
    cfn = topo.boto3_client("cloudformation")
    started = time.monotonic()
    backfill = api.create_backfill(DAG_ID, first, first + timedelta(days=versions - 1, hours=3),
                                   max_active_runs=versions, conf=conf)
    result = Result(mode, versions, wall=0.0)
    appeared: dict[str, float] = {}
    released: set[str] = set()
    deadline = started + timeout
    while True:
        topo.check_alive()
        now = time.monotonic()
        for summary in cfn.list_stacks(StackStatusFilter=["CREATE_IN_PROGRESS"])[
                "StackSummaries"]:
            name = summary["StackName"]
            appeared.setdefault(name, now)
            if name not in released and now - appeared[name] >= hold:
                topo.release_held_stack(name)
                released.add(name)
        runs = [r for r in api.dag_runs(DAG_ID) if r["run_type"] == "backfill"
                and r["logical_date"] >= first.isoformat()[:10]]
        ours = {r["dag_run_id"] for r in runs}
        sensors = [ti for ti in api.task_instances(DAG_ID, "wait_for_stack")
                   if ti["dag_run_id"] in ours]
        waiting = [ti for ti in sensors if ti["state"] in WAITING
                   and ti["rendered_fields"].get("stack_name") in set(appeared) - released]
        result.load.append(os.getloadavg()[0])
        if waiting:
            held = sum(1 for ti in waiting if ti["state"] == "running")
            result.slots_held.append(held)
            result.most_slots_held = max(result.most_slots_held, held)
            result.most_waiting = max(result.most_waiting, len(waiting))
        if len(runs) == versions and all(r["state"] in FINISHED_RUN for r in runs):
            result.wall = time.monotonic() - started
            failed = [r["dag_run_id"] for r in runs if r["state"] != "success"]
            if failed:
                raise RuntimeError(f"runs failed: {failed}\n{topo.diagnostics()}")
            break
        if now > deadline:
            raise TimeoutError(f"{versions} versions not deployed after {timeout} s\n"
                               f"{topo.diagnostics()}")
        time.sleep(1.0)
    _wait_backfill_done(api, backfill["id"])
    return result


def _wait_backfill_done(api: AirflowApi, backfill_id: int, timeout: float = 120.0) -> None:
    """The scheduler marks a backfill complete shortly after its last run finished."""
    deadline = time.monotonic() + timeout
    while api.backfill(backfill_id)["completed_at"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} not marked complete")
        time.sleep(2.0)


def run_mode(mode: str, counts: list[int], args: argparse.Namespace) -> list[Result]:
    """Start a topology with the sensors in ``mode`` and measure every N."""
    work = Path(tempfile.mkdtemp(prefix=f"tdv-bench-scale-{mode}-"))
    env = wait_settings(mode, args.poke_interval)  # Airflow configuration, read at parse
    results = []
    with Topology(work, concurrency=args.concurrency, extra_env=env) as topo:
        print(f"[{mode}] topology up ({work}); warming up with the scheduled run", flush=True)
        api = topo.api()
        check_per_version_mode(api.wait_for_dag(DAG_ID))
        # Keep every version's stack: retiring old ones would add deletes to the timings.
        conf = per_version_conf(deployment_template_with_hold(work / "held_template.json"),
                                keep_versions=sum(counts) + 1)
        api.set_paused(DAG_ID, False)
        time.sleep(5.0)
        _wait_idle(api, args.timeout)
        first = datetime(2025, 1, 1, tzinfo=UTC)
        for n in counts:
            result = deploy_versions(topo, api, mode, n, first, conf, args.hold, args.timeout)
            print(f"[{mode}] {n:>3} versions: {result.wall:7.1f} s wall, "
                  f"{result.most_waiting} sensors waiting at most, worker slots held by "
                  f"waiting sensors: max {result.most_slots_held}, "
                  f"mean {result.mean_slots_held:.2f}; load {result.mean_load:.1f}", flush=True)
            results.append(result)
            first += timedelta(days=n + 1)
    return results


def main() -> None:
    """Parse the options, measure, print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--versions", default="1,5,10",
                        help="comma-separated numbers of concurrent versions")
    parser.add_argument("--hold", type=float, default=60.0,
                        help="seconds each stack stays CREATE_IN_PROGRESS")
    parser.add_argument("--concurrency", type=int, default=4, help="Celery worker slots")
    parser.add_argument("--poke-interval", type=float, default=3.0,
                        help="[tdv_airflow] poll_interval: seconds between stack polls")
    parser.add_argument("--modes", default="deferrable",
                        help="comma-separated wait modes (poke, reschedule, deferrable)")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds one measurement may take")
    args = parser.parse_args()
    counts = [int(n) for n in args.versions.split(",")]
    every: list[Result] = []
    for mode in args.modes.split(","):
        every += run_mode(mode, counts, args)
    print(f"\nhold {args.hold:.0f} s per stack, {args.concurrency} worker slots, "
          f"poke interval {args.poke_interval:.0f} s")
    print(f"{'mode':<11}{'versions':>9}{'wall s':>9}{'s/version':>11}{'waiting max':>13}"
          f"{'slots held max':>16}{'mean':>7}{'load':>7}")
    for r in every:
        print(f"{r.mode:<11}{r.versions:>9}{r.wall:>9.1f}{r.wall / r.versions:>11.1f}"
              f"{r.most_waiting:>13}{r.most_slots_held:>16}{r.mean_slots_held:>7.2f}"
              f"{r.mean_load:>7.1f}")
    for mode in args.modes.split(","):
        mine = {r.versions: r for r in every if r.mode == mode}
        if 1 in mine:
            for n, r in sorted(mine.items()):
                if n != 1:
                    print(f"[{mode}] wall time {n} versions / 1 version: "
                          f"{r.wall / mine[1].wall:.2f} (throughput x"
                          f"{n * mine[1].wall / r.wall:.2f})")


if __name__ == "__main__":
    main()
