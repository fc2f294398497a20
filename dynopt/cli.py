"""Command line: ``dynopt demo pendulum``, ``dynopt diagnose``, ``dynopt cache info|clear`` (also ``python -m dynopt``).

Every subcommand takes ``--help``; ``dynopt --version`` prints the version.
"""

from __future__ import annotations

import argparse
import sys


def _version() -> str:
    from . import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dynopt", description="Optimize dynamic systems with exact BPTT gradients.")
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{demo,diagnose,cache}")
    demo = sub.add_parser("demo", help="run a worked example", description="Run a worked example and save its results.")
    demo.add_argument("name", choices=["pendulum"], help="which demo")
    demo.add_argument("--out", default="dynopt-results", help="directory for results (default: %(default)s)")
    demo.add_argument("--batch", type=int, default=16, help="number of initial states (default: %(default)s)")
    demo.add_argument("--horizon", type=int, default=100, help="steps of 0.05 s (default: %(default)s)")
    demo.add_argument("--maxiter", type=int, default=250, help="BFGS iterations (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=1, help="seed of the initial states")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--no-plot", action="store_true", help="no PNG")
    # diagnose has its own parser (main_diagnose); main() hands it the
    # arguments before this parser sees them, so `dynopt diagnose --help` prints its options.
    sub.add_parser("diagnose", add_help=False, help="gradient-flow diagnostics of a built-in problem")
    cache = sub.add_parser("cache", help="show or remove compiled code cached on disk",
                           description="The compiled-code cache ($DYNOPT_CACHE_DIR, default ~/.cache/dynopt).")
    csub = cache.add_subparsers(dest="action", required=True, metavar="{info,clear}")
    for name, text in (("info", "path, size, entries and the ownership/permission/digest checks"),
                       ("clear", "remove the compiled libraries and their records")):
        p = csub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("--dir", default=None, metavar="PATH",
                       help="cache directory (default: $DYNOPT_CACHE_DIR, else ~/.cache/dynopt)")
    return ap


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"  # pragma: no cover


def _cache(args, echo=print) -> int:
    from .casadi.codegen import cache_dir, cache_info, clear_cache

    if args.action == "clear":
        n = clear_cache(args.dir)
        echo(f"removed {n} file{'s' if n != 1 else ''} from {cache_dir(args.dir)}")
        return 0
    info = cache_info(args.dir)
    echo(f"path:    {info.path}")
    if not info.exists:
        echo("(does not exist yet: created with mode 0700 by the first compiled build)")
        return 0
    echo(f"size:    {_size(info.size)}")
    echo(f"entries: {info.entries} ({info.verified} with a matching SHA-256)")
    if info.ok:
        echo("checks:  passed (owned by you, not writable by group or others, digests match)")
        return 0
    echo(f"checks:  {len(info.problems)} failed")
    for p in info.problems:
        echo(f"  - {p}")
    return 1


def main_diagnose(argv=None, echo=print) -> int:
    """``dynopt diagnose PROBLEM [--horizon T] [--batch B] [--max-lag L] [--plot FILE]``; returns 0."""
    ap = argparse.ArgumentParser(prog="dynopt diagnose",
                                 description="Gradient-flow diagnostics (vanishing/exploding) of a built-in problem.")
    ap.add_argument("problem", choices=["linear-0.9", "linear-1.1", "pendulum"], help="which built-in problem")
    ap.add_argument("--horizon", type=int, default=200, help="steps T (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=4, help="scenarios B (default: %(default)s)")
    ap.add_argument("--max-lag", type=int, default=None, help="longest lag tried (default: min(T, 1024))")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial states")
    ap.add_argument("--plot", default=None, metavar="FILE", help="save a PNG of the diagnostics")
    args = ap.parse_args(argv)
    for name in ("horizon", "batch"):
        if getattr(args, name) < 1:
            ap.error(f"--{name}: expected an integer >= 1, got {getattr(args, name)}")
    if args.max_lag is not None and args.max_lag < 1:
        ap.error(f"--max-lag: expected an integer >= 1, got {args.max_lag}")
    from dynopt.models.demos import diagnose_problem  # the CLI may use the model library

    prob = diagnose_problem(args.problem, args.horizon, args.batch, args.seed)
    from .analysis.diagnostics import diagnose

    report = diagnose(prob, max_lag=args.max_lag)
    echo(report.summary())
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            echo("no plot: matplotlib is not installed (pip install 'dynopt[plot]')")
        else:
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            plt.close(report.plot(args.plot))
            echo(f"saved {args.plot}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``dynopt`` command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = _parser()
    if argv and argv[0] == "diagnose":
        return main_diagnose(argv[1:])
    args = ap.parse_args(argv)
    if args.command == "cache":
        return _cache(args)
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
