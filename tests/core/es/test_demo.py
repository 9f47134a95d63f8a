"""run_es: the snapshots the Evolution pane and es-animate draw."""
import math
from dataclasses import replace

import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.core.es.cmaes import CMAES
from wm_studio.core.es.demo import (EsHistory, EsSettings, function_grid, parse_mu, parse_vector, plot_box,
                                    run_es, slice_grid)
from wm_studio.core.es.problems import get_problem
from wm_studio.core.progress import drive


def test_snapshot_zero_is_the_start():
    first = next(EsSettings(x0=(1.0, 2.0), sigma0=3.0).run(5))
    assert first.generation == 0 and first.evaluations == 0 and first.done == 0 and first.total == 5
    assert first.population.shape == (0, 2) and first.values.shape == (0,)
    assert np.allclose(first.mean, [1, 2])
    assert np.allclose(first.cov2, 9 * np.eye(2))
    assert np.all(np.isnan(first.best_so_far)) and math.isinf(first.best_value)
    assert np.allclose(first.solution, [10, 10])
    assert first.popsize == 64 and first.parents == 16
    assert "gen 0" in first.summary()


def test_snapshots_show_the_distribution_each_population_was_drawn_from():
    """Replay the same engine by hand: snapshot k holds the population of generation k, its values and the mean
    m and sigma^2 C *before* that generation's update (the distribution it was drawn from)."""
    problem = get_problem("schaffer", 2)
    snapshots = list(run_es(problem, np.zeros(2), 3.0, popsize=64, mu=0.25, seed=1, generations=4))
    assert [s.generation for s in snapshots] == [0, 1, 2, 3, 4]
    es = CMAES(np.zeros(2), 3.0, popsize=64, mu=0.25, seed=1)
    for snapshot in snapshots[1:]:
        mean, cov = es.mean.copy(), es.sigma ** 2 * np.array(es.C)
        population = es.ask()
        values = problem.evaluate(population)
        es.tell(population, values)
        assert np.allclose(snapshot.population, population)
        assert np.allclose(snapshot.values, values)
        assert np.allclose(snapshot.mean, mean)
        assert np.allclose(snapshot.cov2, cov)
        assert np.allclose(snapshot.best_so_far, es.best_x)
        assert snapshot.best_value == es.best_value
        assert snapshot.evaluations == es.evaluations
        assert snapshot.generation_best == values.min() and snapshot.generation_worst == values.max()
        assert snapshot.generation_median == np.median(values)
    # the mean marker is m, not the average of the population
    last = snapshots[-1]
    assert not np.allclose(last.mean, last.population.mean(axis=0))


def test_arrays_are_read_only_copies():
    snapshot = list(EsSettings().run(1))[-1]
    for array in (snapshot.population, snapshot.mean, snapshot.cov2, snapshot.basis):
        with pytest.raises(ValueError):
            array[...] = 0


def test_same_seed_same_run_and_it_stops_by_itself():
    a = list(EsSettings(seed=3).run(None))
    b = list(EsSettings(seed=3).run(None))
    assert len(a) == len(b) and np.array_equal(a[-1].population, b[-1].population)
    assert a[-1].stop and not any(s.stop for s in a[:-1])   # until a termination criterion holds
    assert a[-1].best_value < 1e-10                          # sigma0 = 3: the Schaffer demo is solved
    assert np.allclose(a[-1].best_so_far, [10, 10], atol=1e-3)


def test_generations_bound_the_run_for_the_progress_bar():
    snapshots = list(EsSettings().run(3))
    assert len(snapshots) == 4 and snapshots[-1].done == snapshots[-1].total == 3
    assert drive(EsSettings().run(2), "es", stream=open("/dev/null", "w")).generation == 2


def test_many_dimensions_are_projected():
    settings = EsSettings(function="rosenbrock", dimension=10, popsize=None, mu=None, sigma0=0.5, x0=(0.0,))
    snapshots = list(settings.run(6))
    last = snapshots[-1]
    assert last.population.shape == (10, 2) and last.basis.shape == (10, 2) and last.origin.shape == (10,)
    assert np.allclose(last.basis.T @ last.basis, np.eye(2))
    assert np.allclose(last.solution, np.ones(10) @ last.basis)
    assert np.allclose(last.mean, last.origin @ last.basis)
    for before, after in zip(snapshots[1:], snapshots[2:]):   # the axes keep their orientation
        assert np.all(np.sum(before.basis * after.basis, axis=0) >= 0)


