"""Where the shipped CloudFormation template and Lambda source live.

In a wheel they are inside the package (``tdv_airflow/_bundled/``); in a source checkout
(editable install) they are the top-level ``templates/`` and ``lambda_src/`` folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent

TEMPLATE_NAME = "stack_template.json"
LAMBDA_SOURCE_NAME = "lbd_request_processor.py"
#: The function-side dependency bundle module, zipped beside the request processor.
BUNDLE_SOURCE_NAME = "tdv_bundle.py"
#: The zip reader the bundle module uses, zipped beside it.
UNZIP_SOURCE_NAME = "tdv_unzip.py"


def _shipped_dir(name: str) -> Path:
    for candidate in (_PACKAGE_DIR / "_bundled" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"tdv-airflow is installed without its {name}/ folder")


def default_template_path() -> Path:
    """The CloudFormation template shipped with tdv-airflow."""
    return _shipped_dir("templates") / TEMPLATE_NAME


def default_lambda_source_path() -> Path:
    """The Lambda request processor shipped with tdv-airflow."""
    return _shipped_dir("lambda_src") / LAMBDA_SOURCE_NAME


def bundle_source_path() -> Path:
    """The function-side dependency bundle module shipped with tdv-airflow."""
    return _shipped_dir("lambda_src") / BUNDLE_SOURCE_NAME
