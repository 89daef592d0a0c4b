"""Read and check the CloudFormation template, give its API deployments the API's
revision, and build its parameters.

A custom template (``template_stack_local_path``) must declare the parameters tdv-airflow
passes and the outputs it reads; this is checked before anything is uploaded.

**API revisions.** An ``AWS::ApiGateway::Deployment`` is a snapshot of the API's methods
taken when it is created; CloudFormation updates a changed method in place but creates
no new deployment unless the deployment resource is replaced, and changing its
``Description`` updates it without replacement. A method or integration change brought
by a new template would then never reach the stage. So every deployment marked with the
metadata key :data:`REVISION_METADATA` gets the API's revision (:func:`api_revision`, a
digest of every resource a deployment snapshots) appended to its logical id when the
template is prepared (:func:`with_api_revision`): a changed API is a new logical id, a
new deployment that the stage then serves, and the old one is deleted when the update
completes; an unchanged API keeps its deployment.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tdv_airflow.exceptions import TemplateError

#: CloudFormation's limit for a template given by URL.
MAX_TEMPLATE_URL_BYTES = 1_000_000
#: Parameters tdv-airflow always passes; a template must declare them all.
REQUIRED_PARAMETERS = (
    "ArtifactBucket", "ModelKey", "ModelSha256", "PreproKey", "PreproSha256",
    "CodeKey", "CodeSha256", "LayerKey", "LayerSha256", "Runtime",
    "PicklePythonVersion", "DillVersion", "FunctionName",
)
#: Outputs the sensor and ``Deploy.deploy()`` read.
REQUIRED_OUTPUTS = ("ApiName", "ApiEndpoint")
#: Metadata key marking a deployment whose logical id carries the API's revision.
REVISION_METADATA = "tdv-airflow:api-revision"
#: Resource types whose settings an API Gateway deployment snapshots.
SNAPSHOT_TYPES = frozenset({
    "AWS::ApiGateway::RestApi", "AWS::ApiGateway::Resource", "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Model", "AWS::ApiGateway::RequestValidator",
    "AWS::ApiGateway::Authorizer", "AWS::ApiGateway::GatewayResponse",
    "AWS::ApiGateway::DocumentationPart",
})
#: Hex digits of the revision appended to a deployment's logical id.
REVISION_LENGTH = 12


def _load_yaml(text: str) -> Any:
    import yaml

    class _CfnLoader(yaml.SafeLoader):
        """YAML loader that accepts CloudFormation's short forms (``!Ref`` ...)."""

    def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        # The short form's long form: !Ref and !Condition keep their name, the others
        # are Fn::<name>; !GetAtt a.b is Fn::GetAtt [a, b].
        name = suffix if suffix in ("Ref", "Condition") else f"Fn::{suffix}"
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if suffix == "GetAtt" and isinstance(value, str):
                return {name: value.split(".", 1)}
            return {name: value}
        if isinstance(node, yaml.SequenceNode):
            return {name: loader.construct_sequence(node, deep=True)}
        return {name: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]

    _CfnLoader.add_multi_constructor("!", _any_tag)
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass


def parse_template(data: bytes, source: str) -> dict[str, Any]:
    """Parse a JSON or YAML CloudFormation template.

    :param data: the template's bytes.
    :param source: where it came from, for messages.
    :raises TemplateError: when it is too large, not JSON/YAML, or not a mapping with
        ``Resources``.
    """
    if len(data) > MAX_TEMPLATE_URL_BYTES:
        raise TemplateError(f"template {source!r} is {len(data)} bytes; CloudFormation "
                            f"accepts at most {MAX_TEMPLATE_URL_BYTES} bytes by URL")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {source!r} is not UTF-8 text") from exc
    try:
        body = json.loads(text) if text.lstrip().startswith("{") else _load_yaml(text)
    except Exception as exc:  # json and yaml raise different errors
        raise TemplateError(f"template {source!r} is neither valid JSON nor YAML: {exc}") from exc
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"template {source!r} is not a CloudFormation template: "
                            "expected a mapping with a 'Resources' section")
    return body


def read_template(path: str | Path) -> tuple[bytes, dict[str, Any]]:
    """Read, parse and check a template file.

    :param path: the template file.
    :returns: its bytes and its parsed body.
    :raises TemplateError: when the file is missing or the template lacks what we need.
    """
    p = Path(path)
    if not p.is_file():
        raise TemplateError(f"template_stack_local_path {str(p)!r} does not exist or is "
                            "not a file")
    data = p.read_bytes()
    body = parse_template(data, str(p))
    declared = body.get("Parameters") or {}
    missing = [name for name in REQUIRED_PARAMETERS if name not in declared]
    if missing:
        raise TemplateError(f"template {str(p)!r} does not declare the parameters "
                            f"{missing} that tdv-airflow passes")
    outputs = body.get("Outputs") or {}
    missing = [name for name in REQUIRED_OUTPUTS if name not in outputs]
    if missing:
        raise TemplateError(f"template {str(p)!r} lacks the outputs {missing} "
                            "that tdv-airflow reads")
    return data, body


