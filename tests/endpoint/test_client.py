"""The client's view of a stack's mode, its signing region and its refusals, without
any AWS."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow.endpoint.client import call_endpoint, endpoint_auth_of, region_of
from tdv_airflow.exceptions import EndpointAuthError, InvalidInputError

URL = "http://127.0.0.1:8080/prod/predict"


def test_the_mode_of_a_stack() -> None:
    def stack(outputs: dict[str, str], params: dict[str, str]) -> dict[str, Any]:
        return {"StackName": "s",
                "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
                "Parameters": [{"ParameterKey": k, "ParameterValue": v}
                               for k, v in params.items()]}

    assert endpoint_auth_of(stack({"EndpointAuth": "API_KEY"}, {})) == "api_key"
    assert endpoint_auth_of(stack({}, {"EndpointAuth": "AWS_IAM"})) == "iam"
    assert endpoint_auth_of(stack({}, {})) == "none"  # stacks of earlier versions were open


def test_the_client_refuses_what_it_cannot_send_safely() -> None:
    with pytest.raises(InvalidInputError, match="invalid endpoint_auth"):
        call_endpoint(URL, {}, "oauth")
    with pytest.raises(EndpointAuthError, match="plain http"):
        call_endpoint("http://example.com/prod/predict", {}, "none")
    with pytest.raises(EndpointAuthError, match="http\\(s\\) URL"):
        call_endpoint("file:///etc/passwd", {}, "none")
    with pytest.raises(EndpointAuthError, match="needs api_key"):
        call_endpoint(URL, {}, "api_key")


def test_the_signing_region_comes_from_the_url() -> None:
    assert region_of("https://abc123.execute-api.eu-west-3.amazonaws.com/prod/predict") \
        == "eu-west-3"
    with pytest.raises(EndpointAuthError, match="cannot tell the region"):
        region_of(URL)
