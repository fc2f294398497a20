"""Control engineering on top of the engine: LQR and Riccati tools, constraints, shooting,
controllers' metrics and receding-horizon (MPC) loops.  Built on dynopt's public API; never
imports the model library."""
