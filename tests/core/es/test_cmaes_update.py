"""One tell() against a plain transcription of the tutorial's update equations (arXiv 1604.00772, appendix A)."""
import math

import numpy as np
import pytest

from wm_studio.core.es import CMAES, SepCMAES
from wm_studio.core.es.cmaes import eigh_lower
from wm_studio.core.es.problems import get_problem


def tutorial_parameters(n, lam, mu):
    """Table 1 of the tutorial, written out again here on purpose (not taken from the engine)."""
    w_raw = np.log((lam + 1) / 2) - np.log(np.arange(1, lam + 1))
    pos, neg = w_raw[:mu], w_raw[mu:]
    mu_eff = pos.sum() ** 2 / (pos ** 2).sum()
    mu_eff_neg = neg.sum() ** 2 / (neg ** 2).sum()
    c_sigma = (mu_eff + 2) / (n + mu_eff + 5)
    d_sigma = 1 + 2 * max(0, math.sqrt((mu_eff - 1) / (n + 1)) - 1) + c_sigma
    c_c = (4 + mu_eff / n) / (n + 4 + 2 * mu_eff / n)
    c_1 = 2 / ((n + 1.3) ** 2 + mu_eff)
    c_mu = min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((n + 2) ** 2 + mu_eff))
    alpha_mu = 1 + c_1 / c_mu
    alpha_mu_eff = 1 + 2 * mu_eff_neg / (mu_eff + 2)
    alpha_posdef = (1 - c_1 - c_mu) / (n * c_mu)
    w = np.empty(lam)
    w[:mu] = pos / pos.sum()
    w[mu:] = min(alpha_mu, alpha_mu_eff, alpha_posdef) * neg / np.abs(neg).sum()
    chi_n = math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n))
    return w, mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu, chi_n


def tutorial_tell(n, lam, mu, g, m, sigma, C, B, D, p_sigma, p_c, X, f):
    """The (mu/mu_w, lambda)-CMA-ES update, one equation per line, for generation g (g completed before)."""
    w, mu_eff, c_sigma, d_sigma, c_c, c_1, c_mu, chi_n = tutorial_parameters(n, lam, mu)
    c_m = 1.0
    order = np.argsort(f)                                   # minimisation: best first
    y = (X[order] - m) / sigma                              # y_{i:lambda}
    y_w = sum(w[i] * y[i] for i in range(mu))               # <y>_w, positive weights only
    m_new = m + c_m * sigma * y_w
    C_inv_sqrt = B @ np.diag(1 / D) @ B.T                   # from the decomposition C = B D^2 B^T in use
    p_sigma = (1 - c_sigma) * p_sigma + math.sqrt(c_sigma * (2 - c_sigma) * mu_eff) * C_inv_sqrt @ y_w
    h_sigma = 1.0 if (np.linalg.norm(p_sigma) / math.sqrt(1 - (1 - c_sigma) ** (2 * (g + 1)))
                      < (1.4 + 2 / (n + 1)) * chi_n) else 0.0
    p_c = (1 - c_c) * p_c + h_sigma * math.sqrt(c_c * (2 - c_c) * mu_eff) * y_w
    w_circ = np.array([w[i] if w[i] >= 0 else w[i] * n / np.linalg.norm(C_inv_sqrt @ y[i]) ** 2
                       for i in range(lam)])
    delta_h = (1 - h_sigma) * c_c * (2 - c_c)
    C = ((1 + c_1 * delta_h - c_1 - c_mu * w.sum()) * C
         + c_1 * np.outer(p_c, p_c)
         + c_mu * sum(w_circ[i] * np.outer(y[i], y[i]) for i in range(lam)))
    sigma = sigma * math.exp(c_sigma / d_sigma * (np.linalg.norm(p_sigma) / chi_n - 1))
    return m_new, sigma, C, p_sigma, p_c, h_sigma


