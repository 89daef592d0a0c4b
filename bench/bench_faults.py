"""Time from fault to success, per fault, on the native Celery topology.

Runs the fault suite (``tests/faults``: PostgreSQL, Redis, api-server, scheduler,
dag-processor, triggerer, a Celery worker and the local AWS behind a fault proxy) and
prints, per row, the seconds from the injection to the success of the row's runs, the
AWS calls the proxy saw during the row (every botocore attempt counts) and how many of
them were faulted::

    .venv/bin/python bench/bench_faults.py            # every row
    .venv/bin/python bench/bench_faults.py -m "not slow"   # the quick rows

The times depend on the recovery settings the topology runs with
(``testkit.fault_topology.RECOVERY_SETTINGS``; the README's "Recovery" section gives
Airflow's defaults and what they cost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    """Run the suite, print the table.

    :param argv: extra pytest arguments.
    """
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "faults.jsonl"
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
            [sys.executable, "-m", "pytest", "tests/faults", "-q", "-p", "no:cacheprovider",
             "-n", "0", *argv], cwd=ROOT, env={**os.environ, "TDV_FAULT_REPORT": str(report)},
            check=False)
        rows = [json.loads(line) for line in report.read_text().splitlines()] \
            if report.exists() else []
    print(f"\n{'fault':<52} {'s to success':>12} {'AWS calls':>9} {'faulted':>7}")
    for row in rows:
        print(f"{row['fault']:<52} {row['seconds_to_success']:>12.1f} {row['aws_calls']:>9} "
              f"{row['faulted_calls']:>7}")
        extra = {k: v for k, v in row.items()
                 if k not in {"fault", "seconds_to_success", "aws_calls", "faulted_calls"}}
        if extra:
            print(f"    {extra}")
    if done.returncode != 0:
        print(f"\nthe fault suite failed (pytest exit {done.returncode}): rows missing above "
              "did not pass")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
