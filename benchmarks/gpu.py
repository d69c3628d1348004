"""GPU check: the big-tables targets on a CUDA device, in one short run.

Three measurements on a float32 table of ``--rows`` x ``--features`` (the
5-dimensional tanh manifold of ``scale.py``), each after a warm-up that pays
one-off costs (CUDA context, kernels, torch's optimiser imports):

1. a default ``VAETransformer().fit`` (the automatic budget) on the device:
   time, plan, held-out MSE; and the same with ``precision="bfloat16"``;
2. training rate at ``--batch-size`` (1,024 by default): two epochs of
   VAETransformer with its steps replayed from CUDA graphs
   (``SKVAE_CUDA_GRAPHS=1``, experimental) and two with eager steps, against
   two epochs of the hand-written loop of ``speed.py`` on a tensor already on
   the device (rows per second, and their ratios);
3. ``transform`` of the whole float32 array from host memory, validation and
   transfers included (rows per second, median of three), beside the copy of
   the array to the device alone, from pageable and from pinned memory: the
   transfer's limit, and whether staging batches in pinned memory would pay.

    python benchmarks/gpu.py                      # 1,000,000 x 100 on CUDA
    python benchmarks/gpu.py --rows 2000 --features 8 --device cpu   # a smoke run

The targets (issue "Big tables"): default fit of 1,000,000 x 100 under 20 s;
at batch 1,024 at least 2x the hand-written loop's rows/s; transform at
10,000,000 rows/s or more. Prints a markdown table.
"""

import argparse
import importlib.util
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from skvae import VAETransformer


def load(name):
    path = Path(__file__).resolve().with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def synchronize(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(function, device):
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device: run with --device cpu for a smoke run.")
    scale, speed = load("scale"), load("speed")
    X, _ = scale.manifold(args.rows, args.features)
    X_test, _ = scale.manifold(min(args.rows, 20_000), args.features, draw=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = measure(args, X, X_test, speed)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    plan, rows = m["plan"], args.rows
    train_ratio = m["skvae_rate"] / m["hand_rate"]
    eager_ratio = m["eager_rate"] / m["hand_rate"]
    print(f"{rows:,} x {args.features} float32 on {name}")
    print("| measure | skvae | hand-written | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| default fit (plan {plan['batch_size']} x {plan['max_iter']}, CUDA "
        f"graphs {'on' if plan['cuda_graphs'] else 'off'}), s "
        f"| {m['fit_s']:.1f} | | | under 20 s at 1,000,000 x 100 |"
    )
    print(f"| held-out MSE of the default fit (floor 0.01) | {m['mse']:.4f} | | | |")
    print(
        f"| the same with precision='bfloat16': fit s / held-out MSE "
        f"| {m['bf16_fit_s']:.1f} / {m['bf16_mse']:.4f} | | | |"
    )
    print(
        f"| train rows/s at batch {args.batch_size} (2 epochs, whole fit, CUDA "
        f"graphs {'on' if m['graphed'] else 'off'}) "
        f"| {m['skvae_rate']:,.0f} | {m['hand_rate']:,.0f} | {train_ratio:.2f}x "
        "| 2x |"
    )
    print(
        f"| the same, SKVAE_CUDA_GRAPHS=0 (eager steps) "
        f"| {m['eager_rate']:,.0f} | {m['hand_rate']:,.0f} | {eager_ratio:.2f}x | |"
    )
    print(
        f"| transform rows/s (from host float32) | {rows / m['transform_s']:,.0f} "
        "| | | 10,000,000 |"
    )
    # What the copy alone allows: how far transform is from the transfer, and
    # whether staging batches in pinned memory would pay.
    pinned = m["pinned_s"]
    print(
        f"| copy of the rows to the device, rows/s: pageable / pinned "
        f"| {rows / m['pageable_s']:,.0f} / "
        f"{'n/a' if pinned is None else f'{rows / pinned:,.0f}'} | | | |"
    )
    return {
        "fit_s": m["fit_s"],
        "mse": m["mse"],
        "bf16_fit_s": m["bf16_fit_s"],
        "train_ratio": train_ratio,
        "eager_train_ratio": eager_ratio,
        "cuda_graphs": m["graphed"],
        "transform_rows_per_s": rows / m["transform_s"],
        "copy_rows_per_s": rows / m["pageable_s"],
    }


def default_fit(X, X_test, device, **params):
    """Seconds of a default fit, its held-out MSE and the model."""
    fit_s, vae = timed(
        lambda: VAETransformer(device=device, random_state=0, **params).fit(X), device
    )
    mse = float(np.mean((vae.inverse_transform(vae.transform(X_test)) - X_test) ** 2))
    return fit_s, mse, vae


def measure(args, X, X_test, speed):
    device = args.device
    m = {}
    for precision in ("float32", "bfloat16"):  # warm-ups
        VAETransformer(max_iter=1, device=device, precision=precision).fit(X[:2000])
    m["fit_s"], m["mse"], vae = default_fit(X, X_test, device)
    m["plan"] = vae.training_plan_
    m["bf16_fit_s"], m["bf16_mse"], _ = default_fit(
        X, X_test, device, precision="bfloat16"
    )

    def skvae_epochs(graphs):
        os.environ["SKVAE_CUDA_GRAPHS"] = "1" if graphs else "0"
        return VAETransformer(
            device=device,
            batch_size=args.batch_size,
            max_iter=2,
            warmup_epochs=0,
            n_iter_no_change=3,
            random_state=0,
        ).fit(X)

    skvae_s, graphed_fit = timed(lambda: skvae_epochs(True), device)
    eager_s, _ = timed(lambda: skvae_epochs(False), device)
    os.environ.pop("SKVAE_CUDA_GRAPHS")
    tensor = torch.from_numpy((X - X.mean(0)) / X.std(0)).to(device)
    speed.hand_written_fit(tensor[:2000], 2, 1, args.batch_size)  # warm-up
    hand_epoch_s, _ = speed.hand_written_fit(tensor, 2, 2, args.batch_size)
    m["skvae_rate"] = 2 * args.rows / skvae_s
    m["eager_rate"] = 2 * args.rows / eager_s
    m["graphed"] = graphed_fit.training_plan_["cuda_graphs"]
    m["hand_rate"] = args.rows / hand_epoch_s

    vae.transform(X[:1000])
    m["transform_s"] = statistics.median(
        timed(lambda: vae.transform(X), device)[0] for _ in range(3)
    )
    host = torch.from_numpy(X)
    m["pageable_s"] = statistics.median(
        timed(lambda: host.to(device, copy=True), device)[0] for _ in range(3)
    )
    m["pinned_s"] = None
    if torch.device(device).type == "cuda":
        pinned = host.pin_memory()
        m["pinned_s"] = statistics.median(
            timed(lambda: pinned.to(device, non_blocking=True), device)[0]
            for _ in range(3)
        )
    return m


if __name__ == "__main__":
    main()
