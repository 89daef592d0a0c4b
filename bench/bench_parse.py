"""What tdv-airflow's tasks cost a DAG file at parse time, against the Amazon provider's
CloudFormation operator and sensor.

Each measurement runs ``python -X importtime`` in a fresh interpreter: ``import
airflow.sdk`` first (every DAG file pays it), then the case; the figure is the sum of
the import self-times of every module imported after ``airflow.sdk``:

* ``tdv imports``: every public class of ``tdv_airflow.operators`` and
  ``tdv_airflow.sensors``;
* ``amazon cfn``: ``airflow.providers.amazon.aws.operators.cloud_formation`` and
  ``...sensors.cloud_formation``;
* ``example DAG`` (wall time, not self-time): executing ``dags/retrain_and_deploy.py``.

Bytecode caches are warm for both sides, as in an installed Airflow (pip compiles the
wheel's modules): one unmeasured run per case fills a private ``-X pycache_prefix``
folder first, so nothing is written into the repository. A second ratio compares both
sides compiled from source (an empty cache that is never written), the worst case of a
machine without bytecode caches. Prints the medians over ``--repeats`` runs
(interleaved, so drifts affect every case alike), the ratios of ours to Amazon's (the
goal is <= 0.10), and which heavy modules each case left in ``sys.modules``.

    python bench/bench_parse.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "retrain_and_deploy.py"
HEAVY = ("boto3", "botocore", "dill", "sklearn", "numpy", "moto")
#: The parse-cost goal: ours over the Amazon operator and sensor.
GOAL = 0.10
#: The two cases the ratio compares: ours, then Amazon's.
COMPARED = ("tdv imports", "amazon cfn")

_TEMPLATE = """
import json, sys, time
import airflow.sdk
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
print(json.dumps({{"seconds": elapsed,
                  "heavy": sorted(m for m in {heavy!r} if m in sys.modules)}}))
"""

CASES = {
    "tdv imports": (
        "from tdv_airflow.operators import (CreateStackOperator, DeleteStackOperator,\n"
        "    EndpointCheckOperator, PrepareDeploymentOperator, RetireVersionsOperator)\n"
        "from tdv_airflow.sensors import StackStatusSensor"
    ),
    "amazon cfn": ("import airflow.providers.amazon.aws.operators.cloud_formation\n"
                   "import airflow.providers.amazon.aws.sensors.cloud_formation"),
    "example DAG": (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('retrain_and_deploy', {str(DAG_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.dag.task_ids"
    ),
}


def self_time_after_sdk(importtime: str) -> float:
    """Seconds of import self-time of the modules imported after ``airflow.sdk``.

    :param importtime: the stderr of ``python -X importtime``.
    """
    total, counting = 0, False
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        if counting:
            total += int(self_us)
        elif name == " airflow.sdk":  # the top-level entry (no indent), printed once complete
            counting = True
    return total / 1e6


def measure(body: str, pycache: str, cold: bool = False) -> dict[str, object]:
    """One fresh-interpreter run of ``body`` after ``import airflow.sdk``.

    :param body: the Python code to time.
    :param pycache: the bytecode cache folder (``-X pycache_prefix``).
    :param cold: never write bytecode (with an empty ``pycache``: compile from source).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    if cold:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    code = _TEMPLATE.format(body=body, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-X", "importtime", "-X", f"pycache_prefix={pycache}",
                           "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
    result = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    result["self"] = self_time_after_sdk(done.stderr)
    return result


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    self_times: dict[str, list[float]] = {name: [] for name in CASES}
    wall: dict[str, list[float]] = {name: [] for name in CASES}
    cold: dict[str, list[float]] = {name: [] for name in COMPARED}
    heavy: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tdv-bench-pycache-") as pycache, \
            tempfile.TemporaryDirectory(prefix="tdv-bench-nocache-") as nocache:
        for body in CASES.values():  # fill the bytecode cache
            measure(body, pycache)
        for _ in range(args.repeats):
            for name, body in CASES.items():
                result = measure(body, pycache)
                if "error" in result:
                    errors[name] = str(result["error"])
                    continue
                self_times[name].append(float(result["self"]))  # type: ignore[arg-type]
                wall[name].append(float(result["seconds"]))  # type: ignore[arg-type]
                heavy[name] = list(result["heavy"])  # type: ignore[call-overload]
                if name in COMPARED:
                    cold[name].append(float(measure(body, nocache, cold=True)["self"]))  # type: ignore[arg-type]
    print(f"parse cost on top of `import airflow.sdk`, median of {args.repeats} fresh "
          f"interpreters, warm bytecode caches (Python {sys.version.split()[0]})")
    for name in CASES:
        if not self_times[name]:
            print(f"  {name:<12} failed: {errors.get(name)}")
            continue
        print(f"  {name:<12} import self-time {statistics.median(self_times[name]):7.4f} s   "
              f"wall {statistics.median(wall[name]):7.4f} s   heavy modules loaded: "
              f"{', '.join(heavy[name]) or 'none'}")
    for label, figures in (("warm bytecode", self_times), ("both from source", cold)):
        if not all(figures[name] for name in COMPARED):
            continue
        ours, theirs = (statistics.median(figures[name]) for name in COMPARED)
        ratio = ours / theirs
        print(f"ratio tdv operators+sensor / amazon cfn operator+sensor, import self-time, "
              f"{label}: {ours:.4f} s / {theirs:.4f} s = {ratio:.3f} "
              f"({'within' if ratio <= GOAL else 'ABOVE'} the goal {GOAL:.2f})")


if __name__ == "__main__":
    main()
