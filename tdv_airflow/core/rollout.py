"""The ``live`` alias: promotion strategies, bakes watched by alarms, rollback.

API Gateway invokes the function's ``live`` alias. Moving traffic is one ``UpdateAlias``
call: its ``FunctionVersion`` is the primary version, its
``RoutingConfig.AdditionalVersionWeights`` gives the candidate a share (Lambda routes to
one additional version at most). The alias's ``Description`` holds the rollout's state
as compact JSON, so a retried, rescheduled or resumed task continues from what AWS says,
never from memory::

    {"prev": "4", "cand": "5", "plan": [0.1, 1.0], "step": 0, "since": 1764645000}

``prev`` is the version that was live before the current one (what ``"previous"`` rolls
back to); ``cand``/``plan``/``step``/``since`` exist while a candidate takes a share;
``op`` names the last on-demand rollback, so that retrying it changes nothing.

Every change passes the alias's ``RevisionId``: a concurrent change makes it fail
(``PreconditionFailedException``) instead of silently overwriting.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tdv_airflow.core.concurrency import ensure_provisioned_concurrency, wanted_of
from tdv_airflow.core.front_door_aws import (  # noqa: F401 - re-exported (moved there)
    PERMISSION_SID,
    ensure_front_door,
    ensure_invoke_permission,
    front_door_of,
    function_url,
    source_arn_of,
)
from tdv_airflow.core.versions import LIVE_ALIAS, check_version, get_version
from tdv_airflow.exceptions import InvalidInputError, RolloutError, UnknownVersionError

log = logging.getLogger(__name__)

#: Promotion strategies: every step's share of traffic for the candidate.
STRATEGIES = ("all_at_once", "canary", "linear")


def plan(strategy: Any, canary_weight: Any = 0.1, linear_steps: Any = 4) -> list[float]:
    """The candidate's share of traffic at each step, ending at 1.0.

    :param strategy: ``"all_at_once"`` (``[1.0]``), ``"canary"`` (``[canary_weight,
        1.0]``) or ``"linear"`` (``linear_steps`` equal steps).
    :param canary_weight: the canary's share, strictly between 0 and 1.
    :param linear_steps: how many equal steps (2 to 20).
    :raises InvalidInputError: naming the bad value.
    """
    if strategy not in STRATEGIES:
        raise InvalidInputError(f"invalid strategy {strategy!r}: expected one of "
                                f"{list(STRATEGIES)}")
    if strategy == "all_at_once":
        return [1.0]
    if strategy == "canary":
        weight = check_weight(canary_weight, "canary_weight")
        if weight in (0.0, 1.0):
            raise InvalidInputError(f"invalid canary_weight {canary_weight!r}: a canary "
                                    "takes a share strictly between 0 and 1 (e.g. 0.1)")
        return [weight, 1.0]
    if isinstance(linear_steps, bool) or not isinstance(linear_steps, int) \
            or not 2 <= linear_steps <= 20:
        raise InvalidInputError(f"invalid linear_steps {linear_steps!r}: expected an "
                                "integer from 2 to 20 (4 shifts 25 %, 50 %, 75 %, 100 %)")
    return [round((i + 1) / linear_steps, 4) for i in range(linear_steps)]


def check_weight(weight: Any, what: str = "weight") -> float:
    """Return ``weight`` as a float if it is a share of traffic from 0 to 1.

    :param weight: the share.
    :param what: the argument's name, for the message.
    :raises InvalidInputError: otherwise.
    """
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) \
            or not 0.0 <= float(weight) <= 1.0:
        raise InvalidInputError(f"invalid {what} {weight!r}: expected a number from 0 to 1 "
                                "(a share of the traffic)")
    return float(weight)


def check_bake(seconds: Any) -> float:
    """Return ``seconds`` if it is a positive bake time.

    :param seconds: how long each step is watched before the next one.
    :raises InvalidInputError: for zero, a negative or a non-number.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds <= 0:
        raise InvalidInputError(f"invalid bake_seconds {seconds!r}: expected a number of "
                                "seconds > 0 during which alarms are watched at each step")
    return float(seconds)


