"""Hard-margin classifiers on fixed features: the max-margin SVM, its KKT conditions, and
linear separability (Cover 1965). numpy float64 in and out.

The lecture's inequality-constrained problem. Every max-margin problem here is

    min ½‖w‖²   s.t.   a_kᵀ w ≥ 1,  k = 1..m        (A w ≥ 1, A ∈ ℝ^{m×p}),

with Lagrangian L(w, α) = ½‖w‖² − Σ_k α_k (a_kᵀw − 1) and KKT conditions: primal feasibility
A w ≥ 1, dual feasibility α ≥ 0, stationarity w = Aᵀα, complementary slackness
α_k (a_kᵀw − 1) = 0. The constraints a_k:

* binary (labels y_i ∈ {−1, +1}, features h_i = h(x_i) ∈ ℝ^d): a_i = y_i h_i, w = β ∈ ℝ^d,
  so the constraints are y_i h_iᵀβ ≥ 1 and the geometric margin is 1/‖β̂‖;
* multiclass, Crammer–Singer without slack (labels c_i ∈ {0..C−1}): one constraint per
  (i, c ≠ c_i), (B_{c_i} − B_c)ᵀ h_i ≥ 1, for B ∈ ℝ^{C×d} (row B_c scores class c),
  w = vec(B) row-major, a_{(i,c)} = (e_{c_i} − e_c) ⊗ h_i; the objective is ½‖B‖²_F.
  Adding one vector to every row of B changes no constraint, so the minimum-norm B̂ has
  Σ_c B̂_c = 0, as gradient descent on the softmax loss from B = 0 keeps it.

Solver: qpsolvers' standard form (min ½xᵀPx + qᵀx s.t. Gx ≤ h) handed to Clarabel, on the
primal (x = w: P = I, q = 0, G = −A, h = −1) when p ≤ m, on the dual (x = α: P = AAᵀ,
q = −1, G = −I, h = 0, then w = Aᵀα) when p > m, so that a wide random-features model
costs an m × m problem. Why Clarabel: an interior-point solver (homogeneous embedding) that
reaches KKT residuals near 1e−13 with tightened tolerances, where first-order solvers (OSQP,
SCS) stall near 1e−6 without a polishing step; it returns the multiplier of every
constraint, and proves infeasibility by a certificate (which the tests set against the LP
below). Why qpsolvers: a small, stable interface over it with numpy and scipy as its only
dependencies, where cvxpy would add a modelling layer and its compile time to every one of
many small problems.

Separability is decided first, independently, by a linear program (scipy's HiGHS, see
`separability_margin`): some w has A w ≥ 1 iff the data are strictly separable by a
homogeneous (no intercept) linear classifier, the setting of Cover (1965).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

# Clarabel's stopping tolerances (absolute and relative duality gap, primal/dual
# feasibility, KT ratio): tight enough that the KKT residuals below land near 1e−13 on
# well-posed problems, two hundred times below the studies' 1e−8 acceptance.
SOLVER_SETTINGS = {
    "tol_gap_abs": 1e-12,
    "tol_gap_rel": 1e-12,
    "tol_feas": 1e-12,
    "tol_ktratio": 1e-10,
    "max_iter": 400,
}
# Data are separable when the LP's box-constrained margin exceeds this fraction of the
# largest margin a row can reach (module docstring of `is_separable`).
SEPARABILITY_TOLERANCE = 1e-9
# A multiplier counts as a support vector's when α_k > SUPPORT_THRESHOLD · max α; an
# interior-point solver leaves inactive multipliers at ~1e−13 of the largest, not at 0.
SUPPORT_THRESHOLD = 1e-6


class SolverFailure(RuntimeError):
    """The solver neither solved the problem nor proved it infeasible."""


@dataclass(frozen=True)
class KKTResiduals:
    """KKT residuals of min ½‖w‖² s.t. A w ≥ 1 at (w, α), each dimensionless:

    primal_feasibility = |min_k a_kᵀw − 1| (at the optimum the smallest margin is exactly 1:
        were every margin above 1, w/min_k a_kᵀw would be feasible and shorter);
    dual_feasibility = max(0, −min_k α_k)/max_k α_k;
    stationarity = ‖w − Aᵀα‖/‖w‖;
    complementary_slackness = max_k α_k |a_kᵀw − 1| / max_k α_k.
    """

    primal_feasibility: float
    dual_feasibility: float
    stationarity: float
    complementary_slackness: float

    @property
    def largest(self) -> float:
        """The largest of the KKT residuals."""
        return max(
            self.primal_feasibility,
            self.dual_feasibility,
            self.stationarity,
            self.complementary_slackness,
        )

    def as_dict(self, prefix: str = "kkt_") -> dict[str, float]:
        """The residuals as a flat dict, each key prefixed with `prefix`."""
        return {
            f"{prefix}primal_feasibility": self.primal_feasibility,
            f"{prefix}dual_feasibility": self.dual_feasibility,
            f"{prefix}stationarity": self.stationarity,
            f"{prefix}complementary_slackness": self.complementary_slackness,
        }


def kkt_residuals(a: np.ndarray | sp.spmatrix, w: np.ndarray, alpha: np.ndarray) -> KKTResiduals:
    """The residuals of `KKTResiduals` for constraint rows `a` [m, p], w [p], α [m]."""
    w, alpha = np.asarray(w, dtype=np.float64), np.asarray(alpha, dtype=np.float64)
    margins = a @ w
    top = float(alpha.max())
    return KKTResiduals(
        primal_feasibility=abs(float(margins.min()) - 1.0),
        dual_feasibility=max(0.0, -float(alpha.min())) / top,
        stationarity=float(np.linalg.norm(w - a.T @ alpha) / np.linalg.norm(w)),
        complementary_slackness=float(np.max(alpha * np.abs(margins - 1.0))) / top,
    )


@dataclass(frozen=True)
class MaxMarginSolution:
    """The hard-margin solution, or the verdict that there is none.

    `separable` comes from the linear program; when False, `weights` and `duals` are None
    and no QP is solved; `solver_status` is the QP solver's final status otherwise.
    `weights`: β [d] (binary) or B [C, d] (multiclass); `duals`: α [n] (binary) or [n, C]
    with 0 at the true class (multiclass); `margin` = 1/‖w‖ (the largest normalized margin
    any w reaches); `support` marks the constraints with α_k > SUPPORT_THRESHOLD·max α, in
    the shape of `duals`.
    """

    separable: bool
    solver_status: str
    weights: np.ndarray | None = None
    duals: np.ndarray | None = None
    kkt: KKTResiduals | None = None
    support: np.ndarray | None = None

    @property
    def margin(self) -> float | None:
        """The geometric margin 1/‖β̂‖, or None when the data are not separable."""
        return None if self.weights is None else float(1.0 / np.linalg.norm(self.weights))


def separability_margin(a: np.ndarray | sp.spmatrix) -> float:
    """t* = max t s.t. A w ≥ t·1, ‖w‖_∞ ≤ 1, by HiGHS's LP (scipy.optimize.linprog).

    Always feasible (w = 0, t = 0) and bounded, so the solver never has to prove
    infeasibility, which HiGHS's simplex sometimes fails to do on the plain feasibility
    problem A w ≥ 1 near the threshold: t* > 0 iff some w separates strictly, t* = 0
    otherwise. Any status but optimal raises `SolverFailure`.
    """
    from scipy.optimize import linprog

    m, p = a.shape
    cost = np.zeros(p + 1)
    cost[-1] = -1.0
    rows = sp.hstack([-sp.csr_matrix(a), sp.csr_matrix(np.ones((m, 1)))], format="csr")
    result = linprog(
        cost,
        A_ub=rows,
        b_ub=np.zeros(m),
        bounds=[(-1.0, 1.0)] * p + [(None, None)],
        method="highs",
    )
    if result.status != 0:
        raise SolverFailure(
            f"the separability LP ended with status {result.status}: {result.message}"
        )
    return float(-result.fun)


def is_separable(a: np.ndarray | sp.spmatrix) -> bool:
    """Whether some w has A w ≥ 1 (strict homogeneous separability): `separability_margin`
    above SEPARABILITY_TOLERANCE times the largest margin any row can reach in the box,
    max_k ‖a_k‖₁ (the LP's own feasibility tolerance is ~1e−7 of that scale)."""
    scale = float(abs(sp.csr_matrix(a)).sum(axis=1).max())
    return separability_margin(a) > SEPARABILITY_TOLERANCE * scale


def hard_margin(a: np.ndarray | sp.spmatrix) -> MaxMarginSolution:
    """min ½‖w‖² s.t. A w ≥ 1 (module docstring): the LP decides separability; on separable
    data Clarabel (through qpsolvers) solves the QP, on the primal route (variables w) when
    p ≤ m and on the dual route (min ½αᵀAAᵀα − 1ᵀα s.t. α ≥ 0, w = Aᵀα: an m × m problem
    whatever the width) when p > m. A separable problem Clarabel does not solve raises
    `SolverFailure`."""
    import clarabel
    from qpsolvers import Problem, solve_problem

    a_sparse = sp.csr_matrix(a, dtype=np.float64)
    m, p = a_sparse.shape
    if not is_separable(a_sparse):
        return MaxMarginSolution(False, "not separable (LP)")
    if p <= m:
        problem = Problem(sp.identity(p, format="csc"), np.zeros(p), -a_sparse.tocsc(), -np.ones(m))
    else:
        gram = a_sparse @ a_sparse.T
        gram = gram.toarray() if sp.issparse(gram) else np.asarray(gram)
        problem = Problem(
            sp.csc_matrix(gram), -np.ones(m), -sp.identity(m, format="csc"), np.zeros(m)
        )
    with warnings.catch_warnings():  # the status is checked below
        warnings.simplefilter("ignore", UserWarning)
        solution = solve_problem(problem, solver="clarabel", **SOLVER_SETTINGS)
    status = solution.extras["status"]
    name = str(status).rsplit(".", 1)[-1]
    if status != clarabel.SolverStatus.Solved:
        raise SolverFailure(f"the LP finds the data separable, but Clarabel says {name}")
    if p <= m:
        w, alpha = np.asarray(solution.x), np.asarray(solution.z)
    else:
        alpha = np.asarray(solution.x)
        w = np.asarray(a_sparse.T @ alpha).ravel()
    return MaxMarginSolution(
        True,
        name,
        weights=w,
        duals=alpha,
        kkt=kkt_residuals(a_sparse, w, alpha),
        support=alpha > SUPPORT_THRESHOLD * alpha.max(),
    )


def binary_constraints(h: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Rows a_i = y_i h_i [n, d] for labels y_i ∈ {−1, +1}."""
    h, y = np.asarray(h, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if h.ndim != 2 or y.shape != (h.shape[0],) or not np.all(np.abs(y) == 1):
        raise ValueError(f"h must be [n, d] and y [n] with entries ±1; got h{h.shape}, y{y.shape}")
    return y[:, None] * h


def hard_margin_svm(h: np.ndarray, y: np.ndarray) -> MaxMarginSolution:
    """Binary hard-margin SVM without intercept: min ½‖β‖² s.t. y_i h_iᵀβ ≥ 1."""
    return hard_margin(binary_constraints(h, y))


def multiclass_constraints(h: np.ndarray, labels: np.ndarray, n_classes: int) -> sp.csr_matrix:
    """Rows a_{(i,c)} = (e_{c_i} − e_c) ⊗ h_i for every i and c ≠ c_i, in the order (i, c)
    with c increasing, as a sparse [n(C−1), C·d] matrix acting on vec(B), B [C, d] row-major."""
    h = np.asarray(h, dtype=np.float64)
    labels = np.asarray(labels)
    n, d = h.shape
    if labels.shape != (n,) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels must be [n] in 0..{n_classes - 1}; got {labels.shape}")
    point, wrong = np.nonzero(np.arange(n_classes)[None, :] != labels[:, None])
    rows = np.arange(point.size)
    cols = np.arange(d)
    # Each row holds +h_i in block c_i and −h_i in block c.
    r = np.repeat(rows, 2 * d)
    c = np.concatenate([labels[point][:, None] * d + cols, wrong[:, None] * d + cols], axis=1)
    v = np.concatenate([h[point], -h[point]], axis=1)
    return sp.csr_matrix((v.ravel(), (r, c.ravel())), shape=(point.size, n_classes * d))


def multiclass_hard_margin_svm(
    h: np.ndarray, labels: np.ndarray, n_classes: int
) -> MaxMarginSolution:
    """Crammer–Singer hard-margin SVM: min ½‖B‖²_F s.t. (B_{c_i} − B_c)ᵀh_i ≥ 1 ∀ c ≠ c_i.

    Returns B [C, d] and α [n, C] (α[i, c_i] = 0); the KKT residuals are those of the
    stacked problem over vec(B) (module docstring)."""
    a = multiclass_constraints(h, labels, n_classes)
    out = hard_margin(a)
    if not out.separable:
        return out
    n, d = np.asarray(h).shape
    mask = np.arange(n_classes)[None, :] != np.asarray(labels)[:, None]
    duals = np.zeros((n, n_classes))
    duals[mask] = out.duals
    support = np.zeros((n, n_classes), dtype=bool)
    support[mask] = out.support
    return MaxMarginSolution(
        True,
        out.solver_status,
        weights=out.weights.reshape(n_classes, d),
        duals=duals,
        kkt=out.kkt,
        support=support,
    )


# ------------------------------------------------------------------ Cover's function counting
def cover_count(n: int, d: int) -> int:
    """C(n, d) = 2 Σ_{k=0}^{d−1} binom(n−1, k): the number of the 2ⁿ labelings of n points in
    general position in ℝ^d that a homogeneous linear classifier separates (Cover 1965).
    Equal to 2ⁿ for n ≤ d."""
    if n < 1 or d < 1:
        raise ValueError(f"n and d must be ≥ 1; got n={n}, d={d}")
    return 2 * sum(math.comb(n - 1, k) for k in range(min(d, n)))


def cover_fraction(n: int, d: int) -> float:
    """C(n, d)/2ⁿ: the probability that uniformly random labels of n points in general
    position in ℝ^d are linearly separable; exactly ½ at n = 2d. Exact integer arithmetic
    before the one division, so n in the thousands loses nothing."""
    return float(cover_count(n, d) / 2**n)


def separable_at_widths(
    features: np.ndarray, y: np.ndarray, widths: Sequence[int]
) -> dict[int, bool]:
    """Separability of (first d feature columns, labels y) for each d of `widths`.

    Separability only grows with d when the columns are nested (w with zeros in the new
    coordinates stays feasible, and a column's scale never matters), so a bisection over
    the sorted widths decides all of them with ⌈log₂(len + 1)⌉ linear programs.
    """
    widths = sorted(set(int(d) for d in widths))
    z = binary_constraints(np.asarray(features, dtype=np.float64)[:, : widths[-1]], y)
    low, high = 0, len(widths)  # the first separable index lies in [low, high]
    while low < high:
        mid = (low + high) // 2
        if is_separable(z[:, : widths[mid]]):
            high = mid
        else:
            low = mid + 1
    return {d: i >= low for i, d in enumerate(widths)}
