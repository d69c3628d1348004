"""Scaling: fit time and peak memory of VAETransformer against the number of rows.

Each size runs in a fresh subprocess, so that its peak resident memory is its own
(the torch runtime alone takes about 400 MiB). Fit time is the whole ``fit``
(validation, standardisation, ``--epochs`` epochs; default architecture, batch 1024)
divided by the epochs, after a warm-up fit on 10 rows has paid the one-off import
costs; a linear algorithm shows a constant time per row.

    python benchmarks/scaling.py [--rows 1000 10000 100000 1000000] [--features 64]

Prints a markdown table and writes ``scaling.png`` to ``--output-dir``
(``benchmark_output`` by default).
"""

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path


def run_one(n_rows, n_features, epochs, batch_size):
    import numpy as np

    from skvae import VAETransformer

    X = (
        np.random.RandomState(0)
        .standard_normal((n_rows, n_features))
        .astype(np.float32)
    )
    # A first fit in a process pays one-off costs (torch's optimiser imports
    # torch._dynamo lazily, ~2 s here); pay them on 10 rows, outside the timing.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        VAETransformer(max_iter=1, device="cpu").fit(X[:10])
    vae = VAETransformer(
        batch_size=batch_size,
        max_iter=epochs,
        warmup_epochs=0,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device="cpu",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        vae.fit(X)
        fit_s = time.perf_counter() - start
    start = time.perf_counter()
    vae.transform(X)
    transform_s = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    data_mib = X.nbytes / 2**20
    print(
        json.dumps(
            dict(
                fit_s=fit_s,
                transform_s=transform_s,
                peak_mib=peak_mib,
                data_mib=data_mib,
            )
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1000, 10000, 100000, 1000000]
    )
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmark_output"))
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        run_one(args.child, args.features, args.epochs, args.batch_size)
        return

    print(
        f"{args.features} float32 features, batch {args.batch_size}, "
        f"{args.epochs} epoch(s), default architecture"
    )
    print(
        "| rows | fit s / epoch | us / row / epoch | transform s | peak RSS MiB "
        "| data MiB |"
    )
    print("|---|---|---|---|---|---|")
    results = []
    for n_rows in args.rows:
        command = [
            sys.executable, __file__, "--child", str(n_rows),
            "--features", str(args.features), "--epochs", str(args.epochs),
            "--batch-size", str(args.batch_size),
        ]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        per_epoch = r["fit_s"] / args.epochs
        print(
            f"| {n_rows:,} | {per_epoch:.2f} | {per_epoch / n_rows * 1e6:.1f} | "
            f"{r['transform_s']:.2f} | {r['peak_mib']:.0f} | {r['data_mib']:.0f} |"
        )
        results.append({"rows": n_rows, "epoch_s": per_epoch, **r})
    path = plot_scaling(results, args.output_dir)
    print(f"\nwrote {path}")


def plot_scaling(results, output_dir):
    """Fit time per epoch and peak memory against rows, log-log; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r["rows"] for r in results]
    epoch_s = [r["epoch_s"] for r in results]
    fig, (time_ax, memory_ax) = plt.subplots(1, 2, figsize=(10, 3.6))
    time_ax.loglog(rows, epoch_s, "o-", label="VAETransformer.fit")
    # A line through the largest size with slope 1: what linear scaling looks like.
    per_row = epoch_s[-1] / rows[-1]
    time_ax.loglog(
        rows, [n * per_row for n in rows], "--", color="grey", label="linear"
    )
    time_ax.set_xlabel("rows")
    time_ax.set_ylabel("fit s / epoch")
    time_ax.legend()
    memory_ax.semilogx(rows, [r["peak_mib"] for r in results], "o-", label="peak RSS")
    memory_ax.semilogx(rows, [r["data_mib"] for r in results], "s--", label="data")
    memory_ax.set_xlabel("rows")
    memory_ax.set_ylabel("MiB")
    memory_ax.legend()
    fig.tight_layout()
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "scaling.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
