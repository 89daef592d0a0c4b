"""Emulator fidelity: a stack's list parameters are described as the comma-separated
string they were given.

On AWS, ``DescribeStacks`` answers each parameter's ``ParameterValue`` as a string; a
``CommaDelimitedList`` (or ``List<...>``) parameter is the comma-separated text it was
passed, e.g. ``"arn:aws:s3:::b/m1,arn:aws:s3:::b/m2"``, and ``""`` for an empty one
(https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_Parameter.html:
"ParameterValue: The input value associated with the parameter", type String). moto 5.2
describes the list it split the value into, as its Python repr (``"['m1', 'm2']"``,
``"['']"``), so a caller that reads a parameter back to compute the next update (the
function role's ``RetainedArtifactArns`` keeps what the stack grants on a retry, see
:mod:`tdv_airflow.core.function_scope`) sends that repr, which then grants a bogus
resource and never equals what AWS would compute. :func:`install` makes ``DescribeStacks``
join list values with ``,``, as given. Nothing else changes: the resources still resolve
``Ref`` to the list.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

_MARK = "_tdv_joins_lists"


def described(value: Any) -> Any:
    """A resolved parameter value as DescribeStacks shows it: lists comma-joined.

    :param value: moto's resolved value (a string, a number or a list of them).
    """
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value


def install() -> None:
    """Make DescribeStacks show list parameters as comma-separated strings (idempotent)."""
    from moto.cloudformation.models import Stack

    original: Any = vars(Stack)["parameter_list"].fget
    if getattr(original, _MARK, False):
        return

    def parameter_list(self: Any) -> list[dict[str, Any]]:
        return [{**p, "ParameterValue": described(p["ParameterValue"])}
                for p in original(self)]

    setattr(parameter_list, _MARK, True)
    Stack.parameter_list = property(parameter_list)  # type: ignore[method-assign,assignment]
