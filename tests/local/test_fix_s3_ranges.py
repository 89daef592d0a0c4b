"""``tdv_airflow.local.fix_s3_ranges``: a ranged GetObject reads only its range.

The fix changes what moto costs, not what it answers (the cost is measured by
``bench/bench_cold_start.py``): every ranged GET, of every kind, answers the same status,
headers and bytes on moto as it is and on moto with only this fix, for an object held in
memory and one moto has spilled to a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import Moto

BUCKET = "tdv-fix-s3-ranges"
#: Headers that differ between two servers whatever they do.
VOLATILE = {"date", "x-amz-request-id", "x-amzn-requestid", "x-amz-id-2", "last-modified"}
RANGES = ["", "bytes=0-0", "bytes=0-99", "bytes=100-", "bytes=-50", "bytes=17-4000000",
          "bytes=5-3", "bytes=0-9,20-29", "bytes=oops", "bytes=-0", "bytes=99999999-"]
OBJECTS = {"small": os.urandom(200_000), "spilled": os.urandom(6 * 1024 * 1024 + 7),
           "empty": b""}


def answers(moto: Moto) -> list[Any]:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for key, body in OBJECTS.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    seen: list[Any] = []
    for key in OBJECTS:
        for spec in RANGES:
            kwargs = {"Range": spec} if spec else {}
            try:
                answer = s3.get_object(Bucket=BUCKET, Key=key, **kwargs)
                body = answer["Body"].read()
                meta = answer["ResponseMetadata"]
            except ClientError as exc:
                body, meta = exc.response["Error"]["Code"].encode(), exc.response[
                    "ResponseMetadata"]
            headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in VOLATILE}
            seen.append((key, spec, meta["HTTPStatusCode"], headers, body))
    return seen


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> list[Any]:
    return answers(moto_with(()))


def test_ranged_gets_answer_the_same_with_the_fix(
        moto_with: Callable[[tuple[str, ...]], Moto], plain: list[Any]) -> None:
    fixed = answers(moto_with(("fix_s3_ranges",)))
    assert [row[:3] for row in fixed] == [row[:3] for row in plain]
    for with_fix, without in zip(fixed, plain, strict=True):
        assert with_fix == without, with_fix[:3]
    statuses = {(key, spec): status for key, spec, status, _, _ in fixed}
    assert statuses["small", "bytes=0-99"] == 206 and statuses["small", ""] == 200
    assert statuses["spilled", "bytes=-50"] == 206
    by_range = {(key, spec): body for key, spec, _, _, body in fixed}
    assert by_range["spilled", "bytes=100-"] == OBJECTS["spilled"][100:]
    assert by_range["spilled", "bytes=17-4000000"] == OBJECTS["spilled"][17:4000001]
    assert by_range["small", "bytes=-50"] == OBJECTS["small"][-50:]
