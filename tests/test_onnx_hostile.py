"""Hostile inputs for onnx_export.

1. Corrupt, malformed and unsupported model files given to ``validate()`` and to
   ``python -m onnx_export check`` (in a subprocess): validate raises a ValueError
   (UnsupportedModel) with a clear message or returns a Report whose rows say failed/mismatch;
   the CLI exits 2 with one ``error: ...`` line (or 1 with its table when the model loads and a
   runtime disagrees), never a traceback, never a hang.
2. Garbage adapool-domain nodes given to ``lower()``.
3. Properties: ``export`` never writes a model ``onnx.checker`` rejects, and
   ``python -m onnx_export export`` never leaves a file behind when it fails.

Every case is data (the HOSTILE, LOWER_CASES, EXPORT_SIZES and CLI_EXPORTS tables). The 13
library bugs these cases found were fixed; each case keeps a note of what it found
("fixed, was: ...").

Model sizes are hostile too: a run that tries to allocate what a huge input dimension asks for
must fail at once. The in-process calls run under a lowered soft RLIMIT_AS (what the process
uses now plus a few GiB) and the CLI runs under a fixed one, so such an attempt is a
MemoryError, not a machine swapping or an OOM-killed test run.
"""
from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from onnx import TensorProto as TP
from onnx import helper

import onnx_export
from onnx_export import MAX_OPSET, MIN_OPSET, STRATEGIES, ExportError, export, lower
from onnx_export.__main__ import main
from onnx_export._spec import OPS
from onnx_export._validate import Report, UnsupportedModel, validate

try:
    import resource
except ImportError:   # not POSIX: no address-space limits (the huge-size cases then rely on numpy refusing)
    resource = None

GiB = 1 << 30
# A CLI run maps ~1.5 GiB with onnxruntime loaded; the bug cases below ask for 56 GiB and more.
CLI_ADDRESS_SPACE = 8 * GiB
IN_PROCESS_HEADROOM = 8 * GiB   # what an in-process call may map on top of what the process has
CLI_TIMEOUT = 120               # seconds; a CLI run takes about one
IN_PROCESS_TIMEOUT = 60


# ---- guards: no hang, no huge allocation ----------------------------------------------------------

class Hang(BaseException):
    """Raised by ``deadline`` (a BaseException, so no ``except Exception`` in the library eats it)."""


