"""The real-account acceptance script, run as maintainers run it, on the embedded AWS (so
that it cannot rot): every step passes and is printed with its time; a failure exits 1
and still cleans up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

from testkit.aws_state import all_objects, live_stacks
from tests.conftest import REGION, REPO

SCRIPT = REPO / "scripts" / "aws_acceptance.py"
STEPS = [
    "connect", "upload models", "prepare v1", "deploy v1 (iam)", "predict v1 (iam)",
    "switch auth to api_key", "predict v1 (api_key)", "switch auth to none",
    "predict v1 (none)", "prepare v2", "update to v2 (iam)", "predict v2 (iam)",
    "roll back to v1 (alias)", "predict v1 after rollback (iam)", "deploy v1 again (iam)",
    "predict v1 again (iam)", "tear down", "delete objects",
]


def run_script(aws: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **aws.environ()}
    env.pop("AWS_PROFILE", None)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--endpoint-url", aws.endpoint_url, "--region", REGION,
         "--stack-name", "tdv-acceptance-test", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)


def outcomes(stdout: str) -> list[tuple[str, str, float]]:
    """``(step, "ok"/"FAILED", seconds)`` of each step, from the summary table."""
    table = stdout.split("\nsummary\n", 1)[1]
    return [(m["name"], m["ok"], float(m["s"])) for m in re.finditer(
        r"^ +\d+ +(?P<ok>ok|FAILED) +(?P<s>[\d.]+) s +(?P<name>.+)$", table, re.M)]


def test_every_step_passes_and_is_timed(aws: Any, s3: Any, cfn: Any) -> None:
    done = run_script(aws, "--bucket", "tdv-acceptance", "--create-bucket")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    for i, step in enumerate(STEPS, 1):
        assert f"[{i:2d}] {step} ...\n     ok in " in out, step
    assert [(name, ok) for name, ok, _ in outcomes(out)] == [(s, "ok") for s in STEPS]
    assert all(seconds >= 0 for _, _, seconds in outcomes(out))
    assert re.search(rf"PASSED: {len(STEPS)} of {len(STEPS)} steps in [\d.]+ s", out)
    # each auth mode answered, each version answered what it must
    for mode in ("iam", "api_key", "none"):
        assert f"{mode} (function run locally): 200 [3.0, 7.5]" in out, mode
    assert "iam (function run locally): 200 [30.0, 75.0]" in out
    assert out.count("updated, UPDATE_COMPLETE") == 3  # two auth switches, v2
    assert "alias live -> version 1 (changed)" in out  # the rollback: no stack update
    assert "existing_version, UPDATE_COMPLETE, version 1 validated and live" in out
    assert "created, CREATE_COMPLETE" in out
    # it cleaned up after itself
    assert live_stacks(cfn) == []
    assert all_objects(s3) == set()
    assert "tdv-acceptance" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_a_failed_step_exits_1_and_still_cleans_up(aws: Any, boto_session: Any, s3: Any,
                                                   cfn: Any) -> None:
    """A bucket in another region than the stack's: prepare is refused, the run stops,
    tears down (nothing to delete) and removes what it uploaded."""
    eu = boto_session.client("s3", endpoint_url=aws.endpoint_url, region_name="eu-west-1")
    eu.create_bucket(Bucket="tdv-acceptance-eu",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    done = run_script(aws, "--bucket", "tdv-acceptance-eu")
    assert done.returncode == 1, done.stdout[-4000:] + done.stderr[-4000:]
    assert [(name, ok) for name, ok, _ in outcomes(done.stdout)] == [
        ("connect", "ok"), ("upload models", "ok"), ("prepare v1", "FAILED"),
        ("tear down", "ok"), ("delete objects", "ok")]
    assert "InvalidInputError: S3 bucket 'tdv-acceptance-eu' is in region eu-west-1" \
        in done.stdout
    assert re.search(r"FAILED: 4 of 5 steps in [\d.]+ s", done.stdout)
    assert live_stacks(cfn) == []
    assert all_objects(s3) == set()
