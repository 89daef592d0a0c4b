"""``tdv_airflow.core.function_options``: each option checked alone, each combination AWS
does not run refused with the values named, the template parameters they become."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow.core.function_options import (
    FunctionOptions,
    check_parameter_values,
    stack_option_parameters,
    stamp_architecture,
)
from tdv_airflow.core.layers import Dependencies
from tdv_airflow.exceptions import InvalidInputError

DECLARED = ["Architecture", "MemorySize", "Timeout", "EphemeralStorageSize",
            "ProvisionedConcurrency", "SnapStart", "FrontDoor", "Runtime"]


def test_defaults_set_no_parameter() -> None:
    assert FunctionOptions().to_parameters(DECLARED) == {}
    assert FunctionOptions.coerce(None) == FunctionOptions()
    assert FunctionOptions.coerce({"memory_size": None, "front_door": None}) == FunctionOptions()


def test_every_option_becomes_its_parameter() -> None:
    options = FunctionOptions.coerce({
        "architecture": "arm64", "memory_size": "2048", "timeout": 20,
        "ephemeral_storage": 1024, "provisioned_concurrency": 2, "snap_start": "false",
        "front_door": "HTTP"})
    assert options.to_parameters(DECLARED) == {
        "Architecture": "arm64", "MemorySize": 2048, "Timeout": 20,
        "EphemeralStorageSize": 1024, "ProvisionedConcurrency": 2, "FrontDoor": "HTTP"}
    assert FunctionOptions(snap_start=True).to_parameters() == {"SnapStart": "PublishedVersions"}
    assert FunctionOptions.coerce(options.to_dict()) == options  # the XCom form round-trips


@pytest.mark.parametrize(("field", "value", "expected"), [
    ("architecture", "aarch64", r"invalid architecture 'aarch64': expected one of "
                                r"\['arm64', 'x86_64'\]"),
    ("memory_size", 64, r"invalid memory_size 64: expected an integer from 128 to 10240 \(MB\)"),
    ("memory_size", 10241, r"invalid memory_size 10241"),
    ("memory_size", 1.5, r"invalid memory_size 1.5"),
    ("timeout", 0, r"invalid timeout 0: expected an integer from 1 to 900 \(seconds\)"),
    ("timeout", 901, r"invalid timeout 901"),
    ("ephemeral_storage", 511, r"invalid ephemeral_storage 511: expected an integer from 512 "
                               r"to 10240 \(MB\)"),
    ("ephemeral_storage", 20000, r"invalid ephemeral_storage 20000"),
    ("provisioned_concurrency", -1, r"invalid provisioned_concurrency -1: expected an integer "
                                    r"of at least 0"),
    ("provisioned_concurrency", True, r"invalid provisioned_concurrency True"),
    ("snap_start", "yes", r"invalid snap_start 'yes': expected true or false"),
    ("front_door", "alb", r"invalid front_door 'alb'"),
])
def test_a_bad_value_is_named(field: str, value: Any, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=expected):
        FunctionOptions.coerce({field: value})


def test_unknown_keys_and_types_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"unknown keys \['memory'\]"):
        FunctionOptions.coerce({"memory": 1024})
    with pytest.raises(InvalidInputError, match=r"got list"):
        FunctionOptions.coerce([1024])


@pytest.mark.parametrize(("door", "longest"), [("rest", 28), ("http", 29), ("url", 900)])
def test_the_timeout_stays_below_the_front_doors_integration_timeout(door: str,
                                                                     longest: int) -> None:
    FunctionOptions(timeout=longest, front_door=door).check()
    if longest < 900:
        with pytest.raises(InvalidInputError, match=rf"timeout={longest + 1} s is too long for "
                                                    rf"front_door='{door}'.*at most {longest} s"):
            FunctionOptions(timeout=longest + 1, front_door=door).check()


def test_snap_start_needs_python_3_12() -> None:
    with pytest.raises(InvalidInputError, match=r"snap_start=True needs the python3.12 runtime "
                                                r"or newer, but this function runs python3.11"
                                                r".*pickled by this worker's Python"):
        FunctionOptions(snap_start=True).check("python3.11")
    FunctionOptions(snap_start=True).check("python3.12")
    FunctionOptions(snap_start=True).check("python3.13")


@pytest.mark.parametrize(("options", "region", "expected"), [
    ({"provisioned_concurrency": 1}, None, r"provisioned_concurrency=1 \(SnapStart does not "
                                          r"support provisioned concurrency"),
    ({"ephemeral_storage": 513}, None, r"ephemeral storage of 513 MB \(SnapStart supports at "
                                       r"most 512 MB"),
    ({}, "ap-southeast-6", r"the Region ap-southeast-6 \(Asia Pacific \(New Zealand\)\)"),
    ({}, "ap-east-2", r"the Region ap-east-2 \(Asia Pacific \(Taipei\)\)"),
])
def test_snap_start_refuses_what_aws_does_not_support(options: dict[str, Any],
                                                       region: str | None,
                                                       expected: str) -> None:
    with pytest.raises(InvalidInputError, match=r"snap_start=True cannot run with " + expected):
        FunctionOptions(snap_start=True, **options).check("python3.12", region=region)
    FunctionOptions(snap_start=True, ephemeral_storage=512).check("python3.12", region="eu-west-1")


def test_stack_parameters_given_by_hand_are_checked_too() -> None:
    with pytest.raises(InvalidInputError, match=r"timeout=40 s is too long for "
                                                r"front_door='rest'"):
        FunctionOptions().check(extra={"Timeout": 40})
    with pytest.raises(InvalidInputError, match=r"ephemeral storage of 2048 MB"):
        check_parameter_values({"SnapStart": "PublishedVersions", "Runtime": "python3.12",
                                "EphemeralStorageSize": "2048"})  # e.g. sized for a bundle
    with pytest.raises(InvalidInputError, match=r"provisioned_concurrency=5 exceeds the "
                                                r"reserved concurrency 2"):
        check_parameter_values({"ProvisionedConcurrency": 5, "ReservedConcurrency": "2"})


@pytest.mark.parametrize("door", ["http", "url"])
def test_an_api_key_exists_only_on_the_rest_api(door: str) -> None:
    with pytest.raises(InvalidInputError, match=rf"endpoint_auth='api_key' is not offered by "
                                                rf"front_door='{door}'"):
        FunctionOptions(front_door=door).check(endpoint_auth="api_key")
    with pytest.raises(InvalidInputError, match=r"endpoint_auth='api_key' is not offered"):
        check_parameter_values({"FrontDoor": door.upper(), "EndpointAuth": "API_KEY"})
    FunctionOptions(front_door=door).check(endpoint_auth="iam")
    FunctionOptions().check(endpoint_auth="api_key")


def test_a_template_without_the_parameter_refuses_the_option() -> None:
    response = {"template_parameters": ["Runtime"], "architecture": "x86_64"}
    assert stack_option_parameters(response, FunctionOptions()) == {}
    with pytest.raises(InvalidInputError, match=r"memory_size=2048 needs a template that "
                                                r"declares the parameter 'MemorySize'"):
        stack_option_parameters(response, FunctionOptions(memory_size=2048))


def test_the_architecture_reaches_the_dependencies_and_must_agree() -> None:
    arm = FunctionOptions(architecture="arm64")
    assert arm.dependencies_for(["numpy"]) == {"requirements": ["numpy"],
                                               "architecture": "arm64"}
    assert arm.dependencies_for({"from_installed": ["sklearn"]})["architecture"] == "arm64"
    built = arm.dependencies_for(Dependencies(requirements=["numpy"]))
    assert built.architecture == "arm64"
    assert arm.dependencies_for(None) is None
    assert FunctionOptions().dependencies_for(["numpy"]) == ["numpy"]
    with pytest.raises(InvalidInputError, match=r"architecture='arm64' disagrees with the "
                                                r"dependencies' architecture 'x86_64'"):
        arm.dependencies_for({"requirements": ["numpy"], "architecture": "x86_64"})
    with pytest.raises(InvalidInputError, match=r"architecture='x86_64' disagrees"):
        FunctionOptions(architecture="x86_64").dependencies_for(
            Dependencies(requirements=["numpy"], architecture="arm64"))


def test_prepared_dependencies_fix_the_architecture() -> None:
    arm = FunctionOptions(architecture="arm64")
    bare = {"template_parameters": DECLARED, "architecture": "x86_64",
            "s3_deps_layer_key": None}
    assert stamp_architecture(bare, arm)["architecture"] == "arm64"  # nothing compiled
    assert stack_option_parameters(stamp_architecture(bare, arm), arm) == {
        "Architecture": "arm64"}
    layered = {**bare, "s3_deps_layer_key": "tdv-airflow/deps_layer/abc.zip"}
    assert stamp_architecture(layered, arm)["architecture"] == "x86_64"
    with pytest.raises(InvalidInputError, match=r"architecture='arm64', but the dependencies "
                                                r"were prepared for 'x86_64'"):
        stack_option_parameters(layered, arm)