@dataclass(frozen=True)
class AliasState:
    """The ``live`` alias as read from Lambda.

    :param version: the primary version.
    :param weights: additional versions and their shares (one at most).
    :param revision_id: the alias's revision (guards the next change).
    :param state: the rollout state from its description.
    """

    version: str
    weights: Mapping[str, float]
    revision_id: str | None
    state: Mapping[str, Any] = field(default_factory=dict)

    @property
    def previous(self) -> str | None:
        """The version that was live before this one."""
        prev = self.state.get("prev")
        return str(prev) if prev else None

    def serving(self) -> dict[str, float]:
        """Each version that answers and its share of traffic."""
        shares = {v: float(w) for v, w in self.weights.items() if float(w) > 0}
        shares[self.version] = round(1.0 - sum(shares.values()), 4)
        return shares

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable (an XCom)."""
        return {"alias": LIVE_ALIAS, "version": self.version, "weights": dict(self.weights),
                "serving": self.serving(), "previous": self.previous}


def read_alias(lam: Any, function_name: str) -> AliasState | None:
    """The ``live`` alias, or ``None`` before the first promotion.

    :param lam: a Lambda client.
    :param function_name: the function.
    """
    try:
        alias = lam.get_alias(FunctionName=function_name, Name=LIVE_ALIAS)
    except lam.exceptions.ResourceNotFoundException:
        return None
    weights = ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
    try:
        state = json.loads(alias.get("Description") or "{}")
    except ValueError:
        state = {}
    return AliasState(version=str(alias["FunctionVersion"]),
                      weights={str(k): float(v) for k, v in weights.items()},
                      revision_id=alias.get("RevisionId"),
                      state=state if isinstance(state, dict) else {})


def _write(lam: Any, function_name: str, alias: AliasState | None, version: str,
           weights: Mapping[str, float], state: Mapping[str, Any]) -> AliasState:
    """Set the alias in one call (create it the first time); return what it now is."""
    description = json.dumps({k: v for k, v in state.items() if v is not None},
                             separators=(",", ":"))
    routing = {"AdditionalVersionWeights": {k: float(w) for k, w in weights.items()}}
    if alias is None:
        got = lam.create_alias(FunctionName=function_name, Name=LIVE_ALIAS,
                               FunctionVersion=version, Description=description,
                               RoutingConfig=routing)
    else:
        kwargs = {"RevisionId": alias.revision_id} if alias.revision_id else {}
        try:
            got = lam.update_alias(FunctionName=function_name, Name=LIVE_ALIAS,
                                   FunctionVersion=version, Description=description,
                                   RoutingConfig=routing, **kwargs)
        except lam.exceptions.PreconditionFailedException as exc:
            raise RolloutError(
                f"the alias {function_name}:{LIVE_ALIAS} changed while this task moved it "
                f"(another task or person did): nothing was overwritten; re-run the task "
                f"to act on its new state ({exc})") from exc
    log.info("alias %s:%s -> version %s%s", function_name, LIVE_ALIAS, version,
             "".join(f", version {v} at {w:.0%}" for v, w in weights.items()))
    return AliasState(version=version, weights=dict(weights),
                      revision_id=got.get("RevisionId"), state=dict(state))


@dataclass(frozen=True)
class Step:
    """What one promotion step did.

    :param phase: ``"live"`` (the candidate takes all traffic), ``"baking"`` (it takes
        ``weight`` until ``until``) or ``"rolled_back"``.
    :param alias: the alias after the step.
    :param weight: the candidate's share now.
    :param until: when the current bake ends (epoch seconds), for ``"baking"``.
    :param changed: whether this step changed the alias.
    """

    phase: str
    alias: AliasState
    weight: float
    until: float | None = None
    changed: bool = False


def advance(lam: Any, function_name: str, candidate: str, weights: Sequence[float],
            bake_seconds: float, firing: Sequence[Mapping[str, str]] = (),
            now: float | None = None) -> Step:
    """Take the promotion of ``candidate`` one step further, from the alias's state.

    - no alias yet: create it on the candidate (a first deployment has no traffic to
      shift); the caller adds the API's permission;
    - the candidate already takes all traffic: nothing to do (a retry);
    - the candidate's rollout is under way: roll back when ``firing`` names an alarm,
      wait while the bake lasts, else shift to the next step's weight;
    - otherwise start: the first step's weight (all traffic for ``[1.0]``).

    :param lam: a Lambda client.
    :param function_name: the function.
    :param candidate: the validated version.
    :param weights: the plan (:func:`plan`).
    :param bake_seconds: how long each step but the last is watched.
    :param firing: alarms in ALARM now (see :mod:`tdv_airflow.core.alarms`).
    :param now: epoch seconds (default: now).
    """
    now = time.time() if now is None else now
    alias = read_alias(lam, function_name)
    if alias is None:
        return Step("live", _write(lam, function_name, None, candidate, {}, {}), 1.0,
                    changed=True)
    if alias.version == candidate and not any(alias.weights.values()):
        return Step("live", alias, 1.0)
    state = alias.state
    if state.get("cand") == candidate and alias.weights.get(candidate):
        step = int(state.get("step", 0))
        if firing:
            back = _write(lam, function_name, alias, alias.version, {},
                          {"prev": state.get("prev"), "failed": candidate})
            return Step("rolled_back", back, 0.0, changed=True)
        until = float(state.get("since", now)) + bake_seconds
        if now < until:
            return Step("baking", alias, alias.weights[candidate], until)
        return _shift(lam, function_name, alias, candidate, list(weights), step + 1, now,
                      bake_seconds, str(state.get("prev") or "") or None)
    if alias.weights:
        log.warning("alias %s:%s was shifting to version(s) %s, which this promotion of "
                    "version %s replaces", function_name, LIVE_ALIAS, dict(alias.weights),
                    candidate)
    return _shift(lam, function_name, alias, candidate, list(weights), 0, now, bake_seconds,
                  alias.previous)


def _shift(lam: Any, function_name: str, alias: AliasState, candidate: str,
           weights: list[float], step: int, now: float, bake_seconds: float,
           prev: str | None) -> Step:
    """Give the candidate ``weights[step]`` (all of it at the last step)."""
    get_version(lam, function_name, candidate)
    if step >= len(weights) - 1:
        live = _write(lam, function_name, alias, candidate, {}, {"prev": alias.version})
        return Step("live", live, 1.0, changed=True)
    weight = weights[step]
    state = {"prev": prev, "cand": candidate, "plan": weights, "step": step,
             "since": int(now)}
    moved = _write(lam, function_name, alias, alias.version, {candidate: weight}, state)
    return Step("baking", moved, weight, int(now) + bake_seconds, changed=True)


def rollback(lam: Any, function_name: str, to: Any = "previous",
             operation: str | None = None) -> tuple[AliasState, bool]:
    """Move all of the alias's traffic to ``to`` in one alias change.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param to: a version number, or ``"previous"`` (the version live before this one).
    :param operation: names this rollback (e.g. the task instance): retrying it with the
        same name changes nothing, even for ``"previous"``.
    :returns: the alias after it, and whether this call changed it.
    :raises InvalidInputError: for a malformed ``to``.
    :raises UnknownVersionError: when ``to`` is not a published version, or there is no
        previous version.
    """
    target = check_version(to, allow_previous=True)
    alias = read_alias(lam, function_name)
    if alias is None:
        raise UnknownVersionError(f"function {function_name!r} has no {LIVE_ALIAS!r} alias "
                                  "yet: nothing was promoted, so there is nothing to roll "
                                  "back")
    if operation and alias.state.get("op") == operation:
        log.info("rollback %s already moved the alias to version %s", operation,
                 alias.version)
        return alias, False
    if target == "previous":
        if not alias.previous:
            raise UnknownVersionError(f"alias {function_name}:{LIVE_ALIAS} records no "
                                      "previous version: name the version to roll back to")
        target = alias.previous
    get_version(lam, function_name, target)
    if alias.version == target and not any(alias.weights.values()):
        return alias, False
    moved = _write(lam, function_name, alias, target, {},
                   {"prev": alias.version, "op": operation})
    return moved, True


@dataclass(frozen=True)
class Target:
    """What a rollout moves, read from the stack's outputs.

    :param stack_name: the stack.
    :param function_name: its function.
    :param source_arn: the API's ``execute-api`` ARN pattern (the alias's permission).
    :param alarm_names: the alarms a bake watches (the ``AlarmNames`` output).
    :param front_door: ``"rest"``, ``"http"`` or ``"url"`` (the ``FrontDoor`` output).
    :param endpoint_auth: the ``EndpointAuth`` output (a function URL's auth type).
    :param provisioned_concurrency: what the stack asks for on the alias (0: none).
    """

    stack_name: str
    function_name: str
    source_arn: str
    alarm_names: list[str]
    front_door: str = "rest"
    endpoint_auth: str = "AWS_IAM"
    provisioned_concurrency: int = 0


def target_of(stack: Mapping[str, Any]) -> Target:
    """The rollout target of a described stack.

    :param stack: a ``describe_stacks`` entry.
    :raises RolloutError: when its template predates versions and the ``live`` alias.
    """
    from tdv_airflow.core.alarms import alarm_names_of
    from tdv_airflow.core.stacks import outputs_of

    outputs = outputs_of(stack)
    if outputs.get("LiveAlias") != LIVE_ALIAS or not outputs.get("FunctionName"):
        raise RolloutError(
            f"stack {stack['StackName']!r} has no LiveAlias output {LIVE_ALIAS!r}: its "
            "template predates versioned rollouts (API Gateway invokes $LATEST there); "
            "update it with the shipped templates/stack_template.json")
    return Target(stack_name=str(stack["StackName"]),
                  function_name=outputs["FunctionName"],
                  source_arn=source_arn_of(stack, outputs.get("ApiId") or "*"),
                  alarm_names=alarm_names_of(outputs), front_door=front_door_of(outputs),
                  endpoint_auth=str(outputs.get("EndpointAuth") or "AWS_IAM"),
                  provisioned_concurrency=wanted_of(stack))


def promote_step(lam: Any, target: Target, candidate: str, weights: Sequence[float],
                 bake_seconds: float, firing: Sequence[Mapping[str, str]] = ()) -> Step:
    """One :func:`advance`; once live, the front door is made sure of on every live step
    (API Gateway's permission on the alias, or the alias's function URL:
    :func:`tdv_airflow.core.front_door_aws.ensure_front_door`), then the alias's
    provisioned concurrency (:func:`tdv_airflow.core.concurrency.ensure_provisioned_concurrency`);
    a task killed between the calls: its retry repairs.

    :param lam: a Lambda client.
    :param target: the stack's rollout target.
    :param candidate: the validated version.
    :param weights: the plan (:func:`plan`).
    :param bake_seconds: how long each step but the last is watched.
    :param firing: alarms in ALARM now.
    """
    step = advance(lam, target.function_name, candidate, weights, bake_seconds, firing)
    if step.phase == "live":
        ensure_front_door(lam, target.function_name, target.front_door, target.source_arn,
                          target.endpoint_auth)
        ensure_provisioned_concurrency(lam, target.function_name,
                                       target.provisioned_concurrency)
    return step


def describe_live(lam: Any, function_name: str, alias: AliasState | None = None, *,
                  front_door: str = "rest") -> dict[str, Any]:
    """Which versions answer now, with their share and where each came from: the one
    answer to "which model is live?".

    :param lam: a Lambda client.
    :param function_name: the function.
    :param alias: the alias as the caller just read or set it (default: read it).
    :param front_door: the stack's (:attr:`Target.front_door`): a function URL's
        ``endpoint`` is the alias's URL (``None`` before the first promotion).
    :returns: ``{"alias", "version", "previous", "serving": [{"version", "share",
        "model_s3_key", "model_sha256", "run_id", "published_at", ...}]}`` (and
        ``endpoint`` for a function URL); ``version`` is ``None`` before the first
        promotion.
    """
    alias = alias or read_alias(lam, function_name)
    url = {"endpoint": function_url(lam, function_name)} if front_door == "url" else {}
    if alias is None:
        return {"alias": LIVE_ALIAS, "version": None, "previous": None, "serving": [], **url}
    serving = [{**get_version(lam, function_name, version).as_dict(), "share": share}
               for version, share in sorted(alias.serving().items())]
    return {"alias": LIVE_ALIAS, "version": alias.version, "previous": alias.previous,
            "serving": serving, **url}
