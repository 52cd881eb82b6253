"""Kernels of finite networks: the empirical NTK (the NNGP of finite networks is in
`widthlab.network_nngp`).

Conventions (n1, n2 points; P parameters; k = out_features):

* Empirical NTK, Θ(x, x') = Σ_o Σ_p ∂f_o(x)/∂p · ∂f_o(x')/∂p over every parameter p (weights and
  biases, including those multiplied by 0), with no factor ½. For k > 1 outputs it is the
  trace over outputs Σ_o Θ_oo(x, x'); divide by k for the per-output mean, which is what the
  infinite-width kernel Θ^∞ (diagonal in the outputs) is compared with.
"""

from __future__ import annotations

import math
import threading

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from widthlab.activations import get_activation
from widthlab.checks import check_choice, check_int, check_nonnegative
from widthlab.models.mlp import MLP, DenseLayer, ForwardCache

NTK_METHODS = ("auto", "structured", "jacobian")


def activation_derivative_(z: torch.Tensor, activation: str) -> torch.Tensor:
    """Overwrite z with φ'(z) and return it (in place: these buffers are n × width).

    relu' = 1[z > 0] (0 at 0, like autograd), erf' = (2/√π) e^{−z²}, tanh' = 1 − tanh²,
    gelu' = Φ(z) + z·ϕ(z) with Φ, ϕ the standard normal CDF and density (exact GELU).
    """
    if activation == "relu":
        return z.gt_(0)
    if activation == "erf":
        return z.square_().neg_().exp_().mul_(2.0 / math.sqrt(math.pi))
    if activation == "tanh":
        return z.tanh_().square_().neg_().add_(1.0)
    if activation == "gelu":
        density = torch.exp(z.square().mul_(-0.5)).mul_(1.0 / math.sqrt(2.0 * math.pi))
        density.mul_(z)
        return z.mul_(1.0 / math.sqrt(2.0)).erf_().add_(1.0).mul_(0.5).add_(density)
    get_activation(activation)  # raises the ValueError listing the allowed names
    raise ValueError(f"activation={activation!r} has no derivative here")


