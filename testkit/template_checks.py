"""Hardening checks of a CloudFormation template that no scanner has a rule for.

cfn-lint and checkov miss these, or only see them with the parameters' defaults:
stage tracing, access logging and its format, method throttling, no data trace, no
execution logging into a log group the stack does not own, the method's authentication
under every ``EndpointAuth``, a deployment per auth mode, a Lambda integration that
invokes an alias (never ``$LATEST``, which every stack update changes), usage plan
limits, log retention, reserved concurrency, a timeout under the integration timeout,
and no wildcard resource in the function's role (in either branch of an ``Fn::If``).
Used by the tests (``tests/templates``, ``tests/endpoint``); not shipped in the wheel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The API Gateway REST integration timeout, in seconds; the function must end sooner.
INTEGRATION_TIMEOUT_SECONDS = 29
#: Lambda's longest function timeout, in seconds (a function URL waits that long).
LAMBDA_MAX_TIMEOUT_SECONDS = 900


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
        if (any(default.value(s.get("LoggingLevel", "OFF")) != "OFF" for s in settings)
                and not _owns_execution_log_group(body)):
            add(Finding("execution-log-group", name,
                        "execution logging (LoggingLevel) writes to "
                        f"{EXECUTION_LOG_GROUP}{{api}}/{{stage}}, a log group API Gateway "
                        "creates with no retention and that no stack owns: set LoggingLevel "
                        "OFF, or declare that log group with RetentionInDays"))
    _check_method_auth(body, add)
    _check_integrations(body, add)
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
        policies = [p for item in _props(role).get("Policies") or [] for p in _alternatives(item)]
        for policy in (p for p in policies if isinstance(p, Mapping)):
            statements = (policy.get("PolicyDocument") or {}).get("Statement") or []
            for statement in (s for item in statements for s in _alternatives(item)):
                if not isinstance(statement, Mapping):
                    continue
                resources = statement.get("Resource")
                listed = [r for item in (resources if isinstance(resources, list)
                                         else [resources]) for r in _alternatives(item)]
                if statement.get("Effect") == "Allow" and "*" in listed:
                    add(Finding("no-wildcard-resource", name,
                                f"statement {statement.get('Sid', '?')!r} allows "
                                f"{statement.get('Action')} on Resource '*'"))
    return findings


#: The log group API Gateway writes execution logs to: ``{prefix}{api id}/{stage}``.
EXECUTION_LOG_GROUP = "API-Gateway-Execution-Logs_"


def _alternatives(expr: Any) -> list[Any]:
    """Every value ``expr`` may take: both branches of each ``Fn::If``, recursively."""
    if isinstance(expr, Mapping) and set(expr) == {"Fn::If"}:
        _, yes, no = expr["Fn::If"]
        return [*_alternatives(yes), *_alternatives(no)]
    return [expr]


def _owns_execution_log_group(body: Mapping[str, Any]) -> bool:
    """Whether the template declares a log group named like API Gateway's execution log
    group, with a retention."""
    for _, group in _resources(body, "AWS::Logs::LogGroup"):
        props = _props(group)
        name = props.get("LogGroupName")
        text = name.get("Fn::Sub") if isinstance(name, Mapping) else name
        text = text[0] if isinstance(text, list) else text
        if (isinstance(text, str) and text.startswith(EXECUTION_LOG_GROUP)
                and "RetentionInDays" in props):
            return True
    return False


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


#: How a Lambda proxy integration's URI ends when it invokes an alias or a version.
_QUALIFIED_INVOCATION = re.compile(r"\.Arn\}:[A-Za-z0-9_-]+/invocations$")


def _check_integrations(body: Mapping[str, Any], add: Any) -> None:
    for name, method in _resources(body, "AWS::ApiGateway::Method"):
        integration = _props(method).get("Integration") or {}
        uri = integration.get("Uri")
        text = uri.get("Fn::Sub") if isinstance(uri, Mapping) else uri
        text = text[0] if isinstance(text, list) else text
        if (integration.get("Type") == "AWS_PROXY" and isinstance(text, str)
                and ":lambda:path/" in text and not _QUALIFIED_INVOCATION.search(text)):
            add(Finding("integration-alias", name, "the Lambda integration invokes the "
                        "unqualified function ($LATEST): every stack update then serves "
                        "callers before it is validated; invoke an alias (FUNCTION:live)"))


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
    # a template offering a function URL (no integration timeout) may allow Lambda's 900 s:
    # the core then keeps each API's limit (core.front_door.max_timeout_seconds)
    doors = ((body.get("Parameters") or {}).get("FrontDoor") or {}).get("AllowedValues") or []
    if "URL" in doors:
        if highest > LAMBDA_MAX_TIMEOUT_SECONDS:
            add(Finding("function-timeout", name, f"the timeout may reach {highest:g} s, "
                        f"beyond Lambda's {LAMBDA_MAX_TIMEOUT_SECONDS} s"))
    elif highest >= INTEGRATION_TIMEOUT_SECONDS:
        add(Finding("function-timeout", name, f"the timeout may reach {highest:g} s, not below "
                    f"API Gateway's {INTEGRATION_TIMEOUT_SECONDS} s integration timeout"))
