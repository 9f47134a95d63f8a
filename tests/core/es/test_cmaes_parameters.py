"""Strategy parameters: values from the tutorial's formulas, the tutorial's weights, and pycma's view of them."""
import math
import warnings
from fractions import Fraction

import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.core.es import CMAES, SepCMAES, strategy_parameters

# n, lambda, mu, mu_eff, c_1, c_mu, c_sigma, d_sigma, c_c from Hansen's tutorial (arXiv 1604.00772);
# row 4 is the Schaffer demo, mu 25%
TABLE = [
    (2, 6, 3, 2.0286, 0.15482, 0.057859, 0.4462, 1.4462, 0.62455),
    (10, 10, 5, 3.1673, 0.015284, 0.020154, 0.28443, 1.2844, 0.29499),
    (867, 64, 32, 17.622, 2.6527e-06, 4.1522e-05, 0.022056, 1.0221, 0.0046155),
    (2, 64, 16, 9.1788, 0.099657, 0.57888, 0.69095, 2.9932, 0.56588),
]


@pytest.mark.parametrize("row", TABLE, ids=[f"n{r[0]}-lambda{r[1]}-mu{r[2]}" for r in TABLE])
def test_constants_of_the_design_table(row):
    n, lam, mu, mu_eff, c1, cmu, c_sigma, d_sigma, cc = row
    es = CMAES(np.zeros(n), 1.0, popsize=None if lam == 4 + int(3 * math.log(n)) else lam,
               mu=0.25 if mu != lam // 2 else None, seed=0)
    assert (es.popsize, es.mu) == (lam, mu)
    for name, printed in [("mu_eff", mu_eff), ("c1", c1), ("cmu", cmu), ("c_sigma", c_sigma),
                          ("d_sigma", d_sigma), ("cc", cc)]:
        assert getattr(es, name) == pytest.approx(printed, rel=1e-4), name


def test_schaffer_mu_fraction_is_a_quarter_of_lambda():
    assert CMAES(np.zeros(2), 3.0, popsize=64, mu=0.25, seed=0).mu == 16
    assert CMAES(np.zeros(2), 3.0, popsize=64, mu=16, seed=0).mu_eff == pytest.approx(9.1788, rel=1e-4)


def test_weights_follow_the_tutorial():
    """Positive weights ln((lambda+1)/2) - ln i summing to 1; negative ones scaled by the smallest alpha."""
    n, lam = 10, 10
    p = strategy_parameters(n)
    raw = np.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))
    pos, neg = raw[raw > 0], raw[raw < 0]
    np.testing.assert_allclose(p.weights[:5], pos / pos.sum(), rtol=1e-14)
    mu_eff_minus = neg.sum() ** 2 / (neg ** 2).sum()
    alpha = min(1 + p.c1 / p.cmu, 1 + 2 * mu_eff_minus / (p.mu_eff + 2), (1 - p.c1 - p.cmu) / (n * p.cmu))
    np.testing.assert_allclose(p.weights[5:], alpha * neg / np.abs(neg).sum(), rtol=1e-14)
    assert p.weights[:5].sum() == pytest.approx(1.0)
    assert p.weights[5:].sum() == pytest.approx(-alpha)
    assert np.all(np.diff(p.weights) < 0)
    assert p.eigen_gap == max(1, math.floor(1 / (10 * n * (p.c1 + p.cmu))))


def test_eigen_gap_at_the_paper_size():
    # 1 / (10 * 867 * (2.6527e-06 + 4.1522e-05)) = 2.61; at n = 10,000: 1 / (1e5 * 3.3344e-07) = 29.99
    assert strategy_parameters(867, 64).eigen_gap == 2
    assert strategy_parameters(10_000, 64).eigen_gap == 29


def test_separable_learning_rates():
    full, sep = strategy_parameters(100), SepCMAES(np.zeros(100), 1.0, seed=0)
    assert sep.c1 == pytest.approx(full.c1 * 102 / 3)
    assert sep.cmu == pytest.approx(min(1 - sep.c1, full.cmu * 102 / 3))
    assert sep.c_sigma == full.c_sigma and sep.cc == full.cc


@pytest.mark.parametrize("mu", [0, 11, -1, 1.5, 0.0, "3", True])
def test_bad_mu_is_a_config_error(mu):
    with pytest.raises(ConfigError):
        CMAES(np.zeros(3), 1.0, popsize=10, mu=mu)


@pytest.mark.parametrize("x0, sigma0", [([], 1.0), ([np.nan, 0], 1.0), ([0, 0], 0.0), ([0, 0], -1),
                                        ([0, 0], float("inf"))])
