"""Gradient descent on the cross-entropy of a linear model on fixed features, from zero, and
what it converges to (Soudry, Hoffer, Nacson, Gunasekar & Srebro, JMLR 2018). numpy float64.

Losses (means over the n training points; H ∈ ℝ^{n×d} has rows h_i = h(x_i)):

* logistic, labels y_i ∈ {±1}:  L(β) = (1/n) Σ_i log(1 + e^{−m_i}),  m_i = y_i h_iᵀβ;
  −∇L = (1/n) Σ_i σ(−m_i) y_i h_i  (σ the logistic function);
* softmax cross-entropy, labels c_i ∈ {0..C−1}, scores s_i = B h_i (B ∈ ℝ^{C×d}):
  L(B) = (1/n) Σ_i [log Σ_c e^{s_ic} − s_{i c_i}];  −∇L = (1/n) Σ_i Σ_{c≠c_i} p_ic
  (e_{c_i} − e_c) h_iᵀ with p_i = softmax(s_i).

Both negative gradients are non-negative combinations of the max-margin constraint rows of
`widthlab.margin` (a_i = y_i h_i; a_(i,c) = (e_{c_i} − e_c) ⊗ h_i) with weights σ(−m_i) and
p_ic: the "gradient share" of constraint k is its weight over the sum of all weights.
Gradient descent from 0 therefore stays of the form w_t = Aᵀλ_t, λ_t ≥ 0 — the form of
the SVM's stationarity condition ŵ = Aᵀα — and on separable data w_t = ŵ log t + ρ_t with
ρ_t bounded: the direction converges to the max-margin one, ‖w_t/‖w_t‖ − ŵ/‖ŵ‖‖ = O(1/log t),
while the shares concentrate on the support vectors, in proportion to α (Soudry et al.
2018, Theorems 3 and 7; Section 4 for the softmax loss).

Step size: η = 1/L_s, L_s the smoothness constant of the loss, λ_max(HᵀH)/(4n) for the
logistic loss (σ' ≤ ¼) and λ_max(HᵀH)/(2n) for the softmax loss (Böhning's bound
diag(p) − ppᵀ ≼ ½ I). Below 2/L_s every step lowers the loss (the descent lemma) and the
convergence theorems apply; 1/L_s is the step that guarantees the largest decrease per
step from the quadratic upper bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.special import expit, logsumexp, softmax


def log_spaced_steps(total: int, per_decade: int) -> np.ndarray:
    """Distinct integer checkpoints from 1 to `total` (both included), `per_decade` per
    decade, log-spaced."""
    if total < 1 or per_decade < 1:
        raise ValueError(f"total and per_decade must be ≥ 1; got {total}, {per_decade}")
    count = max(2, math.ceil(per_decade * math.log10(total)) + 1)
    return np.unique(np.round(np.logspace(0, math.log10(total), count)).astype(np.int64))


def logistic_step_size(h: np.ndarray) -> float:
    """η = 1/L_s = 4n/λ_max(HᵀH) (module docstring)."""
    h = np.asarray(h, dtype=np.float64)
    return 4.0 * h.shape[0] / float(np.linalg.norm(h, 2) ** 2)


def softmax_step_size(h: np.ndarray) -> float:
    """η = 1/L_s = 2n/λ_max(HᵀH) (module docstring)."""
    h = np.asarray(h, dtype=np.float64)
    return 2.0 * h.shape[0] / float(np.linalg.norm(h, 2) ** 2)


@dataclass(frozen=True)
class GDPath:
    """The iterates of gradient descent at its checkpoints: `steps` [k] (t, steps taken),
    `weights` [k, d] (β_t) or [k, C, d] (B_t), `losses` [k] (L at those weights), `lr` η."""

    steps: np.ndarray
    weights: np.ndarray
    losses: np.ndarray
    lr: float


def logistic_loss(z: np.ndarray, beta: np.ndarray) -> float:
    """(1/n) Σ log(1 + e^{−m_i}) with m = Zβ, Z the rows y_i h_i; log1p(e^{−m}) computed
    without overflow (logaddexp)."""
    return float(np.mean(np.logaddexp(0.0, -(z @ beta))))


def logistic_gradient_descent(
    h: np.ndarray,
    y: np.ndarray,
    steps: int,
    checkpoints: Sequence[int],
    lr: float | None = None,
) -> GDPath:
    """Full-batch GD on the logistic loss from β₀ = 0: β_{t+1} = β_t + (η/n) Σ_i σ(−m_i) y_i h_i,
    recording β_t at every t in `checkpoints` (≤ steps). Default η: `logistic_step_size`."""
    h, y = np.asarray(h, dtype=np.float64), np.asarray(y, dtype=np.float64)
    z = y[:, None] * h
    lr = logistic_step_size(h) if lr is None else float(lr)
    keep = _checkpoints(checkpoints, steps)
    zt = np.ascontiguousarray(z.T)
    step = lr / h.shape[0]
    beta = np.zeros(h.shape[1])
    out = []
    for t in range(1, int(steps) + 1):
        beta += step * (zt @ expit(-(z @ beta)))
        if t in keep:
            out.append(beta.copy())
    weights = np.asarray(out)
    losses = np.array([logistic_loss(z, b) for b in weights])
    return GDPath(np.asarray(sorted(keep)), weights, losses, lr)


def softmax_loss(h: np.ndarray, labels: np.ndarray, b: np.ndarray) -> float:
    """(1/n) Σ_i [logsumexp(B h_i) − (B h_i)_{c_i}]."""
    s = h @ b.T
    return float(np.mean(logsumexp(s, axis=1) - s[np.arange(len(labels)), labels]))


def softmax_gradient_descent(
    h: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    steps: int,
    checkpoints: Sequence[int],
    lr: float | None = None,
) -> GDPath:
    """Full-batch GD on the softmax cross-entropy from B₀ = 0:
    B_{t+1} = B_t − (η/n) (P_t − Y)ᵀH, P_t the softmax of the scores H B_tᵀ, Y one-hot;
    B_t [C, d] recorded at every t in `checkpoints`. Default η: `softmax_step_size`."""
    h = np.asarray(h, dtype=np.float64)
    labels = np.asarray(labels)
    n, d = h.shape
    lr = softmax_step_size(h) if lr is None else float(lr)
    keep = _checkpoints(checkpoints, steps)
    onehot = np.eye(n_classes)[labels]
    ht = np.ascontiguousarray(h.T)
    step = lr / n
    bt = np.zeros((d, n_classes))  # Bᵀ: the scores H Bᵀ need no transpose per step
    out = []
    for t in range(1, int(steps) + 1):
        # P − Y in place: the softmax shifted by each row's maximum (no overflow).
        s = h @ bt
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        s -= onehot
        bt -= step * (ht @ s)
        if t in keep:
            out.append(bt.T.copy())
    weights = np.asarray(out)
    losses = np.array([softmax_loss(h, labels, w) for w in weights])
    return GDPath(np.asarray(sorted(keep)), weights, losses, lr)


def _checkpoints(checkpoints: Sequence[int], steps: int) -> set[int]:
    keep = {int(t) for t in checkpoints}
    if not keep or min(keep) < 1 or max(keep) > steps:
        raise ValueError(f"checkpoints must lie in 1..{steps}; got {sorted(keep)[:3]}…")
    return keep


# ---------------------------------------------------------------------- what GD converges to
def direction_gap(w: np.ndarray, reference: np.ndarray) -> float:
    """1 − cos(w, ŵ) = 1 − ⟨w, ŵ⟩/(‖w‖‖ŵ‖) (Frobenius for matrices); equals ½‖u − û‖² for
    the unit vectors u, û, so √(2·gap) is the distance between the directions."""
    w, reference = np.ravel(w), np.ravel(reference)
    return float(1.0 - w @ reference / (np.linalg.norm(w) * np.linalg.norm(reference)))


def normalized_margin(margins: np.ndarray, w: np.ndarray) -> float:
    """min_k a_kᵀw/‖w‖ from the constraint margins a_kᵀw: the geometric margin of w,
    at most the SVM's 1/‖ŵ‖ for every w."""
    return float(np.min(margins) / np.linalg.norm(w))


