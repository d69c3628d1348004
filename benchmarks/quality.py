"""Quality: VAETransformer against PCA, KernelPCA, Isomap and UMAP.

Two data sets, each split 70/30 (stratified) and standardised with training
statistics: scikit-learn's digits, and a synthetic non-linear manifold (a Swiss
roll mapped non-linearly into 20 dimensions, labelled by position along the roll).
Every method is fitted on the training part and measured on the held-out part:
fit and transform time, 5-NN accuracy in the latent space, trustworthiness
(5 neighbours), reconstruction MSE (methods with an inverse transform) and
log-likelihood (methods with a density: PCA exactly, the VAE as a lower bound).

    python benchmarks/quality.py [--seeds 0 1 2] [--datasets digits manifold]

Prints markdown tables and writes ``quality_metrics.png`` (every measure, by method)
and ``quality_embeddings.png`` (the held-out rows' 2-D codes of the first seed) to
``--output-dir`` (``benchmark_output`` by default).

UMAP is measured when ``umap-learn`` is installed (``pip install umap-learn``).
Run it alone: two torch processes sharing the cores slow each other down.
"""

import argparse
import statistics
import time
import warnings
from pathlib import Path

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


def methods(n_components, seed, vae_params=None):
    found = {
        "PCA": PCA(n_components, random_state=seed),
        "KernelPCA": KernelPCA(
            n_components, kernel="rbf", fit_inverse_transform=True, random_state=seed
        ),
        "Isomap": Isomap(n_components=n_components),
        "VAETransformer": VAETransformer(
            n_components, random_state=seed, **(vae_params or {})
        ),
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
    return row, Z_test


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--n-components", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--methods", nargs="+", default=None, help="subset to run")
    parser.add_argument(
        "--max-iter", type=int, default=None, help="VAE epochs (default: its default)"
    )
    parser.add_argument("--output-dir", type=Path, default=Path("benchmark_output"))
    parser.add_argument(
        "--skip-inverse",
        nargs="+",
        default=[],
        help="methods whose reconstruction MSE is not measured (UMAP's "
        "inverse_transform takes minutes)",
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # convergence chatter would drown the tables

    vae_params = {} if args.max_iter is None else {"max_iter": args.max_iter}
    rows, embeddings = [], {}
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
                for method, model in methods(n_components, seed, vae_params).items():
                    if args.methods and method not in args.methods:
                        continue
                    inverse = method not in args.skip_inverse
                    row, Z_test = measure(
                        model, X_train, X_test, y_train, y_test, inverse
                    )
                    results.setdefault(method, []).append(row)
                    if n_components == 2 and seed == args.seeds[0]:
                        embeddings.setdefault(name, {})[method] = (Z_test, y_test)
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
    args.output_dir.mkdir(parents=True, exist_ok=True)
    for path in (
        plot_metrics(rows, args.output_dir / "quality_metrics.png"),
        plot_embeddings(embeddings, args.output_dir / "quality_embeddings.png"),
    ):
        if path is not None:
            print(f"wrote {path}")
    return rows


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(rows, path):
    """One bar chart per data set, latent size and measure; methods as bars."""
    if not rows:
        return None
    plt = _pyplot()
    settings = list(dict.fromkeys((r["dataset"], r["k"]) for r in rows))
    measures = {  # measure: which way is better
        "5-NN acc": "higher",
        "trust": "higher",
        "MSE": "lower",
        "log-lik": "higher",
        "fit s": "lower",
    }
    fig, axes = plt.subplots(
        len(settings),
        len(measures),
        figsize=(3.2 * len(measures), 2.2 * len(settings)),
        squeeze=False,
    )
    for (dataset, k), axes_row in zip(settings, axes, strict=True):
        chosen = [r for r in rows if (r["dataset"], r["k"]) == (dataset, k)]
        for (measure_name, better), ax in zip(measures.items(), axes_row, strict=True):
            names = [r["method"] for r in chosen]
            values = [r[measure_name] for r in chosen]  # NaN: no bar
            colors = ["C1" if n == "VAETransformer" else "C0" for n in names]
            ax.barh(names, np.nan_to_num(values), color=colors)
            ax.invert_yaxis()
            ax.set_title(f"{dataset}, k={k}: {measure_name} ({better})", fontsize=9)
            ax.tick_params(labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_embeddings(embeddings, path):
    """The held-out rows' 2-D codes, one panel per data set and method."""
    if not embeddings:
        return None
    plt = _pyplot()
    n_methods = max(len(by_method) for by_method in embeddings.values())
    fig, axes = plt.subplots(
        len(embeddings),
        n_methods,
        figsize=(3 * n_methods, 3 * len(embeddings)),
        squeeze=False,
    )
    for axes_row, (dataset, by_method) in zip(axes, embeddings.items(), strict=True):
        for ax in axes_row[len(by_method) :]:
            ax.axis("off")
        # A data set may have fewer methods than the widest row (UMAP, filters).
        for ax, (method, (Z, y)) in zip(axes_row, by_method.items(), strict=False):
            ax.scatter(Z[:, 0], Z[:, 1], c=y, s=4, cmap="tab10")
            ax.set_title(f"{dataset}: {method}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
