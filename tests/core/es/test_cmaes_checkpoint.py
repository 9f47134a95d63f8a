"""save/load: a resumed run is the run that never stopped, bit for bit; bad files give one CheckpointError."""
import numpy as np
import pytest

from wm_studio.core import files
from wm_studio.core.errors import CheckpointError
from wm_studio.core.es import BIPOPCMAES, CMAES, IPOPCMAES, SepCMAES, Termination, get_problem

STATE = ("mean", "C", "B", "D", "ps", "pc", "best_x")


def generations(es, problem, count, record):
    for _ in range(count):
        X = es.ask()
        record.append(X)
        es.tell(X, problem.evaluate(X))
    return es


@pytest.mark.parametrize("engine, n", [(CMAES, 8), (CMAES, 60), (SepCMAES, 30)])
def test_resume_equals_the_uninterrupted_run(engine, n, tmp_path):
    """5 generations, save, load, 5 more == 10 generations straight (n = 60 crosses eigendecompositions)."""
    problem = get_problem("rosenbrock", n)
    straight, straight_X = engine(np.zeros(n), 0.3, seed=11), []
    generations(straight, problem, 10, straight_X)

    first, resumed_X = engine(np.zeros(n), 0.3, seed=11), []
    generations(first, problem, 5, resumed_X)
    path = first.save(tmp_path / "es.npz")
    del first
    resumed = engine.load(path, n=n)
    generations(resumed, problem, 5, resumed_X)

    for a, b in zip(straight_X, resumed_X):
        np.testing.assert_array_equal(a, b)
    for name in STATE + (("diagC",) if engine is SepCMAES else ()):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(straight, name), err_msg=name)
    for name in ("sigma", "generation", "evaluations", "best_value", "nan_count"):
        assert getattr(resumed, name) == getattr(straight, name), name
    assert resumed.stop() == straight.stop()


def test_save_between_ask_and_tell_resumes_the_pending_generation(tmp_path):
    problem = get_problem("ellipsoid", 6)
    straight, loaded = CMAES(np.ones(6), 1.0, seed=2), None
    generations(straight, problem, 3, [])
    X = straight.ask()
    loaded = CMAES.load(straight.save(tmp_path / "mid.npz"))
    straight.tell(X, problem.evaluate(X))
    loaded.tell(X, problem.evaluate(X))
    for name in STATE:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(straight, name))
    np.testing.assert_array_equal(loaded.ask(), straight.ask())
    straight.ask()
    path = straight.save(tmp_path / "mid.npz")
    tamper(path, arrays_change={"pending_z": np.zeros((3, 6))})
    with pytest.raises(CheckpointError, match="pending_z is"):
        CMAES.load(path)


def test_checkpoint_keeps_settings_and_termination(tmp_path):
    termination = Termination(tolfun=1e-9, target=-3.0, max_generations=77, stagnation=False)
    es = CMAES(np.zeros(2), 3.0, popsize=64, mu=0.25, seed=1, termination=termination)
    loaded = CMAES.load(es.save(tmp_path / "a.npz"))
    assert (loaded.popsize, loaded.mu, loaded.sigma, loaded.termination) == (64, 16, 3.0, termination)
    np.testing.assert_array_equal(loaded.weights, es.weights)
    _, meta = files.load_npz(tmp_path / "a.npz")
    assert isinstance(meta["rng"]["state"]["state"], int)  # the generator travels as JSON, not pickle


@pytest.mark.parametrize("strategy", [IPOPCMAES, BIPOPCMAES])
def test_restart_strategies_resume_equal_the_uninterrupted_run(strategy, tmp_path):
    problem = get_problem("rastrigin", 3)
    termination = Termination(tolfun=1e-3, max_evaluations=6000)
    straight, straight_X = strategy(np.full(3, 3.0), 0.2, seed=5, termination=termination), []
    generations(straight, problem, 160, straight_X)
    assert straight.restarts >= 3  # the checkpoint below is taken after restarts (BIPOP: of both regimes)

    first, resumed_X = strategy(np.full(3, 3.0), 0.2, seed=5, termination=termination), []
    generations(first, problem, 80, resumed_X)
    assert first.restarts >= 2
    resumed = strategy.load(first.save(tmp_path / "restarts.npz"))
    generations(resumed, problem, 80, resumed_X)
    for a, b in zip(straight_X, resumed_X):
        np.testing.assert_array_equal(a, b)
    assert (resumed.restarts, resumed.evaluations, resumed.best_value, resumed.history, resumed.regime,
            resumed.run_sigma0) == (straight.restarts, straight.evaluations, straight.best_value, straight.history,
                                    straight.regime, straight.run_sigma0)
    if strategy is BIPOPCMAES:
        assert {h["regime"] for h in straight.history} == {"small", "large"}
        assert (resumed.budgets, resumed.large_runs) == (straight.budgets, straight.large_runs)


