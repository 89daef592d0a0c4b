"""PrepareDeploymentOperator and CreateStackOperator on the emulator: retries, checks,
templating, waiting and deferral."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from tdv_airflow.core.naming import client_request_token
from tdv_airflow.core.stacks import FINGERPRINT_TAG, tags_of
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.operators import CreateStackOperator, PrepareDeploymentOperator
from tdv_airflow.sensors import StackStatusSensor
from tdv_airflow.triggers import StackStatusTrigger
from testkit.held_stack import deployment_template_with_hold, release
from testkit.task_context import FakeTaskInstance


def double(payload: Any) -> list[float]:
    """A preprocessing function defined in a test module (travels by value)."""
    return [2.0 * float(x) for x in payload]


def _objects(s3: Any, bucket: str) -> dict[str, tuple[str, Any]]:
    listing = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: (o["ETag"], o["LastModified"]) for o in listing}


def _prepare(bucket: str, model_key: str, **kwargs: Any) -> PrepareDeploymentOperator:
    return PrepareDeploymentOperator(task_id="prepare", bucket=bucket, model_s3_key=model_key,
                                     prepro_fn=double, **kwargs)


@pytest.fixture
def prepared(s3: Any, bucket: str, model_in_s3: str, task_context: Any) -> dict[str, Any]:
    """The prepare contract for the test model."""
    return _prepare(bucket, model_in_s3).execute(task_context())


def test_prepare_retry_gives_the_same_xcom_and_uploads_nothing(
        s3: Any, bucket: str, model_in_s3: str, task_context: Any) -> None:
    first = _prepare(bucket, model_in_s3).execute(task_context())
    stored = _objects(s3, bucket)
    retry = _prepare(bucket, model_in_s3).execute(
        task_context(FakeTaskInstance(try_number=2)))
    assert retry == first
    assert _objects(s3, bucket) == stored, "the retry uploaded or rewrote objects"
    assert {first["s3_lbd_key"], first["s3_prepro_fn_location"], first["s3_layer_key"],
            first["s3_template_key"]} <= set(stored)
    assert first["model_s3_key"] == model_in_s3 and first["bucket"] == bucket


def test_prepare_accepts_an_import_path(bucket: str, model_in_s3: str, task_context: Any
                                        ) -> None:
    by_object = _prepare(bucket, model_in_s3).execute(task_context())
    op = PrepareDeploymentOperator(task_id="p", bucket=bucket, model_s3_key=model_in_s3,
                                   prepro_fn="tdv_airflow.core.naming:stack_name_from")
    by_path = op.execute(task_context())
    assert by_path["s3_prepro_fn_location"] != by_object["s3_prepro_fn_location"]


def test_prepare_rejects_a_prepro_fn_that_is_neither_callable_nor_a_path() -> None:
    with pytest.raises(InvalidInputError, match="prepro_fn must be a callable"):
        PrepareDeploymentOperator(task_id="p", bucket="b", model_s3_key="k", prepro_fn=42)


def test_create_retry_gives_the_same_xcom_and_one_stack(cfn: Any, prepared: dict[str, Any],
                                                        task_context: Any) -> None:
    pushed: list[dict[str, Any]] = []

    def create(try_number: int) -> dict[str, Any]:
        ti = FakeTaskInstance(try_number=try_number)
        op = CreateStackOperator(task_id="create", prepare_env_response=prepared,
                                 stack_name="tdv-retry", poll_interval=0.2)
        result = op.execute(task_context(ti))
        pushed.append(ti.xcoms)
        return result

    first = create(1)
    events = cfn.describe_stack_events(StackName="tdv-retry")["StackEvents"]
    retry = create(2)
    assert retry == first
    assert set(first) == {"stack_id", "stack_name", "stack_status", "fingerprint", "identity"}
    live = [s for s in cfn.list_stacks()["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]
    assert [s["StackName"] for s in live] == ["tdv-retry"]
    assert cfn.describe_stack_events(StackName="tdv-retry")["StackEvents"] == events, \
        "the retry sent a second operation"
    stack = cfn.describe_stacks(StackName="tdv-retry")["Stacks"][0]
    assert len(tags_of(stack)[FINGERPRINT_TAG]) == 64
    assert first["fingerprint"] == tags_of(stack)[FINGERPRINT_TAG]
    # under its own key too, so that a DAG can pass create.output["fingerprint"]
    assert [x["fingerprint"] for x in pushed] == [first["fingerprint"]] * 2


def test_create_updates_when_the_wanted_state_changes(cfn: Any, prepared: dict[str, Any],
                                                      task_context: Any) -> None:
    def create(**kwargs: Any) -> dict[str, Any]:
        return CreateStackOperator(task_id="create", prepare_env_response=prepared,
                                   stack_name="tdv-update", poll_interval=0.2,
                                   **kwargs).execute(task_context())

    first = create()
    second = create(stack_parameters={"StageName": "v2"})
    assert second["stack_id"] == first["stack_id"]
    assert second["stack_status"] == "UPDATE_COMPLETE"
    outputs = cfn.describe_stacks(StackName="tdv-update")["Stacks"][0]["Outputs"]
    assert {"OutputKey": "StageName", "OutputValue": "v2"} in [
        {k: o[k] for k in ("OutputKey", "OutputValue")} for o in outputs]


def test_create_on_exists_fail_and_skip(prepared: dict[str, Any], task_context: Any) -> None:
    from tdv_airflow.exceptions import StackExistsError

    def create(on_exists: str, **kwargs: Any) -> dict[str, Any]:
        return CreateStackOperator(task_id="c", prepare_env_response=prepared,
                                   stack_name="tdv-exists", on_exists=on_exists,
                                   **kwargs).execute(task_context())

    first = create("fail")
    assert create("fail") == first, "a retry with on_exists='fail' must not fail"
    skipped = create("skip", stack_parameters={"StageName": "v9"})
    assert skipped == first
    with pytest.raises(StackExistsError, match="on_exists='fail'"):
        create("fail", stack_parameters={"StageName": "v9"})


@pytest.mark.parametrize("name", ["1-starts-with-digit", "has_underscore", "a" * 129,
                                  "manual__2025-01-01T02:00:00+00:00", ""])
def test_invalid_stack_names_are_rejected_at_parse_time(name: str) -> None:
    with pytest.raises(InvalidInputError, match=r"\^\[A-Za-z\]\[A-Za-z0-9-\]\{0,127\}\$"):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name=name)


def test_templated_invalid_stack_name_is_rejected_before_any_aws_call(task_context: Any
                                                                      ) -> None:
    op = CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="{{ run_id }}",
                             aws_conn_id="no_such_connection")
    op.stack_name = "manual__2025-01-01T02:00:00+00:00"  # as rendered
    with pytest.raises(InvalidInputError, match="letters, digits and hyphens"):
        op.execute(task_context())
    assert "hook" not in op.__dict__, "a hook (and so AWS clients) was built"


def test_invalid_on_exists_and_poll_interval_are_rejected() -> None:
    with pytest.raises(InvalidInputError, match="on_exists"):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="ok",
                            on_exists="replace")
    with pytest.raises(InvalidInputError, match="poll_interval"):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="ok",
                            poll_interval=0)


def test_client_request_token_is_deterministic_and_valid() -> None:

    token = client_request_token("retrain_and_deploy", "manual__2025-01-01T02:00:00+00:00",
                                 "tdv-iris")
    assert re.fullmatch(r"[a-zA-Z][-a-zA-Z0-9]*", token) and len(token) <= 128
    assert token == client_request_token("retrain_and_deploy",
                                          "manual__2025-01-01T02:00:00+00:00", "tdv-iris")
    others = {client_request_token("other", "manual__2025-01-01T02:00:00+00:00", "tdv-iris"),
              client_request_token("retrain_and_deploy", "scheduled__x", "tdv-iris"),
              client_request_token("retrain_and_deploy",
                                   "manual__2025-01-01T02:00:00+00:00", "tdv-iris2")}
    assert token not in others and len(others) == 3


@pytest.fixture
def held_prepared(tmp_path: Path, s3: Any, bucket: str, model_in_s3: str,
                  task_context: Any) -> dict[str, Any]:
    """A prepare contract whose template holds the stack until released."""
    template = deployment_template_with_hold(tmp_path / "held.json")
    return _prepare(bucket, model_in_s3, template_stack_local_path=str(template)).execute(
        task_context())


def test_create_waits_for_completion(aws: Any, cfn: Any, held_prepared: dict[str, Any],
                                     task_context: Any) -> None:
    op = CreateStackOperator(task_id="c", prepare_env_response=held_prepared,
                             stack_name="tdv-wait", wait_for_completion=True, poll_interval=0.2)
    releaser = threading.Timer(2.0, lambda: release(
        aws.endpoint_url, cfn.describe_stacks(StackName="tdv-wait")["Stacks"][0]["StackId"]))
    releaser.start()
    result = op.execute(task_context())
    assert result["stack_status"] == "CREATE_COMPLETE"


def test_create_deferrable_defers_to_the_stack_trigger(aws: Any, cfn: Any,
                                                       held_prepared: dict[str, Any],
                                                       task_context: Any) -> None:
    import asyncio

    op = CreateStackOperator(task_id="c", prepare_env_response=held_prepared,
                             stack_name="tdv-defer", deferrable=True, poll_interval=0.2)
    context = task_context()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)
    stack_id = context["ti"].xcoms["tdv_stack_id"]
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath.endswith("StackStatusTrigger") and kwargs["stack_name"] == stack_id
    threading.Timer(1.0, release, (aws.endpoint_url, stack_id)).start()

    async def first_event() -> dict[str, Any]:
        async for event in StackStatusTrigger(**kwargs).run():
            return dict(event.payload)
        raise AssertionError("no event")

    assert len(kwargs["expected_fingerprint"]) == 64
    result = op.execute_complete(context, asyncio.run(first_event()))
    tag = tags_of(cfn.describe_stacks(StackName="tdv-defer")["Stacks"][0])[FINGERPRINT_TAG]
    assert result == {"stack_id": stack_id, "stack_name": "tdv-defer",
                      "stack_status": "CREATE_COMPLETE", "fingerprint": tag,
                      "identity": context["ti"].xcoms["identity"]}
    assert re.fullmatch(r"[0-9a-f]{16}", result["identity"])
    assert tag == kwargs["expected_fingerprint"]


def test_every_template_field_is_an_attribute_and_renders() -> None:
    with DAG("tdv_templates", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
             user_defined_macros={"suffix": lambda: "x"}) as dag:
        prepare = PrepareDeploymentOperator(
            task_id="prepare", bucket="{{ params.bucket }}",
            model_s3_key="models/{{ ds_nodash }}/m.pkl", prepro_fn=double,
            template_stack_local_path="/t/{{ params.name }}.json",
            deployment_lbd_local_path="/l/{{ params.name }}.py",
            layer_zip_local_path="/z/{{ params.name }}.zip", s3_prefix="p-{{ suffix() }}",
            dependencies={"requirements": ["scikit-learn=={{ params.sk }}"]},
            extra_layer_arns=["arn:{{ params.name }}"],
            aws_conn_id="{{ params.conn }}", region_name="{{ params.region }}")
        create = CreateStackOperator(
            task_id="create", prepare_env_response=prepare.output,
            stack_name="tdv-{{ params.name }}", on_exists="{{ params.on_exists }}",
            tags={"team": "{{ params.name }}"}, stack_parameters={"StageName": "{{ params.name }}"},
            aws_conn_id="{{ params.conn }}", region_name="{{ params.region }}")
        sensor = StackStatusSensor(task_id="wait", stack_name="tdv-{{ params.name }}",
                                   aws_conn_id="{{ params.conn }}",
                                   region_name="{{ params.region }}")
    assert create.upstream_task_ids == {"prepare"}, "prepare.output must set the dependency"
    params = {"bucket": "b1", "name": "n1", "sk": "1.5", "conn": "c1", "region": "eu-west-1",
              "on_exists": "skip"}
    context: dict[str, Any] = {"params": params, "ds_nodash": "20250101", "dag": dag}
    for op in (prepare, create, sensor):
        missing = [f for f in op.template_fields if not hasattr(op, f)]
        assert not missing, f"{op.task_id}: template fields without attribute: {missing}"
    create.prepare_env_response = {"bucket": "{{ params.bucket }}"}  # as the XCom resolves
    for op in (prepare, create, sensor):
        op.render_template_fields(context)
    assert (prepare.bucket, prepare.model_s3_key, prepare.s3_prefix) == (
        "b1", "models/20250101/m.pkl", "p-x")
    assert (prepare.template_stack_local_path, prepare.deployment_lbd_local_path,
            prepare.layer_zip_local_path) == ("/t/n1.json", "/l/n1.py", "/z/n1.zip")
    assert prepare.dependencies == {"requirements": ["scikit-learn==1.5"]}
    assert prepare.extra_layer_arns == ["arn:n1"]
    assert (create.stack_name, create.on_exists, create.tags, create.stack_parameters) == (
        "tdv-n1", "skip", {"team": "n1"}, {"StageName": "n1"})
    assert create.prepare_env_response == {"bucket": "b1"}
    assert sensor.stack_name == "tdv-n1"
    for op in (prepare, create, sensor):
        assert (op.aws_conn_id, op.region_name) == ("c1", "eu-west-1")


def test_create_recreates_a_stack_left_in_rollback_complete(
        prepared: dict[str, Any], task_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from botocore.stub import Stubber

    from tdv_airflow.hooks import TdvDeploymentHook
    from testkit import stubbed_stacks

    client = stubbed_stacks.client()
    hook = TdvDeploymentHook(aws_conn_id=None, region_name="eu-west-1")
    hook.__dict__["conn"] = client  # the hook's cached CloudFormation client
    op = CreateStackOperator(task_id="c", prepare_env_response=prepared,
                             stack_name=stubbed_stacks.STACK_NAME, poll_interval=0.01)
    op.__dict__["hook"] = hook
    dead = stubbed_stacks.stack("ROLLBACK_COMPLETE", stubbed_stacks.FAILED_REASON)
    with Stubber(client) as stubber, caplog.at_level(logging.WARNING, "tdv_airflow.core.stacks"):
        stubber.add_response("describe_stacks", dead)  # described once: a dead end
        stubber.add_response("delete_stack", {}, {"StackName": stubbed_stacks.STACK_ID})
        stubber.add_response("describe_stacks", stubbed_stacks.stack("DELETE_COMPLETE"))
        stubber.add_response("create_stack", {"StackId": stubbed_stacks.STACK_ID})
        stubber.add_response("describe_stacks", stubbed_stacks.stack("CREATE_IN_PROGRESS"))
        result = op.execute(task_context())
        stubber.assert_no_pending_responses()
    assert re.fullmatch(r"[0-9a-f]{64}", result.pop("fingerprint"))
    assert re.fullmatch(r"[0-9a-f]{16}", result.pop("identity"))
    assert result == {"stack_id": stubbed_stacks.STACK_ID, "stack_name": "tdv-iris",
                      "stack_status": "CREATE_IN_PROGRESS"}
    assert any("ROLLBACK_COMPLETE" in r.getMessage() and "DELETING" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_xcom_args_are_accepted_for_every_templated_argument() -> None:
    with DAG("tdv_xcomargs", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC)):
        names = PrepareDeploymentOperator(task_id="names", bucket="b", model_s3_key="k",
                                          prepro_fn=double)
        create = CreateStackOperator(task_id="create", prepare_env_response=names.output,
                                     stack_name=names.output["stack"],
                                     on_exists=names.output["on_exists"],
                                     tags=names.output["tags"])
        sensor = StackStatusSensor(task_id="wait", stack_name=create.output["stack_name"])
    assert create.upstream_task_ids == {"names"}
    assert sensor.upstream_task_ids == {"create"}


def test_connection_arguments_come_from_default_args() -> None:
    defaults = {"aws_conn_id": "from_defaults", "region_name": "eu-west-3",
                "botocore_config": {"retries": {"max_attempts": 9}}}
    with DAG("tdv_defaults", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
             default_args=defaults):
        ops = [PrepareDeploymentOperator(task_id="p", bucket="b", model_s3_key="k",
                                         prepro_fn=double),
               CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="s"),
               StackStatusSensor(task_id="w", stack_name="s")]
    for op in ops:
        assert (op.aws_conn_id, op.region_name, op.botocore_config) == (
            "from_defaults", "eu-west-3", {"retries": {"max_attempts": 9}}), op.task_id
    assert ops[2].stack_trigger("s", 1.0).serialize()[1]["aws_conn_id"] == "from_defaults"


def test_create_passes_the_endpoint_auth_mode(cfn: Any, prepared: dict[str, Any],
                                              task_context: Any) -> None:
    op = CreateStackOperator(task_id="c", prepare_env_response=prepared,
                             stack_name="tdv-keyed", poll_interval=0.2,
                             endpoint_auth="api_key")
    op.execute(task_context())
    stack = cfn.describe_stacks(StackName="tdv-keyed")["Stacks"][0]
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}
    assert params["EndpointAuth"] == "API_KEY"


@pytest.mark.parametrize("kwargs,match", [
    ({"endpoint_auth": "open"}, "endpoint_auth"),
    ({"role_arn": "arn:aws:iam::123:user/me"}, "invalid role_arn"),
])
def test_bad_endpoint_auth_and_role_arn_are_rejected(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="ok", **kwargs)
