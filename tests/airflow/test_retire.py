"""RetireVersionsOperator on the emulator, and CreateStackOperator's ``deployment=`` tag
that groups a deployment's version stacks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tdv_airflow.core.retention import DEPLOYMENT_TAG
from tdv_airflow.core.stacks import tags_of
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.operators import (
    CreateStackOperator,
    PrepareDeploymentOperator,
    RetireVersionsOperator,
)
from testkit.aws_state import live_stacks

TEMPLATE = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def _create(cfn: Any, name: str, deployment: str = "tdv-iris") -> None:
    cfn.create_stack(StackName=name, TemplateBody=TEMPLATE,
                     Tags=[{"Key": DEPLOYMENT_TAG, "Value": deployment}])


def _retire(**kwargs: Any) -> RetireVersionsOperator:
    return RetireVersionsOperator(**{"task_id": "retire", "deployment": "tdv-iris",
                                     "poll_interval": 0.1, **kwargs})


@pytest.fixture
def versions(cfn: Any) -> Any:
    """The stable stack ``tdv-iris`` (created first: the oldest), five
    version stacks of the deployment, and one of another deployment."""
    _create(cfn, "tdv-iris")
    for i in range(5):
        _create(cfn, f"tdv-iris-v{i}")
    _create(cfn, "tdv-other-v0", deployment="tdv-other")
    return cfn


def test_keeps_the_newest_versions_never_the_excluded_and_a_retry_leaves_the_same(
        versions: Any, task_context: Any) -> None:
    op = _retire(keep_versions=3, exclude=["tdv-iris"])
    assert op.execute(task_context()) == ["tdv-iris-v1", "tdv-iris-v0"]
    after = ["tdv-iris", "tdv-iris-v2", "tdv-iris-v3", "tdv-iris-v4", "tdv-other-v0"]
    assert live_stacks(versions) == after
    assert op.execute(task_context()) == []  # the retry: nothing left to delete
    assert live_stacks(versions) == after


def test_without_exclude_the_stable_stack_counts_as_a_version(versions: Any,
                                                             task_context: Any) -> None:
    assert _retire(keep_versions="5").execute(task_context()) == ["tdv-iris"]
    assert "tdv-iris" not in live_stacks(versions)


def test_one_excluded_name_may_be_given_as_a_string(versions: Any, task_context: Any) -> None:
    assert _retire(keep_versions=1, exclude="tdv-iris").execute(task_context()) == [
        "tdv-iris-v3", "tdv-iris-v2", "tdv-iris-v1", "tdv-iris-v0"]
    assert live_stacks(versions) == ["tdv-iris", "tdv-iris-v4", "tdv-other-v0"]


@pytest.mark.parametrize("keep", [0, -2, True, "abc", "2.5", 2.5, None, "", " "])
def test_a_bad_keep_versions_is_refused_at_parse_time(keep: Any) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _retire(keep_versions=keep)
    assert f"invalid keep_versions {keep!r}" in str(caught.value)
    assert "at least 1" in str(caught.value)


@pytest.mark.parametrize("rendered", ["abc", "0", 0])
def test_a_bad_rendered_keep_is_refused_before_any_delete(
        versions: Any, task_context: Any, rendered: Any) -> None:
    op = _retire(keep_versions="{{ params.keep }}", aws_conn_id="no_such_connection")
    op.keep_versions = rendered  # as the template rendered it
    before = live_stacks(versions)
    with pytest.raises(InvalidInputError, match=f"invalid keep_versions {rendered!r}"):
        op.execute(task_context())
    assert live_stacks(versions) == before
    assert "hook" not in op.__dict__, "a hook (and so AWS clients) was built"


@pytest.mark.parametrize(("kwargs", "text"), [
    ({"deployment": ""}, "invalid deployment ''"),
    ({"deployment": "bad$name"}, "invalid deployment 'bad$name'"),
    ({"exclude": ["tdv-iris", 3]}, "invalid exclude"),
    ({"poll_interval": 0}, "poll_interval"),
])
def test_other_bad_literals_are_refused_at_parse_time(kwargs: dict[str, Any], text: str
                                                      ) -> None:
    with pytest.raises(InvalidInputError, match=text.replace("$", r"\$")):
        _retire(**kwargs)


def test_templated_fields_render(task_context: Any) -> None:
    from airflow.sdk import DAG

    with DAG("tdv_retire_templates", schedule=None,
             start_date=datetime(2025, 1, 1, tzinfo=UTC)) as dag:
        names = PrepareDeploymentOperator(task_id="names", bucket="b", model_s3_key="k",
                                          prepro_fn=len)
        op = RetireVersionsOperator(task_id="retire", deployment="tdv-{{ params.model }}",
                                    keep_versions="{{ params.keep }}",
                                    exclude=["tdv-{{ params.model }}", names.output["x"]])
    assert op.upstream_task_ids == {"names"}, "an XComArg in exclude sets the dependency"
    assert set(op.template_fields) == {"deployment", "keep_versions", "exclude",
                                       "aws_conn_id", "region_name", "verify"}
    op.exclude = ["tdv-{{ params.model }}"]  # as the XComArg resolves
    op.render_template_fields({"params": {"model": "iris", "keep": 2}, "dag": dag})
    assert (op.deployment, op.keep_versions, op.exclude) == ("tdv-iris", "2", ["tdv-iris"])


def test_create_tags_the_stack_with_its_deployment_for_retirement(
        cfn: Any, bucket: str, model_in_s3: str, task_context: Any) -> None:
    prepared = PrepareDeploymentOperator(task_id="prepare", bucket=bucket,
                                         model_s3_key=model_in_s3, prepro_fn=len
                                         ).execute(task_context())
    for version in ("v1", "v2", "v3"):
        CreateStackOperator(task_id="create", prepare_env_response=prepared,
                            stack_name=f"tdv-iris-{version}", deployment="tdv-iris",
                            tags={"team": "ml"}, poll_interval=0.1).execute(task_context())
    CreateStackOperator(task_id="create", prepare_env_response=prepared,
                        stack_name="tdv-iris-untagged", poll_interval=0.1
                        ).execute(task_context())
    tags = tags_of(cfn.describe_stacks(StackName="tdv-iris-v1")["Stacks"][0])
    assert tags[DEPLOYMENT_TAG] == "tdv-iris" and tags["team"] == "ml"
    untagged = tags_of(cfn.describe_stacks(StackName="tdv-iris-untagged")["Stacks"][0])
    assert untagged[DEPLOYMENT_TAG] == "tdv-iris-untagged"  # its own name by default
    assert _retire(keep_versions=2).execute(task_context()) == ["tdv-iris-v1"]
    assert live_stacks(cfn) == ["tdv-iris-untagged", "tdv-iris-v2", "tdv-iris-v3"]


def test_create_refuses_a_bad_deployment_at_parse_time() -> None:
    with pytest.raises(InvalidInputError, match="invalid deployment 'a#b'"):
        CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="ok",
                            deployment="a#b")
    op = CreateStackOperator(task_id="c", prepare_env_response={}, stack_name="ok",
                             deployment="{{ params.deployment }}")
    assert "deployment" in op.template_fields
