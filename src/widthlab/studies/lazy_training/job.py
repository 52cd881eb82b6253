"""The job of `lazy_training`: how far a network of one width moves when trained.

One job = (width, depth, seed). The network (`widthlab.models.mlp.MLP`, NTK parameterization,
k outputs: one for a regression set such as teacher, one per class for the one-hot targets of
a classification set such as mnist1d) is trained with Lightning (`widthlab.runtime.training`)
by full-batch gradient descent on the first `study.n_train` training points of `data`, loss
L = (1/2n) Σ_i ‖y_i − f(x_i)‖², for exactly T = `study.steps` steps with learning rate

    η = study.lr_fraction · n / λ_max(Θ)      (Θ: the analytic NTK on the training inputs),

the same for every width; gradient descent moves the training outputs by −(η/n)Θ̂(f − y) per
step, so it is stable for η < 2n/λ_max and lr_fraction < 2 leaves room for the finite-width
Θ̂₀ (its ratio `lr_stability` = η·λ_max(Θ̂₀)/n is recorded). `train.lr` is not used.

With k > 1 outputs Θ̂ is the nk × nk kernel with its output blocks,
Θ̂[(x, o), (x', o')] = Σ_p ∂f_o(x)/∂p · ∂f_o'(x')/∂p (`widthlab.empirical.empirical_ntk_by_output`,
f and y flattened point by point), which is what gradient descent on the k outputs jointly
follows, so the closed forms below stay exact; the analytic limit is Θ ⊗ I_k, whose
eigenvalues are Θ's (the same η for any k). NTK distances compare these nk × nk matrices.

Per job, with θ₀ the initial and θ_T the trained parameters, it records
  weight_change_layer_<l>  ‖W_l(T) − W_l(0)‖_F / ‖W_l(0)‖_F for every layer l = 1 … L+1
                           (weights only; their multipliers cancel in the ratio);
  param_change             ‖θ_T − θ₀‖ / ‖θ₀‖ over every parameter (biases included: with
                           b_std = 0 they get no gradient and only add to ‖θ₀‖);
  ntk_change               ‖Θ̂_T − Θ̂₀‖_F / ‖Θ̂₀‖_F on the training inputs;
  linearization_gap        ‖f_T − f_lin,T‖ / ‖f_lin,T − f₀‖ on the first `study.n_eval` test
                           points, where f_lin is the network linearized at θ₀ and trained by
                           the same gradient descent. Its outputs have the closed form
                             f_lin,T(x) = f₀(x) + Θ̂₀(x, X) g_T(Θ̂₀) (y − f₀(X)),
                           g_T the gradient-descent filter of `widthlab.gradient_descent`
                           (exact for T discrete steps);
  limit_gap                the same with the analytic NTK Θ in place of Θ̂₀ (the infinite-width
                           prediction, from the network's own f₀);
  linearization_gap_train  the first gap on the training points;
and the training/test losses of the network and of both linear predictions. Lee et al.
(2019, Theorem 2.1) bound all of these by O(width^−1/2); their Fig. 1 finds the NTK change
and the hidden-to-hidden weights closer to width^−1.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.distances import relative_distance
from widthlab.empirical import empirical_ntk, empirical_ntk_by_output
from widthlab.gradient_descent import linearized_prediction
from widthlab.kernels import ntk_kernel
from widthlab.losses import DTYPES
from widthlab.runtime.datafiles import load_job_data
from widthlab.runtime.devices import resolve_device
from widthlab.runtime.training import train_network


def gap(trained: torch.Tensor, linear: torch.Tensor, initial: torch.Tensor) -> float:
    """‖f_T − f_lin,T‖ / ‖f_lin,T − f₀‖: the gap relative to how far the outputs moved."""
    return float(torch.linalg.norm(trained - linear) / torch.linalg.norm(linear - initial))


def measure(cfg: DictConfig) -> dict[str, Any]:
    """One width, depth and seed: train by gradient descent and measure how far it moved from its
    linearization."""
    ds = load_job_data(cfg)
    s, m = cfg.study, cfg.model
    n, n_eval = int(s.n_train), int(s.n_eval)
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]

    def as_tensor(a):
        return torch.as_tensor(a, dtype=dtype, device=device)

    x, y = as_tensor(ds.x_train[:n]), as_tensor(ds.y_train[:n]).reshape(n, -1)
    xe, ye = as_tensor(ds.x_test[:n_eval]), as_tensor(ds.y_test[:n_eval]).reshape(n_eval, -1)
    outputs = y.shape[1]
    model = instantiate(
        m, in_features=x.shape[1], out_features=outputs, seed=cfg.seed, dtype=dtype, device=device
    )

    # Everything about the kernels in float64, whatever the training dtype.
    x64, xe64 = x.double(), xe.double()
    kernel_args = dict(depth=m.depth, activation=m.activation, w_std=m.w_std, b_std=m.b_std)
    limit = ntk_kernel(x64, **kernel_args)
    limit_eval = ntk_kernel(xe64, x64, **kernel_args)
    lr = float(s.lr_fraction) * n / float(torch.linalg.eigvalsh(limit)[-1])

    def kernels(net):
        net64 = copy.deepcopy(net).double()
        with torch.no_grad():
            values = (net64(x64), net64(xe64))
        return ntk_blocks(net64, x64), ntk_blocks(net64, xe64, x64), values

    ntk0, ntk0_eval, (f0, f0_eval) = kernels(model)
    params0 = [p.detach().clone() for p in model.parameters()]
    weights0 = [layer.weight.detach().clone() for layer in model.layers]

    steps = int(s.steps)
    result = train_network(
        cfg,
        model,
        x,
        y,
        {"train": (x, y), "test": (xe, ye)},
        classification=False,
        lr=lr,
        lr_key="study.lr_fraction",
    )
    if result.steps != steps:
        raise RuntimeError(f"trained {result.steps} steps instead of study.steps={steps}")

    ntk_t, _, (f_t, f_t_eval) = kernels(model)
    residual = y.double() - f0

    def moved(kernel_train, kernel_eval, rows):
        # Θ̂'s rows are (point, output): the residual flattened the same way.
        step = linearized_prediction(
            kernel_train, kernel_eval, residual.reshape(-1, 1), lr, steps, n_points=n
        )
        return step.reshape(rows, outputs)

    lin_train = f0 + moved(ntk0, ntk0, n)
    lin_eval = f0_eval + moved(ntk0, ntk0_eval, n_eval)
    # Θ ⊗ I_k acts on each output column alike.
    inf_eval = f0_eval + linearized_prediction(limit, limit_eval, residual, lr, steps)

    def mse(a, b):  # (1/n) Σ_i ‖a_i − b_i‖², so that ½·mse is the training loss
        return float(torch.mean(torch.sum((a - b) ** 2, dim=1)))

    def flat(ps):
        return torch.cat([p.detach().reshape(-1).double() for p in ps])

    params_t = list(model.parameters())
    metrics = {
        "param_change": relative_distance(flat(params_t), flat(params0)),
        "ntk_change": relative_distance(ntk_t, ntk0),
        "linearization_gap": gap(f_t_eval, lin_eval, f0_eval),
        "limit_gap": gap(f_t_eval, inf_eval, f0_eval),
        "linearization_gap_train": gap(f_t, lin_train, f0),
        "train_loss": 0.5 * mse(f_t, y.double()),
        "test_loss": 0.5 * mse(f_t_eval, ye.double()),
        "linearized_test_loss": 0.5 * mse(lin_eval, ye.double()),
        "limit_test_loss": 0.5 * mse(inf_eval, ye.double()),
        "init_ntk_distance": relative_distance(
            ntk0, torch.kron(limit, torch.eye(outputs, dtype=limit.dtype, device=limit.device))
        ),
        "lr": lr,
        "lr_stability": lr * float(torch.linalg.eigvalsh(ntk0)[-1]) / n,
        "steps": steps,
        "n_train": n,
        "n_outputs": outputs,
        "n_parameters": sum(p.numel() for p in params_t),
    }
    for index, (layer, w0) in enumerate(zip(model.layers, weights0, strict=True), start=1):
        metrics[f"weight_change_layer_{index}"] = relative_distance(layer.weight.detach(), w0)
    return metrics


def ntk_blocks(net: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor | None = None):
    """Θ̂ with its output blocks, [n1·k, n2·k] (for one output the plain empirical NTK)."""
    if net.out_features == 1:
        return empirical_ntk(net, x1, x2)
    return empirical_ntk_by_output(net, x1, x2)


def peak_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the network and its float64 copy for the kernels (parameters, the initial
    parameters and weights kept, gradients): about 6.4 times the float64 size of the
    hidden weights in all; plus the activations (k per-output gradients each) and the
    nk × nk kernels (k = 10 outputs for a classification set, one for regression)."""
    m, s = cfg["model"], cfg["study"]
    outputs = 10 if "label_noise" in cfg["data"] else 1
    w, depth = m["width"], m["depth"]
    weights = max(depth - 1, 1) * w * w + 100 * w
    n = s["n_train"] + s["n_eval"]
    return 8 * (6.4 * weights + 8 * outputs * n * w * depth + 6 * (outputs * n) ** 2)
