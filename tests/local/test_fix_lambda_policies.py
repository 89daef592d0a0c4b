"""``tdv_airflow.local.fix_lambda_policies``: an alias (or version) has its own resource
policy, a statement id is added once, and the stack's delete removes everything.

The stack of :mod:`tests.local.test_fix_lambda_versions` (one function), on moto as it is
(what moto lacks) and on moto with the three Lambda fixes (what AWS does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto
from tests.local.test_fix_lambda_versions import client_error, deploy

SID = "tdv-airflow-api-live"
SOURCE_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/*/POST/predict"
LAMBDA_FIXES = ("fix_lambda_versions", "fix_lambda_aliases", "fix_lambda_policies")


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(())


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(LAMBDA_FIXES)


def permit(lam: Any, name: str, qualifier: str = "live") -> Any:
    return lam.add_permission(FunctionName=name, Qualifier=qualifier, StatementId=SID,
                              Action="lambda:InvokeFunction",
                              Principal="apigateway.amazonaws.com", SourceArn=SOURCE_ARN)


def statements(lam: Any, name: str, **qualifier: str) -> list[dict[str, Any]]:
    policy = json.loads(lam.get_policy(FunctionName=name, **qualifier)["Policy"])
    return list(policy["Statement"])


def live_function(moto: Moto, stack_name: str) -> tuple[Any, str]:
    """Deploy, publish version 1, point ``live`` at it; the client and the function."""
    name = deploy(moto, stack_name)
    lam = moto.client("lambda")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return lam, name


def test_moto_alone_shares_the_alias_policy_and_takes_a_statement_id_twice(
        plain: Moto) -> None:
    lam, name = live_function(plain, "tdv-plain")
    permit(lam, name)
    assert [s["Sid"] for s in statements(lam, name)] == [SID]  # the function's own policy
    permit(lam, name)  # accepted again
    assert [s["Sid"] for s in statements(lam, name, Qualifier="live")] == [SID, SID]


def test_a_permission_on_the_alias_is_the_alias_own_and_added_once(fixed: Moto) -> None:
    """(f) of issue 12, first half."""
    lam, name = live_function(fixed, "tdv-permission")
    assert client_error(lambda: permit(lam, name, "beta"))[0] == "ResourceNotFoundException"
    permit(lam, name)
    [statement] = statements(lam, name, Qualifier="live")
    assert statement["Sid"] == SID
    assert statement["Resource"].endswith(f":function:{name}:live")
    assert statement["Principal"] == {"Service": "apigateway.amazonaws.com"}
    assert statement["Condition"] == {"ArnLike": {"AWS:SourceArn": SOURCE_ARN}}
    for other in ({}, {"Qualifier": "1"}):
        assert client_error(lambda q=other: statements(  # type: ignore[misc]
            lam, name, **q))[0] == "ResourceNotFoundException"

    code, message = client_error(lambda: permit(lam, name))
    assert code == "ResourceConflictException"
    assert message.startswith(f"The statement id ({SID}) provided already exists")
    assert len(statements(lam, name, Qualifier="live")) == 1

    lam.remove_permission(FunctionName=name, Qualifier="live", StatementId=SID)
    permit(lam, name)  # a removed statement id can be added again
    assert len(statements(lam, name, Qualifier="live")) == 1


def test_deleting_the_stack_deletes_the_function_its_versions_and_aliases(
        fixed: Moto) -> None:
    """(f) of issue 12, second half."""
    lam, name = live_function(fixed, "tdv-gone")
    permit(lam, name)
    fixed.client("cloudformation").delete_stack(StackName="tdv-gone")
    assert name not in [f["FunctionName"] for f in lam.list_functions()["Functions"]]
    for call in (lambda: lam.get_alias(FunctionName=name, Name="live"),
                 lambda: lam.get_function(FunctionName=name, Qualifier="1"),
                 lambda: lam.list_aliases(FunctionName=name),
                 lambda: lam.get_policy(FunctionName=name, Qualifier="live")):
        assert client_error(call)[0] == "ResourceNotFoundException"
    # a new stack of the same name starts with no versions, aliases or permissions
    name_again = deploy(fixed, "tdv-gone")
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name_again)[
        "Versions"]] == ["$LATEST"]
    assert lam.list_aliases(FunctionName=name_again)["Aliases"] == []


@pytest.mark.parametrize("server", ["plain", "fixed"])
def test_an_alias_deleted_and_created_again_has_no_permission(
        request: pytest.FixtureRequest, server: str) -> None:
    lam, name = live_function(request.getfixturevalue(server), "tdv-recreate")
    permit(lam, name)
    lam.delete_alias(FunctionName=name, Name="live")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    if server == "fixed":
        assert client_error(lambda: statements(lam, name, Qualifier="live"))[
            0] == "ResourceNotFoundException"
    else:  # moto keeps the statement in the function's shared policy
        assert [s["Sid"] for s in statements(lam, name, Qualifier="live")] == [SID]
