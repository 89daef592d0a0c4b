"""``tdv_airflow.local.fix_lambda_aliases``: an alias's ``RevisionId`` guards it, its
routing is checked as AWS checks it, and a version an alias uses cannot be deleted.

The stack of :mod:`tests.local.test_fix_lambda_versions` (one function), on moto as it is
(what moto lacks) and on moto with the Lambda version fix and this one (what AWS does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto
from tests.local.test_fix_lambda_versions import client_error, deploy


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_lambda_versions", "fix_lambda_aliases"))


def two_versions(moto: Moto, stack_name: str) -> tuple[Any, str]:
    """Deploy, publish version 1, update, publish version 2; the Lambda client and the
    function's name."""
    name = deploy(moto, stack_name)
    lam = moto.client("lambda")
    lam.publish_version(FunctionName=name)
    deploy(moto, stack_name, "models/b.pkl")
    lam.publish_version(FunctionName=name)
    return lam, name


def test_moto_alone_takes_a_stale_revision_and_deletes_a_version_in_use(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    lam, name = two_versions(moto_with(()), "tdv-plain")
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    updated = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                               RevisionId=created["RevisionId"])
    assert updated["RevisionId"] == created["RevisionId"]  # never changes
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1",
                     RevisionId="stale")  # accepted
    lam.delete_function(FunctionName=name, Qualifier="1")  # the version live points at
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function(FunctionName=name, Qualifier="live")


def test_a_stale_revision_is_refused_and_weights_round_trip(fixed: Moto) -> None:
    """(c) of issue 12."""
    lam, name = two_versions(fixed, "tdv-revision")
    created = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               RoutingConfig={"AdditionalVersionWeights": {}})
    weights = {"AdditionalVersionWeights": {"2": 0.1}}
    shifted = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="1",
                               RoutingConfig=weights, RevisionId=created["RevisionId"])
    assert shifted["RevisionId"] != created["RevisionId"]
    assert shifted["RoutingConfig"] == weights
    got = lam.get_alias(FunctionName=name, Name="live")
    assert (got["FunctionVersion"], got["RoutingConfig"], got["RevisionId"]) == (
        "1", weights, shifted["RevisionId"])

    code, message = client_error(lambda: lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {}}, RevisionId=created["RevisionId"]))
    assert code == "PreconditionFailedException" and "Revision Id" in message
    after = lam.get_alias(FunctionName=name, Name="live")
    assert (after["FunctionVersion"], after["RoutingConfig"]) == ("1", weights)

    promoted = lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                                RoutingConfig={"AdditionalVersionWeights": {}},
                                RevisionId=after["RevisionId"])
    assert promoted["FunctionVersion"] == "2"
    assert not (promoted.get("RoutingConfig") or {}).get("AdditionalVersionWeights")


@pytest.mark.parametrize(("case", "version", "weights", "code", "needle"), [
    ("two", "1", {"2": 0.1, "3": 0.1}, "InvalidParameterValueException",
     "cannot be greater than 1"),
    ("above", "1", {"2": 1.5}, "ValidationException", "less than or equal to 1.0"),
    ("itself", "1", {"1": 0.5}, "InvalidParameterValueException",
     "already included in routing"),
    ("latest", "$LATEST", {"2": 0.5}, "InvalidParameterValueException",
     "$LATEST is not supported"),
    ("absent", "1", {"9": 0.5}, "ResourceNotFoundException", "function:"),
])
def test_routing_that_aws_refuses_is_refused(fixed: Moto, case: str, version: str,
                                             weights: dict[str, float], code: str,
                                             needle: str) -> None:
    lam, name = two_versions(fixed, f"tdv-routing-{case}")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="2")
    routing = {"AdditionalVersionWeights": weights}
    for call in (
            lambda: lam.update_alias(FunctionName=name, Name="live", FunctionVersion=version,
                                     RoutingConfig=routing),
            lambda: lam.create_alias(FunctionName=name, Name="beta", FunctionVersion=version,
                                     RoutingConfig=routing)):
        got_code, message = client_error(call)
        assert (got_code, needle in message) == (code, True), message
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "2"


def test_a_version_an_alias_routes_to_is_not_deleted(fixed: Moto) -> None:
    """(d) of issue 12: as the alias's version or in its weights."""
    lam, name = two_versions(fixed, "tdv-delete")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.25}})
    for version in ("1", "2"):
        assert client_error(lambda v=version: lam.delete_function(  # type: ignore[misc]
            FunctionName=name, Qualifier=v)) == (
            "ResourceConflictException",
            "Unable to delete version because the following aliases reference it: [live]")
    assert client_error(lambda: lam.delete_function(FunctionName=name, Qualifier="$LATEST"))[
        0] == "InvalidParameterValueException"
    assert client_error(lambda: lam.delete_function(FunctionName=name, Qualifier="live"))[
        0] == "InvalidParameterValueException"
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]

    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2",
                     RoutingConfig={"AdditionalVersionWeights": {}})
    lam.delete_function(FunctionName=name, Qualifier="1")
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "2"]
    assert lam.get_function(FunctionName=name, Qualifier="live")["Configuration"][
        "Version"] == "2"
