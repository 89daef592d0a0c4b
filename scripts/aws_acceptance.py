"""Acceptance run of tdv-airflow against a real AWS account (or the embedded AWS).

For maintainers, before a release: the emulator never runs Lambda, never enforces the
endpoint's authentication and forgives much of IAM and CloudFormation; this script does
on a real account what a user does, and times each step::

    python scripts/aws_acceptance.py --profile dev --region eu-west-1 --bucket my-models-eu

    # the same run on the embedded AWS (what tests/test_aws_acceptance.py does):
    tdv-local-aws start          # prints its endpoint
    python scripts/aws_acceptance.py --endpoint-url http://127.0.0.1:PORT \\
        --region us-east-1 --bucket tdv-acceptance --create-bucket

Steps, each printed with its result and its wall time, then a summary:

1. upload two small models (``factor x the sum of each row``, factors 1 and 10: a
   lambda pickled by value with dill, so no dependency layer is needed);
2. prepare version 1 (content-addressed artifacts) and deploy it (``endpoint_auth="iam"``):
   the stack, then the candidate published and asked directly (on AWS an invoke of the
   qualified version with an API Gateway event), then the ``live`` alias moved to it;
3. predict through the endpoint with each auth mode: ``iam`` (a SigV4-signed request),
   ``api_key`` (the stack's key in ``x-api-key``) and ``none`` (public: the stack is
   switched to each mode in turn; the public endpoint lives until the next step);
4. prepare version 2 and update the stack to it (``iam``), predict;
5. roll back: the ``live`` alias back to version 1 (one alias change), predict; then
   deploy version 1 again as a cleared run would: its version still exists, so the stack
   is not redeployed (``existing_version``), predict;
6. tear down the stack (:func:`tdv_airflow.core.retention.teardown`) and delete every
   object the run wrote (all under ``--prefix``/``<stack>``; ``--keep`` keeps both).

On AWS the predictions go through API Gateway
(:func:`tdv_airflow.endpoint.client.call_stack_endpoint`), retried for
``--settle-seconds`` while a new deployment propagates; on an emulator (told apart by
:attr:`tdv_airflow.core.clients.AwsClients.emulator_endpoint`, the one place) the
deployed function runs locally (:func:`tdv_airflow.local.process.invoke_deployed`) and
the stack's auth mode is checked from its outputs.

What it needs on AWS: the identity of ``docs/airflow-identity-policy.json`` plus
``execute-api:Invoke`` on the API and ``apigateway:GET`` on its API key, or an
administrator; ``--role-arn`` names a CloudFormation service role
(``docs/cloudformation-service-role-policy.json``). A run costs a few minutes and a few
cents (one stack, six requests, a few KB in S3).

Exit status: 0 when every step passed; 1 when one failed (the stack and the objects are
still removed, unless ``--keep``); 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

#: The request every prediction sends, and what each model version answers.
PAYLOAD = {"rows": [[1, 2], [3, 4.5]]}
FACTORS = {"v1": 1.0, "v2": 10.0}
AUTH_MODES = ("iam", "api_key", "none")
#: What the first deploy may do: create the stack, or update (or find as it is) the one
#: an earlier ``--keep`` run left.
FIRST_OPERATIONS = ("created", "recreated", "updated", "unchanged")


def rows_of(payload: dict[str, Any]) -> list[list[float]]:
    """The preprocessing function: the request's rows as floats."""
    return [[float(v) for v in row] for row in payload["rows"]]


def model_bytes(factor: float) -> bytes:
    """A model whose ``predict`` answers ``factor`` times the sum of each row.

    A lambda is pickled by value by dill, so the function loads it with only the dill
    layer (no library, no dependency layer).

    :param factor: the model's factor.
    """
    import dill

    model = types.SimpleNamespace(predict=lambda rows: [factor * sum(r) for r in rows])
    data: bytes = dill.dumps(model, recurse=True)
    return data


def expected(version: str) -> list[float]:
    """The predictions model ``version`` (``"v1"``, ``"v2"``) answers to :data:`PAYLOAD`."""
    return [FACTORS[version] * sum(row) for row in rows_of(PAYLOAD)]


@dataclass
class Step:
    """One step's outcome: its name, whether it passed, its wall time, its result or why
    it failed."""

    name: str
    ok: bool
    seconds: float
    detail: str


