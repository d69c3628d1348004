"""VAETransformer inside scikit-learn's composition and model-selection tools."""

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer

SMALL = dict(
    hidden_layer_sizes=(32,),
    max_iter=15,
    batch_size=64,
    warmup_epochs=5,
    random_state=0,
)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400], y[:400]


def test_pipeline_with_classifier(digits):
    X, y = digits
    pipe = make_pipeline(VAETransformer(n_components=4, **SMALL), LogisticRegression())
    pipe.fit(X, y)
    assert pipe.score(X, y) > 0.5  # 10 classes: chance is 0.1


def test_supervised_grid_search_in_parallel(digits):
    X, y = digits
    search = GridSearchCV(
        make_pipeline(VAETransformer(**SMALL), LogisticRegression()),
        {"vaetransformer__n_components": [2, 4]},
        cv=2,
        n_jobs=2,
    )
    search.fit(X, y)
    assert search.best_params_["vaetransformer__n_components"] in (2, 4)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X[:3]).shape == (3,)


def test_unsupervised_grid_search_selects_by_elbo(digits):
    X, _ = digits
    search = GridSearchCV(VAETransformer(**SMALL), {"n_components": [1, 4]}, cv=2)
    search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    # The default scorer is VAETransformer.score: the held-out ELBO, in nats.
    assert np.isfinite(scores).all() and (scores < 0).all()
    assert search.best_index_ == int(np.argmax(scores))


def test_cross_validate(digits):
    X, y = digits
    results = cross_validate(
        make_pipeline(VAETransformer(**SMALL), LogisticRegression()), X, y, cv=3
    )
    assert results["test_score"].shape == (3,)
    assert (results["test_score"] > 0.2).all()


def test_column_transformer_on_a_dataframe():
    rng = np.random.RandomState(0)
    df = pd.DataFrame(
        {
            "a": rng.randn(80),
            "b": rng.randn(80) * 50,
            "c": rng.rand(80),
            "kept": np.arange(80.0),
        }
    )
    ct = ColumnTransformer(
        [
            ("vae", VAETransformer(**SMALL), ["a", "b", "c"]),
            ("id", "passthrough", ["kept"]),
        ]
    ).set_output(transform="pandas")
    out = ct.fit_transform(df)
    assert list(out.columns) == [
        "vae__vaetransformer0",
        "vae__vaetransformer1",
        "id__kept",
    ]
    np.testing.assert_array_equal(out["id__kept"], df["kept"])


def test_pipeline_after_a_scaler_and_inverse_transform(digits):
    X, _ = digits
    pipe = make_pipeline(StandardScaler(), VAETransformer(**SMALL)).fit(X)
    Z = pipe.transform(X)
    assert pipe.inverse_transform(Z).shape == X.shape