def binary_margins(h: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """m_i = y_i h_iᵀβ, shape [n]."""
    return np.asarray(y) * (np.asarray(h) @ beta)


def multiclass_margins(h: np.ndarray, labels: np.ndarray, b: np.ndarray) -> np.ndarray:
    """m_ic = (B_{c_i} − B_c)ᵀh_i for c ≠ c_i, shape [n, C], +inf at c = c_i."""
    s = np.asarray(h) @ b.T
    rows = np.arange(len(labels))
    m = s[rows, labels][:, None] - s
    m[rows, labels] = np.inf
    return m


def binary_gradient_shares(h: np.ndarray, y: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """σ(−m_i)/Σ_j σ(−m_j): each point's share of the logistic loss gradient (module
    docstring), to set beside the SVM's α_i/Σ_j α_j."""
    weights = expit(-binary_margins(h, y, beta))
    return weights / weights.sum()


def multiclass_gradient_shares(h: np.ndarray, labels: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p_ic/Σ p over the wrong classes (0 at c = c_i), shape [n, C]: each constraint's share
    of the softmax loss gradient, beside the multiclass SVM's α_ic/Σα."""
    p = softmax(np.asarray(h) @ b.T, axis=1)
    p[np.arange(len(labels)), labels] = 0.0
    return p / p.sum()


@dataclass(frozen=True)
class InverseLogFit:
    """‖u_t − û‖ = √(2·gap_t) ≈ c / ln(t/t₀), fitted as the straight line
    1/√(2·gap_t) = (ln t − ln t₀)/c by least squares in ln t.

    `slope` = 1/c with its 95% interval, `t0`, and `max_relative_deviation`, the largest
    |fitted gap/measured gap − 1| over the points fitted."""

    slope: float
    ci_low: float
    ci_high: float
    t0: float
    max_relative_deviation: float
    points: int

    def as_dict(self) -> dict[str, float]:
        """The fit's fields as a flat dict."""
        return dict(self.__dict__)


def inverse_log_fit(steps: np.ndarray, gaps: np.ndarray, level: float = 0.95) -> InverseLogFit:
    """The fit of `InverseLogFit` over the given (t, gap) points (t > 1, gap > 0)."""
    t, gap = np.asarray(steps, dtype=np.float64), np.asarray(gaps, dtype=np.float64)
    keep = (t > 1) & (gap > 0)
    x, u = np.log(t[keep]), 1.0 / np.sqrt(2.0 * gap[keep])
    if x.size < 3:
        raise ValueError(f"the fit needs at least 3 points with t > 1 and gap > 0; got {x.size}")
    fit = stats.linregress(x, u)
    half = stats.t.ppf(0.5 + level / 2, df=x.size - 2) * fit.stderr
    fitted_gap = 0.5 / (fit.slope * x + fit.intercept) ** 2
    return InverseLogFit(
        slope=float(fit.slope),
        ci_low=float(fit.slope - half),
        ci_high=float(fit.slope + half),
        t0=float(math.exp(-fit.intercept / fit.slope)),
        max_relative_deviation=float(np.max(np.abs(fitted_gap / gap[keep] - 1.0))),
        points=int(x.size),
    )


def strictly_decreasing(values: Sequence[float]) -> bool:
    """Every value below the one before it."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.size >= 2 and np.all(np.diff(v) < 0))


# ------------------------------------------------------------ the limit on non-separable data
@dataclass(frozen=True)
class LogisticMinimizer:
    """The unique minimizer of the logistic loss on data that are not separable (where GD
    converges to a finite point rather than a direction), its loss and gradient norm."""

    beta: np.ndarray
    loss: float
    gradient_norm: float
    iterations: int


def logistic_minimizer(
    h: np.ndarray, y: np.ndarray, tol: float = 1e-10, max_iter: int = 200
) -> LogisticMinimizer:
    """argmin_β (1/n) Σ log(1 + e^{−y_i h_iᵀβ}) by Newton's method with backtracking.

    Gradient g = −(1/n) Zᵀσ(−m), Hessian (1/n) Zᵀ diag(σ(m)σ(−m)) Z. Stops once
    ‖g‖ ≤ tol · L(β) · max_i ‖h_i‖: at a finite minimizer the loss stays positive while the
    gradient vanishes, whereas on separable data (no minimizer: the loss tends to 0 as
    ‖β‖ → ∞) the gradient only shrinks in proportion to the loss, so the iterations run out
    and `ValueError` is raised.
    """
    h, y = np.asarray(h, dtype=np.float64), np.asarray(y, dtype=np.float64)
    z = y[:, None] * h
    n, d = z.shape
    scale = float(np.linalg.norm(z, axis=1).max())
    beta = np.zeros(d)
    loss = logistic_loss(z, beta)
    for it in range(max_iter):
        m = z @ beta
        grad = -(z.T @ expit(-m)) / n
        gnorm = float(np.linalg.norm(grad))
        if gnorm <= tol * loss * scale:
            return LogisticMinimizer(beta, loss, gnorm, it)
        curvature = expit(m) * expit(-m)
        hess = (z.T * curvature) @ z / n
        direction = -np.linalg.lstsq(hess, grad, rcond=None)[0]
        decrement = float(-grad @ direction)
        step = 1.0
        while step > 1e-12:
            trial = beta + step * direction
            trial_loss = logistic_loss(z, trial)
            if trial_loss <= loss - 0.25 * step * decrement:
                break
            step /= 2
        else:  # no decrease along the Newton direction: at the minimizer to rounding?
            if gnorm <= 1e-6 * loss * scale:
                return LogisticMinimizer(beta, loss, gnorm, it)
            break
        beta, loss = trial, trial_loss
    raise ValueError(
        f"no logistic minimizer within {max_iter} Newton steps (‖β‖ = "
        f"{np.linalg.norm(beta):.3g}, loss {loss:.3g}): are the data separable?"
    )
