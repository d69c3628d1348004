"""Serving: transform under onnxruntime against VAETransformer.transform (torch).

A default-architecture model (``hidden_layer_sizes=(512, 256)``) of a float32
table of ``--features`` columns is exported with ``VAETransformer.to_onnx`` and
timed both ways on the same rows: one row at a time (a web request: latency)
and ``--rows`` rows in one call (a batch job: throughput). Calls alternate
between the two so that machine noise hits both alike; medians are reported,
with the largest difference between the two results.

    python benchmarks/serving.py [--rows 100000] [--features 50] [--repeats 5]

The model is trained for two epochs only: serving cost does not depend on how
well it was trained. Run it alone: two torch processes sharing the cores slow
each other down.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
import onnxruntime as ort
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--single-row-calls", type=int, default=300)
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    X = rng.normal(size=(args.rows, args.features)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        vae = VAETransformer(max_iter=2, random_state=0).fit(X[:5000])
    session = ort.InferenceSession(
        vae.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"]
    )

    def onnx_transform(rows):
        return session.run(None, {"X": rows})[0]

    difference = np.abs(onnx_transform(X) - vae.transform(X)).max()
    one_row = X[:1]
    calls = args.single_row_calls
    results = {"torch": {}, "onnxruntime": {}}
    for _ in range(args.repeats):  # alternate, so noise hits both alike
        for name, transform in [
            ("torch", vae.transform),
            ("onnxruntime", onnx_transform),
        ]:
            results[name].setdefault("one", []).append(
                median_seconds(lambda t=transform: t(one_row), calls)
            )
            results[name].setdefault("many", []).append(
                median_seconds(lambda t=transform: t(X), 1)
            )

    print(
        f"\n### transform: {args.features} float32 columns, network "
        f"{args.features}-512-256-{2 * vae.n_components}, medians of "
        f"{args.repeats} alternating runs\n"
    )
    print(f"| engine | 1 row (us) | {args.rows:,} rows (s) | rows/s |")
    print("|---|---|---|---|")
    for name, times in results.items():
        one = statistics.median(times["one"]) * 1e6
        many = statistics.median(times["many"])
        print(f"| {name} | {one:.0f} | {many:.3f} | {args.rows / many:,.0f} |")
    print(
        f"\nlargest |onnxruntime - torch| over the {args.rows:,} rows: {difference:.1e}"
    )
    return {
        "difference": float(difference),
        **{
            name: {key: statistics.median(value) for key, value in times.items()}
            for name, times in results.items()
        },
    }


if __name__ == "__main__":
    main()
