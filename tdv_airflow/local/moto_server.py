"""Start moto's server with one fidelity fix (used by :mod:`tdv_airflow.local.aws`).

In moto 5.2, ``Ref`` to an ``AWS::Lambda::LayerVersion`` resolves to the Python object
instead of the layer version's ARN, as AWS returns. A function that lists such a layer
is then created without it, and any stack update of that function fails with
``'LayerVersion' object has no attribute 'replace'``. Giving the class the
``physical_resource_id`` CloudFormation reads makes ``Ref`` return the ARN. Nothing else
in moto is changed; without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import sys


def _patch_layer_version_ref() -> None:
    from moto.awslambda.models import LayerVersion

    if "physical_resource_id" not in vars(LayerVersion):
        LayerVersion.physical_resource_id = property(  # type: ignore[attr-defined]
            lambda self: self.arn)


def main() -> None:
    """Run ``moto.server`` with the fix applied; arguments as ``moto_server``'s."""
    _patch_layer_version_ref()
    from tdv_airflow.local.fix_api_keys import install as install_api_key_models

    install_api_key_models()
    from moto.server import main as moto_main

    moto_main(sys.argv[1:])


if __name__ == "__main__":
    main()
