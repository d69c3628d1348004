"""Quality: VAETransformer against PCA, KernelPCA, Isomap and UMAP.

Two data sets, each split 70/30 (stratified) and standardised with training
statistics: scikit-learn's digits, and a synthetic non-linear manifold (a Swiss
roll mapped non-linearly into 20 dimensions, labelled by position along the roll).
Every method is fitted on the training part and measured on the held-out part:
fit and transform time, 5-NN accuracy in the latent space, trustworthiness
(5 neighbours), reconstruction MSE (methods with an inverse transform) and
log-likelihood (methods with a density: PCA exactly, the VAE as a lower bound).

    python benchmarks/quality.py [--seeds 0 1 2] [--datasets digits manifold]

UMAP is measured when ``umap-learn`` is installed (``pip install umap-learn``).
Run it alone: two torch processes sharing the cores slow each other down.
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits, make_swiss_roll
from sklearn.decomposition import PCA, KernelPCA
from sklearn.manifold import Isomap, trustworthiness
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

try:
    import umap
except ImportError:  # optional: the table says so
    umap = None


def digits():
    return load_digits(return_X_y=True)


def manifold(n_samples=3000, n_features=20, seed=0):
    """A Swiss roll bent non-linearly into ``n_features`` dimensions."""
    rng = np.random.RandomState(seed)
    roll, position = make_swiss_roll(n_samples, noise=0.05, random_state=seed)
    mixing = rng.standard_normal((3, n_features))
    X = np.tanh(roll @ mixing / 10) + 0.02 * rng.standard_normal(
        (n_samples, n_features)
    )
    y = np.digitize(position, np.quantile(position, np.linspace(0, 1, 7)[1:-1]))
    return X, y


DATASETS = {"digits": digits, "manifold": manifold}


def methods(n_components, seed):
    found = {
        "PCA": PCA(n_components, random_state=seed),
        "KernelPCA": KernelPCA(
            n_components, kernel="rbf", fit_inverse_transform=True, random_state=seed
        ),
        "Isomap": Isomap(n_components=n_components),
        "VAETransformer": VAETransformer(n_components, random_state=seed),
    }
    if umap is not None:
        found["UMAP"] = umap.UMAP(n_components=n_components, random_state=seed)
    return found


def measure(model, X_train, X_test, y_train, y_test, inverse=True):
    start = time.perf_counter()
    model.fit(X_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    Z_test = model.transform(X_test)
    transform_s = time.perf_counter() - start
    Z_train = model.transform(X_train)
    knn = KNeighborsClassifier(n_neighbors=5).fit(Z_train, y_train)
    row = {
        "fit s": fit_s,
        "transform s": transform_s,
        "5-NN acc": knn.score(Z_test, y_test),
        "trust": trustworthiness(X_test, Z_test, n_neighbors=5),
        "MSE": np.nan,
        "log-lik": np.nan,
    }
    reconstructs = hasattr(model, "inverse_transform") and not isinstance(model, Isomap)
    if inverse and reconstructs:
        row["MSE"] = float(np.mean((model.inverse_transform(Z_test) - X_test) ** 2))
    if hasattr(model, "score_samples"):
        row["log-lik"] = float(np.mean(model.score_samples(X_test)))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--methods", nargs="+", default=None, help="subset to run")
    parser.add_argument(
        "--skip-inverse",
        nargs="+",
        default=[],
        help="methods whose reconstruction MSE is not measured (UMAP's "
        "inverse_transform takes minutes)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # convergence chatter would drown the tables

    rows = []
    for name in args.datasets:
        X, y = DATASETS[name]()
        for n_components in args.n_components:
            results = {}
            for seed in args.seeds:
                X_train, X_test, y_train, y_test = train_test_split(
                    X, y, test_size=0.3, stratify=y, random_state=seed
                )
                scaler = StandardScaler().fit(X_train)
                X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
                for method, model in methods(n_components, seed).items():
                    if args.methods and method not in args.methods:
                        continue
                    inverse = method not in args.skip_inverse
                    row = measure(model, X_train, X_test, y_train, y_test, inverse)
                    results.setdefault(method, []).append(row)
            print(
                f"\n{name}, n_components={n_components}, medians over seeds "
                f"{args.seeds} (held-out 30 %, standardised units)"
            )
            columns = ["fit s", "transform s", "5-NN acc", "trust", "MSE", "log-lik"]
            print("| method | " + " | ".join(columns) + " |")
            print("|---|" + "---|" * len(columns))
            for method, runs in results.items():
                medians = {c: statistics.median(r[c] for r in runs) for c in columns}
                cells = ["n/a" if np.isnan(v) else f"{v:.3f}" for v in medians.values()]
                print(f"| {method} | " + " | ".join(cells) + " |")
                rows.append(
                    {"dataset": name, "k": n_components, "method": method, **medians}
                )
    if umap is None:
        print("\nUMAP not measured: umap-learn is not installed.")
    return rows


if __name__ == "__main__":
    main()
