"""Command line: `adapool demo` and `adapool bench` (also `python -m adapool ...`)."""
import argparse
import sys


def _version() -> str:
    from . import __version__
    return __version__


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="adapool", description="adapool: PyTorch's pooling ops for NumPy, "
                                     "and their exact ONNX export")
    parser.add_argument("--version", action="version", version=f"adapool {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="the seed examples: adapool vs torch, exported to ONNX and run "
                                       "under every available runtime")
    demo.add_argument("--repeat", type=int, default=5, help="timed calls per measurement (median)")
    bench = sub.add_parser("bench", help="adapool vs torch vs the ONNX graph vs the read floor, with ratios")
    bench.add_argument("--quick", action="store_true", help="3 ops x 3 shapes, 5 rounds (~16 s on 2 cores, most of it torch.compile's first compile; ~5 s with --no-compile)")
    bench.add_argument("--ops", help="comma-separated subset of avg,max,avgpool,avg_bwd,max_bwd,avgpool_bwd")
    bench.add_argument("--threads", type=int, help="threads for adapool, torch and onnxruntime (default: adapool's)")
    bench.add_argument("--rounds", type=int, help="interleaved timing rounds (default 15, 5 with --quick)")
    bench.add_argument("--plot", metavar="FILE.png", help="also draw the ratios (needs matplotlib)")
    bench.add_argument("--json", metavar="FILE", help="also write the medians and the environment")
    bench.add_argument("--no-compile", action="store_true",
                       help="leave out torch.compile (its first compile takes ~20 s; each shape ~1 s more)")
    bench.add_argument("--load", action="store_true",
                       help="run with a busy process pinned to one core (a loaded machine)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo_main
        return demo_main(repeat=max(1, args.repeat))
    from ._bench import main as bench_main
    ops = [o for o in args.ops.split(",") if o] if args.ops else None
    return bench_main(ops=ops, quick=args.quick, threads=args.threads, rounds=args.rounds,
                      plot_path=args.plot, json_path=args.json, compile=not args.no_compile, load=args.load)


if __name__ == "__main__":
    sys.exit(main())
