"""One generator per training stage (V, M, C) and the rollout evaluators."""
