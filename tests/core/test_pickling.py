"""The preprocessing function travels by value: it loads where its module is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tdv_airflow.core.pickling import dumps_by_value, resolve_callable
from tdv_airflow.exceptions import InvalidInputError

MODULE = textwrap.dedent('''
    import math

    SCALE = 3.0

    def _helper(v):
        return math.sqrt(v) * SCALE

    def _twice(v):
        return 2 * _helper(v)

    def prepro_plain(payload):
        return [_twice(x) for x in payload["x"]]

    def make_prepro(offset):
        def prepro(payload):
            return [_helper(x) + offset for x in payload["x"]]
        return prepro
''')

LOADER = textwrap.dedent('''
    import importlib.util, json, sys
    import dill
    assert importlib.util.find_spec(sys.argv[2]) is None, "defining module importable"
    fn = dill.loads(open(sys.argv[1], "rb").read())
    print(json.dumps(fn({"x": [1.0, 4.0, 9.0]})))
''')


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    name = f"user_features_{tmp_path.name.replace('-', '_')}"
    src = tmp_path / "src"
    src.mkdir()
    (src / f"{name}.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(src))
    import importlib

    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def _load_elsewhere(payload: bytes, module_name: str, tmp_path: Path) -> list[float]:
    pkl = tmp_path / "fn.pkl"
    pkl.write_bytes(payload)
    out = subprocess.run([sys.executable, "-c", LOADER, str(pkl), module_name],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("factory", ["plain", "closure"])
def test_function_with_helpers_and_closure_loads_without_its_module(
        user_module, tmp_path: Path, factory: str) -> None:
    fn = user_module.prepro_plain if factory == "plain" else user_module.make_prepro(0.5)
    expected = fn({"x": [1.0, 4.0, 9.0]})
    payload = dumps_by_value(fn)
    assert _load_elsewhere(payload, user_module.__name__, tmp_path) == expected


def test_plain_dill_would_pickle_it_by_reference(user_module, tmp_path: Path) -> None:
    """The trap this module exists for: without by-value, loading fails in Lambda."""
    import dill

    payload = dill.dumps(user_module.prepro_plain, recurse=True)
    pkl = tmp_path / "ref.pkl"
    pkl.write_bytes(payload)
    out = subprocess.run([sys.executable, "-c", LOADER, str(pkl), user_module.__name__],
                         capture_output=True, text=True, cwd=tmp_path, check=False)
    assert out.returncode != 0
    assert "ModuleNotFoundError" in out.stderr


def test_module_attributes_are_restored(user_module) -> None:
    dumps_by_value(user_module.prepro_plain)
    assert user_module.prepro_plain.__module__ == user_module.__name__
    assert user_module._helper.__module__ == user_module.__name__


def test_same_function_same_bytes(user_module) -> None:
    assert dumps_by_value(user_module.prepro_plain) == dumps_by_value(user_module.prepro_plain)


def test_unpicklable_function_is_named_in_the_error() -> None:
    gen = (i for i in range(3))

    def uses_generator(payload):
        return next(gen)

    with pytest.raises(InvalidInputError, match="uses_generator.*cannot be pickled"):
        dumps_by_value(uses_generator)


def test_not_callable() -> None:
    with pytest.raises(InvalidInputError, match="callable"):
        dumps_by_value(42)  # type: ignore[arg-type]


def test_resolve_import_path(user_module) -> None:
    name = user_module.__name__
    assert resolve_callable(f"{name}:prepro_plain") is user_module.prepro_plain
    assert resolve_callable(f"{name}.prepro_plain") is user_module.prepro_plain


@pytest.mark.parametrize("spec,match", [
    ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
    ("json:no_such_fn", "has no attribute 'no_such_fn'"),
    ("json:__doc__", "not a callable"),
    ("nodots", "expected 'package.module:function'"),
    ("", "import path"),
])
def test_bad_import_paths(spec: str, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        resolve_callable(spec)


_SEEDED = '''
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import seeded_prepro
from tdv_airflow.core.pickling import dumps_by_value
print(hashlib.sha256(dumps_by_value(seeded_prepro.prepro)).hexdigest())
'''
_MODULE = '''
LIMITS = {"low": 0.0, "high": 10.0}
NAMES = ("a", "b", "c", "d")


def _clip(value):
    return min(max(float(value), LIMITS["low"]), LIMITS["high"])


def prepro(payload):
    rows = payload if isinstance(payload, list) else [payload]
    if not rows:
        raise ValueError("no rows")
    return [[_clip(row[name]) for name in NAMES] for row in rows if len(row) == len(NAMES)]
'''


def test_the_same_function_pickles_to_the_same_bytes_under_any_hash_seed(
        tmp_path: Path) -> None:
    """dill gathers globals through sets: without ordering them, the bytes (and so the
    content-addressed key) changed with each process's PYTHONHASHSEED."""
    (tmp_path / "seeded_prepro.py").write_text(_MODULE)
    digests = set()
    for seed in ("1", "2", "3", "4"):
        done = subprocess.run(  # noqa: S603 - this interpreter, fixed script
            [sys.executable, "-c", _SEEDED, str(tmp_path)], capture_output=True, text=True,
            env={**os.environ, "PYTHONHASHSEED": seed}, check=True, timeout=120)
        digests.add(done.stdout.strip())
    assert len(digests) == 1, digests
