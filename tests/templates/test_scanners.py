"""The template passes checkov, cfn-lint and our own hardening checks, and each of them
reports it when a hardening setting is taken away.

checkov pins an old ``packaging``, so it runs from its own virtual environment,
``.venv-checkov`` in the repository (gitignored), created with pip on first use (set
``TDV_CHECKOV`` to use another checkov executable).
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.resources import default_template_path
from testkit.template_checks import check_template

ROOT = Path(__file__).resolve().parents[2]
CHECKOV_VENV = ROOT / ".venv-checkov"
CHECKOV_REQUIREMENT = "checkov>=3.2,<4"
TEMPLATE = default_template_path()


def template() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return body


@pytest.fixture(scope="session")
def checkov() -> Path:
    """The checkov executable of its own venv (created and installed on first use)."""
    if os.environ.get("TDV_CHECKOV"):
        return Path(os.environ["TDV_CHECKOV"])
    exe = CHECKOV_VENV / "bin" / "checkov"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True,
                           timeout=300)
            subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install",
                            "--quiet", CHECKOV_REQUIREMENT], check=True, timeout=1200)
        except (subprocess.SubprocessError, OSError) as exc:
            pytest.fail(f"cannot install {CHECKOV_REQUIREMENT} into {CHECKOV_VENV} "
                        f"(PyPI needed once): {exc}")
    return exe


def run_checkov(checkov: Path, *target: str) -> list[dict[str, Any]]:
    """checkov's JSON reports (one per framework run) for ``target`` (-f FILE or -d DIR)."""
    done = subprocess.run([str(checkov), *target, "--framework", "cloudformation",
                           "--skip-download", "-o", "json"],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    assert done.returncode in (0, 1), done.stderr[-2000:]
    report = json.loads(done.stdout)
    return report if isinstance(report, list) else [report]


def checks(reports: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [c for r in reports for c in r.get("results", {}).get(kind, [])]


def metadata_skips(body: dict[str, Any]) -> dict[tuple[str, str], str]:
    """``{(logical id, check id): comment}`` of the template's checkov skips."""
    return {(name, skip["id"]): skip.get("comment", "")
            for name, res in body["Resources"].items()
            for skip in (res.get("Metadata", {}).get("checkov", {}).get("skip") or [])}


# ------------------------------------------------------------------ the shipped template

@pytest.fixture(scope="module")
def shipped_report(checkov: Path) -> list[dict[str, Any]]:
    return run_checkov(checkov, "-f", str(TEMPLATE.relative_to(ROOT)))


def test_checkov_reports_no_failed_check(shipped_report: list[dict[str, Any]]) -> None:
    failed = [(c["check_id"], c["resource"], c["check_name"])
              for c in checks(shipped_report, "failed_checks")]
    assert failed == []
    assert len(checks(shipped_report, "passed_checks")) >= 15
    assert sum(r.get("summary", {}).get("parsing_errors", 0) for r in shipped_report) == 0


def test_every_skipped_check_carries_its_reason_in_the_metadata(
        shipped_report: list[dict[str, Any]]) -> None:
    skips = metadata_skips(template())
    assert all(len(comment) > 40 for comment in skips.values()), skips
    skipped = {(c["resource"].split(".", 1)[1], c["check_id"]):
               c.get("check_result", {}).get("suppress_comment", "")
               for c in checks(shipped_report, "skipped_checks")}
    assert skipped == skips  # every skip is used, none is skipped without its reason


def test_cfn_lint_and_our_checks_report_nothing() -> None:
    from cfnlint.api import lint_all

    assert [str(m) for m in lint_all(TEMPLATE.read_text())] == []
    assert check_template(template()) == []


def test_the_template_keeps_wildcards_out_and_records_why() -> None:
    body = template()
    notes = body["Metadata"]["tdv-airflow:security"]
    assert "AWS::ApiGateway::Account" in notes["api-gateway-account-role"]
    assert not any(r["Type"] == "AWS::ApiGateway::Account" for r in body["Resources"].values())
    assert '"Resource": "*"' not in json.dumps(body["Resources"])
    fmt = body["Resources"]["ApiStage"]["Properties"]["AccessLogSetting"]["Format"]
    assert set(json.loads(fmt)) >= {"requestId", "status", "responseLatency"}
    assert "$input" not in fmt and not re.search(r"identity\.apiKey(?!Id)", fmt)
    assert body["Outputs"]["ApiKeyId"]["Value"] == {"Ref": "ApiKey"}  # the id, not the value


# ----------------------------------------------------- taking one setting away is reported

Mutation = Callable[[dict[str, Any]], None]


def _res(body: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = body["Resources"][name]["Properties"]
    return props


def _settings(body: dict[str, Any]) -> dict[str, Any]:
    setting: dict[str, Any] = _res(body, "ApiStage")["MethodSettings"][0]
    return setting


def _role_statement(body: dict[str, Any], sid: str) -> dict[str, Any]:
    statements = _res(body, "FunctionRole")["Policies"][0]["PolicyDocument"]["Statement"]
    statement: dict[str, Any] = next(s for s in statements if s.get("Sid") == sid)
    return statement


def _any_kms_key(body: dict[str, Any]) -> None:
    policies = _res(body, "FunctionRole")["Policies"]
    decrypt = next(p for p in policies if "Fn::If" in p)["Fn::If"][1]
    decrypt["PolicyDocument"]["Statement"][0]["Resource"] = "*"


def _no_throttling(body: dict[str, Any]) -> None:
    for key in ("ThrottlingBurstLimit", "ThrottlingRateLimit"):
        del _settings(body)[key]


def _open_method(body: dict[str, Any]) -> None:
    _res(body, "PredictMethod").update(AuthorizationType="NONE", ApiKeyRequired=False)


def _body_in_access_log(body: dict[str, Any]) -> None:
    _res(body, "ApiStage")["AccessLogSetting"]["Format"] = json.dumps(
        {"requestId": "$context.requestId", "status": "$context.status",
         "responseLatency": "$context.responseLatency", "body": "$input.body"})


def _unscoped_invoke_permission(body: dict[str, Any]) -> None:
    """The template adds no permission (tdv-airflow adds one on the alias, scoped to the
    API); one added without ``SourceArn`` would let any API invoke the function."""
    body["Resources"]["InvokePermission"] = {
        "Type": "AWS::Lambda::Permission", "Properties": {
            "Action": "lambda:InvokeFunction", "Principal": "apigateway.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": ["PredictFunction", "Arn"]}},
        "Metadata": {"com.aws.cloudformation.Context": {"why": "mutation"}}}


def _integration_to_latest(body: dict[str, Any]) -> None:
    integration = _res(body, "PredictMethod")["Integration"]
    integration["Uri"]["Fn::Sub"] = integration["Uri"]["Fn::Sub"].replace(
        ":live/invocations", "/invocations")


#: name -> (the mutation, {reporter: what it must report}); reporters: checkov (a check
#: id that fails), cfn-lint (a rule id), ours (a check_template rule).
MUTATIONS: dict[str, tuple[Mutation, dict[str, str]]] = {
    "stage tracing off": (
        lambda b: _res(b, "ApiStage").pop("TracingEnabled"),
        {"checkov": "CKV_AWS_73", "ours": "stage-tracing"}),
    "no access logging": (
        lambda b: _res(b, "ApiStage").pop("AccessLogSetting"),
        {"checkov": "CKV_AWS_76", "ours": "stage-access-log"}),
    "bodies in the access log": (_body_in_access_log, {"ours": "stage-access-log"}),
    "no method throttling": (_no_throttling, {"ours": "stage-throttling"}),
    "data trace on": (lambda b: _settings(b).update(DataTraceEnabled=True),
                      {"ours": "stage-no-data-trace"}),
    "open method": (_open_method, {"checkov": "CKV_AWS_59", "ours": "method-auth"}),
    # checkov does not resolve Fn::If with the parameters' defaults: only ours sees it.
    "public by default": (
        lambda b: b["Parameters"]["EndpointAuth"].update(Default="NONE"),
        {"ours": "method-auth"}),
    "api key without a usage plan": (lambda b: b["Resources"].pop("UsagePlanKey"),
                                     {"ours": "method-auth"}),
    "usage plan without quota": (lambda b: _res(b, "UsagePlan").pop("Quota"),
                                 {"ours": "usage-plan-limits"}),
    "one deployment for every mode": (
        lambda b: _res(b, "ApiStage").update(DeploymentId={"Ref": "ApiDeploymentNone"}),
        {"ours": "deployment-per-auth-mode"}),
    "function logs kept forever": (
        lambda b: _res(b, "LogGroup").pop("RetentionInDays"),
        {"checkov": "CKV_AWS_66", "ours": "log-retention"}),
    "access logs kept forever": (
        lambda b: _res(b, "AccessLogGroup").pop("RetentionInDays"),
        {"checkov": "CKV_AWS_66", "ours": "log-retention"}),
    "no reserved concurrency": (
        lambda b: _res(b, "PredictFunction").pop("ReservedConcurrentExecutions"),
        {"checkov": "CKV_AWS_115", "ours": "reserved-concurrency"}),
    "timeout beyond the integration timeout": (  # API Gateway front doors only
        lambda b: (b["Parameters"]["FrontDoor"].update(AllowedValues=["REST", "HTTP"]),
                   b["Parameters"]["Timeout"].update(MaxValue=900)),
        {"ours": "function-timeout"}),
    "timeout beyond Lambda's": (
        lambda b: b["Parameters"]["Timeout"].update(MaxValue=901),
        {"ours": "function-timeout"}),
    "role reads any object": (
        lambda b: _role_statement(b, "ReadThisDeploymentsArtifacts").update(Resource="*"),
        {"checkov": "CKV_AWS_108", "ours": "no-wildcard-resource"}),
    # checkov does not look into Fn::If branches: only ours sees these two.
    "role reads any retained object": (
        lambda b: _role_statement(b, "ReadRetainedVersionsArtifacts")["Resource"][
            "Fn::If"].__setitem__(1, "*"),
        {"ours": "no-wildcard-resource"}),
    "role decrypts with any key": (_any_kms_key, {"ours": "no-wildcard-resource"}),
    "execution logs in a group no stack owns": (
        lambda b: _settings(b).update(LoggingLevel="ERROR"),
        {"ours": "execution-log-group"}),
    "invoke permission not scoped": (_unscoped_invoke_permission, {"checkov": "CKV_AWS_364"}),
    "integration invokes $LATEST": (_integration_to_latest, {"ours": "integration-alias"}),
    "a resource without its context": (
        lambda b: b["Resources"]["ApiKey"].pop("Metadata"), {"cfn-lint": "I4010"}),
}


@pytest.fixture(scope="module")
def mutated(checkov: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, tuple[dict[str, Any], set[str]]]:
    """Every mutated template, and the checkov checks that fail on it (one checkov run)."""
    folder = tmp_path_factory.mktemp("mutated")
    bodies: dict[str, dict[str, Any]] = {}
    for i, (name, (mutate, _)) in enumerate(MUTATIONS.items()):
        body = copy.deepcopy(template())
        mutate(body)
        bodies[name] = body
        (folder / f"m{i:02d}.json").write_text(json.dumps(body, indent=2))
    failed: dict[str, set[str]] = {}
    for check in checks(run_checkov(checkov, "-d", str(folder)), "failed_checks"):
        failed.setdefault(Path(check["file_path"]).name, set()).add(check["check_id"])
    return {name: (bodies[name], failed.get(f"m{i:02d}.json", set()))
            for i, name in enumerate(MUTATIONS)}


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_removing_a_hardening_setting_is_reported(
        name: str, mutated: dict[str, tuple[dict[str, Any], set[str]]]) -> None:
    body, checkov_failed = mutated[name]
    expected = MUTATIONS[name][1]
    if "checkov" in expected:
        assert expected["checkov"] in checkov_failed, checkov_failed
    if "ours" in expected:
        assert expected["ours"] in {f.rule for f in check_template(body)}
    if "cfn-lint" in expected:
        from cfnlint.api import lint_all

        assert expected["cfn-lint"] in {m.rule.id for m in lint_all(json.dumps(body))}


# ------------------------------------------------------------------------------- ruff

#: Every module of the package and the function's code (the endpoint client and verifier,
#: the IAM documents, the local server and the emulator's fixes among them): every
#: security ``noqa`` in them names its reason.
JUSTIFIED_NOQA_FILES = tuple(sorted(
    str(path.relative_to(ROOT)) for folder in ("tdv_airflow", "lambda_src")
    for path in (ROOT / folder).rglob("*.py")))


def test_ruff_security_rules_are_clean() -> None:
    """ruff with the project's configuration (which selects the S rules) finds no
    security issue in the package or the function's code."""
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "json",
                           "tdv_airflow", "lambda_src"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    if done.returncode not in (0, 1) or not done.stdout.strip().startswith("["):
        pytest.fail(f"ruff did not run: {done.stderr[-500:]}")
    found = [(f["filename"], f["code"]) for f in json.loads(done.stdout)]
    assert [f for f in found if f[1].startswith("S")] == []


def test_each_noqa_names_its_reason() -> None:
    assert {"tdv_airflow/endpoint/client.py", "tdv_airflow/core/iam.py",
            "tdv_airflow/local/fix_api_keys.py", "tdv_airflow/local/server.py"} \
        <= set(JUSTIFIED_NOQA_FILES)
    bare = [f"{path}:{n}" for path in JUSTIFIED_NOQA_FILES
            for n, line in enumerate((ROOT / path).read_text().splitlines(), 1)
            if re.search(r"#\s*noqa: S\d+(?:,\s*S\d+)*\s*$", line)]
    assert bare == []
