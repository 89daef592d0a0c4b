"""The runtime options on the prepare and create tasks: literal values are checked when
the DAG is parsed, templated ones first thing in ``execute``, before anything is uploaded;
the architecture reaches the prepared dependencies."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.operators import CreateStackOperator, PrepareDeploymentOperator
from testkit.aws_state import all_objects


def double(payload: Any) -> Any:
    return payload


@pytest.mark.parametrize(("options", "auth", "match"), [
    ({"snap_start": True}, "iam", r"snap_start=True needs the python3.12 runtime"),
    ({"front_door": "url"}, "api_key", r"endpoint_auth='api_key' is not offered by "
                                       r"front_door='url'"),
    ({"timeout": 30}, "iam", r"timeout=30 s is too long for front_door='rest'"),
    ({"memory_size": 20000}, "iam", r"invalid memory_size 20000"),
])
def test_literal_options_are_checked_when_the_dag_is_parsed(options: dict[str, Any],
                                                           auth: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="tdv-x",
                            endpoint_auth=auth, function_options=options)
    if auth == "iam":
        with pytest.raises(InvalidInputError, match=match):
            PrepareDeploymentOperator(task_id="p", bucket="b", model_s3_key="k",
                                      prepro_fn=double, function_options=options)


def test_templated_options_wait_for_execute() -> None:
    templated = {"memory_size": "{{ params.memory_size }}"}
    CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="tdv-x",
                        function_options=templated)
    PrepareDeploymentOperator(task_id="p", bucket="b", model_s3_key="k", prepro_fn=double,
                              function_options=templated)


def test_prepare_refuses_rendered_options_before_any_upload(s3: Any, bucket: str,
                                                            model_in_s3: str,
                                                            task_context: Any) -> None:
    before = all_objects(s3)
    op = PrepareDeploymentOperator(task_id="p", bucket=bucket, model_s3_key=model_in_s3,
                                   prepro_fn=double, function_options="{{ params.o }}")
    op.function_options = {"architecture": "arm64", "snap_start": "true"}  # as rendered
    with pytest.raises(InvalidInputError, match=r"snap_start=True needs the python3.12"):
        op.execute(task_context())
    op.function_options = {"architecture": "arm64"}
    op.dependencies = {"from_installed": ["dill"]}
    with pytest.raises(InvalidInputError, match=r"from_installed"):
        op.execute(task_context())  # a layer copied from this x86_64 worker
    assert all_objects(s3) == before


def test_prepare_stamps_the_architecture(s3: Any, bucket: str, model_in_s3: str,
                                         task_context: Any) -> None:
    op = PrepareDeploymentOperator(task_id="p", bucket=bucket, model_s3_key=model_in_s3,
                                   prepro_fn=double, function_options={"architecture": "arm64"})
    assert op.execute(task_context())["architecture"] == "arm64"
