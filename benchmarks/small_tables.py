"""Small tables: where patience decides how long a fit trains.

A table of a few hundred rows is one to three minibatches an epoch, so the
default 150-epoch plan is only 150-450 steps. Each setting is fitted on a 70 %
split of each table (``random_state`` 0, 1, 2 for the split and the model) and
scored on the other 30 %: the held-out log-likelihood bound per row (``score``,
nats, higher is better), the epochs run and the fit time; medians over the
seeds. The default ``n_iter_no_change="auto"`` waits at least 160 steps; the
old default, 10 epochs, is the second setting.

    python benchmarks/small_tables.py
    python benchmarks/small_tables.py --tables iris wine --setting '{"max_iter": 300}'

The penguins need ``palmerpenguins`` (the benchmarks extra); without it they are
left out.
"""

import argparse
import importlib.util
import json
import time
import warnings

import numpy as np
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.model_selection import train_test_split

from skvae import VAETransformer


def penguins():
    from palmerpenguins import load_penguins

    return load_penguins().dropna()


TABLES = {
    "iris": lambda: load_iris(as_frame=True).data,
    "wine": lambda: load_wine(as_frame=True).data,
    "penguins": penguins,
    "diabetes": lambda: load_diabetes(as_frame=True).data,
    "breast cancer": lambda: load_breast_cancer(as_frame=True).data,
}
SETTINGS = [{}, {"n_iter_no_change": 10}]


def measure(X, setting, seed):
    X_train, X_test = train_test_split(X, test_size=0.3, random_state=seed)
    vae = VAETransformer(n_components=2, random_state=seed, **setting)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X_train)
    seconds = time.perf_counter() - start
    return len(X_train), vae.score(X_test), vae.n_iter_, seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=list(TABLES), choices=TABLES)
    parser.add_argument("--setting", type=json.loads, action="append")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    tables = list(args.tables)
    if "penguins" in tables and importlib.util.find_spec("palmerpenguins") is None:
        print("(penguins left out: palmerpenguins is not installed)")
        tables.remove("penguins")
    print("| table | training rows | setting | held-out score | epochs | fit s |")
    print("|---|---|---|---|---|---|")
    results = []
    for name in tables:
        X = TABLES[name]()
        for setting in args.setting or SETTINGS:
            runs = [measure(X, setting, seed) for seed in args.seeds]
            n_rows = runs[0][0]
            score = float(np.median([r[1] for r in runs]))
            epochs = [r[2] for r in runs]
            seconds = float(np.median([r[3] for r in runs]))
            label = json.dumps(setting) if setting else "defaults"
            print(
                f"| {name} | {n_rows} | {label} | {score:.3f} | "
                f"{', '.join(map(str, epochs))} | {seconds:.1f} |"
            )
            results.append(
                {"table": name, "setting": setting, "score": score, "epochs": epochs}
            )
    return results


if __name__ == "__main__":
    main()
