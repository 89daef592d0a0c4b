"""Make a deployed stack's candidate live at once, outside Airflow.

The ``Deploy`` facade and scripts that deploy without a gate use it: publish the
candidate (:func:`tdv_airflow.core.versions.publish_candidate`) and move all of the
``live`` alias to it (:func:`tdv_airflow.core.rollout.promote_step` with ``[1.0]``). A DAG
validates first (``ValidateCandidateOperator``) and promotes by strategy
(``PromoteOperator``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.rollout import describe_live, promote_step, target_of
from tdv_airflow.core.versions import function_identity, publish_candidate


def release(clients: AwsClients, stack: Mapping[str, Any], identity: str | None = None,
            run_id: str | None = None) -> dict[str, Any]:
    """Publish the stack's candidate and give it all of the traffic (safe to repeat).

    :param clients: clients of the stack's account and region.
    :param stack: the complete stack's ``describe_stacks`` entry.
    :param identity: the deployed identity (the create result's); default: the stack's.
    :param run_id: who releases (recorded in the version's description).
    :returns: :func:`tdv_airflow.core.rollout.describe_live` after the change.
    """
    target = target_of(stack)
    current = function_identity(stack.get("Parameters") or [])
    record = publish_candidate(clients.lambda_, target.function_name, identity or current,
                               current, run_id=run_id)
    step = promote_step(clients.lambda_, target, record.version, [1.0], 1.0)
    return describe_live(clients.lambda_, target.function_name, step.alias,
                         front_door=target.front_door)
