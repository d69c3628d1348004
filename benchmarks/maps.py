"""Maps: how well 2-D codes keep a labelled table's structure, skvae beside PCA
and UMAP, in one run.

Protocol (issue "2-D maps that rival UMAP"): for each seed, a 70/30 stratified
split, standardised on the training rows; each method is fitted on the training
rows and places the held-out rows. Metrics, medians over the seeds:

- 5-NN: a 5-nearest-neighbour classifier trained on the training codes, its
  accuracy on the held-out codes;
- trust: trustworthiness (5 neighbours) of the held-out rows' codes;
- MSE: held-out reconstruction error in standardised units (PCA and skvae);
- bound: skvae's held-out ``score`` (nats per row, standardised units);
- fit s: wall time of the fit.

Tables: ``digits`` (scikit-learn's 1,797 x 64). UMAP runs when ``umap-learn`` is
installed (the benchmarks extra).

    python benchmarks/maps.py [--seeds 0 1 2] [--setting JSON ...]

Each ``--setting`` adds a VAETransformer row with those parameters over
``n_components=2``; without any, the defaults, ``input_noise=0.6, beta=0.25``
and the same with ``neighbor_weight=64`` (the map setting of the user guide).
"""

import argparse
import json
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.manifold import trustworthiness
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

DEFAULT_SETTINGS = [
    {},
    {"input_noise": 0.6, "beta": 0.25},
    {"neighbor_weight": 64.0, "input_noise": 0.6, "beta": 0.25},
]


def split(X, y, seed):
    """Standardised training and held-out rows of a stratified 70/30 split."""
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def make_method(name, setting, seed):
    if name == "PCA":
        return PCA(n_components=2, random_state=seed)
    if name == "UMAP":
        import umap

        return umap.UMAP(n_components=2, random_state=seed)
    from skvae import VAETransformer

    return VAETransformer(**{"n_components": 2, "random_state": seed, **setting})


def measure(name, setting, X_train, X_test, y_train, y_test, seed):
    """One method's metrics on one split."""
    model = make_method(name, setting, seed)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Z_train = model.fit_transform(X_train)
        fit_s = time.perf_counter() - start
        Z_test = model.transform(X_test)
    knn = KNeighborsClassifier(5).fit(Z_train, y_train).score(Z_test, y_test)
    result = {
        "5-NN": knn,
        "trust": trustworthiness(X_test, Z_test, n_neighbors=5),
        "fit s": fit_s,
        "MSE": np.nan,
        "bound": np.nan,
    }
    if hasattr(model, "inverse_transform") and name != "UMAP":
        back = model.inverse_transform(Z_test)
        result["MSE"] = float(((back - X_test) ** 2).mean())
    if hasattr(model, "score_samples"):
        result["bound"] = float(model.score(X_test))
    return result


def methods(settings):
    rows = [("PCA", None)]
    try:
        import umap  # noqa: F401

        rows.append(("UMAP", None))
    except ImportError:
        print("UMAP left out: umap-learn is not installed")
    rows += [("skvae", setting) for setting in settings]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--setting", type=json.loads, action="append")
    args = parser.parse_args(argv)
    X, y = load_digits(return_X_y=True)
    results = []
    splits = {seed: split(X, y, seed) for seed in args.seeds}
    print(f"\n### digits, 2-D codes, medians of seeds {args.seeds}\n")
    print("| method | setting | 5-NN | trust | MSE | bound | fit s |")
    print("|---|---|---|---|---|---|---|")
    for name, setting in methods(args.setting or DEFAULT_SETTINGS):
        runs = [measure(name, setting, *splits[s], s) for s in args.seeds]
        median = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
        results.append({"method": name, "setting": setting, **median})
        shown = "" if setting is None else json.dumps(setting)
        print(
            f"| {name} | {shown} | {median['5-NN']:.3f} | {median['trust']:.3f} | "
            f"{median['MSE']:.3f} | {median['bound']:.1f} | {median['fit s']:.1f} |",
            flush=True,
        )
    return results


if __name__ == "__main__":
    main()
