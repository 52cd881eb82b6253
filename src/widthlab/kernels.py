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

The dual activations E[φ(u)φ(v)], E[φ'(u)φ'(v)] the recursion needs, and their accuracy,
are in `widthlab.dual_activations`.

Everything is float64 by default, on the device of the input, and tiled over blocks of rows:
memory is O(n1·n2) for the outputs plus O(tile) temporaries. With x2 = None only the upper
triangle is computed and mirrored, and the diagonal takes the exact per-point values.
"""

import math

import torch

from widthlab.activations import ACTIVATIONS, get_activation
from widthlab.dual_activations import (
    DEFAULT_QUAD_ORDER,
    KernelAccuracyWarning,
    _dual_diagonal,
    dual_activation,
    erf_dual,
    gauss_hermite_dual,
    relu_dual,
)

Tensor = torch.Tensor

# Elements per tile: small enough that a tile and its two scratch buffers stay in cache, large
# enough that per-op dispatch overhead is negligible.
_TILE_ELEMENTS = 1 << 16
_TWO_PI = 2.0 * math.pi


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
