"""Exact ONNX export of adapool's pooling calls, and validation across runtimes.

``export`` builds a model for one call, ``build`` emits the same nodes into a graph someone else
is building, ``validate`` runs any model under every available runtime (onnxruntime, OpenVINO,
tract, onnx.reference; ``RUNTIMES``) and compares each with adapool's kernel, expected outputs
or a reference runtime; ``optimize`` applies a graph optimizer (``OPTIMIZERS``). ``STRATEGIES`` lists every form a call can take and when it is exact.
"""
from ._builder import DEFAULT_OPSET, DOMAIN, MIN_OPSET
from ._export import MAX_OPSET, Built, build, export
from ._lower import lower
from ._strategies import AUTO_ORDER, STRATEGIES, ExportError

__all__ = ["export", "build", "lower", "Built", "validate", "Report", "UnsupportedModel", "optimize", "RUNTIMES",
           "DEFAULT_RUNTIMES", "OPTIMIZERS", "STRATEGIES", "AUTO_ORDER", "ExportError", "DEFAULT_OPSET", "MIN_OPSET",
           "MAX_OPSET", "DOMAIN"]


def __getattr__(name):   # validation imports its runtimes lazily, only when asked for
    if name in ("validate", "Report", "UnsupportedModel"):
        from . import _validate
        return getattr(_validate, name)
    if name in ("optimize", "RUNTIMES", "DEFAULT_RUNTIMES", "OPTIMIZERS"):
        from . import _runtimes
        return getattr(_runtimes, name)
    raise AttributeError(f"module 'onnx_export' has no attribute {name!r}")
