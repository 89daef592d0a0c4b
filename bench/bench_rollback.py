"""Rollback through the ``live`` alias against redeploying the same version through the
stack, and what a retried promotion sends, on the embedded AWS.

A stack is deployed with model A (version 1), then with model B (version 2, live). Then,
``--repeats`` times each:

- **rollback**: ``core.rollout.rollback`` to the other version (one alias change);
- **redeploy**: what going back meant before versions: ``create_stack`` with the other
  model's prepare result, wait for the stack, publish and promote
  (``core.release.release``) — a stack update with every check it implies;
- **retried promotion**: ``core.rollout.advance`` of the version already live, and a
  retried ``core.release.release`` (find the version, promote, permission, describe).

Every AWS call is counted by botocore's ``before-call`` event, per operation; the
retried promotion must send no changing call (PublishVersion, CreateAlias, UpdateAlias,
AddPermission, UpdateStack). On AWS a stack update takes tens of seconds to minutes
where an UpdateAlias takes one round trip; the emulator applies a stack at once, so the
ratio below is a floor.

    python bench/bench_rollback.py --repeats 5
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness shared with the tests

from tdv_airflow.core import rollout, stacks  # noqa: E402
from tdv_airflow.core.clients import AwsClients  # noqa: E402
from tdv_airflow.core.release import release  # noqa: E402
from tdv_airflow.local.aws import LocalAws  # noqa: E402
from testkit.deployed import deploy_stack  # noqa: E402
from testkit.models import make_deploy, scaled_model_bytes  # noqa: E402

STACK = "tdv-bench-rollback"
BUCKET = "tdv-bench-rollback"
CHANGING = {"PublishVersion", "CreateAlias", "UpdateAlias", "AddPermission", "UpdateStack",
            "CreateStack", "DeleteFunction"}


class CallCounter:
    """Counts the API calls of every client it is attached to, by operation."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()

    def attach(self, client: Any) -> Any:
        client.meta.events.register("before-call", self._count)
        return client

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def take(self) -> collections.Counter[str]:
        taken, self.calls = self.calls, collections.Counter()
        return taken


def counted_clients(clients: AwsClients, counter: CallCounter) -> AwsClients:
    """The same clients, each counted."""
    return AwsClients(lambda service: counter.attach(clients._factory(service)),
                      clients.region_name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with LocalAws() as aws:
        first = deploy_stack(aws.endpoint_url, BUCKET, STACK, model_key="models/a.pkl")
        first.s3.put_object(Bucket=BUCKET, Key="models/b.pkl", Body=scaled_model_bytes(2))
        deploy_b = make_deploy(first.auth, BUCKET, STACK, model_s3_key="models/b.pkl")
        prepared = {"1": first.prepared, "2": deploy_b.prepare_deployment()}
        deploy_b.deploy(prepared["2"], 0)
        counter = CallCounter()
        clients = counted_clients(first.clients, counter)
        lam = clients.lambda_
        first.deploy.clients = clients  # its stack calls are counted too
        times: dict[str, list[float]] = {"rollback": [], "redeploy": []}
        calls: dict[str, collections.Counter[str]] = {}
        live, previous = "2", "1"
        model_of = {"1": "1", "2": "2"}  # version -> which prepare result it runs
        for _ in range(args.repeats):
            counter.take()
            start = time.perf_counter()
            rollout.rollback(lam, STACK, previous)
            times["rollback"].append(time.perf_counter() - start)
            calls["rollback"] = counter.take()
            # untimed: roll forward again and retire the previous version, so that going
            # back to its model the old way has to update the stack
            rollout.rollback(lam, STACK, live)
            lam.delete_function(FunctionName=STACK, Qualifier=previous)
            counter.take()
            start = time.perf_counter()
            created = first.deploy.create_stack(prepared[model_of[previous]], 1)
            stack = stacks.wait_for_stack(clients.cloudformation, created["stack_id"], 0.1,
                                          600, expected_fingerprint=created["fingerprint"])
            now = release(clients, stack, created["identity"])
            times["redeploy"].append(time.perf_counter() - start)
            calls["redeploy"] = counter.take()
            model_of[now["version"]] = model_of[previous]
            live, previous = now["version"], live
        counter.take()
        rollout.advance(lam, STACK, live, [1.0], 1.0)
        calls["retried promotion"] = counter.take()
        stack = stacks.describe(clients.cloudformation, STACK)
        counter.take()
        release(clients, stack)  # publish + promote + permission + describe, all retried
        calls["retried release"] = counter.take()
    for name in ("rollback", "redeploy"):
        print(f"{name:>10}: median {statistics.median(times[name]) * 1000:8.1f} ms over "
              f"{args.repeats}, {sum(calls[name].values())} AWS calls: "
              f"{dict(sorted(calls[name].items()))}")
    ratio = statistics.median(times["redeploy"]) / statistics.median(times["rollback"])
    print(f"redeploy / rollback wall time: {ratio:.1f}x (a floor: the emulator applies "
          "stacks at once)")
    changed = 0
    for name in ("retried promotion", "retried release"):
        retried = calls[name]
        changing = {op: n for op, n in retried.items() if op in CHANGING}
        changed += sum(changing.values())
        print(f"{name}: {sum(retried.values())} AWS calls {dict(sorted(retried.items()))}, "
              f"changing calls: {changing or 0}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