@dataclass
class Run:
    """The steps done so far (printed as each ends)."""

    steps: list[Step] = field(default_factory=list)

    def step(self, name: str, action: Callable[[], str]) -> bool:
        """Run ``action``, print and record its outcome; ``False`` when it raised.

        :param name: the step's name.
        :param action: does the step and returns what to print.
        """
        print(f"[{len(self.steps) + 1:2d}] {name} ...", flush=True)
        start = time.monotonic()
        try:
            detail, ok = action(), True
        except Exception as exc:  # every failure is reported, then the run ends
            detail, ok = f"{type(exc).__name__}: {exc}", False
            traceback.print_exc(file=sys.stderr)
        seconds = time.monotonic() - start
        self.steps.append(Step(name, ok, seconds, detail))
        print(f"     {'ok' if ok else 'FAILED'} in {seconds:.1f} s: {detail}", flush=True)
        return ok

    def summary(self) -> bool:
        """Print the table of steps and the total; whether every step passed."""
        passed = all(s.ok for s in self.steps)
        print("\nsummary")
        for i, s in enumerate(self.steps, 1):
            print(f"  {i:2d}  {'ok    ' if s.ok else 'FAILED'}  {s.seconds:7.1f} s  {s.name}")
        total = sum(s.seconds for s in self.steps)
        print(f"  {'PASSED' if passed else 'FAILED'}: {sum(s.ok for s in self.steps)} of "
              f"{len(self.steps)} steps in {total:.1f} s", flush=True)
        return passed


