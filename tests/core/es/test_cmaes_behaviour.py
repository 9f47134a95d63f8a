"""The engines on test problems: convergence, a healthy C, NaN handling, termination, restarts, backend."""
import math
import warnings

import numpy as np
import pytest

from wm_studio.core.device import gpu_probe
from wm_studio.core.errors import ConfigError
from wm_studio.core.es import BIPOPCMAES, CMAES, IPOPCMAES, EvaluationError, SepCMAES, Termination, get_problem


def optimise(es, problem, max_generations=100_000):
    while not es.stop() and es.generation < max_generations:
        X = es.ask()
        es.tell(X, problem.evaluate(X))
    return es


def start(seed, n):
    return np.random.default_rng(1000 + seed).uniform(-4, 4, n)


@pytest.mark.parametrize("name", ["sphere", "rosenbrock"])
def test_solves_10d_to_1e_8(name):
    problem = get_problem(name, 10)
    results = [optimise(CMAES(start(seed, 10), 2.0, seed=seed, termination=Termination(target=1e-8)), problem)
               for seed in range(4)]
    # Rosenbrock has a local optimum near x_1 = -1 that catches CMA-ES now and then (10-20% of runs)
    assert sum(es.best_value <= 1e-8 for es in results) >= 3
    solved = [es for es in results if es.best_value <= 1e-8]
    assert all(np.linalg.norm(es.best_x - problem.optimum) < 1e-3 for es in solved)
    assert all(set(es.stop()) == {"target"} for es in solved)
    if name == "sphere":  # the known scale: about 1,500 evaluations for 10-D sphere from sigma0 = 2
        assert all(1000 < es.evaluations < 2500 for es in results)


@pytest.mark.parametrize("name, n", [("ellipsoid", 8), ("rosenbrock", 8)])
def test_C_stays_symmetric_positive_definite(name, n):
    problem = get_problem(name, n)
    es = CMAES(start(0, n), 2.0, seed=1, termination=Termination(target=1e-12))
    smallest = []
    while not es.stop() and es.generation < 2000:
        X = es.ask()
        es.tell(X, problem.evaluate(X))
        C = es.C
        np.testing.assert_allclose(C, C.T, rtol=1e-12, atol=1e-15 * np.abs(C).max())
        eigenvalues = np.linalg.eigvalsh((C + C.T) / 2)
        smallest.append(eigenvalues[0] / eigenvalues[-1])
        assert eigenvalues[0] > 0 and np.all(np.isfinite(C))
    assert es.stop() == {"target": 1e-12}
    if name == "ellipsoid":  # C has learnt the 1e6 conditioning (axis ratio about 1e3)
        assert es.axis_ratio > 300 and min(smallest) < 1e-5


def test_sep_cmaes_solves_20d_ellipsoid_and_sphere():
    for name in ("ellipsoid", "sphere"):
        problem = get_problem(name, 20)
        es = optimise(SepCMAES(start(0, 20), 2.0, seed=2, termination=Termination(target=1e-8)), problem)
        assert es.stop() == {"target": 1e-8}
        full = optimise(CMAES(start(0, 20), 2.0, seed=2, termination=Termination(target=1e-8)), problem)
        if name == "ellipsoid":  # axis-parallel: the diagonal model learns it in fewer evaluations
            assert es.evaluations < full.evaluations
    assert es.diagC.shape == (20,) and es.C.shape == (20, 20)
    np.testing.assert_array_equal(es.C, np.diag(es.diagC))


def test_ipop_solves_rastrigin_more_often_than_one_run():
    problem = get_problem("rastrigin", 5)
    single = ipop = 0
    for seed in range(6):
        termination = Termination(target=1e-8, max_evaluations=60_000)
        single += optimise(CMAES(start(seed, 5), 2.0, seed=seed, termination=termination), problem).best_value <= 1e-8
        es = optimise(IPOPCMAES(start(seed, 5), 2.0, seed=seed, termination=termination), problem)
        ipop += es.best_value <= 1e-8
        assert es.popsize == 8 * 2 ** es.restarts and len(es.history) == es.restarts
        assert es.evaluations == sum(h["evaluations"] for h in es.history) + es.es.evaluations
    assert ipop >= 5 and ipop > single + 2


