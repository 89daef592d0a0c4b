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


@pytest.mark.parametrize(("key", "value"), [
    ("team", "fraud detection"), ("tdv-airflow:model", "models/iris/v2/model.pkl"),
    ("owner", "ana@example.org"), ("k_1.2:/=+-@", "v_1.2:/=+-@"), ("équipe", "données ١٢"),
    ("k" * 128, "v" * 256), ("n\u00a0b", "x\u2003y"),  # letters and any Unicode space
])
def test_good_tags(key: str, value: str) -> None:
    from tdv_airflow.core.validation import check_tag

    assert check_tag(key, value) == (key, value)


def test_a_number_tag_value_is_written_out() -> None:
    from tdv_airflow.core.validation import check_stack_tags

    assert check_stack_tags({"version": 3, "ratio": 0.5}) == {"version": "3", "ratio": "0.5"}


@pytest.mark.parametrize(("key", "value", "rule"), [
    ("team", "", "1 to 256"),
    ("", "x", "1 to 128"),
    ("k" * 129, "x", "1 to 128"),
    ("team", "v" * 257, "1 to 256"),
    ("aws:team", "x", "'aws:'"),
    ("AWS:team", "x", "'aws:'"),
    ("tdv-airflow:model", "models/iris (v2)/m.pkl", "'(' ')'"),
    ("team", "a!b*c'd,e&f$g", "'!' '*' \"'\" ',' '&' '$'"),
    ("team", "line\nbreak", "U+000A"),
    ("team", "e\u0301", "U+0301"),  # a combining mark is not a letter (category Mn)
    ("te(am", "x", "the key holds '('"),
    ("team", None, "string"),
    ("team", True, "string"),
    (3, "x", "string"),
])
def test_bad_tags_name_the_tag_the_value_and_the_rule(key: object, value: object,
                                                       rule: str) -> None:
    from tdv_airflow.core.validation import check_tag

    with pytest.raises(InvalidInputError) as info:
        check_tag(key, value)
    message = str(info.value)
    assert f"invalid stack tag {key!r}" in message or f"invalid stack tag {str(key)!r}" \
        in message, message
    assert rule in message, message
    assert "_ . : / = + - @" in message or "string" in message, message


def test_a_tag_from_an_argument_names_the_argument() -> None:
    from tdv_airflow.core.validation import check_stack_tags

    with pytest.raises(InvalidInputError, match=r"'models/a&b.pkl' \(from model_s3_key\)"):
        check_stack_tags({"tdv-airflow:model": "models/a&b.pkl"},
                         {"tdv-airflow:model": "model_s3_key"})


def test_tags_must_be_a_mapping_of_at_most_fifty() -> None:
    from tdv_airflow.core.validation import check_stack_tags

    assert check_stack_tags(None) == {}
    with pytest.raises(InvalidInputError, match=r"invalid tags \['team'\]: expected a mapping"):
        check_stack_tags(["team"])
    with pytest.raises(InvalidInputError, match="51 stack tags .*at most 50 fit"):
        check_stack_tags({f"k{i}": "v" for i in range(51)})


def test_stack_tags_check_ours_and_the_users_with_room_for_the_fingerprint() -> None:
    from tdv_airflow.core.deployment import MODEL_TAG, stack_tags
    from tdv_airflow.core.retention import DEPLOYMENT_TAG

    assert stack_tags("m/" + "k" * 300, "tdv-iris", {"team": "fraud"}) == {
        DEPLOYMENT_TAG: "tdv-iris", MODEL_TAG: ("m/" + "k" * 300)[:256], "team": "fraud"}
    assert stack_tags("models/iris/m.pkl") == {MODEL_TAG: "models/iris/m.pkl"}
    with pytest.raises(InvalidInputError, match=r"\(from model_s3_key\).*'\(' '\)'"):
        stack_tags("models/iris (v2)/m.pkl", "tdv-iris")
    with pytest.raises(InvalidInputError, match="invalid stack tag 'team': ''"):
        stack_tags("models/iris/m.pkl", "tdv-iris", {"team": ""})
    with pytest.raises(InvalidInputError, match="at most 49 fit"):
        stack_tags("m.pkl", "tdv-iris", {f"k{i}": "v" for i in range(48)})
