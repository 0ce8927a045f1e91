"""The `adapool demo` and `adapool bench` commands, run as a user runs them."""
import json
import subprocess
import sys

import pytest

import adapool._demo as demo


def run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "adapool", *args], capture_output=True, text=True, timeout=timeout)


def test_demo_runs_the_seed_examples(ort):
    proc = run("demo", "--repeat", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name, shape, _, _ in demo.EXAMPLES:
        assert name in out and str(shape) in out
    assert "all examples agree" in out
    assert "dynamic (dynamic H,W)" in out          # the variable-size examples share one graph
    assert out.count("reduce, 1 node") == 1        # global pooling exported as one ReduceMean


def test_demo_names_missing_runtimes(tmp_path):
    """With onnxruntime, OpenVINO and tract blocked (a fresh `pip install -e '.[onnxruntime]'`
    has no OpenVINO or tract), their columns say skipped and how to add them."""
    code = ("import sys\nfor m in ('onnxruntime', 'openvino', 'tract'): sys.modules[m] = None\n"
            "from adapool.__main__ import main\nsys.exit(main(['demo', '--repeat', '1']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ORT CPU: skipped — onnxruntime is not installed (pip install onnxruntime" in proc.stdout
    assert "OpenVINO: skipped — openvino is not installed (pip install openvino)" in proc.stdout
    assert "tract: skipped — tract is not installed (pip install tract)" in proc.stdout


def test_bench_quick_json_and_plot(tmp_path, ort, torch_oracle):
    pytest.importorskip("matplotlib", reason="adapool bench --plot needs matplotlib (pip install matplotlib)")
    out, png = tmp_path / "b.json", tmp_path / "b.png"
    proc = run("bench", "--quick", "--ops", "avg,max", "--rounds", "1", "--json", str(out), "--plot", str(png))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["environment"]["threads"] >= 1 and data["environment"]["torch"] == torch_oracle.__version__
    assert [r["op"] for r in data["rows"]] == ["avg"] * 3 + ["max"] * 3
    for r in data["rows"]:
        assert r["adapool"] > 0 and r["torch"] > 0 and r["onnx"] > 0 and r["onnx_strategy"]
        assert r["compile"] > 0   # torch.compile (inductor) of the forward call
    assert "| avg | (32, 2048, 7, 7) | 1 |" in proc.stdout and "x torch" in proc.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_rejects_unknown_ops():
    proc = run("bench", "--ops", "median")
    assert proc.returncode != 0 and "unknown ops" in proc.stderr


def test_bench_load_runs_beside_a_busy_core_and_stops_it(tmp_path, torch_oracle):
    out = tmp_path / "b.json"
    proc = run("bench", "--quick", "--ops", "avg", "--rounds", "1", "--no-compile", "--load", "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env = json.loads(out.read_text())["environment"]
    assert env["load"].startswith("a busy process pinned to core")
    assert "load: a busy process pinned to core" in proc.stdout
    assert all("compile" not in r for r in json.loads(out.read_text())["rows"])
    # the busy process is gone with the command
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "while True:" not in ps


def test_version_flag():
    import adapool
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"adapool {adapool.__version__}"


def _blocked(modules, argv):
    """Run the adapool CLI in a subprocess where ``modules`` cannot be imported."""
    code = (f"import sys\nfor m in {tuple(modules)!r}: sys.modules[m] = None\n"
            f"from adapool.__main__ import main\nsys.exit(main({list(argv)!r}))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_bench_plot_without_matplotlib_fails_before_the_run(tmp_path):
    import time
    t0 = time.perf_counter()
    proc = _blocked(["matplotlib"], ["bench", "--plot", str(tmp_path / "b.png")])
    assert proc.returncode != 0 and "needs matplotlib: pip install 'adapool[plot]'" in proc.stderr
    assert "| op |" not in proc.stdout and time.perf_counter() - t0 < 20   # nothing was timed first


def test_bench_without_torch_prints_dashes_not_nan(ort):
    proc = _blocked(["torch"], ["bench", "--quick", "--ops", "avg", "--rounds", "1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nan" not in proc.stdout and "torch not installed" in proc.stdout   # the header says so
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| avg | (32, 2048, 7, 7)"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[4:8] == ["-", "-", "-", "-"]   # torch ms, x torch, torch.compile ms, x compile
    assert "numpy's sum, torch not being installed" in proc.stdout


def test_export_says_node_in_the_singular(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "onnx_export", "export", "adaptive_avg_pool2d", "--input-shape",
                           "1,4,8,8", "--output-size", "1", "-o", str(tmp_path / "m.onnx"), "--no-validate"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("1 node")