def test_bad_start_is_a_config_error(x0, sigma0):
    with pytest.raises(ConfigError):
        CMAES(x0, sigma0)


@pytest.mark.parametrize("popsize", [2.7, 10.5, "10", True, float("nan"), 1, 0, -4])
def test_a_population_that_is_not_a_whole_number_of_at_least_2_is_refused(popsize):
    with pytest.raises(ConfigError, match="population size"):
        CMAES(np.zeros(3), 1.0, popsize=popsize)


@pytest.mark.parametrize("popsize", [12, np.int64(12), 12.0, np.float32(12)])
def test_a_population_given_as_any_whole_number_is_taken(popsize):
    assert CMAES(np.zeros(3), 1.0, popsize=popsize).popsize == 12


@pytest.mark.parametrize("sigma0", [2, 2.0, np.float32(2), np.int64(2), np.array(2.0), np.array(2), Fraction(2)])
def test_sigma0_is_any_real_number(sigma0):
    es = CMAES(np.zeros(3), sigma0, seed=1)
    assert es.sigma0 == es.sigma == 2.0 and type(es.sigma) is float
    np.testing.assert_array_equal(es.ask(), CMAES(np.zeros(3), 2.0, seed=1).ask())


@pytest.mark.parametrize("sigma0", [np.array([2.0]), np.array(True), True, "2", 2 + 0j, None, np.array(np.nan)])
def test_sigma0_that_is_not_one_real_number_is_refused(sigma0):
    with pytest.raises(ConfigError, match="sigma0"):
        CMAES(np.zeros(3), sigma0)


def pycma():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pycma warns that matplotlib is missing
        import cma
    return cma


@pytest.mark.parametrize("n, popsize, mu", [(10, None, None), (867, 64, None), (2, 64, 16), (7, None, None)])
def test_parameters_agree_with_pycma(n, popsize, mu):
    """pycma 4 follows the same tutorial for mu_eff, c_1, c_c and the weights' shape. It has since changed c_mu
    (an extra 1/4 in the numerator) and c_sigma; our c_mu is the tutorial's (the TABLE above), so pycma's
    negative weights are finalised here with our c_1 and c_mu: its three limits must then give our weights."""
    cma = pycma()
    opts = {"verbose": -9, "seed": 1}
    if popsize:
        opts["popsize"] = popsize
    if mu:
        opts["CMA_mu"] = mu
    peer = cma.CMAEvolutionStrategy(np.zeros(n), 1.0, opts)
    ours = strategy_parameters(n, popsize, mu)
    assert (peer.sp.popsize, peer.sp.weights.mu) == (ours.popsize, ours.mu)
    assert peer.sp.weights.mueff == pytest.approx(ours.mu_eff, rel=1e-12)
    assert peer.sp.c1 == pytest.approx(ours.c1, rel=1e-12)
    assert peer.sp.cc == pytest.approx(ours.cc, rel=1e-12)
    weights = cma.recombination_weights.RecombinationWeights(2 * mu) if mu else \
        cma.recombination_weights.RecombinationWeights(ours.popsize)
    while len(weights) < ours.popsize:
        weights.insert(weights.mu, 0.0)
    weights.finalize_negative_weights(n, ours.c1, ours.cmu)
    np.testing.assert_allclose(np.array(weights), ours.weights, rtol=1e-12, atol=1e-15)


def test_sphere_evaluations_in_pycmas_range():
    """Same problem, same start points: the median evaluations to 1e-8 on 10-D sphere agree within 15%."""
    from wm_studio.core.es import Termination, get_problem
    cma, sphere = pycma(), get_problem("sphere", 10)
    ours, theirs = [], []
    for seed in range(5):
        x0 = np.random.default_rng(seed).uniform(-4, 4, 10)
        es = CMAES(x0, 2.0, seed=seed, termination=Termination(target=1e-8))
        while not es.stop():
            X = es.ask()
            es.tell(X, sphere.evaluate(X))
        ours.append(es.evaluations)
        peer = cma.CMAEvolutionStrategy(x0, 2.0, {"seed": seed + 1, "ftarget": 1e-8, "verbose": -9})
        while not peer.stop():
            X = peer.ask()
            peer.tell(X, list(sphere.evaluate(np.array(X))))
        theirs.append(peer.countevals)
        assert es.best_value <= 1e-8 and peer.best.f <= 1e-8
    assert abs(np.median(ours) / np.median(theirs) - 1) < 0.15, (ours, theirs)
