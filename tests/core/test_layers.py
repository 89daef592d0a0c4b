"""Dependency layers: deterministic, slimmed, cached, size-checked, built offline."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core import deployment, layer_build, layers, zips
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import ArtifactError, InvalidInputError

TOY_DIST = "tdv-toy-dep"


def names_in(data: bytes) -> list[str]:
    return zipfile.ZipFile(io.BytesIO(data)).namelist()


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a tiny pure-Python wheel built here (no download: hatchling is
    installed and pip runs without an index)."""
    root = tmp_path_factory.mktemp("toy")
    pkg = root / "src" / "toypkg"
    (pkg / "tests").mkdir(parents=True)
    (pkg / "sub").mkdir()
    (root / "src" / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
        f'[project]\nname = "{TOY_DIST}"\nversion = "0.1.0"\n'
        '[project.scripts]\ntoy = "toypkg:main"\n'
        '[tool.hatch.build.targets.wheel]\npackages = ["toypkg"]\n')
    (pkg / "__init__.py").write_text("VALUE = 42\n\ndef main():\n    print(VALUE)\n")
    (pkg / "__init__.pyi").write_text("VALUE: int\n")
    (pkg / "sub" / "mod.py").write_text("X = 1\n")
    (pkg / "tests" / "test_toy.py").write_text("def test_x():\n    pass\n")
    out = root / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--no-index", "--quiet", "-w", str(out), str(root / "src")], check=True)
    assert list(out.glob("*.whl"))
    return out


def build_toy(wheelhouse: Path, cache: Path, **kw: Any) -> Any:
    kw.setdefault("find_links", [wheelhouse])
    kw.setdefault("no_index", True)
    return layers.build_requirements_layer([f"{TOY_DIST}==0.1.0"], cache_dir=cache, **kw)


# ------------------------------------------------------------------ requirements

def test_requirements_layer_is_installed_under_python_and_slimmed(wheelhouse: Path,
                                                                   tmp_path: Path) -> None:
    art = build_toy(wheelhouse, tmp_path / "cache")
    names = names_in(art.data)
    assert art.kind == "deps_layer" and art.filename == "deps_layer.zip"
    assert "python/toypkg/__init__.py" in names
    assert "python/toypkg/sub/mod.py" in names
    assert "python/tdv_toy_dep-0.1.0.dist-info/METADATA" in names
    # slimmed: no tests, stubs, byte code, console scripts or install records
    assert not [n for n in names if "/tests/" in n or n.endswith((".pyi", ".pyc"))]
    assert not [n for n in names if n.startswith("python/bin/")]
    assert not [n for n in names if n.endswith(("/RECORD", "/INSTALLER", "/REQUESTED"))]
    assert names == sorted(names)
    infos = zipfile.ZipFile(io.BytesIO(art.data)).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o644}


def test_requirements_layer_is_deterministic_across_builds(wheelhouse: Path,
                                                           tmp_path: Path) -> None:
    first = build_toy(wheelhouse, tmp_path / "a")
    second = build_toy(wheelhouse, tmp_path / "b")  # another cache: pip runs again
    assert first.data == second.data and first.sha256 == second.sha256


