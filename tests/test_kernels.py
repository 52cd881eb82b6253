"""Tests of widthlab.kernels against independent numpy/scipy integration of the recursion."""

import math
import re

import numpy as np
import pytest
import torch
from scipy import integrate, special

from widthlab.kernels import (
    DEFAULT_QUAD_ORDER,
    dual_activation,
    gauss_hermite_dual,
    nngp_and_ntk,
    nngp_kernel,
    ntk_kernel,
    random_features_kernel,
)

# ----------------------------------------------------------------- independent reference (scipy)
# E[φ(u)φ(v)] with u = s1·z1, v = a(z1) + b·z2, a = c·s2·z1, b = s2·√(1−c²): the inner
# expectation over z2 is a textbook Gaussian identity (closed form for relu, erf, gelu; adaptive
# quad for tanh) and the outer one over z1 is adaptive quad, split where φ(s1·z1) has its kink.
_PDF = 1.0 / math.sqrt(2.0 * math.pi)
_QUAD = {"epsabs": 0.0, "epsrel": 1e-13, "limit": 400}


def _npdf(t):
    return _PDF * np.exp(-0.5 * t * t)


def _inner(act: str, a: float, b: float) -> tuple[float, float]:
    """(E[φ(a + bZ)], E[φ'(a + bZ)]), Z ~ N(0, 1), b > 0."""
    if act == "relu":
        return a * special.ndtr(a / b) + b * _npdf(a / b), special.ndtr(a / b)
    if act == "erf":
        r = math.sqrt(1.0 + 2.0 * b * b)
        return special.erf(a / r), 2.0 / math.sqrt(math.pi) * math.exp(-a * a / r**2) / r
    if act == "gelu":
        r = math.sqrt(1.0 + b * b)
        return (
            a * special.ndtr(a / r) + b * b * _npdf(a / r) / r,
            special.ndtr(a / r) + _npdf(a / r) / r * a / r**2,
        )
    raise AssertionError(act)


def _phi(act: str, t: float) -> tuple[float, float]:
    return {
        "relu": lambda: (max(t, 0.0), float(t > 0)),
        "erf": lambda: (special.erf(t), 2.0 / math.sqrt(math.pi) * math.exp(-t * t)),
        "tanh": lambda: (math.tanh(t), 1.0 / math.cosh(t) ** 2),
        "gelu": lambda: (t * special.ndtr(t), special.ndtr(t) + t * _npdf(t)),
    }[act]()


def _tanh_trapezoid(s1: float, a_coef: float, b: float) -> tuple[float, float]:
    """2-D trapezoid rule, h = 0.04 on [−12, 12]²: for integrands analytic in a strip of half-width
    d (here d ≥ π/(2·max(s1, s2)) ≥ 0.7 for variances ≤ 2) the error is ~exp(−2πd/h) ≈ 1e-48 plus
    the truncation ~exp(−72); a rule unrelated to the module's Gauss–Hermite nodes."""
    z = np.arange(-12.0, 12.0 + 1e-9, 0.04)
    w = 0.04 * _npdf(z)
    u = np.tanh(s1 * z)
    v = np.tanh(a_coef * z[:, None] + b * z[None, :])
    return float(w @ (u * (v @ w))), float(w @ ((1 - u * u) * ((1 - v * v) @ w)))


def ref_dual(act: str, k11: float, k22: float, k12: float) -> tuple[float, float]:
    s1, s2 = math.sqrt(k11), math.sqrt(k22)
    c = 1.0 if k11 == k22 == k12 else k12 / (s1 * s2)
    a_coef, b = c * s2, s2 * math.sqrt(max(1.0 - c * c, 0.0))
    if act == "tanh":
        return _tanh_trapezoid(s1, a_coef, b)
    lo = 0.0 if act == "relu" else -40.0  # relu(s1·z1) = 0 for z1 < 0
    out = []
    for i in (0, 1):
        if b == 0.0:  # u and v proportional: a 1-D integral
            g = lambda z, i=i: _npdf(z) * _phi(act, s1 * z)[i] * _phi(act, a_coef * z)[i]  # noqa: E731
        else:
            g = lambda z, i=i: _npdf(z) * _phi(act, s1 * z)[i] * _inner(act, a_coef * z, b)[i]  # noqa: E731
        out.append(sum(integrate.quad(g, p, q, **_QUAD)[0] for p, q in ((lo, 0.0), (0.0, 40.0))))
    return out[0], out[1]


