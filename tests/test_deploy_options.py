"""``Deploy(function_options=...)``: the runtime options reach the function, and each
combination AWS does not run is refused before anything is uploaded or created."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tdv_airflow.core.layers import Dependencies
from tdv_airflow.exceptions import InvalidInputError
from tests import test_deploy
from tests.test_deploy import artifact_objects, make_deploy

model_bytes = test_deploy.model_bytes  # the fixture: a trained model in the bucket

#: Options, other Deploy arguments, and the start of the message each is refused with.
REFUSED: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"snap_start": True}, {}, "snap_start=True needs the python3.12 runtime or newer, but "
                               "this function runs python3.11"),
    ({"front_door": "http"}, {"endpoint_auth": "api_key"},
     "endpoint_auth='api_key' is not offered by front_door='http'"),
    ({"front_door": "url"}, {"endpoint_auth": "api_key"},
     "endpoint_auth='api_key' is not offered by front_door='url'"),
    ({"timeout": 29}, {}, "timeout=29 s is too long for front_door='rest', which waits 29 s"),
    ({"front_door": "http"}, {"stack_parameters": {"Timeout": 30}},
     "timeout=30 s is too long for front_door='http', which waits 30 s"),
    ({"memory_size": 64}, {}, "invalid memory_size 64: expected an integer from 128 to 10240"),
    ({"architecture": "arm64"},
     {"dependencies": Dependencies(from_installed=["dill"], architecture="x86_64")},
     None),  # filled in below: from_installed for another machine
    ({"architecture": "arm64"}, {"dependencies": {"requirements": ["numpy"],
                                                  "architecture": "x86_64"}},
     "architecture='arm64' disagrees with the dependencies' architecture 'x86_64'"),
]


@pytest.mark.parametrize("options,kwargs,match", REFUSED)
def test_a_bad_combination_is_refused_before_any_upload(aws, s3, bucket, model_bytes,
                                                        boto_session, options, kwargs,
                                                        match) -> None:
    if match is None:  # the worker is x86_64: a layer copied from it cannot run on arm64
        match = "from_installed"
    with pytest.raises(InvalidInputError, match=re.escape(match)):
        make_deploy(aws, bucket, function_options=options, **kwargs).deploy(invoke_mode=0)
    assert artifact_objects(s3, bucket) == {}
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    assert cfn.describe_stacks()["Stacks"] == []


def test_a_template_without_the_parameter_is_refused_before_any_upload(
        aws, s3, bucket, model_bytes, tmp_path) -> None:
    from tdv_airflow.core.resources import default_template_path

    body = json.loads(default_template_path().read_text())
    del body["Parameters"]["EphemeralStorageSize"]
    body["Resources"]["PredictFunction"]["Properties"].pop("EphemeralStorage")
    custom = tmp_path / "stack.json"
    custom.write_text(json.dumps(body))
    d = make_deploy(aws, bucket, template_stack_local_path=custom,
                    function_options={"ephemeral_storage": 1024})
    with pytest.raises(InvalidInputError, match=r"ephemeral_storage=1024 needs a template "
                                                r"that declares the parameter "
                                                r"'EphemeralStorageSize'"):
        d.prepare_deployment()
    assert artifact_objects(s3, bucket) == {}


def test_the_options_reach_the_function(aws, bucket, model_bytes, boto_session) -> None:
    d = make_deploy(aws, bucket, stack_name="tdv-options", function_options={
        "architecture": "arm64", "memory_size": 2048, "timeout": 20,
        "ephemeral_storage": 1024, "provisioned_concurrency": 2})
    response = d.prepare_deployment()
    assert response["architecture"] == "arm64"  # no compiled dependency: any machine
    result = d.deploy(response, invoke_mode=0)
    lam = boto_session.client("lambda", endpoint_url=aws.endpoint_url)
    config = lam.get_function_configuration(FunctionName=result["outputs"]["FunctionName"])
    assert config["Architectures"] == ["arm64"]
    assert (config["MemorySize"], config["Timeout"]) == (2048, 20)
    assert config["EphemeralStorage"] == {"Size": 1024}
    assert result["outputs"]["ProvisionedConcurrency"] == "2"