def warmed_up(generations=7, n=5, seed=3):
    """An engine a few generations into Rosenbrock, so C, B, D, p_sigma and p_c are all non-trivial."""
    problem = get_problem("rosenbrock", n)
    es = CMAES(np.full(n, -1.0), 0.5, seed=seed)
    for _ in range(generations):
        X = es.ask()
        es.tell(X, problem.evaluate(X))
    return es, problem


@pytest.mark.parametrize("force_h_sigma_zero", [False, True])
@pytest.mark.parametrize("candidates", ["asked", "edited"])
def test_one_tell_matches_the_tutorial(force_h_sigma_zero, candidates):
    es, problem = warmed_up()
    assert not np.allclose(es.C, np.diag(np.diag(es.C)))    # correlations learnt: B is not the identity
    if force_h_sigma_zero:  # a long p_sigma stalls p_c: exercises h_sigma = 0 and the (1-h) c_c (2-c_c) term
        es._ps = es._ps + 10 * es.chi_n / math.sqrt(es.n)
    before = dict(m=es.mean.copy(), sigma=es.sigma, C=es.C.copy(), B=es.B.copy(), D=es.D.copy(),
                  p_sigma=es.ps.copy(), p_c=es.pc.copy(), g=es.generation)
    X = es.ask()
    if candidates == "edited":   # a caller may repair candidates: tell() must then recompute y and C^-1/2 y
        X = np.clip(X, -1.2, None)
        assert not np.array_equal(X, es._pending[0])
    f = problem.evaluate(X)
    m, sigma, C, p_sigma, p_c, h_sigma = tutorial_tell(es.n, es.popsize, es.mu, before["g"], before["m"],
                                                       before["sigma"], before["C"], before["B"], before["D"],
                                                       before["p_sigma"], before["p_c"], X, f)
    assert h_sigma == (0.0 if force_h_sigma_zero else 1.0)
    es.tell(X, f)
    np.testing.assert_allclose(es.mean, m, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(es.ps, p_sigma, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(es.pc, p_c, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(es.C, C, rtol=1e-10, atol=1e-14)
    assert es.sigma == pytest.approx(sigma, rel=1e-12)
    assert es.generation == before["g"] + 1


def test_the_eigendecomposition_follows_the_gap():
    es, problem = warmed_up(generations=0, n=300)
    gap = es.eigen_gap
    assert gap == math.floor(1 / (10 * 300 * (es.c1 + es.cmu))) == 2  # 2.84
    decomposed = []
    for _ in range(10):
        B = es.B.copy()
        X = es.ask()
        es.tell(X, problem.evaluate(X))
        decomposed.append(not np.array_equal(B, es.B))
    assert decomposed == [(g + 1) % gap == 0 for g in range(10)]
    # right after a decomposition B D^2 B^T reproduces C, and B is orthonormal
    np.testing.assert_allclose((es.B * es.D ** 2) @ es.B.T, es.C, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(es.B.T @ es.B, np.eye(es.n), atol=1e-12)


def test_eigh_into_a_kept_array_is_numpys_eigh_bit_for_bit():
    rng = np.random.default_rng(3)
    M = rng.standard_normal((20, 20))
    lower = np.tril(M @ M.T + np.eye(20))  # the engine keeps only the lower triangle
    out = np.full((20, 20), np.nan)
    values, vectors = eigh_lower(lower, out)
    expected_values, expected_vectors = np.linalg.eigh(lower, UPLO="L")
    assert vectors is out
    assert np.array_equal(values, expected_values) and np.array_equal(vectors, expected_vectors)
    with pytest.raises(np.linalg.LinAlgError):  # as np.linalg.eigh does (above n = 25 LAPACK returns NaN)
        eigh_lower(np.full((20, 20), np.nan), out)


def test_a_later_decomposition_never_writes_into_a_B_handed_out_or_a_failed_one_into_B():
    es, problem = warmed_up(generations=0, n=20)
    handed_out = es.B
    kept = handed_out.copy()
    for _ in range(3 * es.eigen_gap):
        X = es.ask()
        es.tell(X, problem.evaluate(X))
    assert not np.array_equal(es.B, kept) and np.array_equal(handed_out, kept)

    before = es.B
    es._C[:] = np.nan  # LAPACK cannot decompose it
    with pytest.raises(np.linalg.LinAlgError):
        es._decompose()
    assert np.array_equal(es.B, before)


def test_rank_one_term_is_the_outer_product_of_pc():
    """The earlier defect was pc.dot(pc.T) on 1-D arrays: a scalar added to every entry of C."""
    es = CMAES(np.zeros(4), 1.0, seed=0)
    es._pc = np.array([1.0, -2.0, 0.5, 3.0])
    C0 = es.C.copy()
    es._update_covariance(decay=1.0, c1=es.c1, coefficients=np.empty(0), vectors=np.empty((0, 4)))
    change = es.C - C0
    np.testing.assert_allclose(change, es.c1 * np.outer(es.pc, es.pc), rtol=1e-14)
    assert np.linalg.matrix_rank(change) == 1
    assert change[0, 1] == pytest.approx(-2.0 * es.c1)     # the scalar version would give 14.25 * c1 here


def test_rank_one_term_in_a_real_tell():
    """Isolate c1 pc pc^T in a full tell: the same generation told by a twin whose c1 is 0 (weights kept) differs
    by c1 (pc pc^T - C_old), the rank-one term and its share of the decay (h_sigma = 1 here)."""
    es, problem = warmed_up()
    twin, _ = warmed_up()
    twin.params = twin.params.__class__(**{**twin.params.__dict__, "c1": 0.0})
    C_old = es.C.copy()
    X = es.ask()
    assert np.array_equal(X, twin.ask())
    f = problem.evaluate(X)
    es.tell(X, f)
    twin.tell(X, f)
    h_sigma = np.linalg.norm(es.ps) / math.sqrt(1 - (1 - es.c_sigma) ** (2 * es.generation)) \
        < (1.4 + 2 / (es.n + 1)) * es.chi_n
    assert h_sigma and np.array_equal(es.pc, twin.pc)
    np.testing.assert_allclose(es.C - twin.C, es.c1 * (np.outer(es.pc, es.pc) - C_old), rtol=1e-8, atol=1e-16)


def test_sep_update_is_the_diagonal_of_the_full_update_with_sep_rates():
    """With C diagonal, the sep-CMA-ES step equals the tutorial's step restricted to the diagonal."""
    n, problem = 6, get_problem("ellipsoid", 6)
    es = SepCMAES(np.full(n, 2.0), 0.7, seed=5)
    for _ in range(4):
        X = es.ask()
        es.tell(X, problem.evaluate(X))
    diag_c, ps, pc, m, sigma = es.diagC.copy(), es.ps.copy(), es.pc.copy(), es.mean.copy(), es.sigma
    X = es.ask()
    f = problem.evaluate(X)
    es.tell(X, f)
    w, mu_eff = es.weights, es.mu_eff
    order = np.argsort(f)
    y = (X[order] - m) / sigma
    y_w = w[:es.mu] @ y[:es.mu]
    ps = (1 - es.c_sigma) * ps + math.sqrt(es.c_sigma * (2 - es.c_sigma) * mu_eff) * y_w / np.sqrt(diag_c)
    h = np.linalg.norm(ps) / math.sqrt(1 - (1 - es.c_sigma) ** (2 * 5)) < (1.4 + 2 / (n + 1)) * es.chi_n
    pc = (1 - es.cc) * pc + h * math.sqrt(es.cc * (2 - es.cc) * mu_eff) * y_w
    w_circ = np.where(w >= 0, w, w * n / np.sum(y ** 2 / diag_c, axis=1))
    diag_c = ((1 + es.c1 * (1 - h) * es.cc * (2 - es.cc) - es.c1 - es.cmu * w.sum()) * diag_c
              + es.c1 * pc ** 2 + es.cmu * w_circ @ y ** 2)
    np.testing.assert_allclose(es.diagC, diag_c, rtol=1e-12)
    np.testing.assert_allclose(es.C, np.diag(diag_c), rtol=1e-12)
    np.testing.assert_allclose(es.ps, ps, rtol=1e-12)
