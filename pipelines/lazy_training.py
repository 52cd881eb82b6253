"""One job of the `lazy_training` study: how far a network of one width moves when trained.

Usage:
    python pipelines/lazy_training.py -m study=lazy_training               # the whole sweep
    python pipelines/lazy_training.py study=lazy_training model.width=512 model.depth=2 seed=1

One job = (width, depth, seed). The network (`widthlab.models.mlp.MLP`, NTK parameterization,
one output) is trained with Lightning (`widthlab.training`) by full-batch gradient descent on
the first `study.n_train` training points of `data` (the teacher regression set), loss
L = (1/2n) Σ_i (y_i − f(x_i))², for exactly T = `study.steps` steps with learning rate

    η = study.lr_fraction · n / λ_max(Θ)      (Θ: the analytic NTK on the training inputs),

the same for every width; gradient descent moves the training outputs by −(η/n)Θ̂(f − y) per
step, so it is stable for η < 2n/λ_max and lr_fraction < 2 leaves room for the finite-width
Θ̂₀ (its ratio `lr_stability` = η·λ_max(Θ̂₀)/n is recorded). `train.lr` is not used.

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
                             g_T(λ) = (1 − (1 − ηλ/n)^T) / λ   (g_T(0) = ηT/n),
                           exact for T discrete steps (the continuous-time form with
                           e^{−ηλt/n} is its small-η limit);
  limit_gap                the same with the analytic NTK Θ in place of Θ̂₀ (the infinite-width
                           prediction, from the network's own f₀);
  linearization_gap_train  the first gap on the training points;
and the training/test losses of the network and of both linear predictions. Lee et al.
(2019, Theorem 2.1) bound all of these by O(width^−1/2); their Fig. 1 finds the NTK change
and the hidden-to-hidden weights closer to width^−1.
"""

import copy

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.data import load_dataset
from widthlab.empirical import empirical_ntk
from widthlab.jobs import resolve_device, run_study_job
from widthlab.kernels import ntk_kernel
from widthlab.losses import DTYPES
from widthlab.schemas import validate_config
from widthlab.training import train_network
from widthlab.validation import ConfigError, check_positive_int, exit_on_config_error


