"""Emulator fidelity: a stack update rewrites an ``AWS::IAM::Role``'s policies.

On AWS, updating a role's ``Policies``, ``AssumeRolePolicyDocument`` or
``PermissionsBoundary`` in a template is an update without interruption: CloudFormation
puts every inline policy the template lists, deletes those it no longer lists, and sets
the trust policy and the permissions boundary to the template's. moto 5.2's
``Role.update_from_cloudformation_json`` only sets the role's description, so after an
update from one model to another the role still names the first model's keys while the
function reads the second's (measured with moto 5.2.5): a role that grants too much, or
too little, is invisible on the emulator. :func:`install` makes the update also apply
those three properties, as AWS does. It also stores the inline policies a stack creates
as JSON: moto keeps the template's mapping and ``GetRolePolicy`` then answers its Python
``repr``, which is not a policy document (AWS answers the JSON document, which botocore
decodes). Nothing else in moto changes.

A parameter change only reaches the role when moto's update sees that the role uses the
parameter: :mod:`tdv_airflow.local.fix_update_refs` makes it see the parameters named
inside ``Fn::Sub`` and in conditions, as the shipped template's role policy uses them.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import json
from typing import Any

_MARK = "_tdv_rewrites_policies"


def apply_properties(role: Any, properties: dict[str, Any]) -> None:
    """Make ``role``'s inline policies, trust policy and permissions boundary the ones
    ``properties`` (a resolved ``AWS::IAM::Role`` ``Properties``) lists.

    :param role: a moto ``Role``.
    :param properties: the template's properties of the role, intrinsic functions resolved.
    """
    wanted = {p["PolicyName"]: p["PolicyDocument"] for p in properties.get("Policies") or []}
    for name in list(role.policies):
        if name not in wanted:
            role.delete_policy(name)
    for name, document in wanted.items():
        role.put_policy(name, _as_json(document))
    trust = properties.get("AssumeRolePolicyDocument")
    if trust is not None:
        role.assume_role_policy_document = (
            trust if isinstance(trust, str) else json.dumps(trust))
    role.permissions_boundary_arn = properties.get("PermissionsBoundary") or None


def _as_json(document: Any) -> str:
    """A policy document as the JSON text IAM stores.

    :param document: a mapping, or JSON text already.
    """
    return document if isinstance(document, str) else json.dumps(document)


def install() -> None:
    """Make a stack update apply a role's policies (idempotent)."""
    from moto.iam.models import Role

    from tdv_airflow.local.cfn_hooks import run_after

    run_after(Role, "create_from_cloudformation_json", _policies_as_json, _MARK)
    run_after(Role, "update_from_cloudformation_json",
              lambda role, template: apply_properties(role, template.get("Properties") or {}),
              _MARK)


def _policies_as_json(role: Any, cloudformation_json: dict[str, Any]) -> None:
    """Store the inline policies moto just created from the template as JSON text.

    :param role: a moto ``Role``.
    :param cloudformation_json: the resource (unused: the role holds its policies).
    """
    for name, document in list(role.policies.items()):
        role.policies[name] = _as_json(document)
