"""Which version a request reaches: the alias's weights read from Lambda, chosen per
request from a draw in [0, 1); qualifiers checked before any call."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.local.alias_route import Route, alias_weights, refreshed, stack_route
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.find import check_qualifier, is_version, unqualified_arn

REGION = "us-east-1"


def route(*weights: tuple[str, float], qualifier: str = "live") -> Route:
    return Route("st", "fn", qualifier, tuple(weights))


def test_choose_gives_each_version_an_interval_as_wide_as_its_weight() -> None:
    canary = route(("4", 0.9), ("5", 0.1))
    assert [canary.choose(d) for d in (0.0, 0.5, 0.8999, 0.9, 0.95, 0.99999)] == [
        "4", "4", "4", "5", "5", "5"]
    assert route(("4", 1.0)).choose(0.99999) == "4"
    assert route(("4", 0.0), ("5", 1.0)).choose(0.0) == "5"
    rounded = route(("4", 0.7), ("5", 0.29999999))
    assert rounded.choose(0.9999999999) == "4"  # the sliver the rounding leaves
    assert canary.versions == ("4", "5") and canary.is_alias and canary.reason is None


def test_a_missing_alias_routes_nowhere_and_says_why() -> None:
    nowhere = route()
    assert nowhere.choose(0.3) is None and nowhere.versions == ()
    assert nowhere.reason == ("stack 'st' has no live version yet: its API invokes alias "
                              "'live' of function 'fn', which does not exist; promote a "
                              "validated version first")
    assert not route(("$LATEST", 1.0), qualifier="$LATEST").is_alias


@pytest.mark.parametrize("good", ["1", "42", "$LATEST", "live", "blue-green_2", 7])
def test_good_qualifiers(good: Any) -> None:
    assert check_qualifier(good) == str(good)


@pytest.mark.parametrize("bad", ["", "0", "01", "no such!", "$latest", "a" * 129, 1.5, None,
                                 True, "live:1"])
def test_bad_qualifiers_are_refused_naming_them(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="invalid qualifier"):
        check_qualifier(bad)


def test_versions_and_arns() -> None:
    assert is_version("3") and is_version("$LATEST") and not is_version("live")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:fn"
    assert unqualified_arn(f"{arn}:live") == arn == unqualified_arn(arn)


@pytest.fixture
def lam_clients(aws: LocalAws, boto_session: Any) -> AwsClients:
    """Clients on the emptied emulator, with a function ``fn`` and versions 1 and 2."""
    def factory(service: str) -> Any:
        return boto_session.client(service, endpoint_url=aws.endpoint_url)

    clients = AwsClients(factory, REGION)
    role = clients._factory("iam").create_role(
        RoleName="fn-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return 1\n")
    lam = clients.lambda_
    lam.create_function(FunctionName="fn", Runtime="python3.12", Role=role,
                        Handler="h.handler", Code={"ZipFile": buf.getvalue()})
    for value in ("1", "2"):
        lam.update_function_configuration(FunctionName="fn",
                                          Environment={"Variables": {"V": value}})
        assert lam.publish_version(FunctionName="fn")["Version"] == value
    return clients


def stack(*outputs: tuple[str, str]) -> dict[str, Any]:
    return {"StackName": "st", "Outputs": [{"OutputKey": k, "OutputValue": v}
                                           for k, v in (("FunctionName", "fn"), *outputs)]}


def test_the_alias_weights_are_read_from_lambda(lam_clients: AwsClients) -> None:
    lam = lam_clients.lambda_
    assert alias_weights(lam, "fn", "live") == ()
    lam.create_alias(FunctionName="fn", Name="live", FunctionVersion="1",
                     RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}})
    assert alias_weights(lam, "fn", "live") == (("1", 0.9), ("2", 0.1))
    live = stack_route(lam_clients, stack(("LiveAlias", "live")))
    assert (live.qualifier, live.weights) == ("live", (("1", 0.9), ("2", 0.1)))
    lam.update_alias(FunctionName="fn", Name="live", FunctionVersion="2",
                     RoutingConfig={"AdditionalVersionWeights": {}})
    assert refreshed(lam_clients, live).weights == (("2", 1.0),)


def test_what_a_stack_routes_to(lam_clients: AwsClients) -> None:
    older = stack_route(lam_clients, stack())  # no LiveAlias output: $LATEST
    assert (older.qualifier, older.weights, older.is_alias) == (
        "$LATEST", (("$LATEST", 1.0),), False)
    assert refreshed(lam_clients, older) is older
    unpromoted = stack_route(lam_clients, stack(("LiveAlias", "live")))
    assert unpromoted.weights == () and unpromoted.reason is not None
    pinned = stack_route(lam_clients, stack(("LiveAlias", "live")), "2")
    assert (pinned.qualifier, pinned.weights) == ("2", (("2", 1.0),))
    with pytest.raises(InvalidInputError, match="'x y'"):
        stack_route(lam_clients, stack(), "x y")