def test_an_ipop_checkpoint_from_before_bipop_still_loads(tmp_path):
    problem = get_problem("rastrigin", 3)
    es = generations(IPOPCMAES(np.full(3, 3.0), 0.2, seed=5, termination=Termination(tolfun=1e-3)), problem, 80, [])
    assert es.restarts >= 1
    path = es.save(tmp_path / "old.npz")
    arrays, meta = files.load_npz(path)
    for key in ("default_popsize", "regime", "run_sigma0"):
        del meta[key]
    for entry in meta["history"]:
        del entry["regime"], entry["sigma0"]
    files.save_npz(path, arrays, meta)
    loaded = IPOPCMAES.load(path)
    assert (loaded.default_popsize, loaded.regime, loaded.run_sigma0) == (7, "large", 0.2)
    assert [e["popsize"] for e in loaded.restart_events()] == [e["popsize"] for e in es.restart_events()]


def test_a_minus_inf_best_value_survives_a_restart_checkpoint(tmp_path):
    es = IPOPCMAES(np.zeros(3), 1.0, seed=0)
    es.tell(es.ask(), np.full(es.popsize, -np.inf))
    assert IPOPCMAES.load(es.save(tmp_path / "minus_inf.npz")).best_value == -np.inf


def test_wrong_dimension_or_kind_is_a_checkpoint_error(tmp_path):
    full = CMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "full.npz")
    sep = SepCMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "sep.npz")
    other = files.save_npz(tmp_path / "weights.npz", {"W": np.zeros((3, 4))}, meta={"kind": "controller"})
    with pytest.raises(CheckpointError, match="4-dimensional search, not 5"):
        CMAES.load(full, n=5)
    with pytest.raises(CheckpointError, match="SepCMAES.load"):
        CMAES.load(sep)
    with pytest.raises(CheckpointError, match="CMAES.load"):
        SepCMAES.load(full)
    with pytest.raises(CheckpointError, match="not a CMAES checkpoint"):
        CMAES.load(other)
    with pytest.raises(CheckpointError, match="not an IPOPCMAES checkpoint"):
        IPOPCMAES.load(full)
    bipop = BIPOPCMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "bipop.npz")
    with pytest.raises(CheckpointError, match="not an IPOPCMAES checkpoint"):
        IPOPCMAES.load(bipop)


def tamper(path, arrays_change=None, meta_change=None):
    arrays, meta = files.load_npz(path)
    arrays.update(arrays_change or {})
    meta.update(meta_change or {})
    return files.save_npz(path, arrays, meta)


@pytest.mark.parametrize("change", [
    dict(arrays_change={"C": np.eye(3)}),                     # C of another dimension
    dict(arrays_change={"mean": np.full(4, np.nan)}),
    dict(meta_change={"sigma": -1.0}),
    dict(meta_change={"rng": {"bit_generator": "Nope"}}),
    dict(meta_change={"rng": {"bit_generator": "PCG64", "state": "garbage"}}),
    dict(meta_change={"popsize": "many"}),
    dict(meta_change={"format": 99}),
], ids=["shape", "nan-mean", "sigma", "rng-kind", "rng-state", "popsize", "format"])
def test_inconsistent_checkpoints_are_checkpoint_errors(change, tmp_path):
    path = CMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "es.npz")
    tamper(path, **change)
    with pytest.raises(CheckpointError):
        CMAES.load(path)


def test_missing_field_is_a_checkpoint_error(tmp_path):
    path = CMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "es.npz")
    arrays, meta = files.load_npz(path)
    del arrays["ps"], meta["generation"]
    files.save_npz(path, arrays, meta)
    with pytest.raises(CheckpointError, match="ps is missing"):
        CMAES.load(path)


def test_corrupt_and_missing_files_are_checkpoint_errors(tmp_path):
    path = CMAES(np.zeros(4), 1.0, seed=0).save(tmp_path / "es.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        CMAES.load(path)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(CheckpointError):
        CMAES.load(tmp_path / "text.npz")
    with pytest.raises(CheckpointError, match="does not exist"):
        CMAES.load(tmp_path / "absent.npz")
