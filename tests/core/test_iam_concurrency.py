"""Provisioned concurrency under the published identity policy, on the emulator that
enforces IAM (``tests/core/test_iam.py``): the core may read, set and remove it on the
alias ``live`` of its own function only (core.concurrency), never on ``$LATEST``, a
version or another function."""

from __future__ import annotations

import pytest

from testkit.iam_moto import IamMoto, RolloutCall, denied_calls
from tests.core.test_iam import CONCURRENCY_SIDS, for_moto, published_policy
from tests.core.test_iam_rollout import OTHER, Rollout
from tests.core.test_iam_rollout import iam_aws as iam_aws  # noqa: F401 - the fixture
from tests.core.test_iam_rollout import rollout as rollout  # noqa: F401 - the fixture

#: What ensure_provisioned_concurrency calls on the alias live, in its order.
CALLS = (
    RolloutCall("set it", "ProvisionLiveAlias",
                lambda lam, cw, fn, stack: lam.put_provisioned_concurrency_config(
                    FunctionName=fn, Qualifier="live", ProvisionedConcurrentExecutions=2)),
    RolloutCall("read it", "ProvisionLiveAlias",
                lambda lam, cw, fn, stack: lam.get_provisioned_concurrency_config(
                    FunctionName=fn, Qualifier="live")),
    RolloutCall("remove it", "ProvisionLiveAlias",
                lambda lam, cw, fn, stack: lam.delete_provisioned_concurrency_config(
                    FunctionName=fn, Qualifier="live")),
)
#: Never allowed, even on the identity's own function.
REFUSED = (
    RolloutCall("on a version", "", lambda lam, cw, fn, stack:
                lam.put_provisioned_concurrency_config(
                    FunctionName=fn, Qualifier="1", ProvisionedConcurrentExecutions=2)),
)


def _live(iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811 - the fixtures
    lam = iam_aws.client("lambda")  # the administrator: a live alias, as a promotion leaves it
    if not any(a["Name"] == "live" for a in lam.list_aliases(
            FunctionName=rollout.function_name)["Aliases"]):
        version = lam.publish_version(FunctionName=rollout.function_name)["Version"]
        lam.create_alias(FunctionName=rollout.function_name, Name="live",
                         FunctionVersion=version)


def test_provisioned_concurrency_is_allowed_on_our_live_alias_only(
        iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811 - the fixtures
    _live(iam_aws, rollout)
    endpoint = iam_aws.aws.endpoint_url
    ours = denied_calls(rollout.session, endpoint, rollout.function_name,
                        rollout.identity.stack_name, CALLS)
    assert ours == dict.fromkeys(ours, False)
    theirs = denied_calls(rollout.session, endpoint, OTHER, rollout.identity.stack_name, CALLS)
    assert theirs == dict.fromkeys(theirs, True)
    never = denied_calls(rollout.session, endpoint, rollout.function_name,
                         rollout.identity.stack_name, REFUSED)
    assert never == dict.fromkeys(never, True)


@pytest.mark.parametrize("sid", CONCURRENCY_SIDS)
def test_without_the_statement_its_calls_are_refused(
        iam_aws: IamMoto, rollout: Rollout, sid: str) -> None:  # noqa: F811 - the fixtures
    _live(iam_aws, rollout)
    policy = published_policy(rollout.identity.bucket, rollout.identity.role_arn.rsplit(
        "/", 1)[-1], drop=sid)
    session = iam_aws.user(f"pc-without-{sid}", for_moto(policy))
    denied = denied_calls(session, iam_aws.aws.endpoint_url, rollout.function_name,
                          rollout.identity.stack_name, CALLS)
    assert {name for name, refused in denied.items() if refused} == {
        c.name for c in CALLS if c.sid == sid}
