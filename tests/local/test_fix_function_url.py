"""``tdv_airflow.local.fix_function_url``: a function URL belongs to the alias it names.

The one-function stack of :mod:`tests.local.test_fix_lambda_versions` with a ``live``
alias, on moto as it is (which ignores ``Qualifier``: when that test fails, moto has
caught up and the fix can go) and on moto with this fix (what AWS does).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.local.conftest import Moto
from tests.local.test_fix_lambda_policies import live_function
from tests.local.test_fix_lambda_versions import client_error


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(())


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_lambda_versions", "fix_lambda_aliases", "fix_function_url"))


def test_moto_alone_ignores_the_qualifier(plain: Moto) -> None:
    lam, name = live_function(plain, "tdv-url-plain")
    made = lam.create_function_url_config(FunctionName=name, Qualifier="live",
                                          AuthType="AWS_IAM")
    assert not made["FunctionArn"].endswith(":live")  # the function's URL, not the alias's
    unqualified = lam.get_function_url_config(FunctionName=name)  # the same URL
    assert unqualified["FunctionUrl"] == made["FunctionUrl"]
    lam.create_function_url_config(FunctionName=name, Qualifier="live", AuthType="NONE")


def test_with_the_fix_the_url_is_the_alias_own(fixed: Moto) -> None:
    lam, name = live_function(fixed, "tdv-url-fixed")
    made = lam.create_function_url_config(FunctionName=name, Qualifier="live",
                                          AuthType="AWS_IAM")
    assert made["FunctionArn"].endswith(f":function:{name}:live")
    assert made["FunctionUrl"].startswith("https://") and ".lambda-url.us-east-1.on.aws" \
        in made["FunctionUrl"]
    got = lam.get_function_url_config(FunctionName=name, Qualifier="live")
    assert (got["FunctionUrl"], got["AuthType"]) == (made["FunctionUrl"], "AWS_IAM")
    assert client_error(lambda: lam.get_function_url_config(FunctionName=name))[0] \
        == "ResourceNotFoundException"  # $LATEST has none
    assert client_error(lambda: lam.create_function_url_config(
        FunctionName=name, Qualifier="live", AuthType="NONE"))[0] == "ResourceConflictException"
    updated = lam.update_function_url_config(FunctionName=name, Qualifier="live",
                                             AuthType="NONE")
    assert (updated["AuthType"], updated["FunctionUrl"]) == ("NONE", made["FunctionUrl"])
    assert client_error(lambda: lam.create_function_url_config(
        FunctionName=name, Qualifier="1", AuthType="NONE"))[0] == "ValidationException"
    assert client_error(lambda: lam.create_function_url_config(
        FunctionName=name, Qualifier="nope", AuthType="NONE"))[0] == "ResourceNotFoundException"
    lam.delete_function_url_config(FunctionName=name, Qualifier="live")
    assert client_error(lambda: lam.get_function_url_config(
        FunctionName=name, Qualifier="live"))[0] == "ResourceNotFoundException"
