"""Names derived from runs (versions, stack names) and the extra links' URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tdv_airflow.core.naming import model_version, model_version_from_context, stack_name_from
from tdv_airflow.core.validation import STACK_NAME_RE
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.links import stack_console_url

RUN_IDS = [
    "manual__2025-01-01T02:00:00+00:00",
    "scheduled__2025-01-01T02:00:00.123456+00:00",
    "backfill__2025-01-01T02:00:00+00:00",
    "asset_triggered__2025-01-01T02:00:00+00:00_x.y:z",
    "1234-starts-with-a-digit",
    "__--__only-punctuation-then-text",
    "x" * 300,
]


@pytest.mark.parametrize("run_id", RUN_IDS)
def test_stack_name_from_any_run_id_is_valid(run_id: str) -> None:
    name = stack_name_from("tdv", run_id)
    assert STACK_NAME_RE.match(name), name
    assert stack_name_from("tdv", run_id) == name
    bare = stack_name_from(run_id)
    assert STACK_NAME_RE.match(bare), bare


def test_long_names_are_cut_but_stay_distinct() -> None:
    a, b = stack_name_from("x" * 200 + "a"), stack_name_from("x" * 200 + "b")
    assert len(a) == len(b) == 128 and a != b
    assert len(stack_name_from("tdv", "x" * 50, max_length=40)) == 40


def test_stack_name_from_examples() -> None:
    assert stack_name_from("tdv", "manual__2025-01-01T02:00:00+00:00") == \
        "tdv-manual-2025-01-01T02-00-00-00-00"
    assert stack_name_from("9lives") == "s-9lives"
    assert stack_name_from("tdv", None, "", "iris") == "tdv-iris"
    with pytest.raises(InvalidInputError, match="no letters or digits"):
        stack_name_from("__", "::")
    with pytest.raises(InvalidInputError, match="max_length"):
        stack_name_from("a", max_length=129)


def test_model_version_from_the_logical_date_in_utc() -> None:
    paris = timezone(timedelta(hours=1))
    assert model_version(datetime(2025, 1, 1, 3, 0, tzinfo=paris), "ignored") == "20250101T020000"
    assert model_version(datetime(2025, 1, 1, 2, 0, tzinfo=UTC), None) == "20250101T020000"


def test_model_version_without_a_logical_date_comes_from_the_run_id() -> None:
    version = model_version(None, "manual__2025-06-01T10:11:12.5+00:00")
    assert version == "manual-2025-06-01T10-11-12-5-00-00"
    assert re.fullmatch(r"[A-Za-z0-9-]+", version)
    assert model_version_from_context({"logical_date": None, "run_id": "manual__x"}) == "manual-x"
    assert model_version_from_context({"run_id": "r1"}) == "r1"
    with pytest.raises(InvalidInputError, match="no logical date"):
        model_version(None, "::")


@pytest.mark.parametrize(("arn", "url"), [
    ("arn:aws:cloudformation:eu-west-1:123456789012:stack/tdv-iris/abc",
     "https://eu-west-1.console.aws.amazon.com/cloudformation/home?region=eu-west-1"
     "#/stacks/stackinfo?stackId=arn%3Aaws%3Acloudformation%3Aeu-west-1%3A123456789012"
     "%3Astack%2Ftdv-iris%2Fabc"),
    ("arn:aws-cn:cloudformation:cn-north-1:1:stack/s/i",
     "https://cn-north-1.console.amazonaws.cn/cloudformation/home?region=cn-north-1"
     "#/stacks/stackinfo?stackId=arn%3Aaws-cn%3Acloudformation%3Acn-north-1%3A1%3Astack%2Fs%2Fi"),
    ("arn:aws-us-gov:cloudformation:us-gov-west-1:1:stack/s/i",
     "https://console.amazonaws-us-gov.com/cloudformation/home?region=us-gov-west-1"
     "#/stacks/stackinfo?stackId=arn%3Aaws-us-gov%3Acloudformation%3Aus-gov-west-1%3A1"
     "%3Astack%2Fs%2Fi"),
    ("not-an-arn", ""),
    ("arn:aws:s3:::bucket", ""),
])
def test_stack_console_url_is_region_and_partition_aware(arn: str, url: str) -> None:
    assert stack_console_url(arn) == url


def test_links_are_registered_in_the_provider_info() -> None:
    from airflow.sdk._shared.module_loading import import_string

    from tdv_airflow.provider_info import get_provider_info

    links = get_provider_info()["extra-links"]
    assert {import_string(path).name for path in links} == {"CloudFormation stack",
                                                             "API endpoint"}
