"""OpenLineage for tdv-airflow's tasks: which S3 objects a deployment reads and which
endpoint it makes.

The OpenLineage provider (``apache-airflow-providers-openlineage``, the ``openlineage``
extra) calls ``get_openlineage_facets_on_start`` and
``get_openlineage_facets_on_complete(task_instance)`` on an operator that has them
(:class:`OpenLineageMixin`). A task keeps what its lineage needs on ``self._lineage``
during ``execute`` (plain JSON: :func:`of_prepare`, :func:`of_create`, :func:`of_promote`);
the listener reads it when the task ends, in the same process (or a fork of it), without
any call to AWS. Without the provider, or with it disabled (no transport configured),
nothing here is ever called; the provider and the OpenLineage client are imported only
inside :func:`operator_lineage`, never when a DAG file is parsed.

Naming (the OpenLineage naming spec, https://openlineage.io/docs/spec/naming):

* an S3 object (model, pickled preprocessing function, function code, layers, template):
  namespace ``s3://{bucket}``, name ``{key}`` (the spec's S3 row). Its SHA-256 is the
  standard ``version`` facet (``datasetVersion``: the hex digest; every artifact key is
  content-addressed, so the digest names the content) and the standard ``datasetType``
  facet says what it is (``MODEL``, or ``FILE`` with the artifact kind as ``subType``).
* the deployed endpoint: the spec has no row for a Lambda function or an API, so the
  dataset is named like the provider's Airflow Asset of the endpoint
  (``tdv-endpoint://{region}/{stack}``, :mod:`tdv_airflow.assets`): namespace
  ``tdv-endpoint://{region}``, name ``{stack}``; the same name before the stack exists and
  whichever front door serves it. Two ``symlinks`` give the names other tools may use:
  the endpoint's URL by the spec's URI rule (namespace ``https://{host}``, name its path,
  type ``URL``) and the stack ARN in the form of the spec's AWS Glue row (namespace
  ``arn:{partition}:cloudformation:{region}:{account}``, name ``stack/{stack}``, type
  ``STACK``). The ``version`` facet is the Lambda version behind the alias ``live``, and the
  custom facet :data:`ENDPOINT_FACET` (:func:`operator_lineage`) holds the stack, URL,
  front door, auth mode, alias and which model (key and digest) each serving version runs.

Nothing secret goes in: no API key value (only the auth mode), no credentials, no signed
URL, no environment variable beyond the artifacts' keys and digests.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from tdv_airflow.assets import ENDPOINT_SCHEME  # the endpoint's one name, Asset and dataset

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors.base import OperatorLineage

#: The key of the custom dataset facet describing a deployed endpoint.
ENDPOINT_FACET = "tdvAirflow_endpoint"
#: Where that facet is documented (its ``_schemaURL``).
ENDPOINT_FACET_SCHEMA_URL = (
    "https://tdv-airflow.readthedocs.io/en/latest/guides/lineage.html#tdvairflow-endpoint-facet")

#: The prepare contract's artifacts: (kind, key in the contract), the kind also being the
#: key of its digest in ``sha256``.
_ARTIFACT_KEYS = (("prepro_fn", "s3_prepro_fn_location"), ("lambda_code", "s3_lbd_key"),
                  ("layer", "s3_layer_key"), ("deps_layer", "s3_deps_layer_key"),
                  ("template", "s3_template_key"))


def s3_object(bucket: str, key: str, kind: str, sha256: str | None = None) -> dict[str, Any]:
    """An S3 object in a lineage record.

    :param bucket: its bucket.
    :param key: its key.
    :param kind: ``model`` or the artifact's kind (``prepro_fn``, ``lambda_code`` ...).
    :param sha256: its SHA-256 (hex), when known.
    """
    return {"bucket": str(bucket), "key": str(key).lstrip("/"), "kind": kind, "sha256": sha256}


def model_and_artifacts(response: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The model and every artifact a prepare contract names, with their digests.

    :param response: the prepare contract (``PrepareDeploymentOperator``'s result).
    """
    bucket, digests = response.get("bucket"), response.get("sha256") or {}
    if not bucket:
        return []
    found = []
    if response.get("model_s3_key"):
        found.append(s3_object(bucket, response["model_s3_key"], "model", digests.get("model")))
    for kind, name in _ARTIFACT_KEYS:
        if response.get(name):
            found.append(s3_object(bucket, response[name], kind, digests.get(kind)))
    bundle = response.get("deps_bundle") or {}
    if bundle.get("key"):
        found.append(s3_object(bucket, bundle["key"], "deps_bundle", bundle.get("sha256")))
    return found


