"""How tdv-airflow names its assets: the model in S3, the endpoint of a stack (a scheme
this provider registers with Airflow), what their events carry, and which tasks declare
them when the DAG is parsed."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import Asset, AssetAlias

from tdv_airflow.assets import (
    ENDPOINT_ALIAS,
    endpoint_asset,
    endpoint_event_extra,
    model_asset,
    model_event_extra,
    model_from_events,
)
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.operators import PrepareDeploymentOperator, PromoteOperator, RollbackOperator

SHA = "ab" * 32


def test_the_model_asset_is_the_amazon_providers_s3_uri() -> None:
    asset = model_asset("my-models", "/models/iris/")
    assert asset.uri == asset.name == "s3://my-models/models/iris"
    assert asset == Asset(uri="s3://my-models/models/iris")  # whoever declares it
    assert asset.normalized_uri == "s3://my-models/models/iris"  # the provider's handler
    for bucket, key in (("", "k"), ("a/b", "k"), ("b", ""), ("b", "/"), (None, "k")):
        with pytest.raises(InvalidInputError, match="model asset"):
            model_asset(bucket, key)  # type: ignore[arg-type]


def test_the_endpoint_asset_names_region_and_stack_under_the_registered_scheme() -> None:
    asset = endpoint_asset("eu-west-1", "tdv-iris")
    assert asset.uri == "tdv-endpoint://eu-west-1/tdv-iris"
    # registered through the provider's asset-uris: Airflow normalises it with our handler
    assert asset.normalized_uri == asset.uri
    for region, stack in (("europe", "tdv-iris"), ("eu-west-1", "tdv_iris"),
                          ("eu-west-1", "9lives"), ("eu-west-1", "")):
        with pytest.raises(InvalidInputError, match="endpoint asset"):
            endpoint_asset(region, stack)


@pytest.mark.parametrize("uri", ["tdv-endpoint://EUROPE/tdv-iris",
                                 "tdv-endpoint://eu-west-1/a/b",
                                 "tdv-endpoint://eu-west-1/tdv-iris?x=1",
                                 "tdv-endpoint:///tdv-iris"])
def test_airflow_refuses_a_malformed_endpoint_uri(uri: str) -> None:
    with pytest.raises(ValueError, match="tdv-endpoint URI"):
        Asset(uri=uri)


def test_model_event_extra_and_reading_it_back_from_the_newest_event() -> None:
    extra = model_event_extra("b", "models/iris/2/model.pkl", SHA)
    assert extra == {"bucket": "b", "model_s3_key": "models/iris/2/model.pkl",
                     "model_sha256": SHA}
    with pytest.raises(InvalidInputError, match="model_sha256"):
        model_event_extra("b", "k", "not-a-digest")
    asset = model_asset("b", "models/iris")
    older = SimpleNamespace(extra=model_event_extra("b", "models/iris/1/model.pkl", SHA),
                            timestamp=datetime(2025, 1, 1, tzinfo=UTC))
    newer = SimpleNamespace(extra=extra, timestamp=datetime(2025, 1, 2, tzinfo=UTC))
    assert model_from_events([newer, older], asset) == extra
    with pytest.raises(InvalidInputError, match="no asset event of s3://b/models/iris"):
        model_from_events([], asset)
    bare = SimpleNamespace(extra={"bucket": "b"}, timestamp=newer.timestamp)
    with pytest.raises(InvalidInputError, match=r"carries no \['model_s3_key', "
                                                r"'model_sha256'\]"):
        model_from_events([bare], asset)


def test_the_endpoint_extra_names_the_live_version_and_its_model_only() -> None:
    live: dict[str, Any] = {"alias": "live", "version": "3", "previous": "2", "serving": [
        {"version": "2", "share": 0.1, "model_s3_key": "m/2", "model_sha256": "x",
         "run_id": "r", "code_sha256": "c", "identity": "i"},
        {"version": "3", "share": 0.9, "model_s3_key": "m/3", "model_sha256": SHA}]}
    extra = endpoint_event_extra("tdv-iris", "us-east-1", "https://x/prod/predict", live)
    assert extra == {"stack": "tdv-iris", "region": "us-east-1", "version": "3",
                     "endpoint_url": "https://x/prod/predict", "model_s3_key": "m/3",
                     "model_sha256": SHA, "serving": [
                         {"version": "2", "share": 0.1, "model_s3_key": "m/2",
                          "model_sha256": "x"},
                         {"version": "3", "share": 0.9, "model_s3_key": "m/3",
                          "model_sha256": SHA}]}


def test_prepare_takes_the_model_asset_as_inlet_only_when_known_at_parse_time() -> None:
    literal = PrepareDeploymentOperator(task_id="p", bucket="b", model_s3_key="m/1/model.pkl",
                                        prepro_fn="json:loads")
    assert literal.inlets == [Asset(uri="s3://b/m/1/model.pkl")]
    mine = Asset(uri="s3://b/data/train.csv")
    kept = PrepareDeploymentOperator(task_id="k", bucket="b", model_s3_key="m/1/model.pkl",
                                     prepro_fn="json:loads", inlets=[mine])
    assert kept.inlets == [mine, Asset(uri="s3://b/m/1/model.pkl")]
    templated = PrepareDeploymentOperator(task_id="t", bucket="{{ params.bucket }}",
                                          model_s3_key="m/1/model.pkl", prepro_fn="json:loads")
    assert templated.inlets == []


def test_the_tasks_that_change_what_is_live_declare_the_endpoint_alias_by_default() -> None:
    alias = AssetAlias(ENDPOINT_ALIAS)
    promote = PromoteOperator(task_id="p", stack_name="{{ params.stack }}", version="2")
    rollback = RollbackOperator(task_id="r", stack_name="tdv-iris")
    assert promote.outlets == [alias] and rollback.outlets == [alias]
    mine = Asset(uri="s3://b/reports/deploys")
    assert PromoteOperator(task_id="m", stack_name="s", version="2",
                           outlets=[mine]).outlets == [mine, alias]
    assert PromoteOperator(task_id="c", stack_name="s", version="2",
                           endpoint_alias="team-a-endpoints").outlets == [
        AssetAlias("team-a-endpoints")]
    assert PromoteOperator(task_id="n", stack_name="s", version="2",
                           endpoint_alias=None).outlets == []
    assert RollbackOperator(task_id="o", stack_name="s", endpoint_alias=None).outlets == []
