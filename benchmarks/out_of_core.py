"""Out of core: a default fit on a dask array read from disk a block at a time,
beside the same fit on the table loaded into memory, measured in one run.

The table is ``--rows`` x ``--features`` float32 rows of a 5-dimensional tanh
manifold with N(0, 0.1^2) noise (the noise floor of the reconstruction error is
0.01; ``scale.py``'s manifold), written once into ``--dir`` as a dask
npy-stack: one ``.npy`` file per block of ``--block-rows`` rows. The default
1,000,000 x 1,024 is 4.1 GB on disk.

Each way of fitting runs in its own process, and its peak resident memory
(``VmHWM``, reset once the table is loaded) is the fit's own:

- ``dask``: ``VAETransformer().fit(da.from_npy_stack(dir, mmap_mode=None))``;
  each block is read from its file when training reaches it.
- ``memory``: the blocks concatenated into one numpy array, then ``fit``.

Both report the fit's time, the training rows/s (rows seen over the fit's
time), the process's resident memory before the fit and at its peak, and the
held-out reconstruction error on 20,000 fresh rows.

    python benchmarks/out_of_core.py [--rows 1000000] [--features 1024]
        [--block-rows 16384] [--dir benchmark_output/out_of_core]
        [--ways dask memory]
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

NOISE_SD = 0.1
HELD_OUT = 20_000


def manifold_rows(n_rows, n_features, seed):
    """``n_rows`` rows of the fixed manifold, drawn with ``seed``."""
    rng = np.random.RandomState(0)
    weights = rng.randn(5, n_features) * (2 / np.sqrt(5))
    offsets = rng.randn(n_features) * 0.5
    rows = np.random.default_rng(seed)
    Z = rows.standard_normal((n_rows, 5), dtype=np.float32)
    X = np.tanh(Z @ weights.astype(np.float32) + offsets.astype(np.float32))
    X += NOISE_SD * rows.standard_normal(X.shape, dtype=np.float32)
    return X


def write_table(directory, n_rows, n_features, block_rows):
    """The table as a dask npy-stack in ``directory`` (kept if already there)."""
    import dask
    import dask.array as da

    directory = Path(directory)
    if (directory / "info").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    blocks = [
        da.from_delayed(
            dask.delayed(manifold_rows)(min(block_rows, n_rows - start), n_features, b),
            shape=(min(block_rows, n_rows - start), n_features),
            dtype=np.float32,
        )
        for b, start in enumerate(range(0, n_rows, block_rows))
    ]
    da.to_npy_stack(directory, da.concatenate(blocks), axis=0)


def status_mib(field):
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss():
    """Restart the peak-RSS count (Linux >= 4.0), so that the fit's peak is
    its own, not that of loading the table."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def run(way, directory, n_features, max_iter="auto"):
    """One fit in this process; prints its measurements as a JSON line."""
    import warnings

    import dask.array as da

    from skvae import VAETransformer

    with warnings.catch_warnings():  # pay the one-off import costs first
        warnings.simplefilter("ignore")
        VAETransformer(max_iter=1).fit(np.random.RandomState(0).randn(64, 4))
    X = da.from_npy_stack(directory, mmap_mode=None)
    if way == "memory":
        X = X.compute()
    reset_peak_rss()
    before = status_mib("VmRSS")
    vae = VAETransformer(max_iter=max_iter, random_state=0)
    start = time.perf_counter()
    vae.fit(X)
    seconds = time.perf_counter() - start
    peak = status_mib("VmHWM")
    held_out = manifold_rows(HELD_OUT, n_features, seed=10**6)
    mse = float(
        np.mean((vae.inverse_transform(vae.transform(held_out)) - held_out) ** 2)
    )
    samples = vae.history_[-1]["samples"]  # rows seen by the whole fit
    print(
        json.dumps(
            {
                "way": way,
                "seconds": seconds,
                "rows_per_second": samples / seconds,
                "epochs": vae.n_iter_,
                "batch_size": vae.training_plan_["batch_size"],
                "rss_before_mib": before,
                "peak_rss_mib": peak,
                "mse": mse,
            }
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--block-rows", type=int, default=16384)
    parser.add_argument("--dir", default="benchmark_output/out_of_core")
    parser.add_argument("--ways", nargs="+", default=["dask", "memory"])
    # "auto" (the default budget) or an int: short smoke runs.
    parser.add_argument(
        "--max-iter", default="auto", type=lambda v: v if v == "auto" else int(v)
    )
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    directory = str(Path(args.dir) / f"{args.rows}x{args.features}")
    if args.run:
        return run(args.run, directory, args.features, args.max_iter)

    write_table(directory, args.rows, args.features, args.block_rows)
    size = sum(f.stat().st_size for f in Path(directory).glob("*.npy")) / 1e9
    results = []
    for way in args.ways:
        command = [sys.executable, __file__, "--run", way, "--dir", args.dir]
        command += ["--rows", str(args.rows), "--features", str(args.features)]
        command += ["--max-iter", str(args.max_iter)]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))

    print(
        f"\n### Default fit of {args.rows:,} x {args.features} float32 "
        f"({size:.1f} GB on disk, blocks of {args.block_rows:,} rows)\n"
    )
    print(
        "| way | fit (s) | rows/s | epochs x batch | RSS before fit (MiB) "
        "| peak RSS (MiB) | held-out MSE |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['way']} | {r['seconds']:.1f} | {r['rows_per_second']:,.0f} "
            f"| {r['epochs']} x {r['batch_size']:,} | {r['rss_before_mib']:,.0f} "
            f"| {r['peak_rss_mib']:,.0f} | {r['mse']:.4f} |"
        )
    return results


if __name__ == "__main__":
    main()