@contextlib.contextmanager
def deadline(seconds: int = IN_PROCESS_TIMEOUT):
    """Fail a call that runs longer than ``seconds`` (SIGALRM; a no-op off the main thread or POSIX)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _mapped_bytes() -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@contextlib.contextmanager
def bounded_memory(headroom: int = IN_PROCESS_HEADROOM):
    """Lower this process's soft RLIMIT_AS to what it maps now plus ``headroom`` for the block,
    so allocating what a hostile size asks for fails at once with MemoryError."""
    used = _mapped_bytes() if resource is not None else None
    if used is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = used + headroom
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# `python -m onnx_export ARGS` under a fixed address-space limit: the limit is set, then the
# interpreter execs itself as `python -m onnx_export` (exec keeps the limit).
_LIMITED_CLI = ("import os, resource, sys; "
                f"resource.setrlimit(resource.RLIMIT_AS, ({CLI_ADDRESS_SPACE}, {CLI_ADDRESS_SPACE})); "
                "os.execv(sys.executable, [sys.executable, '-m', 'onnx_export'] + sys.argv[1:])")


def run_cli(args, cwd=None):
    """``python -m onnx_export *args`` in a subprocess: a CompletedProcess, or the
    TimeoutExpired of a run that hung."""
    cmd = [sys.executable, "-c", _LIMITED_CLI, *args] if resource is not None else [
        sys.executable, "-m", "onnx_export", *args]
    root = str(Path(__file__).resolve().parents[1])   # the runs' cwd is a temporary folder
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
               MALLOC_ARENA_MAX="2")   # glibc reserves 64 MiB of address space per arena, one per thread
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as e:
        return e


def assert_clean_cli_error(proc, match: str = ""):
    """Exit 2 and exactly one stderr line ``error: ...``; no traceback."""
    assert not isinstance(proc, subprocess.TimeoutExpired), f"hang: {proc}"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
    assert proc.stderr.startswith("error: "), proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), f"not one line: {proc.stderr!r}"
    if match:
        assert match.lower() in proc.stderr.lower(), proc.stderr


# ---- model builders -----------------------------------------------------------------------------

def node(op_type, inputs=("x",), outputs=("y",), domain="", **attrs):
    """A node whose attributes may be AttributeProtos, empty lists (INTS) or anything
    helper.make_attribute takes."""
    n = helper.make_node(op_type, list(inputs), list(outputs), domain=domain)
    for name, value in attrs.items():
        if isinstance(value, onnx.AttributeProto):
            n.attribute.append(value)
        elif isinstance(value, list) and not value:
            n.attribute.append(helper.make_attribute(name, [], attr_type=onnx.AttributeProto.INTS))
        else:
            n.attribute.append(helper.make_attribute(name, value))
    return n


def model(nodes, inputs, outputs=("y",), opsets=(("", 18),), out_shape=None):
    graph = helper.make_graph(list(nodes), "hostile", list(inputs),
                              [helper.make_tensor_value_info(o, TP.FLOAT, out_shape) for o in outputs])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def one_node(op_type, shape=(1, 3, 8, 8), elem=TP.FLOAT, domain="", opset=18, **attrs):
    """A graph of one node reading input "x" (the kind validate understands)."""
    opsets = (("", opset),) + (((domain, 1),) if domain else ())
    return model([node(op_type, domain=domain, **attrs)],
                 [helper.make_tensor_value_info("x", elem, None if shape is None else list(shape))], opsets=opsets)


def adapool_node(op_type, shape=(1, 3, 8, 8), **attrs):
    return one_node(op_type, shape, domain=onnx_export.DOMAIN, **attrs)


AVG_POOL2D_ATTRS = dict(kernel=[2, 2], stride=[2, 2], padding=[0, 0], ceil_mode=[0], count_include_pad=[1],
                        divisor_override=[0])


def exported(edit: Callable[[onnx.ModelProto], None] = lambda m: None) -> onnx.ModelProto:
    """An exported model (a many-node dynamic graph: validate reads the call from its metadata),
    edited in place by ``edit``."""
    m = export("adaptive_avg_pool2d", (1, 3, 15, 15), output_size=7, strategy="dynamic")
    edit(m)
    return m


def set_meta(key: str, value: str):
    def edit(m):
        next(p for p in m.metadata_props if p.key == key).value = value
    return edit


def set_dims(*dims):
    def edit(m):
        t = m.graph.input[0].type.tensor_type
        del t.shape.dim[:]
        for d in dims:
            if isinstance(d, int):
                t.shape.dim.add().dim_value = d
            else:
                t.shape.dim.add().dim_param = d
    return edit


def set_opset(version: int):
    def edit(m):
        next(o for o in m.opset_import if o.domain == "").version = version
    return edit


def with_external_data(location: str, length: int | None = None) -> onnx.ModelProto:
    """A pooling model carrying an (unused) initializer whose data lives in an external file."""
    m = one_node("GlobalAveragePool", (1, 3, 4, 4))
    t = helper.make_tensor("w", TP.FLOAT, [4], [1.0, 2.0, 3.0, 4.0])
    t.ClearField("float_data")
    t.data_location = TP.EXTERNAL
    entries = {"location": location, **({"length": str(length)} if length is not None else {})}
    for k, v in entries.items():
        e = t.external_data.add()
        e.key, e.value = k, v
    m.graph.initializer.append(t)
    return m


def untyped_attribute(name, ints):
    """An INTS attribute whose type field is unset (what one flipped byte of a file gives)."""
    a = helper.make_attribute(name, ints)
    a.ClearField("type")
    return a


def flip(data: bytes, pos: int, mask: int = 0xFF) -> bytes:
    b = bytearray(data)
    b[pos] ^= mask
    return bytes(b)


# ---- the hostile model files --------------------------------------------------------------------

@dataclass(frozen=True)
class Hostile:
    """One hostile model file.

    ``source(dir)`` returns bytes, a ModelProto (written to ``<id>.onnx``), or a path it made.
    ``expect``: "unsupported" (validate raises ValueError, CLI exits 2 with one error line),
    "failed" (validate returns a not-ok Report with a failed/mismatch row, CLI exits 1), or "ok"
    (the model is fine: Report ok, CLI exits 0). ``match``: a substring of the error message (or
    of a failing row's detail), case-insensitive, any of several separated by "|".
    ``bug`` / ``validate_bug`` / ``cli_bug``: what the case found before it was fixed (a note);
    ``raises``: what validate raised then. ``numpy_error``: validate lets numpy's
    own ValueError through instead of an UnsupportedModel (allowed: a ValueError, readable).
    """
    id: str
    source: Callable
    expect: str
    match: str = ""
    bug: str = ""
    validate_bug: str = ""
    cli_bug: str = ""
    raises: type | None = None
    numpy_error: bool = False


def data(value):
    return lambda d: value


def symlink_loop(d: Path) -> str:
    a = d / "loop_a.onnx"
    b = d / "loop_b.onnx"
    for link, target in ((a, b), (b, a)):
        if not link.is_symlink():
            link.symlink_to(target)
    return str(a)


def external(location, length=None):
    def make(d: Path) -> str:
        sub = d / f"ext_{abs(hash((location, length)))}"
        sub.mkdir(exist_ok=True)
        (sub / "data.bin").write_bytes(b"\0" * 16)
        path = sub / "model.onnx"
        path.write_bytes(with_external_data(location, length).SerializeToString())
        return str(path)
    return make


def cycle_through_identity():
    """GlobalAveragePool reads the Identity's output and the Identity reads the pool's."""
    return model([node("GlobalAveragePool", ["x2"], ["y"]), node("Identity", ["y"], ["x2"])],
                 [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 4, 4])])


def cycle_of_two_pools():
    return model([node("MaxPool", ["b"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
                  node("MaxPool", ["a"], ["b"], kernel_shape=[2, 2], strides=[2, 2])],
                 [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 8, 8])], outputs=("a",))


def missing_producer():
    """The pooling node reads "w": no input, initializer or node makes it."""
    return model([node("GlobalAveragePool", ["w"], ["y"])], [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 4, 4])])


def two_inputs():
    return model([node("GlobalAveragePool")], [helper.make_tensor_value_info("x", TP.FLOAT, [1, 3, 4, 4]),
                                               helper.make_tensor_value_info("z", TP.FLOAT, [1])])


def no_inputs():
    return model([node("GlobalAveragePool")], [])


def exported_with_second_input(m):
    m.graph.input.append(helper.make_tensor_value_info("extra", TP.FLOAT, [1]))


def sequence_input():
    return model([node("GlobalAveragePool")], [helper.make_tensor_sequence_value_info("x", TP.FLOAT, [1, 3, 4, 4])])


def no_opset_import():
    m = one_node("GlobalAveragePool", (1, 3, 4, 4))
    del m.opset_import[:]
    return m


def truncated(fraction_or_count):
    def make(d):
        b = exported().SerializeToString()
        cut = fraction_or_count if isinstance(fraction_or_count, int) else int(len(b) * fraction_or_count)
        return b[:cut] if cut >= 0 else b[:len(b) + cut]
    return make


def corrupt_middle_byte(d):
    b = exported().SerializeToString()
    return flip(b, len(b) // 2)


HOSTILE = [
    # a control: the harness itself must see a good model as good
    Hostile("control-exported-model", lambda d: exported(), "ok"),
    # -- not a model at all
    Hostile("empty-file", data(b""), "unsupported", "0 computing nodes"),
    Hostile("random-bytes-16", data(np.random.default_rng(1).bytes(16)), "unsupported", "not an ONNX model|computing nodes"),
    Hostile("random-bytes-1k", data(np.random.default_rng(2).bytes(1000)), "unsupported", "not an ONNX model|computing nodes"),
    Hostile("random-bytes-100k", data(np.random.default_rng(3).bytes(100_000)), "unsupported", "not an ONNX model|computing nodes"),
    Hostile("text-file", data(b"ir_version: 8\ngraph { node { op_type: 'Relu' } }\n"), "unsupported", "not an ONNX model"),
    Hostile("a-TensorProto", data(helper.make_tensor("t", TP.FLOAT, [2], [1.0, 2.0]).SerializeToString()),
            "unsupported", "not an ONNX model"),
    Hostile("a-GraphProto", lambda d: exported().graph.SerializeToString(), "unsupported", "computing nodes"),
    *[Hostile(f"truncated-at-{c}", truncated(c), "unsupported", "not an ONNX model|computing nodes")
      for c in (1, 2, 10, 0.25, 0.5, 0.75, -1)],
    # the middle byte is inside a value name: the file parses, and every runtime refuses the graph
    Hostile("corrupt-byte-in-the-middle", corrupt_middle_byte, "failed"),
    Hostile("corrupt-first-byte", lambda d: flip(exported().SerializeToString(), 0), "unsupported", "not an ONNX model"),
    Hostile("corrupt-attribute-type", lambda d: one_node("MaxPool", kernel_shape=untyped_attribute("kernel_shape", [2, 2]),
                                                          strides=[2, 2]),
            "unsupported", "kernel_shape",
            validate_bug="fixed, was: an attribute with an unset type (one flipped byte of a MaxPool file) makes "
                         "validate raise TypeError (\"'NoneType' object is not iterable\"), not UnsupportedModel",
            raises=TypeError),
    # -- not a file
    Hostile("directory", lambda d: str(d), "unsupported", "is a directory"),
    Hostile("nonexistent-path", lambda d: str(d / "no" / "such.onnx"), "unsupported", "no such file"),
    Hostile("symlink-loop", symlink_loop, "unsupported", "can't read the model"),
    # (the reasons are onnx's words; validate prefixes them with one of these)
    *[Hostile(f"external-data-{name}", external(*where), "unsupported", "can't read the model|not an ONNX model")
      for name, where in (("missing", ("missing.bin",)), ("absolute-path", ("/etc/passwd",)),
                          ("outside-the-folder", ("../../../etc/passwd",)), ("huge-length", ("data.bin", 2**40)))],
    # -- input shapes
    Hostile("dim-2**40", data(one_node("GlobalAveragePool", (1, 3, 2**40, 4))), "unsupported", "too large"),
    Hostile("dim-2**62", data(one_node("GlobalAveragePool", (1, 3, 2**62, 4))), "unsupported", "too large"),
    Hostile("exported-dim-2**40", lambda d: exported(set_dims(1, 3, 2**40, 15)), "unsupported", "too large"),
    Hostile("dim-2**31", lambda d: exported(set_dims(1, 1, 2**31, 15)), "unsupported", "too large",
            bug="fixed, was: validate checks each input dim against 2**31 alone (and lets 2**31 itself through): "
                "input (1, 1, 2**31, 15) makes it allocate 240 GiB of random input (MemoryError; the CLI "
                "prints a traceback)", raises=MemoryError),
    Hostile("dims-product-2**40", lambda d: exported(set_dims(2**20, 2**20, 15, 15)), "unsupported", "too large",
            bug="fixed, was: dims (2**20, 2**20, 15, 15), each below the per-dim limit, make validate allocate "
                "1.76 PiB of random input (MemoryError; the CLI prints a traceback)", raises=MemoryError),
    Hostile("dims-product-2**64", data(one_node("GlobalAveragePool", (2**16,) * 4)), "unsupported", "too large|too big",
            numpy_error=True),
    Hostile("negative-dim", data(one_node("GlobalAveragePool", (1, 3, -4, 4))), "unsupported", "negative",
            numpy_error=True),
    Hostile("exported-negative-dim", lambda d: exported(set_dims(1, 3, -4, 15)), "unsupported", "negative",
            numpy_error=True),
    Hostile("zero-rank-input", data(one_node("GlobalAveragePool", ())), "unsupported", "rank-0"),
    Hostile("exported-zero-rank-input", lambda d: exported(set_dims()), "unsupported", "rank 0"),
    Hostile("exported-input-without-shape",
            lambda d: exported(lambda m: m.graph.input[0].type.tensor_type.ClearField("shape")), "unsupported", "rank 0"),
    Hostile("rank-1-input-to-a-2d-adapool-node", data(adapool_node("AdaptiveAvgPool2d", (8,), output_size=[2, 2])),
            "unsupported", "rank 1 is too small"),
    Hostile("rank-3-input-to-a-2d-maxpool", data(one_node("MaxPool", (1, 3, 8), kernel_shape=[2, 2], strides=[2, 2])),
            "unsupported", "rank-3 input needs 1 positive kernel_shape"),
    Hostile("rank-6-input", data(one_node("GlobalAveragePool", (1, 3, 2, 2, 2, 2))), "unsupported", "rank-6"),
    Hostile("exported-empty-spatial-dim", lambda d: exported(set_dims(1, 3, 0, 15)), "unsupported", "empty"),
    Hostile("exported-rank-1-input", lambda d: exported(set_dims(15)), "unsupported", "rank 1 is too small"),
    # the graph reshapes as for (N, C, H, W): the runtimes refuse it, the kernel computes (C, H, W)
    Hostile("exported-rank-3-on-a-batched-graph", lambda d: exported(set_dims(3, 15, 15)), "failed"),
    # -- graph structure
    Hostile("cycle-through-identity", data(cycle_through_identity()), "failed"),
    Hostile("cycle-of-two-pools", data(cycle_of_two_pools()), "unsupported", "2 computing nodes"),
    Hostile("input-nothing-produces", data(missing_producer()), "failed", "'w'"),
    # models adapool can't compute run against the reference runtime (onnxruntime CPU)
    Hostile("two-inputs", data(two_inputs()), "ok"),
    Hostile("no-inputs", data(no_inputs()), "unsupported", "0 inputs"),
    Hostile("exported-with-a-second-input", lambda d: exported(exported_with_second_input), "unsupported", "2 inputs"),
    # -- element types
    *[Hostile(f"{name.lower()}-input", data(one_node("GlobalAveragePool", elem=elem)), "unsupported", name)
      for name, elem in (("INT64", TP.INT64), ("BOOL", TP.BOOL), ("STRING", TP.STRING))],
    Hostile("exported-int64-input",
            lambda d: exported(lambda m: setattr(m.graph.input[0].type.tensor_type, "elem_type", TP.INT64)),
            "unsupported", "INT64"),
    Hostile("sequence-input", data(sequence_input()), "unsupported", "no adapool equivalent"),
    # -- ops
    Hostile("unknown-op-custom-domain", data(one_node("Frobnicate", domain="com.example")), "unsupported",
            "can't compute com.example.Frobnicate"),
    Hostile("unknown-op-default-domain", data(one_node("Frobnicate")), "unsupported", "can't compute Frobnicate"),
    Hostile("relu", data(one_node("Relu")), "ok"),
    Hostile("unknown-op-name-with-newline", data(one_node("Frob\nnicate")), "unsupported", "can't compute",
            cli_bug="fixed, was: an op type holding a newline goes unquoted into the error message: "
                    "`check` prints a two-line error"),
    Hostile("unknown-adapool-op", data(adapool_node("AdaptivePool9d", output_size=[2])), "unsupported",
            "unknown adapool-domain op"),
    Hostile("adapool-node-without-output_size", data(adapool_node("AdaptiveAvgPool2d")), "unsupported",
            "lacks attribute 'output_size'"),
    Hostile("adapool-AvgPool2d-without-kernel",
            data(adapool_node("AvgPool2d", **{k: v for k, v in AVG_POOL2D_ATTRS.items() if k != "kernel"})),
            "unsupported", "lacks attribute 'kernel'"),
    Hostile("adapool-AvgPool2d-empty-ceil_mode", data(adapool_node("AvgPool2d", **{**AVG_POOL2D_ATTRS, "ceil_mode": []})),
            "unsupported", "lacks attribute"),
    *[Hostile(f"adapool-output_size-{kind}", data(adapool_node("AdaptiveAvgPool2d", output_size=value)), "unsupported",
              "output_size", validate_bug=f"fixed, was: an adapool node whose output_size is {kind} makes validate raise "
                                          f"TypeError ({message}), not UnsupportedModel", raises=TypeError)
      for kind, value, message in (
          ("an-int", 2, "'int' object is not iterable"),
          ("a-float", 2.5, "'float' object is not iterable"),
          ("strings", ["a", "b"], "'<' not supported between instances of 'bytes' and 'int'"),
          ("a-tensor", helper.make_tensor("t", TP.INT64, [2], [2, 2]), "'TensorProto' object is not iterable"))],
    Hostile("adapool-AvgPool2d-ceil_mode-an-int", data(adapool_node("AvgPool2d", **{**AVG_POOL2D_ATTRS, "ceil_mode": 0})),
            "unsupported", "ceil_mode",
            validate_bug="fixed, was: an adapool AvgPool2d node whose ceil_mode is an INT (not INTS) makes validate raise "
                         "TypeError ('int' object is not iterable)", raises=TypeError),
    Hostile("adapool-output_size-2**62", data(adapool_node("AdaptiveAvgPool2d", output_size=[2**62, 2**62])),
            "unsupported", "too large|too big"),
    Hostile("adapool-output_size-10**5", data(adapool_node("AdaptiveAvgPool2d", output_size=[10**5, 10**5])),
            "unsupported", "too large",
            bug="fixed, was: an adapool node asking for a 100000x100000 output makes validate's reference call "
                "allocate 112 GiB (MemoryError; the CLI prints a traceback)", raises=MemoryError),
    Hostile("adapool-node-without-function-body", data(adapool_node("AdaptiveAvgPool2d", output_size=[2, 2])), "failed",
            "AdaptiveAvgPool2d"),
    Hostile("maxpool-kernel-0", data(one_node("MaxPool", kernel_shape=[0, 0], strides=[0, 0])), "unsupported", "kernel",
            bug="fixed, was: MaxPool with kernel_shape = strides = [0, 0] makes validate divide by zero "
                "(ZeroDivisionError; the CLI prints a traceback)", raises=ZeroDivisionError),
    Hostile("averagepool-1d-kernel-0", data(one_node("AveragePool", (1, 3, 8), kernel_shape=[0], strides=[0])),
            "unsupported", "kernel",
            bug="fixed, was: 1-d AveragePool with kernel_shape = strides = [0] makes validate divide by zero "
                "(ZeroDivisionError; the CLI prints a traceback)", raises=ZeroDivisionError),
    Hostile("maxpool-kernel_shape-an-int", data(one_node("MaxPool", kernel_shape=2, strides=2)), "unsupported",
            "kernel_shape",
            validate_bug="fixed, was: MaxPool whose kernel_shape/strides are INT (not INTS) makes validate raise "
                         "TypeError ('int' object is not iterable)", raises=TypeError),
    Hostile("averagepool-without-kernel_shape", data(one_node("AveragePool")), "unsupported", "kernel_size"),
    # SAME_UPPER with kernel 2 pads one side only: no adapool call, the reference runtime decides
    Hostile("averagepool-auto_pad", data(one_node("AveragePool", kernel_shape=[2, 2], auto_pad="SAME_UPPER")), "ok"),
    Hostile("averagepool-negative-pads", data(one_node("AveragePool", kernel_shape=[3, 3], pads=[-1, -1, -1, -1])),
            "unsupported", "pad"),
    Hostile("averagepool-kernel-2**40", data(one_node("AveragePool", kernel_shape=[2**40, 2**40])),
            "unsupported", "too large"),
    # -- metadata
    Hostile("metadata-unknown-op", lambda d: exported(set_meta("adapool.op", "max_pool7d")), "unsupported",
            "unknown adapool.op 'max_pool7d'"),
    Hostile("metadata-invalid-json", lambda d: exported(set_meta("adapool.kwargs", "{output_size: 7")), "unsupported",
            "unreadable adapool.kwargs"),
    *[Hostile(f"metadata-kwargs-json-{kind}", lambda d, v=value: exported(set_meta("adapool.kwargs", v)), "unsupported",
              "adapool.kwargs",
              bug=f"fixed, was: adapool.kwargs metadata holding valid JSON that is not an object ({value[:12]}) makes "
                  "validate raise AttributeError (\"... has no attribute 'get'\"); the CLI prints a traceback",
              raises=AttributeError)
      for kind, value in (("list", "[7, 7]"), ("null", "null"), ("number", "7"), ("string", '"7"'))],
    Hostile("metadata-kwargs-deeply-nested", lambda d: exported(set_meta("adapool.kwargs", "[" * 100_000 + "]" * 100_000)),
            "unsupported", "adapool.kwargs",
            bug="fixed, was: deeply nested JSON in adapool.kwargs makes validate raise RecursionError; the CLI prints "
                "a traceback", raises=RecursionError),
    Hostile("metadata-unknown-kwarg", lambda d: exported(set_meta("adapool.kwargs", '{"output_size": 7, "bogus": 1}')),
            "unsupported", "unexpected keyword argument 'bogus'"),
    Hostile("metadata-output_size-a-string", lambda d: exported(set_meta("adapool.kwargs", '{"output_size": "7"}')),
            "unsupported", "output_size"),
    Hostile("metadata-output_size-10**5", lambda d: exported(set_meta("adapool.kwargs", '{"output_size": [100000, 100000]}')),
            "unsupported", "too large",
            bug="fixed, was: adapool.kwargs metadata asking for a 100000x100000 output makes validate's reference "
                "call allocate 112 GiB (MemoryError; the CLI prints a traceback)", raises=MemoryError),
    Hostile("metadata-other-output_size", lambda d: exported(set_meta("adapool.kwargs", '{"output_size": [2, 2]}')),
            "failed", "shape [1, 3, 7, 7], expected [1, 3, 2, 2]"),
    Hostile("metadata-other-op", lambda d: exported(lambda m: (set_meta("adapool.op", "adaptive_avg_pool3d")(m),
                                                               set_meta("adapool.kwargs", '{"output_size": 2}')(m))),
            "failed", "shape"),
    # -- opsets
    Hostile("opset-1-global-average-pool", data(one_node("GlobalAveragePool", opset=1)), "ok"),  # it exists since 1
    Hostile("opset-999", data(one_node("GlobalAveragePool", opset=999)), "failed"),
    Hostile("exported-opset-1", lambda d: exported(set_opset(1)), "failed"),
    Hostile("exported-opset-999", lambda d: exported(set_opset(999)), "failed"),
    Hostile("no-opset-import", data(no_opset_import()), "failed"),
]


def _write(case: Hostile, d: Path) -> str:
    src = case.source(d)
    if isinstance(src, str):
        return src
    path = d / f"{case.id}.onnx"
    path.write_bytes(src.SerializeToString() if isinstance(src, onnx.ModelProto) else src)
    return str(path)


def _params(which: str):
    out = []
    for case in HOSTILE:
        out.append(pytest.param(case, id=case.id))
    return out


def test_hostile_cases_are_distinct():
    ids = [c.id for c in HOSTILE]
    assert len(ids) == len(set(ids))
    assert all(c.expect in ("unsupported", "failed", "ok") for c in HOSTILE)


@pytest.fixture(scope="module")
def hostile_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    return d, {case.id: _write(case, d) for case in HOSTILE}


@pytest.fixture(scope="module")
def cli_checks(hostile_dir, ort):
    """`python -m onnx_export check FILE` for every hostile file, run side by side."""
    d, paths = hostile_dir
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 2) as pool:
        futures = {cid: pool.submit(run_cli, ["check", path], cwd=str(d)) for cid, path in paths.items()}
        return {cid: f.result() for cid, f in futures.items()}


def _matches(text: str, match: str) -> bool:
    return not match or any(m.lower() in text.lower() for m in match.split("|"))


@pytest.mark.parametrize("case", _params("validate"))
def test_validate_hostile_model(case, hostile_dir, ort):
    path = hostile_dir[1][case.id]
    try:
        with deadline(), bounded_memory():
            report = validate(path)
    except ValueError as e:
        assert case.expect == "unsupported", f"raised {type(e).__name__}: {e}"
        assert isinstance(e, UnsupportedModel) or case.numpy_error, f"not an UnsupportedModel: {e!r}"
        assert str(e).strip(), f"{type(e).__name__} without a message"
        assert _matches(str(e), case.match), f"unclear message: {e}"
        return
    assert isinstance(report, Report)
    assert case.expect != "unsupported", f"expected a ValueError, got a report:\n{report}"
    if case.expect == "ok":
        assert report.ok, str(report)
        return
    assert not report.ok, str(report)
    bad = [r for r in report.rows if r.status in ("failed", "mismatch")]
    assert bad, str(report)
    assert _matches(" ".join(r.detail for r in bad), case.match), str(report)
    assert str(report).endswith("FAILED")


@pytest.mark.parametrize("case", _params("cli"))
def test_cli_check_hostile_model(case, cli_checks):
    proc = cli_checks[case.id]
    if case.expect == "unsupported":
        assert_clean_cli_error(proc)
        return
    assert not isinstance(proc, subprocess.TimeoutExpired), f"hang: {proc}"
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    want = {"ok": (0, "OK"), "failed": (1, "FAILED")}[case.expect]
    assert (proc.returncode, proc.stdout.rstrip().splitlines()[-1] if proc.stdout.strip() else "") == want, (
        proc.returncode, proc.stdout[-1500:], proc.stderr[-1500:])


# ---- every single-byte corruption of small model files ------------------------------------------

def _small_models():
    return {
        "maxpool-node": one_node("MaxPool", (1, 2, 6, 6), kernel_shape=[2, 2], strides=[2, 2]),
        "averagepool-node": one_node("AveragePool", (1, 2, 6, 6), kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        "exported-pool": export("adaptive_avg_pool2d", (1, 2, 6, 6), output_size=3),
    }


_SWEEP_BUG = ("fixed, was: flipping one byte of the file can unset an attribute's type (kernel_shape/strides): "
              "validate then raises TypeError (\"'NoneType' object is not iterable\") instead of UnsupportedModel")


@pytest.mark.parametrize("name", [
    "maxpool-node",
    "averagepool-node",
    "exported-pool",
])
def test_validate_every_corrupted_byte(name, ort):
    """Each byte XOR 0xFF, 0x01 and 0x80: a ValueError or a Report, never another exception."""
    data_ = _small_models()[name].SerializeToString()
    crashes = []
    with deadline(), bounded_memory(), contextlib.redirect_stdout(io.StringIO()):   # onnxruntime prints EP errors
        for pos in range(len(data_)):
            for mask in (0xFF, 0x01, 0x80):
                try:
                    validate(flip(data_, pos, mask), runtimes=["onnxruntime-cpu"])
                except ValueError:
                    pass
                except Exception as e:   # noqa: BLE001 (that is what is being looked for)
                    crashes.append((pos, mask, f"{type(e).__name__}: {e}"))
    assert not crashes, f"{len(crashes)} corruptions crash validate, e.g. {crashes[:3]}"


# ---- lower() on garbage adapool-domain nodes --------------------------------------------------------

def lowerable(op_type, shape=(1, 3, 8, 8), inputs=("x",), outputs=("y",), **attrs):
    """An adapool-domain node in a graph that passes onnx.checker (typed, shaped outputs)."""
    return model([node(op_type, inputs, outputs, domain=onnx_export.DOMAIN, **attrs)],
                 [helper.make_tensor_value_info("x", TP.FLOAT, list(shape))], outputs=outputs,
                 opsets=(("", 18), (onnx_export.DOMAIN, 1)), out_shape=["a", "b", "c", "d"])


def _lower_bug(what, exc):
    """Was a strict xfail until the bug it names was fixed; kept to say what the case is about."""
    return ()


LOWER_CASES = [
    pytest.param(lowerable("AdaptiveAvgPool2d"), "lacks attribute 'output_size'", id="no-output_size"),
    pytest.param(lowerable("AdaptiveAvgPool2d", output_size=[]), "output_size must be 2", id="empty-output_size"),
    pytest.param(lowerable("AdaptiveAvgPool2d", output_size=[2**62, 2]), "too large", id="output_size-2**62"),
    pytest.param(lowerable("Bogus", output_size=[2, 2]), "unknown adapool-domain op", id="unknown-op"),
    pytest.param(lowerable("AvgPool2d", **{k: v for k, v in AVG_POOL2D_ATTRS.items() if k != "kernel"}),
                 "lacks attribute 'kernel'", id="AvgPool2d-no-kernel"),
    pytest.param(lowerable("AvgPool2d", **{**AVG_POOL2D_ATTRS, "ceil_mode": []}), "lacks attribute", id="AvgPool2d-empty-ceil_mode"),
    pytest.param(lowerable("AvgPool2d", **{**AVG_POOL2D_ATTRS, "kernel": [0, 0]}), "kernel size should be greater than zero",
                 id="AvgPool2d-kernel-0"),
    pytest.param(lowerable("AvgPool2d", **{**AVG_POOL2D_ATTRS, "kernel": [2, 2, 2]}), "kernel_size", id="AvgPool2d-kernel-3-long"),
    pytest.param(lowerable("AdaptiveAvgPool2d", shape=(8,), output_size=[2, 2]), "Expected 3D or 4D", id="rank-1-input"),
    pytest.param(lowerable("AdaptiveAvgPool2d", shape=(1, 3, -3, 15), output_size=[2, 2]), "negative", id="negative-dim"),
    pytest.param(lowerable("AdaptiveAvgPool2d", inputs=("",), output_size=[2, 2]), "type is unknown", id="empty-input-name"),
    pytest.param(lowerable("AdaptiveAvgPool2d", output_size=2), "output_size",
                 marks=_lower_bug("an INT output_size ('int' object is not iterable)", TypeError), id="output_size-an-int"),
    pytest.param(lowerable("AdaptiveAvgPool2d", output_size=["a", "b"]), "output_size",
                 marks=_lower_bug("a STRINGS output_size ('<' between bytes and int)", TypeError), id="output_size-strings"),
    pytest.param(lowerable("AvgPool2d", **{**AVG_POOL2D_ATTRS, "ceil_mode": 0}), "ceil_mode",
                 marks=_lower_bug("an INT ceil_mode ('int' object is not iterable)", TypeError), id="AvgPool2d-ceil_mode-an-int"),
    pytest.param(lowerable("AdaptiveAvgPool2d", inputs=(), output_size=[2, 2]), "input",
                 marks=_lower_bug("a node without inputs (node.input[0])", IndexError), id="no-inputs"),
    pytest.param(lowerable("AdaptiveMaxPool2dWithIndices", output_size=[2, 2]), "output",
                 marks=_lower_bug("a WithIndices node with one output (node.output[1])", IndexError),
                 id="WithIndices-one-output"),
]


def test_lower_huge_static_input_takes_the_dynamic_form():
    """A static input of 2**40 rows used to make lower() allocate a 16 TiB pooling matrix; its
    constant tables would be too large, so auto takes the dynamic form instead."""
    m = lowerable("AdaptiveAvgPool2d", shape=(1, 3, 2**40, 15), output_size=[2, 2])
    with deadline(), bounded_memory():
        lowered = lower(m)
    assert not any(n.domain == onnx_export.DOMAIN for n in lowered.graph.node)
    assert "Range" in {n.op_type for n in lowered.graph.node}


@pytest.mark.parametrize("m,match", LOWER_CASES)
def test_lower_rejects_garbage_adapool_nodes(m, match):
    onnx.checker.check_model(m)   # the graph itself is well-formed; only the adapool node is garbage
    with deadline(), bounded_memory(), pytest.raises(ValueError) as info:
        lower(m)
    assert _matches(str(info.value), match), str(info.value)


# ---- export with hostile static sizes ----------------------------------------------------------

def _export_bug(what):
    """Was a strict xfail until the bug it names was fixed (auto now takes the dynamic form)."""
    return ()


EXPORT_SIZES = [
    pytest.param("adaptive_max_pool2d", (1, 3, 2**40, 15), dict(output_size=7), id="max-2**40-rows"),
    pytest.param("avg_pool2d", (1, 3, 2**40, 15), dict(kernel_size=3), id="avg_pool2d-2**40-rows"),
    pytest.param("adaptive_avg_pool2d", (2**62, 2**62, 15, 15), dict(output_size=7), id="batch-and-channels-2**62"),
    pytest.param("adaptive_avg_pool1d", (3, 2**62), dict(output_size=7), id="avg1d-2**62"),
    pytest.param("adaptive_avg_pool2d", (1, 3, 15, 15), dict(output_size=2**62), id="output-2**62"),
    pytest.param("adaptive_avg_pool2d", (1, 3, 2**40, 15), dict(output_size=7), marks=_export_bug("2**40 static rows (avg)"),
                 id="avg-2**40-rows"),
    pytest.param("adaptive_max_pool2d", (1, 3, 2**40, 15), dict(output_size=7, return_indices=True),
                 marks=_export_bug("2**40 static rows (max with indices)"), id="max-indices-2**40-rows"),
    pytest.param("avg_pool2d", (1, 3, 2**40, 15), dict(kernel_size=3, ceil_mode=True),
                 marks=_export_bug("2**40 static rows (avg_pool2d with ceil_mode)"), id="avg_pool2d-ceil-2**40-rows"),
    pytest.param("adaptive_avg_pool2d", (1, 3, 15, 15), dict(output_size=2**40),
                 marks=_export_bug("output_size 2**40"), id="output-2**40"),
]


@pytest.mark.parametrize("op,shape,kw", EXPORT_SIZES)
def test_export_with_huge_static_sizes(op, shape, kw):
    """A clean error, or a (small) model the checker passes; never an attempt to allocate per element."""
    with deadline(), bounded_memory():
        try:
            m = export(op, shape, **kw)
        except ValueError as e:   # ExportError is one
            assert str(e).strip()
            return
    onnx.checker.check_model(m, full_check=True)
    assert m.ByteSize() < 1 << 20


# ---- the CLI's export: exit 2 leaves no file -----------------------------------------------------

@dataclass(frozen=True)
class CliExport:
    id: str
    args: tuple
    match: str = ""
    bug: str = ""
    output: str = "out.onnx"   # relative to the run's folder


CLI_EXPORTS = [
    CliExport("opset-999", ("adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2", "--opset", "999"),
              "outside the supported range"),
    CliExport("opset-1", ("adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2", "--opset", "1"),
              "outside the supported range"),
    CliExport("unknown-strategy", ("adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2",
                                   "--strategy", "fastest"), "unknown strategy"),
    CliExport("strategy-not-exact", ("adaptive_max_pool2d", "--input-shape", "N,3,H,W", "--output-size", "2",
                                     "--strategy", "gather"), "static"),
    CliExport("negative-dim", ("adaptive_avg_pool2d", "--input-shape", "1,3,-4,4", "--output-size", "2"), "negative"),
    CliExport("rank-2-input", ("adaptive_avg_pool2d", "--input-shape", "4,4", "--output-size", "2"), "Expected 3D or 4D"),
    CliExport("kernel-larger-than-input", ("avg_pool2d", "--input-shape", "1,3,2,2", "--kernel-size", "3"),
              "too small"),
    CliExport("output-in-a-missing-folder", ("adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2"),
              "No such file", output="missing/out.onnx"),
    CliExport("output-is-a-folder", ("adaptive_avg_pool2d", "--input-shape", "1,3,8,8", "--output-size", "2"),
              "directory", output="."),
    CliExport("huge-dim-validated", ("avg_pool2d", "--input-shape", "1,3,1099511627776,15", "--kernel-size", "3"),
              "too large",
              bug="fixed, was: `export` writes the file, then validation raises UnsupportedModel ('input dimension "
                  "1099511627776 is too large to generate'): exit 2 with the file left behind"),
    CliExport("huge-output-validated", ("adaptive_max_pool2d", "--input-shape", "1,3,15,15", "--output-size", "100000"),
              "too large",
              bug="fixed, was: the export is written, then validation's reference call allocates the 3x100000x100000 "
                  "output: MemoryError traceback, exit 1, file left behind"),
    CliExport("huge-product-validated", ("avg_pool2d", "--input-shape", "1,1,2147483648,15", "--kernel-size", "3"),
              "too large",
              bug="fixed, was: the export is written, then validation allocates a 2**31x15 random input: MemoryError "
                  "traceback, exit 1, file left behind"),
]


@pytest.fixture(scope="module")
def cli_exports(tmp_path_factory, ort):
    base = tmp_path_factory.mktemp("cli_export")
    runs = {}
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 2) as pool:
        for case in CLI_EXPORTS:
            d = base / case.id
            d.mkdir()
            runs[case.id] = (d, pool.submit(run_cli, ["export", *case.args, "-o", case.output], cwd=str(d)))
        return {cid: (d, f.result()) for cid, (d, f) in runs.items()}


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CLI_EXPORTS])
def test_cli_export_failure_leaves_no_file(case, cli_exports):
    d, proc = cli_exports[case.id]
    assert_clean_cli_error(proc, case.match)
    out = d / case.output
    if case.output == ".":
        assert sorted(p.name for p in d.iterdir()) == [], "the folder was written into"
    else:
        assert not out.exists(), f"{case.output} left behind by a failed export"


# ---- properties ---------------------------------------------------------------------------------

DIM_NAMES = ["N", "C", "H", "W", "S", None]


@st.composite
def export_calls(draw, cli: bool = False):
    """(op, input_shape, kwargs, dtype, opset, strategy). One call in eight draws from hostile
    ranges (bad ranks, 0 and negative dims and sizes, wrong lengths); the rest are mostly valid
    calls with static and dynamic dims, so that most examples export."""
    op = draw(st.sampled_from(sorted(OPS)), "op")
    kind, nd = OPS[op]
    hostile = draw(st.integers(0, 7), "hostile") == 0
    rank = draw(st.sampled_from([nd, nd + 1, nd + 2, nd + 3] if hostile else [nd + 1, nd + 2]), "rank")
    dim = st.one_of(st.integers(1, 20), st.sampled_from(DIM_NAMES), *([st.sampled_from([0, -1])] if hostile else []))
    shape = tuple(draw(dim, f"dim{i}") for i in range(rank))
    if kind == "lppool":   # p: torch's special cases, general ones, ±inf, and 0 (ZeroDivisionError) when hostile
        k = st.integers(0, 6) if hostile else st.integers(1, 4)
        per_axis = lambda v: st.tuples(*[v] * nd)   # noqa: E731
        kw = dict(norm_type=draw(st.sampled_from([1, 2, 3, 1.5, -0.5, -1, float("inf"), -float("inf")]
                                                 + ([0, -2.5] if hostile else [])), "norm_type"),
                  kernel_size=draw(k if nd == 1 else st.one_of(k, per_axis(k)), "kernel_size"),
                  stride=draw(st.one_of(st.none(), per_axis(st.integers(0 if hostile else 1, 4))), "stride"),
                  ceil_mode=draw(st.booleans(), "ceil_mode"))
    elif kind in ("avgpool", "maxpool"):
        k = st.integers(0, 6) if hostile else st.integers(1, 4)
        s = st.integers(0, 4) if hostile else st.integers(1, 4)
        p = st.integers(0, 3) if hostile else st.integers(0, 2)
        per_axis = lambda v: st.tuples(*[v] * nd)   # noqa: E731
        kernels = [k, per_axis(k)] + ([st.lists(st.integers(1, 4), min_size=1, max_size=3)] if hostile else [])
        kw = dict(kernel_size=draw(st.one_of(*kernels), "kernel_size"),
                  stride=draw(st.one_of(st.none(), s, per_axis(s), *([] if cli else [st.just([])])), "stride"),
                  padding=draw(st.one_of(p, per_axis(p)), "padding"),
                  ceil_mode=draw(st.booleans(), "ceil_mode"))
        if kind == "maxpool":
            d = st.integers(0, 4) if hostile else st.integers(1, 3)
            kw["dilation"] = draw(st.one_of(d, per_axis(d)), "dilation")
            kw["return_indices"] = draw(st.booleans(), "return_indices")
        else:
            kw["count_include_pad"] = draw(st.booleans(), "count_include_pad")
            if op != "avg_pool1d":
                kw["divisor_override"] = draw(st.one_of(st.none(), st.integers(-2, 12) if hostile
                                                        else st.integers(1, 12)), "divisor_override")
    else:
        size = st.integers(-1, 12) if hostile else st.integers(0 if kind == "avg" else 1, 9)
        lengths = st.lists(st.one_of(size, st.none()), min_size=max(1, nd - 1), max_size=nd + 1).map(tuple)
        kw = dict(output_size=draw(st.one_of(size, st.tuples(*[st.one_of(size, st.none())] * nd),
                                             *([lengths] if hostile else [])), "output_size"))
        if kind == "max" and draw(st.booleans(), "return_indices"):
            kw["return_indices"] = True
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]), "dtype")
    opset = draw(st.integers(MIN_OPSET, MAX_OPSET), "opset")
    strategy = draw(st.sampled_from(sorted(STRATEGIES) + ["auto"] * 3), "strategy")
    return op, shape, kw, dtype, opset, strategy


@given(call=export_calls())
def test_export_never_writes_a_model_the_checker_rejects(call):
    op, shape, kw, dtype, opset, strategy = call
    try:
        m = export(op, shape, dtype=dtype, opset=opset, strategy=strategy, **kw)
    except onnx.checker.ValidationError:   # export's own final check: it built a model the checker rejects
        raise
    except (ExportError, ValueError, TypeError, ZeroDivisionError) as e:   # lp_pool's p = 0: torch's error
        assert str(e).strip(), f"{type(e).__name__} without a message"
        event(f"refused: {type(e).__name__}")
        return
    event("exported")
    onnx.checker.check_model(m, full_check=True)
    assert [o.version for o in m.opset_import if o.domain == ""] == [opset]
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["adapool.op"] == op and (strategy == "auto" or meta["adapool.strategy"] == strategy)
    assert [i.name for i in m.graph.input] == ["input"]
    assert [o.name for o in m.graph.output] == ["output", "indices"][:len(m.graph.output)]


def _cli_list(v) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join("None" if x is None else str(x) for x in v)
    return str(v)


def cli_argv(op, shape, kw, dtype, opset, strategy, out, validate_it):
    argv = ["export", op, "--input-shape=" + ",".join("" if d is None else str(d) for d in shape),
            "--dtype", dtype, "--opset", str(opset), "--strategy", strategy, "-o", out]
    if "output_size" in kw:
        argv.append("--output-size=" + _cli_list(kw["output_size"]))
        if kw.get("return_indices"):
            argv.append("--return-indices")
    else:
        argv.append("--kernel-size=" + _cli_list(kw["kernel_size"]))
        if kw["stride"] is not None:
            argv.append("--stride=" + _cli_list(kw["stride"]))
        if "norm_type" in kw:
            argv.append(f"--norm-type={kw['norm_type']}")
        else:
            argv.append("--padding=" + _cli_list(kw["padding"]))
        if kw["ceil_mode"]:
            argv.append("--ceil-mode")
        if "dilation" in kw:
            argv.append("--dilation=" + _cli_list(kw["dilation"]))
        if kw.get("return_indices"):
            argv.append("--return-indices")
        if not kw.get("count_include_pad", True):
            argv.append("--no-count-include-pad")
        if kw.get("divisor_override") is not None:
            argv.append(f"--divisor-override={kw['divisor_override']}")
    if not validate_it:
        argv.append("--no-validate")
    return argv


@given(call=export_calls(cli=True), validate_it=st.booleans())
def test_cli_export_never_leaves_a_file_when_it_fails(call, validate_it, ort):
    """The CLI's `main` (what `python -m onnx_export` runs): exit 2 is one error line and no file;
    exit 0/1 leaves a model the checker passes."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "model.onnx")
        argv = cli_argv(*call, out, validate_it)
        stdout, stderr = io.StringIO(), io.StringIO()
        with deadline(), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            rc = main(argv)
        event(f"exit {rc}")
        if rc == 2:
            err = stderr.getvalue()
            assert err.startswith("error: ") and err.count("\n") == 1, (argv, err)
            assert not os.path.exists(out), (argv, err, "file left behind")
            return
        assert rc in (0, 1) and (rc == 0 or validate_it), (argv, rc, stdout.getvalue()[-1500:])
        onnx.checker.check_model(onnx.load(out), full_check=True)


def test_cli_export_of_a_huge_static_input_without_validation(tmp_path, ort):
    """Used to allocate a 56 TiB pooling matrix (MemoryError traceback); now a dynamic-form model."""
    proc = run_cli(["export", "adaptive_avg_pool2d", "--input-shape", "1,3,1099511627776,15", "--output-size", "7",
                    "--no-validate", "-o", "out.onnx"], cwd=str(tmp_path))
    assert proc.returncode == 0 and "strategy dynamic" in proc.stdout, proc.stdout + proc.stderr
    onnx.checker.check_model(onnx.load(str(tmp_path / "out.onnx")))
