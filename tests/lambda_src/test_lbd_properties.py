"""Property-based tests of the request processor: no input makes it raise or answer 500."""

from __future__ import annotations

import base64
import collections
import json
import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from testkit import lambda_fixtures as lf

MAX_BODY = 512
CLIENT_STATUSES = {200, 400, 405, 413, 422}
PROPERTY_SETTINGS = settings(max_examples=500, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])

# ----------------------------------------------------------------------------- strategies

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 80), 2 ** 80)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=25,
)
cells = (st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2 ** 70), 2 ** 70)
         | st.booleans() | st.none() | st.text(max_size=4))
near_valid = st.fixed_dictionaries(
    {"instances": st.lists(st.lists(cells, max_size=6), max_size=6) | json_values},
    optional={"extra": json_values},
)
valid_rows = st.lists(
    st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=4, max_size=4),
    min_size=1, max_size=20,
)
# The body as the client sent it (bytes), before API Gateway's encoding.
raw_bodies = st.one_of(
    valid_rows.map(lambda r: json.dumps({"instances": r}).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    near_valid.map(lambda v: json.dumps(v).encode()),
    st.text().map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=64),
    st.tuples(near_valid, st.integers(MAX_BODY, 2 * MAX_BODY)).map(  # oversized
        lambda vp: (json.dumps(vp[0]) + " " * vp[1]).encode()),
    st.sampled_from([b"", b" ", b"null", b"NaN", b"[1e999]", b"{", b'{"instances": [[]]}',
                     b'{"instances": [[1,2,3,4]]}', b"[" * 3000, b"9" * 5000]),
)
methods = st.one_of(
    st.sampled_from(["POST", "GET", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "post"]),
    st.text(max_size=10),
    st.none(),
    st.integers(),
)
headers = st.one_of(st.none(), st.dictionaries(st.text(max_size=20), st.text(max_size=40),
                                               max_size=4))
b64_flags = st.one_of(st.booleans(), st.none(), st.sampled_from(["true", "false", "TRUE", 1]))


@st.composite
def events(draw: st.DrawFn) -> Any:
    """Proxy events of both payload versions, with bodies as API Gateway would pass them."""
    raw = draw(raw_bodies)
    encode = draw(st.booleans())
    if encode:
        body: Any = base64.b64encode(raw).decode("ascii")
    else:
        body = raw.decode("utf-8", "surrogateescape")
    if draw(st.integers(0, 9)) == 7:  # rarely (hypothesis favours 0)
        body = draw(st.none() | st.integers())
    flag = draw(st.one_of(st.just(encode), b64_flags))
    method = draw(st.one_of(st.just("POST"), methods))
    request_id = draw(st.one_of(st.text(max_size=20), st.none(), st.integers()))
    shape = draw(st.sampled_from(["v1", "v1", "v2", "v2", "bare", "junk"]))
    if shape == "v1":
        return {"httpMethod": method, "headers": draw(headers), "body": body,
                "isBase64Encoded": flag, "requestContext": {"requestId": request_id}}
    if shape == "v2":
        return {"version": "2.0", "headers": draw(headers), "body": body,
                "isBase64Encoded": flag,
                "requestContext": {"requestId": request_id, "http": {"method": method}}}
    if shape == "bare":
        return {"body": body, "httpMethod": method}
    return draw(json_values)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture
def warm(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The processor with its artifacts loaded once; the property reuses them."""
    proc = lf.load_processor()
    proc._reset_cache()
    lf.deploy(s3, bucket, monkeypatch)
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", str(MAX_BODY))
    first = proc.handler(lf.v1_event(lf.instances_body([[5.1, 3.5, 1.4, 0.2]])),
                         lf.FakeContext())
    assert first["statusCode"] == 200, first
    assert proc._ARTIFACTS is not None
    yield proc
    proc._reset_cache()


def call(proc: Any, event: Any) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy overflow warnings on extreme floats
        return proc.handler(event, lf.FakeContext())


def check_shape(resp: dict[str, Any]) -> Any:
    assert set(resp) >= {"statusCode", "headers", "body"}
    assert isinstance(resp["statusCode"], int)
    assert resp["headers"]["Content-Type"] == "application/json"
    assert isinstance(resp["body"], str)
    return lf.answer(resp)


# ----------------------------------------------------------------------------- properties


def test_any_event_gets_a_client_status_and_a_json_body(warm: Any) -> None:
    seen: collections.Counter[int] = collections.Counter()

    @PROPERTY_SETTINGS
    @given(event=events())
    def prop(event: Any) -> None:
        resp = call(warm, event)
        body = check_shape(resp)
        status = resp["statusCode"]
        assert status in CLIENT_STATUSES, (status, body)
        seen[status] += 1
        if status == 200:
            assert isinstance(body["predictions"], list)
        else:
            assert isinstance(body["error"], str)
        if status == 405:
            assert resp["headers"]["Allow"] == "POST"

    prop()
    assert set(seen) == CLIENT_STATUSES, seen  # every status path was exercised


def test_valid_rows_get_the_models_predictions(warm: Any) -> None:
    import numpy as np

    model = lf.iris_model()

    @PROPERTY_SETTINGS
    @given(rows=valid_rows, version=st.sampled_from(["v1", "v2"]), b64=st.booleans())
    def prop(rows: list[list[float]], version: str, b64: bool) -> None:
        make = lf.v1_event if version == "v1" else lf.v2_event
        body = json.dumps({"instances": rows})
        resp = call(warm, make(body, b64=b64))
        if len(body) > MAX_BODY:
            assert resp["statusCode"] == 413
            return
        assert resp["statusCode"] == 200, resp
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = model.predict(np.array(rows)).tolist()
        assert check_shape(resp) == {"predictions": expected}

    prop()


def test_status_follows_method_and_size(warm: Any) -> None:
    @PROPERTY_SETTINGS
    @given(method=st.text(max_size=8) | st.sampled_from(["POST", "GET"]),
           size=st.integers(0, 2 * MAX_BODY), version=st.sampled_from(["v1", "v2"]),
           b64=st.booleans())
    def prop(method: str, size: int, version: str, b64: bool) -> None:
        make = lf.v1_event if version == "v1" else lf.v2_event
        body = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
        body = body + " " * max(0, size - len(body))
        resp = call(warm, make(body, method=method, b64=b64))
        check_shape(resp)
        if method != "POST":
            assert resp["statusCode"] == 405
            assert resp["headers"]["Allow"] == "POST"
        elif len(body) > MAX_BODY:
            assert resp["statusCode"] == 413
        else:
            assert resp["statusCode"] == 200

    prop()
