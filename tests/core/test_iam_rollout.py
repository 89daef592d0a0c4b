"""The rollout's calls under the published identity policy, on an emulator that enforces
IAM (see ``tests/core/test_iam.py`` for the emulator and what it checks).

A user holding exactly :func:`~tdv_airflow.core.iam.airflow_identity_policy` deploys a
stack, then makes every Lambda and CloudWatch call of publishing, validating, promoting,
rolling back and retiring versions (:data:`testkit.iam_moto.ROLLOUT_CALLS`) on its own
function (allowed) and on a function outside the stack prefix (refused); a few calls stay
refused even on its own function (deleting the function itself, invoking ``$LATEST``,
letting another principal invoke the alias). Without each rollout statement, exactly
the calls that need it are refused.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow.core.deployment import function_name_for
from tdv_airflow.local.moto_server import FIXES
from testkit.iam_moto import REFUSED_CALLS, ROLLOUT_CALLS, IamMoto, RolloutCall, denied_calls
from testkit.models import REGION
from tests.core.test_iam import (
    ROLLOUT_SIDS,
    Identity,
    for_moto,
    identity_with,
    published_policy,
    run_steps,
)
from tests.core.test_iam import iam_aws as iam_aws  # noqa: F401 - the fixture, re-exported

#: A function outside the stack prefix (``tdv-``), with a version and the alias.
OTHER = "someone-elses"


@dataclass
class Rollout:
    identity: Identity
    function_name: str
    session: Any


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture(scope="module")
def rollout(iam_aws: IamMoto) -> Iterator[Rollout]:  # noqa: F811 - the imported fixture
    """A stack deployed by the identity, and another function made by the administrator."""
    identity = identity_with(iam_aws)
    done = run_steps(identity)
    assert done["failed"] is None, done.get("error")
    lam = iam_aws.client("lambda")
    role = iam_aws.client("iam").create_role(
        RoleName="someone-elses-role", AssumeRolePolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
                "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))
    lam.create_function(FunctionName=OTHER, Runtime="python3.11", Handler="h.handler",
                        Role=role["Role"]["Arn"], Code={"ZipFile": _zip()})
    lam.publish_version(FunctionName=OTHER)
    lam.create_alias(FunctionName=OTHER, Name="live", FunctionVersion="1")
    yield Rollout(identity, function_name_for(identity.stack_name),
                  identity.auth.session(REGION))


def ensure_live(iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811 - the fixtures
    """Give the identity's function the alias ``live``, as a promotion leaves it (as the
    administrator, once)."""
    lam = iam_aws.client("lambda")
    if not any(a["Name"] == "live" for a in lam.list_aliases(
            FunctionName=rollout.function_name)["Aliases"]):
        version = lam.publish_version(FunctionName=rollout.function_name)["Version"]
        lam.create_alias(FunctionName=rollout.function_name, Name="live",
                         FunctionVersion=version)


def refused_without(iam_aws: IamMoto, rollout: Rollout, sid: str,  # noqa: F811
                    calls: tuple[RolloutCall, ...], user: str) -> set[str]:
    """The names of ``calls`` refused to the user ``user`` holding the published identity
    policy minus the statement ``sid``."""
    policy = published_policy(rollout.identity.bucket, rollout.identity.role_arn.rsplit(
        "/", 1)[-1], drop=sid)
    session = iam_aws.user(user, for_moto(policy))
    denied = denied_calls(session, iam_aws.aws.endpoint_url, rollout.function_name,
                          rollout.identity.stack_name, calls)
    return {name for name, refused in denied.items() if refused}


def test_the_rollout_calls_are_allowed_on_our_function_and_refused_on_another(
        iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811
    endpoint = iam_aws.aws.endpoint_url
    ours = denied_calls(rollout.session, endpoint, rollout.function_name,
                        rollout.identity.stack_name)
    assert ours == dict.fromkeys(ours, False)
    assert len(ours) == len(ROLLOUT_CALLS)
    lam = iam_aws.client("lambda")
    alias = lam.get_alias(FunctionName=rollout.function_name, Name="live")
    assert alias["FunctionVersion"] == "1"  # the identity made it
    policy = json.loads(lam.get_policy(FunctionName=rollout.function_name,
                                       Qualifier="live")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["tdv-airflow-api-live"]
    # the same calls on a function outside the prefix; CloudWatch is checked by action
    # only on the emulator (docs/iam.md), so the alarm read is left out
    lambda_calls = tuple(c for c in ROLLOUT_CALLS if c.sid != "ReadAlarms")
    theirs = denied_calls(rollout.session, endpoint, OTHER, rollout.identity.stack_name,
                          lambda_calls)
    assert theirs == dict.fromkeys(theirs, True)
    never = denied_calls(rollout.session, endpoint, rollout.function_name,
                         rollout.identity.stack_name, REFUSED_CALLS)
    assert never == dict.fromkeys(never, True)
    assert lam.get_function(FunctionName=rollout.function_name)["Configuration"]


def test_the_identity_reads_the_stack_s_alarms(rollout: Rollout, iam_aws: IamMoto
                                               ) -> None:  # noqa: F811
    stack = rollout.identity.stack_name
    names = [f"{stack}-live-errors", f"{stack}-live-throttles", f"{stack}-live-duration-p99",
             f"{stack}-api-5xx"]
    cw = rollout.session.client("cloudwatch", endpoint_url=iam_aws.aws.endpoint_url)
    found = sorted(a["AlarmName"] for a in cw.describe_alarms(AlarmNames=names)["MetricAlarms"])
    # moto's CloudFormation skips AWS::CloudWatch::Alarm until the fidelity fix is there
    assert found == (sorted(names) if "fix_alarms" in FIXES else [])


@pytest.mark.parametrize("sid", ROLLOUT_SIDS)
def test_without_each_rollout_statement_its_calls_are_refused(
        iam_aws: IamMoto, rollout: Rollout, sid: str) -> None:  # noqa: F811
    user = f"without-{sid}"
    policy = published_policy(rollout.identity.bucket, rollout.identity.role_arn.rsplit(
        "/", 1)[-1], drop=sid)
    session = iam_aws.user(user, for_moto(policy))
    denied = denied_calls(session, iam_aws.aws.endpoint_url, rollout.function_name,
                          rollout.identity.stack_name)
    assert denied == {c.name: c.sid == sid for c in ROLLOUT_CALLS}
