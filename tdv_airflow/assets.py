"""How tdv-airflow names its Airflow Assets, and what their events carry.

Two kinds of asset:

* **the model**, an object (or a key prefix, a "model line") in S3:
  ``s3://{bucket}/{key-or-prefix}``, the Amazon provider's URI, so the same asset is
  meant whoever declares it (:func:`model_asset`). A training task publishes it with the
  key it wrote and that object's SHA-256 in the event's ``extra``
  (:func:`model_event_extra`); a DAG scheduled on it reads them back from its triggering
  event (:func:`model_from_events`), not from a naming convention.
* **the endpoint**, a deployed stack: ``tdv-endpoint://{region}/{stack}``
  (:func:`endpoint_asset`). Not its ``https`` URL: a consumer must be able to name the
  endpoint before it exists, and the URL of one stack changes with its front door (REST
  API, HTTP API, function URL) while the stack stays the same endpoint. The scheme is
  registered by this provider (``asset-uris`` in :mod:`tdv_airflow.provider_info`,
  checked by :func:`sanitize_endpoint_uri`), as AIP-60 asks of a provider's own scheme.

The task that makes a version live (:class:`~tdv_airflow.operators.PromoteOperator`,
:class:`~tdv_airflow.operators.RollbackOperator`) declares the alias
:data:`ENDPOINT_ALIAS` as an outlet and, when it succeeds, adds the endpoint asset
through it with :func:`endpoint_event_extra`: the stack name is usually templated, so
the asset is only known when the task runs. The extra holds nothing secret: no API key,
no credentials, no environment variable other than the model's key and digest.

No module of the core imports this one (it is Airflow's vocabulary).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

if TYPE_CHECKING:
    from urllib.parse import SplitResult

#: The URI scheme of a deployed endpoint (registered in the provider's ``asset-uris``).
ENDPOINT_SCHEME = "tdv-endpoint"
#: The asset alias through which every tdv-airflow task that changes what an endpoint
#: serves adds the endpoint's asset event (a DAG may schedule on the alias: any endpoint).
ENDPOINT_ALIAS = "tdv-airflow-endpoints"
#: The keys of a model asset event's ``extra``.
MODEL_EXTRA_KEYS = ("bucket", "model_s3_key", "model_sha256")

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_STACK = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def model_asset(bucket: str, key: str) -> Asset:
    """The asset of a model object, or of a key prefix under which each training run
    writes a new object: ``s3://{bucket}/{key}``.

    :param bucket: the bucket.
    :param key: the object's key or the prefix (leading and trailing ``/`` dropped).
    :raises InvalidInputError: when either is empty or not a string.
    """
    from tdv_airflow.exceptions import InvalidInputError

    if not isinstance(bucket, str) or not bucket or "/" in bucket:
        raise InvalidInputError(f"invalid bucket {bucket!r} for a model asset: expected a "
                                "bucket name such as 'my-models'")
    if not isinstance(key, str) or not key.strip("/"):
        raise InvalidInputError(f"invalid key {key!r} for a model asset: expected an S3 key "
                                "or prefix such as 'models/iris'")
    return Asset(uri=f"s3://{bucket}/{key.strip('/')}")


def endpoint_asset(region: str, stack_name: str) -> Asset:
    """The asset of the endpoint a stack deploys: ``tdv-endpoint://{region}/{stack}``.

    :param region: the stack's region, e.g. ``eu-west-1``.
    :param stack_name: the stack's name.
    :raises InvalidInputError: naming the bad value.
    """
    from tdv_airflow.exceptions import InvalidInputError

    if not isinstance(region, str) or not _REGION.match(region):
        raise InvalidInputError(f"invalid region {region!r} for an endpoint asset: expected an "
                                "AWS region such as 'eu-west-1'")
    if not isinstance(stack_name, str) or not _STACK.match(stack_name):
        raise InvalidInputError(f"invalid stack name {stack_name!r} for an endpoint asset: "
                                "expected ^[A-Za-z][A-Za-z0-9-]{0,127}$")
    return Asset(uri=f"{ENDPOINT_SCHEME}://{region}/{stack_name}")


def sanitize_endpoint_uri(uri: SplitResult) -> SplitResult:
    """Airflow's check of a ``tdv-endpoint`` URI (the provider's ``asset-uris`` handler):
    a region as the host and one stack name as the path.

    :param uri: the URI, split (Airflow already lower-cased the scheme and dropped a
        trailing ``/``, the query order and the fragment).
    :raises ValueError: naming what is wrong (Airflow's contract for handlers).
    """
    stack = uri.path.lstrip("/")
    if not _REGION.match(uri.netloc or ""):
        raise ValueError(f"{ENDPOINT_SCHEME} URI {uri.geturl()!r} must name an AWS region as "
                         f"its host: {ENDPOINT_SCHEME}://eu-west-1/my-stack")
    if not _STACK.match(stack) or uri.query:
        raise ValueError(f"{ENDPOINT_SCHEME} URI {uri.geturl()!r} must name one stack "
                         f"(^[A-Za-z][A-Za-z0-9-]{{0,127}}$) as its path and nothing else: "
                         f"{ENDPOINT_SCHEME}://eu-west-1/my-stack")
    return uri


def with_asset(assets: Any, asset: Asset | AssetAlias) -> list[Any]:
    """A task's ``inlets`` or ``outlets`` with ``asset`` added once (the user's own ones
    kept first).

    :param assets: the task's argument (``None``, one, or a list).
    :param asset: the asset or alias to add.
    """
    given = [] if assets is None else list(assets) if isinstance(assets, list | tuple) \
        else [assets]
    return given if asset in given else [*given, asset]


def model_event_extra(bucket: str, model_s3_key: str, model_sha256: str) -> dict[str, str]:
    """The ``extra`` of a model asset event: where the model is and its digest.

    :param bucket: the bucket.
    :param model_s3_key: the key the training task wrote.
    :param model_sha256: the object's SHA-256 (64 hex digits).
    :raises InvalidInputError: naming the bad value.
    """
    from tdv_airflow.exceptions import InvalidInputError

    model_asset(bucket, model_s3_key)  # checks both
    if not isinstance(model_sha256, str) or not _SHA256.match(model_sha256):
        raise InvalidInputError(f"invalid model_sha256 {model_sha256!r}: expected the "
                                "object's SHA-256 as 64 lowercase hex digits")
    return {"bucket": bucket, "model_s3_key": model_s3_key.strip("/"),
            "model_sha256": model_sha256}


def model_from_events(events: Sequence[Any], asset: Asset) -> dict[str, str]:
    """The model named by the newest of a run's triggering events of ``asset``.

    Several events may trigger one run (models published while the previous deploy ran):
    the newest wins, the older ones are logged by the caller if it wishes.

    :param events: ``context["triggering_asset_events"][asset]`` (objects with
        ``extra`` and ``timestamp``).
    :param asset: the model asset, for the messages.
    :returns: ``{"bucket", "model_s3_key", "model_sha256"}``.
    :raises InvalidInputError: when no event names a model (e.g. a manual run).
    """
    from tdv_airflow.exceptions import InvalidInputError

    if not events:
        raise InvalidInputError(
            f"no asset event of {asset.uri} triggered this run (a manual trigger?): it "
            "deploys the model a training run published; trigger that DAG instead")
    newest = max(events, key=lambda event: event.timestamp)
    extra: Mapping[str, Any] = newest.extra or {}
    missing = [key for key in MODEL_EXTRA_KEYS if not extra.get(key)]
    if missing:
        raise InvalidInputError(
            f"the asset event of {asset.uri} at {newest.timestamp} carries no {missing} in "
            f"its extra ({dict(extra)!r}): expected {MODEL_EXTRA_KEYS} "
            "(tdv_airflow.assets.model_event_extra)")
    return model_event_extra(extra["bucket"], extra["model_s3_key"], extra["model_sha256"])


def endpoint_event_extra(stack_name: str, region: str, endpoint_url: str | None,
                         live: Mapping[str, Any]) -> dict[str, Any]:
    """The ``extra`` of an endpoint asset event: which stack and version serve which
    model, and where (nothing secret).

    :param stack_name: the stack.
    :param region: its region.
    :param endpoint_url: the URL callers use (``None`` when the stack names none yet).
    :param live: :func:`tdv_airflow.core.rollout.describe_live` of the stack's function.
    :returns: ``{"stack", "region", "version", "endpoint_url", "model_s3_key",
        "model_sha256", "serving": [{"version", "share", "model_s3_key",
        "model_sha256"}]}``; the model of ``version``, the one taking the traffic.
    """
    version = live.get("version")
    serving = [{"version": s.get("version"), "share": s.get("share"),
                "model_s3_key": s.get("model_s3_key"), "model_sha256": s.get("model_sha256")}
               for s in live.get("serving") or []]
    current = next((s for s in serving if s["version"] == version), {})
    return {"stack": stack_name, "region": region, "version": version,
            "endpoint_url": endpoint_url, "model_s3_key": current.get("model_s3_key"),
            "model_sha256": current.get("model_sha256"), "serving": serving}


def announce_live(context: Any, alias: str, clients: Any, stack: Mapping[str, Any],
                  live: Mapping[str, Any]) -> dict[str, Any]:
    """Add the endpoint's asset through the task's outlet alias ``alias``, its extra
    saying what is live now (Airflow records the event when the task succeeds).

    :param context: the task context.
    :param alias: the name of an :class:`AssetAlias` among the task's outlets.
    :param clients: the task's :class:`~tdv_airflow.core.clients.AwsClients` (its region).
    :param stack: the stack's ``describe_stacks`` entry.
    :param live: :func:`tdv_airflow.core.rollout.describe_live` of its function.
    :returns: the event's extra (also when the context has no ``outlet_events``, as in a
        direct ``execute`` call outside the task runner: then no event is added).
    """
    from tdv_airflow.core.stacks import outputs_of

    stack_name, region = str(stack["StackName"]), str(clients.region_name)
    endpoint_url = live.get("endpoint") or outputs_of(stack).get("ApiEndpoint")
    extra = endpoint_event_extra(stack_name, region, endpoint_url, live)
    asset = endpoint_asset(region, stack_name)
    events = context.get("outlet_events")
    if events is not None:
        events[AssetAlias(alias)].add(asset, extra=extra)
    return extra