def _row_blocks(n: int) -> list[tuple[int, int]]:
    """The row blocks of `_gram`'s symmetric case: up to 4, at least 128 rows each."""
    blocks = max(1, min(4, n // 128))
    step = -(-n // blocks)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def _gram(a: torch.Tensor, b: torch.Tensor | None, out: torch.Tensor) -> torch.Tensor:
    """out ← a bᵀ; with b None only the upper block triangle of a aᵀ is written.

    The symmetric case skips the blocks below the diagonal (a syrk, which torch does not
    expose): with 4 row blocks that is 10/16 of the flops and measured ~20% faster at n = 512.
    Entries below the block diagonal are left untouched (`_mirror_blocks` fills them).
    """
    if b is not None:
        return torch.mm(a, b.T, out=out)
    for start, stop in _row_blocks(a.shape[0]):
        torch.mm(a[start:stop], a[start:].T, out=out[start:stop, start:])
    return out


def _mirror_blocks(out: torch.Tensor) -> torch.Tensor:
    """Make `out` exactly symmetric from its upper triangle: the blocks below `_gram`'s block
    diagonal become the transposes of those above, and so does each diagonal block's lower
    triangle. A diagonal block is one GEMM of a row block with itself, whose (i, j) and (j, i)
    entries BLAS need not sum in the same order (on an AMD EPYC they differed by up to 1.3e-16
    relative); copying them makes Θ symmetric bit for bit on every machine."""
    for start, stop in _row_blocks(out.shape[0]):
        out[stop:, start:stop].copy_(out[start:stop, stop:].T)
        _mirror_upper_(out[start:stop, start:stop])
    return out


def _mirror_upper_(block: torch.Tensor, tile: int = 256) -> None:
    """Overwrite the strict lower triangle of the square `block` with its upper one's mirror,
    in tiles of `tile` rows (scratch of tile² entries, not of the block's size)."""
    m = block.shape[0]
    for r0 in range(0, m, tile):
        r1 = min(r0 + tile, m)
        block[r1:, r0:r1].copy_(block[r0:r1, r1:].T)
        square = block[r0:r1, r0:r1]
        square.copy_(torch.triu(square).add_(torch.tril(square.T, -1)))


# Out-of-place activations that can write into a given buffer (gelu has no out= variant).
_ACTIVATION_INTO = {
    "relu": lambda z, out: torch.clamp(z, min=0, out=out),
    "erf": lambda z, out: torch.erf(z, out=out),
    "tanh": lambda z, out: torch.tanh(z, out=out),
}
_workspace = threading.local()


def _buffer(
    name: tuple, shape: tuple[int, ...], options: dict, zeroed: bool = False
) -> torch.Tensor:
    """A scratch tensor kept between calls of the structured NTK (per thread).

    Every call allocates the same few n × width activations; a fresh large allocation is
    page-faulted in on every call, which at width 16384 cost as much as the matmuls. The
    buffers are reused while the sizes stay the same and dropped when they change, so at most
    one call's worth is held. Contents are scratch: callers overwrite before reading
    (`zeroed`: filled with zeros when made, so parts a caller never writes stay finite).
    """
    key = (name, tuple(shape), options["dtype"], options["device"])
    store = getattr(_workspace, "buffers", None)
    if store is None:
        store = _workspace.buffers = {}
    if key not in store:
        store[key] = torch.zeros(shape, **options) if zeroed else torch.empty(shape, **options)
    return store[key]


def _forward_into(model: MLP, x: torch.Tensor, tag: int, options: dict) -> ForwardCache:
    """`MLP.forward_with_cache` without the readout, writing z_l and h_l into reused buffers."""
    layer_inputs, pre_activations = [x], []
    into = _ACTIVATION_INTO.get(model.activation)
    h = x
    for index, layer in enumerate(model.layers[:-1]):
        shape = (x.shape[0], layer.out_features)
        z = _buffer(("z", tag, index), shape, options)
        torch.addmm(layer.bias_multiplier * layer.bias, h, layer.weight.T,
                    alpha=layer.weight_multiplier, out=z)  # fmt: skip
        h = model.phi(z) if into is None else into(z, _buffer(("h", tag, index), shape, options))
        pre_activations.append(z)
        layer_inputs.append(h)
    return ForwardCache(layer_inputs, pre_activations, None)


def release_workspace() -> None:
    """Drop the structured NTK's scratch buffers held by this thread."""
    _workspace.buffers = {}


def _structured_ntk(
    model: MLP,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    weights: list[float] | None = None,
) -> torch.Tensor:
    """Θ = Σ_l (G_l G_lᵀ) ⊙ (c_l² H_{l−1} H_{l−1}ᵀ + β_l²), never forming the n × P Jacobian.

    With `weights` (λ per parameter, in `parameters()` order: W_1, b_1, W_2, …) each layer's
    term is (G_l G_lᵀ) ⊙ (λ_{W_l} c_l² H_{l−1} H_{l−1}ᵀ + λ_{b_l} β_l²).

    G_l = ∂f/∂z_l [n, k, n_l] by the backward recursion G_{L+1} = I_k,
    G_{l−1} = (G_l · c_l W_l) ⊙ φ'(z_{l−1}); H_{l−1} the input of layer l; c_l, β_l its weight
    and bias multipliers (ntk: w_std/√fan_in and b_std; standard: 1 and 1). Summing over the
    outputs o makes Σ_o G_l^o G_l^oᵀ a single Gram of G_l viewed as [n, k·n_l]; the readout's
    G_{L+1} = I_k contributes k·(c² H_L H_Lᵀ + β²).
    """
    layers = model.layers
    k = model.out_features
    sets = [x1] if x2 is None else [x1, x2]
    n1, n2 = x1.shape[0], sets[-1].shape[0]
    options = {"dtype": x1.dtype, "device": x1.device}
    signature = (n1, n2, tuple(layer.out_features for layer in layers), x2 is None)
    if getattr(_workspace, "signature", None) != signature:
        release_workspace()
        _workspace.signature = signature
    caches = [_forward_into(model, x, tag, options) for tag, x in enumerate(sets)]
    theta = torch.empty(n1, n2, **options)  # the readout's term, added first, fills it
    # In the symmetric case only the upper block triangle of these Grams, and so of Θ, is
    # computed; Θ's lower one is overwritten by its mirror at the end. Zeroed when made, so
    # the blocks never written stay finite (and free of slow subnormals) across calls.
    inputs_gram = _buffer(("inputs_gram",), (n1, n2), options, zeroed=True)
    outputs_gram = _buffer(("outputs_gram",), (n1, n2), options, zeroed=True)

    def add_layer_term(layer: nn.Module, depth_index: int, g_gram: torch.Tensor | None) -> None:
        # Θ += (G Gᵀ) ⊙ (c² H Hᵀ + β²) for the layer whose input is h_{depth_index}.
        h = [c.layer_inputs[depth_index] for c in caches]
        _gram(h[0], h[1] if x2 is not None else None, out=inputs_gram)
        if weights is None:
            inputs_gram.mul_(layer.weight_multiplier**2)
            if layer.bias_multiplier != 0.0:
                inputs_gram.add_(layer.bias_multiplier**2)
        else:
            weight_scale, bias_scale = weights[2 * depth_index], weights[2 * depth_index + 1]
            inputs_gram.mul_(weight_scale * layer.weight_multiplier**2)
            if layer.bias_multiplier != 0.0:
                inputs_gram.add_(bias_scale * layer.bias_multiplier**2)
        if g_gram is None:  # the readout, the first term
            torch.mul(inputs_gram, k, out=theta)
        else:
            theta.addcmul_(g_gram, inputs_gram)

    readout = layers[-1]
    add_layer_term(readout, len(layers) - 1, None)

    # G_L = (c_{L+1} W_{L+1})[o, i] · φ'(z_L)[x, i], written over the cached z_L, which this
    # function owns; each deeper G reuses its own z buffer, so the loop allocates one scratch.
    readout_weight = readout.weight * readout.weight_multiplier
    grads = []
    for cache in caches:
        derivative = activation_derivative_(cache.pre_activations[-1], model.activation)
        if k == 1:
            grads.append(derivative.mul_(readout_weight[0]).unsqueeze(1))
        else:
            grads.append(derivative.unsqueeze(1) * readout_weight.unsqueeze(0))
    scratch: list[torch.Tensor | None] = [None] * len(caches)

    for l_index in range(len(layers) - 1, 0, -1):
        layer = layers[l_index - 1]
        flat = [g.reshape(g.shape[0], -1) for g in grads]
        _gram(flat[0], flat[1] if x2 is not None else None, out=outputs_gram)
        add_layer_term(layer, l_index - 1, outputs_gram)
        if l_index == 1:
            break
        for s, cache in enumerate(caches):
            g = grads[s]
            n_s = g.shape[0]
            derivative = activation_derivative_(
                cache.pre_activations[l_index - 2], model.activation
            )
            derivative.mul_(layer.weight_multiplier)
            if scratch[s] is None:
                scratch[s] = _buffer(("back", s), (n_s * k, layer.in_features), options)
            back = torch.mm(g.reshape(n_s * k, -1), layer.weight, out=scratch[s])
            if k == 1:
                grads[s] = derivative.mul_(back).unsqueeze(1)
            else:
                grads[s] = back.view(n_s, k, -1).mul_(derivative.unsqueeze(1)).clone()

    return _mirror_blocks(theta) if x2 is None else theta


def _jacobian_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None,
    chunk_size: int | None,
    weights: list[float] | None = None,
) -> torch.Tensor:
    """Θ from per-point Jacobians J[x, o, p] = ∂f_o(x)/∂p by torch.func: Θ = Σ_p Σ_o J Jᵀ
    (Σ_p λ_p Σ_o J Jᵀ with `weights`).

    Jacobians are built for `chunk_size` points at a time and contracted parameter tensor by
    parameter tensor, so memory is O(chunk_size · k · P); the symmetric case computes only the
    blocks on and above the diagonal, and is symmetric bit for bit.
    """
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = {name: b.detach() for name, b in model.named_buffers()}

    def f_single(parameters: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, (parameters, buffers), (x.unsqueeze(0),)).reshape(-1)

    jacobian = vmap(jacrev(f_single), in_dims=(None, 0))

    def jac(x: torch.Tensor) -> list[torch.Tensor]:
        return [j.reshape(x.shape[0], -1) for j in jacobian(params, x).values()]

    def contract(j1: list[torch.Tensor], j2: list[torch.Tensor]) -> torch.Tensor:
        if weights is not None:
            return sum(w * (a @ b.T) for w, a, b in zip(weights, j1, j2, strict=True))
        block = j1[0] @ j2[0].T
        for a, b in zip(j1[1:], j2[1:], strict=True):
            block.addmm_(a, b.T)
        return block

    other = x1 if x2 is None else x2
    n1, n2 = x1.shape[0], other.shape[0]
    step = chunk_size or max(n1, n2, 1)
    theta = torch.empty(n1, n2, dtype=x1.dtype, device=x1.device)
    for i in range(0, n1, step):
        j1 = jac(x1[i : i + step])
        for j in range(i if x2 is None else 0, n2, step):
            j2 = j1 if (x2 is None and j == i) else jac(other[j : j + step])
            block = contract(j1, j2)
            theta[i : i + step, j : j + step] = block
            if x2 is None and j != i:
                theta[j : j + step, i : i + step] = block.T
            elif x2 is None:  # a diagonal block's GEMM need not be symmetric bit for bit
                _mirror_upper_(theta[i : i + step, i : i + step])
    return theta


def as_inputs(model: nn.Module, x: torch.Tensor | None) -> torch.Tensor | None:
    """`x` [n, in_features] in the dtype and on the device of `model`'s parameters."""
    if x is None:
        return None
    if x.ndim != 2:
        raise ValueError(f"inputs must be [n, in_features]; got shape {tuple(x.shape)}")
    reference = next(model.parameters(), None)
    if reference is None:
        return x
    return x.to(dtype=reference.dtype, device=reference.device)


def empirical_ntk(
    model: nn.Module,
    x1: torch.Tensor,
    x2: torch.Tensor | None = None,
    *,
    chunk_size: int | None = None,
    method: str = "auto",
    parameter_weights: list[float] | None = None,
) -> torch.Tensor:
    """Empirical NTK Θ(x1, x2) = Σ_o Σ_p ∂f_o(x1)/∂p ∂f_o(x2)/∂p, [n1, n2] (x2 None: x1).

    `parameter_weights` (λ_p ≥ 0 for every parameter tensor, in `model.parameters()` order)
    weights each parameter's term: Θ_λ = Σ_o Σ_p λ_p ∂f_o(x1)/∂p ∂f_o(x2)/∂p. With λ the
    learning-rate scales of the model's optimizer (`MLP.lr_scales("sgd")`) this is the kernel
    that full-batch gradient descent with per-parameter rates η·λ_p follows in function
    space, f ← f − η Θ_λ ∇_f L, to first order in η.

    `method`: "structured" (MLP only: the layer-by-layer contraction of `_structured_ntk`,
    O(n·width·depth + n1·n2) memory; ignores `chunk_size`), "jacobian" (any nn.Module mapping
    [m, D] → [m, …]: torch.func vmap(jacrev) Jacobians, `chunk_size` points at a time, all
    at once if None), or "auto" (structured for an MLP, jacobian otherwise). For k outputs
    this is the trace over outputs (module docstring). Inputs are cast to the model's dtype
    and device; nothing is differentiated through the result.
    """
    check_choice("method", method, NTK_METHODS)
    if chunk_size is not None:
        check_int("chunk_size", chunk_size)
    x1 = as_inputs(model, x1)
    x2 = as_inputs(model, x2)
    weights = None
    if parameter_weights is not None:
        weights = [check_nonnegative("parameter_weights", w) for w in parameter_weights]
        count = len(list(model.parameters()))
        if len(weights) != count:
            raise ValueError(
                f"parameter_weights has {len(weights)} entries; the model has {count} "
                "parameter tensors"
            )
    if method == "auto":
        method = "structured" if isinstance(model, MLP) else "jacobian"
    if method == "structured":
        if not isinstance(model, MLP):
            raise ValueError(
                f"method='structured' needs a widthlab MLP, got {type(model).__name__}; "
                "use method='jacobian' or 'auto'"
            )
        with torch.no_grad():
            return _structured_ntk(model, x1, x2, weights)
    return _jacobian_ntk(model, x1, x2, chunk_size, weights)


def empirical_ntk_by_output(
    model: MLP, x1: torch.Tensor, x2: torch.Tensor | None = None
) -> torch.Tensor:
    """The empirical NTK with its output blocks, Θ[(x, o), (x', o')] =
    Σ_p ∂f_o(x)/∂p · ∂f_o'(x')/∂p, as an [n1·k, n2·k] matrix whose row i·k + o is
    (point i, output o) (x2 None: x1).

    This is the kernel of gradient descent on the k outputs jointly: the outputs move by
    −(η/n) Θ (f − y) per step with f, y flattened point by point. Its trace over outputs,
    Σ_o Θ[(x, o), (x', o)], is `empirical_ntk`; at infinite width it is Θ^∞ ⊗ I_k (the
    outputs decouple), at finite width the blocks o ≠ o' are O(width^−1/2). Computed by the
    layer recursion of `_structured_ntk` with G_l kept per output: Θ = Σ_l (G_l G_lᵀ) ⊙
    (c_l² H_{l−1} H_{l−1}ᵀ + β_l²) with G_l viewed as [n·k, n_l], plus the readout's
    I_k ⊗ (c² H_L H_Lᵀ + β²). Memory O(n1·n2·k² + n·k·width).
    """
    x1 = as_inputs(model, x1)
    other = x1 if x2 is None else as_inputs(model, x2)
    layers, k = model.layers, model.out_features
    n1, n2 = x1.shape[0], other.shape[0]
    with torch.no_grad():
        caches = [model.forward_with_cache(x1), model.forward_with_cache(other)]

        def inputs_gram(layer: DenseLayer, index: int) -> torch.Tensor:
            h1, h2 = (c.layer_inputs[index] for c in caches)
            return (h1 @ h2.T).mul_(layer.weight_multiplier**2).add_(layer.bias_multiplier**2)

        theta = torch.zeros(n1, k, n2, k, dtype=x1.dtype, device=x1.device)
        readout = layers[-1]
        theta.diagonal(dim1=1, dim2=3).add_(inputs_gram(readout, len(layers) - 1)[..., None])
        weight = readout.weight * readout.weight_multiplier  # [k, n_L]
        grads = [  # G_L[x, o, i] = ∂f_o(x)/∂z_L,i
            activation_derivative_(c.pre_activations[-1].clone(), model.activation)[:, None, :]
            * weight[None]
            for c in caches
        ]
        for l_index in range(len(layers) - 1, 0, -1):
            layer = layers[l_index - 1]
            outputs_gram = grads[0].reshape(n1 * k, -1) @ grads[1].reshape(n2 * k, -1).T
            theta.add_(
                outputs_gram.view(n1, k, n2, k) * inputs_gram(layer, l_index - 1)[:, None, :, None]
            )
            if l_index == 1:
                break
            weight = layer.weight * layer.weight_multiplier
            grads = [
                (g @ weight)
                * activation_derivative_(c.pre_activations[l_index - 2].clone(), model.activation)[
                    :, None, :
                ]
                for g, c in zip(grads, caches, strict=True)
            ]
    return theta.reshape(n1 * k, n2 * k)
