"""Write the reference outputs that pin skvae's behaviour through refactors.

Run from the repository root with the code whose outputs are the reference:
``python tests/data/make_reference.py``. It writes, beside this file:

- ``penguins.csv``: the Palmer penguins (344 rows, CC0, from the
  ``palmerpenguins`` package), so that the test needs no extra package;
- ``reference_outputs.npz``: the outputs of ``transform``, ``inverse_transform``,
  ``sample``, ``score_samples`` and ``impute`` and the loss curves of several
  training paths, on the digits and the penguins (fixed ``random_state``, CPU);
- ``reference_model.pkl`` and ``reference_model.skops``: the penguins model,
  saved with pickle and with skops.

``tests/test_reference.py`` recomputes everything and compares exactly. The
committed files were made by main at b58cfb9.
"""

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_digits

from skvae import VAETransformer

HERE = Path(__file__).parent
SMALL = dict(
    n_components=2,
    hidden_layer_sizes=(32, 16),
    max_iter=6,
    random_state=0,
    device="cpu",
    n_importance_samples=4,
)


def digits():
    X, _ = load_digits(return_X_y=True)
    return X[:400]


def penguins():
    return pd.read_csv(HERE / "penguins.csv")


def with_holes(X, seed=0):
    """A copy of `X` with a fifth of its entries missing."""
    rng = np.random.RandomState(seed)
    X = X.copy()
    holes = rng.rand(*X.shape) < 0.2
    if isinstance(X, pd.DataFrame):
        return X.mask(holes)
    X[holes] = np.nan
    return X


def take(X, rows):
    return X.iloc[rows] if isinstance(X, pd.DataFrame) else X[rows]


def canonical(value):
    """A frame or array as a dict of plain numpy arrays: numbers as float64
    (NaN for holes), labels as strings ("<NA>" for holes)."""
    if isinstance(value, pd.DataFrame):
        out = {}
        for name in value.columns:
            column = value[name]
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(
                column
            ):
                out[str(name)] = column.astype("float64").to_numpy()
            else:
                out[str(name)] = np.array(
                    ["<NA>" if pd.isna(v) else repr(v) for v in column], dtype=str
                )
        out["__dtypes__"] = np.array([str(d) for d in value.dtypes], dtype=str)
        return out
    return {"": np.asarray(value)}


def outputs(X, X_holes):
    """Every output the reference pins, keyed by name."""
    results = {}
    vae = VAETransformer(**SMALL).fit(X)
    Z, Z_std = vae.transform(X, return_std=True)
    results["transform"] = Z
    results["transform_std"] = Z_std
    results["transform_few_rows"] = vae.transform(
        take(X, slice(0, 5))
    )  # numpy fast path
    results["inverse_transform"] = vae.inverse_transform(Z)
    if "sampling" in vae.get_params():  # (added after b58cfb9, which had no mixture)
        vae.set_params(sampling="prior")
    results["sample"] = vae.sample(25, random_state=0)
    results["score_samples"] = vae.score_samples(X)
    results["impute"] = vae.impute(X_holes)
    results["loss_curve"] = np.array(vae.loss_curve_)
    with_val = VAETransformer(**SMALL, early_stopping=True).fit(X)
    results["early_stopping_curve"] = np.array(
        with_val.loss_curve_ + with_val.validation_scores_
    )
    results["early_stopping_transform"] = with_val.transform(X)
    chunks = VAETransformer(**SMALL)
    for part in (
        take(X, slice(0, None, 2)),
        take(X, slice(1, None, 2)),
    ):  # (the penguins are sorted by species)
        chunks.partial_fit(part)
    results["partial_fit_curve"] = np.array(chunks.loss_curve_)
    results["partial_fit_transform"] = chunks.transform(X)
    warm = VAETransformer(**SMALL, warm_start=True).fit(X).set_params(max_iter=3)
    results["warm_start_curve"] = np.array(warm.fit(X).loss_curve_)
    results["warm_start_transform"] = warm.transform(X)
    holes_model = VAETransformer(**SMALL).fit(X_holes)
    results["holes_transform"] = holes_model.transform(X_holes)
    results["holes_score_samples"] = holes_model.score_samples(X_holes)
    results["holes_impute"] = holes_model.impute(X_holes)
    return vae, results


def flatten(prefix, results):
    flat = {}
    for name, value in results.items():
        for key, array in canonical(value).items():
            flat[f"{prefix}.{name}.{key}"] = array
    return flat


def reference():
    """The reference outputs of the current code, as one flat dict."""
    X = digits()
    _, digit_results = outputs(X, with_holes(X))
    frame = penguins()
    model, penguin_results = outputs(frame, with_holes(frame))
    return model, {
        **flatten("digits", digit_results),
        **flatten("penguins", penguin_results),
    }


def saved_model_outputs(model):
    frame = penguins()
    return flatten(
        "saved",
        {
            "transform": model.transform(frame),
            "sample": model.sample(10, random_state=1),
            "score_samples": model.score_samples(frame),
            "impute": model.impute(with_holes(frame, seed=1)),
        },
    )


def main():
    if not (HERE / "penguins.csv").exists():
        from palmerpenguins import load_penguins

        load_penguins().to_csv(HERE / "penguins.csv", index=False)
    model, flat = reference()
    flat.update(saved_model_outputs(model))
    np.savez_compressed(HERE / "reference_outputs.npz", **flat)
    with open(HERE / "reference_model.pkl", "wb") as file:
        pickle.dump(model, file)
    import skops.io as sio

    sio.dump(model, HERE / "reference_model.skops")
    print(f"{len(flat)} arrays written to {HERE}")


if __name__ == "__main__":
    main()