def endpoint(stack_id: str, stack_name: str | None = None, **details: Any) -> dict[str, Any]:
    """The deployed endpoint in a lineage record.

    :param stack_id: the stack ARN (its region and account name the endpoint).
    :param stack_name: the stack's name (read from the ARN when ``None``).
    :param details: ``url``, ``front_door``, ``endpoint_auth``, ``function_name``,
        ``version``, ``previous``, ``serving`` (``None`` values are dropped).
    """
    parts = str(stack_id).split(":", 5)
    if len(parts) != 6 or parts[2] != "cloudformation" or not parts[5].startswith("stack/"):
        raise ValueError(f"not a stack ARN: {stack_id!r}")
    return {"partition": parts[1], "region": parts[3], "account": parts[4],
            "stack_name": stack_name or parts[5].split("/")[1],
            **{k: v for k, v in details.items() if v is not None}}


def of_prepare(response: Mapping[str, Any]) -> dict[str, Any]:
    """Prepare reads the model and writes the artifacts.

    :param response: its result, the prepare contract.
    """
    found = model_and_artifacts(response)
    return {"inputs": [o for o in found if o["kind"] == "model"],
            "outputs": [o for o in found if o["kind"] != "model"]}


def of_create(prepare_env_response: Any, summary: Mapping[str, Any]) -> dict[str, Any]:
    """Create deploys the model and artifacts as the stack's endpoint.

    :param prepare_env_response: the task's rendered prepare contract.
    :param summary: its result (``stack_id``, ``stack_name`` ...).
    """
    inputs = (model_and_artifacts(prepare_env_response)
              if isinstance(prepare_env_response, Mapping) else [])
    return {"inputs": inputs,
            "outputs": [endpoint(summary["stack_id"], summary.get("stack_name"))]}


