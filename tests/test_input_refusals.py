"""Inputs an independent fuzzer found mishandled: each refusal names its column
or parameter and says what to do; extreme rows are told from a diverged model.

Every test here failed on main at b58cfb9 (a bare TypeError or OverflowError,
a silent fit on values that are no labels, a pandas casting error, advice to
refit a model that was fine, or a message that named nothing).
"""

import datetime
import decimal
import fractions
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from skvae import VAETransformer

FAST = dict(hidden_layer_sizes=(8,), max_iter=2, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(**{**FAST, **params}).fit(X)


def with_column(values, n_rows=30):
    rng = np.random.RandomState(0)
    return pd.DataFrame(
        {
            "x": rng.standard_normal(n_rows),
            "c": pd.Series((values * n_rows)[:n_rows], dtype=object),
        }
    )


# Object columns holding Python values that are not labels: (values, the type
# the message names, a word of its advice).
NOT_LABELS = [
    ([bytearray(b"a"), bytearray(b"b")], "bytearray", "Decode"),
    ([b"a", b"b"], "bytes", "Decode"),
    ([memoryview(b"a")], "memoryview", "Decode"),
    ([[1], [2]], "nested objects", "Flatten"),
    ([{"a": 1}], "nested objects", "Flatten"),
    ([frozenset({1})], "nested objects", "Flatten"),
    ([datetime.date(2020, 1, 1)], "datetime.date", "elapsed days"),
    ([datetime.datetime(2020, 1, 1)], "datetime.datetime", "elapsed days"),
    ([datetime.time(12, 0)], "datetime.time", "elapsed days"),
    ([datetime.timedelta(days=1)], "datetime.timedelta", "elapsed days"),
    ([pd.Timestamp("2020-01-01"), "a"], "Timestamp", "elapsed days"),
    ([decimal.Decimal("1.5"), "a"], "decimal.Decimal", "astype(str)"),
    ([fractions.Fraction(1, 3), "a"], "fractions.Fraction", "astype(str)"),
    ([1 + 2j, "a"], "complex", "astype(str)"),
    ([1 + 2j, 3 + 0j], "complex numbers", "imaginary"),
    ([object()], "object", "astype(str)"),
]


@pytest.mark.parametrize(
    "values, kind, advice", NOT_LABELS, ids=[k for _, k, _ in NOT_LABELS]
)
def test_fit_refuses_an_object_column_of_values_that_are_not_labels(
    values, kind, advice
):
    vae = VAETransformer(**FAST)
    with pytest.raises(ValueError) as refusal:
        vae.fit(with_column(values))
    message = str(refusal.value)
    assert "Column 'c'" in message and kind in message and advice in message
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize(
    "values, kind, advice", NOT_LABELS, ids=[k for _, k, _ in NOT_LABELS]
)
@pytest.mark.parametrize("method", ["transform", "score_samples", "impute"])
def test_inference_refuses_them_too_before_hashing(values, kind, advice, method):
    vae = fitted(with_column(["a", "b"]))
    with pytest.raises(ValueError) as refusal:
        getattr(vae, method)(with_column(values))
    message = str(refusal.value)
    assert "Column 'c'" in message and kind in message and advice in message


@pytest.mark.parametrize(
    "values",
    [
        [decimal.Decimal("1.5"), decimal.Decimal("0.1")],  # prices
        [fractions.Fraction(1, 3), 2],
        [1 + 0j, 2.5],  # complex, but real
        [1, "a", 2.5, None],  # numbers among strings are labels
        [True, None, False],
        [np.nan, pd.NA, None, "a", "b"],  # every missing marker is a hole
    ],
)
def test_labels_and_numbers_of_any_real_type_are_still_taken(values):
    vae = fitted(with_column(values))
    assert np.isfinite(vae.transform(with_column(values))).all()


def test_python_ints_beyond_the_float_range_are_refused_naming_the_column():
    frame = with_column([2**1100, 1])
    with pytest.raises(ValueError, match=r"Column 'c' holds the integer .* digits"):
        VAETransformer(**FAST).fit(frame)
    vae = fitted(with_column([5, 1]))
    with pytest.raises(ValueError, match="Column 'c'"):
        vae.transform(frame)
    # A plain array of Python ints: a ValueError, not an OverflowError.
    with pytest.raises(ValueError, match="too large for a float"):
        VAETransformer(**FAST).fit(np.array([[2**1100, 1], [2, 3]], dtype=object))


def test_a_label_column_that_turns_into_numbers_is_named_as_such():
    vae = fitted(with_column(["a", "b"]))
    with pytest.raises(ValueError, match="Column 'c' held labels .* has numbers now"):
        vae.transform(with_column([decimal.Decimal("1.5")]))


@pytest.mark.parametrize(
    "dtype, top", [("Int64", 2**63 - 1), ("UInt64", 2**64 - 1), ("int64", 2**63 - 1)]
)
@pytest.mark.parametrize("mixed", [False, True], ids=["numbers", "with labels"])
def test_impute_keeps_integers_at_the_end_of_their_range_exactly(dtype, top, mixed):
    n = 30
    values = [top - i % 5 for i in range(n)]
    frame = pd.DataFrame({"x": np.random.RandomState(0).standard_normal(n)})
    frame["big"] = pd.array(values, dtype=dtype)
    if mixed:
        frame["label"] = pd.Series(["a", "b", "c"] * 10, dtype=object)
    holes = frame.copy()
    holes.loc[::3, "x"] = np.nan
    if dtype != "int64":  # a numpy int column cannot hold a hole
        holes.loc[1::3, "big"] = pd.NA
    vae = fitted(frame)
    filled = vae.impute(holes)
    assert filled["big"].dtype == frame["big"].dtype
    observed = holes["big"].notna().to_numpy()
    assert filled["big"][observed].tolist() == holes["big"][observed].tolist()
    assert filled.notna().all().all()


@pytest.fixture(scope="module")
def model_of_frame():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame({"x": rng.standard_normal(40), "y": rng.standard_normal(40)})
    return frame, fitted(frame)


@pytest.mark.parametrize("value", [1e30, -1e30, 1e300])
@pytest.mark.parametrize(
    "method", ["transform_std", "score_samples", "impute"], ids=str
)
def test_a_row_far_outside_the_training_data_is_named_not_blamed_on_the_model(
    model_of_frame, value, method
):
    frame, vae = model_of_frame
    rows = frame.copy()
    rows.loc[3, "y"] = value
    rows.loc[5, "x"] = np.nan  # a hole for impute
    call = {
        "transform_std": lambda: vae.transform(rows, return_std=True),
        "score_samples": lambda: vae.score_samples(rows),
        "impute": lambda: vae.impute(rows),
    }[method]
    with pytest.raises(ValueError) as refusal:
        call()
    message = str(refusal.value)
    assert "far outside the training data" in message
    assert "column 'y' (row 3)" in message and f"{value!r}" in message
    assert "diverged" not in message


def test_codes_far_from_the_prior_are_named_in_inverse_transform(model_of_frame):
    _, vae = model_of_frame
    with pytest.raises(ValueError, match="far from the prior"):
        vae.inverse_transform(np.array([[1e300, 0.0], [0.0, 0.0]]))


def test_a_model_with_non_finite_weights_says_it_diverged(model_of_frame):
    frame, vae = model_of_frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        broken = VAETransformer(**FAST).fit(frame)
    first = broken.module_.encoder.net[0]
    first.weight.data[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"weights have diverged \(some are NaN"):
        broken.score_samples(frame)


@pytest.mark.parametrize("fitted_on", ["frame", "array"])
@pytest.mark.parametrize("method", ["fit", "transform", "score_samples", "impute"])
def test_an_infinity_is_refused_naming_its_column(fitted_on, method):
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(rng.standard_normal((40, 3)), columns=["a", "b", "c"])
    X = frame if fitted_on == "frame" else frame.to_numpy()
    bad = X.copy()
    if fitted_on == "frame":
        bad.loc[7, "b"] = np.inf
    else:
        bad[7, 1] = np.inf
    where = "column 'b'" if fitted_on == "frame" else "column 1"
    if method == "fit":
        call = lambda: VAETransformer(**FAST).fit(bad)  # noqa: E731
    else:
        call = lambda: getattr(fitted(X), method)(bad)  # noqa: E731
    with pytest.raises(ValueError, match=f"contains infinity in {where}"):
        call()


def test_an_infinity_in_a_sparse_matrix_names_its_column():
    counts = sparse.random(30, 5, density=0.5, random_state=0, format="csr")
    counts.data[-1] = np.inf
    column = counts.tocoo().col[-1]
    with pytest.raises(ValueError, match=f"contains infinity in column {column}"):
        VAETransformer(**FAST).fit(counts)


@pytest.mark.parametrize(
    "params, named",
    [
        (dict(n_components=10**9), "smaller n_components (now 1000000000)"),
        (dict(hidden_layer_sizes=(10**6, 10**6)), "smaller hidden_layer_sizes"),
        (dict(n_importance_samples=10**12), "(n_importance_samples)"),
    ],
)
def test_a_model_too_big_for_memory_names_the_parameter_at_fault(params, named):
    X = np.random.RandomState(0).standard_normal((50, 4))
    with pytest.raises(ValueError) as refusal:
        VAETransformer(**{**FAST, **params}).fit(X)
    assert named in str(refusal.value)


def test_a_fit_whose_last_step_breaks_the_weights_is_refused():
    # Found by the extended fuzzer: a finite loss, then a step (huge input
    # noise, a huge gradient) that left NaN weights in a model that looked fitted.
    params = dict(
        n_components=1,
        hidden_layer_sizes=8,
        beta=0.0,
        learning_rate_init=1e-06,
        max_iter=1,
        early_stopping=True,
        validation_fraction=0.01,
        input_noise=1000.0,
        random_state=1,
    )
    vae = VAETransformer(**params)
    with pytest.raises(ValueError, match="weights became NaN .* smaller input_noise"):
        vae.fit(np.random.RandomState(0).standard_normal((8, 3)))
    assert not hasattr(vae, "module_")