def ref_kernels(act, x, y, depth, w_std, b_std):
    """(NNGP, NTK) for one pair of points, layer by layer with scipy."""
    w2, b2, dim = w_std**2, b_std**2, len(x)
    kxx, kyy, kxy = (w2 * float(p @ q) / dim + b2 for p, q in ((x, x), (y, y), (x, y)))
    theta = kxy
    for _ in range(depth):
        e_xy, de_xy = ref_dual(act, kxx, kyy, kxy)
        kxx, kyy = (
            w2 * ref_dual(act, kxx, kxx, kxx)[0] + b2,
            w2 * ref_dual(act, kyy, kyy, kyy)[0] + b2,
        )
        kxy = w2 * e_xy + b2
        theta = kxy + w2 * de_xy * theta
    return kxy, theta


def _points(n: int, dim: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(
        n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _scaled_error(k: torch.Tensor, ref: torch.Tensor) -> float:
    """Max |k − ref| relative to max |ref| (kernel entries are compared on the kernel's scale)."""
    return float((k - ref).abs().max() / ref.abs().max())


# ---------------------------------------------------------------------- closed forms, ≤ 1e-10
@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_closed_forms_match_scipy_integration(act, depth):
    x = _points(4, 5, seed=depth)
    x[1] = x[0] + 0.02 * x[1]  # nearly parallel pair (correlation → 1 is where θ is delicate)
    x[3] = -0.9 * x[2] + 0.05 * x[1]  # nearly anti-parallel pair
    w_std, b_std = (1.4, 0.3) if depth != 2 else (1.0, 0.0)
    nngp, ntk = nngp_and_ntk(
        x, x[[1, 0, 3, 2]], depth=depth, activation=act, w_std=w_std, b_std=b_std
    )
    xs = x.numpy()
    for i, j in enumerate([1, 0, 3, 2]):
        ref_nngp, ref_ntk = ref_kernels(act, xs[i], xs[j], depth, w_std, b_std)
        assert nngp[i, i].item() == pytest.approx(ref_nngp, rel=1e-10, abs=1e-12)
        assert ntk[i, i].item() == pytest.approx(ref_ntk, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("act", ["relu", "erf", "tanh", "gelu"])
def test_kernel_diagonal_matches_scipy(act):
    x = _points(2, 3, seed=7, scale=0.6)  # variances < 1: inside the stated quadrature range
    nngp, ntk = nngp_and_ntk(x, depth=2, activation=act, w_std=0.9, b_std=0.1)
    assert nngp.diagonal().max() < 1.0
    for i in range(2):
        ref_nngp, ref_ntk = ref_kernels(act, x[i].numpy(), x[i].numpy(), 2, 0.9, 0.1)
        assert nngp[i, i].item() == pytest.approx(ref_nngp, rel=1e-9)
        assert ntk[i, i].item() == pytest.approx(ref_ntk, rel=1e-9)


# ---------------------------------------------------------------- quadrature (tanh, gelu), 1e-8
# The stated accuracy of the default order: ≤ 1e-8 relative to √(E[φ(u)²]E[φ(v)²]) for variances
# up to 1 (tanh) and 4 (gelu), at any correlation.
@pytest.mark.parametrize(("act", "k_max"), [("tanh", 1.0), ("gelu", 4.0)])
def test_quadrature_dual_accuracy_at_default_order(act, k_max):
    cases = [
        (0.05, 0.3, 0.2),
        (0.5 * k_max, 0.3, -0.6),
        (k_max, 0.7 * k_max, 0.97),
        (k_max, k_max, -0.999),
        (0.6 * k_max, k_max, 0.9999),
        (k_max, k_max, 0.0),
    ]
    for k11, k22, c in cases:
        k12 = c * math.sqrt(k11 * k22)
        e, de = gauss_hermite_dual(
            act, *(torch.tensor(v, dtype=torch.float64) for v in (k11, k22, k12))
        )
        r, dr = ref_dual(act, k11, k22, k12)
        scale = math.sqrt(ref_dual(act, k11, k11, k11)[0] * ref_dual(act, k22, k22, k22)[0])
        dscale = math.sqrt(ref_dual(act, k11, k11, k11)[1] * ref_dual(act, k22, k22, k22)[1])
        assert abs(e.item() - r) <= 1e-8 * scale, (k11, k22, c)
        assert abs(de.item() - dr) <= 1e-8 * dscale, (k11, k22, c)


def test_quadrature_order_matters_for_large_variance():
    # The tolerance above is not vacuous: a low order misses it, and large variances need more.
    k = torch.tensor([1.0, 1.0, 0.97], dtype=torch.float64)
    r = ref_dual("tanh", 1.0, 1.0, 0.97)[1]
    assert abs(gauss_hermite_dual("tanh", *k, order=32)[1].item() - r) > 1e-6
    assert abs(gauss_hermite_dual("tanh", *k, order=DEFAULT_QUAD_ORDER)[1].item() - r) < 1e-8


@pytest.mark.parametrize("act", ["tanh", "gelu"])
def test_quadrature_kernels_match_scipy(act):
    # variances stay below 1 here, inside the stated range for tanh
    x = _points(3, 4, seed=11, scale=0.8)
    nngp, ntk = nngp_and_ntk(x, depth=2, activation=act, w_std=0.9, b_std=0.2)
    assert nngp.diagonal().max() < 1.0
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        ref_nngp, ref_ntk = ref_kernels(act, x[i].numpy(), x[j].numpy(), 2, 0.9, 0.2)
        assert nngp[i, j].item() == pytest.approx(ref_nngp, rel=1e-8, abs=1e-10)
        assert ntk[i, j].item() == pytest.approx(ref_ntk, rel=1e-8, abs=1e-10)


def test_dual_activation_dispatch_matches_reference():
    k11, k22, k12 = (torch.tensor(v, dtype=torch.float64) for v in (0.7, 1.3, -0.4))
    for act in ["relu", "erf", "tanh", "gelu"]:
        e, de = dual_activation(act, k11, k22, k12)
        r, dr = ref_dual(act, 0.7, 1.3, -0.4)
        assert e.item() == pytest.approx(r, rel=1e-9, abs=1e-12), act
        assert de.item() == pytest.approx(dr, rel=1e-9, abs=1e-12), act


# ------------------------------------------------------------------------------- Monte Carlo
def test_nngp_matches_monte_carlo_of_wide_depth2_networks():
    torch.manual_seed(0)
    dim, width, n_nets, chunk, w_std, b_std = 6, 256, 2000, 250, 1.3, 0.4
    x = _points(3, dim, seed=3)
    samples = []
    for _ in range(n_nets // chunk):
        w1 = torch.randn(chunk, width, dim, dtype=torch.float64)
        w2 = torch.randn(chunk, width, width, dtype=torch.float64)
        b1, b2 = (torch.randn(chunk, width, 1, dtype=torch.float64) for _ in range(2))
        h1 = torch.relu(w_std / math.sqrt(dim) * w1 @ x.T + b_std * b1)
        h2 = torch.relu(w_std / math.sqrt(width) * w2 @ h1 + b_std * b2)  # [chunk, width, 3]
        # The readout averaged out exactly: E_v[f(x)f(x')] = w²/width·h2(x)·h2(x') + b².
        samples.append(w_std**2 / width * h2.transpose(1, 2) @ h2 + b_std**2)
    samples = torch.cat(samples)
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(n_nets)
    k = nngp_kernel(x, depth=2, activation="relu", w_std=w_std, b_std=b_std)
    assert ((k - mean).abs() <= 4 * se).all(), (k - mean) / se
    assert (se < 0.02 * k.abs().max()).all()  # the check has power


# ----------------------------------------------------------------------- structural properties
@pytest.mark.parametrize("act", ["relu", "erf", "tanh", "gelu"])
def test_symmetric_psd_and_x2_none_equals_x1(act):
    x = _points(40 if act in ("relu", "erf") else 12, 7, seed=5)
    nngp, ntk = nngp_and_ntk(x, depth=3, activation=act, w_std=1.2, b_std=0.1, quad_order=24)
    nngp2, ntk2 = nngp_and_ntk(
        x, x.clone(), depth=3, activation=act, w_std=1.2, b_std=0.1, quad_order=24
    )
    for k, k2 in ((nngp, nngp2), (ntk, ntk2)):
        assert torch.equal(k, k.T)
        assert torch.equal(k, k2)
        eig = torch.linalg.eigvalsh(k)
        assert eig.min() >= -1e-10 * eig.max()


@pytest.mark.parametrize("act", ["relu", "erf", "tanh"])
def test_general_path_agrees_with_symmetric_path(act):
    # x2 = [x1; y] takes the non-symmetric code path (no mirroring, no exact diagonal).
    x, y = _points(9, 4, seed=1), _points(5, 4, seed=2)
    # The Cholesky product rule is not symmetric under x ↔ x', so the mirrored lower triangle
    # differs from a direct evaluation by the quadrature error (≤ 1e-8 in the stated range).
    tol = 1e-13 if act != "tanh" else 1e-8
    sym = nngp_and_ntk(x, depth=2, activation=act, w_std=0.8, b_std=0.5)
    gen = nngp_and_ntk(x, torch.cat([x, y]), depth=2, activation=act, w_std=0.8, b_std=0.5)
    off = ~torch.eye(9, dtype=torch.bool)
    for k_sym, k_gen in zip(sym, gen, strict=True):
        assert _scaled_error(k_gen[:, :9][off], k_sym[off]) < tol
        # relu on the diagonal: atan2 of a noisy √(k11k22 − k12²) ≈ 1e-8, hence the exact diagonal
        assert _scaled_error(k_gen[:, :9].diagonal(), k_sym.diagonal()) < 1e-7


@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_tiling_does_not_change_the_result(act, symmetric):
    x, y = _points(37, 6, seed=4), _points(23, 6, seed=8)
    x2 = None if symmetric else y
    ref = nngp_and_ntk(x, x2, depth=3, activation=act, w_std=1.5, b_std=0.2, tile_rows=37)
    for tile_rows in (1, 5, 16):
        tiled = nngp_and_ntk(
            x, x2, depth=3, activation=act, w_std=1.5, b_std=0.2, tile_rows=tile_rows
        )
        for a, b in zip(tiled, ref, strict=True):
            assert _scaled_error(a, b) < 1e-14


def test_single_functions_agree_with_joint_recursion():
    x, y = _points(8, 3, seed=9), _points(6, 3, seed=10)
    kw = {"depth": 2, "activation": "erf", "w_std": 0.8, "b_std": 0.3}
    nngp, ntk = nngp_and_ntk(x, y, **kw)
    assert torch.equal(nngp_kernel(x, y, **kw), nngp)
    assert torch.equal(ntk_kernel(x, y, **kw), ntk)


@pytest.mark.parametrize("act", ["relu", "erf", "gelu"])
def test_random_features_kernel_is_depth1_nngp(act):
    x, y = _points(6, 5, seed=12), _points(4, 5, seed=13)
    expected = nngp_kernel(x, y, depth=1, activation=act, w_std=1.0, b_std=0.0)
    assert torch.equal(random_features_kernel(x, y, activation=act), expected)
    # and it is E_α[σ(xᵀα)σ(yᵀα)], α ~ N(0, I/D): its entries are the dual at covariance x·y/D
    e = dual_activation(act, (x * x).sum(1)[:, None] / 5, (y * y).sum(1)[None, :] / 5, x @ y.T / 5)
    assert _scaled_error(expected, e[0]) < 1e-13


@pytest.mark.parametrize("depth", [1, 3])
def test_relu_nngp_and_ntk_are_positively_homogeneous(depth):
    x, y, a = _points(5, 4, seed=14), _points(3, 4, seed=15), 2.5
    k, t = nngp_and_ntk(x, y, depth=depth, activation="relu", w_std=1.3)
    ka, ta = nngp_and_ntk(a * x, y * a, depth=depth, activation="relu", w_std=1.3)
    assert _scaled_error(ka, a**2 * k) < 1e-14
    assert _scaled_error(ta, a**2 * t) < 1e-14
    kb = nngp_kernel(x, y, depth=depth, activation="relu", w_std=1.3, b_std=0.5)
    kab = nngp_kernel(a * x, a * y, depth=depth, activation="relu", w_std=1.3, b_std=0.5)
    assert _scaled_error(kab, a**2 * kb) > 1e-3  # a bias breaks homogeneity


def test_known_values_relu_depth1():
    # Orthogonal unit-norm inputs in D = 2: Σ¹ = [[1/2, 0], [0, 1/2]], θ = π/2,
    # NNGP = (1/2)/(2π), NTK = NNGP + (1/4)·0 off-diagonal; diagonal NNGP = 1/4, NTK = 1/4 + 1/4.
    x = torch.eye(2, dtype=torch.float64)
    nngp, ntk = nngp_and_ntk(x, depth=1, activation="relu")
    off = 1 / (4 * math.pi)
    torch.testing.assert_close(nngp, torch.tensor([[0.25, off], [off, 0.25]], dtype=torch.float64))
    torch.testing.assert_close(ntk, torch.tensor([[0.5, off], [off, 0.5]], dtype=torch.float64))


def test_dtype_and_device_handling():
    x = _points(4, 3, seed=16).float()
    k = nngp_kernel(x, depth=1, activation="relu")
    assert k.dtype == torch.float64 and k.device == x.device
    assert nngp_kernel(x, depth=1, activation="relu", dtype=None).dtype == torch.float32


# ---------------------------------------------------------------------------------- bad input
def test_unknown_activation_names_allowed_values():
    with pytest.raises(ValueError, match=r"allowed: \['erf', 'gelu', 'relu', 'tanh'\]"):
        nngp_kernel(_points(2, 2, seed=0), depth=1, activation="sigmoid")


@pytest.mark.parametrize("depth", [0, -1, 1.5])
def test_bad_depth_names_depth(depth):
    with pytest.raises(ValueError, match="depth"):
        ntk_kernel(_points(2, 2, seed=0), depth=depth, activation="relu")


def test_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        nngp_kernel(torch.ones(3), depth=1, activation="relu")
    with pytest.raises(ValueError, match="input dims"):
        nngp_kernel(torch.ones(3, 2), torch.ones(3, 4), depth=1, activation="relu")


def test_default_quadrature_order_is_documented():
    import widthlab.dual_activations as dual

    assert f"default order {DEFAULT_QUAD_ORDER}" in dual.__doc__


def test_a_variance_beyond_the_accurate_range_warns_naming_the_order_that_covers_it():
    import warnings

    from widthlab.kernels import KernelAccuracyWarning

    x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nngp_and_ntk(x, depth=2, activation="tanh", w_std=0.4)  # variances below 1: silent
    with pytest.warns(
        KernelAccuracyWarning,
        match=r"tanh kernel: an input variance of .* "
        r"exceeds 1, .* pass quad_order=\d+",
    ):
        nngp_and_ntk(x, depth=2, activation="tanh", w_std=1.2)
    # The warning is honest: at variance 3 the default order errs beyond 1e-8, and the order
    # it names brings the error back (against the finest rule there is).
    k = (torch.tensor([3.0], dtype=torch.float64),) * 2 + (
        torch.tensor([2.95], dtype=torch.float64),
    )
    fine = gauss_hermite_dual("tanh", *k, order=360)[1].item()
    with pytest.warns(KernelAccuracyWarning, match=r"pass quad_order=(\d+)") as record:
        coarse = gauss_hermite_dual("tanh", *k)[1].item()
    assert abs(coarse - fine) / abs(fine) > 1e-8
    order = int(re.search(r"quad_order=(\d+)", str(record[0].message)).group(1))
    assert abs(gauss_hermite_dual("tanh", *k, order=order)[1].item() - fine) / abs(fine) < 1e-8
    with pytest.warns(KernelAccuracyWarning, match=r"it would take order \d+, beyond the 360"):
        gauss_hermite_dual("tanh", *(torch.tensor([8.0], dtype=torch.float64),) * 3)


def test_relu_ntk_of_coincident_pairs_carries_about_1e_8_as_documented():
    # Off-diagonal entries of identical points: k11·k22 − k12² cancels, so θ (and the NTK's
    # E[φ'φ'] term) is good to ~√ε, while the exact diagonal is exact.
    x = torch.randn(50, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _, ntk = nngp_and_ntk(x, x.clone(), depth=3, activation="relu")  # not detected as symmetric
    _, exact = nngp_and_ntk(x, depth=3, activation="relu")
    err = (ntk.diagonal() - exact.diagonal()).abs() / exact.diagonal()
    assert err.max() < 1e-7
