"""The GPU path end to end, in one short run: agreement with the CPU and timings.

Checks, on `--device` (default cuda) against the CPU in float64:
  1. analytic NNGP/NTK (relu, depth 3) on n points: largest relative difference, GPU time;
  2. empirical NTK of one network (width w, depth 2), structured contraction: same;
  3. one training job through Lightning (`accelerator: auto`) — full-batch GD, width 1024,
     n = 1000, 200 steps, float64 — against the same job on the CPU: final parameters;
  4. a whole `lazy_training` job (smoke sizes, width 2048) through its study's measure:
     the largest relative difference of its metrics (tolerance 1e-6);
  5. the time of one optimizer step of a small network on the device (width 187, one hidden
     layer, Adam, float32, n = 1400 × 64, 10 outputs: `double_descent_mlp` at its
     threshold under profile=gpu): a plain torch loop that reads the loss back every step
     (as the stopping rule does), the same loop reading it back only at the end, and the
     studies' Lightning path (`train_network`), which must end at the plain loop's
     parameters (tolerance 1e-6 relative: the same kernels in the same order);
and prints a table of timings. Each side is timed after one untimed warm-up call (CUDA
context, kernel loading, cuBLAS handles and Lightning's first Trainer are not the check's
subject). Exits non-zero when a difference exceeds its tolerance (1e-10 relative for the
kernels, 1e-8 for trained parameters: GPU and CPU reduce sums in different orders). Runs in
a few minutes on one GPU.

    python benchmarks/gpu_check.py [--device cuda] [--n 4096] [--width 8192] [--probe-steps 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from widthlab.data import make_dataset
from widthlab.empirical import empirical_ntk
from widthlab.kernels import nngp_and_ntk
from widthlab.losses import loss_value
from widthlab.models.mlp import MLP
from widthlab.runtime.datafiles import save_dataset
from widthlab.runtime.training import train_network
from widthlab.studies.lazy_training.job import measure as lazy_measure

REPO = Path(__file__).resolve().parents[1]


def smoke_config(data_dir: str, *overrides: str):
    """The composed config of conf/ with profile=smoke, tracking off, data in `data_dir`."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        paths = [f"paths.data_dir={data_dir}", f"paths.results_dir={data_dir}"]
        return compose("config", overrides=["profile=smoke", "tracking=off", *paths, *overrides])


def timed(fn, device, warm_up: bool = True):
    """(fn(), seconds of that call), after one untimed call when `warm_up`."""
    if warm_up:
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0