def test_second_build_is_a_cache_hit_without_pip(wheelhouse: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = build_toy(wheelhouse, cache)
    cached = list(cache.glob("*.zip"))
    assert len(cached) == 1 and cached[0].read_bytes() == first.data
    # No wheel to install any more: only a cache hit can succeed.
    empty = tmp_path / "empty"
    empty.mkdir()
    key = layer_build.requirements_cache_key([f"{TOY_DIST}==0.1.0"], layer_build.python_minor(),
                                             find_links=[wheelhouse], no_index=True)
    assert cached[0].name == f"{key}.zip"
    for whl in wheelhouse.glob("*.whl"):
        whl.rename(empty / whl.name)
    try:
        again = build_toy(wheelhouse, cache)
    finally:
        for whl in empty.glob("*.whl"):
            whl.rename(wheelhouse / whl.name)
    assert again.data == first.data
    with pytest.raises(ArtifactError, match="pip could not install"):
        build_toy(empty, tmp_path / "fresh", find_links=[tmp_path / "nowhere"])


def test_layers_are_cached_in_the_shared_cache_folder(wheelhouse: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TDV_LAYER_CACHE", raising=False)
    monkeypatch.setenv("TDV_CACHE_DIR", str(tmp_path / "tdv"))
    art = layers.build_requirements_layer([f"{TOY_DIST}==0.1.0"], find_links=[wheelhouse],
                                          no_index=True)
    assert [p.read_bytes() for p in (tmp_path / "tdv" / "layers").glob("*.zip")] == [art.data]


def test_cache_key_ignores_order_comments_and_blanks_but_not_the_platform() -> None:
    key = layer_build.requirements_cache_key
    base = key(["b==2", "a==1"], "3.11")
    assert base == key(["a==1  # pinned", "", "b==2", "a==1"], "3.11")
    assert base == key("a==1\n# comment\nb==2\n", "3.11")
    assert base != key(["a==1", "b==2"], "3.12")
    assert base != key(["a==1", "b==2"], "3.11", architecture="arm64")
    assert base != key(["a==1", "b==3"], "3.11")
    assert base != key(["a==1", "b==2"], "3.11", pip_args=["--pre"])


def test_requirements_file_path_is_read(wheelhouse: Path, tmp_path: Path) -> None:
    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"# deps\n{TOY_DIST}==0.1.0\n")
    art = layers.build_requirements_layer(reqs, find_links=[wheelhouse], no_index=True,
                                          cache_dir=tmp_path / "c")
    assert art.data == build_toy(wheelhouse, tmp_path / "d").data


def test_layer_targets_another_python_and_architecture(wheelhouse: Path,
                                                        tmp_path: Path) -> None:
    art = build_toy(wheelhouse, tmp_path / "c", python_version="3.13", architecture="arm64")
    assert "python/toypkg/__init__.py" in names_in(art.data)


def test_pip_platforms_follow_the_runtime_glibc() -> None:
    tags = layer_build.pip_platforms("3.11")
    assert tags[0] == "manylinux_2_26_x86_64" and tags[-1] == "manylinux2014_x86_64"
    assert "manylinux_2_17_x86_64" in tags and "manylinux_2_28_x86_64" not in tags
    assert layer_build.pip_platforms("3.12", "arm64")[0] == "manylinux_2_34_aarch64"
    with pytest.raises(InvalidInputError, match="architecture"):
        layer_build.pip_platforms("3.11", "sparc")


def test_empty_requirements_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        layers.build_requirements_layer(["# nothing"], cache_dir=tmp_path)


# ------------------------------------------------------------------ installed

def test_installed_layer_follows_requirements_and_keeps_bundled_libraries(
        tmp_path: Path) -> None:
    files = layers.installed_files(["sklearn"])  # an import name
    tops = {name.split("/")[1] for name in files}
    assert {"sklearn", "numpy", "scipy", "joblib", "threadpoolctl.py"} <= tops
    assert {"numpy.libs", "scipy.libs"} <= tops  # the bundled shared libraries
    assert "cloudpickle" in tops  # joblib's requirement, found transitively
    assert not {"boto3", "botocore"} & tops  # the runtime provides them
    bare = layers.installed_files(["joblib"], with_requirements=False)
    assert {name.split("/")[1] for name in bare} == {"joblib", "joblib-" + _version("joblib")
                                                     + ".dist-info"}


def _version(dist: str) -> str:
    from importlib import metadata

    return metadata.version(dist)


def test_installed_layer_is_deterministic_slimmed_and_cached(tmp_path: Path) -> None:
    first = layers.build_installed_layer(["threadpoolctl", "dill"], cache_dir=tmp_path / "a")
    second = layers.build_installed_layer(["threadpoolctl", "dill"], cache_dir=tmp_path / "b")
    assert first.data == second.data
    names = names_in(first.data)
    assert "python/threadpoolctl.py" in names and "python/dill/__init__.py" in names
    assert not [n for n in names if "__pycache__" in n or "/tests/" in n]
    assert not [n for n in names if n.endswith("/RECORD")]
    (cached,) = (tmp_path / "a").glob("*.zip")
    cached.write_bytes(b"PK-marker")  # a hit returns the cached bytes as they are
    hit = layers.build_installed_layer(["threadpoolctl", "dill"], cache_dir=tmp_path / "a")
    assert hit.data == b"PK-marker"


def test_from_installed_refuses_an_unknown_package(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="not_a_real_package"):
        layers.build_installed_layer(["not_a_real_package"], cache_dir=tmp_path)


def test_from_installed_refuses_another_architecture(tmp_path: Path) -> None:
    import platform

    other = "arm64" if platform.machine().lower() in ("x86_64", "amd64") else "x86_64"
    with pytest.raises(InvalidInputError, match="requirements"):
        layers.build_installed_layer(["dill"], architecture=other, cache_dir=tmp_path)


# ------------------------------------------------------------------ slimming rules

@pytest.mark.parametrize(("name", "kept"), [
    ("python/numpy/__init__.py", True),
    ("python/numpy.libs/libopenblas.so", True),
    ("python/numpy/testing/__init__.py", True),
    ("python/numpy/tests/test_x.py", False),
    ("python/scipy/io/test/data.mat", False),
    ("python/pkg/__pycache__/m.cpython-311.pyc", False),
    ("python/pkg/m.pyc", False),
    ("python/pkg/m.pyi", False),
    ("python/pkg/m.pyx", False),
    ("python/pkg/m.pxd", False),
    ("python/bin/toy", False),
    ("python/pkg-1.0.dist-info/RECORD", False),
    ("python/pkg-1.0.dist-info/INSTALLER", False),
    ("python/pkg-1.0.dist-info/METADATA", True),
    ("python/pkg-1.0.dist-info/entry_points.txt", True),
])
def test_keep_in_layer(name: str, kept: bool) -> None:
    assert zips.keep_in_layer(name) is kept


# ------------------------------------------------------------------ checks

def test_size_check_names_every_part() -> None:
    assert layers.check_unzipped_size({"a": 10, "b": 20}, limit=30) == 30
    with pytest.raises(InvalidInputError) as info:
        layers.check_unzipped_size({"function code": 1_000, "dependency layer": 300_000_000})
    text = str(info.value)
    assert "function code 0.0 MB" in text and "dependency layer 300.0 MB" in text
    assert "262144000" in text and "300001000" in text


def test_layer_arns_and_count_are_checked() -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:layer:my-layer:3"
    assert layers.check_layer_arns(f"{arn}, {arn}") == [arn, arn]
    assert layers.check_layer_arns(None) == [] and layers.check_layer_arns("") == []
    with pytest.raises(InvalidInputError, match="layer version ARN"):
        layers.check_layer_arns(["arn:aws:lambda:eu-west-1:123456789012:layer:my-layer"])
    assert layers.check_layer_count(5) == 5
    with pytest.raises(InvalidInputError, match="at most 5"):
        layers.check_layer_count(6)


def test_dependencies_coerce_from_json_values(tmp_path: Path) -> None:
    assert layers.Dependencies.coerce(None) is None
    assert layers.Dependencies.coerce({}) is None
    deps = layers.Dependencies.coerce({"requirements": ["a==1"], "find_links": ["/w"]})
    assert deps is not None and deps.requirements == ("a==1",) and deps.find_links == ("/w",)
    assert layers.Dependencies.coerce(["a==1"]) == layers.Dependencies(requirements=("a==1",))
    assert deps.to_dict()["requirements"] == ["a==1"]
    with pytest.raises(InvalidInputError, match="unknown keys"):
        layers.Dependencies.coerce({"requirement": ["a"]})
    with pytest.raises(InvalidInputError, match="dependencies must be"):
        layers.Dependencies.coerce(42)
    with pytest.raises(InvalidInputError, match="zip_path alone"):
        layers.Dependencies(zip_path="x.zip", requirements=("a",))


def test_dependencies_merge_installed_and_requirements(wheelhouse: Path,
                                                       tmp_path: Path) -> None:
    deps = layers.Dependencies(requirements=(f"{TOY_DIST}==0.1.0",),
                               from_installed=("threadpoolctl",), find_links=(str(wheelhouse),),
                               no_index=True, cache_dir=str(tmp_path))
    first, second = deps.build(), deps.build()
    assert first.data == second.data
    names = names_in(first.data)
    assert "python/toypkg/__init__.py" in names and "python/threadpoolctl.py" in names


def test_ready_made_zip_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "deps.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("python/x.py", "X = 1\n")
    assert layers.Dependencies(zip_path=str(path)).build().data == path.read_bytes()
    (tmp_path / "not.zip").write_text("no")
    with pytest.raises(InvalidInputError, match="not a zip"):
        layers.Dependencies(zip_path=str(tmp_path / "not.zip")).build()


# ----------------------------------------------- the limit holds before any AWS call

def no_aws() -> tuple[AwsClients, list[str]]:
    """Clients that record and refuse every use: any AWS call fails the test."""
    calls: list[str] = []

    def factory(service: str) -> Any:
        calls.append(service)
        raise AssertionError(f"AWS ({service}) was called")

    return AwsClients(factory, "us-east-1"), calls


def big_zip(path: Path, size: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("python/big.bin", "w", force_zip64=True) as out:
            chunk = bytes(1 << 20)
            for _ in range(size // len(chunk) + 1):
                out.write(chunk)
    return path


def prepro(payload: Any) -> Any:
    return payload


def test_oversized_function_fails_before_any_aws_call(tmp_path: Path) -> None:
    # packaging="layer": as a layer it cannot pass (auto would make it a bundle, see
    # tests/core/test_bundle.py).
    deps = {"zip_path": str(big_zip(tmp_path / "deps.zip", layers.LAMBDA_UNZIPPED_LIMIT_BYTES)),
            "packaging": "layer"}
    clients, calls = no_aws()
    with pytest.raises(InvalidInputError) as info:
        deployment.prepare(clients, "tdv-test-bucket", "m/model.pkl", prepro,
                           dependencies=deps)
    assert "above AWS Lambda's limit" in str(info.value)
    assert "dependency layer 263.2 MB" in str(info.value)
    assert "function code" in str(info.value) and "dill layer" in str(info.value)
    assert calls == []


def test_too_many_layers_fail_before_any_aws_call(tmp_path: Path) -> None:
    clients, calls = no_aws()
    arns = [f"arn:aws:lambda:us-east-1:123456789012:layer:l{i}:1" for i in range(4)]
    path = tmp_path / "deps.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("python/x.py", "X = 1\n")
    with pytest.raises(InvalidInputError, match="6 layers"):
        deployment.prepare(clients, "tdv-test-bucket", "m/model.pkl", prepro,
                           dependencies={"zip_path": str(path)}, extra_layer_arns=arns)
    assert calls == []


def test_stack_parameters_carry_the_layers() -> None:
    response = {
        "bucket": "b", "model_s3_key": "m", "s3_prepro_fn_location": "p",
        "s3_lbd_key": "c", "s3_layer_key": "l", "runtime": "python3.11",
        "python_version": "3.11", "dill_version": "0.4.1",
        "sha256": {"model": "0" * 64, "prepro_fn": "1" * 64, "lambda_code": "2" * 64,
                   "layer": "3" * 64, "deps_layer": "4" * 64},
        "s3_deps_layer_key": "tdv-airflow/deps_layer/x/deps_layer.zip",
        "extra_layer_arns": ["arn:aws:lambda:us-east-1:123456789012:layer:a:1",
                             "arn:aws:lambda:us-east-1:123456789012:layer:b:2"],
        "template_parameters": ["ArtifactBucket", "ModelKey", "ModelSha256", "PreproKey",
                                "PreproSha256", "CodeKey", "CodeSha256", "LayerKey",
                                "LayerSha256", "Runtime", "PicklePythonVersion",
                                "DillVersion", "FunctionName", "DepsLayerKey",
                                "DepsLayerSha256", "ExtraLayerArns"],
    }
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in deployment.stack_parameters(response, "s")}
    assert params["DepsLayerKey"] == "tdv-airflow/deps_layer/x/deps_layer.zip"
    assert params["DepsLayerSha256"] == "4" * 64
    assert params["ExtraLayerArns"] == ",".join(response["extra_layer_arns"])
    # Without a dependency layer nothing is passed: the template's defaults apply, and a
    # custom template without these parameters keeps working.
    del response["s3_deps_layer_key"], response["extra_layer_arns"]
    params = {p["ParameterKey"] for p in deployment.stack_parameters(response, "s")}
    assert not params & {"DepsLayerKey", "DepsLayerSha256", "ExtraLayerArns"}


def test_template_attaches_the_dependency_layer_after_dill() -> None:
    import json

    from tdv_airflow.core.resources import default_template_path

    body = json.loads(default_template_path().read_text())
    assert body["Parameters"]["DepsLayerKey"]["Default"] == ""
    assert body["Resources"]["DepsLayer"]["Condition"] == "HasDepsLayer"
    layers_prop = body["Resources"]["PredictFunction"]["Properties"]["Layers"]
    with_deps = layers_prop["Fn::If"][1]["Fn::If"][2]
    assert with_deps == [{"Ref": "DillLayer"}, {"Ref": "DepsLayer"}]
    env = body["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TDV_DEPS_LAYER_SHA256"] == {
        "Fn::If": ["HasDepsLayer", {"Ref": "DepsLayerSha256"}, {"Ref": "AWS::NoValue"}]}
