"""Emulator fidelity: ``Ref`` to an ``AWS::Lambda::LayerVersion`` in moto's CloudFormation.

On AWS, ``{"Ref": "SomeLayerVersion"}`` is the layer version's ARN
(``arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION``). moto 5.2's ``LayerVersion``
model has no ``physical_resource_id``, so the ``Ref`` resolves to the Python object
instead: an output that refers to the layer shows its repr, a function that lists the
layer is created without it, and any later stack update of that function fails with
``'LayerVersion' object has no attribute 'replace'``. :func:`install` gives the model
the ``physical_resource_id`` CloudFormation reads, the version's ARN, so that ``Ref``
returns what AWS returns. Nothing else in moto changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations


def install() -> None:
    """Make ``Ref`` to a layer version its ARN (idempotent)."""
    from moto.awslambda.models import LayerVersion

    if "physical_resource_id" not in vars(LayerVersion):
        LayerVersion.physical_resource_id = property(  # type: ignore[attr-defined]
            lambda self: self.arn)