def of_promote(stack: Mapping[str, Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """Promotion makes a version the endpoint's live one: the output is the endpoint at
    that version, the inputs are the model and pickle each serving version reads.

    :param stack: the stack's ``describe_stacks`` entry.
    :param result: the promotion's result (``version``, ``live`` ...).
    """
    from tdv_airflow.core.stacks import outputs_of

    outputs = outputs_of(stack)
    parameters = {p["ParameterKey"]: p.get("ParameterValue")
                  for p in stack.get("Parameters") or []}
    live, bucket = result.get("live") or {}, parameters.get("ArtifactBucket")
    inputs, serving = [], []
    for entry in live.get("serving") or []:
        model = (s3_object(bucket, entry["model_s3_key"], "model", entry.get("model_sha256"))
                 if bucket and entry.get("model_s3_key") else None)
        if model:
            inputs.append(model)
        if bucket and entry.get("prepro_s3_key"):
            inputs.append(s3_object(bucket, entry["prepro_s3_key"], "prepro_fn",
                                    entry.get("prepro_sha256")))
        serving.append({"version": entry.get("version"), "share": entry.get("share"),
                        "model": f"s3://{bucket}/{entry['model_s3_key']}" if model else None,
                        "modelSha256": entry.get("model_sha256")})
    url = live.get("endpoint") or outputs.get("ApiEndpoint") or None
    return {"inputs": inputs, "outputs": [endpoint(
        stack["StackId"], stack.get("StackName"), url=url,
        front_door=outputs.get("FrontDoor"), endpoint_auth=outputs.get("EndpointAuth"),
        function_name=outputs.get("FunctionName"), alias=live.get("alias"),
        version=result.get("version"), previous=live.get("previous"), serving=serving)]}


def on_start(task: Any) -> dict[str, Any]:
    """What a task's arguments (rendered) already name when it starts: the model of a
    prepare, the model and artifacts of a create.

    :param task: the operator.
    """
    response = getattr(task, "prepare_env_response", None)
    if isinstance(response, Mapping):
        return {"inputs": model_and_artifacts(response), "outputs": []}
    bucket, key = getattr(task, "bucket", None), getattr(task, "model_s3_key", None)
    if isinstance(bucket, str) and isinstance(key, str) and bucket and key \
            and "{{" not in bucket + key:
        return {"inputs": [s3_object(bucket, key, "model")], "outputs": []}
    return {"inputs": [], "outputs": []}


def operator_lineage(record: Mapping[str, Any] | None) -> OperatorLineage:
    """The provider's ``OperatorLineage`` of a lineage record (imports the provider).

    :param record: ``{"inputs": [...], "outputs": [...]}`` of :func:`s3_object` and
        :func:`endpoint` dicts, or ``None`` (no lineage).
    """
    from airflow.providers.openlineage.extractors.base import OperatorLineage

    record = record or {}
    return OperatorLineage(inputs=[_dataset(d) for d in record.get("inputs") or []],
                           outputs=[_dataset(d) for d in record.get("outputs") or []])


def _dataset(item: Mapping[str, Any]) -> Any:
    """One record entry as an OpenLineage dataset with its facets."""
    from openlineage.client.event_v2 import Dataset
    from openlineage.client.facet_v2 import (
        dataset_type_dataset,
        dataset_version_dataset,
        symlinks_dataset,
    )
    from openlineage.client.naming.dataset import S3

    facets: dict[str, Any] = {}
    if "bucket" in item:
        naming = S3(bucket_name=item["bucket"], object_key=item["key"])
        kind = item["kind"]
        kind_facet = dataset_type_dataset.DatasetTypeDatasetFacet
        facets["datasetType"] = (kind_facet(datasetType="MODEL") if kind == "model"
                                 else kind_facet(datasetType="FILE", subType=kind))
        if item.get("sha256"):
            facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
                datasetVersion=str(item["sha256"]))
        return Dataset(namespace=naming.get_namespace(), name=naming.get_name(), facets=facets)
    links = [symlinks_dataset.Identifier(
        namespace=f"arn:{item['partition']}:cloudformation:{item['region']}:{item['account']}",
        name=f"stack/{item['stack_name']}", type="STACK")]
    if item.get("url"):
        scheme, _, rest = str(item["url"]).partition("://")
        host, _, path = rest.partition("/")
        links.append(symlinks_dataset.Identifier(namespace=f"{scheme}://{host}",
                                                 name=f"/{path}", type="URL"))
    facets["symlinks"] = symlinks_dataset.SymlinksDatasetFacet(identifiers=links)
    if item.get("version") is not None:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(
            datasetVersion=str(item["version"]))
    facets[ENDPOINT_FACET] = _endpoint_facet_class()(
        stackName=item["stack_name"], region=item["region"], url=item.get("url"),
        frontDoor=item.get("front_door"), endpointAuth=item.get("endpoint_auth"),
        functionName=item.get("function_name"), alias=item.get("alias"),
        version=item.get("version"), previousVersion=item.get("previous"),
        serving=item.get("serving"))
    return Dataset(namespace=f"{ENDPOINT_SCHEME}://{item['region']}", name=item["stack_name"],
                   facets=facets)


@cache
def _endpoint_facet_class() -> Any:
    """The custom facet :data:`ENDPOINT_FACET` (an attrs class on the client's base, built
    on first use so that importing this module never imports the client)."""
    import attr
    from openlineage.client.generated.base import DatasetFacet

    @attr.define
    class TdvEndpointDatasetFacet(DatasetFacet):
        """A deployed tdv-airflow endpoint: its stack, URL, front door (``rest``, ``http``,
        ``url``), auth mode (``AWS_IAM``, ``API_KEY``, ``NONE``: never a key), the alias
        ``live``, its version and previous version, and what each serving version runs
        (``version``, ``share``, ``model`` URI, ``modelSha256``)."""

        stackName: str  # noqa: N815 (OpenLineage facets are camelCase)
        region: str
        url: str | None = attr.field(default=None)
        frontDoor: str | None = attr.field(default=None)  # noqa: N815
        endpointAuth: str | None = attr.field(default=None)  # noqa: N815
        functionName: str | None = attr.field(default=None)  # noqa: N815
        alias: str | None = attr.field(default=None)
        version: str | None = attr.field(default=None)
        previousVersion: str | None = attr.field(default=None)  # noqa: N815
        serving: list[dict[str, Any]] | None = attr.field(default=None)

        @staticmethod
        def _get_schema() -> str:
            return ENDPOINT_FACET_SCHEMA_URL

    return TdvEndpointDatasetFacet


class OpenLineageMixin:
    """Gives a task the OpenLineage provider's two methods. Mix it in first
    (``class Op(OpenLineageMixin, AwsConnectionMixin)``); the task sets ``self._lineage``
    (a record of :func:`of_prepare`, :func:`of_create` or :func:`of_promote`) before it
    returns. A task that failed or set nothing reports what its arguments name
    (:func:`on_start`).
    """

    _lineage: dict[str, Any] | None = None

    def get_openlineage_facets_on_start(self) -> OperatorLineage:
        """The inputs known from the task's rendered arguments."""
        return operator_lineage(on_start(self))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The inputs and outputs the task recorded while it ran.

        :param task_instance: the finished task instance (not read: no XCom is pulled in
            the listener, which may run in a fork of the task's process).
        """
        return operator_lineage(self._lineage if self._lineage is not None else on_start(self))