class Acceptance:
    """The deployment under test: one stack, two model versions.

    :param args: the parsed command line.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        from tdv_airflow.core.clients import AwsClients

        self.args = args
        self.prefix = f"{args.prefix.strip('/')}/{args.stack_name}"
        self.auth = _auth_object(args)
        self.clients = AwsClients.from_auth(self.auth, args.region)
        self.emulator = self.clients.emulator_endpoint
        self.max_attempts = max(1, int(args.timeout / args.poll_interval))
        self.prepared: dict[str, dict[str, Any]] = {}
        self.bucket_created = False

    def model_key(self, version: str) -> str:
        """Where the run puts model ``version``."""
        return f"{self.prefix}/models/{version}/model.pkl"

    def deploy_object(self, version: str, endpoint_auth: str) -> Any:
        """A ``Deploy`` of model ``version`` on the run's stack."""
        from tdv_airflow import Deploy

        return Deploy(self.args.bucket, self.model_key(version), rows_of, self.auth,
                      region=self.args.region, stack_name=self.args.stack_name,
                      s3_prefix=f"{self.prefix}/artifacts",
                      poll_interval=self.args.poll_interval,
                      max_attempts=self.max_attempts,
                      by_value_modules=[rows_of.__module__], endpoint_auth=endpoint_auth,
                      role_arn=self.args.role_arn)

    def upload_models(self) -> str:
        """Create the bucket when asked, and upload both model versions."""
        s3 = self.clients.s3
        if self.args.create_bucket and self.args.bucket not in {
                b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            extra = ({} if self.args.region == "us-east-1" else
                     {"CreateBucketConfiguration": {"LocationConstraint": self.args.region}})
            s3.create_bucket(Bucket=self.args.bucket, **extra)
            self.bucket_created = True
        for version, factor in FACTORS.items():
            s3.put_object(Bucket=self.args.bucket, Key=self.model_key(version),
                          Body=model_bytes(factor))
        where = f"emulator at {self.emulator}" if self.emulator else "AWS"
        return (f"{where}, region {self.args.region}: s3://{self.args.bucket}/"
                f"{self.prefix}/models/{{v1,v2}}/model.pkl"
                + (" (bucket created)" if self.bucket_created else ""))

    def prepare(self, version: str) -> str:
        """Prepare model ``version``'s artifacts."""
        d = self.deploy_object(version, "iam")
        self.prepared[version] = d.prepare_deployment()
        return f"uploaded {d.last_prepare.uploaded or 'nothing'} ({d.last_prepare.bytes_sent} B)"

    def deploy(self, version: str, endpoint_auth: str,
               operations: tuple[str, ...] = ("updated",)) -> str:
        """Create or update the stack to serve ``version`` with ``endpoint_auth``; the
        ``operations`` it may report (a change is applied, never ``unchanged``)."""
        from tdv_airflow.core.release import release
        from tdv_airflow.core.stacks import describe
        from tdv_airflow.core.versions import function_identity, publish_candidate
        from tdv_airflow.local.request import request_version

        d = self.deploy_object(version, endpoint_auth)
        created = d.create_stack(self.prepared[version], invoke_mode=0)
        status, operation = created["stack_status"], created["operation"]
        if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            raise RuntimeError(f"stack {created['stack_name']} is {status} ({operation})")
        if operation not in operations:
            raise RuntimeError(f"the operation was {operation!r}, expected one of "
                               f"{list(operations)} ({status})")
        stack = describe(self.clients.cloudformation, self.args.stack_name)
        if stack is None:
            raise RuntimeError(f"stack {self.args.stack_name} does not exist")
        candidate = publish_candidate(self.clients.lambda_, self.args.stack_name,
                                      created["identity"],
                                      function_identity(stack.get("Parameters") or []),
                                      run_id="aws-acceptance")
        answer = request_version(self.clients, stack, candidate.version, PAYLOAD)
        if answer.status != 200 or not answers(answer.body, expected(version)):
            raise RuntimeError(f"candidate version {candidate.version} answered "
                               f"{answer.status} {answer.body[:300]!r}, expected "
                               f"{expected(version)}: not promoted")
        live = release(self.clients, stack, created["identity"], run_id="aws-acceptance")
        return f"{operation}, {status}, version {live['version']} validated and live"

    def rollback(self, to: str) -> str:
        """Move the ``live`` alias to version ``to`` (one alias change)."""
        from tdv_airflow.core.rollout import rollback

        function = self.args.stack_name
        start = time.monotonic()
        alias, changed = rollback(self.clients.lambda_, function, to)
        return (f"alias live -> version {alias.version} ({'changed' if changed else 'as is'})"
                f" in {time.monotonic() - start:.2f} s")

    def predict(self, version: str, endpoint_auth: str) -> str:
        """Ask the endpoint, with ``endpoint_auth``, for model ``version``'s answer."""
        from tdv_airflow.core.stacks import describe

        stack = describe(self.clients.cloudformation, self.args.stack_name)
        if stack is None:
            raise RuntimeError(f"stack {self.args.stack_name} does not exist")
        want = expected(version)
        deadline = time.monotonic() + (0 if self.emulator else self.args.settle_seconds)
        attempts = 0
        while True:
            attempts += 1
            status, body, how = self._call(stack, endpoint_auth)
            if status == 200 and answers(body, want):
                return f"{how}: 200 {want} (attempt {attempts})"
            if time.monotonic() >= deadline:
                raise RuntimeError(f"{how}: expected 200 {want}, got {status} "
                                   f"{body[:300]!r} after {attempts} attempt(s)")
            time.sleep(min(5.0, max(0.5, deadline - time.monotonic())))

    def _call(self, stack: dict[str, Any], endpoint_auth: str) -> tuple[int, str, str]:
        """One request: through API Gateway on AWS, the function run locally on an
        emulator (whose API enforces no authentication: the stack's mode is checked)."""
        from tdv_airflow.endpoint.client import endpoint_auth_of

        mode = endpoint_auth_of(stack)
        if mode != endpoint_auth:
            raise RuntimeError(f"the stack's endpoint is {mode!r}, not {endpoint_auth!r}")
        if self.emulator is not None and mode == "api_key":
            from tdv_airflow.endpoint.client import api_key_value

            api_key_value(self.clients, stack)  # the key exists and has a value
        from tdv_airflow.local.request import request_stack

        answer = request_stack(self.clients, stack, PAYLOAD)
        how = "function run locally" if answer.emulator else "via API Gateway"
        return answer.status, answer.body, f"{mode} ({how})"

    def teardown(self) -> str:
        """Delete the stack and wait for it to go."""
        from tdv_airflow.core.retention import teardown

        done = teardown(self.clients.cloudformation, self.args.stack_name,
                        poll_interval=self.args.poll_interval, max_attempts=self.max_attempts)
        return f"{done['stack_status']} (deleted: {done['deleted']})"

    def delete_objects(self) -> str:
        """Delete every object under the run's prefix (and the bucket, if the run made it)."""
        s3 = self.clients.s3
        keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.args.bucket, Prefix=f"{self.prefix}/") for o in page.get("Contents", [])]
        for start in range(0, len(keys), 1000):
            s3.delete_objects(Bucket=self.args.bucket, Delete={
                "Objects": [{"Key": k} for k in keys[start:start + 1000]], "Quiet": True})
        if self.bucket_created:
            s3.delete_bucket(Bucket=self.args.bucket)
        return f"{len(keys)} objects" + (" and the bucket" if self.bucket_created else "")


