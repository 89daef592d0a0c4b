"""Input checks name the bad value and the rule."""

from __future__ import annotations

import pytest

from tdv_airflow.core.validation import (
    check_bucket_name,
    check_invoke_mode,
    check_on_exists,
    check_s3_key,
    check_stack_name,
    lambda_runtime,
)
from tdv_airflow.exceptions import InvalidInputError


@pytest.mark.parametrize("name", ["a", "tdv-iris-2024", "A" + "b" * 127])
def test_good_stack_names(name: str) -> None:
    assert check_stack_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "run:2024-01-01T00:00:00+00:00", "a_b", "a.b",
                                  "A" + "b" * 128, None, 5])
def test_bad_stack_names(name: object) -> None:
    with pytest.raises(InvalidInputError, match=r"invalid stack name .*starts with a letter"):
        check_stack_name(name)


@pytest.mark.parametrize("bucket", ["my-models", "a1b", "models.example.org"])
def test_good_buckets(bucket: str) -> None:
    assert check_bucket_name(bucket) == bucket


@pytest.mark.parametrize("bucket", ["My_Bucket", "ab", "-abc", "abc-", "a..b", "192.168.0.1",
                                    "x" * 64, None])
def test_bad_buckets(bucket: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid S3 bucket name"):
        check_bucket_name(bucket)


@pytest.mark.parametrize("key", ["", "/abs/key.pkl", None, "k" * 1025])
def test_bad_keys(key: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid model_s3_key"):
        check_s3_key(key, "model_s3_key")


def test_runtime_follows_python_minor() -> None:
    assert lambda_runtime((3, 12)) == "python3.12"
    with pytest.raises(InvalidInputError, match=r"Python 3\.9 has no AWS Lambda runtime"):
        lambda_runtime((3, 9))


@pytest.mark.parametrize("mode", [2, -1, "0", True, None])
def test_bad_invoke_mode(mode: object) -> None:
    with pytest.raises(InvalidInputError, match="invalid invoke_mode"):
        check_invoke_mode(mode)


@pytest.mark.parametrize("region", ["mars-1", "EU-WEST-1", "", None])
def test_deploy_rejects_a_malformed_region(region: object) -> None:
    from tdv_airflow import Deploy

    with pytest.raises(InvalidInputError, match=r"invalid region .*looks like 'eu-west-1'"):
        Deploy("my-models", "m.pkl", len, None, region=region)  # type: ignore[arg-type]


@pytest.mark.parametrize("choice", ["update", "skip", "fail"])
def test_good_on_exists(choice: str) -> None:
    assert check_on_exists(choice) == choice


@pytest.mark.parametrize("choice", ["replace", "UPDATE", "", None, 1])
def test_bad_on_exists_names_the_value_and_the_choices(choice: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_on_exists(choice)
    assert repr(choice) in str(info.value)
    assert "['update', 'skip', 'fail']" in str(info.value)


def test_create_stack_checks_on_exists_before_calling_aws() -> None:
    """The core entry point checks it (the stack functions below it trust it): no client
    is needed to be told."""
    from tdv_airflow.core import deployment

    with pytest.raises(InvalidInputError, match="invalid on_exists 'replace'"):
        deployment.create_stack(None, {}, "tdv-iris", on_exists="replace")  # type: ignore[arg-type]
