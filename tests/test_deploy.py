"""The `Deploy` API end to end on the local AWS emulator."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow import Deploy, UserAwsAuth
from tdv_airflow.core.resources import default_template_path
from tdv_airflow.exceptions import InvalidInputError, StackNotFoundError, TemplateError

MODEL_KEY = "models/iris/v1/model.pkl"
PREFIX = "tdv-airflow/"


def double_features(payload: dict[str, Any]) -> list[float]:
    return [2 * v for v in payload["x"]]


def triple_features(payload: dict[str, Any]) -> list[float]:
    return [3 * v for v in payload["x"]]


@pytest.fixture
def model_bytes(s3: Any, bucket: str) -> bytes:
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    data = load_iris()
    buf = io.BytesIO()
    pickle.dump(LogisticRegression(max_iter=300).fit(data.data, data.target), buf)
    s3.put_object(Bucket=bucket, Key=MODEL_KEY, Body=buf.getvalue())
    return buf.getvalue()


def make_deploy(aws: Any, bucket: str, prepro: Any = double_features, **kw: Any) -> Deploy:
    auth = UserAwsAuth("testing", "testing", endpoint_url=aws.endpoint_url)
    kw.setdefault("stack_name", "tdv-test-iris")
    return Deploy(bucket, kw.pop("model_s3_key", MODEL_KEY), prepro, auth, region="us-east-1",
                  poll_interval=0.2, **kw)


def artifact_objects(s3: Any, bucket: str) -> dict[str, str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=PREFIX).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in listing}


def sha256_of(s3: Any, bucket: str, key: str) -> str:
    return hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest()


def test_deploy_reaches_create_complete_with_an_endpoint(aws, s3, bucket, model_bytes,
                                                          boto_session) -> None:
    d = make_deploy(aws, bucket)
    resp = d.prepare_deployment()
    assert sorted(d.last_prepare.uploaded) == ["lambda_code", "layer", "prepro_fn", "template"]
    for key in ("s3_lbd_key", "url_s3_stack_template", "s3_prepro_fn_location", "bucket",
                "model_s3_key", "s3_layer_key"):
        assert resp[key], key
    json.dumps(resp)  # XCom-safe

    result = d.deploy(resp, invoke_mode=0)
    assert result["stack_status"] == "CREATE_COMPLETE"
    assert result["api_name"] == "tdv-test-iris-api"
    api_id = result["outputs"]["ApiId"]
    assert result["api_endpoint"] == (
        f"https://{api_id}.execute-api.us-east-1.amazonaws.com/prod/predict")
    assert re.fullmatch(r"[a-z0-9]{10}", api_id)
    assert d.get_clf_stack_status("tdv-test-iris") == "CREATE_COMPLETE"

    lam = boto_session.client("lambda", endpoint_url=aws.endpoint_url)
    env = lam.get_function_configuration(
        FunctionName=result["outputs"]["FunctionName"])["Environment"]["Variables"]
    digests = resp["sha256"]
    assert env == {
        "TDV_BUCKET": bucket,
        "TDV_MODEL_KEY": MODEL_KEY,
        "TDV_MODEL_SHA256": hashlib.sha256(model_bytes).hexdigest(),
        "TDV_PREPRO_KEY": resp["s3_prepro_fn_location"],
        "TDV_PREPRO_SHA256": digests["prepro_fn"],
        "TDV_CODE_KEY": resp["s3_lbd_key"],
        "TDV_CODE_SHA256": digests["lambda_code"],
        "TDV_LAYER_KEY": resp["s3_layer_key"],
        "TDV_LAYER_SHA256": digests["layer"],
        "TDV_PYTHON_VERSION": resp["python_version"],
        "TDV_DILL_VERSION": resp["dill_version"],
    }
    # every recorded digest is the digest of the bytes really stored under the key
    for kind, key in [("prepro_fn", resp["s3_prepro_fn_location"]),
                      ("lambda_code", resp["s3_lbd_key"]), ("layer", resp["s3_layer_key"]),
                      ("template", resp["s3_template_key"])]:
        assert sha256_of(s3, bucket, key) == digests[kind] and digests[kind] in key
    api = boto_session.client("apigateway", endpoint_url=aws.endpoint_url)
    resources = api.get_resources(restApiId=api_id)["items"]
    predict = next(r for r in resources if r.get("path") == "/predict")
    assert predict["resourceMethods"]["POST"]["methodIntegration"]["type"] == "AWS_PROXY"


def test_second_prepare_uploads_nothing(aws, s3, bucket, model_bytes) -> None:
    d = make_deploy(aws, bucket)
    first = d.prepare_deployment()
    before = artifact_objects(s3, bucket)
    again = make_deploy(aws, bucket)
    second = again.prepare_deployment()
    assert second == first
    assert again.last_prepare.uploaded == [] and again.last_prepare.bytes_sent == 0
    assert artifact_objects(s3, bucket) == before


def test_changing_the_prepro_function_changes_only_its_key(aws, s3, bucket, model_bytes) -> None:
    first = make_deploy(aws, bucket).prepare_deployment()
    d = make_deploy(aws, bucket, prepro=triple_features)
    second = d.prepare_deployment()
    assert d.last_prepare.uploaded == ["prepro_fn"]
    changed = {k for k in first if first[k] != second[k]}
    assert changed == {"s3_prepro_fn_location", "sha256"}
    assert {k for k in first["sha256"] if first["sha256"][k] != second["sha256"][k]} == {
        "prepro_fn"}


def test_redeploy_updates_the_same_stack(aws, s3, bucket, model_bytes, boto_session) -> None:
    first = make_deploy(aws, bucket).deploy(invoke_mode=0)
    d = make_deploy(aws, bucket, prepro=triple_features)
    resp = d.prepare_deployment()
    second = d.deploy(resp, invoke_mode=0)
    assert second["stack_id"] == first["stack_id"]
    assert second["stack_status"] == "UPDATE_COMPLETE"
    lam = boto_session.client("lambda", endpoint_url=aws.endpoint_url)
    env = lam.get_function_configuration(FunctionName="tdv-test-iris")["Environment"]
    assert env["Variables"]["TDV_PREPRO_KEY"] == resp["s3_prepro_fn_location"]
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    assert len(cfn.describe_stacks()["Stacks"]) == 1


def test_asynchronous_create_returns_the_status(aws, bucket, model_bytes) -> None:
    d = make_deploy(aws, bucket)
    created = d.create_stack(d.prepare_deployment(), invoke_mode=1)
    assert created["stack_name"] == "tdv-test-iris"
    assert created["stack_status"] in {"CREATE_IN_PROGRESS", "CREATE_COMPLETE"}
    assert created["stack_id"].startswith("arn:aws:cloudformation:us-east-1:")


def test_a_boto3_session_works_as_auth_object(aws, bucket, model_bytes, boto_session) -> None:
    d = Deploy(bucket, MODEL_KEY, double_features, boto_session, region="us-east-1",
               stack_name="tdv-session", poll_interval=0.2)
    assert d.deploy(invoke_mode=0)["stack_status"] == "CREATE_COMPLETE"


def test_workdir_receives_copies(aws, bucket, model_bytes, tmp_path: Path) -> None:
    d = make_deploy(aws, bucket, workdir=tmp_path / "wd")
    d.prepare_deployment()
    assert sorted(p.name for p in (tmp_path / "wd").iterdir()) == [
        "lambda_code.zip", "layer.zip", "prepro_fn.pkl", "stack_template.json"]


def test_missing_stack_status_is_an_error(aws, bucket) -> None:
    d = make_deploy(aws, bucket)
    with pytest.raises(StackNotFoundError, match="'tdv-nowhere' does not exist"):
        d.get_clf_stack_status("tdv-nowhere")


def _unpicklable() -> Any:
    gen = (i for i in range(3))

    def uses_generator(payload: Any) -> Any:
        return next(gen)

    return uses_generator


BAD_INPUTS = [
    ({"bucket": "Bad_Bucket"}, InvalidInputError, "invalid S3 bucket name 'Bad_Bucket'"),
    ({"bucket": "no-such-bucket-here"}, InvalidInputError,
     "bucket 'no-such-bucket-here' does not exist"),
    ({"model_s3_key": "models/missing.pkl"}, InvalidInputError,
     "model_s3_key 'models/missing.pkl' does not exist"),
    ({"prepro": 42}, InvalidInputError, "must be a callable or an import path"),
    ({"prepro": "no_such_pkg.mod:fn"}, InvalidInputError, "cannot import module"),
    ({"prepro": _unpicklable()}, InvalidInputError, "cannot be pickled with dill"),
    ({"stack_name": "run:2024-01-01"}, InvalidInputError, "invalid stack name 'run:2024-01-01'"),
    ({"template_stack_local_path": "/nonexistent/t.json"}, TemplateError, "does not exist"),
    ({"template_stack_local_path": "BROKEN"}, TemplateError, "neither valid JSON nor YAML"),
    ({"deployment_lbd_local_path": "/nonexistent/h.py"}, InvalidInputError, "does not exist"),
    ({"no_runtime": True}, InvalidInputError, "has no AWS Lambda runtime"),
    ({"model_s3_key": "models/iris (v2)/m.pkl"}, InvalidInputError,
     "invalid stack tag 'tdv-airflow:model': 'models/iris (v2)/m.pkl' (from model_s3_key)"),
]


@pytest.mark.parametrize("bad,exc,match", BAD_INPUTS, ids=[m for _, _, m in BAD_INPUTS])
def test_bad_input_fails_before_anything_is_created(aws, s3, bucket, model_bytes, boto_session,
                                                    tmp_path, monkeypatch, bad, exc, match):
    bad = dict(bad)
    if bad.pop("no_runtime", False):
        monkeypatch.setattr("tdv_airflow.core.validation.LAMBDA_RUNTIMES", {})
    if bad.get("template_stack_local_path") == "BROKEN":
        broken = tmp_path / "t.json"
        broken.write_text(default_template_path().read_text()[:-40])
        bad["template_stack_local_path"] = broken
    target = bad.pop("bucket", bucket)
    with pytest.raises(exc, match=re.escape(match)):
        make_deploy(aws, target, **bad).deploy(invoke_mode=0)
    assert artifact_objects(s3, bucket) == {}
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    assert cfn.describe_stacks()["Stacks"] == []


def test_a_repeated_create_sends_nothing(aws, bucket, model_bytes, boto_session) -> None:
    d = make_deploy(aws, bucket)
    resp = d.prepare_deployment()
    first = d.create_stack(resp, invoke_mode=0)
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    events = len(cfn.describe_stack_events(StackName="tdv-test-iris")["StackEvents"])
    again = make_deploy(aws, bucket).create_stack(resp, invoke_mode=0)
    assert again == {**first, "operation": "unchanged"}
    assert len(cfn.describe_stack_events(StackName="tdv-test-iris")["StackEvents"]) == events


def test_a_bucket_in_another_region_is_refused_before_any_upload(aws, s3, boto_session) -> None:
    """Lambda reads code only from a bucket in its own region: a bucket in eu-west-1 for a
    stack in us-east-1 is refused, naming both, before an upload or a stack."""
    eu = boto_session.client("s3", endpoint_url=aws.endpoint_url, region_name="eu-west-1")
    eu.create_bucket(Bucket="tdv-eu-models",
                     CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    eu.put_object(Bucket="tdv-eu-models", Key=MODEL_KEY, Body=b"model bytes")
    with pytest.raises(InvalidInputError) as info:
        make_deploy(aws, "tdv-eu-models").deploy(invoke_mode=0)
    message = str(info.value)
    for text in ("'tdv-eu-models'", "is in region eu-west-1", "deployed in us-east-1"):
        assert text in message, message
    listing = s3.list_objects_v2(Bucket="tdv-eu-models").get("Contents", [])
    assert [o["Key"] for o in listing] == [MODEL_KEY]
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    assert cfn.describe_stacks()["Stacks"] == []


def test_an_awkward_model_key_is_refused_before_any_upload(aws, s3, bucket, boto_session
                                                           ) -> None:
    """A valid S3 key with characters IAM and CloudWatch Logs refuse in a tag would fail
    the stack (its key tags the stack): refused while the model is there, nothing sent."""
    key = "models/iris (v2)/m.pkl"
    s3.put_object(Bucket=bucket, Key=key, Body=b"model bytes")
    with pytest.raises(InvalidInputError, match=re.escape(f"{key!r} (from model_s3_key)")):
        make_deploy(aws, bucket, model_s3_key=key).prepare_deployment()
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listing] == [key]
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    assert cfn.describe_stacks()["Stacks"] == []
