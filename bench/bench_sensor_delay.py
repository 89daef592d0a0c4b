"""How long StackStatusSensor takes to notice that a stack finished, per waiting mode.

For each mode (poke, reschedule, deferrable) and repeat: a stack is held in
CREATE_IN_PROGRESS on the embedded moto emulator, a one-task DAG with the sensor runs
under ``airflow dags test``, its mode and poll interval set by Airflow configuration as
a deployment sets them (:func:`testkit.example_dag.wait_settings`; deferral runs its
trigger inline there; reschedule goes
through the task-reschedule loop), the hold is released once the sensor is waiting,
and the delay is the sensor task's end time (from the metadata DB) minus the release
time. With a poll interval P, expect about P/2 plus the task's own overhead (a new
task process for reschedule, the resume after the trigger for deferrable).

    python bench/bench_sensor_delay.py --poll-interval 5 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness shared with the tests

from testkit.example_dag import WAIT_MODES, wait_settings  # noqa: E402
from testkit.held_stack import create_held_stack, release  # noqa: E402

AIRFLOW = str(Path(sys.executable).parent / "airflow")
STACK = "tdv-bench"
MODES = WAIT_MODES
WAITING_LINE = re.compile(rf"stack '?{STACK}'? is CREATE_IN_PROGRESS")

# mode, deferral and poll interval: the sensor's defaults, from Airflow's configuration
_DAG = f'''
from datetime import UTC, datetime
from airflow.sdk import DAG
from tdv_airflow.sensors import StackStatusSensor

with DAG("bench_sensor_delay", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)):
    StackStatusSensor(task_id="wait", stack_name="{STACK}", timeout=600)
'''

_READ_END = """
import json
from sqlalchemy import select
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session
with create_session() as s:
    ti = s.scalars(select(TaskInstance).where(TaskInstance.dag_id == "bench_sensor_delay")
                   .order_by(TaskInstance.start_date.desc()).limit(1)).one()
    print(json.dumps({"state": str(ti.state), "end": ti.end_date.timestamp()}))
"""


def _wait_for_line(stream: Any, line: re.Pattern[str], seen: threading.Event,
                   sink: list[str]) -> None:
    for text in stream:
        sink.append(text)
        if line.search(text):
            seen.set()


def run_once(env: dict[str, str], session: Any, endpoint: str, mode: str, settle: float
             ) -> float:
    """One held-stack run; the delay in seconds between release and the sensor's end.

    :param env: the Airflow environment.
    :param session: a boto3 session for the emulator.
    :param endpoint: the emulator's URL.
    :param mode: poke, reschedule or deferrable.
    :param settle: seconds to let the sensor wait before the release.
    """
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(  # noqa: S310 - loopback emulator
        f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    stack_id = create_held_stack(session, endpoint, STACK)
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        [AIRFLOW, "dags", "test", "bench_sensor_delay"], env={**env, **wait_settings(mode)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    waiting, output = threading.Event(), list[str]()
    reader = threading.Thread(target=_wait_for_line,
                              args=(proc.stdout, WAITING_LINE, waiting, output), daemon=True)
    reader.start()
    if not waiting.wait(timeout=300):
        proc.kill()
        raise RuntimeError("the sensor never reported the stack in progress:\n"
                           + "".join(output[-40:]))
    time.sleep(settle)
    released = release(endpoint, stack_id)
    if proc.wait(timeout=600) != 0:
        raise RuntimeError("airflow dags test failed:\n" + "".join(output[-60:]))
    reader.join(timeout=5)
    done = subprocess.run([sys.executable, "-c", _READ_END], env=env, capture_output=True,
                          text=True, check=True, timeout=120)
    ti = json.loads(done.stdout.strip().splitlines()[-1])
    if "success" not in ti["state"]:
        raise RuntimeError(f"the sensor ended {ti['state']}")
    return float(ti["end"]) - released


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the delays."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args(argv)

    import boto3

    from tdv_airflow.local.aws import LocalAws

    with tempfile.TemporaryDirectory(prefix="tdv-bench-") as tmp, LocalAws() as aws:
        home, dags = Path(tmp) / "airflow", Path(tmp) / "dags"
        dags.mkdir()
        (dags / "bench_sensor_delay.py").write_text(_DAG)
        env = {**os.environ, **aws.environ(), "AIRFLOW_HOME": str(home),
               "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL": f"{args.poll_interval:g}"}
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, check=True,
                       timeout=600)
        session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",  # noqa: S106
                                region_name=aws.region)
        rng = random.Random(42)  # noqa: S311 - de-phasing, not security
        delays: dict[str, list[float]] = {mode: [] for mode in args.modes}
        for repeat in range(args.repeats):
            for mode in args.modes:
                settle = 2.0 + rng.uniform(0, args.poll_interval)
                delay = run_once(env, session, aws.endpoint_url, mode, settle)
                delays[mode].append(delay)
                print(f"  [{datetime.now():%H:%M:%S}] repeat {repeat + 1} {mode:<10} "
                      f"{delay:6.2f} s", flush=True)
    print(f"delay from the stack's final state to the sensor's end, poll interval "
          f"{args.poll_interval:g} s, {args.repeats} repeats (airflow dags test, moto):")
    for mode, values in delays.items():
        print(f"  {mode:<10} median {statistics.median(values):6.2f} s   "
              f"min {min(values):6.2f} s   max {max(values):6.2f} s")


if __name__ == "__main__":
    main()
