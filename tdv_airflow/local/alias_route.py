"""Which version of a stack's function a request reaches, as API Gateway routes it.

The stack's API invokes what its integration names. A stack with a ``LiveAlias`` output
(the template of safe rollout) invokes that alias, never ``$LATEST``: the alias's own
version takes the traffic its ``RoutingConfig.AdditionalVersionWeights`` leave, each
additional version its weight, chosen per request. A stack without that output (older
templates) invokes ``$LATEST``. :func:`stack_route` reads that as a :class:`Route`;
:meth:`Route.choose` picks one version for one request from a number drawn in ``[0, 1)``
(the caller's random source, so tests choose their draws).

An alias that does not exist yet (no version was promoted) is a route to nothing: Lambda
refuses the invocation (``ResourceNotFoundException``), and API Gateway answers
``500 {"message": "Internal server error"}``
(https://docs.aws.amazon.com/lambda/latest/dg/services-apigateway-errors.html);
:attr:`Route.reason` says why, for logs and callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.stacks import outputs_of
from tdv_airflow.local.find import LATEST, check_qualifier, function_name_of, is_version

#: The stack output naming the alias the API invokes.
LIVE_ALIAS_OUTPUT = "LiveAlias"


@dataclass(frozen=True)
class Route:
    """The versions a request to a function reaches, with their weights.

    :param stack_name: the stack.
    :param function_name: the function.
    :param qualifier: what is invoked: an alias name, a version number or ``$LATEST``.
    :param weights: ``(version, weight)`` pairs, the alias's own version first, weights
        summing to 1; empty when the alias does not exist.
    """

    stack_name: str
    function_name: str
    qualifier: str
    weights: tuple[tuple[str, float], ...]

    @property
    def is_alias(self) -> bool:
        """Whether an alias is invoked (its weights may change at any time)."""
        return not is_version(self.qualifier)

    @property
    def versions(self) -> tuple[str, ...]:
        """The versions that take traffic, the alias's own first."""
        return tuple(version for version, _ in self.weights)

    @property
    def reason(self) -> str | None:
        """Why no version answers (``None`` when one does)."""
        if self.weights:
            return None
        return (f"stack {self.stack_name!r} has no live version yet: its API invokes alias "
                f"{self.qualifier!r} of function {self.function_name!r}, which does not "
                "exist; promote a validated version first")

    def choose(self, draw: float) -> str | None:
        """The version one request reaches (``None``: nothing answers).

        :param draw: a number in ``[0, 1)``; the versions take consecutive intervals as
            wide as their weights, the alias's own version first.
        """
        if not self.weights:
            return None
        upper = 0.0
        for version, weight in self.weights:
            upper += weight
            if draw < upper:
                return version
        return self.weights[0][0]  # the weights' rounding left a sliver: the alias's own


def live_alias_of(stack: Mapping[str, Any]) -> str | None:
    """The alias a stack's API invokes (its ``LiveAlias`` output), if any.

    :param stack: a ``describe_stacks`` entry.
    """
    return outputs_of(stack).get(LIVE_ALIAS_OUTPUT) or None


def alias_weights(lam: Any, function_name: str, alias: str) -> tuple[tuple[str, float], ...]:
    """An alias's versions and weights (empty when the alias does not exist).

    :param lam: a boto3 Lambda client.
    :param function_name: the function.
    :param alias: the alias.
    """
    try:
        got = lam.get_alias(FunctionName=function_name, Name=alias)
    except lam.exceptions.ResourceNotFoundException:
        return ()
    extra = {str(version): float(weight) for version, weight in
             ((got.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}).items()}
    own = str(got["FunctionVersion"])
    extra.pop(own, None)
    return ((own, max(0.0, 1.0 - sum(extra.values()))), *sorted(extra.items()))


def stack_route(clients: AwsClients, stack: Mapping[str, Any],
                qualifier: str | None = None) -> Route:
    """What a request to the stack reaches: ``qualifier`` when given, else what its API
    invokes (the ``LiveAlias`` output's alias, else ``$LATEST``).

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry.
    :param qualifier: a version number, ``$LATEST`` or an alias to invoke instead.
    :raises InvalidInputError: when ``qualifier`` is not one.
    """
    name = function_name_of(clients, stack)
    target = check_qualifier(qualifier) if qualifier is not None else (
        live_alias_of(stack) or LATEST)
    if is_version(target):
        return Route(stack["StackName"], name, target, ((target, 1.0),))
    return Route(stack["StackName"], name, target,
                 alias_weights(clients.lambda_, name, target))


def refreshed(clients: AwsClients, route: Route) -> Route:
    """The route with its alias's current weights (a version route as it is).

    :param clients: clients of the function's account and region.
    :param route: a route.
    """
    if not route.is_alias:
        return route
    return Route(route.stack_name, route.function_name, route.qualifier,
                 alias_weights(clients.lambda_, route.function_name, route.qualifier))
