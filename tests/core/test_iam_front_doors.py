"""The function URL's calls under the published identity policy, on the emulator that
enforces IAM (``tests/core/test_iam.py``): the core may give the alias ``live`` of its own
function a URL and make it public (principal ``*``) or private again, and nothing else:
not ``$LATEST``, not a version, not another function."""

from __future__ import annotations

import json
from typing import Any

import pytest

from testkit.iam_moto import IamMoto, RolloutCall, denied_calls
from tests.core.test_iam import URL_SIDS
from tests.core.test_iam_rollout import OTHER, Rollout, ensure_live, refused_without
from tests.core.test_iam_rollout import iam_aws as iam_aws  # noqa: F401 - the fixture
from tests.core.test_iam_rollout import rollout as rollout  # noqa: F401 - the fixture


def _public(lam: Any, fn: str, qualifier: str | None, sid: str) -> Any:
    where = {"Qualifier": qualifier} if qualifier else {}
    return lam.add_permission(FunctionName=fn, StatementId=sid,
                              Action="lambda:InvokeFunctionUrl", Principal="*",
                              FunctionUrlAuthType="NONE", **where)


#: What ensure_function_url calls on the alias live (core.front_door_aws), in its order.
URL_CALLS = (
    RolloutCall("create the URL", "ManageLiveAliasUrl",
                lambda lam, cw, fn, stack: lam.create_function_url_config(
                    FunctionName=fn, Qualifier="live", AuthType="NONE")),
    RolloutCall("read the URL", "ManageLiveAliasUrl",
                lambda lam, cw, fn, stack: lam.get_function_url_config(
                    FunctionName=fn, Qualifier="live")),
    RolloutCall("make the URL public", "OpenLiveAliasUrl",
                lambda lam, cw, fn, stack: _public(lam, fn, "live", "tdv-airflow-url-public")),
    RolloutCall("let the URL invoke", "OpenLiveAliasUrl",
                lambda lam, cw, fn, stack: lam.add_permission(
                    FunctionName=fn, Qualifier="live", StatementId="tdv-airflow-url-public-invoke",
                    Action="lambda:InvokeFunction", Principal="*", InvokedViaFunctionUrl=True)),
    RolloutCall("switch the URL to IAM", "ManageLiveAliasUrl",
                lambda lam, cw, fn, stack: lam.update_function_url_config(
                    FunctionName=fn, Qualifier="live", AuthType="AWS_IAM")),
    RolloutCall("make the URL private", "CloseLiveAliasUrl",
                lambda lam, cw, fn, stack: lam.remove_permission(
                    FunctionName=fn, Qualifier="live", StatementId="tdv-airflow-url-public")),
)
#: Never allowed, even on the identity's own function.
REFUSED_URL_CALLS = (
    RolloutCall("a URL on $LATEST", "", lambda lam, cw, fn, stack:
                lam.create_function_url_config(FunctionName=fn, AuthType="NONE")),
    RolloutCall("a public version", "", lambda lam, cw, fn, stack:
                _public(lam, fn, "1", "public-version")),
    RolloutCall("a public $LATEST", "", lambda lam, cw, fn, stack:
                _public(lam, fn, None, "public-latest")),
    RolloutCall("remove a permission of $LATEST", "", lambda lam, cw, fn, stack:
                lam.remove_permission(FunctionName=fn, StatementId="any")),
)


def test_the_url_calls_are_allowed_on_our_live_alias_only(
        iam_aws: IamMoto, rollout: Rollout) -> None:  # noqa: F811 - the fixtures
    endpoint = iam_aws.aws.endpoint_url
    ensure_live(iam_aws, rollout)
    lam = iam_aws.client("lambda")
    ours = denied_calls(rollout.session, endpoint, rollout.function_name,
                        rollout.identity.stack_name, URL_CALLS)
    assert ours == dict.fromkeys(ours, False)
    # each call did what it says (not merely escaped a refusal)
    url = lam.get_function_url_config(FunctionName=rollout.function_name, Qualifier="live")
    assert url["AuthType"] == "AWS_IAM"  # the identity made and switched it
    policy = json.loads(lam.get_policy(FunctionName=rollout.function_name,
                                       Qualifier="live")["Policy"])
    sids = {s["Sid"] for s in policy["Statement"]}
    assert "tdv-airflow-url-public-invoke" in sids and "tdv-airflow-url-public" not in sids
    theirs = denied_calls(rollout.session, endpoint, OTHER, rollout.identity.stack_name,
                          URL_CALLS)
    assert theirs == dict.fromkeys(theirs, True)
    never = denied_calls(rollout.session, endpoint, rollout.function_name,
                         rollout.identity.stack_name, REFUSED_URL_CALLS)
    assert never == dict.fromkeys(never, True)


def test_the_url_statements_are_the_ones_the_url_calls_need() -> None:
    assert {c.sid for c in URL_CALLS} == set(URL_SIDS)


@pytest.mark.parametrize("sid", URL_SIDS)
def test_without_each_url_statement_its_calls_are_refused(
        iam_aws: IamMoto, rollout: Rollout, sid: str) -> None:  # noqa: F811 - the fixtures
    assert refused_without(iam_aws, rollout, sid, URL_CALLS, f"url-without-{sid}") == {
        c.name for c in URL_CALLS if c.sid == sid}
