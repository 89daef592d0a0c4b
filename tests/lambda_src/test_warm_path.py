"""The warm request's fixed cost: what is built once stays built (the same answers and log
lines as before, measured by ``bench/bench_cold_start.py``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from testkit import lambda_fixtures as lf

ACCESS_LOGGER = "lbd_request_processor.access"


@pytest.fixture
def proc() -> Iterator[Any]:
    module = lf.load_processor()
    module._reset_cache()
    yield module
    module._reset_cache()


def test_a_warm_request_builds_no_json_codec_and_looks_up_no_caller_frame(
        proc: Any, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    lf.deploy(s3, bucket, monkeypatch)
    x = lf.iris()[0][:3]
    event = lf.v1_event(lf.instances_body(x))
    caplog.set_level(logging.INFO)
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 200  # loads: cold
    built: list[str] = []
    for cls in (json.JSONEncoder, json.JSONDecoder):
        original = cls.__init__

        def counted(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> None:
            built.append(type(self).__name__)
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counted)
    find_caller = logging.Logger.findCaller

    def found(self: logging.Logger, *args: Any, **kwargs: Any) -> Any:
        built.append(f"findCaller({self.name})")
        return find_caller(self, *args, **kwargs)

    monkeypatch.setattr(logging.Logger, "findCaller", found)
    caplog.clear()
    response = proc.handler(event, lf.FakeContext())
    assert built == []
    assert lf.answer(response) == {"predictions": lf.iris_model().predict(x).tolist()}
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]
    assert line["status"] == 200 and line["cold_start"] is False
    assert list(line) == sorted(line)  # keys sorted, as json.dumps(sort_keys=True) wrote them
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert record.levelno == logging.INFO and record.filename == "lbd_request_processor.py"


def test_numeric_arrays_convert_without_a_walk_and_non_finite_values_still_become_null(
        proc: Any) -> None:
    assert proc._to_jsonable(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]
    assert proc._to_jsonable(np.array([1.5, np.nan, np.inf])) == [1.5, None, None]
    assert proc._to_jsonable(np.array([True, False])) == [True, False]
    assert proc._to_jsonable(np.float32(0.5)) == 0.5
    converted = proc._to_jsonable(np.array([0.25, 2.0], dtype=np.float32))
    assert converted == [0.25, 2.0] and all(type(v) is float for v in converted)
    assert proc._to_jsonable(np.array(["a", "b"])) == ["a", "b"]  # not numeric: walked
    assert proc._to_jsonable(np.array([{"k": 1}], dtype=object)) == [{"k": 1}]


def test_the_body_limit_follows_the_environment(proc: Any,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TDV_MAX_BODY_BYTES", raising=False)
    assert proc._max_body_bytes() == proc.DEFAULT_MAX_BODY_BYTES
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", "100")
    assert proc._max_body_bytes() == 100
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", "-1")
    with pytest.raises(proc._LoadError, match="positive integer"):
        proc._max_body_bytes()
    with pytest.raises(proc._LoadError, match="positive integer"):  # not cached as good
        proc._max_body_bytes()
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", " 7 ")
    assert proc._max_body_bytes() == 7
