"""Slices of four studies at `profile=gpu`, through the job runner: time and agreement.

Each slice's jobs run through `widthlab.runtime.jobs.run_job`, the function behind
`pipelines/run.py` (config checks, pre-flight, record), with `profile=gpu`, `tracking=off`,
`resume=false` and the given `device`:

* ntk_convergence: depth 3, widths 8192 and 16384, relu and erf, seed 0 (float64 kernels);
* lazy_training: depth 1, widths 4096 and 16384, and depth 2, width 2048, seed 0 (float64
  full-batch GD, 1000 steps);
* double_descent_mlp: widths 168, 187, 205 around the threshold (187), seed 0 (float32 Adam,
  up to 20000 steps);
* double_descent_rf: seed 0, n = 1000 (numpy on the CPU whatever `device` says).

    python benchmarks/gpu_slices.py run --device cuda --data DIR --out DIR [--slices ...]
        [--set KEY=VALUE ...] [--match KEY=VALUE]
    python benchmarks/gpu_slices.py compare --pair LABEL A_DIR B_DIR [--pair ...] [--write NAME]

`run` writes the records under OUT/<study>/records and prints one line per job.
`compare` pairs the records of two runs by study and job key and prints where each run
computed (read from the records: `timing.device`, versions, threads), then per job the time
on each side and the largest relative difference over the record's numeric metrics, with its
tolerance: 1e-10 for the float64 kernels, 1e-8 for float64 training and the random-features
solves (GPU and CPU, or two CPUs, sum in different orders). Values below 1e-9 on both sides
are round-off residuals (an interpolator's train MSE, a KKT residual) and count as equal.
`double_descent_mlp` gets no tolerance: 20000 Adam steps at the interpolation threshold
amplify last-bit differences into a different network, so its GPU-against-CPU difference is
read against the same job on the CPU with another thread count (another summation order).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# study: (tolerance or None, [job overrides])
SLICES: dict[str, tuple[float | None, list[list[str]]]] = {
    "ntk_convergence": (
        1e-10,
        [
            [f"model.width={w}", "model.depth=3", f"model.activation={a}", "seed=0"]
            for w in (8192, 16384)
            for a in ("relu", "erf")
        ],
    ),
    "lazy_training": (
        1e-8,
        [
            ["model.width=4096", "model.depth=1", "seed=0"],
            ["model.width=16384", "model.depth=1", "seed=0"],
            ["model.width=2048", "model.depth=2", "seed=0"],
        ],
    ),
    "double_descent_mlp": (None, [[f"model.width={w}", "seed=0"] for w in (168, 187, 205)]),
    "double_descent_rf": (1e-8, [["seed=0"]]),
}
ROUNDOFF = 1e-9
SKIPPED = {"n_parameters", "n_probe", "n_train", "n_outputs", "steps"}


def compose(study: str, device: str, data: str, out: str, job: list[str], extra: list[str]):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return hydra_compose(
            "config",
            overrides=[
                f"study={study}",
                "profile=gpu",
                "tracking=off",
                "resume=false",
                f"device={device}",
                f"paths.data_dir={data}",
                f"paths.results_dir={out}",
                *job,
                *extra,
            ],
        )


def run(args) -> int:
    import torch

    from widthlab.runtime.jobs import run_job

    if args.device.startswith("cuda"):
        print(f"device {args.device}: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
        torch.zeros(1, device=args.device).sum().item()  # the CUDA context, before any timing
    failed = 0
    for study in args.slices:
        for job in SLICES[study][1]:
            if args.match and args.match not in job:
                continue
            cfg = compose(study, args.device, args.data, args.out, job, args.set)
            t0 = time.perf_counter()
            record = run_job(cfg)
            seconds = time.perf_counter() - t0
            failed += record["status"] != "ok"
            print(f"{study:20s} {record['key']:48s} {record['status']:6s} {seconds:8.2f} s")
            sys.stdout.flush()
    return 1 if failed else 0


def records(root: Path) -> dict[tuple[str, str], dict]:
    """{(study, job key): record} of a run's output folder, read (and checked) by the
    runtime's `read_records`, which skips locks and sweep manifests."""
    from widthlab.runtime.records import read_records

    found = {}
    for study in sorted(p for p in root.iterdir() if p.is_dir()):
        for kind in read_records(study / "records").values():
            found.update({(r["study"], r["key"]): r for r in kind})
    return found


