"""``python -m onnx_export export|check``: export one pooling call, or validate a model file."""
from __future__ import annotations

import argparse
import sys


def _ints(text: str, name: str, allow_none: bool = False) -> list:
    out = []
    for part in text.split(","):
        part = part.strip()
        if allow_none and part.lower() in ("none", "_"):
            out.append(None)
            continue
        try:
            out.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: expected comma-separated ints, got {text!r}") from None
    return out


def _shape(text: str) -> list:
    """Comma-separated dims: ints are static, anything else names a dynamic dim."""
    dims = []
    for part in text.split(","):
        part = part.strip()
        dims.append(int(part) if part.lstrip("-").isdigit() else (part or None))
    return dims


def _norm(text: str):
    """lp_pool's p: an int stays an int (torch's pow special-cases some), else a float."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--norm-type: expected a number, got {text!r}") from None


def _sizes(text: str) -> dict:
    """'N=1,2;H=9,16' -> {'N': [1, 2], 'H': [9, 16]}."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, eq, values = part.partition("=")
        if not eq or not name.strip():
            raise argparse.ArgumentTypeError(f"--sizes: expected NAME=ints;NAME=ints, got {text!r}")
        out[name.strip()] = _ints(values, f"--sizes {name.strip()}")
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m onnx_export",
                                description="Exact ONNX export of adapool's pooling calls, validated across runtimes.")
    sub = p.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="export one pooling call to an ONNX file")
    e.add_argument("op", help="adaptive_avg_pool1d/2d/3d, adaptive_max_pool1d/2d/3d, avg_pool1d/2d/3d, "
                              "max_pool1d/2d/3d, lp_pool1d/2d/3d or max_unpool1d/2d/3d (a second input, "
                              "indices)")
    e.add_argument("--input-shape", required=True, type=_shape,
                   help="comma-separated dims; a name (N, H, ...) makes that dim dynamic, e.g. N,16,H,W")
    e.add_argument("--output-size", help="adaptive ops: ints, comma-separated; None keeps a dim. "
                                            "max_unpool: the output's spatial sizes")
    e.add_argument("--return-indices", action="store_true", help="max ops: also output int64 indices")
    e.add_argument("--kernel-size", help="strided ops: one int per pooled axis (kH,kW), or one for all")
    e.add_argument("--stride", help="strided ops: as --kernel-size (default: the kernel size)")
    e.add_argument("--padding", default="0", help="strided ops: as --kernel-size")
    e.add_argument("--dilation", help="max_pool1d/2d/3d: as --kernel-size (default 1)")
    e.add_argument("--norm-type", type=_norm, help="lp_pool1d/2d/3d: p, an int or float (inf; -inf as --norm-type=-inf)")
    e.add_argument("--ceil-mode", action="store_true", help="strided ops")
    e.add_argument("--no-count-include-pad", action="store_true", help="avg_pool1d/2d/3d")
    e.add_argument("--divisor-override", type=int, help="avg_pool2d/3d")
    e.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64", "bfloat16"])
    e.add_argument("--strategy", default="auto")
    e.add_argument("--targets", help="comma-separated runtimes the graph must be exact on "
                                     "(onnxruntime,openvino,tract,onnxruntime-cuda; default: the first three)")
    e.add_argument("--inline", action="store_true",
                   help="inline the function strategy's model-local function (OpenVINO and tract need it)")
    e.add_argument("--opset", type=int)
    e.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    e.add_argument("--no-validate", action="store_true", help="don't run the written model under the runtimes")
    c = sub.add_parser("check", help="run any model file under every runtime and compare with a reference "
                                      "(adapool's kernel for a pooling call, else a reference runtime)")
    c.add_argument("model")
    c.add_argument("--runtimes", help="comma-separated, from onnxruntime-cpu,onnxruntime-cuda,openvino,"
                                      "openvino-default,tract,onnx-reference (default: all but openvino-default)")
    c.add_argument("--reference", help="the runtime compared with when adapool can't compute the model "
                                       "(default onnxruntime-cpu)")
    c.add_argument("--sizes", type=_sizes, help="sizes to try for dynamic dims, e.g. 'N=1,2;H=9,16'")
    c.add_argument("--optimize", help="also check the graph as these optimizers rewrite it: "
                                      "comma-separated, from onnxsim,onnxslim,onnxoptimizer")
    return p


