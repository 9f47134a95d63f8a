"""The classic demo (docs/architecture.md, "CMA-ES"): shifted Schaffer, lambda 64, mu 25%, x0 ~ N(0, I)."""
import numpy as np

from wm_studio.core.es import CMAES, Termination, get_problem

SEEDS = range(15)


def reaches_optimum(seed: int, sigma0: float) -> bool:
    problem = get_problem("schaffer", 2)
    x0 = np.random.default_rng(seed).standard_normal(2)
    # tolfun off: the value is about 1e-6 d^4 at distance d, so tolfun = 1e-12 would stop the run at d = 0.03
    es = CMAES(x0, sigma0, popsize=64, mu=0.25, seed=seed, termination=Termination(tolfun=None,
                                                                                   max_generations=400))
    while not es.stop():
        X = es.ask()
        es.tell_maximise(X, -problem.evaluate(X))  # the demo's fitness F = -(f - f(10,10))^2
    distance = min(np.linalg.norm(es.best_x - problem.optimum), np.linalg.norm(es.mean - problem.optimum))
    return distance < 1e-3


def test_sigma0_3_finds_the_optimum_for_at_least_14_of_15_seeds():
    assert sum(reaches_optimum(seed, 3.0) for seed in SEEDS) >= 14  # measured: 15 of 15


def test_sigma0_0_3_often_stalls_in_a_ring():
    """The criterion above can fail: from sigma0 = 0.3 the search often ends in a ring of local optima.
    Measured: 9 of these 15 seeds succeed (23 of 50 seeds; pycma with the same settings: 24 of 50)."""
    assert sum(reaches_optimum(seed, 0.3) for seed in SEEDS) <= 11
