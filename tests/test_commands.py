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
