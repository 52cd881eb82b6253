"""Analytic infinite-width kernels: NNGP, NTK and the random-features kernel.

Convention (NTK parameterization, scalar output). ``depth`` = L = number of hidden layers, so
depth 1 is Dense–act–Dense. Every weight and bias entry is N(0, 1); layer l computes
z^l = (w_std/√fan_in) W^l h^{l−1} + b_std·b^l with h^0 = x (inputs NOT normalized: the first
layer sees x·x'/D, D the input dimension) and h^l = φ(z^l); the readout (layer L+1) uses the same
w_std and b_std. The kernels follow the recursion

    Σ¹(x,x') = w_std²·x·x'/D + b_std²,    Θ¹ = Σ¹,
    for l = 2..L+1:
        Σ^l = w_std²·E[φ(u)φ(v)] + b_std²,   Σ̇^l = w_std²·E[φ'(u)φ'(v)],   Θ^l = Σ^l + Σ̇^l·Θ^{l−1},
    (u, v) ~ N(0, [[Σ^{l−1}(x,x), Σ^{l−1}(x,x')], [Σ^{l−1}(x,x'), Σ^{l−1}(x',x')]]),

and NNGP = Σ^{L+1} = E[f(x)f(x')] at initialization, NTK = Θ^{L+1} = Σ_p ∂f(x)/∂p·∂f(x')/∂p
over all weights and biases (no factor ½).

Dual activations E[φ(u)φ(v)], E[φ'(u)φ'(v)] for (u, v) ~ N(0, [[k11, k12], [k12, k22]]):

* relu (arc-cosine kernel, Cho & Saul 2009), with c = k12/√(k11 k22) clamped to [−1, 1] and
  θ = arccos c:  E[φφ] = √(k11 k22)/(2π)·(sin θ + (π−θ) cos θ),  E[φ'φ'] = (π−θ)/(2π).
  Evaluated as θ = atan2(√(k11 k22 − k12²)₊, k12), the same clamped angle without the
  arccos, whose derivative is infinite at c = ±1. That does not remove the loss of digits
  near coincident or antipodal pairs: k11·k22 − k12² cancels there, so √(…) and hence θ
  carry an absolute error of about √ε ≈ 1e-8, and so does E[φ'φ'] = (π − θ)/(2π) (the NTK
  of such pairs is good to about 1e-8 relative, E[φφ], whose θ-dependence is quadratic near
  θ = 0, to about 1e-16). On the diagonal the exact E[φ(u)²] = k/2, E[φ'²] = 1/2 are used.
* erf (Williams 1997):  E[φφ] = (2/π)·arcsin(2k12/√((1+2k11)(1+2k22))),
  E[φ'φ'] = (4/π)/√((1+2k11)(1+2k22) − 4k12²).
* tanh, gelu (gelu(u) = u·Φ(u), gelu'(u) = Φ(u) + u·ϕ(u)): 2-D Gauss–Hermite product rule with
  ``quad_order`` nodes per axis after a Cholesky factorization of the 2×2 covariance. Measured
  accuracy at the default order 96 (error relative to √(E[φ(u)²]E[φ(v)²]), any correlation):
  ≤ 1e-8 for variances k ≤ 1 (tanh) and k ≤ 4 (gelu). The integrands sharpen as the variance
  grows (tanh(√k·z) tends to a step), so larger variances need a higher order: the error
  falls roughly like exp(−c·√(order/k)), so the accurate range grows in proportion to the
  order. A variance beyond that range (k > order/96 for tanh, k > 4·order/96 for gelu)
  raises a `KernelAccuracyWarning` naming the variance and the order that would cover it
  (numpy's Gauss–Hermite rule works up to about order 360). Cost O(quad_order²)
  evaluations per pair: lower the order for large n if 1e-6 is enough (order 48: tanh
  ≤ 4e-6 at k ≤ 1, gelu ≤ 2e-8 at k ≤ 2).

Everything is float64 by default, on the device of the input, and tiled over blocks of rows:
memory is O(n1·n2) for the outputs plus O(tile) temporaries. With x2 = None only the upper
triangle is computed and mirrored, and the diagonal takes the exact per-point values.
"""

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch

from widthlab.activations import ACTIVATIONS, get_activation

Tensor = torch.Tensor