def test_function_grid_in_two_dimensions_is_f():
    problem = get_problem("rosenbrock", 2)
    box = ((-2.0, 2.0), (-1.0, 3.0))
    grid = function_grid(problem, np.eye(2), np.zeros(2), box, resolution=5)
    assert grid.shape == (5, 5)
    assert grid[0, 4] == problem.evaluate([2.0, -1.0])[0]     # row 0 is y_min, column 4 is x_max
    assert grid[4, 0] == problem.evaluate([-2.0, 3.0])[0]


def test_slice_passes_through_the_mean():
    settings = EsSettings(function="rosenbrock", dimension=6, popsize=None, mu=None, sigma0=0.3, x0=(0.5,))
    snapshot = list(settings.run(3))[-1]
    problem = settings.problem()
    (x_lo, x_hi), (y_lo, y_hi) = box = plot_box(problem, snapshot)
    assert x_lo < snapshot.mean[0] < x_hi and y_lo < snapshot.mean[1] < y_hi
    centred = ((snapshot.mean[0] - 1, snapshot.mean[0] + 1), (snapshot.mean[1] - 1, snapshot.mean[1] + 1))
    grid = slice_grid(problem, snapshot, centred, resolution=3)
    assert grid[1, 1] == pytest.approx(problem.evaluate(snapshot.origin)[0])
    assert plot_box(get_problem("schaffer", 2), next(EsSettings().run(1))) == ((-8.0, 18.0), (-8.0, 18.0))
    assert box[0][1] - box[0][0] == pytest.approx(box[1][1] - box[1][0])


def test_history_collects_each_generation_once():
    history = EsHistory()
    snapshots = list(EsSettings().run(3))
    for snapshot in snapshots + snapshots[-1:]:
        history.add(snapshot)
    columns = history.arrays()
    assert len(history) == 3 and list(columns["generation"]) == [1, 2, 3]
    assert list(columns["sigma"]) == [s.sigma for s in snapshots[1:]]
    assert list(columns["best_so_far"]) == [s.best_value for s in snapshots[1:]]
    assert np.allclose(history.mean_path(np.eye(2)), [s.origin for s in snapshots])


def test_parsing_the_controls():
    assert parse_mu("16") == 16 and parse_mu("0.25") == 0.25 and parse_mu(" ") is None
    for bad in ("1.5", "0", "-3", "many"):
        with pytest.raises(ConfigError):
            parse_mu(bad)
    assert parse_vector("1, 2") == (1.0, 2.0) and parse_vector("3") == (3.0,) and parse_vector("1 2;3") == (1, 2, 3)
    for bad in ("", "a, b", "nan"):
        with pytest.raises(ConfigError):
            parse_vector(bad)


def test_settings_check_x0_against_the_dimension():
    assert np.array_equal(EsSettings(function="sphere", dimension=4, x0=(2.0,)).start(), np.full(4, 2.0))
    with pytest.raises(ConfigError, match="x0 has 3 values"):
        EsSettings(function="sphere", dimension=4, x0=(1.0, 2.0, 3.0)).start()
    with pytest.raises(ConfigError):
        EsSettings(function="schaffer", dimension=3).problem()


def test_the_schaffer_demo_runs_until_it_reaches_the_optimum():
    """Value-based criteria must not end the demo while m is still visibly off (10, 10)."""
    problem = get_problem("schaffer", 2)
    last = None
    for last in run_es(problem, x0=[0.0, 0.0], sigma0=3.0, popsize=64, mu=0.25, seed=1, generations=400):
        pass
    assert last.stop, "the demo should end by a termination criterion, not the generation cap"
    assert np.linalg.norm(last.origin - 10.0) < 1e-3


def test_frames_of_two_runs_share_run_a_plane_and_a_stopped_run_keeps_its_last_generation():
    from wm_studio.core.es.demo import run_frames
    a = EsSettings(function="rosenbrock", dimension=5, popsize=10, mu=None, sigma0=0.4, seed=3)
    b = EsSettings(function="rosenbrock", dimension=5, popsize=16, mu=None, sigma0=0.4, seed=4, strategy="separable")
    frames = list(run_frames(a, b, generations=6))
    assert [f.index for f in frames] == list(range(7)) and frames[-1].total == 6
    alone = list(a.run(6))
    for frame, snapshot in zip(frames, alone):   # run A is exactly the run on its own
        np.testing.assert_array_equal(frame.a.population, snapshot.population)
        np.testing.assert_array_equal(frame.a.basis, snapshot.basis)
    # run B: its own engine, its population projected on A's plane
    engine, problem = b.engine(), b.problem()
    for frame in frames[1:]:
        population = engine.ask()
        engine.tell(population, problem.evaluate(population))
        assert frame.b.strategy == "separable" and frame.b.popsize == 16
        np.testing.assert_array_equal(frame.b.basis, frame.a.basis)
        np.testing.assert_allclose(frame.b.population, population @ frame.a.basis)
    # a run that stops first shows its last generation from then on
    quick = EsSettings(function="sphere", dimension=2, popsize=None, mu=None, sigma0=1.0, x0=(1.0,))
    slow = replace(quick, seed=5, sigma0=1e-3)
    frames = list(run_frames(quick, slow, generations=400))
    ended = next(f.index for f in frames if f.a.stop)
    assert all(f.a is frames[ended].a for f in frames[ended:]) and frames[-1].b.stop and not frames[ended].b.stop
    assert frames[-1].stop and not any(f.stop for f in frames[:-1])
    with pytest.raises(ConfigError, match="same problem"):
        next(run_frames(quick, replace(quick, dimension=3)))


