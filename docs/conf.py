"""Sphinx configuration of the tdv-airflow operator guides.

Build (warnings are errors, as the test suite builds it)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html
    .venv/bin/python -m sphinx -W --keep-going -b doctest docs docs/_build/doctest

Nothing is downloaded: no intersphinx, no remote images. The Markdown pages (``iam.md``,
``rollout.md``, ``dependencies.md``, ``aws-behaviour.md``) are read by myst-parser where
they are. Autodoc imports the provider, so the build runs with a private ``AIRFLOW_HOME``
when none is set (importing Airflow never writes into ``~/airflow``).
"""

from __future__ import annotations

import doctest
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if "AIRFLOW_HOME" not in os.environ:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="tdv-docs-airflow-home-")
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from tdv_airflow import __version__  # noqa: E402 - after the path and Airflow's home are set

project = "tdv-airflow"
author = "tdv-airflow contributors"
copyright = "tdv-airflow contributors"  # noqa: A001 - the name Sphinx reads
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.doctest",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# The partials are included by the guides, never built alone.
exclude_patterns = ["_build", "guides/_partials/*"]
# The JSON policies the Markdown pages link to are copied as downloads by myst-parser.

# References to exceptions must resolve (each guide's "Errors" names them); other
# references in the docstrings (core helpers, Airflow's classes) are not documented here.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(?!tdv_airflow\.exceptions\.).*")]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_class_signature = "separated"
autodoc_default_options = {"show-inheritance": True}

# The snippets run with the doctest builder: each guide's testcode/doctest blocks build
# the tasks they show (parse-time checks included) without touching AWS.
doctest_global_setup = """
import warnings
warnings.simplefilter("ignore", DeprecationWarning)
"""
doctest_default_flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

html_theme = "alabaster"
html_title = f"tdv-airflow {__version__}"
html_static_path: list[str] = []
html_theme_options = {"description": "Deploy a trained model as a live HTTPS endpoint "
                                     "from Airflow", "fixed_sidebar": True}