def numbers(metrics: dict, prefix: str = "") -> dict[str, float]:
    """The record's numeric metrics, flattened (lists by index), counts left out."""
    out: dict[str, float] = {}
    items = metrics.items() if isinstance(metrics, dict) else enumerate(metrics)
    for k, v in items:
        name = f"{prefix}{k}"
        if isinstance(v, dict | list):
            out.update(numbers(v, f"{name}."))
        elif isinstance(v, int | float) and not isinstance(v, bool) and k not in SKIPPED:
            out[name] = float(v)
    return out


def worst_difference(a: dict, b: dict) -> tuple[float, str]:
    """Largest |a − b| / |b| over the shared numbers (|b| = 0: the absolute one), round-off
    residuals (both below `ROUNDOFF`) left out."""
    worst, where = 0.0, ""
    for k in sorted(set(a) & set(b)):
        x, y = a[k], b[k]
        if max(abs(x), abs(y)) < ROUNDOFF:
            continue
        if not (math.isfinite(x) and math.isfinite(y)):
            d = 0.0 if x == y or (math.isnan(x) and math.isnan(y)) else math.inf
        else:
            d = abs(x - y) / abs(y) if y != 0 else abs(x - y)
        if d > worst:
            worst, where = d, k
    return worst, where


def sides(found: dict[tuple[str, str], dict]) -> str:
    """Where one run's records were computed, as the records say (device and versions)."""
    seen = sorted(
        {
            f"{r['timing'].get('device', 'cpu')}, torch {r['provenance'].get('torch')}, "
            f"numpy {r['provenance'].get('numpy')}, python {r['provenance'].get('python')}, "
            f"{r['config'].get('threads')} thread(s) a job"
            for r in found.values()
        }
    )
    return "; ".join(seen)


def compare_pair(label: str, first: Path, second: Path) -> tuple[list[str], list[str]]:
    """The comparison lines of two runs' records, and the failures."""
    a, b = records(first), records(second)
    lines = [
        f"## {label}",
        f"#   A: {first}: {sides(a)}",
        f"#   B: {second}: {sides(b)}",
        f"{'study':20s} {'job':60s} {'A s':>8s} {'B s':>7s} {'A / B':>7s}  "
        f"{'worst rel. diff':>15s}  tolerance  (metric)",
    ]
    failures = []
    for key in sorted(set(a) & set(b)):
        tolerance = SLICES[key[0]][0]
        worst, where = worst_difference(numbers(b[key]["metrics"]), numbers(a[key]["metrics"]))
        ta, tb = a[key]["timing"]["seconds"], b[key]["timing"]["seconds"]
        shown = "none" if tolerance is None else f"{tolerance:.0e}"
        lines.append(
            f"{key[0]:20s} {key[1]:60s} {ta:8.2f} {tb:7.2f} {ta / tb:6.1f}×  "
            f"{worst:15.2e}  {shown:>9s}  ({where})"
        )
        if tolerance is not None and not worst <= tolerance:
            failures.append(f"{label}: {key}: {worst:.2e} > {tolerance:.0e} ({where})")
    return lines, failures


def compare(args) -> int:
    from harness import report

    lines, failures = [f"# {note}" for note in args.note], []
    for label, first, second in args.pair:
        more, failed = compare_pair(label, Path(first), Path(second))
        lines += [*more, ""]
        failures += failed
    lines += [f"FAIL {f}" for f in failures] or ["every difference within its tolerance"]
    report(args.write or "gpu_slices", lines, write=bool(args.write))
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--device", default="cuda")
    r.add_argument("--data", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--slices", nargs="+", default=list(SLICES), choices=list(SLICES))
    r.add_argument("--set", nargs="*", default=[], help="more overrides, e.g. threads=2")
    r.add_argument("--match", help="only the jobs with this override, e.g. model.width=187")
    c = sub.add_parser("compare")
    c.add_argument(
        "--pair",
        nargs=3,
        action="append",
        required=True,
        metavar=("LABEL", "A", "B"),
        help="two runs' output folders to compare, under a label (repeatable)",
    )
    c.add_argument("--write", help="also write benchmarks/results/<WRITE>.txt")
    c.add_argument("--note", action="append", default=[], help="a line under the header")
    args = parser.parse_args()
    return run(args) if args.command == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
