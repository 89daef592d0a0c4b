"""Pickle the user's preprocessing function *by value* with dill.

dill pickles a function by reference (``module.name``) when its module can be imported
where it is pickled. In Lambda the DAG file or the user's package does not exist, so the
function, the helper functions it calls and the values it closes over must travel inside
the pickle. :func:`dumps_by_value` marks every function of the chosen modules as
belonging to ``__main__`` while dill runs (which makes dill copy them), then restores
them. Functions of other modules (NumPy, the standard library) stay references and must
be importable in Lambda (the layers provide them).
"""

from __future__ import annotations

import functools
import importlib
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from tdv_airflow.exceptions import InvalidInputError


def resolve_callable(spec: Callable[..., Any] | str) -> Callable[..., Any]:
    """Turn ``"pkg.module:attr"`` (or ``"pkg.module.attr"``) into the object it names.

    :param spec: a callable (returned as is) or an import path.
    :raises InvalidInputError: when the path is malformed, the module cannot be
        imported or the attribute is missing or not callable.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise InvalidInputError(
            f"prepro_fn must be a callable or an import path such as "
            f"'my_pkg.features:prepare', got {spec!r}"
        )
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        raise InvalidInputError(
            f"invalid import path {spec!r}: expected 'package.module:function'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInputError(
            f"cannot import module {module_name!r} of prepro_fn {spec!r}: {exc}"
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InvalidInputError(f"module {module_name!r} has no attribute {attr!r} "
                                    f"(prepro_fn {spec!r})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise InvalidInputError(f"prepro_fn {spec!r} names {type(obj).__name__}, not a callable")
    return obj  # type: ignore[no-any-return]


def _referenced_functions(fn: types.FunctionType, modules: set[str]) -> Iterator[Any]:
    """Yield ``fn`` and every function of ``modules`` it reaches (globals, closure, defaults)."""
    seen: set[int] = set()
    stack: list[Any] = [fn]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, functools.partial):
            stack.extend([obj.func, *obj.args, *obj.keywords.values()])
            continue
        if not isinstance(obj, types.FunctionType) or obj.__module__ not in modules:
            continue
        yield obj
        code_names = _code_names(obj.__code__)
        stack.extend(obj.__globals__[n] for n in code_names if n in obj.__globals__)
        stack.extend(c.cell_contents for c in obj.__closure__ or () if _has_contents(c))
        stack.extend(obj.__defaults__ or ())
        stack.extend((obj.__kwdefaults__ or {}).values())


def _has_contents(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - probing an empty cell raises
    except ValueError:
        return False
    return True


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


#: Held while dill's global collector is swapped (one pickling at a time per process).
_ORDER_LOCK = threading.Lock()


@contextmanager
def _ordered_globals() -> Iterator[None]:
    """Make dill write a function's globals in name order.

    dill 0.4 collects the globals a function uses through sets, whose order follows the
    process's string-hash seed (``PYTHONHASHSEED``, random per process): the same function
    pickled on two workers, or before and after a worker restart, gave different bytes, so
    a different content-addressed key, a second upload and a stack update for nothing.
    dill looks ``globalvars`` up in :mod:`dill.detect` at every call; for the length of
    the block it gets one that returns the same dict sorted by name.
    """
    from dill import detect

    original = detect.globalvars

    def ordered(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return dict(sorted(original(*args, **kwargs).items()))

    with _ORDER_LOCK:
        detect.globalvars = ordered
        try:
            yield
        finally:
            detect.globalvars = original


@contextmanager
def _as_main(functions: Iterable[Any]) -> Iterator[None]:
    saved = [(f, f.__module__) for f in functions]
    try:
        for f, _ in saved:
            f.__module__ = "__main__"
        yield
    finally:
        for f, module in saved:
            f.__module__ = module


def dumps_by_value(fn: Callable[..., Any], extra_modules: Iterable[str] = ()) -> bytes:
    """Pickle ``fn`` with dill so that it loads where its module does not exist.

    :param fn: the preprocessing function (a function, lambda, closure or partial).
    :param extra_modules: further modules whose functions must travel by value (the
        function's own module always does).
    :raises InvalidInputError: when ``fn`` is not callable or dill cannot pickle it.
    """
    import dill

    if not callable(fn):
        raise InvalidInputError(f"prepro_fn must be a callable, got {fn!r}")
    root = getattr(fn, "func", fn)  # functools.partial
    modules = {getattr(root, "__module__", None) or "__main__", *extra_modules}
    targets = list(_referenced_functions(root, modules)) if isinstance(
        root, types.FunctionType) else []
    try:
        with _as_main(targets), _ordered_globals():
            return bytes(dill.dumps(fn, recurse=True))
    except Exception as exc:  # dill raises many types (PicklingError, TypeError, ...)
        raise InvalidInputError(
            f"prepro_fn {getattr(fn, '__qualname__', fn)!r} cannot be pickled with dill: "
            f"{type(exc).__name__}: {exc}. Keep it to plain Python, NumPy/pandas calls and "
            "module-level helpers; open clients, locks and files cannot travel to Lambda"
        ) from exc