def test_ipop_restarts_with_a_doubled_population_and_ends_on_budget():
    problem = get_problem("rastrigin", 3)
    es = IPOPCMAES(np.full(3, 3.0), 0.1, seed=0, max_restarts=3,
                   termination=Termination(tolfun=1e-3, max_evaluations=5_000))
    optimise(es, problem)
    sizes = [h["popsize"] for h in es.history] + [es.popsize]
    assert sizes == [7 * 2 ** k for k in range(len(sizes))] and len(sizes) > 1
    assert (es.mu, es.backend, es.n) == (es.popsize // 2, "numpy", 3)  # the current inner run's values
    assert all(h["stop"] and not set(h["stop"]) & {"target", "max_evaluations"} for h in es.history)
    stop = es.stop()
    assert "max_evaluations" in stop or "max_restarts" in stop
    assert es.best_value == min([h["best_value"] for h in es.history] + [es.es.best_value])


def test_bipop_interleaves_large_and_small_regimes_on_their_budgets():
    problem = get_problem("rastrigin", 5)
    es = optimise(BIPOPCMAES(start(0, 5), 2.0, seed=3, max_restarts=4,
                             termination=Termination(max_evaluations=150_000)), problem)
    runs = es.history + [{"popsize": es.popsize, "regime": es.regime, "sigma0": es.run_sigma0,
                          "evaluations": es.es.evaluations, "stop": {}}]
    assert runs[0]["popsize"] == 8 and runs[0]["regime"] == "small" and runs[0]["sigma0"] == 2.0
    assert runs[1]["regime"] == "large" and runs[1]["popsize"] == 16          # the first restart is large
    spent = {"small": 0, "large": 0}
    large = 0
    for before, run in zip(runs, runs[1:]):
        spent[before["regime"]] += before["evaluations"]
        # each restart goes to the regime that has spent fewer evaluations
        assert run["regime"] == ("small" if spent["small"] < spent["large"] else "large")
        if run["regime"] == "large":
            large += 1
            assert run["popsize"] == 8 * 2 ** large and run["sigma0"] == 2.0
        else:
            assert 8 <= run["popsize"] <= 8 * 2 ** large and 0.02 <= run["sigma0"] <= 2.0
            assert run is runs[-1] or run["evaluations"] <= max(run["popsize"], spent["large"] // 2) + run["popsize"]
    assert {r["regime"] for r in runs} == {"small", "large"} and large == es.large_runs <= 4
    small_sigmas = [r["sigma0"] for r in runs if r["regime"] == "small"][1:]
    assert small_sigmas and all(s < 2.0 for s in small_sigmas)
    assert es.evaluations == sum(r["evaluations"] for r in runs)
    events = es.restart_events()
    assert [e["popsize"] for e in events] == [r["popsize"] for r in runs[1:]]
    assert [e["generation"] for e in events] == list(np.cumsum([h["generations"] for h in es.history]))


def test_a_run_converging_above_the_target_restarts_before_refining_a_local_optimum():
    problem = get_problem("rastrigin", 5)
    termination = Termination(target=1e-8, max_evaluations=200_000)
    cut = optimise(IPOPCMAES(start(1, 5), 2.0, seed=1, termination=termination), problem)
    plain = optimise(IPOPCMAES(start(1, 5), 2.0, seed=1, termination=termination, above_target=None), problem)
    first_cut, first_plain = cut.history[0], plain.history[0]
    assert first_cut["stop"] == {"above_target": 1e-3} and "tolfun" in first_plain["stop"]
    # the same run up to the cut: stopped earlier, at a value already within 1e-3 of the local optimum's
    assert first_cut["evaluations"] < 0.75 * first_plain["evaluations"]
    assert abs(first_cut["best_value"] - first_plain["best_value"]) < 1e-3 * first_plain["best_value"]
    assert cut.best_value <= 1e-8 and cut.evaluations < plain.evaluations
    # a run that approaches the target is never cut: on a sphere nothing changes
    sphere = get_problem("sphere", 8)
    runs = [optimise(IPOPCMAES(start(2, 8), 2.0, seed=2, termination=termination, above_target=ratio), sphere)
            for ratio in (1e-3, None)]
    assert runs[0].restarts == runs[1].restarts == 0 and runs[0].evaluations == runs[1].evaluations
    for bad in (0, 1, -0.1, "0.001"):
        with pytest.raises(ConfigError, match="above_target"):
            IPOPCMAES(np.zeros(2), 1.0, above_target=bad)


def test_bipop_solves_rastrigin_more_often_than_one_run():
    problem = get_problem("rastrigin", 5)
    single = bipop = 0
    for seed in range(6):
        termination = Termination(target=1e-8, max_evaluations=80_000)
        single += optimise(CMAES(start(seed, 5), 2.0, seed=seed, termination=termination), problem).best_value <= 1e-8
        bipop += optimise(BIPOPCMAES(start(seed, 5), 2.0, seed=seed, termination=termination),
                          problem).best_value <= 1e-8
    assert bipop >= 5 and bipop > single + 2


def test_nan_and_plus_inf_rank_last_and_are_counted_minus_inf_ranks_first():
    problem = get_problem("sphere", 4)
    es, twin = CMAES(np.ones(4), 1.0, seed=3), CMAES(np.ones(4), 1.0, seed=3)
    X = es.ask()
    assert np.array_equal(X, twin.ask())
    values = problem.evaluate(X)
    worst = int(np.argmax(values))
    bad = sorted({(worst + 2) % es.popsize, (worst + 5) % es.popsize, (worst + 7) % es.popsize} - {worst})
    values[bad] = [np.nan, np.inf, np.nan][:len(bad)]
    values[worst] = -np.inf  # a minimiser's best possible value: pycma and cmaes rank it first
    ranked = values.copy()  # the same order in finite numbers
    ranked[bad] = np.nanmax(values[np.isfinite(values)]) + 1 + np.arange(len(bad))
    ranked[worst] = np.nanmin(values[np.isfinite(values)]) - 1
    es.tell(X, values)
    twin.tell(X, ranked)
    assert es.last_nan_count == es.nan_count == len(bad)
    for name in ("mean", "C", "ps", "pc", "sigma"):
        np.testing.assert_array_equal(getattr(es, name), getattr(twin, name))
    assert es.best_value == -np.inf and np.array_equal(es.best_x, X[worst])
    assert all(np.all(np.isfinite(getattr(es, k))) for k in ("mean", "C"))
    es.tell(es.ask(), problem.evaluate(es._pending[0]))
    assert es.last_nan_count == 0 and es.nan_count == len(bad) and es.best_value == -np.inf


def test_a_run_told_only_minus_inf_stops_on_flat_values_without_warnings(tmp_path):
    es = CMAES(np.zeros(3), 1.0, seed=0, termination=Termination(target=-1e300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # -inf - -inf would be a RuntimeWarning
        es.tell(es.ask(), np.full(es.popsize, -np.inf))
        assert es.stop() == {"target": -1e300}
        loaded = CMAES.load(es.save(tmp_path / "minus_inf.npz"))
        assert loaded.best_value == -np.inf
        plain = CMAES(np.zeros(3), 1.0, seed=0)
        while not plain.stop():
            plain.tell(plain.ask(), np.full(plain.popsize, -np.inf))
    assert "tolfun" in plain.stop() and plain.generation < 100


def test_all_nan_generation_raises_and_keeps_the_state():
    es = CMAES(np.ones(3), 1.0, seed=0)
    X = es.ask()
    mean, C, sigma = es.mean.copy(), es.C.copy(), es.sigma
    with pytest.raises(EvaluationError, match="NaN or \\+inf"):
        es.tell(X, np.full(es.popsize, np.nan))
    np.testing.assert_array_equal(es.mean, mean)
    np.testing.assert_array_equal(es.C, C)
    assert es.sigma == sigma and es.generation == 0
    assert es.evaluations == es.popsize and es.nan_count == es.popsize


def test_tell_maximise_is_tell_of_the_negated_rewards():
    es, twin = SepCMAES(np.zeros(3), 1.0, seed=4), SepCMAES(np.zeros(3), 1.0, seed=4)
    X = es.ask()
    twin.ask()
    rewards = -get_problem("sphere", 3).evaluate(X)
    es.tell_maximise(X, rewards)
    twin.tell(X, -rewards)
    np.testing.assert_array_equal(es.mean, twin.mean)
    assert es.best_value == -rewards.max()


def test_tell_rejects_wrong_shapes():
    es = CMAES(np.zeros(3), 1.0, seed=0)
    X = es.ask()
    with pytest.raises(ConfigError):
        es.tell(X[:-1], np.zeros(es.popsize - 1))
    with pytest.raises(ConfigError):
        es.tell(X, np.zeros(es.popsize + 1))
    X[0, 0] = np.nan
    with pytest.raises(ConfigError):
        es.tell(X, np.zeros(es.popsize))


def run_until_stop(es, function, cap=5000):
    while not es.stop() and es.generation < cap:
        X = es.ask()
        es.tell(X, function(X))
    return es.stop()


@pytest.mark.parametrize("termination, function, expected", [
    (Termination(target=1e-3), get_problem("sphere", 3).evaluate, {"target"}),
    (Termination(max_evaluations=70), get_problem("sphere", 3).evaluate, {"max_evaluations"}),
    (Termination(max_generations=3), get_problem("sphere", 3).evaluate, {"max_generations"}),
    (Termination(tolfun=1e-9), get_problem("sphere", 3).evaluate, {"tolfun"}),
    (Termination(tolfun=None, tolx=1e-6), get_problem("sphere", 3).evaluate, {"tolx"}),
    (Termination(max_condition=1e4), get_problem("ellipsoid", 3).evaluate, {"max_condition"}),
    (Termination(), lambda X: X[:, 0], {"tolxup"}),                     # unbounded: sigma grows for ever
    (Termination(tolfun=None), lambda X: np.zeros(len(X)), {"tolfunhist"}),  # flat: nothing to rank
])
def test_each_termination_criterion_triggers(termination, function, expected):
    es = CMAES(np.ones(3), 0.5, seed=0, termination=termination)
    assert es.stop() == {}
    met = run_until_stop(es, function)
    assert set(met) == expected, met
    assert es.generation < 5000


def test_tolfun_needs_its_history_window():
    es = CMAES(np.ones(3), 0.5, seed=0, termination=Termination(tolfun=1e300))
    run_until_stop(es, get_problem("sphere", 3).evaluate)
    assert es.generation == 10 + math.ceil(30 * 3 / es.popsize)


def test_no_effect_criteria():
    es = CMAES(np.full(3, 1e10), 1e-9, seed=0, termination=Termination(tolx=None))
    met = run_until_stop(es, get_problem("sphere", 3).evaluate)
    assert {"noeffectaxis", "noeffectcoord"} <= set(met) and es.generation == 1


def test_stagnation_on_pure_noise():
    noise = np.random.default_rng(0)
    es = CMAES(np.zeros(2), 1.0, seed=0, termination=Termination(tolxup=None, tolfunhist=None))
    met = run_until_stop(es, lambda X: noise.standard_normal(len(X)))
    assert set(met) == {"stagnation"} and es.generation >= 120 + 30 * 2 / es.popsize


def test_bad_termination_values():
    with pytest.raises(ConfigError):
        Termination(tolfun=float("nan"))
    with pytest.raises(ConfigError):
        Termination(max_evaluations=-1)
    with pytest.raises(ConfigError):
        CMAES(np.zeros(2), 1.0, termination={"tolfun": 1})


@pytest.mark.skipif(gpu_probe()[0] > 0, reason="a GPU is present: the fallback does not happen here")
def test_cupy_backend_falls_back_to_numpy_with_a_notice():
    es = CMAES(np.ones(5), 1.0, seed=7, backend="cupy")
    twin = CMAES(np.ones(5), 1.0, seed=7)
    assert es.backend == "numpy" and "cupy" in es.notice and "CPU" in es.notice
    assert twin.notice is None
    problem = get_problem("ellipsoid", 5)
    for _ in range(5):
        X = es.ask()
        assert type(X) is np.ndarray and np.array_equal(X, twin.ask())
        es.tell(X, problem.evaluate(X))
        twin.tell(X, problem.evaluate(X))
    np.testing.assert_array_equal(es.C, twin.C)


@pytest.mark.gpu
@pytest.mark.skipif(gpu_probe()[0] == 0, reason="needs CuPy and a GPU")
@pytest.mark.parametrize("engine", [CMAES, SepCMAES])
def test_cupy_backend_follows_numpy(engine, tmp_path):
    problem = get_problem("rosenbrock", 12)
    gpu, cpu = engine(np.zeros(12), 0.5, seed=7, backend="cupy"), engine(np.zeros(12), 0.5, seed=7)
    assert gpu.backend == "cupy" and gpu.notice is None
    for _ in range(30):
        X, Xc = gpu.ask(), cpu.ask()
        assert type(X) is np.ndarray
        np.testing.assert_allclose(X, Xc, rtol=1e-6, atol=1e-9)
        gpu.tell(X, problem.evaluate(X))
        cpu.tell(X, problem.evaluate(X))
    for name in ("mean", "C", "B", "D", "ps", "pc"):
        assert type(getattr(gpu, name)) is np.ndarray
    np.testing.assert_allclose(gpu.C, cpu.C, rtol=1e-6, atol=1e-12)
    assert gpu.sigma == pytest.approx(cpu.sigma, rel=1e-6)
    resumed = engine.load(gpu.save(tmp_path / "gpu.npz"))
    assert resumed.backend == "cupy"
    np.testing.assert_array_equal(resumed.ask(), gpu.ask())


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="backend"):
        CMAES(np.zeros(2), 1.0, backend="torch")
