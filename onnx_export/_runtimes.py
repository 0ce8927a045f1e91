"""The runtimes ``validate`` runs models under, and the graph optimizers it can apply first.

Each runtime is one row of ``RUNTIMES``: how to tell it is installed, how to install it, how to
run a model on a list of feeds, and whether it runs model-local functions (OpenVINO and tract
don't: ``validate`` inlines them first). ``OPTIMIZERS`` does the same for graph optimizers.
Runtimes are imported only when a model is run, so importing this module imports none of them.
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

Feeds = dict   # input name -> numpy array
Outputs = list  # one array per graph output, in the graph's order


class RuntimeSkipped(Exception):
    """The runtime is installed but can't run here (e.g. no CUDA device): a skip, with the reason."""


class MixedProviders(Exception):
    """The strict CUDA run put some nodes on another execution provider."""


@dataclass(frozen=True)
class Runtime:
    """One runtime: ``run(model, feeds) -> (outputs per feed, provider)``.

    ``module`` is what must be importable; ``install`` says how to get it; ``functions`` is
    False for runtimes that can't run model-local functions (the model is inlined first).
    """
    name: str
    module: str
    install: str
    run: Callable[[onnx.ModelProto, Sequence[Feeds]], tuple[list[Outputs], str]]
    functions: bool = True

    def missing(self) -> str | None:
        """Why the runtime can't be used (not installed, and how to install it), or None."""
        if _importable(self.module):
            return None
        return f"{self.module} is not installed ({self.install})"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


# ---- onnxruntime ------------------------------------------------------------------------------

def _ort_session(model_bytes: bytes, provider: str, profile_dir: str | None = None):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.log_severity_level = 4   # fatal only: a node's error is raised, and reported, once
    if provider == "CUDAExecutionProvider":
        # strict: no silent CPU fallback, and profiling says where each node ran
        opts.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(profile_dir, "adapool")
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=[provider])


def _profile_providers(path: str) -> set:
    with open(path) as f:
        events = json.load(f)
    return {e.get("args", {}).get("provider") for e in events
            if e.get("cat") == "Node" and e.get("args", {}).get("provider")}


def _run_ort(provider: str):
    def run(model: onnx.ModelProto, feeds: Sequence[Feeds]):
        import onnxruntime as ort
        if provider not in ort.get_available_providers():
            how = "pip install onnxruntime-gpu (instead of onnxruntime) on a machine with CUDA"
            raise RuntimeSkipped(f"{provider} not available in this onnxruntime ({how})")
        # profiling files go to a temporary directory, never the working directory
        with tempfile.TemporaryDirectory() as tmp:
            sess = _ort_session(model.SerializeToString(), provider, tmp)
            run_one = _ort_bfloat16_run(sess) if _holds_bfloat16(model) else (lambda f: sess.run(None, dict(f)))
            outs = [run_one(f) for f in feeds]
            used = sess.get_providers()[0]
            if provider == "CUDAExecutionProvider":
                providers = _profile_providers(sess.end_profiling())
                if providers - {"CUDAExecutionProvider"}:
                    raise MixedProviders("nodes ran on " + ", ".join(sorted(providers)))
                used = "CUDAExecutionProvider (every node, from profiling)"
        return outs, used
    return run


def _holds_bfloat16(model: onnx.ModelProto) -> bool:
    """Whether a graph input or output is bfloat16 (what onnxruntime's NumPy API can't pass)."""
    values = list(model.graph.input) + list(model.graph.output)
    return any(v.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for v in values)


def _ort_bfloat16_run(sess):
    """onnxruntime's Python API has no NumPy type for bfloat16 (``sess.run`` refuses such feeds
    and outputs: "No corresponding Numpy type for Tensor Type. bfloat16"): feeds go in as
    OrtValues reinterpreting the uint16 bits, outputs are bound to CPU memory and their bytes
    copied out as ml_dtypes bfloat16 arrays."""
    import onnxruntime as ort
    from adapool._bfloat16 import BFLOAT16
    names = [o.name for o in sess.get_outputs()]

    def run(feeds):
        binding = sess.io_binding()
        keep = []   # an OrtValue made from an array doesn't own it
        for name, value in feeds.items():
            value = np.ascontiguousarray(value)
            keep.append(value)
            if value.dtype == BFLOAT16:
                ort_value = ort.OrtValue.ortvalue_from_numpy_with_onnx_type(value.view(np.uint16),
                                                                            onnx.TensorProto.BFLOAT16)
            else:
                ort_value = ort.OrtValue.ortvalue_from_numpy(value)
            keep.append(ort_value)
            binding.bind_ortvalue_input(name, ort_value)
        for name in names:
            binding.bind_output(name, "cpu")
        sess.run_with_iobinding(binding)
        return [_ort_value_array(v, BFLOAT16) for v in binding.get_outputs()]
    return run


