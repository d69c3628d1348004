"""The normal-score Gaussian (``likelihood="quantile"``): its fitted map, its
density in the caller's units, and what it generates."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from skvae import VAETransformer
from skvae._marginals import NormalScoreMap

FAST = dict(hidden_layer_sizes=(32,), max_iter=40, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return VAETransformer(**{**FAST, **params}).fit(X)


def test_a_discrete_map_gives_each_value_its_training_share():
    values = np.repeat([0.0, 3.0, 7.0, 100.0], [900, 50, 30, 20])
    marginal = NormalScoreMap.fit(values)
    assert marginal.edges is not None  # few values, each held by many rows
    np.testing.assert_allclose(marginal.probabilities(), [0.9, 0.05, 0.03, 0.02])
    # Each value's score decodes to itself; standard normal scores decode to
    # the training values in their shares.
    np.testing.assert_array_equal(
        marginal.to_values(marginal.to_scores(marginal.knots)), marginal.knots
    )
    drawn = marginal.to_values(np.random.RandomState(0).standard_normal(20_000))
    assert set(np.unique(drawn)) <= {0.0, 3.0, 7.0, 100.0}
    assert abs(np.mean(drawn == 0.0) - 0.9) < 0.01


def test_a_continuous_map_is_increasing_and_inverts_within_the_range():
    values = np.random.RandomState(0).lognormal(size=5000)
    marginal = NormalScoreMap.fit(values)
    assert marginal.edges is None and len(marginal.knots) == 1000
    x = np.linspace(values.min(), values.max(), 777)
    scores = marginal.to_scores(x)
    assert np.all(np.diff(scores) > 0)
    np.testing.assert_allclose(marginal.to_values(scores), x, rtol=1e-9)
    # Scores of the training values are close to standard normal.
    assert abs(np.std(marginal.to_scores(values)) - 1.0) < 0.05
    # Beyond the range the map goes on (finite, increasing), and decodes to
    # the range's ends.
    outside = marginal.to_scores(np.array([-5.0, 1e3]))
    assert np.all(np.isfinite(outside)) and outside[0] < scores[0] < outside[1]
    assert marginal.to_values(outside).tolist() == [values.min(), values.max()]


def test_the_density_in_the_callers_units_integrates_to_one():
    # One skewed column: exp(score_samples) over a fine grid sums to about 1
    # only if the map's log-Jacobian is counted (without it: 3.8 here).
    values = np.random.RandomState(0).gamma(2.0, 3.0, size=(800, 1))
    vae = fitted(
        values, likelihood="quantile", n_components=1, n_importance_samples=200
    )
    grid = np.linspace(-5.0, 60.0, 3000).reshape(-1, 1)
    density = np.exp(vae.score_samples(grid))
    total = np.trapezoid(density, grid[:, 0])
    assert 0.9 < total < 1.03


@pytest.fixture(scope="module")
def spiky_table():
    rng = np.random.RandomState(0)
    n = 1500
    return pd.DataFrame(
        {
            "gain": np.where(rng.rand(n) < 0.85, 0, rng.lognormal(8, 1, n).round()),
            "age": rng.randint(17, 91, n),
            "size": rng.lognormal(3.0, 1.0, n),
            "kind": rng.choice(["a", "b", "c"], n),
        }
    )


def test_spikes_and_integers_are_generated_as_in_training(spiky_table):
    table = spiky_table
    vae = fitted(table, likelihood={c: "quantile" for c in ["gain", "age", "size"]})
    rows = vae.sample(3000, random_state=0)
    assert abs((rows["gain"] == 0).mean() - (table["gain"] == 0).mean()) < 0.05
    assert rows["age"].dtype == table["age"].dtype
    assert rows["age"].between(17, 90).all()
    assert set(rows["gain"]) <= set(table["gain"])  # a discrete column
    assert rows["size"].between(table["size"].min(), table["size"].max()).all()
    assert rows["size"].nunique() > 1000  # a continuous one


def test_quantile_columns_score_better_than_gaussian_on_skewed_numbers(spiky_table):
    numbers = spiky_table[["gain", "size"]]
    train, test = numbers.iloc[:1000], numbers.iloc[1000:]
    gaussian = fitted(train, n_importance_samples=20)
    quantile = fitted(train, likelihood="quantile", n_importance_samples=20)
    assert quantile.score(test) > gaussian.score(test) + 1.0


def test_impute_and_round_trips_stay_in_the_columns_values(spiky_table):
    vae = fitted(spiky_table, likelihood={"gain": "quantile", "age": "quantile"})
    holes = spiky_table.head(50).copy()
    holes.loc[:20, "gain"] = np.nan
    filled = vae.impute(holes)
    assert filled["gain"].notna().all()
    assert set(filled["gain"]) <= set(spiky_table["gain"])
    back = vae.inverse_transform(vae.transform(spiky_table.head(50)))
    assert back["age"].between(17, 90).all()


def test_quantile_models_are_saved_and_refused_by_onnx(spiky_table):
    vae = fitted(spiky_table, likelihood={"size": "quantile"})
    expected = vae.sample(20, random_state=3)
    restored = pickle.loads(pickle.dumps(vae))
    pd.testing.assert_frame_equal(restored.sample(20, random_state=3), expected)
    data = sio.dumps(vae)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(name.startswith("skvae.") for name in untrusted)
    loaded = sio.loads(data, trusted=untrusted)
    pd.testing.assert_frame_equal(loaded.sample(20, random_state=3), expected)
    with pytest.raises(ValueError, match=r"to_onnx cannot export .*'size'"):
        vae.to_onnx()


def test_quantile_refuses_label_columns():
    table = pd.DataFrame({"kind": ["a", "b"] * 20, "x": np.arange(40.0)})
    with pytest.raises(ValueError, match="'kind' holds labels"):
        fitted(table, likelihood={"kind": "quantile"})
