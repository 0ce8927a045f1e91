"""Every public function has a numpydoc docstring naming its torch equivalent and a typed
signature, and both packages ship their py.typed marker (PEP 561)."""
import importlib.resources
import inspect
import pathlib
import re
import subprocess
import sys

import pytest

import adapool
import onnx_export
import onnx_export.torch

# The public functions this test must cover; the ones found in __all__ are checked against it so
# that a shrinking __all__ can't make the test vacuous.
EXPECTED = {
    "adapool": {
        "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
        "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool2d",
        "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward", "adaptive_avg_pool3d_backward",
        "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward",
        "avg_pool2d_backward",
        "max_unpool1d", "max_unpool2d", "max_unpool3d",
        "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
        "fractional_max_pool2d", "fractional_max_pool3d",
        "fractional_max_pool2d_backward", "fractional_max_pool3d_backward",
        "lp_pool1d", "lp_pool2d", "lp_pool3d", "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward",
        "window_start", "window_end", "adaptive_windows", "pool_output_size", "pool_windows",
        "set_num_threads", "get_num_threads", "openmp_enabled",
    },
    "onnx_export": {"export", "build", "lower", "validate", "optimize"},
    "onnx_export.torch": {"export", "translations", "validate_torch"},
}
MODULES = {"adapool": adapool, "onnx_export": onnx_export, "onnx_export.torch": onnx_export.torch}


def _public_functions():
    found = []
    for modname, mod in MODULES.items():
        names = getattr(mod, "__all__", None) or sorted(EXPECTED[modname])
        funcs = {n for n in names if inspect.isfunction(inspect.unwrap(getattr(mod, n)))}
        found.extend((modname, n) for n in sorted(funcs | EXPECTED[modname]))
    return found


PUBLIC = _public_functions()


def _section(doc: str, title: str) -> bool:
    """A numpydoc section header: the title on its own line, underlined with dashes."""
    return re.search(rf"^{title}\n-{{{len(title)}}}$", doc, re.M) is not None


def docstring_problems(fn) -> list:
    """What fn's docstring and signature lack; empty when they are complete."""
    doc = inspect.getdoc(fn)
    if not doc:
        return ["no docstring"]
    problems = []
    lines = doc.splitlines()
    if not lines[0].strip() or (len(lines) > 1 and lines[1].strip()):
        problems.append("no one-line summary followed by a blank line")
    if "torch equivalent:" not in doc:
        problems.append("no 'torch equivalent:' line")
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if params and not _section(doc, "Parameters"):
        problems.append("no Parameters section")
    for p in params:
        if p.name not in doc:
            problems.append(f"parameter {p.name!r} not documented")
        if p.annotation is inspect.Parameter.empty:
            problems.append(f"parameter {p.name!r} has no type hint")
    ret = sig.return_annotation
    if ret is inspect.Signature.empty:
        problems.append("no return type hint")
    elif ret not in (None, "None") and not _section(doc, "Returns"):
        problems.append("no Returns section")
    return problems


def test_every_expected_function_is_public():
    for modname, names in EXPECTED.items():
        missing = [n for n in names if not callable(getattr(MODULES[modname], n, None))]
        assert not missing, f"{modname} lacks {missing}"


@pytest.mark.parametrize("modname, name", PUBLIC, ids=[f"{m}.{n}" for m, n in PUBLIC])
def test_numpydoc_docstring_and_type_hints(modname, name):
    fn = getattr(MODULES[modname], name)
    assert docstring_problems(fn) == []


def test_checker_catches_a_bare_function():
    def bare(x, y=1):
        return x

    def summary_only(x: int) -> int:
        """Double x."""
        return 2 * x

    assert "no docstring" in docstring_problems(bare)
    problems = docstring_problems(summary_only)
    assert "no Parameters section" in problems and "no Returns section" in problems
    assert "no 'torch equivalent:' line" in problems


def test_report_class_docstring():
    doc = inspect.getdoc(onnx_export.Report)
    assert doc and _section(doc, "Attributes")
    for word in ("rows", "cases", "ok", "torch"):
        assert word in doc


@pytest.mark.parametrize("package", ["adapool", "onnx_export"])
def test_py_typed_is_in_the_package(package):
    marker = importlib.resources.files(package).joinpath("py.typed")
    assert marker.is_file(), f"{package} has no py.typed marker"


def test_py_typed_is_package_data():
    tomllib = pytest.importorskip("tomllib")
    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not run from a source checkout")
    package_data = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    for package in ("adapool", "onnx_export"):
        assert "py.typed" in package_data.get(package, []), f"{package}'s package-data lacks py.typed"


# ---- the README's code, run as written -------------------------------------------------------

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(), re.S | re.M) if README.is_file() else []


def test_readme_has_its_python_blocks():
    if not README.is_file():
        pytest.skip("not run from a source checkout (no README.md)")
    assert len(BLOCKS) >= 4   # quick look, seed examples, ONNX export, torch bridge


def _run_block(code, name, request):
    if "import torch" in code:
        request.getfixturevalue("torch_oracle")   # skips without torch, fails CI (ADAPOOL_REQUIRE_TORCH)
    if "onnx_export.validate(" in code or "onnx_export.torch" in code:
        request.getfixturevalue("ort")
    if "adapool.dask" in code:
        request.getfixturevalue("dask_array")   # skips without dask, fails CI (ADAPOOL_REQUIRE_RUNTIMES)
    exec(compile(code, name, "exec"), {"__name__": "__readme__"})


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_python_block_runs_as_written(index, request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # blocks that save models save them here
    _run_block(BLOCKS[index], f"README.md python block {index}", request)


def test_readme_torch_round_trip_export_then_check(request, tmp_path, monkeypatch):
    # The torch-bridge section: its python block exports mynet.onnx, the bash block after it
    # checks that file with the CLI; both as written.
    text = README.read_text() if README.is_file() else ""
    section = text[text.index("## PyTorch models to ONNX"):] if "## PyTorch models to ONNX" in text else ""
    if not section:
        pytest.skip("not run from a source checkout (no README.md)")
    code = re.search(r"^```python\n(.*?)^```", section, re.S | re.M).group(1)
    command = re.search(r"^```bash\n(.*?)^```", section, re.S | re.M).group(1).strip()
    assert command == "python -m onnx_export check mynet.onnx"
    monkeypatch.chdir(tmp_path)
    _run_block(code, "README.md torch block", request)
    assert (tmp_path / "mynet.onnx").is_file() and (tmp_path / "mynet_legacy.onnx").is_file()
    for model in ("mynet.onnx", "mynet_legacy.onnx"):
        proc = subprocess.run([sys.executable, "-m", "onnx_export", "check", model], cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "OK" in proc.stdout and "tract" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mynet.onnx", "mynet_legacy.onnx"]   # nothing else left behind
