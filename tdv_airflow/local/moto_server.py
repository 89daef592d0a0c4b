"""Start moto's server with tdv-airflow's fidelity fixes installed (used by
:mod:`tdv_airflow.local.aws`).

Each fix is its own module, documenting what moto lacks and what AWS does (the list,
with AWS's documentation, is ``docs/aws-behaviour.md``):
:mod:`~tdv_airflow.local.fix_layer_ref` (``Ref`` to a Lambda layer version is its ARN),
:mod:`~tdv_airflow.local.fix_function_layers` (a function is created with its layers; a
changed layer version is replaced by a new one),
:mod:`~tdv_airflow.local.fix_api_keys` (CloudFormation API keys and usage plans),
:mod:`~tdv_airflow.local.fix_stack_updates` (an identical update is refused, a failing
update rolls back, updates set ``LastUpdatedTime``),
:mod:`~tdv_airflow.local.fix_update_refs` (a parameter named in ``Fn::Sub`` or a
condition updates the resource), :mod:`~tdv_airflow.local.fix_no_value`
(``AWS::NoValue`` removes a list element), :mod:`~tdv_airflow.local.fix_list_parameters`
(list parameters are described as the text given),
:mod:`~tdv_airflow.local.fix_lambda_authorization`
(Lambda requests are authorised by signature, ARN and AWS's action names, when moto
enforces IAM), :mod:`~tdv_airflow.local.fix_role_policy`
(an update rewrites a role's inline policies), :mod:`~tdv_airflow.local.fix_architectures`
(``Architectures`` and ``CompatibleArchitectures`` pass through),
:mod:`~tdv_airflow.local.fix_stack_conditions` (the caller's CloudFormation condition
keys are checked), :mod:`~tdv_airflow.local.fix_service_role` (roles are created as
the stack's service role, when moto enforces IAM), :mod:`~tdv_airflow.local.fix_alarms`
(``AWS::CloudWatch::Alarm`` in stacks), :mod:`~tdv_airflow.local.fix_lambda_versions`
(``PublishVersion`` numbers immutable snapshots, only on change, with its guards),
:mod:`~tdv_airflow.local.fix_lambda_aliases` (alias ``RevisionId``, routing checks, a
version an alias uses is not deleted), :mod:`~tdv_airflow.local.fix_lambda_policies`
(a resource policy per version and alias),
:mod:`~tdv_airflow.local.fix_provisioned_concurrency` (provisioned concurrency on a
version or an alias) and :mod:`~tdv_airflow.local.fix_function_settings` (a function's
``EphemeralStorage`` and ``SnapStart`` through CloudFormation);
:mod:`~tdv_airflow.local.fix_apigatewayv2` (an HTTP API in stacks) and
:mod:`~tdv_airflow.local.fix_function_url` (a function URL per alias);
:mod:`~tdv_airflow.local.fix_s3_ranges` (a ranged ``GetObject`` reads only its range);
:mod:`~tdv_airflow.local.fix_multipart_uploads` (an incomplete upload's real ``Initiated``,
``NoSuchUpload`` for a part sent to an unknown upload).
``TDV_MOTO_FIXES`` (comma-separated names of :data:`FIXES`, empty for none) chooses
which are installed; unset, all are. Without moto the module is not importable (the
``local`` extra).
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable

from tdv_airflow.exceptions import InvalidInputError

#: The fidelity fixes, by module name under :mod:`tdv_airflow.local`, in install order.
FIXES = (
    "fix_layer_ref",
    "fix_function_layers",  # created with its layers; a changed layer version replaced
    "fix_api_keys",
    "fix_stack_updates",
    "fix_update_refs",
    "fix_no_value",
    "fix_list_parameters",  # list parameters described as given, not a repr
    "fix_lambda_authorization",  # Lambda requests: signature, ARN, action names
    "fix_role_policy",
    "fix_architectures",
    "fix_stack_conditions",  # the caller's CloudFormation condition keys
    "fix_service_role",  # CloudFormation creates roles as the stack's service role
    "fix_alarms",  # AWS::CloudWatch::Alarm in CloudFormation
    "fix_lambda_versions",  # published versions are numbered, immutable snapshots
    "fix_lambda_aliases",  # alias RevisionId, routing checks, versions aliases use
    "fix_lambda_policies",  # a policy per version and alias; duplicate ids refused
    "fix_provisioned_concurrency",  # Put/Get/Delete/List on a version or an alias
    "fix_function_settings",  # EphemeralStorage and SnapStart through CloudFormation
    "fix_apigatewayv2",  # AWS::ApiGatewayV2 Api/Integration/Route/Stage in CloudFormation
    "fix_function_url",  # a function URL per qualifier (the alias live)
    "fix_s3_ranges",  # a ranged GetObject reads only its range (cost, not answers)
    "fix_multipart_uploads",  # real Initiated times; NoSuchUpload for unknown uploads
)
#: The environment variable naming the fixes to install (all when unset).
FIXES_ENV = "TDV_MOTO_FIXES"


def chosen_fixes(value: str | None) -> tuple[str, ...]:
    """The fixes a ``TDV_MOTO_FIXES`` value names (all of :data:`FIXES` for ``None``).

    :param value: comma-separated fix names, or ``None``.
    :raises InvalidInputError: on a name that is not in :data:`FIXES`.
    """
    if value is None:
        return FIXES
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    unknown = [name for name in names if name not in FIXES]
    if unknown:
        raise InvalidInputError(f"{FIXES_ENV} names unknown fixes {unknown}: expected a "
                         f"comma-separated subset of {list(FIXES)}")
    return names


def install_fixes(names: Iterable[str] = FIXES) -> None:
    """Install fixes into this process's moto (before its server starts).

    :param names: fix module names from :data:`FIXES`.
    """
    for name in names:
        importlib.import_module(f"tdv_airflow.local.{name}").install()


def main() -> None:
    """Run ``moto.server`` with the fixes installed; arguments as ``moto_server``'s."""
    install_fixes(chosen_fixes(os.environ.get(FIXES_ENV)))
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
