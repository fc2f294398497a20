"""The pieces behind :func:`dynopt.optimize`: argument checks, the evaluator SciPy sees, progress."""
