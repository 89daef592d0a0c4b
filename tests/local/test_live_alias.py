"""The local runner routes a stack's requests as its API does: through the ``live``
alias, by its weights, to published versions that each run their own artifacts.

The stack's template is the shipped one with what the safe-rollout template declares
(``LiveAlias`` output, ``TDV_CODE_KEY``/``TDV_LAYER_KEY``/``TDV_DEPS_LAYER_KEY``); the
versions and the alias are made here with the Lambda API, as the core makes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import types
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.resources import default_template_path
from tdv_airflow.exceptions import InvalidInputError, LocalRunError, UnknownVersionError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.find import find_function
from tdv_airflow.local.layout import lay_out
from tdv_airflow.local.process import (
    LocalFunction,
    function_environ,
    invoke_deployed,
    invoke_once,
)
from tdv_airflow.local.request import request_stack, request_version
from tdv_airflow.local.server import serve_in_thread
from testkit.deployed import deploy_stack

BUCKET = "tdv-live-alias-bucket"
STACK = "tdv-live-alias"
OLD_STACK = "tdv-no-live-alias"
REGION = "us-east-1"
ROWS = [[1.0, 2.0], [3.0, 4.5]]
MODEL_1 = [3.0, 7.5]  # the first version sums each row
MODEL_2 = [30.0, 75.0]  # the second sums each row times ten
MISSING = "999"  # a version that does not exist


def scaled_sum_model(factor: float) -> bytes:
    """A pickled model whose ``predict`` sums each row times ``factor`` (dill, by value)."""
    import dill

    model = types.SimpleNamespace(predict=lambda rows: [sum(r) * factor for r in rows])
    data: bytes = dill.dumps(model, recurse=True)
    return data


def template_with_live_alias(path: Path, live: bool = True) -> Path:
    """The shipped template with (``live``) or without a ``LiveAlias`` output, and with
    the artifact keys in the function's environment."""
    template = json.loads(default_template_path().read_text())
    outputs = template["Outputs"]
    if live:
        outputs.setdefault("LiveAlias", {"Description": "The alias the API invokes.",
                                         "Value": "live"})
    else:
        outputs.pop("LiveAlias", None)
    variables = template["Resources"]["PredictFunction"]["Properties"]["Environment"][
        "Variables"]
    variables.setdefault("TDV_CODE_KEY", {"Ref": "CodeKey"})
    variables.setdefault("TDV_LAYER_KEY", {"Ref": "LayerKey"})
    variables.setdefault("TDV_DEPS_LAYER_KEY", {"Fn::If": [
        "HasDepsLayer", {"Ref": "DepsLayerKey"}, {"Ref": "AWS::NoValue"}]})
    path.write_text(json.dumps(template))
    return path


def draws(*values: float) -> Callable[[], float]:
    """A random source returning ``values`` in turn, again and again."""
    state = {"i": 0}

    def draw() -> float:
        value = values[state["i"] % len(values)]
        state["i"] += 1
        return value

    return draw


@dataclass
class TwoVersions:
    """The stack's function with two published versions: ``v1`` (model 1), ``v2``
    (model 2)."""

    clients: AwsClients
    endpoint_url: str
    function_name: str
    workdir: Path
    v1: str
    v2: str

    @property
    def lam(self) -> Any:
        return self.clients.lambda_

    def route(self, version: str, weights: dict[str, float] | None = None) -> None:
        """Point ``live`` at ``version`` with ``weights`` on others (created if missing)."""
        routing = {"AdditionalVersionWeights": weights or {}}
        try:
            self.lam.update_alias(FunctionName=self.function_name, Name="live",
                                  FunctionVersion=version, RoutingConfig=routing)
        except self.lam.exceptions.ResourceNotFoundException:
            self.lam.create_alias(FunctionName=self.function_name, Name="live",
                                  FunctionVersion=version, RoutingConfig=routing)

    def unroute(self) -> None:
        """Delete ``live`` (as before any promotion)."""
        with contextlib.suppress(self.lam.exceptions.ResourceNotFoundException):
            self.lam.delete_alias(FunctionName=self.function_name, Name="live")


