"""adapool's max pooling against onnxruntime's own MaxPool kernel on the same uniform-window
calls (issue 13: "at least as fast as onnxruntime's MaxPool kernel"). The ONNX side is one bare
MaxPool node (with and without its Indices output), no NaN guard and no index conversion, so it
is a lower bound for any exported graph; adapool gives torch's NaN/tie rules and per-plane indices.

    python benchmarks/bench_ort_maxpool.py [--rounds 9] [--threads 2]

Prints a markdown table: ms per call (medians of interleaved rounds) and ort / adapool ratios
(above 1: adapool is faster).
"""
import argparse

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

import adapool
from adapool._bench import interleaved_ms

# (input shape, adaptive output size): the seed shapes whose windows are uniform
# (kernel = stride = in / out), as MaxPool(kernel, stride) computes them.
CASES = [((32, 2048, 7, 7), 1), ((4, 512, 56, 56), 7), ((4, 512, 112, 112), 7),
         ((8, 256, 14, 14), 7), ((16, 256, 100, 100), 10), ((1, 1, 8, 8), 2)]


def maxpool_session(shape, k, indices, threads):
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    names = ["y"]
    if indices:
        outs.append(helper.make_tensor_value_info("i", TensorProto.INT64, None))
        names.append("i")
    node = helper.make_node("MaxPool", ["x"], names, kernel_shape=[k, k], strides=[k, k])
    graph = helper.make_graph([node], "maxpool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    adapool.set_num_threads(a.threads)
    print(f"{a.threads} thread(s), {a.rounds} interleaved rounds, float32, NCHW; ratio = onnxruntime / adapool\n")
    print("| input → out | adapool ms | MaxPool ms | ratio | adapool, indices ms | MaxPool + Indices ms | ratio |")
    print("|---|---|---|---|---|---|---|")
    for shape, out in CASES:
        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        k = shape[-1] // out
        plain, with_ind = maxpool_session(shape, k, False, a.threads), maxpool_session(shape, k, True, a.threads)
        # the same values (no NaN in x), the indices differ in kind (ONNX's are flat over N*C*H*W)
        np.testing.assert_array_equal(plain.run(None, {"x": x})[0], adapool.adaptive_max_pool2d(x, out))
        t = interleaved_ms({
            "a": lambda: adapool.adaptive_max_pool2d(x, out),
            "o": lambda: plain.run(None, {"x": x}),
            "ai": lambda: adapool.adaptive_max_pool2d(x, out, return_indices=True),
            "oi": lambda: with_ind.run(None, {"x": x}),
        }, a.rounds)
        print(f"| {shape} → {out} | {t['a']:.4f} | {t['o']:.4f} | {t['o'] / t['a']:.2f} | {t['ai']:.4f} | "
              f"{t['oi']:.4f} | {t['oi'] / t['ai']:.2f} |")


if __name__ == "__main__":
    main()
