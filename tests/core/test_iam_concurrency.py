"""Provisioned concurrency under the published identity policy, on the emulator that
enforces IAM (``tests/core/test_iam.py``): the core may read, set and remove it on the
alias ``live`` of its own function only (core.concurrency), never on ``$LATEST``, a
version or another function."""

from __future__ import annotations

import pytest

from testkit.iam_moto import IamMoto, RolloutCall, denied_calls
from tests.core.test_iam import CONCURRENCY_SIDS
from tests.core.test_iam_rollout import OTHER, Rollout, ensure_live, refused_without
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


def test_provisioned_concurrency_is_allowed_on_our_live_alias_only(
        iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811 - the fixtures
    ensure_live(iam_aws, rollout)
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
    ensure_live(iam_aws, rollout)
    assert refused_without(iam_aws, rollout, sid, CALLS, f"pc-without-{sid}") == {
        c.name for c in CALLS if c.sid == sid}
