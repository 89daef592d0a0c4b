"""The operator guides (``docs/``) build without a warning, their snippets run, and they
cannot drift from the code.

* ``sphinx-build -W --keep-going -b html`` and ``-b doctest`` run once per module, side by
  side, into a temporary folder (nothing is downloaded: no intersphinx).
* Every operator, sensor, trigger and hook the provider declares (``provider_info`` and
  the packages' ``__all__``) has one guide page (``.. autoclass::``), and that page's
  ``Parameters`` table lists exactly the ``__init__`` parameters, with their defaults: a
  parameter added, removed or given another default without touching the guide fails.
* Every ``literalinclude`` names a file that exists and markers it holds, and the code
  between them compiles; every ``howto_`` marker of the example DAGs is shown by a
  guide.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDES = DOCS / "guides"
DAGS = ROOT / "dags"
PARTIAL = GUIDES / "_partials" / "generic_parameters.rst"

#: Table rows: ``* - ``name``\n  - default`` (the first two cells of a list-table row).
_ROW = re.compile(r"^\s*\* - ``(?P<name>(?:\*\*)?\w+)``\s*\n\s*- (?P<default>.*)$", re.M)
_AUTOCLASS = re.compile(r"^\.\. autoclass:: (\S+)", re.M)
_INCLUDE = re.compile(r"^(?P<indent> *)\.\. literalinclude:: (?P<path>\S+)\n"
                      r"(?P<options>(?:(?P=indent) +:[\w-]+:.*\n)*)", re.M)
_START = re.compile(r"# \[START (\w+)\]")


def _build(builder: str, out: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(out / "airflow-home"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-q", "-b", builder,
         "-d", str(out / "doctrees"), str(DOCS), str(out / builder)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """Both builds, run side by side: builder -> (exit status, output, its folder)."""
    outs = {builder: tmp_path_factory.mktemp(builder) for builder in ("html", "doctest")}
    running = {builder: _build(builder, out) for builder, out in outs.items()}
    done = {}
    for builder, process in running.items():
        output, _ = process.communicate(timeout=300)
        done[builder] = (process.returncode, output, outs[builder] / builder)
    return done


def test_the_site_builds_with_no_warning(builds: dict[str, tuple[int, str, Path]]) -> None:
    status, output, out = builds["html"]
    assert status == 0, output
    assert "WARNING" not in output and "ERROR" not in output, output
    for page in ("index", "guides/create_stack", "guides/hook", "iam", "rollout",
                 "dependencies", "aws-behaviour", "changelog", "guides/local"):
        assert (out / f"{page}.html").is_file(), page


def test_the_snippets_run_as_doctests(builds: dict[str, tuple[int, str, Path]]) -> None:
    status, output, out = builds["doctest"]
    report = (out / "output.txt").read_text()
    assert status == 0, output + report
    assert "0 failures in tests" in report, report
    tests = int(re.search(r"^\s*(\d+) tests?$", report, re.M).group(1))  # type: ignore[union-attr]
    assert tests >= len(_guided_classes()), report  # at least one per guide page


# --- every class has its guide, every parameter is in it ---------------------------------


def _declared_classes() -> set[type]:
    """The operators, sensors, triggers and hooks the provider declares."""
    from importlib import import_module

    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
    from airflow.sdk import BaseOperator
    from airflow.triggers.base import BaseTrigger

    from tdv_airflow.provider_info import get_provider_info

    info = get_provider_info()
    modules = [m for kind in ("operators", "sensors", "triggers", "hooks")
               for entry in info[kind] for m in entry["python-modules"]]
    bases = (BaseOperator, BaseTrigger, AwsBaseHook)
    found = set()
    for name in modules:
        module = import_module(name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == name and issubclass(obj, bases) \
                    and not obj.__name__.startswith("_"):
                found.add(obj)
    for package in ("operators", "sensors", "triggers", "hooks"):
        module = import_module(f"tdv_airflow.{package}")
        found.update(getattr(module, name) for name in module.__all__)
    return found


def _guided_classes() -> dict[type, Path]:
    """Each class documented by a guide page (its ``.. autoclass::``) -> the page."""
    from importlib import import_module

    pages: dict[type, Path] = {}
    for page in sorted(GUIDES.glob("*.rst")):
        for path in _AUTOCLASS.findall(page.read_text()):
            module, name = path.rsplit(".", 1)
            cls = getattr(import_module(module), name)
            assert cls not in pages, f"{cls.__name__} has two guides: {pages[cls]}, {page}"
            pages[cls] = page
    return pages


def _table(text: str, caption: str) -> dict[str, str]:
    """The first two cells of each row of the list-table with ``caption``."""
    start = text.index(f".. list-table:: {caption}\n")
    body = text.index("\n", start)
    end = re.search(r"^\S", text[body:], re.M)
    block = text[body:body + end.start()] if end else text[body:]
    return {m["name"]: m["default"].strip() for m in _ROW.finditer(block)}


def _parameters(cls: type) -> dict[str, str]:
    """``__init__``'s parameters as a guide lists them: name -> ``repr(default)``,
    ``required``, or ``—`` for ``**connection``. A constructor that only forwards
    (``*args, **kwargs``, the hook) takes the parameters its docstring names, each one
    its base class's."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    params = [p for p in signature.parameters.values() if p.name != "self"]
    if all(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        named = re.findall(r":param (\w+):", cls.__doc__ or "")
        base = next(b for b in cls.__mro__[1:] if "__init__" in vars(b))
        inherited = inspect.signature(base.__init__).parameters  # type: ignore[misc]
        assert named and set(named) <= set(inherited), (cls, named, list(inherited))
        params = [inherited[n] for n in named]
    listed = {}
    for p in params:
        if p.kind == p.VAR_KEYWORD:
            if p.name != "kwargs":  # **kwargs goes to Airflow's BaseOperator
                listed[f"**{p.name}"] = "—"
        elif p.kind != p.VAR_POSITIONAL:
            listed[p.name] = "required" if p.default is p.empty else f"``{p.default!r}``"
    return listed


def test_every_declared_class_has_one_guide() -> None:
    declared, guided = _declared_classes(), _guided_classes()
    assert declared, "no class found in provider_info"
    missing = sorted(c.__name__ for c in declared - set(guided))
    assert not missing, f"no guide page documents {missing} (add a guides/*.rst with " \
                        f"its '.. autoclass::')"
    index = (DOCS / "index.rst").read_text()
    for page in guided.values():
        assert f"guides/{page.stem}\n" in index, f"{page.name} is not in index.rst's toctree"


@pytest.mark.parametrize("cls", sorted(_guided_classes(), key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_every_parameter_is_in_its_guide_with_its_default(cls: type) -> None:
    page = _guided_classes()[cls]
    listed = _table(page.read_text(), "Parameters")
    wanted = _parameters(cls)
    assert list(listed) == list(wanted), (
        f"{page.relative_to(ROOT)}: the Parameters table lists {list(listed)}, "
        f"{cls.__name__}.__init__ takes {list(wanted)} (same names, same order)")
    assert listed == wanted, f"{page.relative_to(ROOT)}: defaults differ: {listed} != {wanted}"


def test_the_connection_parameters_are_those_every_task_and_trigger_takes() -> None:
    from tdv_airflow.hooks.connection import ConnectionArguments
    from tdv_airflow.operators.base import AwsConnectionMixin
    from tdv_airflow.triggers.base import StackTriggerBase

    listed = _table(PARTIAL.read_text(), "Connection parameters")
    assert listed == _parameters(AwsConnectionMixin)
    connection = list(inspect.signature(ConnectionArguments.set_connection).parameters)[1:]
    assert list(listed) == connection
    trigger = _parameters(StackTriggerBase)
    assert {k: v for k, v in trigger.items() if k in listed} == listed


def test_every_guide_names_only_real_exceptions_and_has_every_section() -> None:
    import tdv_airflow.exceptions as exceptions

    for page in _guided_classes().values():
        text = page.read_text()
        for section in ("Parameters", "XCom" if "trigger" not in page.stem else "Events",
                        "Retries and idempotency", "Errors", "Reference"):
            assert re.search(rf"^{section}\n-+$", text, re.M), f"{page.name}: no {section}"
        for name in re.findall(r":exc:`~?tdv_airflow\.exceptions\.(\w+)`", text):
            assert isinstance(getattr(exceptions, name, None), type), f"{page.name}: {name}"


def test_the_contract_keys_are_in_their_guides() -> None:
    from tdv_airflow.core.prepare import PREPARE_KEYS
    from tdv_airflow.operators.deployment import CREATE_KEYS

    for page, keys in (("prepare_deployment", PREPARE_KEYS), ("create_stack", CREATE_KEYS)):
        xcom = (GUIDES / f"{page}.rst").read_text().split("\nXCom\n")[1]
        assert all(f"``{key}``" in xcom for key in keys), (page, keys)


def test_every_configuration_option_is_in_the_configuration_guide() -> None:
    from tdv_airflow.provider_info import CONFIG_SECTION, get_provider_info

    options = get_provider_info()["config"][CONFIG_SECTION]["options"]
    listed = _table((GUIDES / "configuration.rst").read_text(), f"``[{CONFIG_SECTION}]``")
    assert {k: v.strip("`") for k, v in listed.items()} == {
        name: option["default"] for name, option in options.items()}


def _cli_options(module: str, *commands: str) -> set[str]:
    """The option strings a console command's ``--help`` shows (nothing is started)."""
    from contextlib import redirect_stdout
    from importlib import import_module
    from io import StringIO

    seen: set[str] = set()
    for command in commands:
        text = StringIO()
        with redirect_stdout(text), pytest.raises(SystemExit):
            import_module(module)._cli([*command.split(), "--help"])
        seen.update(re.findall(r"(?<![\w-])(--?[a-z][a-z-]*)", text.getvalue()))
    return seen - {"-h", "--help"}


def test_every_command_line_option_is_in_the_local_guide() -> None:
    text = (GUIDES / "local.rst").read_text()
    options = (_cli_options("tdv_airflow.local.aws", "")
               | _cli_options("tdv_airflow.local.cli", "invoke", "serve"))
    assert {"--port", "--state-file", "--stack", "--payload", "--qualifier"} <= options
    missing = sorted(o for o in options if f"``{o}``" not in text)
    assert not missing, f"guides/local.rst does not document {missing}"


# --- snippets -----------------------------------------------------------------------------


def _includes() -> Iterator[tuple[Path, Path, dict[str, str]]]:
    for page in sorted(DOCS.rglob("*.rst")):
        for m in _INCLUDE.finditer(page.read_text()):
            options = dict(re.findall(r":([\w-]+): ?(.*)", m["options"]))
            yield page, (page.parent / m["path"]).resolve(), options


def test_every_literalinclude_marker_exists_and_its_code_compiles() -> None:
    seen = 0
    for page, source, options in _includes():
        where = f"{page.relative_to(ROOT)} includes {source.relative_to(ROOT)}"
        assert source.is_file(), where
        text = source.read_text()
        start, end = options.get("start-after"), options.get("end-before")
        assert start and end, f"{where}: include by marker (start-after and end-before)"
        assert text.count(start) == 1, f"{where}: {start!r} found {text.count(start)} times"
        head, tail = text.split(start, 1)
        assert end in tail, f"{where}: {end!r} not after {start!r}"
        snippet = textwrap.dedent(tail.split(end, 1)[0].split("\n", 1)[1].rsplit("\n", 1)[0])
        compile(snippet, where, "exec")
        if start.startswith("[START "):
            assert end == start.replace("[START", "[END"), f"{where}: {start} ... {end}"
        seen += 1
    assert seen >= 7


def test_every_snippet_marker_of_the_example_dags_is_shown_by_a_guide() -> None:
    shown = {o["start-after"] for _page, _source, o in _includes() if "start-after" in o}
    for dag in sorted(DAGS.glob("*.py")):
        ast.parse(dag.read_text())
        for marker in _START.findall(dag.read_text()):
            if marker.startswith("howto_"):
                assert f"[START {marker}]" in shown, f"{dag.name}: {marker} is in no guide"

