"""Read and check the CloudFormation template, and build its parameters.

A custom template (``template_stack_local_path``) must declare the parameters tdv-airflow
passes and the outputs it reads; this is checked before anything is uploaded.
"""

from __future__ import annotations

import json
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


def _load_yaml(text: str) -> Any:
    import yaml

    class _CfnLoader(yaml.SafeLoader):
        """YAML loader that accepts CloudFormation's short forms (``!Ref`` ...)."""

    def _any_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return {suffix: loader.construct_scalar(node)}
        if isinstance(node, yaml.SequenceNode):
            return {suffix: loader.construct_sequence(node)}
        return {suffix: loader.construct_mapping(node)}  # type: ignore[arg-type]

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
