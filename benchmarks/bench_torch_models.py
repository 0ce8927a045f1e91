"""PyTorch models exported through adapool vs torch's own exporters vs torch eager.

For each model of tests/models.py: onnxruntime CPU latency and node count of adapool's export
(static, and dynamic H/W) and of torch's own exports where they succeed, whether each graph is
right (vs torch eager, at the example size and, for dynamic graphs, at another size), and torch
eager's latency. Interleaved rounds in one process, medians.

    python benchmarks/bench_torch_models.py [--threads 2] [--rounds 9] [--json out.json]
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
warnings.filterwarnings("ignore")

import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

import models  # noqa: E402
import onnx_export.torch as bridge  # noqa: E402
from adapool import _bench  # noqa: E402
from adapool._bench import interleaved_ms  # noqa: E402

# bigger than the tests' models: (factory kwargs, example shape, another shape for dynamic graphs)
SETUPS = {
    "resnet_head": ({"channels": 64}, (8, 3, 60, 60), (8, 3, 90, 74)),
    "pspnet_ppm": ({"channels": 64}, (4, 64, 45, 45), (4, 64, 61, 33)),
    "max_indices": ({"channels": 32}, (8, 3, 45, 45), (8, 3, 61, 33)),
    "video3d": ({"channels": 8}, (4, 3, 9, 31, 31), (4, 3, 11, 27, 40)),
    "divisor_override": ({"channels": 32}, (8, 3, 55, 55), (8, 3, 61, 33)),
}


def _dynamic(dynamo, rank):
    spatial = range(2, rank)
    if dynamo:
        return {"dynamic_shapes": ({0: torch.export.Dim("N", min=2, max=64),
                                    **{d: torch.export.Dim(f"S{d}", min=4, max=4096) for d in spatial}},)}
    return {"input_names": ["x"], "dynamic_axes": {"x": {0: "N", **{d: f"S{d}" for d in spatial}}}}


def _session(proto, threads):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(proto.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def _torch_export(model, x, dynamo, dynamic):
    kwargs = _dynamic(dynamo, x.dim()) if dynamic else {}
    if dynamo:
        return torch.onnx.export(model, (x,), dynamo=True, verbose=False, **kwargs).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(model, (x,), buffer, dynamo=False, **kwargs)
    return onnx.load_from_string(buffer.getvalue())


def _right(sess, model, x):
    with torch.no_grad():
        want = model(x)
    want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
    try:
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    except Exception as e:
        return f"fails ({type(e).__name__})"
    ok = all(g.shape == w.shape and np.allclose(g, w, rtol=1e-4, atol=1e-5) for g, w in zip(got, want))
    return "yes" if ok else f"NO (max err {max(float(np.abs(g - w).max()) for g, w in zip(got, want) if g.shape == w.shape):.3g})"


def run(threads, rounds):
    torch.set_num_threads(threads)
    rows = []
    for name, (kw, shape, other) in SETUPS.items():
        torch.manual_seed(0)
        model = models.MODELS[name][0](**kw).eval()
        x, x2 = torch.randn(*shape), torch.randn(*other)
        contenders = {}
        for label, make in [
            ("adapool static", lambda: bridge.export(model, (x,), dynamo=False)),
            ("adapool dynamic", lambda: bridge.export(model, (x,), dynamo=False, **_dynamic(False, x.dim()))),
            ("torch ts static", lambda: _torch_export(model, x, False, False)),
            ("torch dynamo static", lambda: _torch_export(model, x, True, False)),
            ("torch dynamo dynamic", lambda: _torch_export(model, x, True, True)),
        ]:
            try:
                proto = make()
            except Exception as e:
                contenders[label] = {"error": str(e).strip().splitlines()[0][:90]}
                continue
            sess = _session(proto, threads)
            right = _right(sess, model, x)
            if "dynamic" in label:
                right += " / " + _right(sess, model, x2)
            contenders[label] = {"nodes": len(proto.graph.node), "right": right,
                                 "fn": lambda sess=sess: sess.run(None, {sess.get_inputs()[0].name: x.numpy()})}

        def eager():
            with torch.no_grad():
                model(x)
        fns = {k: v["fn"] for k, v in contenders.items() if "fn" in v}
        fns["torch eager"] = eager
        ms = interleaved_ms(fns, rounds, sample_s=3e-3)
        for k, v in contenders.items():
            v.pop("fn", None)
            if k in ms:
                v["ms"] = ms[k]
        rows.append({"model": name, "shape": list(shape), "other": list(other),
                     "eager_ms": ms["torch eager"], "exports": contenders})
        print(f"  {name} done", file=sys.stderr)
    return rows


def table(rows, threads):
    lines = [f"threads={threads}, torch {torch.__version__}, onnxruntime {ort.__version__}", "",
             "| model | input (other size) | export | nodes | ORT ms | torch eager ms | right (example / other size) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        for label, v in r["exports"].items():
            if "error" in v:
                lines.append(f"| {r['model']} | {tuple(r['shape'])} | {label} | - | - | {r['eager_ms']:.3f} | "
                             f"export fails: {v['error']} |")
            else:
                lines.append(f"| {r['model']} | {tuple(r['shape'])} ({tuple(r['other'])}) | {label} | {v['nodes']} | "
                             f"{v['ms']:.3f} | {r['eager_ms']:.3f} | {v['right']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json")
    args = parser.parse_args()
    rows = run(args.threads, args.rounds)
    _bench.emit(table(rows, args.threads), args.json, {"threads": args.threads, "rows": rows})


if __name__ == "__main__":
    main()
