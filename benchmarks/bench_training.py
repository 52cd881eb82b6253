"""One training job through Lightning (MLflow logging on) against a plain torch loop.

Width 1024, one hidden layer, n = 1000 Gaussian inputs (D = 64), 10 one-hot classes,
1000 full-batch gradient-descent steps on the squared loss, float32, on the CPU (or
--device). Both sides start from the same network and run the same steps, and end at the
same parameters (checked). The Lightning side is the study's path, `widthlab.runtime.training.
train_network`: `TensorBatches`, the Trainer of conf/train/gd.yaml, EarlyStopping on the
epoch's loss and `MLFlowLogger` into a run of a fresh SQLite store, curves every
`--log-every` epochs. The plain loop does zero_grad/forward/backward/step and nothing else.
Prints both times (best of --repeats) and the ratio; the goal is ≤ 1.3×.

    python benchmarks/bench_training.py [--steps 1000] [--width 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from widthlab.models.mlp import MLP
from widthlab.runtime import jobs
from widthlab.runtime.tracking import JobRun
from widthlab.runtime.training import train_network

CONF = Path(__file__).resolve().parents[1] / "conf" / "train" / "gd.yaml"


def plain_loop(model, x, y, steps, lr):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * (model(x) - y).pow(2).sum(1).mean()
        loss.backward()
        opt.step()
    return float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=0.5)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)

    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.n, args.dim, generator=g).to(device)
    y = torch.nn.functional.one_hot(torch.randint(10, (args.n,), generator=g), 10).float()
    y = y.to(device)

    def network():
        return MLP(args.dim, args.width, 1, out_features=10, seed=1, device=device)

    train = OmegaConf.to_container(OmegaConf.load(CONF))
    train.update(max_steps=args.steps, lr=args.lr, log_every_n_epochs=args.log_every)
    if device.type == "cpu":
        train["trainer"]["accelerator"] = "cpu"

    t_plain, t_lightning = [], []
    with tempfile.TemporaryDirectory() as tmp:
        from mlflow import MlflowClient

        uri = f"sqlite:///{tmp}/bench.db"
        client = MlflowClient(uri)
        experiment = client.create_experiment("bench")
        cfg = {"train": train, "tracking": {"uri": uri}, "seed": 0}
        for _ in range(args.repeats):
            reference = network()
            t0 = time.perf_counter()
            plain_loop(reference, x, y, args.steps, args.lr)
            t_plain.append(time.perf_counter() - t0)

            model = network()
            run = client.create_run(experiment)
            token = jobs._ACTIVE_RUN.set(JobRun(client, run.info.run_id))
            try:
                t0 = time.perf_counter()
                train_network(cfg, model, x, y, {"train": (x, y)}, classification=True)
                t_lightning.append(time.perf_counter() - t0)
            finally:
                jobs._ACTIVE_RUN.reset(token)
            gap = max(
                float((a.detach().cpu() - b.detach().cpu()).abs().max())
                for a, b in zip(model.parameters(), reference.parameters(), strict=True)
            )
        logged = len(client.get_metric_history(run.info.run_id, "epoch/train_loss"))

    plain, lightning = min(t_plain), min(t_lightning)
    print(
        f"width {args.width}, n {args.n}, {args.steps} full-batch steps on {device}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(f"plain torch loop     : {plain:.2f} s ({1e3 * plain / args.steps:.2f} ms/step)")
    print(f"Lightning + MLflow   : {lightning:.2f} s ({logged} curve points logged)")
    print(f"ratio Lightning/plain: {lightning / plain:.3f}  (goal <= 1.3)")
    print(f"largest parameter difference at the end: {gap:.2e}")


if __name__ == "__main__":
    main()