@pytest.fixture(scope="module")
def two(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> TwoVersions:
    """One stack, two published versions with different models (sum, sum x 10)."""
    local_aws.reset()
    template = template_with_live_alias(tmp_path_factory.mktemp("tpl") / "live.json")
    first = deploy_stack(local_aws.endpoint_url, BUCKET, STACK, endpoint_auth="none",
                         model=scaled_sum_model(1), model_key="models/live/1/model.pkl",
                         template_stack_local_path=template)
    assert first.outputs["LiveAlias"] == "live"
    name = first.outputs["FunctionName"]
    lam = first.clients.lambda_
    # The configuration as a version (the one already published for it, if any).
    v1 = lam.publish_version(FunctionName=name)["Version"]
    deploy_stack(local_aws.endpoint_url, BUCKET, STACK, endpoint_auth="none",
                 model=scaled_sum_model(10), model_key="models/live/2/model.pkl",
                 template_stack_local_path=template)
    v2 = lam.publish_version(FunctionName=name)["Version"]
    assert int(v2) > int(v1)
    # An older stack (no LiveAlias output): its API invokes $LATEST.
    deploy_stack(local_aws.endpoint_url, BUCKET, OLD_STACK, endpoint_auth="none",
                 model=scaled_sum_model(1), model_key="models/old/model.pkl",
                 template_stack_local_path=template_with_live_alias(
                     tmp_path_factory.mktemp("tpl") / "old.json", live=False))
    return TwoVersions(first.clients, local_aws.endpoint_url, name,
                       tmp_path_factory.mktemp("local-run"), v1, v2)


@pytest.fixture
def function(two: TwoVersions) -> Iterator[Callable[..., LocalFunction]]:
    """LocalFunctions on the stack, all closed after the test."""
    made: list[LocalFunction] = []

    def make(**kw: Any) -> LocalFunction:
        fn = LocalFunction(two.clients, STACK, workdir=two.workdir, **kw)
        made.append(fn)
        return fn

    yield make
    for fn in made:
        fn.close()


def predictions(response: dict[str, Any]) -> list[float]:
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])["predictions"]  # type: ignore[no-any-return]


def test_each_version_runs_its_own_model_laid_out_side_by_side(two: TwoVersions) -> None:
    one = find_function(two.clients, STACK, two.v1)
    latest = find_function(two.clients, STACK)
    other = find_function(two.clients, STACK, two.v2)
    assert (one.version, other.version, latest.version) == (two.v1, two.v2, "$LATEST")
    assert one.environment["TDV_MODEL_KEY"] == "models/live/1/model.pkl"
    assert other.environment["TDV_MODEL_KEY"] == "models/live/2/model.pkl"
    assert one.invoked_arn.endswith(f"function:{two.function_name}:{two.v1}")
    assert latest.invoked_arn.endswith(f"function:{two.function_name}")
    assert one.code.key == one.environment["TDV_CODE_KEY"]  # the version's own key
    # The layer by its ARN, as on AWS, with the version's own key behind it.
    assert [(s.fallback or s).key for s in one.layers] == [one.environment["TDV_LAYER_KEY"]]
    first, second = (lay_out(two.clients, one, two.workdir),
                     lay_out(two.clients, other, two.workdir))
    assert first.task_dir.is_dir() and second.task_dir.is_dir()
    assert first.task_dir == two.workdir / "code" / str(one.code.sha256)
    for version, expected in ((two.v1, MODEL_1), (two.v2, MODEL_2)):
        result = invoke_once(two.clients, STACK, {"rows": ROWS}, qualifier=version,
                             workdir=two.workdir)
        assert (result.version, predictions(result.response)) == (version, expected)