def linear_prediction(
    kernel_train: torch.Tensor,
    kernel_eval: torch.Tensor,
    residual: torch.Tensor,
    lr: float,
    steps: int,
) -> torch.Tensor:
    """Θ(x, X) g_T(Θ) r with g_T(λ) = (1 − (1 − ηλ/n)^T)/λ: the change of the outputs at the
    rows of `kernel_eval` after T steps of gradient descent on the linearized model, from the
    training residual r = y − f₀(X) (conventions in the module docstring)."""
    n = kernel_train.shape[0]
    lam, vec = torch.linalg.eigh(kernel_train)
    lam = lam.clamp_min(0.0)  # round-off below 0 on a PSD kernel
    step = lr * lam / n
    # 1 − (1 − s)^T: through expm1/log1p for small s, where the power alone loses digits;
    # the power for s > 1/2 (1 − s ≤ 1/2, no cancellation; s ∈ [1, 2) oscillates but decays).
    small = -torch.expm1(steps * torch.log1p(-step.clamp(max=0.5)))
    decayed = torch.where(step <= 0.5, small, 1.0 - (1.0 - step) ** steps)
    # g_T(λ) = that / λ, tending to ηT/n as λ → 0.
    g = torch.where(lam > 0, decayed / torch.where(lam > 0, lam, 1.0), lr * steps / n)
    return kernel_eval @ (vec @ (g[:, None] * (vec.T @ residual)))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ (Frobenius)."""
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def gap(trained: torch.Tensor, linear: torch.Tensor, initial: torch.Tensor) -> float:
    """‖f_T − f_lin,T‖ / ‖f_lin,T − f₀‖: the gap relative to how far the outputs moved."""
    return float(torch.linalg.norm(trained - linear) / torch.linalg.norm(linear - initial))


def measure(cfg: DictConfig) -> dict:
    ds = load_dataset(cfg.data.name, cfg.paths.data_dir)
    if ds.task != "regression":
        raise ConfigError("data.name", cfg.data.name, "a regression data set (teacher)")
    s, m = cfg.study, cfg.model
    n = check_positive_int("study.n_train", s.n_train, maximum=len(ds.x_train))
    n_eval = check_positive_int("study.n_eval", s.n_eval, maximum=len(ds.x_test))
    device, dtype = resolve_device(cfg.device), DTYPES[cfg.train.dtype]
    as_tensor = lambda a: torch.as_tensor(a, dtype=dtype, device=device)  # noqa: E731
    x, y = as_tensor(ds.x_train[:n]), as_tensor(ds.y_train[:n]).reshape(n, -1)
    xe, ye = as_tensor(ds.x_test[:n_eval]), as_tensor(ds.y_test[:n_eval]).reshape(n_eval, -1)
    model = instantiate(m, in_features=x.shape[1], out_features=1, seed=cfg.seed,
                        dtype=dtype, device=device)  # fmt: skip

    # Everything about the kernels in float64, whatever the training dtype.
    x64, xe64 = x.double(), xe.double()
    kernel_args = dict(depth=m.depth, activation=m.activation, w_std=m.w_std, b_std=m.b_std)
    limit = ntk_kernel(x64, **kernel_args)
    limit_eval = ntk_kernel(xe64, x64, **kernel_args)
    lr = float(s.lr_fraction) * n / float(torch.linalg.eigvalsh(limit)[-1])

    def kernels(net):
        net64 = copy.deepcopy(net).double()
        with torch.no_grad():
            outputs = (net64(x64), net64(xe64))
        return empirical_ntk(net64, x64), empirical_ntk(net64, xe64, x64), outputs

    ntk0, ntk0_eval, (f0, f0_eval) = kernels(model)
    params0 = [p.detach().clone() for p in model.parameters()]
    weights0 = [layer.weight.detach().clone() for layer in model.layers]

    steps = int(s.steps)
    result = train_network(
        cfg, model, x, y, {"train": (x, y), "test": (xe, ye)}, classification=False, lr=lr
    )
    if result.steps != steps:
        raise RuntimeError(f"trained {result.steps} steps instead of study.steps={steps}")

    ntk_t, _, (f_t, f_t_eval) = kernels(model)
    residual = y.double() - f0
    lin_train = f0 + linear_prediction(ntk0, ntk0, residual, lr, steps)
    lin_eval = f0_eval + linear_prediction(ntk0, ntk0_eval, residual, lr, steps)
    inf_eval = f0_eval + linear_prediction(limit, limit_eval, residual, lr, steps)
    mse = lambda a, b: float(torch.mean((a - b) ** 2))  # noqa: E731
    params_t = list(model.parameters())
    flat = lambda ps: torch.cat([p.detach().reshape(-1).double() for p in ps])  # noqa: E731
    metrics = {
        "param_change": relative(flat(params_t), flat(params0)),
        "ntk_change": relative(ntk_t, ntk0),
        "linearization_gap": gap(f_t_eval, lin_eval, f0_eval),
        "limit_gap": gap(f_t_eval, inf_eval, f0_eval),
        "linearization_gap_train": gap(f_t, lin_train, f0),
        "train_loss": 0.5 * mse(f_t, y.double()),
        "test_loss": 0.5 * mse(f_t_eval, ye.double()),
        "linearized_test_loss": 0.5 * mse(lin_eval, ye.double()),
        "limit_test_loss": 0.5 * mse(inf_eval, ye.double()),
        "init_ntk_distance": relative(ntk0, limit),
        "lr": lr,
        "lr_stability": lr * float(torch.linalg.eigvalsh(ntk0)[-1]) / n,
        "steps": steps,
        "n_train": n,
        "n_parameters": sum(p.numel() for p in params_t),
    }
    for index, (layer, w0) in enumerate(zip(model.layers, weights0, strict=True), start=1):
        metrics[f"weight_change_layer_{index}"] = relative(layer.weight.detach(), w0)
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "lazy_training")  # every group it reads, before any work
    run_study_job(cfg, measure, headline="linearization_gap", entry=__file__)


if __name__ == "__main__":
    main()
