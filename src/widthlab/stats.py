"""Summaries of sweeps: power-law slopes with confidence intervals, mean ± sd over seeds."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class SlopeFit:
    """y ≈ C·x^slope fitted by ordinary least squares on (log x, log y).

    `ci_low`/`ci_high` bound the slope at `level` (Student t with n − 2 degrees of freedom
    on the OLS standard error); `n` counts the points used (non-positive values are dropped,
    since they have no logarithm).
    """

    slope: float
    intercept: float
    ci_low: float
    ci_high: float
    stderr: float
    n: int
    level: float = 0.95

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def loglog_slope(x: np.ndarray, y: np.ndarray, level: float = 0.95) -> SlopeFit:
    """Fit log y = intercept + slope·log x; every (x, y) pair is one point (seeds included)."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = (x > 0) & (y > 0) & np.isfinite(x) & np.isfinite(y)
    lx, ly = np.log(x[keep]), np.log(y[keep])
    n = lx.size
    if n < 3 or np.ptp(lx) == 0:
        nan = float("nan")
        return SlopeFit(nan, nan, nan, nan, nan, int(n), level)
    fit = stats.linregress(lx, ly)
    half = stats.t.ppf(0.5 + level / 2, df=n - 2) * fit.stderr
    return SlopeFit(float(fit.slope), float(fit.intercept), float(fit.slope - half),
                    float(fit.slope + half), float(fit.stderr), int(n), level)  # fmt: skip


def relative_frobenius_distance(estimate, reference) -> float:
    """‖estimate − reference‖_F / ‖reference‖_F (torch tensors or numpy arrays)."""
    import torch

    a, b = torch.as_tensor(estimate), torch.as_tensor(reference)
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def relative_diagonal_error(estimate, reference) -> float:
    """‖diag(estimate) − diag(reference)‖₂ / ‖diag(reference)‖₂ of two square kernels."""
    import torch

    a, b = torch.as_tensor(estimate), torch.as_tensor(reference)
    return float(torch.linalg.norm(a.diagonal() - b.diagonal()) / torch.linalg.norm(b.diagonal()))
