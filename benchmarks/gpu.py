"""GPU check: the big-tables targets on a CUDA device, in one short run.

Three measurements on a float32 table of ``--rows`` x ``--features`` (the
5-dimensional tanh manifold of ``scale.py``), each after a warm-up that pays
one-off costs (CUDA context, kernels, torch's optimiser imports):

1. a default ``VAETransformer().fit`` (the automatic budget) on the device:
   time, plan, held-out MSE;
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
        results = measure(args, X, X_test, speed)
    fit_s, mse, plan, skvae_rate, eager_rate, graphed, hand_rate = results[:7]
    transform_s, pageable_s, pinned_s = results[7:]
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"{args.rows:,} x {args.features} float32 on {name}")
    print("| measure | skvae | hand-written | ratio | target |")
    print("|---|---|---|---|---|")
    print(
        f"| default fit (plan {plan['batch_size']} x {plan['max_iter']}, CUDA "
        f"graphs {'on' if plan['cuda_graphs'] else 'off'}), s "
        f"| {fit_s:.1f} | | | under 20 s at 1,000,000 x 100 |"
    )
    print(f"| held-out MSE of the default fit (floor 0.01) | {mse:.4f} | | | |")
    print(
        f"| train rows/s at batch {args.batch_size} (2 epochs, whole fit, CUDA "
        f"graphs {'on' if graphed else 'off'}) "
        f"| {skvae_rate:,.0f} | {hand_rate:,.0f} | {skvae_rate / hand_rate:.2f}x "
        "| 2x |"
    )
    print(
        f"| the same, SKVAE_CUDA_GRAPHS=0 (eager steps) "
        f"| {eager_rate:,.0f} | {hand_rate:,.0f} | {eager_rate / hand_rate:.2f}x | |"
    )
    print(
        f"| transform rows/s (from host float32) | {args.rows / transform_s:,.0f} "
        "| | | 10,000,000 |"
    )
    # What the copy alone allows: how far transform is from the transfer, and
    # whether staging batches in pinned memory would pay.
    print(
        f"| copy of the rows to the device, rows/s: pageable / pinned "
        f"| {args.rows / pageable_s:,.0f} / "
        f"{'n/a' if pinned_s is None else f'{args.rows / pinned_s:,.0f}'} | | | |"
    )
    return {
        "fit_s": fit_s,
        "mse": mse,
        "train_ratio": skvae_rate / hand_rate,
        "eager_train_ratio": eager_rate / hand_rate,
        "cuda_graphs": graphed,
        "transform_rows_per_s": args.rows / transform_s,
        "copy_rows_per_s": args.rows / pageable_s,
    }


def measure(args, X, X_test, speed):
    device = args.device
    VAETransformer(max_iter=1, device=device).fit(X[:2000])  # warm-up

    fit_s, vae = timed(
        lambda: VAETransformer(device=device, random_state=0).fit(X), device
    )
    mse = float(np.mean((vae.inverse_transform(vae.transform(X_test)) - X_test) ** 2))
    plan = vae.training_plan_

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
    skvae_rate = 2 * args.rows / skvae_s
    eager_rate = 2 * args.rows / eager_s
    graphed = graphed_fit.training_plan_["cuda_graphs"]
    hand_rate = args.rows / hand_epoch_s

    vae.transform(X[:1000])
    transform_s = statistics.median(
        timed(lambda: vae.transform(X), device)[0] for _ in range(3)
    )
    host = torch.from_numpy(X)
    pageable_s = statistics.median(
        timed(lambda: host.to(device, copy=True), device)[0] for _ in range(3)
    )
    pinned_s = None
    if torch.device(device).type == "cuda":
        pinned = host.pin_memory()
        pinned_s = statistics.median(
            timed(lambda: pinned.to(device, non_blocking=True), device)[0]
            for _ in range(3)
        )
    return (
        fit_s,
        mse,
        plan,
        skvae_rate,
        eager_rate,
        graphed,
        hand_rate,
        transform_s,
        pageable_s,
        pinned_s,
    )


if __name__ == "__main__":
    main()