def rel(a, b) -> float:
    return float(torch.linalg.norm(a.cpu() - b.cpu()) / torch.linalg.norm(b.cpu()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--probe-steps", type=int, default=2000)
    args = parser.parse_args()
    device, cpu = torch.device(args.device), torch.device("cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device here", file=sys.stderr)
        return 2
    print(
        f"device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )
    torch.zeros(1, device=device).sum().item()  # create the CUDA context before timing
    rows, failures = [], []
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, 64, generator=g, dtype=torch.float64)

    def check(name, value, tolerance, seconds_device, seconds_cpu):
        rows.append((name, value, seconds_device, seconds_cpu))
        if not value <= tolerance:
            failures.append(f"{name}: {value:.2e} > {tolerance:.0e}")

    kw = dict(depth=3, activation="relu")
    (k_dev, t_dev), (k_cpu, t_cpu) = (
        timed(lambda: nngp_and_ntk(x.to(device), **kw), device),
        timed(lambda: nngp_and_ntk(x, **kw), cpu),
    )
    check(f"analytic NNGP, n={args.n}", rel(k_dev[0], k_cpu[0]), 1e-10, t_dev, t_cpu)
    check(f"analytic NTK, n={args.n}", rel(k_dev[1], k_cpu[1]), 1e-10, t_dev, t_cpu)

    probe = x[:512]
    net_cpu = MLP(64, args.width, 2, seed=1, dtype=torch.float64)
    net_dev = MLP(64, args.width, 2, seed=1, dtype=torch.float64, device=device)
    (n_dev, t_dev) = timed(lambda: empirical_ntk(net_dev, probe.to(device)), device)
    (n_cpu, t_cpu) = timed(lambda: empirical_ntk(net_cpu, probe), cpu)
    name = f"empirical NTK, width {args.width}, n={len(probe)}"
    check(name, rel(n_dev, n_cpu), 1e-10, t_dev, t_cpu)

    train = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "train" / "gd.yaml"))
    train.update(max_steps=args.steps, lr=0.5, dtype="float64", log_every_n_epochs=50)
    xt = torch.randn(1000, 64, generator=g, dtype=torch.float64)
    yt = torch.nn.functional.one_hot(torch.randint(10, (1000,), generator=g), 10).double()
    trained = {}
    seconds = {}

    def train_on(where, cfg):
        net = MLP(64, 1024, 1, out_features=10, seed=2, dtype=torch.float64, device=where)
        train_network(
            cfg, net, xt.to(where), yt.to(where), {"train": (xt.to(where), yt.to(where))}, True
        )
        return net

    for where in (device, cpu):
        cfg = {
            "train": dict(train, trainer=dict(train["trainer"], accelerator=where.type)),
            "tracking": {"uri": None},
            "seed": 0,
        }
        net, seconds[where.type] = timed(lambda where=where, cfg=cfg: train_on(where, cfg), where)
        trained[where.type] = torch.cat([p.detach().cpu().reshape(-1) for p in net.parameters()])
    check(
        f"Lightning GD, {args.steps} steps, width 1024",
        rel(trained[device.type], trained["cpu"]),
        1e-8,
        seconds[device.type],
        seconds["cpu"],
    )

    # 4. A whole lazy_training job (smoke sizes): its measure on the device and on the CPU.
    metrics, seconds = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for where in (device, cpu):
            cfg = smoke_config(tmp, "study=lazy_training", f"device={where}", "model.width=2048")
            if where == device:
                settings = OmegaConf.to_container(cfg.data, resolve=True)
                save_dataset(make_dataset(settings.pop("name"), **settings), tmp)
            metrics[where.type], seconds[where.type] = timed(
                lambda cfg=cfg: lazy_measure(cfg), where
            )
    compared = ("ntk_change", "linearization_gap", "limit_gap", "param_change")
    worst = max(abs(metrics[device.type][k] / metrics["cpu"][k] - 1) for k in compared)
    check(
        "lazy_training job, width 2048 (smoke)", worst, 1e-6, seconds[device.type], seconds["cpu"]
    )

    # 5. Per-step time of a small network on the device: plain loops against train_network.
    steps = args.probe_steps
    xs = torch.randn(1400, 64, generator=g)
    ys = torch.nn.functional.one_hot(torch.randint(10, (1400,), generator=g), 10).float()
    xs, ys = xs.to(device), ys.to(device)

    def plain(read_every_step: bool):
        net = MLP(64, 187, 1, out_features=10, seed=3, dtype=torch.float32, device=device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_value(net(xs), ys, "squared")
            loss.backward()
            opt.step()
            if read_every_step:
                float(loss.detach())
        return net

    adam = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "train" / "gd.yaml"))
    adam.update(optimizer="adam", max_steps=steps, lr=1e-3, dtype="float32", stop_loss=None)
    adam.update(log_every_n_epochs=steps, batch_size=None, loss="squared")
    adam["trainer"] = dict(adam["trainer"], accelerator=device.type)

    def lightning():
        net = MLP(64, 187, 1, out_features=10, seed=3, dtype=torch.float32, device=device)
        cfg = {"train": adam, "tracking": {"uri": None}, "seed": 0}
        train_network(cfg, net, xs, ys, {"train": (xs, ys)}, True)
        return net

    per_step = {}
    nets = {}
    for name, fn in (
        ("plain loop, loss read every step", lambda: plain(True)),
        ("plain loop, loss read at the end", lambda: plain(False)),
        ("train_network (Lightning)", lightning),
    ):
        nets[name], seconds = timed(fn, device)
        per_step[name] = 1e3 * seconds / steps
    flat = {k: torch.cat([p.detach().reshape(-1) for p in v.parameters()]) for k, v in nets.items()}
    check(
        f"train_network vs plain loop, {steps} Adam steps",
        rel(flat["train_network (Lightning)"], flat["plain loop, loss read every step"]),
        1e-6,
        per_step["train_network (Lightning)"] * steps / 1e3,
        per_step["plain loop, loss read every step"] * steps / 1e3,
    )

    print(f"{'check':44s} {'rel. diff':>10s} {'device s':>9s} {'cpu s':>8s} {'speed-up':>8s}")
    for name, value, t_dev, t_cpu in rows:
        print(f"{name:44s} {value:10.2e} {t_dev:9.3f} {t_cpu:8.3f} {t_cpu / t_dev:8.1f}×")
    print("(the last row's 'cpu s' column is the plain loop on the device)")
    print(f"ms per step on {device}, width 187, n = 1400, Adam, float32:")
    for name, ms in per_step.items():
        print(f"  {name:40s} {ms:7.3f}")
    for failure in failures:
        print("FAIL", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
