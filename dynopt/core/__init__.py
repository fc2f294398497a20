"""The contract and the engine: components and their duals, the problem object, the one forward
and one backward sweep, integrators, shared types and input validation.

Nothing here imports the gradient strategies, the CasADi layer, parallel execution or the
model library: every other subpackage builds on this one.
"""
