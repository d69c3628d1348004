"""Imputation error of VAEImputer against scikit-learn's imputers.

Two mixed tables: the Palmer penguins (``palmerpenguins`` package: species,
island and sex as labels, four measurements, the year) and a synthetic table whose
eight numeric and two label columns are non-linear functions of a 2-D latent
position. Entries are removed completely at random (MCAR) at each rate; every
imputer is fitted on the table with holes and fills them. Reported: RMSE over the
removed numeric entries, in units of each column's standard deviation and averaged
over the numeric columns (lower is better), and accuracy over the removed label
entries (higher is better); means over the mask seeds.

The scikit-learn imputers need numbers: SimpleImputer fills numbers with the
column mean and labels with the most frequent level; KNNImputer and
IterativeImputer work on standardised numbers and one-hot labels (a missing label
is a missing one-hot group) and the label is the largest filled one-hot entry.

    python benchmarks/imputation.py                 # both tables, 3 seeds
    python benchmarks/imputation.py --seeds 0 --rates 0.3
"""

import argparse
import json
import time
import warnings

import numpy as np
import pandas as pd
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer

from skvae import VAEImputer, VAETransformer

# One setting for every table and rate: a model chosen per cell would flatter it.
VAE_PARAMS = dict(n_components=4, max_iter=300, warmup_epochs=20)


def penguins():
    from palmerpenguins import load_penguins

    return load_penguins()


def synthetic(n_rows=2000, seed=0):
    """Eight numeric and two label columns driven by a 2-D latent position."""
    rng = np.random.RandomState(seed)
    t = rng.uniform(-1.5, 1.5, size=(n_rows, 2))
    a, b = t[:, 0], t[:, 1]
    numbers = {
        "sin_a": np.sin(2 * a),
        "cos_b": np.cos(2 * b),
        "a_times_b": a * b,
        "a_squared": a**2,
        "exp_b": np.exp(b) / 2,
        "tanh_sum": np.tanh(2 * (a + b)),
        "radius": np.sqrt(a**2 + b**2),
        "b_cubed": b**3 / 2,
    }
    frame = pd.DataFrame(
        {name: v + 0.05 * rng.randn(n_rows) for name, v in numbers.items()}
    )
    quadrant = np.where(a > 0, "east", "west").astype(object)
    quadrant = quadrant + np.where(b > 0, "-north", "-south")
    frame["quadrant"] = pd.Series(quadrant, dtype=object)
    frame["band"] = pd.Series(
        np.array(["low", "mid", "high"])[np.digitize(a + b, [-0.7, 0.7])],
        dtype=object,
    )
    return frame


def split_columns(frame):
    numeric = [c for c in frame if pd.api.types.is_numeric_dtype(frame[c])]
    labels = [c for c in frame if c not in numeric]
    return numeric, labels


def remove_at_random(frame, rate, seed):
    """``frame`` with ``rate`` of its observed entries removed, and where."""
    holes = (np.random.RandomState(seed).rand(*frame.shape) < rate) & frame.notna()
    return frame.mask(holes), holes.to_numpy()


# ---------------------------------------------------------------- the imputers


def impute_simple(holey, numeric, labels):
    filled = holey.copy()
    if numeric:
        filled[numeric] = SimpleImputer(strategy="mean").fit_transform(holey[numeric])
    if labels:
        as_object = holey[labels].astype(object).where(holey[labels].notna(), np.nan)
        filled[labels] = SimpleImputer(strategy="most_frequent").fit_transform(
            as_object
        )
    return filled


