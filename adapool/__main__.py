"""Command line: `python -m adapool demo`."""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapool", description="adapool command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the seed examples and compare with NumPy and torch")
    demo.add_argument("--repeat", type=int, default=5, help="timed calls per measurement (median)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import main as demo_main

        return demo_main(repeat=max(1, args.repeat))
    return 2


if __name__ == "__main__":
    sys.exit(main())
