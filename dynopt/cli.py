"""Command line: ``dynopt demo pendulum`` (also ``python -m dynopt``)."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    """Entry point of the ``dynopt`` command; returns the exit status."""
    ap = argparse.ArgumentParser(prog="dynopt", description="Optimize dynamic systems with exact BPTT gradients.")
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run a worked example")
    demo.add_argument("name", choices=["pendulum"], help="which demo")
    demo.add_argument("--out", default="dynopt-results", help="directory for results (default: %(default)s)")
    demo.add_argument("--batch", type=int, default=16, help="number of initial states (default: %(default)s)")
    demo.add_argument("--horizon", type=int, default=100, help="steps of 0.05 s (default: %(default)s)")
    demo.add_argument("--maxiter", type=int, default=250, help="BFGS iterations (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the initial states")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-plot", action="store_true", help="no PNG")
    diag = sub.add_parser("diagnose", add_help=False, help="gradient-flow diagnostics of a built-in problem")
    diag.add_argument("rest", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.command == "diagnose":
        from .analysis.diagnostics import main_diagnose

        return main_diagnose(args.rest)
    if args.command == "demo":
        from dynopt.models.demos import run_pendulum_demo  # the CLI alone may use the model library

        for name in ("batch", "horizon", "maxiter"):
            if getattr(args, name) < 1:
                ap.error(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
        run_pendulum_demo(args.out, batch=args.batch, horizon=args.horizon, maxiter=args.maxiter,
                          progress=not args.no_progress, plot=not args.no_plot, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