def build_parameters(body: Mapping[str, Any], values: Mapping[str, Any]) -> list[dict[str, str]]:
    """CloudFormation ``Parameters`` for ``values``, each checked against the template.

    :param body: the parsed template.
    :param values: parameter name to value; lists become comma-separated strings and
        ``None`` values are left out (the template's default applies).
    :raises TemplateError: when a value names a parameter the template does not declare.
    """
    declared = body.get("Parameters") or {}
    unknown = sorted(name for name in values if name not in declared)
    if unknown:
        raise TemplateError(f"parameters {unknown} are not declared by the template "
                            f"(it declares {sorted(declared)})")
    params = []
    for name, value in values.items():
        if value is None:
            continue
        text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        params.append({"ParameterKey": name, "ParameterValue": text})
    return params


def api_revision(body: Mapping[str, Any]) -> str:
    """A digest of what an API Gateway deployment snapshots: the type, properties,
    condition and dependencies of every :data:`SNAPSHOT_TYPES` resource, and the
    template's conditions (metadata and layout do not count).

    :param body: the parsed template.
    :returns: :data:`REVISION_LENGTH` lowercase hex digits.
    """
    resources = body.get("Resources") or {}
    snapshot = {name: {key: resource.get(key)
                       for key in ("Type", "Properties", "Condition", "DependsOn")}
                for name, resource in resources.items()
                if isinstance(resource, Mapping) and resource.get("Type") in SNAPSHOT_TYPES}
    text = json.dumps({"Resources": snapshot, "Conditions": body.get("Conditions") or {}},
                      sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:REVISION_LENGTH]


def _renamed(node: Any, names: Mapping[str, str]) -> Any:
    """``node`` with every reference (``Ref``, ``Fn::GetAtt``, ``DependsOn``, ``${..}`` in
    ``Fn::Sub``) to a logical id in ``names`` pointing at its new id.

    :param node: a piece of the template.
    :param names: old logical id -> new logical id.
    """
    if isinstance(node, list):
        return [_renamed(item, names) for item in node]
    if isinstance(node, str):
        return node
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            out[key] = names.get(value, value)
        elif key == "Fn::GetAtt" and isinstance(value, list) and value:
            out[key] = [names.get(value[0], value[0]), *value[1:]]
        elif key == "DependsOn":
            out[key] = (names.get(value, value) if isinstance(value, str)
                        else [names.get(v, v) for v in value])
        elif key == "Fn::Sub":
            out[key] = _renamed_sub(value, names)
        else:
            out[key] = _renamed(value, names)
    return out


def _renamed_sub(value: Any, names: Mapping[str, str]) -> Any:
    """An ``Fn::Sub`` value with ``${Old}`` / ``${Old.Attr}`` renamed (variables given in
    its own map shadow logical ids and are left alone)."""
    text, variables = (value[0], value[1]) if isinstance(value, list) else (value, {})
    if not isinstance(text, str):
        return _renamed(value, names)

    def rename(match: re.Match[str]) -> str:
        name, rest = match.group(1), match.group(2) or ""
        if name in variables:
            return match.group(0)
        return "${" + names.get(name, name) + rest + "}"

    text = re.sub(r"\$\{([A-Za-z0-9]+)(\.[A-Za-z0-9.]+)?\}", rename, text)
    return [text, _renamed(variables, names)] if isinstance(value, list) else text


def with_api_revision(data: bytes, body: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """The template with :func:`api_revision` appended to the logical id of every
    deployment marked with :data:`REVISION_METADATA`, and every reference to it updated.

    A template without such a deployment is returned as it is (same bytes); one with
    them is written as JSON.

    :param data: the template's bytes.
    :param body: its parsed body.
    :returns: the bytes to upload and their parsed body.
    """
    resources = body.get("Resources") or {}
    marked = [name for name, resource in resources.items()
              if isinstance(resource, Mapping)
              and resource.get("Type") == "AWS::ApiGateway::Deployment"
              and REVISION_METADATA in (resource.get("Metadata") or {})]
    if not marked:
        return data, dict(body)
    revision = api_revision(body)
    names = {name: f"{name}{revision}" for name in marked}
    renamed = {key: value for key, value in body.items() if key not in ("Resources", "Outputs")}
    renamed["Resources"] = {names.get(name, name): _renamed(resource, names)
                            for name, resource in resources.items()}
    if "Outputs" in body:
        renamed["Outputs"] = _renamed(body["Outputs"], names)
    ordered = {key: renamed[key] for key in body if key in renamed}
    return (json.dumps(ordered, indent=2, ensure_ascii=False) + "\n").encode(), ordered
