"""The payload 2.0 events of the HTTP API and the function URL, as AWS builds them."""

from __future__ import annotations

import base64

from tdv_airflow.local.events import api_gateway_event, function_url_event, http_api_event


def test_an_http_api_event_has_the_v2_shape() -> None:
    event = http_api_event('{"rows": [[1]]}', headers={"Content-Type": "application/json",
                                                       "X-Multi": ["a", "b"],
                                                       "Cookie": "s=1; t=2"},
                           query={"q": ["1", "2"]}, api_id="abc123", source_ip="10.0.0.1")
    assert event["version"] == "2.0"
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "POST /predict"
    assert (event["rawPath"], event["rawQueryString"]) == ("/predict", "q=1&q=2")
    assert event["headers"] == {"content-type": "application/json", "x-multi": "a,b"}
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["queryStringParameters"] == {"q": "1,2"}
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"]) == ("POST", "/predict",
                                                                "10.0.0.1")
    assert event["requestContext"]["stage"] == "$default"
    assert event["requestContext"]["domainName"] == "abc123.execute-api.us-east-1.amazonaws.com"
    assert (event["body"], event["isBase64Encoded"]) == ('{"rows": [[1]]}', False)
    assert "httpMethod" not in event and "multiValueHeaders" not in event


def test_a_function_url_event_takes_the_default_route_and_any_path() -> None:
    event = function_url_event(b"\xff\x00", url_id="u1d", region="eu-west-1", path="/x/y",
                               method="PUT")
    assert event["routeKey"] == "$default" and event["rawPath"] == "/x/y"
    assert event["requestContext"]["domainName"] == "u1d.lambda-url.eu-west-1.on.aws"
    assert event["requestContext"]["apiId"] == "u1d"
    assert event["requestContext"]["http"]["method"] == "PUT"
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00"
    assert "queryStringParameters" not in event and "cookies" not in event


def test_the_rest_event_stays_payload_1() -> None:
    event = api_gateway_event("{}")
    assert "version" not in event and event["httpMethod"] == "POST"