def impute_numeric(imputer, holey, numeric, labels):
    """Run a numbers-only imputer on standardised numbers and one-hot labels."""
    mean, std = holey[numeric].mean(), holey[numeric].std()
    parts = [(holey[numeric] - mean) / std]
    groups = {}
    for column in labels:
        one_hot = pd.get_dummies(holey[column], prefix=column, dtype=float)
        one_hot[holey[column].isna().to_numpy()] = np.nan
        groups[column] = list(one_hot.columns)
        parts.append(one_hot)
    matrix = pd.concat(parts, axis=1)
    filled_matrix = pd.DataFrame(
        imputer.fit_transform(matrix), columns=matrix.columns, index=holey.index
    )
    filled = holey.copy()
    filled[numeric] = filled_matrix[numeric] * std + mean
    for column, names in groups.items():
        best = filled_matrix[names].to_numpy().argmax(axis=1)
        levels = [name[len(column) + 1 :] for name in names]
        filled[column] = pd.Series(np.array(levels, dtype=object)[best], dtype=object)
    return filled


def impute_vae(holey, seed):
    estimator = VAETransformer(random_state=seed, **VAE_PARAMS)
    return VAEImputer(estimator).fit_transform(holey)


IMPUTERS = {
    "SimpleImputer": lambda holey, num, lab, seed: impute_simple(holey, num, lab),
    "KNNImputer": lambda holey, num, lab, seed: impute_numeric(
        KNNImputer(n_neighbors=5), holey, num, lab
    ),
    "IterativeImputer": lambda holey, num, lab, seed: impute_numeric(
        IterativeImputer(max_iter=10, random_state=seed), holey, num, lab
    ),
    "VAEImputer": lambda holey, num, lab, seed: impute_vae(holey, seed),
}


# ---------------------------------------------------------------- scoring


def errors(truth, filled, holes, numeric, labels):
    """Mean normalised RMSE over numeric columns; accuracy over label entries."""
    rmse = []
    for column in numeric:
        where = holes[:, truth.columns.get_loc(column)]
        if where.any():
            diff = filled[column][where].astype(float) - truth[column][where]
            rmse.append(np.sqrt(np.mean(diff**2)) / truth[column].std())
    hits = total = 0
    for column in labels:
        where = holes[:, truth.columns.get_loc(column)]
        hits += (
            filled[column][where].astype(str) == truth[column][where].astype(str)
        ).sum()
        total += where.sum()
    return float(np.mean(rmse)), (hits / total if total else float("nan"))


def run(name, table, rates, seeds):
    numeric, labels = split_columns(table)
    rows = []
    for rate in rates:
        for method, impute in IMPUTERS.items():
            results = []
            for seed in seeds:
                holey, holes = remove_at_random(table, rate, seed)
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    filled = impute(holey, numeric, labels, seed)
                seconds = time.perf_counter() - start
                results.append(
                    (*errors(table, filled, holes, numeric, labels), seconds)
                )
            rmse, accuracy, seconds = np.mean(results, axis=0)
            rows.append((rate, method, rmse, accuracy, seconds))
    print(
        f"\n{name} ({table.shape[0]} rows; numeric: {len(numeric)}, labels: "
        f"{len(labels)})\n"
    )
    print("| missing | method | numeric RMSE (sd units) | label accuracy | time s |")
    print("|---|---|---|---|---|")
    for rate, method, rmse, accuracy, seconds in rows:
        print(
            f"| {rate:.0%} | {method} | {rmse:.3f} | {accuracy:.3f} | {seconds:.1f} |"
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[0.1, 0.3, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--tables",
        nargs="+",
        default=["penguins", "synthetic"],
        choices=["penguins", "synthetic"],
    )
    parser.add_argument(
        "--vae-params",
        type=json.loads,
        default={},
        help="JSON overrides of the VAETransformer settings",
    )
    parser.add_argument(
        "--rows", type=int, default=2000, help="rows of the synthetic table"
    )
    args = parser.parse_args(argv)
    VAE_PARAMS.update(args.vae_params)
    print(f"VAETransformer settings: {VAE_PARAMS}")
    tables = {"penguins": penguins, "synthetic": lambda: synthetic(args.rows)}
    for name in args.tables:
        run(name, tables[name](), args.rates, args.seeds)


if __name__ == "__main__":
    main()
