"""What the example DAG costs at parse time, against the Amazon provider's CloudFormation
operator and sensor.

Each measurement runs in a fresh interpreter: ``import airflow.sdk`` first (every DAG
file pays it), then the timed part:

* ``tdv imports``: ``tdv_airflow.operators`` and ``tdv_airflow.sensors``;
* ``example DAG``: executing ``dags/retrain_and_deploy.py`` (imports and DAG building);
* ``amazon cfn``: ``airflow.providers.amazon.aws.operators.cloud_formation`` and
  ``...sensors.cloud_formation``.

Prints the median seconds of each over ``--repeats`` runs, the ratios to the Amazon
figure, and which heavy modules each left in ``sys.modules``.

    python bench/bench_parse.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DAG_FILE = REPO / "dags" / "retrain_and_deploy.py"
HEAVY = ("boto3", "botocore", "dill", "sklearn", "numpy", "moto")

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
    "tdv imports": "import tdv_airflow.operators, tdv_airflow.sensors",
    "example DAG": (
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('retrain_and_deploy', {str(DAG_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.dag.task_ids"
    ),
    "amazon cfn": ("import airflow.providers.amazon.aws.operators.cloud_formation\n"
                   "import airflow.providers.amazon.aws.sensors.cloud_formation"),
}


def measure(body: str) -> dict[str, object]:
    """One fresh-interpreter run of ``body`` after ``import airflow.sdk``.

    :param body: the Python code to time.
    """
    code = _TEMPLATE.format(body=body, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=300)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {name: [] for name in CASES}
    heavy: dict[str, list[str]] = {}
    for _ in range(args.repeats):  # interleaved, so drifts affect every case alike
        for name, body in CASES.items():
            result = measure(body)
            times[name].append(float(result["seconds"]))  # type: ignore[arg-type]
            heavy[name] = list(result["heavy"])  # type: ignore[call-overload]
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["amazon cfn"]
    print(f"parse cost on top of `import airflow.sdk`, median of {args.repeats} fresh "
          f"interpreters ({sys.version.split()[0]})")
    for name, seconds in medians.items():
        print(f"  {name:<12} {seconds:7.3f} s   x{seconds / base:5.2f} of amazon cfn   "
              f"heavy modules loaded: {', '.join(heavy[name]) or 'none'}")
    print(f"ratio example DAG / amazon cfn operator+sensor: {medians['example DAG'] / base:.2f}")


if __name__ == "__main__":
    main()
