"""The data of Jacot et al. (2018), Fig. 1: Θ(x₀, x(γ)) on the unit circle at initialization.

Usage:
    python pipelines/ntk_circle.py study=ntk_convergence            # sizes from the profile
    python pipelines/ntk_circle.py study=ntk_convergence study.circle.seeds=3 profile=smoke

Inputs x(γ) = (cos γ, sin γ) for `study.circle.points` values of γ ∈ [−π, π], x₀ = (1, 0)
(D = 2, so the first layer sees x·x'/2 = cos(γ)/2). For each width in `study.circle.widths`
and seeds 0 … `study.circle.seeds` − 1, an MLP of `study.circle.depth` hidden layers with
the study's w_std and b_std (NTK parameterization, float32: a figure, not a distance) gives
its empirical NTK Θ̂(x₀, x(γ)); the analytic limit Θ(x₀, x(γ)) is computed in float64.
Writes `results/<study>/circle.csv` with columns gamma, width (`inf` for the limit), seed, ntk.
"""

import csv
import io
import math

import hydra
import torch
from omegaconf import DictConfig

from widthlab.empirical import empirical_ntk
from widthlab.jobs import resolve_device
from widthlab.kernels import ntk_kernel
from widthlab.models.mlp import MLP
from widthlab.records import atomic_write_bytes
from widthlab.schemas import validate_config
from widthlab.tracking import job_run
from widthlab.validation import check_positive_int, exit_on_config_error


def circle_rows(cfg: DictConfig) -> list[dict]:
    c, m = cfg.study.circle, cfg.model
    points = check_positive_int("study.circle.points", c.points, minimum=3)
    seeds = check_positive_int("study.circle.seeds", c.seeds)
    device = resolve_device(cfg.device)
    gamma = torch.linspace(-math.pi, math.pi, points, dtype=torch.float64, device=device)
    xs = torch.stack([torch.cos(gamma), torch.sin(gamma)], dim=1)
    x0 = torch.tensor([[1.0, 0.0]], dtype=torch.float64, device=device)
    spec = dict(depth=c.depth, activation=c.activation, w_std=m.w_std, b_std=m.b_std)
    limit = ntk_kernel(x0, xs, **spec)[0]
    rows = [
        dict(gamma=float(g), width="inf", seed="", ntk=float(v))
        for g, v in zip(gamma, limit, strict=True)
    ]
    for width in c.widths:
        for seed in range(seeds):
            net = MLP(2, int(width), parameterization="ntk", seed=seed, dtype=torch.float32,
                      device=device, **spec)  # fmt: skip
            theta = empirical_ntk(net, x0.float(), xs.float())[0]
            rows += [dict(gamma=float(g), width=int(width), seed=seed, ntk=float(v))
                     for g, v in zip(gamma, theta, strict=True)]  # fmt: skip
    return rows


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
@exit_on_config_error
def main(cfg: DictConfig) -> None:
    validate_config(cfg, "ntk_circle")  # every group it reads, before any work
    rows = circle_rows(cfg)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["gamma", "width", "seed", "ntk"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = f"{cfg.paths.results_dir}/{cfg.study.name}/circle.csv"
    with job_run(cfg, job_name=cfg.study.name, stage="ntk_circle", run_name="circle") as run:
        atomic_write_bytes(path, buf.getvalue().encode())
        run.log_artifact(path)
    print(f"wrote {path} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