def _ort_value_array(value, bfloat16) -> np.ndarray:
    if value.data_type() != "tensor(bfloat16)":
        return value.numpy()
    shape = tuple(value.shape())
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0:
        return np.zeros(shape, dtype=bfloat16)
    raw = (ctypes.c_uint16 * count).from_address(value.data_ptr())
    return np.frombuffer(raw, dtype=np.uint16).copy().reshape(shape).view(bfloat16)


# ---- OpenVINO ---------------------------------------------------------------------------------

def _cycle(graph: onnx.GraphProto) -> str | None:
    """A value on a cycle of the graph's nodes, or None (Kahn's algorithm; values no node
    produces count as given, so a missing input is left to the runtime to report)."""
    producer = {out: i for i, n in enumerate(graph.node) for out in n.output if out}
    waits = [{producer[v] for v in n.input if v in producer} for n in graph.node]
    readers = {}
    for i, w in enumerate(waits):
        for j in w:
            readers.setdefault(j, []).append(i)
    ready = [i for i, w in enumerate(waits) if not w]
    done = 0
    while ready:
        i = ready.pop()
        done += 1
        for r in readers.get(i, ()):
            waits[r].discard(i)
            if not waits[r]:
                ready.append(r)
    if done == len(graph.node):
        return None
    return next(n.output[0] for n, w in zip(graph.node, waits) if w and n.output)


def _run_openvino(config: dict):
    def run(model: onnx.ModelProto, feeds: Sequence[Feeds]):
        # OpenVINO's ONNX frontend spends minutes (80 s seen) on a graph with a cycle before
        # refusing it; the other runtimes refuse at once
        on_cycle = _cycle(model.graph)
        if on_cycle is not None:
            raise ValueError(f"the graph is not acyclic (value {on_cycle!r} is on a cycle)")
        # OpenVINO 2026.4's CPU plugin kills the process (SIGFPE, or glibc's "munmap_chunk():
        # invalid pointer") on several pooling graphs fed an empty tensor (batch 0): not run
        if any(np.asarray(v).size == 0 for f in feeds for v in f.values()):
            raise RuntimeSkipped("not run on empty inputs: OpenVINO's CPU plugin crashes the process on "
                                 "some graphs over an empty batch (SIGFPE)")
        import openvino as ov
        core = ov.Core()
        compiled = core.compile_model(core.read_model(model=model.SerializeToString(), weights=b""), "CPU", config)
        names = [o.name for o in model.graph.output]
        bfloat16_outputs = [o.type.tensor_type.elem_type == onnx.TensorProto.BFLOAT16 for o in model.graph.output]
        # OpenVINO drops a graph input nothing reads: feed only the ports the compiled model has
        ports = {n for i in compiled.inputs for n in i.get_names()}
        outs = []
        for f in feeds:
            result = compiled({k: v for k, v in f.items() if k in ports})
            # OVDict: keyed by output port; its tensor names are the graph's output names
            by_name, values = {}, [np.asarray(v) for v in result.values()]
            for port, value in zip(result.keys(), values):
                for n in port.get_names():
                    by_name[n] = value
            # an output OpenVINO renamed while fusing: its place in the graph's output list
            outs.append([_openvino_bfloat16(by_name[n] if n in by_name else values[i], bf16)
                         for i, (n, bf16) in enumerate(zip(names, bfloat16_outputs))])
        hint = config.get("INFERENCE_PRECISION_HINT")
        return outs, f"CPU ({hint})" if hint else "CPU (default precision)"
    return run


def _openvino_bfloat16(value: np.ndarray, bfloat16_output: bool) -> np.ndarray:
    """OpenVINO's Python API hands a bfloat16 output back as a float16 array holding the
    bfloat16 bits (2026.4): reinterpreted, not converted."""
    if bfloat16_output and value.dtype == np.float16:
        from adapool._bfloat16 import BFLOAT16
        return value.view(BFLOAT16)
    return value


# ---- tract ------------------------------------------------------------------------------------