def test_live_weighted_half_and_half_sends_requests_to_both_models(
        two: TwoVersions, function: Callable[..., LocalFunction]) -> None:
    v1, v2 = two.v1, two.v2
    two.route(v1, {v2: 0.5})
    fn = function(rng=draws(0.1, 0.9, 0.49, 0.5), route_ttl=0)
    answers = []
    for _ in range(4):
        result = fn.invoke_event(fn.event_for({"rows": ROWS}))
        answers.append((result.version, predictions(result.response)))
    assert answers == [(v1, MODEL_1), (v2, MODEL_2), (v1, MODEL_1), (v2, MODEL_2)]
    assert fn.route is not None and fn.route.weights == ((v1, 0.5), (v2, 0.5))
    # Each version in its own warm process, invoked through the alias.
    assert fn.process_for(v1).pid != fn.process_for(v2).pid
    assert fn.process_for(v1).pid is not None
    second = fn.process_for(v2)
    assert second.function is not None and second.layout is not None
    assert second.function.invoked_arn.endswith(f"function:{two.function_name}:live")
    environ = function_environ(two.clients, second.function, second.layout)
    assert environ["AWS_LAMBDA_FUNCTION_VERSION"] == v2
    assert environ["TDV_MODEL_KEY"] == "models/live/2/model.pkl"
    # request_stack (what EndpointCheckOperator calls) routes the same way.
    for draw, version, expected in ((0.2, v1, MODEL_1), (0.8, v2, MODEL_2)):
        answer = request_stack(two.clients, STACK, {"rows": ROWS}, rng=lambda d=draw: d)
        assert (answer.status, answer.version) == (200, version)
        assert json.loads(answer.body)["predictions"] == expected


def test_live_moved_to_the_first_version_only_model_1_answers(
        two: TwoVersions, function: Callable[..., LocalFunction]) -> None:
    v1, v2 = two.v1, two.v2
    two.route(v1, {v2: 0.5})
    fn = function(rng=draws(0.9), route_ttl=0)
    first = fn.invoke_event(fn.event_for({"rows": ROWS}))
    assert first.version == v2
    served_by_2 = fn.process_for(v2)
    two.route(v1)  # all traffic to the first version
    for _ in range(3):  # a draw that went to the second version before
        result = fn.invoke_event(fn.event_for({"rows": ROWS}))
        assert (result.version, predictions(result.response)) == (v1, MODEL_1)
    assert fn.route is not None and fn.route.versions == (v1,)
    assert served_by_2.pid is None  # its process was stopped
    for _ in range(3):
        answer = request_stack(two.clients, STACK, {"rows": ROWS})
        assert (answer.status, answer.version) == (200, v1)
        assert json.loads(answer.body)["predictions"] == MODEL_1


def test_no_live_alias_yet_answers_api_gateways_500(
        two: TwoVersions, function: Callable[..., LocalFunction]) -> None:
    two.unroute()
    try:
        answer = request_stack(two.clients, STACK, {"rows": ROWS})
        assert (answer.status, json.loads(answer.body)) == (
            500, {"message": "Internal server error"})
        assert answer.version is None
        assert answer.reason is not None and "no live version yet" in answer.reason
        assert "promote a validated version first" in answer.reason
        assert invoke_deployed(two.clients, STACK, {"rows": ROWS},
                               workdir=two.workdir)["statusCode"] == 500
        with pytest.raises(LocalRunError, match="no live version yet"):
            function().prepare()
        # The local API answers the same over HTTP, and serves once a version is live.
        fn = function(route_ttl=0)
        server, thread = serve_in_thread(fn)
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/predict"
            assert post(url, {"rows": ROWS}) == (500, {"message": "Internal server error"})
            two.route(two.v2)
            assert post(url, {"rows": ROWS}) == (200, {"predictions": MODEL_2})
        finally:
            server.shutdown()
            server.server_close()
            thread.join(5)
        # A candidate is validated before any alias exists.
        two.unroute()
        assert request_version(two.clients, STACK, two.v1, {"rows": ROWS}).status == 200
    finally:
        two.route(two.v1)


