"""A search distribution seen in two dimensions: the plane of the two leading principal axes of sigma^2 C.

For n == 2 the projection is the identity, so the plot shows the raw (x1, x2). For n > 2 a point x is drawn at u =
basis.T @ x, where the columns of `basis` span the plane of the eigenvectors of C with the two largest eigenvalues
(eigh: C is symmetric). The population, the mean m, the optimum and the ellipse of sigma^2 C all go through the same
basis, so they stay consistent in the picture; `lift` maps a plotted point back onto the plane through m.

Eigenvectors have no sign of their own, and two eigenvalues that cross swap their order: followed naively, the
picture would mirror itself or turn by 90 degrees from one generation to the next. Given the previous generation's
axes, the axes drawn are the orthonormal pair *in the new leading plane* closest to them (orthogonal Procrustes):
the plane is exactly C's leading plane, and the picture turns only as much as that plane does. The Evolution pane
and the controller-training stage (867-D) both use this.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Projection:
    basis: np.ndarray          # (n, 2) orthonormal columns; the identity for n == 2
    points: np.ndarray         # (k, 2) the population in plane coordinates
    mean: np.ndarray           # (2,) the distribution mean m
    cov2: np.ndarray           # (2, 2) basis.T @ (sigma^2 C) @ basis: the ellipse in the plane
    optimum: np.ndarray | None  # (2,) the known optimum, when there is one


def leading_axes(cov: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """The unit eigenvectors of the two largest eigenvalues of a symmetric (n, n) matrix, as (n, 2) columns.

    With `previous` (the last basis) the pair is turned within its plane to lie closest to `previous` (it then
    spans the same plane, but its columns need not be eigenvectors). Without it, each axis's largest component is
    positive. Equal eigenvalues keep their eigh order (for C = I: e1, e2).
    """
    cov = np.asarray(cov, dtype=float)
    n = cov.shape[0]
    if cov.shape != (n, n) or n < 2:
        raise ValueError(f"need a square matrix of size at least 2, got {cov.shape}")
    if n == 2:
        return np.eye(2)
    eigenvalues, eigenvectors = np.linalg.eigh(cov)
    order = np.argsort(-eigenvalues, kind="stable")[:2]
    basis = eigenvectors[:, order].copy()
    if previous is not None and previous.shape == (n, 2):
        # the orthogonal 2 x 2 R that brings basis R closest to previous (orthogonal Procrustes)
        u, _, vt = np.linalg.svd(basis.T @ previous)
        return basis @ (u @ vt)
    rows = np.argmax(np.abs(basis), axis=0)
    signs = np.sign(basis[rows, [0, 1]])
    return basis * np.where(signs == 0, 1.0, signs)


def project(population: np.ndarray, mean: np.ndarray, cov: np.ndarray, optimum: np.ndarray | None = None,
            previous_basis: np.ndarray | None = None, basis: np.ndarray | None = None) -> Projection:
    """Project a population (k, n), the mean m (n,), cov = sigma^2 C (n, n) and the optimum on the leading plane
    (following previous_basis), or on `basis` when given (another distribution's plane, to compare the two)."""
    cov = np.asarray(cov, dtype=float)
    basis = leading_axes(cov, previous_basis) if basis is None else np.asarray(basis, dtype=float)
    population = np.asarray(population, dtype=float).reshape(-1, cov.shape[0])
    return Projection(
        basis=basis,
        points=population @ basis,
        mean=np.asarray(mean, dtype=float) @ basis,
        cov2=basis.T @ cov @ basis,
        optimum=None if optimum is None else np.asarray(optimum, dtype=float) @ basis,
    )


def lift(basis: np.ndarray, origin: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Plane coordinates (..., 2) back to points of R^n on the plane through `origin` spanned by `basis`.

    A population member x is drawn at basis.T @ x; lifting that returns the foot of x on the plane, so a function
    evaluated at lifted grid points is the slice of f the plot shows behind the population.
    """
    points = np.asarray(points, dtype=float)
    offset = points - origin @ basis
    return origin + offset @ basis.T


def ellipse_outline(center: np.ndarray, cov2: np.ndarray, scale: float = 1.0, segments: int = 96) -> np.ndarray:
    """(segments + 1, 2) points of the closed curve {center + scale * L u : |u| = 1}, with L L^T = cov2.

    scale = 1 is the 1-sigma ellipse of N(center, cov2), scale = 2 the 2-sigma one.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(np.asarray(cov2, dtype=float))
    radii = np.sqrt(np.clip(eigenvalues, 0.0, None))
    angles = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    circle = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return np.asarray(center, dtype=float) + scale * (circle * radii) @ eigenvectors.T
