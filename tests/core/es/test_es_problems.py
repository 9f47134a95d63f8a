"""Test problems: 0 at the optimum, positive elsewhere, vectorised, clear errors."""
import math

import numpy as np
import pytest

from wm_studio.core.errors import ConfigError
from wm_studio.core.es import PROBLEMS, get_problem


@pytest.mark.parametrize("name", PROBLEMS)
def test_zero_at_the_optimum_and_positive_around_it(name):
    n = 2 if name == "schaffer" else 7
    problem = get_problem(name, n)
    assert problem.name == name and problem.n == n and problem.description
    assert problem.evaluate(problem.optimum).tolist() == [0.0]
    X = problem.optimum + np.random.default_rng(0).normal(scale=0.5, size=(50, n))
    values = problem.evaluate(X)
    assert values.shape == (50,) and np.all(values > 0)
    np.testing.assert_allclose(values, [problem.evaluate(x)[0] for x in X], rtol=1e-13)  # batch == one by one
    (x_lo, x_hi), (y_lo, y_hi) = problem.box
    assert x_lo < problem.optimum[0] < x_hi and y_lo < problem.optimum[1] < y_hi


def test_known_values():
    assert get_problem("sphere", 3).evaluate([1, 2, 3])[0] == 14
    assert get_problem("ellipsoid", 3).evaluate([1, 1, 1])[0] == 1 + 1e3 + 1e6
    assert get_problem("rosenbrock", 2).evaluate([0, 0])[0] == 1
    assert get_problem("rastrigin", 2).evaluate([1, 0.5])[0] == pytest.approx(1 + 0.25 + 20)


def schaffer_textbook(x, y):
    return 0.5 + (math.sin((x - 10) ** 2 - (y - 10) ** 2) ** 2 - 0.5) / (1 + 0.001 * ((x - 10) ** 2 + (y - 10) ** 2)) ** 2


def test_schaffer_is_the_design_formula_squared():
    problem = get_problem("schaffer", 2)
    f_star = schaffer_textbook(10, 10)
    for x, y in [(0, 0), (3.3, -1.2), (10.5, 9.7), (25, 25), (11, 10)]:
        assert problem.evaluate([x, y])[0] == pytest.approx((schaffer_textbook(x, y) - f_star) ** 2, rel=1e-9)
    # near the optimum the rewritten formula keeps resolving distances the textbook one rounds to 0
    assert problem.evaluate([10 + 1e-7, 10])[0] > 0 and schaffer_textbook(10 + 1e-7, 10) - f_star == 0
    # x0 ~ N(0, I) and the optimum are both inside the plotting box
    (x_lo, x_hi), (y_lo, y_hi) = problem.box
    assert x_lo <= -3 and x_hi >= 13 and y_lo <= -3 and y_hi >= 13


def test_bad_requests():
    with pytest.raises(ConfigError, match="unknown problem"):
        get_problem("schwefel", 3)
    with pytest.raises(ConfigError, match="2-dimensional"):
        get_problem("schaffer", 3)
    with pytest.raises(ConfigError):
        get_problem("sphere", 0)
    with pytest.raises(ConfigError):
        get_problem("sphere", 3).evaluate(np.zeros((4, 2)))


def test_the_schaffer_optimum_can_be_moved():
    classic, moved = get_problem("schaffer", 2), get_problem("schaffer", 2, shift=(-3.0, 4.5))
    assert np.array_equal(classic.optimum, [10, 10]) and classic.box == ((-8.0, 18.0), (-8.0, 18.0))
    assert np.array_equal(moved.optimum, [-3.0, 4.5]) and moved.evaluate(moved.optimum).tolist() == [0.0]
    X = np.random.default_rng(2).uniform(-20, 20, (30, 2))
    # the same landscape, translated
    np.testing.assert_array_equal(moved.evaluate(X + [-13.0, -5.5]), classic.evaluate(X))
    (x_lo, x_hi), (y_lo, y_hi) = moved.box
    assert x_lo <= -3 - 8 and x_hi >= 8 and y_lo <= -8 and y_hi >= 4.5 + 8   # the optimum and x0 = 0 inside
    assert "(-3, 4.5)" in moved.description
    for bad in ((1.0,), (1.0, np.nan), "far", (1, 2, 3)):
        with pytest.raises(ConfigError, match="Schaffer optimum"):
            get_problem("schaffer", 2, shift=bad)
    with pytest.raises(ConfigError, match="only the Schaffer"):
        get_problem("sphere", 2, shift=(1.0, 1.0))


def test_griewank_known_values():
    griewank = get_problem("griewank", 2)
    expected = 1 + (9 + 16) / 4000 - math.cos(3) * math.cos(4 / math.sqrt(2))
    assert griewank.evaluate([3.0, 4.0])[0] == pytest.approx(expected, rel=1e-14)
