"""One job of the `ntk_convergence` study: distances of finite-width kernels to their limits.

Usage:
    python pipelines/ntk_convergence.py -m study=ntk_convergence            # the whole sweep
    python pipelines/ntk_convergence.py study=ntk_convergence model.width=512 model.depth=2

For one network of the given width, depth, activation and seed (NTK parameterization,
float64, on `device`) on the probe set — the first `study.n_probe` training inputs of `data`
(digits in the study config) — it measures the relative Frobenius distance
‖K̂ − K‖_F/‖K‖_F to the analytic limit K (`widthlab.kernels`) and the relative error of
the diagonal, for
  (a) the empirical NTK Θ̂ = Σ_p ∂f/∂p ∂f/∂p of the network;
  (b) the NNGP of the network: the covariance of its output over the readout's init with the
      hidden layers held fixed, (w_std²/width) Σ_k φ(z_k(x)) φ(z_k(x')) + b_std²;
  (c) the Monte-Carlo output covariance (1/M) Σ_m f_m(x) f_m(x') over M = study.mc_networks
      independent networks of this width (for width ≤ study.mc_max_width only): its distance
      mixes the Monte-Carlo error, O(M^-1/2), with the finite-width effect.
Each job writes results/ntk_convergence/records/<key>.json and logs an MLflow child run.
"""

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from widthlab.data import load_dataset
from widthlab.empirical import empirical_nngp, empirical_ntk, network_nngp
from widthlab.jobs import resolve_device, run_study_job
from widthlab.kernels import nngp_and_ntk
from widthlab.schemas import validate_config
from widthlab.stats import relative_diagonal_error, relative_frobenius_distance
from widthlab.validation import ConfigError, check_positive_int, exit_on_config_error


def measure(cfg: DictConfig) -> dict[str, float]:
    ds = load_dataset(cfg.data.name, cfg.paths.data_dir)
    n_probe = check_positive_int("study.n_probe", cfg.study.n_probe, maximum=len(ds.x_train))
    m = cfg.model
    if m.parameterization != "ntk":
        # The limits of widthlab.kernels are those of the NTK parameterization; a standard-
        # parameterized net's NTK is ~width times larger and has no finite limit.
        raise ConfigError("model.parameterization", m.parameterization, "'ntk' in this study")
    device = resolve_device(cfg.device)
    x = torch.as_tensor(ds.x_train[:n_probe], dtype=torch.float64, device=device)
    kernel_args = dict(depth=m.depth, activation=m.activation, w_std=m.w_std, b_std=m.b_std)
    nngp_limit, ntk_limit = nngp_and_ntk(x, **kernel_args)
    model = instantiate(
        m, in_features=x.shape[1], seed=cfg.seed, dtype=torch.float64, device=device
    )
    ntk_hat = empirical_ntk(model, x)
    nngp_hat = network_nngp(model, x)
    metrics = {
        "ntk_distance": relative_frobenius_distance(ntk_hat, ntk_limit),
        "ntk_diagonal_error": relative_diagonal_error(ntk_hat, ntk_limit),
        "nngp_distance": relative_frobenius_distance(nngp_hat, nngp_limit),
        "nngp_diagonal_error": relative_diagonal_error(nngp_hat, nngp_limit),
        "n_probe": n_probe,
        "n_parameters": model.num_parameters(),
    }
    if m.width <= cfg.study.mc_max_width:
        mc_mean, _ = empirical_nngp(
            x, width=m.width, depth=m.depth, activation=m.activation,
            n_networks=cfg.study.mc_networks, w_std=m.w_std, b_std=m.b_std, seed=cfg.seed,
            device=device,
        )  # fmt: skip
        metrics["mc_nngp_distance"] = relative_frobenius_distance(mc_mean, nngp_limit)
        metrics["mc_nngp_diagonal_error"] = relative_diagonal_error(mc_mean, nngp_limit)
        metrics["mc_networks"] = cfg.study.mc_networks
    return metrics


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "ntk_convergence")  # every group it reads, before any work
    run_study_job(cfg, measure, headline="ntk_distance", entry=__file__)


if __name__ == "__main__":
    main()
