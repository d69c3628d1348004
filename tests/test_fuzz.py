"""Property-based tests: inputs nobody listed.

The property, for every public method: it either raises a ValueError or
TypeError raised by skvae or scikit-learn itself (never one from inside torch,
pandas or narwhals) with a message, or returns finite values of the documented
shape. Derandomised, so that CI sees the same examples on every run; each
defect these tests found is also kept as a plain regression test in
``tests/test_robustness.py``.
"""

import os
import traceback
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from skvae import VAEImputer, VAETransformer

FAST = dict(hidden_layer_sizes=(8,), max_iter=2, warmup_epochs=0, random_state=0)

FUZZ = settings(
    derandomize=os.environ.get("SKVAE_FUZZ_EXPLORE") is None,
    deadline=None,
    max_examples=int(os.environ.get("SKVAE_FUZZ_EXAMPLES", 60)),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Where a refusal may come from: skvae's checks, or scikit-learn's validation.
OWN_CODE = ("/skvae/", "/sklearn/")


def refusal_is_ours(error):
    """True when ``error`` is a ValueError/TypeError raised in skvae or sklearn
    code with a message, not one escaping from a library below them."""
    if not isinstance(error, ValueError | TypeError) or not str(error).strip():
        return False
    innermost = traceback.extract_tb(error.__traceback__)[-1]
    return any(part in innermost.filename for part in OWN_CODE)


# Refusals about the whole table or model rather than one column or parameter.
TABLE_WIDE = (
    "feature names",
    "features, but",
    "0 rows",
    "sample(n_samples",
    "weights have diverged",
)


def assert_names_its_fault(error, columns=(), params=()):
    """A refusal says what is at fault: a column (by name, or position for
    an array), a parameter, or the table as a whole."""
    message = str(error)
    named = [repr(c) for c in columns] + [f"olumn {j}" for j in range(len(columns))]
    named += list(params)
    assert any(n in message for n in named) or any(t in message for t in TABLE_WIDE), (
        f"the refusal names no column or parameter: {message}"
    )


def fits_or_refuses(vae, X, columns=(), params=()):
    """Whether ``vae.fit(X)`` fitted; a refused fit leaves nothing that looks
    fitted and names what is at fault (``assert_names_its_fault``)."""
    fitted, error = attempt(vae.fit, X)
    if error is not None:
        assert not hasattr(vae, "module_")
        assert_names_its_fault(error, columns, params)
    return error is None


def attempt(function, *args, **kwargs):
    """(result, None) or (None, error), checking that any error is a refusal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function(*args, **kwargs), None
    except Exception as error:  # noqa: BLE001 - the property is about which
        assert refusal_is_ours(error), "".join(traceback.format_exception(error))
        event(f"{getattr(function, '__name__', function)} refused")
        return None, error


def assert_finite_table(result, n_rows, n_columns):
    assert result.shape == (n_rows, n_columns)
    if isinstance(result, pd.DataFrame):
        numbers = result.select_dtypes("number")
        assert np.isfinite(numbers.to_numpy(dtype=np.float64)).all()
        assert not result.isna().any().any()
    else:
        assert np.isfinite(result).all()


def check_every_method(vae, X, n_rows, n_columns):
    """Run the public methods of a fitted model on ``X``."""
    Z, error = attempt(vae.transform, X)
    if error is None:
        assert Z.shape == (n_rows, vae.n_components) and np.isfinite(Z).all()
        back, error = attempt(vae.inverse_transform, Z)
        if error is None:
            assert_finite_table(back, n_rows, n_columns)
    scores, error = attempt(vae.score_samples, X)
    if error is None:
        assert scores.shape == (n_rows,) and np.isfinite(scores).all()
    drawn, error = attempt(vae.sample, 3, random_state=0)
    assert error is None, "sample of a fitted model must work"
    assert_finite_table(drawn, 3, n_columns)
    filled, error = attempt(vae.impute, X)
    if error is None:
        assert_finite_table(filled, n_rows, n_columns)
    check_extreme_rows(vae, X)


EXTREMES = [1e30, -1e30, 1e300, 3e38, -1.7e308]


def with_an_extreme_entry(X, value):
    """`X` with one numeric entry replaced by ``value`` (None: no number column)."""
    if isinstance(X, pd.DataFrame):
        numbers = [
            j for j, dtype in enumerate(X.dtypes) if pd.api.types.is_float_dtype(dtype)
        ]
        if not numbers:
            return None
        X = X.copy()
        X.iloc[0, numbers[-1]] = value
        return X
    if not np.issubdtype(X.dtype, np.floating) or X.dtype == np.float16:
        return None
    X = X.astype(np.float64)
    X[0, -1] = value
    return X


def check_extreme_rows(vae, X):
    """Rows far outside the training data: a finite answer, or a refusal that
    names the column (never blame on the weights)."""
    for value in EXTREMES[:2] if len(X) > 1 else EXTREMES:
        extreme = with_an_extreme_entry(X, value)
        if extreme is None:
            return
        columns = list(X.columns) if isinstance(X, pd.DataFrame) else range(X.shape[1])
        for method in (
            lambda rows: vae.transform(rows, return_std=True)[1],
            vae.score_samples,
            vae.impute,
        ):
            result, error = attempt(method, extreme)
            if error is not None:
                assert_names_its_fault(error, list(columns))
            elif isinstance(result, np.ndarray):
                assert np.isfinite(result).all()


# ---------------------------------------------------------------- numbers

MAGNITUDES = st.sampled_from([1.0, 1e-30, 1e-8, 1e8, 1e30, 1e150, 1e300])


@st.composite
def number_arrays(draw):
    dtype = draw(
        st.sampled_from(
            [np.float64, np.float32, np.float16, np.int64, np.uint64, np.uint8, bool]
        )
    )
    n_rows = draw(st.integers(1, 30))
    n_columns = draw(st.integers(1, 5))
    scale = draw(MAGNITUDES)
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n_rows, n_columns)) * scale
    if draw(st.booleans()):  # a constant column
        X[:, draw(st.integers(0, n_columns - 1))] = draw(
            st.sampled_from([0.0, 1.0, -scale])
        )
    if draw(st.booleans()) and n_columns > 1:  # a duplicated column
        X[:, -1] = X[:, 0]
    if dtype is bool:
        return X > 0
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        # Through Python ints: the ends of 64-bit ranges are not float64 values.
        X = np.array(
            [[int(np.clip(np.rint(v), -2e18, 2e18)) for v in row] for row in X],
            dtype=object,
        )
        X = np.clip(X, int(info.min), int(info.max))
        if draw(st.booleans()):  # values at the end of the range
            X[0, 0] = int(info.max)
        return X.astype(dtype)
    with np.errstate(over="ignore"):
        X = X.astype(dtype)
    holes = draw(st.sampled_from([0.0, 0.1, 0.5]))
    X[rng.rand(*X.shape) < holes] = np.nan
    if draw(st.integers(0, 9)) == 0:
        X[rng.randint(n_rows), rng.randint(n_columns)] = draw(
            st.sampled_from([np.inf, -np.inf])
        )
    return X


@FUZZ
@given(X=number_arrays())
def test_numeric_arrays(X):
    vae = VAETransformer(**FAST)
    if fits_or_refuses(vae, X, list(range(X.shape[1]))):
        check_every_method(vae, X, *X.shape)


@FUZZ
@given(X=number_arrays(), noise=st.booleans(), span=st.sampled_from([0.0, 1.0, 1e6]))
def test_quantile_columns_and_conditions(X, noise, span):
    # Every column through a normal-score map, then rows given the first
    # column's first observed value, or a range around it.
    vae = VAETransformer(**FAST, likelihood="quantile")
    if not fits_or_refuses(vae, X, list(range(X.shape[1]))):
        return
    check_every_method(vae, X, *X.shape)
    first = np.asarray(X[:, 0], dtype=np.float64)
    value = float(first[np.isfinite(first)][0])
    given = {0: value if span == 0.0 else (value - span, value + span)}
    drawn, error = attempt(vae.sample, 4, random_state=0, given=given, noise=noise)
    if error is not None:
        assert_names_its_fault(error, [0], ["given"])
        return
    assert_finite_table(drawn, 4, X.shape[1])
    low, high = (value, value) if span == 0.0 else given[0]
    assert (drawn[:, 0] >= low).all() and (drawn[:, 0] <= high).all()


# ---------------------------------------------------------------- frames

LABELS = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]),
    min_size=0,
    max_size=300,
)


@st.composite
def column(draw, n_rows, rng):
    kind = draw(
        st.sampled_from(
            [
                "float",
                "int",
                "nullable",
                "bool",
                "category",
                "string",
                "object",
                "mixed",
                "missing",
                "single",
                "datetime",
                "complex",
                "huge_int",
                "python_objects",
                "nullable_extreme",
            ]
        )
    )
    event(f"column: {kind}")
    holes = rng.rand(n_rows) < draw(st.sampled_from([0.0, 0.2]))
    if kind == "float":
        values = pd.Series(rng.standard_normal(n_rows) * draw(MAGNITUDES))
        values[holes] = np.nan
    elif kind == "int":
        values = pd.Series(rng.randint(-5, 5, n_rows))
    elif kind == "nullable":
        values = pd.Series(pd.array(rng.randint(0, 9, n_rows), dtype="Int64"))
        values[holes] = pd.NA
    elif kind == "bool":
        values = pd.Series(rng.rand(n_rows) > 0.5)
    elif kind in ("category", "string", "object"):
        levels = draw(st.lists(LABELS, min_size=1, max_size=4, unique=True))
        values = pd.Series(
            np.array(levels, dtype=object)[rng.randint(len(levels), size=n_rows)]
        )
        values[holes] = None
        if kind == "category":
            values = values.astype("category")
        elif kind == "string":
            values = values.astype("string")
    elif kind == "mixed":  # an object column of numbers and strings
        values = pd.Series([1, "a", 2.5, None, "b"] * n_rows, dtype=object)[:n_rows]
        values = values.reset_index(drop=True)
    elif kind == "missing":
        values = pd.Series([np.nan] * n_rows)
    elif kind == "datetime":
        values = pd.Series(pd.date_range("2026-01-01", periods=n_rows))
    elif kind == "complex":
        values = pd.Series(rng.standard_normal(n_rows) + 1j)
    elif kind == "huge_int":  # near the ends of int64 and uint64
        dtype = draw(st.sampled_from([np.int64, np.uint64]))
        top = int(np.iinfo(dtype).max)
        values = pd.Series(np.array([top - i % 3 for i in range(n_rows)], dtype))
    elif kind == "python_objects":  # Python values of any type, labels or not
        pool = draw(st.lists(PYTHON_VALUES, min_size=1, max_size=4))
        values = pd.Series(
            [pool[i] for i in rng.randint(len(pool), size=n_rows)], dtype=object
        )
    elif kind == "nullable_extreme":  # near the ends of nullable integer ranges
        dtype = draw(st.sampled_from(["Int64", "UInt64", "Int8", "UInt32"]))
        info = np.iinfo(pd.api.types.pandas_dtype(dtype).numpy_dtype)
        end = draw(st.sampled_from([int(info.min), int(info.max)]))
        step = 1 if end == int(info.min) else -1
        values = pd.Series(
            pd.array([end + step * (i % 4) for i in range(n_rows)], dtype=dtype)
        )
        values[holes] = pd.NA
    else:  # a single level
        values = pd.Series(["only"] * n_rows, dtype=object)
    return values.reset_index(drop=True)


# What an object column may meet: labels, numbers of every type, missing
# markers, and values that are neither.
PYTHON_VALUES = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.just(2**1100),
    st.floats(allow_nan=True, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.fractions(max_denominator=9),
    st.complex_numbers(max_magnitude=1e3, allow_nan=False),
    st.binary(max_size=3),
    st.binary(max_size=3).map(bytearray),
    st.dates(),
    st.datetimes(),
    st.times(),
    st.timedeltas(),
    st.sampled_from([None, np.nan, pd.NA, pd.NaT, np.float32(1.5), np.int8(3)]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.frozensets(st.integers(), max_size=2),
    st.tuples(st.integers()),
    st.builds(object),
)

NAMES = st.one_of(
    st.sampled_from(["a", "b", "a b", "", "naïve", "列"]),
    st.integers(-3, 3),
    st.just(("tuple", 1)),
)


@st.composite
def frames(draw):
    n_rows = draw(st.integers(1, 25))
    rng = np.random.RandomState(draw(st.integers(0, 2**16)))
    n_columns = draw(st.integers(1, 5))
    columns = [draw(column(n_rows, rng)) for _ in range(n_columns)]
    frame = pd.concat(columns, axis=1)
    # Column names: plain strings mostly; sometimes anything, duplicates included.
    if draw(st.integers(0, 3)) == 0:
        frame.columns = [draw(NAMES) for _ in range(n_columns)]
    else:
        frame.columns = [f"c{j}" for j in range(n_columns)]
    return frame


@FUZZ
@given(frame=frames())
def test_mixed_frames(frame):
    vae = VAETransformer(**FAST)
    if fits_or_refuses(vae, frame, list(frame.columns)):
        check_every_method(vae, frame, *frame.shape)


# ---------------------------------------------------------------- serving skew


@pytest.fixture(scope="module")
def served():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "length": rng.standard_normal(60),
            "count": rng.randint(0, 9, 60),
            "colour": pd.Categorical(rng.choice(["blue", "red"], 60)),
            "shop": rng.choice(["east", "west", "north"], 60).astype(object),
            "member": rng.rand(60) > 0.5,
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return frame, VAETransformer(**FAST).fit(frame)


SKEWS = [
    "reorder",
    "drop",
    "extra",
    "float_to_string",
    "string_to_float",
    "unseen",
    "all_missing_row",
    "zero_rows",
    "array",
    "rename",
]


@FUZZ
@given(skew=st.sampled_from(SKEWS), n_rows=st.integers(1, 20))
def test_train_serve_skew(served, skew, n_rows):
    frame, vae = served
    X = frame.head(n_rows).copy()
    if skew == "reorder":
        X = X[X.columns[::-1]]
    elif skew == "drop":
        X = X.drop(columns="shop")
    elif skew == "extra":
        X["new"] = 1.0
    elif skew == "float_to_string":
        X["length"] = X["length"].astype(str)
    elif skew == "string_to_float":
        X["shop"] = 1.5
    elif skew == "unseen":
        X["shop"] = "a shop never seen"
    elif skew == "all_missing_row":  # in dtypes that can hold a hole
        X = X.astype({"count": "Int64", "member": "boolean"})
        X.iloc[0] = pd.NA
    elif skew == "zero_rows":
        X = X.iloc[:0]
    elif skew == "array":
        X = X.to_numpy()
    else:
        X.columns = [f"x{j}" for j in range(X.shape[1])]
    # Each method on its own: a refusal by one must not hide another's crash.
    for method in (vae.transform, vae.score_samples, vae.impute):
        result, error = attempt(method, X)
        if error is None:
            values = (
                result.select_dtypes("number")
                if hasattr(result, "select_dtypes")
                else result
            )
            assert np.isfinite(np.asarray(values, dtype=np.float64)).all()


# ---------------------------------------------------------------- parameters


@st.composite
def parameters(draw):
    return dict(
        n_components=draw(st.integers(1, 4)),
        hidden_layer_sizes=draw(
            st.one_of(st.integers(1, 16), st.lists(st.integers(1, 16), max_size=3))
        ),
        activation=draw(st.sampled_from(["relu", "elu", "gelu", "silu", "tanh"])),
        beta=draw(st.sampled_from([0.0, 1e-3, 1.0, 100.0])),
        batch_size=draw(st.one_of(st.just("auto"), st.integers(1, 10**6))),
        learning_rate=draw(st.sampled_from(["step", "constant"])),
        learning_rate_init=draw(st.sampled_from([1e-6, 1e-3, 1.0, 1e3])),
        max_iter=draw(st.integers(1, 3)),
        tol=draw(st.sampled_from([0.0, 1e-4, 1e6])),
        early_stopping=draw(st.booleans()),
        validation_fraction=draw(st.sampled_from([0.01, 0.5, 0.99])),
        n_iter_no_change=draw(st.one_of(st.just("auto"), st.integers(1, 3))),
        warmup_epochs=draw(st.one_of(st.just("auto"), st.sampled_from([0, 0.5, 5]))),
        input_noise=draw(st.sampled_from([0.0, 0.25, 1e3])),
        neighbor_weight=draw(st.sampled_from([0.0, 64.0, 1e6])),
        perplexity=draw(st.sampled_from([1.0, 5.0, 1e3])),
        placement=draw(st.sampled_from(["encoder", "neighbors"])),
        precision=draw(st.sampled_from(["float32", "bfloat16"])),
        sampling=draw(st.sampled_from(["mixture", "prior"])),
        n_importance_samples=draw(st.integers(1, 64)),
        random_state=draw(st.integers(0, 3)),
    )


@FUZZ
@given(params=parameters(), n_rows=st.integers(1, 40))
def test_random_parameters(params, n_rows):
    X = np.random.RandomState(0).standard_normal((n_rows, 3))
    vae = VAETransformer(**params)
    if fits_or_refuses(vae, X, params=list(params)):
        check_every_method(vae, X, n_rows, 3)


@FUZZ
@given(frame=frames())
def test_imputer_on_mixed_frames(frame):
    imputer = VAEImputer(VAETransformer(**FAST))
    fitted, error = attempt(imputer.fit, frame)
    if error is not None:
        assert not hasattr(imputer, "estimator_")
        return
    filled, error = attempt(imputer.transform, frame)
    if error is None:
        assert_finite_table(filled, *frame.shape)


@FUZZ
@given(first=number_arrays(), second=number_arrays())
def test_partial_fit_on_chunks_of_any_kind(first, second):
    vae = VAETransformer(**FAST)
    fitted, error = attempt(vae.partial_fit, first)
    if error is not None:
        assert not hasattr(vae, "module_")
        return
    before, _ = attempt(vae.transform, first)
    fitted, error = attempt(vae.partial_fit, second)
    if error is not None:  # a refused chunk leaves the model as it was
        after, _ = attempt(vae.transform, first)
        if before is not None:
            np.testing.assert_array_equal(after, before)
        return
    check_every_method(vae, second, *second.shape)
