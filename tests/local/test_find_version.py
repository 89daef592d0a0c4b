"""Finding a published version on AWS: its own code location and layers (presigned
URLs), with the stack's keys only as a fallback for the artifacts that are the stack's.

The emulator answers ``get_function`` with an unsigned code location and no layers, so
these use botocore's Stubber on the documented shapes of ``GetFunction``
(https://docs.aws.amazon.com/lambda/latest/api/API_GetFunction.html) and
``GetLayerVersionByArn``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.stub import Stubber

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import UnknownVersionError
from tdv_airflow.local.find import find_function

REGION = "eu-west-1"
ACCOUNT = "210987654321"
FUNCTION = "tdv-iris"
ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{FUNCTION}"
LAYER_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:layer:tdv-iris-dill:3"
PRESIGNED = ("https://awslambda-eu-west-1-tasks.s3.eu-west-1.amazonaws.com/snapshots/"
             f"{ACCOUNT}/{FUNCTION}-abc?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=f00d")
OLD_CODE, NEW_CODE, LAYER = "a" * 64, "b" * 64, "c" * 64


def b64(hex_digest: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_digest)).decode()


STACK = {
    "StackName": FUNCTION, "StackStatus": "UPDATE_COMPLETE",
    "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{FUNCTION}/0a1b",
    "CreationTime": "2025-01-01T02:00:00Z",
    "Parameters": [
        {"ParameterKey": "ArtifactBucket", "ParameterValue": "artifacts"},
        {"ParameterKey": "CodeKey", "ParameterValue": f"code/{NEW_CODE}.zip"},
        {"ParameterKey": "CodeSha256", "ParameterValue": NEW_CODE},
        {"ParameterKey": "LayerKey", "ParameterValue": f"layers/{LAYER}.zip"},
        {"ParameterKey": "LayerSha256", "ParameterValue": LAYER},
    ],
    "Outputs": [{"OutputKey": "FunctionName", "OutputValue": FUNCTION},
                {"OutputKey": "LiveAlias", "OutputValue": "live"}],
}


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AwsClients, Stubber, Stubber]]:
    """AwsClients on AWS with stubbed CloudFormation and Lambda clients."""
    import boto3

    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x",  # noqa: S106
                            region_name=REGION)
    made = {name: session.client(name) for name in ("cloudformation", "lambda", "s3")}
    clients = AwsClients(made.__getitem__, REGION)
    cfn, lam = Stubber(made["cloudformation"]), Stubber(made["lambda"])
    with cfn, lam:
        yield clients, cfn, lam
        cfn.assert_no_pending_responses()
        lam.assert_no_pending_responses()


def version_4(env: dict[str, str]) -> dict[str, Any]:
    return {
        "Configuration": {
            "FunctionName": FUNCTION, "FunctionArn": f"{ARN}:4", "Version": "4",
            "Runtime": "python3.11", "Handler": "lbd_request_processor.handler",
            "Timeout": 30, "MemorySize": 1024, "CodeSha256": b64(OLD_CODE),
            "Environment": {"Variables": env},
            "Layers": [{"Arn": LAYER_ARN, "CodeSize": 1000}],
        },
        "Code": {"RepositoryType": "S3", "Location": PRESIGNED},
    }


def layer_version() -> dict[str, Any]:
    return {"LayerArn": LAYER_ARN.rsplit(":", 1)[0], "LayerVersionArn": LAYER_ARN,
            "Version": 3, "Content": {"Location": PRESIGNED.replace("snapshots", "layers"),
                                      "CodeSha256": b64(LAYER), "CodeSize": 1000}}


def test_an_old_version_on_aws_runs_from_its_own_presigned_locations(stubbed: Any) -> None:
    """Version 4 ran older code and names no key variables: on AWS its own locations
    suffice; the stack's keys back up only the layer whose digest is the stack's."""
    clients, cfn, lam = stubbed
    cfn.add_response("describe_stacks", {"Stacks": [STACK]}, {"StackName": FUNCTION})
    lam.add_response("get_function", version_4({
        "TDV_BUCKET": "artifacts", "TDV_CODE_SHA256": OLD_CODE, "TDV_LAYER_SHA256": LAYER,
        "TDV_MODEL_KEY": "models/m4.pkl"}), {"FunctionName": FUNCTION, "Qualifier": "4"})
    lam.add_response("get_layer_version_by_arn", layer_version(), {"Arn": LAYER_ARN})
    found = find_function(clients, FUNCTION, "4")
    assert (found.version, found.invoked_arn) == ("4", f"{ARN}:4")
    assert (found.code.url, found.code.sha256, found.code.fallback) == (
        PRESIGNED, OLD_CODE, None)  # not the stack's code: no fallback
    (layer,) = found.layers
    assert layer.sha256 == LAYER and layer.url and layer.url.startswith("https://")
    assert layer.fallback is not None and layer.fallback.key == f"layers/{LAYER}.zip"


def test_a_version_with_key_variables_is_backed_up_by_its_own_keys(stubbed: Any) -> None:
    clients, cfn, lam = stubbed
    cfn.add_response("describe_stacks", {"Stacks": [STACK]}, {"StackName": FUNCTION})
    lam.add_response("get_function", version_4({
        "TDV_BUCKET": "artifacts", "TDV_CODE_SHA256": OLD_CODE,
        "TDV_CODE_KEY": f"code/{OLD_CODE}.zip", "TDV_LAYER_SHA256": LAYER,
        "TDV_LAYER_KEY": f"layers/{LAYER}.zip"}), {"FunctionName": FUNCTION,
                                                    "Qualifier": "live"})
    lam.add_response("get_layer_version_by_arn", layer_version(), {"Arn": LAYER_ARN})
    found = find_function(clients, FUNCTION, "live")
    assert found.invoked_arn == f"{ARN}:live" and found.version == "4"
    assert found.code.fallback is not None
    assert (found.code.fallback.bucket, found.code.fallback.key) == (
        "artifacts", f"code/{OLD_CODE}.zip")


def test_an_unknown_version_is_named(stubbed: Any) -> None:
    clients, cfn, lam = stubbed
    cfn.add_response("describe_stacks", {"Stacks": [STACK]}, {"StackName": FUNCTION})
    lam.add_client_error("get_function", "ResourceNotFoundException",
                         f"Function not found: {ARN}:12", http_status_code=404)
    with pytest.raises(UnknownVersionError, match="has no version or alias '12'"):
        find_function(clients, FUNCTION, "12")
