"""Sparse input: a fit on a scipy CSR matrix, densified one minibatch at a time.

A ``--rows`` x ``--columns`` matrix of density ``--density`` (the default
100,000 x 20,000 at 0.1 %: 2M non-zeros, 24 MB as CSR, 16 GB as a dense float64
array), fitted with the default network for ``--epochs`` epochs in a fresh
process, beside scikit-learn's TruncatedSVD (the usual tool for sparse tables)
on the same matrix. Reports fit time, rows/s, transform time, and the peak RSS
of each (``VmHWM``, reset once the matrix is built).

    python benchmarks/sparse_input.py [--rows 100000] [--columns 20000]
        [--density 0.001] [--epochs 1]
"""

import argparse
import importlib.util
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def memory_probes():
    """``status_mib`` and ``reset_peak_rss``, shared with ``out_of_core.py``."""
    path = Path(__file__).resolve().with_name("out_of_core.py")
    spec = importlib.util.spec_from_file_location("out_of_core", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.status_mib, module.reset_peak_rss


def random_csr(n_rows, n_columns, density, seed=0):
    """Uniform non-zeros at random positions, drawn in memory proportional to
    their number (scipy.sparse.random draws from all n_rows * n_columns
    positions, which at 2e9 takes 16 GB)."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    n = int(n_rows * n_columns * density)
    rows = rng.integers(0, n_rows, n)
    columns = rng.integers(0, n_columns, n)
    matrix = sparse.csr_matrix(
        (rng.random(n), (rows, columns)), shape=(n_rows, n_columns)
    )
    matrix.sum_duplicates()
    return matrix


def run(method, args):

    matrix = random_csr(args.rows, args.columns, args.density)
    if method == "skvae":
        from skvae import VAETransformer

        model = VAETransformer(max_iter=args.epochs, random_state=0)
        with warnings.catch_warnings():  # pay the one-off import costs first
            warnings.simplefilter("ignore")
            VAETransformer(max_iter=1).fit(np.random.RandomState(0).randn(64, 4))
    else:
        from sklearn.decomposition import TruncatedSVD

        model = TruncatedSVD(n_components=2, random_state=0)
    status_mib, reset_peak_rss = memory_probes()
    reset_peak_rss()
    before = status_mib("VmRSS")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch: a ConvergenceWarning
        model.fit(matrix)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    Z = model.transform(matrix)
    transform_seconds = time.perf_counter() - start
    assert np.isfinite(Z).all()
    nbytes = matrix.data.nbytes + matrix.indices.nbytes + matrix.indptr.nbytes
    print(
        json.dumps(
            {
                "method": method,
                "fit_s": fit_seconds,
                "rows_per_s": args.rows
                * (args.epochs if method == "skvae" else 1)
                / fit_seconds,
                "transform_s": transform_seconds,
                "matrix_mib": nbytes / 2**20,
                "rss_before_mib": before,
                "peak_rss_mib": status_mib("VmHWM"),
            }
        )
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=20_000)
    parser.add_argument("--density", type=float, default=0.001)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["skvae", "svd"])
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run:
        return run(args.run, args)
    results = []
    for method in args.methods:
        command = [sys.executable, __file__, "--run", method]
        for flag in ("rows", "columns", "density", "epochs"):
            command += [f"--{flag}", str(getattr(args, flag))]
        out = subprocess.run(command, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    dense_gib = args.rows * args.columns * 8 / 2**30
    print(
        f"\n### {args.rows:,} x {args.columns:,} CSR at density {args.density:g} "
        f"({results[0]['matrix_mib']:.0f} MiB; {dense_gib:.1f} GiB as dense float64)\n"
    )
    print(
        "| method | fit (s) | rows/s | transform (s) | RSS before (MiB) "
        "| peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|")
    for r in results:
        name = (
            f"VAETransformer, {args.epochs} epoch(s)"
            if r["method"] == "skvae"
            else "TruncatedSVD(2)"
        )
        print(
            f"| {name} | {r['fit_s']:.1f} | {r['rows_per_s']:,.0f} "
            f"| {r['transform_s']:.1f} | {r['rss_before_mib']:,.0f} "
            f"| {r['peak_rss_mib']:,.0f} |"
        )
    return results


if __name__ == "__main__":
    main()