def _export(args) -> int:
    import onnx

    from . import export, validate
    kwargs = {}
    if args.op.startswith("fractional_max_pool"):
        raise ValueError(f"{args.op} needs its _random_samples array at export: export it from Python "
                         "(onnx_export.export(..., _random_samples=samples))")
    if args.op.startswith("lp_pool"):
        misplaced = [flag for flag, value in (
            ("--output-size", args.output_size is not None), ("--return-indices", args.return_indices),
            ("--padding", args.padding != "0"), ("--dilation", args.dilation is not None),
            ("--no-count-include-pad", args.no_count_include_pad),
            ("--divisor-override", args.divisor_override is not None)) if value]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} {'does' if len(misplaced) == 1 else 'do'} not apply to {args.op}")
        if args.kernel_size is None or args.norm_type is None:
            raise ValueError(f"{args.op} needs --norm-type and --kernel-size")
        kernel = _ints(args.kernel_size, "--kernel-size")
        # lp_pool1d multiplies by its kernel_size: an int there, as torch takes it
        kwargs = dict(norm_type=args.norm_type, kernel_size=kernel[0] if len(kernel) == 1 else kernel,
                      stride=None if args.stride is None else _ints(args.stride, "--stride"), ceil_mode=args.ceil_mode)
    elif args.op.startswith("max_unpool"):
        misplaced = [flag for flag, value in (
            ("--return-indices", args.return_indices), ("--dilation", args.dilation is not None),
            ("--ceil-mode", args.ceil_mode), ("--norm-type", args.norm_type is not None),
            ("--no-count-include-pad", args.no_count_include_pad),
            ("--divisor-override", args.divisor_override is not None)) if value]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} {'does' if len(misplaced) == 1 else 'do'} not apply to {args.op}")
        if args.kernel_size is None:
            raise ValueError(f"{args.op} needs --kernel-size")
        # one int stands for every axis (torch's max_unpool reads a 1-element list as one axis)
        one = lambda v: v[0] if len(v) == 1 else v   # noqa: E731
        kwargs = dict(kernel_size=one(_ints(args.kernel_size, "--kernel-size")),
                      stride=None if args.stride is None else one(_ints(args.stride, "--stride")),
                      padding=one(_ints(args.padding, "--padding")),
                      output_size=None if args.output_size is None else _ints(args.output_size, "--output-size"))
    elif args.norm_type is not None:
        raise ValueError(f"--norm-type applies to lp_pool1d/2d/3d, not {args.op}")
    elif args.op.startswith(("avg_pool", "max_pool")):
        is_max = args.op.startswith("max_pool")
        if args.output_size is not None or (args.return_indices and not is_max):
            raise ValueError(f"--output-size{'' if is_max else ' and --return-indices'} apply to the adaptive "
                             f"ops, not {args.op}")
        misplaced = [flag for flag, value in (
            ("--dilation", args.dilation is not None and not is_max),
            ("--no-count-include-pad", args.no_count_include_pad and is_max),
            ("--divisor-override", args.divisor_override is not None and (is_max or args.op == "avg_pool1d")))
            if value]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} {'does' if len(misplaced) == 1 else 'do'} not apply to {args.op}")
        if args.kernel_size is None:
            raise ValueError(f"{args.op} needs --kernel-size")
        kwargs = dict(kernel_size=_ints(args.kernel_size, "--kernel-size"),
                      stride=None if args.stride is None else _ints(args.stride, "--stride"),
                      padding=_ints(args.padding, "--padding"), ceil_mode=args.ceil_mode)
        if is_max:
            kwargs.update(dilation=1 if args.dilation is None else _ints(args.dilation, "--dilation"),
                          return_indices=args.return_indices)
        else:
            kwargs["count_include_pad"] = not args.no_count_include_pad
            if args.op != "avg_pool1d":
                kwargs["divisor_override"] = args.divisor_override
    else:
        misplaced = [flag for flag, value in (("--kernel-size", args.kernel_size), ("--stride", args.stride),
                                              ("--padding", args.padding != "0"), ("--ceil-mode", args.ceil_mode),
                                              ("--no-count-include-pad", args.no_count_include_pad),
                                              ("--dilation", args.dilation is not None),
                                              ("--divisor-override", args.divisor_override is not None)) if value]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} apply to the strided pools only, not {args.op}")
        if args.output_size is None:
            raise ValueError(f"{args.op} needs --output-size")
        sizes = _ints(args.output_size, "--output-size", allow_none=True)
        kwargs["output_size"] = sizes[0] if len(sizes) == 1 and sizes[0] is not None else sizes
        if args.return_indices:
            kwargs["return_indices"] = True
    targets = args.targets.split(",") if args.targets else None
    model = export(args.op, args.input_shape, dtype=args.dtype, opset=args.opset, strategy=args.strategy,
                   targets=targets, inline=args.inline, **kwargs)
    # validate first: a call whose check can't even run (exit 2) leaves no file behind
    report = None if args.no_validate else validate(model)
    onnx.save(model, args.output)
    strategy = next(p.value for p in model.metadata_props if p.key == "adapool.strategy")
    print(f"wrote {args.output}: {args.op}, strategy {strategy}, opset {model.opset_import[0].version}, "
          f"{len(model.graph.node)} node{'s' if len(model.graph.node) != 1 else ''}")
    if report is None:
        return 0
    print(report)
    return 0 if report.ok else 1


def _check(args) -> int:
    from . import validate
    split = lambda text: [t.strip() for t in text.split(",") if t.strip()] if text else None  # noqa: E731
    report = validate(args.model, runtimes=split(args.runtimes), reference=args.reference, sizes=args.sizes,
                      optimize=split(args.optimize))
    print(report)
    return 0 if report.ok else 1


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _export(args) if args.command == "export" else _check(args)
    except (ValueError, TypeError, ZeroDivisionError, OSError, MemoryError, RecursionError,
            argparse.ArgumentTypeError) as e:   # ZeroDivisionError: lp_pool's p = 0, torch's error
        # every failure we can name is one line: a corrupt file, an unsupported op, a bad size
        message = " ".join(str(e).split()) or type(e).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
