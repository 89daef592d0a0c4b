"""The IAM policies tdv-airflow needs, and the hardening checks of a stack template.

Policies (published in ``docs/iam.md`` and as JSON next to it; a test keeps the files
equal to what these functions return with their placeholder defaults):

- :func:`airflow_identity_policy`: what the identity behind the Airflow connection (or
  the ``Deploy`` credentials) needs for the calls tdv-airflow makes itself;
- :func:`cloudformation_service_role_policy`: what CloudFormation needs to create the
  stack's resources: the policy of the service role (``role_arn``), or, without one,
  further permissions of the caller, since CloudFormation then acts with them;
- :func:`cloudformation_service_role_trust_policy`: who may assume the service role.

Every argument defaults to a ``${Placeholder}``, so the documents can also be pasted into
a CloudFormation ``Fn::Sub``.

Template checks: :func:`check_template` reports the hardening settings that no scanner
(cfn-lint, checkov) has a rule for, or that scanners only see with the parameters'
defaults: stage tracing, access logging and its format, method throttling, no data
trace, the method's authentication under every ``EndpointAuth``, a deployment per auth
mode, usage plan limits, log retention, reserved concurrency, a timeout under the
integration timeout, and no wildcard resource in the function's role.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The API Gateway REST integration timeout, in seconds; the function must end sooner.
INTEGRATION_TIMEOUT_SECONDS = 29
_VERSION = "2012-10-17"


def _arn(partition: str, service: str, region: str, account_id: str, resource: str) -> str:
    return f"arn:{partition}:{service}:{region}:{account_id}:{resource}"


def airflow_identity_policy(
    *,
    bucket: str = "${Bucket}",
    model_prefix: str = "${ModelPrefix}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
    service_role_name: str | None = "${ServiceRoleName}",
) -> dict[str, Any]:
    """The policy of the identity that runs prepare, create, the status checks, the
    local run and the API key lookup.

    :param bucket: the bucket holding the models and the artifacts.
    :param model_prefix: the key prefix of the models (e.g. ``models/``; ``""`` for any).
    :param artifact_prefix: the ``s3_prefix`` of the artifacts (default ``tdv-airflow``).
    :param stack_prefix: what every stack name starts with (e.g. ``tdv-``).
    :param account_id: the AWS account.
    :param region: the region of the stacks.
    :param partition: ``aws``, ``aws-cn`` or ``aws-us-gov``.
    :param service_role_name: the CloudFormation service role passed as ``role_arn``;
        ``None`` when no service role is used (no ``iam:PassRole`` statement).
    """
    s3 = f"arn:{partition}:s3:::{bucket}"
    stacks = _arn(partition, "cloudformation", region, account_id, f"stack/{stack_prefix}*/*")
    statements: list[dict[str, Any]] = [
        {"Sid": "FindArtifactBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [s3]},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{model_prefix}*"]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "WriteArtifacts", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "ReadDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeStackResources"],
         "Resource": [stacks]},
        {"Sid": "ChangeDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:CreateStack", "cloudformation:UpdateStack",
                    "cloudformation:DeleteStack", "cloudformation:TagResource"],
         "Resource": [stacks]},
    ]
    if service_role_name is not None:
        statements.append(
            {"Sid": "PassServiceRole", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": [f"arn:{partition}:iam::{account_id}:role/{service_role_name}"],
             "Condition": {"StringEquals": {
                 "iam:PassedToService": "cloudformation.amazonaws.com"}}})
    statements += [
        {"Sid": "ReadDeployedFunctions", "Effect": "Allow",
         "Action": ["lambda:GetFunction", "lambda:GetFunctionConfiguration"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"function:{stack_prefix}*")]},
        {"Sid": "ReadDeployedLayers", "Effect": "Allow", "Action": ["lambda:GetLayerVersion"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"layer:{stack_prefix}*:*")]},
        {"Sid": "ReadApiKeys", "Effect": "Allow", "Action": ["apigateway:GET"],
         "Resource": [f"arn:{partition}:apigateway:{region}::/apikeys/*"]},
    ]
    return {"Version": _VERSION, "Statement": statements}


def cloudformation_service_role_policy(
    *,
    bucket: str = "${Bucket}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
) -> dict[str, Any]:
    """What CloudFormation does while it creates, updates and deletes a deployment stack.

    The service role's policy; without a service role, the caller needs these too.

    :param bucket: the artifact bucket.
    :param artifact_prefix: the artifacts' ``s3_prefix``.
    :param stack_prefix: what every stack (hence function, role, layer and log group)
        name starts with.
    :param account_id: the AWS account.
    :param region: the region.
    :param partition: the partition.
    """
    roles = f"arn:{partition}:iam::{account_id}:role/{stack_prefix}*"
    logs = _arn(partition, "logs", region, account_id, "log-group:")
    apigw = f"arn:{partition}:apigateway:{region}::"
    return {"Version": _VERSION, "Statement": [
        {"Sid": "ManageFunctionRoles", "Effect": "Allow",
         "Action": ["iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                    "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy",
                    "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:TagRole",
                    "iam:UntagRole"],
         "Resource": [roles]},
        {"Sid": "PassFunctionRoles", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [roles],
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "ManageFunctions", "Effect": "Allow",
         "Action": ["lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction",
                    "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration", "lambda:PutFunctionConcurrency",
                    "lambda:DeleteFunctionConcurrency", "lambda:AddPermission",
                    "lambda:RemovePermission", "lambda:GetPolicy", "lambda:TagResource",
                    "lambda:UntagResource", "lambda:ListTags"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"function:{stack_prefix}*")]},
        {"Sid": "ManageLayers", "Effect": "Allow",
         "Action": ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion",
                    "lambda:GetLayerVersion"],
         "Resource": [_arn(partition, "lambda", region, account_id, f"layer:{stack_prefix}*"),
                      _arn(partition, "lambda", region, account_id,
                           f"layer:{stack_prefix}*:*")]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:{partition}:s3:::{bucket}/{artifact_prefix}/*"]},
        {"Sid": "ManageLogGroups", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy",
                    "logs:DeleteRetentionPolicy", "logs:TagResource", "logs:UntagResource",
                    "logs:ListTagsForResource"],
         "Resource": [f"{logs}/aws/lambda/{stack_prefix}*",
                      f"{logs}/aws/apigateway/{stack_prefix}*"]},
        {"Sid": "ListLogGroups", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": [f"{logs}*"]},
        {"Sid": "ManageRestApis", "Effect": "Allow",
         "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PUT",
                    "apigateway:PATCH", "apigateway:DELETE"],
         "Resource": [f"{apigw}/restapis", f"{apigw}/restapis/*", f"{apigw}/apikeys",
                      f"{apigw}/apikeys/*", f"{apigw}/usageplans", f"{apigw}/usageplans/*",
                      f"{apigw}/tags/*"]},
    ]}


def cloudformation_service_role_trust_policy(account_id: str = "${AccountId}"
                                             ) -> dict[str, Any]:
    """The trust policy of the service role: CloudFormation, for this account only.

    :param account_id: the AWS account.
    """
    return {"Version": _VERSION, "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}]}


# ------------------------------------------------------------------ template checks

@dataclass(frozen=True)
class Finding:
    """A hardening setting the template lacks.

    :param rule: the rule's name (e.g. ``"stage-throttling"``).
    :param resource: the logical id concerned (``""`` for the template).
    :param message: what is wrong.
    """

    rule: str
    resource: str
    message: str


_NEEDED_LOG_FIELDS = ("$context.requestId", "$context.status")
_LATENCY_FIELDS = ("$context.responseLatency", "$context.integrationLatency")
#: Access log variables that would write bodies or the API key's value.
_FORBIDDEN_LOG_FIELDS = re.compile(r"\$input|\$context\.identity\.apiKey(?!Id)|"
                                   r"\$context\.requestOverride|\$context\.responseOverride")


class _Evaluator:
    """Resolves ``Ref``/``Fn::If`` against parameter values (defaults unless given)."""

    def __init__(self, body: Mapping[str, Any], values: Mapping[str, str]) -> None:
        self.body = body
        params = body.get("Parameters") or {}
        self.values = {name: str(spec.get("Default")) for name, spec in params.items()
                       if "Default" in spec}
        self.values.update(values)
        self.conditions = body.get("Conditions") or {}

    def condition(self, name: str) -> bool:
        return self._truth(self.conditions.get(name, False))

    def _truth(self, expr: Any) -> bool:
        if isinstance(expr, bool):
            return expr
        if isinstance(expr, Mapping):
            if "Condition" in expr:
                return self.condition(expr["Condition"])
            if "Fn::Equals" in expr:
                a, b = expr["Fn::Equals"]
                return str(self.value(a)) == str(self.value(b))
            if "Fn::Not" in expr:
                return not self._truth(expr["Fn::Not"][0])
            if "Fn::And" in expr:
                return all(self._truth(e) for e in expr["Fn::And"])
            if "Fn::Or" in expr:
                return any(self._truth(e) for e in expr["Fn::Or"])
        return False

    def value(self, expr: Any) -> Any:
        if isinstance(expr, Mapping):
            if set(expr) == {"Ref"} and expr["Ref"] in self.values:
                return self.values[expr["Ref"]]
            if "Fn::If" in expr:
                name, yes, no = expr["Fn::If"]
                return self.value(yes if self.condition(name) else no)
        return expr

    def active(self, resource: Mapping[str, Any]) -> bool:
        name = resource.get("Condition")
        return name is None or self.condition(name)


def evaluate(body: Mapping[str, Any], expr: Any,
             parameters: Mapping[str, str] | None = None) -> Any:
    """``expr`` with its ``Ref`` to parameters and ``Fn::If`` resolved.

    :param body: the parsed template (its parameter defaults and conditions).
    :param expr: a property value, e.g. a method's ``AuthorizationType``.
    :param parameters: parameter values overriding the defaults.
    """
    return _Evaluator(body, parameters or {}).value(expr)


def _resources(body: Mapping[str, Any], kind: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [(name, r) for name, r in (body.get("Resources") or {}).items()
            if isinstance(r, Mapping) and r.get("Type") == kind]


def _props(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    return resource.get("Properties") or {}


def check_template(body: Mapping[str, Any]) -> list[Finding]:
    """The hardening settings ``body`` lacks (empty when it has them all).

    :param body: a parsed CloudFormation template.
    """
    findings: list[Finding] = []
    add = findings.append
    default = _Evaluator(body, {})
    for name, stage in _resources(body, "AWS::ApiGateway::Stage"):
        props = _props(stage)
        if default.value(props.get("TracingEnabled")) not in (True, "true"):
            add(Finding("stage-tracing", name, "X-Ray tracing (TracingEnabled) is off"))
        _check_access_log(name, props.get("AccessLogSetting"), add)
        settings = [s for s in props.get("MethodSettings") or [] if isinstance(s, Mapping)]
        if not any(s.get("HttpMethod") == "*" and s.get("ResourcePath") == "/*"
                   and "ThrottlingBurstLimit" in s and "ThrottlingRateLimit" in s
                   for s in settings):
            add(Finding("stage-throttling", name, "no method-level throttling (MethodSettings "
                        "for /* and * with ThrottlingBurstLimit and ThrottlingRateLimit)"))
        if any(default.value(s.get("DataTraceEnabled")) in (True, "true") for s in settings):
            add(Finding("stage-no-data-trace", name,
                        "DataTraceEnabled logs full request and response bodies"))
    _check_method_auth(body, add)
    for name, plan in _resources(body, "AWS::ApiGateway::UsagePlan"):
        props = _props(plan)
        throttle, quota = props.get("Throttle") or {}, props.get("Quota") or {}
        if not ("BurstLimit" in throttle and "RateLimit" in throttle and "Limit" in quota):
            add(Finding("usage-plan-limits", name, "the usage plan needs a Throttle "
                        "(BurstLimit, RateLimit) and a Quota (Limit)"))
    for name, group in _resources(body, "AWS::Logs::LogGroup"):
        if "RetentionInDays" not in _props(group):
            add(Finding("log-retention", name, "the log group keeps logs forever "
                        "(no RetentionInDays)"))
    for name, function in _resources(body, "AWS::Lambda::Function"):
        _check_function(body, name, _props(function), add)
    for name, role in _resources(body, "AWS::IAM::Role"):
        for policy in _props(role).get("Policies") or []:
            for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
                resources = statement.get("Resource")
                listed = resources if isinstance(resources, list) else [resources]
                if statement.get("Effect") == "Allow" and "*" in listed:
                    add(Finding("no-wildcard-resource", name,
                                f"statement {statement.get('Sid', '?')!r} allows "
                                f"{statement.get('Action')} on Resource '*'"))
    return findings


def _check_access_log(name: str, setting: Any, add: Any) -> None:
    if not isinstance(setting, Mapping) or not setting.get("DestinationArn"):
        add(Finding("stage-access-log", name, "no access logging (AccessLogSetting with a "
                    "DestinationArn)"))
        return
    fmt = setting.get("Format")
    if not isinstance(fmt, str):
        add(Finding("stage-access-log", name, "the access log needs a literal Format"))
        return
    missing = [f for f in _NEEDED_LOG_FIELDS if f not in fmt]
    if missing or not any(f in fmt for f in _LATENCY_FIELDS):
        add(Finding("stage-access-log", name, f"the access log format lacks {missing or ''} "
                    "or a latency ($context.responseLatency)"))
    bad = _FORBIDDEN_LOG_FIELDS.findall(fmt)
    if bad:
        add(Finding("stage-access-log", name, f"the access log format writes {sorted(set(bad))}"
                    " (bodies or the API key's value)"))


def _check_method_auth(body: Mapping[str, Any], add: Any) -> None:
    params = body.get("Parameters") or {}
    auth = params.get("EndpointAuth")
    modes: list[str | None] = list(auth.get("AllowedValues") or []) if auth else [None]
    if auth and auth.get("Default", "NONE") == "NONE":
        add(Finding("method-auth", "", "the EndpointAuth parameter defaults to NONE (public)"))
    key_types = ("AWS::ApiGateway::ApiKey", "AWS::ApiGateway::UsagePlan",
                 "AWS::ApiGateway::UsagePlanKey")
    for name, method in _resources(body, "AWS::ApiGateway::Method"):
        props = _props(method)
        if props.get("HttpMethod") == "OPTIONS":
            continue
        seen: dict[str | None, tuple[Any, bool]] = {}
        for mode in modes:
            ev = _Evaluator(body, {"EndpointAuth": mode} if mode else {})
            kind = ev.value(props.get("AuthorizationType"))
            key = ev.value(props.get("ApiKeyRequired")) in (True, "true")
            seen[mode] = (kind, key)
            if mode == "API_KEY":
                bound = all(any(ev.active(r) for _, r in _resources(body, t)) for t in key_types)
                if not key or not bound:
                    add(Finding("method-auth", name, "with EndpointAuth API_KEY the method "
                                "must require an API key bound by a usage plan"))
            elif mode == "AWS_IAM" and kind != "AWS_IAM":
                add(Finding("method-auth", name, f"with EndpointAuth AWS_IAM the method's "
                            f"AuthorizationType is {kind!r}"))
            elif mode is None and kind == "NONE" and not key:
                add(Finding("method-auth", name, "the method is open (AuthorizationType NONE, "
                            "no API key)"))
        if len(set(seen.values())) < 2:
            continue
        for stage_name, stage in _resources(body, "AWS::ApiGateway::Stage"):
            deployments = {str(_Evaluator(body, {"EndpointAuth": str(m)}).value(
                _props(stage).get("DeploymentId"))) for m in modes}
            if len(deployments) < len(set(seen.values())):
                add(Finding("deployment-per-auth-mode", stage_name,
                            "the method's authorization depends on EndpointAuth but the stage "
                            "serves the same deployment for different modes: a mode change "
                            "would leave the old authorization live (a deployment is a "
                            "snapshot)"))


def _check_function(body: Mapping[str, Any], name: str, props: Mapping[str, Any],
                    add: Any) -> None:
    if "ReservedConcurrentExecutions" not in props:
        add(Finding("reserved-concurrency", name, "no ReservedConcurrentExecutions (not even "
                    "an Fn::If that allows 'no reservation')"))
    timeout = props.get("Timeout", 3)
    spec = (body.get("Parameters") or {}).get(timeout["Ref"], {}) \
        if isinstance(timeout, Mapping) and set(timeout) == {"Ref"} else None
    try:
        if spec is None:
            highest = float(timeout)
        elif "AllowedValues" in spec:
            highest = max(float(v) for v in spec["AllowedValues"])
        else:
            highest = float(spec.get("MaxValue", "inf"))
    except (TypeError, ValueError):
        highest = float("inf")
    if highest >= INTEGRATION_TIMEOUT_SECONDS:
        add(Finding("function-timeout", name, f"the timeout may reach {highest:g} s, not below "
                    f"API Gateway's {INTEGRATION_TIMEOUT_SECONDS} s integration timeout"))
