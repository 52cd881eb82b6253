"""The jobs of `finite_vs_infinite`: kernel regression with the infinite-width kernels, and a
trained finite network beside the predictor it tends to.

Both read the first `study.n_train` training points of `data` (one-hot targets y ∈ {0,1}^C)
and the whole test split. Kernels: the analytic NNGP K and NTK Θ of `widthlab.kernels` for the
network of `model` (depth, activation, w_std, b_std; NTK parameterization), in float64.
Losses follow `widthlab.losses`: L = (1/2n) Σ_i ‖y_i − f(x_i)‖²; accuracy = the fraction of
test points whose argmax f(x) is their class.

`kernels` (one job per depth): kernel ridge regression f̂(x) = k(x, X)(k(X, X) + nλI)⁻¹y
(`widthlab.solvers.kernel_ridge_regression`) with K and with Θ. The ridge is chosen on a
validation split carved from the training set (its last `study.val_fraction`): each
λ = r·tr(k)/n for r in `study.ridges` (r = 0: the ridgeless interpolator) is fitted on the
rest and scored on it; the highest validation accuracy wins, ties going to the lower
validation loss. The chosen λ is then refitted on all n points and scored on the test set.
It also records the NTK predictor of gradient descent (`ntk_gd`, the networks' asymptote):

    f_∞,T(x) = Θ(x, X) g_T(Θ) y,   g_T(s) = (1 − (1 − ηs/n)^T)/s,   η = lr_fraction·n/λ_max(Θ),

T = `study.steps` (`widthlab.gradient_descent.linearized_prediction`).

`train` (one job per width, depth, seed): the centered network f(x; θ) − f(x; θ₀)
(`widthlab.models.centered`, NTK parameterization, C outputs) trained with Lightning
(`widthlab.runtime.training`) by full-batch gradient descent on L for exactly T steps at the
same η, the same for every width. Its infinite-width limit is exactly f_∞,T above, so it
records, on the test points, its accuracy and loss, f_∞,T's, the gaps
`accuracy_gap` = accuracy − accuracy(f_∞,T) and `loss_gap` = L − L(f_∞,T), the relative
function-space distance `function_gap` = ‖f_T − f_∞,T‖_F / ‖f_∞,T‖_F over the test outputs,
and `agreement`, the fraction of test points where argmax f_T = argmax f_∞,T.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.gradient_descent import linearized_prediction
from widthlab.kernels import nngp_and_ntk, ntk_kernel
from widthlab.losses import DTYPES
from widthlab.models.centered import CenteredNetwork
from widthlab.runtime.active_runs import active_runs
from widthlab.runtime.batched_training import train_networks
from widthlab.runtime.datafiles import load_job_data
from widthlab.runtime.devices import resolve_device
from widthlab.solvers import kernel_ridge_regression


def scores(prediction: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> dict:
    """{accuracy, loss} of predictions [n, C] against one-hot targets [n, C]."""
    f, t = np.asarray(prediction, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return {
        "accuracy": float(np.mean(f.argmax(1) == t.argmax(1))),
        "loss": float(0.5 * np.mean(np.sum((f - t) ** 2, axis=1))),
    }


def _arrays(cfg: DictConfig, device: torch.device | None = None) -> tuple[torch.Tensor, ...]:
    ds = load_job_data(cfg)
    n = int(cfg.study.n_train)
    return tuple(
        torch.as_tensor(a, dtype=torch.float64, device=device)
        for a in (ds.x_train[:n], ds.y_train[:n], ds.x_test, ds.y_test)
    )


def _kernel_args(model: Any) -> dict[str, Any]:
    return dict(
        depth=int(model.depth),
        activation=model.activation,
        w_std=float(model.w_std),
        b_std=float(model.b_std),
    )


def gd_learning_rate(theta: torch.Tensor, lr_fraction: float) -> float:
    """η = lr_fraction·n/λ_max(Θ): gradient descent is stable for lr_fraction < 2."""
    return float(lr_fraction) * theta.shape[0] / float(torch.linalg.eigvalsh(theta)[-1])


def ridge_regression(
    k: np.ndarray, k_test: np.ndarray, y: np.ndarray, y_test: np.ndarray, n_val: int, ridges
) -> dict[str, float]:
    """The ridge chosen on the last `n_val` training points (module docstring), refitted on
    all of them: its relative value r, validation and test scores."""
    n = k.shape[0]
    fit, val = slice(0, n - n_val), slice(n - n_val, n)
    scale = float(np.trace(k[fit, fit])) / (n - n_val)
    best = None
    for r in ridges:
        sol = kernel_ridge_regression(k[fit, fit], y[fit], k[val, fit], float(r) * scale)
        s = scores(sol.test_predictions, y[val])
        key = (-s["accuracy"], s["loss"])
        if best is None or key < best[0]:
            best = (key, float(r), s)
    _, r, val_scores = best
    sol = kernel_ridge_regression(k, y, k_test, r * float(np.trace(k)) / n)
    test = scores(sol.test_predictions, y_test)
    return {
        "ridge": r,
        "val_accuracy": val_scores["accuracy"],
        "val_loss": val_scores["loss"],
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
    }


def measure_kernels(cfg: DictConfig) -> dict[str, Any]:
    """One depth: NNGP and NTK kernel regression, and the NTK predictor of T gradient-descent
    steps."""
    s = cfg.study
    x, y, x_test, y_test = _arrays(cfg)
    n = x.shape[0]
    args = _kernel_args(cfg.model)
    nngp, ntk = nngp_and_ntk(x, None, **args)
    nngp_test, ntk_test = nngp_and_ntk(x_test, x, **args)
    n_val = round(float(s.val_fraction) * n)
    out: dict[str, Any] = {"n_train": n, "n_val": n_val, "n_test": x_test.shape[0]}
    y_np, y_test_np = y.numpy(), y_test.numpy()
    for name, k, k_test in (("nngp", nngp, nngp_test), ("ntk", ntk, ntk_test)):
        out[f"kernel={name}"] = ridge_regression(
            k.numpy(), k_test.numpy(), y_np, y_test_np, n_val, list(s.ridges)
        )
    lr, steps = gd_learning_rate(ntk, s.lr_fraction), int(s.steps)
    limit_train = linearized_prediction(ntk, ntk, y, lr, steps)
    limit_test = linearized_prediction(ntk, ntk_test, y, lr, steps)
    test, train = scores(limit_test, y_test), scores(limit_train, y)
    out["kernel=ntk_gd"] = {
        "test_accuracy": test["accuracy"],
        "test_loss": test["loss"],
        "train_loss": train["loss"],
        "lr": lr,
        "steps": steps,
    }
    return out


def measure_network(cfg: DictConfig) -> dict[str, Any]:
    """One job: `measure_networks` of a stack of one."""
    (outcome,) = measure_networks([cfg])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def measure_networks(cfgs: list[DictConfig]) -> list[dict[str, Any] | Exception]:
    """Jobs that differ only in width and seed: the NTK predictor once (it does not depend on
    either), the centered networks trained as one stack (`runtime.batched_training`, each
    exactly as alone), each measured against the predictor."""
    cfg = cfgs[0]
    s, m = cfg.study, cfg.model
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]
    # The kernels in float64 on the job's device (an eigendecomposition of n × n per job).
    x64, y64, x_test64, y_test64 = _arrays(cfg, device)
    n, n_test, steps = x64.shape[0], x_test64.shape[0], int(s.steps)
    theta = ntk_kernel(x64, **_kernel_args(m))
    lr = gd_learning_rate(theta, s.lr_fraction)
    both = torch.cat([ntk_kernel(x_test64, x64, **_kernel_args(m)), theta])
    predicted = linearized_prediction(theta, both, y64, lr, steps).cpu()
    limit_test, limit_train = predicted[:n_test], predicted[n_test:]
    y64, y_test64 = y64.cpu(), y_test64.cpu()
    limit, limit_fit = scores(limit_test, y_test64), scores(limit_train, y64)  # f_∞,T's

    def as_tensor(a: torch.Tensor) -> torch.Tensor:
        return a.to(dtype=dtype, device=device)

    x, y, x_test, y_test = (as_tensor(a) for a in (x64, y64, x_test64, y_test64))
    networks = [
        instantiate(
            c.model,
            in_features=x.shape[1],
            out_features=y.shape[1],
            seed=c.seed,
            dtype=dtype,
            device=device,
        )
        for c in cfgs
    ]
    models = [CenteredNetwork(network) for network in networks]  # θ₀ frozen before training
    results = train_networks(
        cfgs,
        networks,
        x,
        y,
        {"train": (x, y), "test": (x_test, y_test)},
        classification=True,
        lr=lr,
        lr_key="study.lr_fraction",
        centered=True,
        runs=active_runs(len(cfgs)),
    )
    out: list[dict[str, Any] | Exception] = []
    for network, model, result in zip(networks, models, results, strict=True):
        if isinstance(result, Exception):
            out.append(result)
            continue
        if result.steps != steps:
            out.append(RuntimeError(f"trained {result.steps} steps instead of study.steps={steps}"))
            continue
        model.eval()
        with torch.no_grad():
            f_test = model(x_test).double().cpu()
            f_train = model(x).double().cpu()
        test, train = scores(f_test, y_test64), scores(f_train, y64)
        out.append(
            {
                "test_accuracy": test["accuracy"],
                "test_loss": test["loss"],
                "train_loss": train["loss"],
                "limit_test_accuracy": limit["accuracy"],
                "limit_test_loss": limit["loss"],
                "limit_train_loss": limit_fit["loss"],
                "accuracy_gap": test["accuracy"] - limit["accuracy"],
                "loss_gap": test["loss"] - limit["loss"],
                "function_gap": float(
                    torch.linalg.norm(f_test - limit_test) / torch.linalg.norm(limit_test)
                ),
                "agreement": float((f_test.argmax(1) == limit_test.argmax(1)).double().mean()),
                "lr": lr,
                "steps": result.steps,
                "n_train": n,
                "n_parameters": sum(p.numel() for p in network.parameters()),
            }
        )
    return out


def kernels_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the two kernels on the training set and against the test set, their
    eigendecompositions and a few n × n temporaries, float64."""
    n, n_test = cfg["study"]["n_train"], cfg["data"]["n_test"]
    return 8.0 * (10 * n * n + 4 * n_test * n)


def network_memory(cfg: Mapping[str, Any]) -> float:
    """Bytes: the network and its frozen initial copy, gradients and the update (4 copies of
    the parameters), the activations of the training and test sets, and the NTK (n × n and
    test × n) with its eigendecomposition in float64."""
    m, s = cfg["model"], cfg["study"]
    w, depth = m["width"], m["depth"]
    params = (depth - 1) * w * w + 60 * w
    n, n_test = s["n_train"], cfg["data"]["n_test"]
    return 4.0 * 4 * params + 8.0 * (6 * (n + n_test) * w * depth + 4 * n * n + 2 * n_test * n)