DEFAULT_QUAD_ORDER = 96
# Elements per tile: small enough that a tile and its two scratch buffers stay in cache, large
# enough that per-op dispatch overhead is negligible.
_TILE_ELEMENTS = 1 << 16
_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------- dual activations
def relu_dual(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """(E[relu(u)relu(v)], E[relu'(u)relu'(v)]) elementwise (arc-cosine kernel of degree 1)."""
    s_sin = (k11 * k22 - k12 * k12).clamp_min(0.0).sqrt()  # √(k11k22)·sin θ
    theta = torch.atan2(s_sin, k12)
    return (s_sin + (math.pi - theta) * k12) / _TWO_PI, (math.pi - theta) / _TWO_PI


def erf_dual(k11: Tensor, k22: Tensor, k12: Tensor) -> tuple[Tensor, Tensor]:
    """(E[erf(u)erf(v)], E[erf'(u)erf'(v)]) elementwise (Williams 1997)."""
    q = (1.0 + 2.0 * k11) * (1.0 + 2.0 * k22) - 4.0 * k12 * k12  # > 0 for any PSD covariance
    # arcsin(2k12/√P) = arctan(2k12/√Q) with P = (1+2k11)(1+2k22): no clamp needed.
    return (2.0 / math.pi) * torch.atan(2.0 * k12 * q.rsqrt()), (4.0 / math.pi) * q.rsqrt()


def _tanh_and_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    t = torch.tanh(x)
    return t, 1.0 - t * t


def _gelu_and_derivative(x: Tensor) -> tuple[Tensor, Tensor]:
    cdf = 0.5 * torch.erfc(x * (-1.0 / math.sqrt(2.0)))
    pdf = torch.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x * cdf, cdf + x * pdf


_QUADRATURE_ACTIVATIONS: dict[str, Callable[[Tensor], tuple[Tensor, Tensor]]] = {
    "tanh": _tanh_and_derivative,
    "gelu": _gelu_and_derivative,
}
# The largest input variance at which the default order keeps the documented 1e-8.
_ACCURATE_VARIANCE_AT_DEFAULT = {"tanh": 1.0, "gelu": 4.0}


class KernelAccuracyWarning(UserWarning):
    """A quadrature kernel evaluated beyond the variance its order is accurate for."""


def _warn_if_inaccurate(activation: str, variance: Tensor, order: int) -> None:
    limit = _ACCURATE_VARIANCE_AT_DEFAULT[activation] * order / DEFAULT_QUAD_ORDER
    largest = float(variance.max()) if variance.numel() else 0.0
    if largest > limit:
        import warnings

        needed = math.ceil(order * largest / limit)
        warnings.warn(
            f"{activation} kernel: an input variance of {largest:.3g} exceeds {limit:.3g}, the "
            f"range where Gauss–Hermite order {order} is accurate to about 1e-8; expect larger "
            f"errors, or pass quad_order={needed}",
            KernelAccuracyWarning,
            stacklevel=3,
        )


@lru_cache(maxsize=16)
def _hermite_rule(order: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of E[g(z)], z ~ N(0,1) (probabilists' Gauss–Hermite, weights sum 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    return nodes, weights / weights.sum()


def gauss_hermite_dual(
    activation: str, k11: Tensor, k22: Tensor, k12: Tensor, *, order: int = DEFAULT_QUAD_ORDER
) -> tuple[Tensor, Tensor]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) elementwise for φ = tanh or gelu by a 2-D product rule.

    With z1, z2 iid N(0,1): u = s1·z1, v = s2·(c·z1 + √(1−c²)·z2), s = √k, c the clamped
    correlation; order² evaluations of φ per pair, in chunks to bound memory.
    """
    pair = _QUADRATURE_ACTIVATIONS[activation]
    k11, k22, k12 = torch.broadcast_tensors(k11, k22, k12)
    _warn_if_inaccurate(activation, torch.maximum(k11, k22), order)
    shape = k12.shape
    s1, s2, k12 = k11.reshape(-1).sqrt(), k22.reshape(-1).sqrt(), k12.reshape(-1)
    scale = s1 * s2
    corr = torch.where(scale > 0, k12 / scale.clamp_min(1e-300), 0.0).clamp(-1.0, 1.0)
    along, across = corr * s2, (1.0 - corr * corr).sqrt() * s2
    nodes_np, weights_np = _hermite_rule(order)
    z = torch.as_tensor(nodes_np, dtype=k12.dtype, device=k12.device)
    w = torch.as_tensor(weights_np, dtype=k12.dtype, device=k12.device)
    e_phi, e_dphi = torch.empty_like(k12), torch.empty_like(k12)
    chunk = max(1, (1 << 20) // (order * order))
    for start in range(0, k12.numel(), chunk):
        sl = slice(start, start + chunk)
        f_u, df_u = pair(s1[sl, None] * z)  # [P, m], node i of z1
        v = along[sl, None, None] * z[:, None] + across[sl, None, None] * z  # [P, m, m]
        f_v, df_v = pair(v)
        e_phi[sl] = ((f_u * w) * (f_v @ w)).sum(-1)
        e_dphi[sl] = ((df_u * w) * (df_v @ w)).sum(-1)
    return e_phi.reshape(shape), e_dphi.reshape(shape)


def dual_activation(
    activation: str, k11: Tensor, k22: Tensor, k12: Tensor, *, quad_order: int = DEFAULT_QUAD_ORDER
) -> tuple[Tensor, Tensor]:
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]), (u,v) ~ N(0, [[k11,k12],[k12,k22]]), elementwise."""
    get_activation(activation)
    if activation == "relu":
        return relu_dual(k11, k22, k12)
    if activation == "erf":
        return erf_dual(k11, k22, k12)
    return gauss_hermite_dual(activation, k11, k22, k12, order=quad_order)


def _dual_diagonal(activation: str, k: Tensor, quad_order: int) -> tuple[Tensor, Tensor]:
    """Exact (E[φ(u)²], E[φ'(u)²]) for u ~ N(0, k): the diagonal of the dual activation."""
    if activation == "relu":
        return 0.5 * k, torch.full_like(k, 0.5)
    if activation == "erf":
        return (2.0 / math.pi) * torch.asin(2.0 * k / (1.0 + 2.0 * k)), (4.0 / math.pi) * (
            1.0 + 4.0 * k
        ).rsqrt()
    _warn_if_inaccurate(activation, k, quad_order)
    nodes_np, weights_np = _hermite_rule(quad_order)
    z = torch.as_tensor(nodes_np, dtype=k.dtype, device=k.device)
    w = torch.as_tensor(weights_np, dtype=k.dtype, device=k.device)
    f, df = _QUADRATURE_ACTIVATIONS[activation](k.sqrt()[:, None] * z)
    return (f * f) @ w, (df * df) @ w


# ---------------------------------------------------------------- one layer, in place on a tile
# Each step maps (K, Θ) = (Σ^{l−1}, Θ^{l−1}) on a tile to (Σ^l, Θ^l) in place; k_row / k_col are
# the per-point diagonals Σ^{l−1}(x,x). r, t are scratch buffers of the tile's shape, reused
# across layers and tiles because fresh large allocations (page faults) dominate otherwise.
def _relu_step(
    K: Tensor,
    theta_ntk: Tensor | None,
    k_row: Tensor,
    k_col: Tensor,
    r: Tensor,
    t: Tensor,
    w_var: float,
    b_var: float,
) -> None:
    scale = w_var / _TWO_PI
    torch.mul(k_row[:, None], k_col[None, :], out=r)
    r.addcmul_(K, K, value=-1.0).clamp_min_(0.0).sqrt_()  # √(k11k22)·sin θ, no arccos needed
    torch.atan2(r, K, out=t).sub_(math.pi)  # θ − π = −(π − θ)
    r.addcmul_(t, K, value=-1.0)  # √(k11k22)·(sin θ + (π−θ) cos θ)
    torch.add(K.new_tensor(b_var), r, alpha=scale, out=K)  # Σ^l
    if theta_ntk is not None:  # Θ^l = Σ^l + w²(π−θ)/(2π)·Θ^{l−1}, one fused pass
        torch.addcmul(K, t, theta_ntk, value=-scale, out=theta_ntk)


def _erf_step(
    K: Tensor,
    theta_ntk: Tensor | None,
    k_row: Tensor,
    k_col: Tensor,
    r: Tensor,
    t: Tensor,
    w_var: float,
    b_var: float,
) -> None:
    scale = w_var * 2.0 / math.pi
    torch.mul((0.5 + k_row)[:, None], (0.5 + k_col)[None, :], out=r)
    r.addcmul_(K, K, value=-1.0).rsqrt_()  # 2/√Q = (π/2)·E[φ'φ'], Q/4 = (½+k11)(½+k22) − k12²
    torch.mul(K, r, out=t).atan_()  # (π/2)·E[φφ]
    torch.add(K.new_tensor(b_var), t, alpha=scale, out=K)  # Σ^l
    if theta_ntk is not None:  # Θ^l = Σ^l + Σ̇^l·Θ^{l−1}, one fused pass
        torch.addcmul(K, r, theta_ntk, value=scale, out=theta_ntk)


def _generic_step(activation: str, quad_order: int):
    def step(K, theta_ntk, k_row, k_col, r, t, w_var, b_var) -> None:
        e_phi, e_dphi = dual_activation(
            activation, k_row[:, None], k_col[None, :], K, quad_order=quad_order
        )
        if theta_ntk is not None:
            theta_ntk.mul_(e_dphi).add_(e_phi).mul_(w_var).add_(b_var)
        torch.mul(e_phi, w_var, out=K).add_(b_var)

    return step


# ---------------------------------------------------------------------------------- recursion
def _as_points(x: Tensor, dtype: torch.dtype | None) -> Tensor:
    if x.ndim != 2:
        raise ValueError(f"inputs must be 2-D [n_points, input_dim]; got shape {tuple(x.shape)}")
    return x.to(dtype=dtype or x.dtype)


def _diagonal_recursion(
    activation: str, x: Tensor, depth: int, w_var: float, b_var: float, quad_order: int
) -> tuple[list[Tensor], list[Tensor]]:
    """Per-point Σ^l(x,x) and Θ^l(x,x) for l = 1..L+1 (index l−1), from the exact diagonals."""
    sigma = [w_var * (x * x).sum(1) / x.shape[1] + b_var]
    theta = [sigma[0]]
    for _ in range(depth):
        e_phi, e_dphi = _dual_diagonal(activation, sigma[-1], quad_order)
        sigma.append(w_var * e_phi + b_var)
        theta.append(sigma[-1] + w_var * e_dphi * theta[-1])
    return sigma, theta


def _recursion(
    x1: Tensor,
    x2: Tensor | None,
    depth: int,
    activation: str,
    w_std: float,
    b_std: float,
    tile_rows: int | None,
    quad_order: int,
    dtype: torch.dtype | None,
    with_ntk: bool,
) -> tuple[Tensor, Tensor | None]:
    get_activation(activation)  # ValueError naming the allowed activations
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1 (number of hidden layers); got {depth!r}")
    if tile_rows is not None and tile_rows < 1:
        raise ValueError(f"tile_rows must be >= 1; got {tile_rows!r}")
    x1 = _as_points(x1, dtype)
    symmetric = x2 is None or x2 is x1
    x2 = x1 if x2 is None else _as_points(x2, x1.dtype)
    if x2.shape[1] != x1.shape[1]:
        raise ValueError(f"input dims differ: x1 {tuple(x1.shape)}, x2 {tuple(x2.shape)}")
    symmetric = symmetric or (x1.shape == x2.shape and torch.equal(x1, x2))
    w_var, b_var = float(w_std) ** 2, float(b_std) ** 2
    n1, n2 = x1.shape[0], x2.shape[0]
    step = {"relu": _relu_step, "erf": _erf_step}.get(activation) or _generic_step(
        activation, quad_order
    )
    sig1, th1 = _diagonal_recursion(activation, x1, depth, w_var, b_var, quad_order)
    sig2 = (
        sig1
        if symmetric
        else _diagonal_recursion(activation, x2, depth, w_var, b_var, quad_order)[0]
    )

    nngp = torch.empty(n1, n2, dtype=x1.dtype, device=x1.device)
    ntk = torch.empty_like(nngp) if with_ntk else None
    budget = tile_rows * n2 if tile_rows else max(_TILE_ELEMENTS, n2)
    scratch = torch.empty(2, budget, dtype=x1.dtype, device=x1.device)
    x2t = x2.T
    r0 = 0
    while r0 < n1:
        c0 = r0 if symmetric else 0  # symmetric: upper triangle only, mirrored below
        cols = n2 - c0
        r1 = min(n1, r0 + (tile_rows or max(1, budget // cols)))
        rows = r1 - r0
        K = nngp[r0:r1, c0:]
        theta = ntk[r0:r1, c0:] if ntk is not None else None
        r, t = (buf[: rows * cols].view(rows, cols) for buf in scratch)
        torch.mm(x1[r0:r1], x2t[:, c0:], out=K).mul_(w_var / x1.shape[1])
        if b_var:
            K.add_(b_var)
        for layer in range(depth + 1):
            if layer:
                step(K, theta, sig1[layer - 1][r0:r1], sig2[layer - 1][c0:], r, t, w_var, b_var)
            elif theta is not None:
                theta.copy_(K)
            if symmetric:  # exact diagonal: no arccos/asin of a correlation of 1 ± eps
                K[:, :rows].diagonal().copy_(sig1[layer][r0:r1])
                if theta is not None:
                    theta[:, :rows].diagonal().copy_(th1[layer][r0:r1])
        if symmetric:
            for out in (nngp, ntk) if ntk is not None else (nngp,):
                block = out[r0:r1, r0:r1]
                lower = torch.tril_indices(rows, rows, -1, device=out.device)
                block[lower[0], lower[1]] = block[lower[1], lower[0]]
                out[r1:, r0:r1].copy_(out[r0:r1, r1:].T)
        r0 = r1
    return nngp, ntk


def nngp_and_ntk(
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    depth: int,
    activation: str,
    w_std: float = 1.0,
    b_std: float = 0.0,
    tile_rows: int | None = None,
    quad_order: int = DEFAULT_QUAD_ORDER,
    dtype: torch.dtype | None = torch.float64,
) -> tuple[Tensor, Tensor]:
    """(NNGP, NTK) = (Σ^{L+1}(x1, x2), Θ^{L+1}(x1, x2)), both [n1, n2], from one recursion.

    NTK parameterization, scalar output, depth = L hidden layers, weights and biases N(0,1),
    z^l = (w_std/√fan_in)·W^l h^{l−1} + b_std·b^l, h^0 = x unnormalized (Σ¹ = w_std²·x·x'/D +
    b_std²), readout with the same w_std, b_std; NTK without a factor ½ (see module docstring).

    x1: [n1, D]; x2: [n2, D] or None for x2 = x1 (upper triangle + exact diagonal). activation:
    one of relu, erf (closed forms), tanh, gelu (Gauss–Hermite with quad_order nodes per axis).
    tile_rows: rows per tile (default: about 65k elements per tile); the result does not depend
    on it beyond rounding. dtype: computation dtype (float64 by default; None keeps x1's dtype).
    The device is that of x1.
    """
    nngp, ntk = _recursion(
        x1, x2, depth, activation, w_std, b_std, tile_rows, quad_order, dtype, with_ntk=True
    )
    assert ntk is not None
    return nngp, ntk


def nngp_kernel(
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    depth: int,
    activation: str,
    w_std: float = 1.0,
    b_std: float = 0.0,
    tile_rows: int | None = None,
    quad_order: int = DEFAULT_QUAD_ORDER,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """NNGP kernel Σ^{L+1}(x1, x2) = E[f(x1)f(x2)] at init; arguments as in `nngp_and_ntk`.

    Runs the shared recursion without the Θ updates.
    """
    return _recursion(
        x1, x2, depth, activation, w_std, b_std, tile_rows, quad_order, dtype, with_ntk=False
    )[0]


def ntk_kernel(
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    depth: int,
    activation: str,
    w_std: float = 1.0,
    b_std: float = 0.0,
    tile_rows: int | None = None,
    quad_order: int = DEFAULT_QUAD_ORDER,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """NTK Θ^{L+1}(x1, x2) = Σ_p ∂f(x1)/∂p·∂f(x2)/∂p (no ½); arguments as in `nngp_and_ntk`."""
    return nngp_and_ntk(
        x1,
        x2,
        depth=depth,
        activation=activation,
        w_std=w_std,
        b_std=b_std,
        tile_rows=tile_rows,
        quad_order=quad_order,
        dtype=dtype,
    )[1]


def random_features_kernel(
    x1: Tensor,
    x2: Tensor | None = None,
    *,
    activation: str,
    tile_rows: int | None = None,
    quad_order: int = DEFAULT_QUAD_ORDER,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """Infinite-width kernel of the random-features model f(x) = (1/√d)·Σ_k β_k σ(xᵀα_k).

    With α_k ~ N(0, I/D) and β_k ~ N(0, 1): k(x,x') = E_α[σ(xᵀα)σ(x'ᵀα)], (xᵀα, x'ᵀα) having
    covariance x·x'/D. This is exactly the depth-1 NNGP with w_std = 1, b_std = 0, so it is
    computed by the same code (`nngp_kernel`); it is the kernel of the infinite-width line of the
    random-features double-descent study (kernel ridge(less) regression).
    """
    return nngp_kernel(
        x1,
        x2,
        depth=1,
        activation=activation,
        w_std=1.0,
        b_std=0.0,
        tile_rows=tile_rows,
        quad_order=quad_order,
        dtype=dtype,
    )


__all__ = [
    "ACTIVATIONS",
    "DEFAULT_QUAD_ORDER",
    "KernelAccuracyWarning",
    "dual_activation",
    "erf_dual",
    "gauss_hermite_dual",
    "nngp_and_ntk",
    "nngp_kernel",
    "ntk_kernel",
    "random_features_kernel",
    "relu_dual",
]