def _auth_object(args: argparse.Namespace) -> Any:
    """The credentials: the profile's (or the default chain's) session, on
    ``--endpoint-url`` when one is given."""
    import boto3

    from tdv_airflow.core.clients import UserAwsAuth

    session = boto3.Session(profile_name=args.profile, region_name=args.region)
    if not args.endpoint_url:
        return session
    creds = session.get_credentials()
    if creds is None:
        from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY

        return UserAwsAuth(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY,
                           endpoint_url=args.endpoint_url)
    frozen = creds.get_frozen_credentials()
    return UserAwsAuth(frozen.access_key, frozen.secret_key, frozen.token,
                       endpoint_url=args.endpoint_url)


def answers(body: str, want: list[float]) -> bool:
    """Whether ``body`` is ``{"predictions": want}`` (numbers within 1e-9).

    :param body: the endpoint's answer.
    :param want: the predictions expected.
    """
    try:
        got = json.loads(body).get("predictions")
    except (ValueError, AttributeError):
        return False
    return isinstance(got, list) and len(got) == len(want) and all(
        isinstance(g, int | float) and abs(g - w) <= 1e-9 for g, w in zip(got, want, strict=True))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module's documentation).

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(
        prog="aws_acceptance", description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--bucket", required=True,
                        help="an S3 bucket in --region for the models and the artifacts")
    parser.add_argument("--region", default=None,
                        help="the AWS region (default: the profile's or AWS_DEFAULT_REGION)")
    parser.add_argument("--profile", default=None, help="a boto3 profile (default chain)")
    parser.add_argument("--endpoint-url", default=None,
                        help="an emulator's URL, e.g. the embedded AWS's")
    parser.add_argument("--stack-name",
                        default=f"tdv-acceptance-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}",
                        help="the stack (default: tdv-acceptance-<UTC time>)")
    parser.add_argument("--prefix", default="tdv-acceptance",
                        help="key prefix of everything the run writes (then the stack name)")
    parser.add_argument("--role-arn", default=None, help="a CloudFormation service role")
    parser.add_argument("--create-bucket", action="store_true",
                        help="create the bucket when missing (and delete it at the end)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the stack and the objects (no tear down)")
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="seconds between stack polls (default 5 on AWS, 0.2 otherwise)")
    parser.add_argument("--timeout", type=float, default=1200.0,
                        help="seconds a stack operation may take")
    parser.add_argument("--settle-seconds", type=float, default=120.0,
                        help="how long a prediction is retried on AWS while a change "
                             "propagates")
    args = parser.parse_args(argv)
    if args.region is None:
        import boto3

        args.region = boto3.Session(profile_name=args.profile).region_name
        if not args.region:
            parser.error("no region: pass --region (or set AWS_DEFAULT_REGION)")
    if args.poll_interval is None:
        args.poll_interval = 0.2 if args.endpoint_url else 5.0
    if args.poll_interval <= 0 or args.timeout <= 0 or args.settle_seconds < 0:
        parser.error("--poll-interval and --timeout must be above 0, --settle-seconds >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every step; 0 when all passed, 1 otherwise.

    :param argv: the arguments (default: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    run = Run()
    acc: Acceptance | None = None

    def setup() -> str:
        nonlocal acc
        acc = Acceptance(args)
        return f"stack {args.stack_name}, prefix {acc.prefix}"

    if run.step("connect", setup) and acc is not None:
        a = acc
        steps: list[tuple[str, Callable[[], str]]] = [
            ("upload models", a.upload_models),
            ("prepare v1", lambda: a.prepare("v1")),
            ("deploy v1 (iam)", partial(a.deploy, "v1", "iam", FIRST_OPERATIONS)),
        ]
        for mode in AUTH_MODES:
            if mode != "iam":
                steps.append((f"switch auth to {mode}", partial(a.deploy, "v1", mode)))
            steps.append((f"predict v1 ({mode})", partial(a.predict, "v1", mode)))
        steps += [
            ("prepare v2", lambda: a.prepare("v2")),
            ("update to v2 (iam)", lambda: a.deploy("v2", "iam")),
            ("predict v2 (iam)", lambda: a.predict("v2", "iam")),
            ("roll back to v1 (alias)", lambda: a.rollback("1")),
            ("predict v1 after rollback (iam)", lambda: a.predict("v1", "iam")),
            ("deploy v1 again (iam)", partial(a.deploy, "v1", "iam", ("existing_version",))),
            ("predict v1 again (iam)", lambda: a.predict("v1", "iam")),
        ]
        for name, action in steps:
            if not run.step(name, action):
                break
        if not args.keep:
            run.step("tear down", a.teardown)
            run.step("delete objects", a.delete_objects)
    return 0 if run.summary() else 1


if __name__ == "__main__":
    sys.exit(main())
