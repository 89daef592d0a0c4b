"""``tdv_airflow.local.moto_server`` installs the chosen fixes, and refuses unknown ones."""

from __future__ import annotations

from pathlib import Path

import pytest

from tdv_airflow.exceptions import InvalidInputError, LocalAwsError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.moto_server import FIXES, chosen_fixes


def test_every_fix_is_installed_unless_told_otherwise() -> None:
    assert chosen_fixes(None) == FIXES == (
        "fix_layer_ref", "fix_function_layers",
        "fix_api_keys", "fix_stack_updates", "fix_update_refs",
        "fix_no_value", "fix_list_parameters", "fix_lambda_authorization",
        "fix_role_policy", "fix_architectures", "fix_stack_conditions", "fix_service_role",
        "fix_alarms", "fix_lambda_versions", "fix_lambda_aliases", "fix_lambda_policies",
        "fix_provisioned_concurrency", "fix_function_settings",
        "fix_apigatewayv2", "fix_function_url", "fix_s3_ranges",
        "fix_multipart_uploads")
    assert chosen_fixes("") == ()
    assert chosen_fixes(" fix_api_keys ,") == ("fix_api_keys",)


def test_an_unknown_fix_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"unknown fixes \['fix_everything'\]"):
        chosen_fixes("fix_layer_ref,fix_everything")
    log = tmp_path / "moto.log"
    with pytest.raises(LocalAwsError, match="exited"):
        LocalAws(fixes=("fix_everything",), log_path=log).start()
    assert "fix_everything" in log.read_text()
