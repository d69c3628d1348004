"""polars DataFrames in and out, with the real polars (the ``polars`` extra)."""

import pickle
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEImputer, VAETransformer

FAST = dict(hidden_layer_sizes=(16,), max_iter=5, warmup_epochs=0, random_state=0)


@pytest.fixture
def frame():
    rng = np.random.RandomState(0)
    n = 80
    t = rng.uniform(-2, 2, n)
    return pl.DataFrame(
        {
            "length": 10 + 3 * t + 0.2 * rng.randn(n),
            "count": rng.poisson(3, n).astype(np.int64),
            "member": t > 0,
            "colour": np.array(["blue", "green", "red"])[np.digitize(t, [-0.7, 0.7])],
            "shop": pl.Series(rng.choice(["east", "west"], n)).cast(pl.Categorical),
        }
    )


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


def test_a_mixed_polars_frame_fits_as_its_pandas_twin_does(frame):
    vae = fitted(frame)
    twin = fitted(frame.to_pandas())
    np.testing.assert_array_equal(
        vae.transform(frame), twin.transform(frame.to_pandas())
    )
    assert list(vae.feature_names_in_) == frame.columns
    assert vae.schema_.to_frame()["likelihood"].to_dict() == {
        "length": "gaussian",
        "count": "gaussian",
        "member": "bernoulli",
        "colour": "categorical",
        "shop": "bernoulli",
    }


def test_tables_come_back_as_polars_with_the_columns_and_dtypes(frame):
    vae = fitted(frame)
    for result in (
        vae.sample(6, random_state=0),
        vae.inverse_transform(vae.transform(frame)),
    ):
        assert isinstance(result, pl.DataFrame)
        assert result.columns == frame.columns
        assert result.schema["count"] == pl.Int64
        assert result.schema["member"] == pl.Boolean
        assert result.schema["shop"] == pl.Categorical
        assert set(result["colour"].to_list()) <= {"blue", "green", "red"}


def test_impute_fills_polars_nulls_and_returns_polars(frame):
    holey = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 7 == 0)
        .then(None)
        .otherwise(pl.col("length"))
        .alias("length"),
        pl.when(pl.int_range(pl.len()) % 5 == 0)
        .then(None)
        .otherwise(pl.col("colour"))
        .alias("colour"),
    )
    vae = fitted(holey)
    filled = vae.impute(holey)
    assert isinstance(filled, pl.DataFrame)
    assert filled.null_count().sum_horizontal().item() == 0
    observed = holey["length"].is_not_null()
    np.testing.assert_allclose(
        filled["length"].filter(observed).to_numpy(),
        holey["length"].filter(observed).to_numpy(),
    )
    imputer = VAEImputer(VAETransformer(**FAST))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert isinstance(imputer.fit_transform(holey), pl.DataFrame)


def test_codes_as_polars_through_set_output(frame):
    vae = fitted(frame).set_output(transform="polars")
    codes = vae.transform(frame)
    assert isinstance(codes, pl.DataFrame)
    assert codes.columns == ["vaetransformer0", "vaetransformer1"]


def test_a_numeric_polars_frame_and_pickling(frame):
    numeric = frame.select("length", "count")
    vae = fitted(numeric)
    assert isinstance(vae.sample(3, random_state=0), pl.DataFrame)
    restored = pickle.loads(pickle.dumps(vae))
    np.testing.assert_array_equal(restored.transform(numeric), vae.transform(numeric))
    assert isinstance(restored.sample(3, random_state=0), pl.DataFrame)
    # numpy in still gives numpy out, and pandas in pandas out.
    assert isinstance(fitted(numeric.to_numpy()).sample(2), np.ndarray)
    assert isinstance(fitted(numeric.to_pandas()).sample(2), pd.DataFrame)


def test_a_polars_frame_with_a_changed_column_is_refused(frame):
    vae = fitted(frame)
    changed = frame.with_columns(pl.col("colour").replace({"red": "purple"}))
    with pytest.raises(ValueError, match="not seen during fit"):
        vae.transform(changed)