def post(url: str, payload: Any) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_request_version_asks_each_version_whatever_the_alias(two: TwoVersions) -> None:
    two.route(two.v1)
    for version, expected in ((two.v1, MODEL_1), (two.v2, MODEL_2), (int(two.v2), MODEL_2)):
        answer = request_version(two.clients, STACK, version, {"rows": ROWS},
                                 workdir=two.workdir)
        assert (answer.status, answer.version, answer.emulator) == (
            200, str(version), two.endpoint_url)
        assert json.loads(answer.body)["predictions"] == expected
    bad = request_version(two.clients, STACK, two.v2, {"rows": "abc"}, workdir=two.workdir)
    assert bad.status == 422 and bad.version == two.v2
    with pytest.raises(UnknownVersionError, match=f"'{MISSING}'"):
        request_version(two.clients, STACK, MISSING, {"rows": ROWS}, workdir=two.workdir)
    for wrong in ("$LATEST", "live", "0", "1.5", True):
        with pytest.raises(InvalidInputError, match="invalid version"):
            request_version(two.clients, STACK, wrong, {"rows": ROWS})


def test_a_stack_without_live_alias_output_still_runs_latest(two: TwoVersions) -> None:
    result = invoke_once(two.clients, OLD_STACK, {"rows": ROWS}, workdir=two.workdir)
    assert (result.version, predictions(result.response)) == ("$LATEST", MODEL_1)
    answer = request_stack(two.clients, OLD_STACK, {"rows": ROWS})
    assert (answer.status, answer.version) == (200, "$LATEST")


def test_a_version_without_keys_runs_only_when_it_is_the_stacks_own(
        two: TwoVersions) -> None:
    """A version published before the key variables existed takes the stack's keys only
    for the artifacts whose digest is the stack's current one."""
    lam = two.lam
    config = lam.get_function_configuration(FunctionName=two.function_name)
    env = dict(config["Environment"]["Variables"])
    bare = {k: v for k, v in env.items() if not k.endswith("_KEY") or k in
            ("TDV_MODEL_KEY", "TDV_PREPRO_KEY")}
    try:
        lam.update_function_configuration(FunctionName=two.function_name,
                                          Environment={"Variables": bare})
        same = lam.publish_version(FunctionName=two.function_name)["Version"]
        other = {**bare, "TDV_CODE_SHA256": "0" * 64}
        lam.update_function_configuration(FunctionName=two.function_name,
                                          Environment={"Variables": other})
        foreign = lam.publish_version(FunctionName=two.function_name)["Version"]
    finally:
        lam.update_function_configuration(FunctionName=two.function_name,
                                          Environment={"Variables": env})
    found = find_function(two.clients, STACK, same)
    assert found.code.key == env["TDV_CODE_KEY"]  # the stack's CodeKey, same digest
    result = invoke_once(two.clients, STACK, {"rows": ROWS}, qualifier=same,
                         workdir=two.workdir)
    assert predictions(result.response) == MODEL_2
    with pytest.raises(LocalRunError, match=f"version {foreign} of .*TDV_CODE_KEY"):
        find_function(two.clients, STACK, foreign)


def cli(two: TwoVersions, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tdv_airflow.local.cli", *args, "--stack", STACK, "--region",
         REGION, "--endpoint-url", two.endpoint_url, "--workdir", str(two.workdir)],
        capture_output=True, text=True, timeout=120, env=os.environ.copy())


def test_cli_runs_the_version_or_alias_it_is_given(two: TwoVersions) -> None:
    two.route(two.v1, {two.v2: 0.5})
    payload = json.dumps({"rows": ROWS})
    for version, expected in ((two.v1, MODEL_1), (two.v2, MODEL_2)):
        done = cli(two, "invoke", "--payload", payload, "--qualifier", version)
        assert done.returncode == 0, done.stderr
        assert predictions(json.loads(done.stdout)) == expected
        assert f"answered by version {version}" in done.stderr
    bad = cli(two, "invoke", "--payload", payload, "--qualifier", "no such!")
    assert bad.returncode == 2 and "invalid qualifier 'no such!'" in bad.stderr
    missing = cli(two, "invoke", "--payload", payload, "--qualifier", MISSING)
    assert missing.returncode == 2 and f"'{MISSING}'" in missing.stderr
    two.route(two.v1)