def _run_tract(model: onnx.ModelProto, feeds: Sequence[Feeds]):
    # tract's errors capture a Rust backtrace when RUST_BACKTRACE is set: seconds per refused
    # graph. A user who asked for library backtraces explicitly keeps them.
    os.environ.setdefault("RUST_LIB_BACKTRACE", "0")
    import tract
    # tract loads from a file path only: a temporary directory keeps the working directory clean
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        onnx.save(model, path)
        runnable = tract.onnx().load(path).into_model().into_runnable()
    inputs = _feed_order(model)
    outs = []
    for f in feeds:
        result = runnable.run([np.ascontiguousarray(f[n]) for n in inputs])
        outs.append([r.to_numpy() for r in result])
    return outs, "tract (CPU)"


def _feed_order(model: onnx.ModelProto) -> list:
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


# ---- onnx.reference ---------------------------------------------------------------------------

def _run_reference(model: onnx.ModelProto, feeds: Sequence[Feeds]):
    from onnx.reference import ReferenceEvaluator
    sess = ReferenceEvaluator(model)
    return [sess.run(None, dict(f)) for f in feeds], "onnx.reference"


_OV_HINT = "pip install openvino"
RUNTIMES: dict[str, Runtime] = {
    "onnxruntime-cpu": Runtime("onnxruntime-cpu", "onnxruntime", "pip install onnxruntime",
                               _run_ort("CPUExecutionProvider")),
    "onnxruntime-cuda": Runtime("onnxruntime-cuda", "onnxruntime",
                                "pip install onnxruntime-gpu (instead of onnxruntime) on a machine with CUDA",
                                _run_ort("CUDAExecutionProvider")),
    # the CPU plugin's default precision is bf16/f16 on CPUs that have it: ask for f32
    "openvino": Runtime("openvino", "openvino", _OV_HINT, _run_openvino({"INFERENCE_PRECISION_HINT": "f32"}),
                        functions=False),
    "openvino-default": Runtime("openvino-default", "openvino", _OV_HINT, _run_openvino({}), functions=False),
    "tract": Runtime("tract", "tract", "pip install tract", _run_tract, functions=False),
    "onnx-reference": Runtime("onnx-reference", "onnx", "pip install onnx", _run_reference),
}
# What validate runs when not told: every row but openvino-default (OpenVINO's reduced default
# precision is a setting, not a fault of the graph).
DEFAULT_RUNTIMES = ("onnxruntime-cpu", "onnxruntime-cuda", "openvino", "tract", "onnx-reference")


# ---- graph optimizers -------------------------------------------------------------------------

def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim
    # no input shapes: onnxsim keeps symbolic dims as they are
    simplified, ok = onnxsim.simplify(model)
    if not ok:
        raise ValueError("onnxsim's check of the simplified model failed")
    return simplified


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim
    return onnxslim.slim(model)


def _onnxoptimizer(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxoptimizer
    return onnxoptimizer.optimize(model)


@dataclass(frozen=True)
class Optimizer:
    """One graph optimizer: ``apply(model) -> model``, importable as ``module``."""
    name: str
    module: str
    install: str
    apply: Callable[[onnx.ModelProto], onnx.ModelProto]

    def missing(self) -> str | None:
        """Why the optimizer can't be used (not installed, and how to install it), or None."""
        return None if _importable(self.module) else f"{self.module} is not installed ({self.install})"


OPTIMIZERS: dict[str, Optimizer] = {
    "onnxsim": Optimizer("onnxsim", "onnxsim", "pip install onnxsim", _onnxsim),
    "onnxslim": Optimizer("onnxslim", "onnxslim", "pip install onnxslim", _onnxslim),
    "onnxoptimizer": Optimizer("onnxoptimizer", "onnxoptimizer", "pip install onnxoptimizer", _onnxoptimizer),
}


def optimize(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The model as the graph optimizer ``name`` rewrites it (the input is not modified).

    torch equivalent: none.

    Parameters
    ----------
    model : onnx.ModelProto
        Any ONNX model.
    name : str
        A key of ``OPTIMIZERS``: "onnxsim", "onnxslim" or "onnxoptimizer".

    Returns
    -------
    onnx.ModelProto
        The optimized model. Dynamic dimensions stay symbolic (no input shapes are given).

    Raises
    ------
    ValueError
        An unknown optimizer name.
    ImportError
        The optimizer is not installed (the message says how to install it).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    opt = OPTIMIZERS[name]
    why = opt.missing()
    if why:
        raise ImportError(why)
    return opt.apply(onnx.ModelProto.FromString(model.SerializeToString()))
