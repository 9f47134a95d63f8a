"""CMA-ES: the engine, its separable variant, restarts, termination criteria and test problems."""
