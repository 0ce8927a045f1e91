"""Which graphs are exact where: every call of the export test matrix, under every runtime and
after every graph optimizer, against adapool's kernel.

Each (call, strategy, dtype, static/dynamic) graph runs on four inputs per size (normal data;
data with ties, NaN, +inf, -inf; rows whose first half is -inf; a column of +inf) under
onnxruntime's CPU EP, OpenVINO's CPU plugin (f32 precision hint), tract and onnx's reference
evaluator, and under onnxruntime after onnxsim, onnxslim and onnxoptimizer. A graph counts as
exact on a target when every input gives adapool's result (indices and NaN positions exactly,
values within the test tolerances). Where the runtime's own documented limitation is all that
differs (OpenVINO's float64 in float32, the reference evaluator's NaN faults) those inputs are
left out and the graph is counted under "limitation" instead of "wrong".

It also checks each row of ``onnx_export.STRATEGIES``: a graph that is not exact on a runtime and
dtype its ``exact_on`` claims is listed as a broken claim (the run exits 1).

    python benchmarks/runtime_matrix.py [--strategies auto|all] [--calls all|adaptive|strided] [--json out.json]

Needs the test extra (pip install -e '.[test]'): the call list and inputs are the tests'.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter, defaultdict

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import adapool  # noqa: E402
import onnx_export  # noqa: E402
from adapool import _bench  # noqa: E402
from onnx_export import _export, _spec  # noqa: E402
from onnx_export._builder import DEFAULT_TARGETS  # noqa: E402
from onnx_export._runtimes import OPTIMIZERS, RUNTIMES  # noqa: E402
from onnx_export._validate import TOLERANCES, _compare  # noqa: E402
from test_onnx_export import CASES, as_list, dynamic_shape, known_gap, run_sizes, runtime_inputs  # noqa: E402
from test_onnx_strided import CASES as STRIDED_CASES  # noqa: E402

# --calls: the export test matrix's calls (adaptive pools and avg_pool2d), the strided pools'
# (tests/test_onnx_strided.py), or both
CALLS = {"adaptive": CASES, "strided": STRIDED_CASES, "all": CASES + STRIDED_CASES}

# (label, runtime, optimizer applied first)
TARGETS = [("onnxruntime-cpu", "onnxruntime-cpu", None), ("onnxruntime-cuda", "onnxruntime-cuda", None),
           ("openvino", "openvino", None), ("tract", "tract", None),
           ("onnx-reference", "onnx-reference", None),
           ("onnxsim → ort", "onnxruntime-cpu", "onnxsim"), ("onnxslim → ort", "onnxruntime-cpu", "onnxslim"),
           ("onnxoptimizer → ort", "onnxruntime-cpu", "onnxoptimizer")]
# which STRATEGIES.exact_on entry a target's result is held to
CLAIM = {"onnxruntime-cpu": "onnxruntime", "openvino": "openvino", "tract": "tract",
         "onnxruntime-cuda": "onnxruntime-cuda"}


def _same(got, want, dtype) -> bool:
    """validate()'s own comparison (indices and NaN/inf positions exactly, values within the
    per-dtype tolerances), plus the dtypes of float outputs."""
    got = [np.asarray(g) for g in got]
    if len(got) != len(want) or any(g.dtype != w.dtype for g, w in zip(got, want)):
        return False
    return not _compare(got, want, lambda dt: TOLERANCES[np.dtype(dt)])[2]


def _graphs(strategies: str, calls: str = "all", targets=None):
    """(call label, strategy, dtype, dynamic, spec, model) for every graph export accepts."""
    for op, kw, shape in CALLS[calls]:
        nd = _spec.OPS[op][1]
        for dynamic in (False, True):
            in_shape = dynamic_shape(shape, nd) if dynamic else shape
            for dtype in ("float16", "float32", "float64"):
                spec = _spec.make_spec(op, in_shape, dtype=dtype, **kw)
                names = ["auto"] if strategies == "auto" else list(onnx_export.STRATEGIES)
                for name in names:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            model = onnx_export.export(op, in_shape, dtype=dtype, strategy=name, targets=targets, **kw)
                    except onnx_export.ExportError:
                        continue   # not exact for the call: export says so, nothing to run
                    chosen = {p.key: p.value for p in model.metadata_props}["adapool.strategy"]
                    yield (op, kw, shape, in_shape), chosen, dtype, dynamic, spec, model


def _run(label, runtime, optimizer, model, spec, dtype, xs, wants):
    """'exact', 'wrong', 'refused' or 'limitation' (and a short reason)."""
    rt = RUNTIMES[runtime]
    keep = [i for i, x in enumerate(xs) if not known_gap(runtime, optimizer, model, spec, dtype, x)]
    try:
        if optimizer:
            model = OPTIMIZERS[optimizer].apply(model)
        if not rt.functions and model.functions:
            model = _export.inline_functions(model)
        outs = rt.run(model, [{"input": xs[i].copy()} for i in keep])[0] if keep else []
    except Exception as e:   # noqa: BLE001 (a runtime refusing the graph is a result)
        return "refused", str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
    for i, got in zip(keep, outs):
        if not _same(got, wants[i], dtype):
            x = xs[i]
            kind = "finite" if np.isfinite(x).all() else "non-finite"
            return "wrong", f"{kind} input {x.shape}"
    # exact on the inputs it was given; the rest were the runtime's documented limitation or fault
    return ("limitation", "") if len(keep) < len(xs) else ("exact", "")


def _no_cuda() -> str | None:
    import onnxruntime as ort
    if "CUDAExecutionProvider" in ort.get_available_providers():
        return None
    return "CUDAExecutionProvider not available (pip install onnxruntime-gpu, instead of onnxruntime, on a CUDA machine)"


def run(strategies: str, calls: str = "all", only=None):
    chosen_targets = [t for t in TARGETS if only is None or t[0] in only]
    missing = {label: RUNTIMES[rt].missing() or (OPTIMIZERS[opt].missing() if opt else None)
               or (_no_cuda() if rt == "onnxruntime-cuda" else None)
               for label, rt, opt in chosen_targets}
    targets = [t for t in chosen_targets if not missing[t[0]]]
    rng = np.random.default_rng(0)
    counts = defaultdict(Counter)          # (strategy, target) -> Counter of outcomes
    reasons = defaultdict(Counter)         # (strategy, target, outcome) -> Counter of reasons
    broken = []
    graphs = 0
    # graphs for the CUDA EP are built for it (the TF32-safe MatMul forms); the others as exported by default
    export_targets = (DEFAULT_TARGETS + ("onnxruntime-cuda",)
                      if any(rt == "onnxruntime-cuda" for _, rt, _ in targets) else None)
    for call, chosen, dtype, dynamic, spec, model in _graphs(strategies, calls, export_targets):
        graphs += 1
        op, kw, shape, in_shape = call
        nd = _spec.OPS[op][1]
        xs = [x for size in run_sizes(shape, nd, dynamic) for x in runtime_inputs(size, dtype, rng)]
        wants = [as_list(getattr(adapool, op)(x, **kw)) for x in xs]
        row = "auto" if strategies == "auto" else chosen
        strategy = onnx_export.STRATEGIES[chosen]
        for label, runtime, optimizer in targets:
            outcome, why = _run(label, runtime, optimizer, model, spec, dtype, xs, wants)
            counts[row, label][outcome] += 1
            if why:
                reasons[row, label, outcome][why[:90]] += 1
            claim = CLAIM.get(runtime)
            claimed = claim and not strategy.not_exact_on(spec, (claim,))
            if claimed and not (dtype == "float64" and claim in onnx_export._strategies.FLOAT64_IN_FLOAT32) \
                    and outcome in ("wrong", "refused"):
                broken.append(f"{chosen} {op} {in_shape} {kw} {dtype} on {label}: {outcome} ({why})")
        print(f"  {graphs} graphs", file=sys.stderr, end="\r")
    return targets, missing, counts, reasons, broken, graphs


def table(strategies, targets, missing, counts, reasons, broken, graphs):
    import onnx
    from importlib.metadata import PackageNotFoundError, version
    versions = []
    for module in ("onnxruntime", "openvino", "tract", "onnxsim", "onnxslim", "onnxoptimizer"):
        try:
            versions.append(f"{module} {version(module)}")
        except PackageNotFoundError:
            versions.append(f"{module} missing")
    lines = [f"{graphs} graphs ({strategies} strategies); onnx {onnx.__version__}, " + ", ".join(versions), "",
             "exact / graphs run (w: wrong, r: refused to load or run; l: of those counted exact, how many were "
             "compared only on the inputs outside the runtime's documented limitation or fault: OpenVINO's "
             "float64 graphs on none, the reference evaluator's NaN and rank-3 GlobalMaxPool faults)", "",
             "| strategy | " + " | ".join(t[0] for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    rows = sorted({s for s, _ in counts}, key=lambda s: list(onnx_export.STRATEGIES).index(s)
                  if s in onnx_export.STRATEGIES else -1)
    for s in rows:
        cells = []
        for label, _, _ in targets:
            c = counts[s, label]
            total = sum(c.values())
            extra = "".join(f" {k[0]}{c[k]}" for k in ("wrong", "refused") if c[k])
            limited = f" (l{c['limitation']})" if c["limitation"] else ""
            cells.append(f"{c['exact'] + c['limitation']}/{total}{extra}{limited}")
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    lines += ["", "Why (most common first):"]
    for (s, label, outcome), why in sorted(reasons.items()):
        for text, n in why.most_common(3):
            lines.append(f"- {s} on {label}, {outcome} ×{n}: {text}")
    for label, why in missing.items():
        if why:
            lines.append(f"- {label}: not run ({why})")
    lines += ["", f"broken STRATEGIES.exact_on claims: {len(broken)}"] + [f"- {b}" for b in broken[:40]]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strategies", choices=["auto", "all"], default="all")
    parser.add_argument("--calls", choices=sorted(CALLS), default="all")
    parser.add_argument("--json")
    parser.add_argument("--targets", help="comma-separated target labels (default: all); e.g. "
                        "onnxruntime-cuda for the strict CUDA EP run on a GPU machine")
    args = parser.parse_args()
    only = None if args.targets is None else set(args.targets.split(","))
    targets, missing, counts, reasons, broken, graphs = run(args.strategies, args.calls, only)
    text = table(args.strategies, targets, missing, counts, reasons, broken, graphs)
    data = {"strategies": args.strategies, "graphs": graphs, "broken": broken,
            "counts": {f"{s} | {t}": dict(c) for (s, t), c in counts.items()}}
    _bench.emit(text, args.json, data)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