def test_restart_strategies_mark_the_first_generation_of_each_new_run():
    settings = EsSettings(function="rastrigin", dimension=2, popsize=6, mu=None, sigma0=0.2, x0=(2.5,),
                          strategy="ipop")
    snapshots = list(settings.run(300))
    history = EsHistory()
    for snapshot in snapshots:
        history.add(snapshot)
    firsts = [s for s in snapshots if s.restarted]
    assert firsts and history.restarts == [(s.generation, s.popsize) for s in firsts]
    assert [s.popsize for s in firsts[:2]] == [12, 24][:len(firsts[:2])]
    for first in firsts:
        before = snapshots[first.generation - 1]
        assert first.restarts == before.restarts + 1 and first.sigma == 0.2 and np.allclose(first.origin, 2.5)
    assert history.restarts_until(firsts[0].generation - 1) == []
    with pytest.raises(ConfigError, match="fraction"):
        replace(settings, mu=3).engine()


def test_the_replay_store_keeps_recent_frames_exactly_and_a_bounded_thinned_past():
    from wm_studio.core.es.demo import EsFrame, ReplayStore
    first = next(EsSettings().run(1))
    restarted = replace(first, restarted=True)
    store = ReplayStore(capacity=64, recent=16)
    for index in range(10_000):
        store.add(EsFrame(index, restarted if index in (300, 7000) else first))
        assert len(store) <= 64 + 2
    indices = store.indices()
    assert indices[0] == 0 and indices[-16:] == list(range(10_000 - 16, 10_000))
    assert 300 in indices and 7000 in indices                  # the first generation of every restarted run
    assert indices == sorted(indices)
    for asked in (0, 1, 299, 300, 301, 5000, 9990, 12_000):
        got = store.at(asked)
        assert got.index <= asked and got.index == max(i for i in indices if i <= asked)
    assert [f.index for f in store.between(9_990, 9_995)] == list(range(9_990, 9_996))
    store.add(EsFrame(5, first))                               # an older frame is not added again
    assert store.latest.index == 9_999
    with pytest.raises(ConfigError):
        ReplayStore(capacity=10, recent=10)


def test_history_curves_up_to_a_generation_and_a_bounded_path():
    history = EsHistory()
    snapshots = list(EsSettings(function="sphere", dimension=3, popsize=None, mu=None, sigma0=1e-3,
                                x0=(1.0,)).run(40))
    for snapshot in snapshots:
        history.add(snapshot)
    assert list(history.arrays(upto=5)["generation"]) == [1, 2, 3, 4, 5]
    assert list(history.arrays()["generation"]) == list(range(1, 41))
    assert len(history.mean_path(np.eye(3)[:, :2], upto=5)) == 6     # snapshot 0 to 5
    small = EsHistory()
    small.PATH_POINTS = 8
    for snapshot in snapshots:
        small.add(snapshot)
    path = small.mean_path(np.eye(3)[:, :2])
    assert len(path) <= 8 and np.allclose(path[-1], snapshots[-1].origin[:2])
    assert np.allclose(path[0], snapshots[0].origin[:2])


def test_the_plotted_box_holds_a_compared_run_too():
    from wm_studio.core.es.demo import run_frames
    a = EsSettings(function="rosenbrock", dimension=6, popsize=None, mu=None, sigma0=0.5)
    frame = list(run_frames(a, replace(a, strategy="separable", x0=(2.0,)), generations=3))[-1]
    alone = plot_box(get_problem("rosenbrock", 6), frame.a)
    both = plot_box(get_problem("rosenbrock", 6), frame.a, others=(frame.b,))
    for box in (alone, both):
        assert box[0][1] - box[0][0] == pytest.approx(box[1][1] - box[1][0])
    inside = [[box[axis][0] < mean[axis] < box[axis][1] for axis in (0, 1)] for box, mean in
              ((alone, frame.b.mean), (both, frame.b.mean), (both, frame.a.mean))]
    assert not all(inside[0]) and all(inside[1]) and all(inside[2])   # B was off A's box, is in the joint one
