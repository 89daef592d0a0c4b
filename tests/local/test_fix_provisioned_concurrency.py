"""``tdv_airflow.local.fix_provisioned_concurrency``: Lambda's provisioned concurrency API
on a version or an alias, with AWS's checks of the qualifier; and
:func:`tdv_airflow.core.concurrency.ensure_provisioned_concurrency` on it.

The stack of :mod:`tests.local.test_fix_lambda_versions` (one function), on moto as it is
(no such API) and on moto with the version, alias and this fix (what AWS does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tdv_airflow.core.concurrency import (
    ensure_provisioned_concurrency,
    provisioned_concurrency_status,
    wanted_of,
)
from tdv_airflow.exceptions import InvalidInputError
from tests.local.conftest import Moto
from tests.local.test_fix_lambda_versions import client_error, deploy

FIXES = ("fix_lambda_versions", "fix_lambda_aliases", "fix_provisioned_concurrency")


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(FIXES)


def with_live(moto: Moto, stack_name: str) -> tuple[Any, str]:
    """A function with version 1 and the alias ``live`` on it."""
    name = deploy(moto, stack_name)
    lam = moto.client("lambda")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return lam, name


def test_moto_alone_has_no_provisioned_concurrency_api(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    lam, name = with_live(moto_with(FIXES[:2]), "tdv-plain-pc")
    code, _ = client_error(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2))
    assert code == "404"  # no such route: a bare 404 page, no Lambda error
    code, _ = client_error(lambda: lam.get_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live"))
    assert code == "404"


def test_put_get_list_delete_on_an_alias(fixed: Moto) -> None:
    lam, name = with_live(fixed, "tdv-pc")
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live",
                                                 ProvisionedConcurrentExecutions=3)
    assert put["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert (put["RequestedProvisionedConcurrentExecutions"], put["Status"]) == (3, "READY")
    got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert got["AllocatedProvisionedConcurrentExecutions"] == 3
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)
    assert [c["FunctionArn"].rsplit(":", 1)[-1]
            for c in listed["ProvisionedConcurrencyConfigs"]] == ["live"]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    code, message = client_error(lambda: lam.get_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live"))
    assert code == "ProvisionedConcurrencyConfigNotFoundException", message
    code, _ = client_error(lambda: lam.delete_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live"))
    assert code == "ProvisionedConcurrencyConfigNotFoundException"


def test_latest_and_unknown_qualifiers_are_refused(fixed: Moto) -> None:
    lam, name = with_live(fixed, "tdv-pc-refused")
    code, message = client_error(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1))
    assert (code, message) == ("InvalidParameterValueException", "Provisioned Concurrency "
                               "Configs cannot be applied to unpublished function versions.")
    lam.create_alias(FunctionName=name, Name="edge", FunctionVersion="$LATEST")
    code, _ = client_error(lambda: lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="edge", ProvisionedConcurrentExecutions=1))
    assert code == "InvalidParameterValueException"
    for qualifier in ("7", "nope"):
        code, _ = client_error(lambda q=qualifier: lam.put_provisioned_concurrency_config(
            FunctionName=name, Qualifier=q, ProvisionedConcurrentExecutions=1))
        assert code == "ResourceNotFoundException", qualifier
    put = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="1",
                                                 ProvisionedConcurrentExecutions=1)
    assert put["Status"] == "READY"  # a published version takes it


def test_ensure_is_idempotent_and_zero_removes(fixed: Moto) -> None:
    lam, name = with_live(fixed, "tdv-pc-ensure")
    assert provisioned_concurrency_status(lam, name) is None
    assert ensure_provisioned_concurrency(lam, name, 0) == "none"
    assert ensure_provisioned_concurrency(lam, name, 2) == "put"
    assert ensure_provisioned_concurrency(lam, name, 2) == "unchanged"
    assert provisioned_concurrency_status(lam, name) == {
        "requested": 2, "allocated": 2, "available": 2, "status": "READY", "reason": None}
    assert ensure_provisioned_concurrency(lam, name, 4) == "put"
    assert provisioned_concurrency_status(lam, name)["requested"] == 4  # type: ignore[index]
    assert ensure_provisioned_concurrency(lam, name, 0) == "deleted"
    assert provisioned_concurrency_status(lam, name) is None
    with pytest.raises(InvalidInputError, match=r"provisioned concurrency -1"):
        ensure_provisioned_concurrency(lam, name, -1)


def test_the_wanted_number_is_read_from_the_stack() -> None:
    assert wanted_of({"Outputs": [{"OutputKey": "ProvisionedConcurrency",
                                   "OutputValue": "5"}]}) == 5
    assert wanted_of({"Parameters": [{"ParameterKey": "ProvisionedConcurrency",
                                      "ParameterValue": "2"}]}) == 2
    assert wanted_of({"Outputs": [], "Parameters": []}) == 0
