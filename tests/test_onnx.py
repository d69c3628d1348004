"""ONNX export, checked against a real onnxruntime session (the ``onnx`` extra)."""

import warnings

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAETransformer, register_skl2onnx_converter

FAST = dict(hidden_layer_sizes=(16,), max_iter=5, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


def session(model):
    return ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def frame_feeds(vae, frame, dtype=np.float32):
    """One input per column: numbers as floats, labels as their str()."""
    feeds = {}
    for spec, (name, column) in zip(vae.schema_.columns, frame.items(), strict=True):
        if spec.labelled:
            feeds[str(name)] = column.astype(object).map(str).to_numpy()[:, None]
        else:
            feeds[str(name)] = column.to_numpy(dtype, na_value=np.nan)[:, None]
    return feeds


@pytest.fixture
def numbers():
    """Gaussian, count and binary columns in a shuffled order, with holes."""
    rng = np.random.RandomState(0)
    n = 200
    X = np.column_stack(
        [
            rng.poisson(4, n),
            10 + 3 * rng.randn(n),
            rng.rand(n) > 0.4,
            rng.randn(n),
            np.full(n, 7.0),  # a constant column
        ]
    ).astype(np.float64)
    X[rng.rand(n, 5) < 0.05] = np.nan
    return X


@pytest.fixture
def table():
    rng = np.random.RandomState(1)
    n = 240
    frame = pd.DataFrame(
        {
            "length": 20 + 5 * rng.randn(n),
            "colour": pd.Categorical(rng.choice(["blue", "red", "green"], n)),
            "member": rng.rand(n) > 0.5,
            # Wider than WIDE_LEVELS: read through an embedding.
            "shop": [f"shop {i}" for i in rng.randint(0, 90, n)],
            "items": rng.randint(0, 9, n).astype(np.int64),
            "side": rng.choice(["east", "west"], n).astype(object),
        }
    )
    frame.loc[::9, "length"] = np.nan
    frame.loc[::11, "side"] = None
    return frame


@pytest.mark.parametrize("activation", ["relu", "elu", "gelu", "silu", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_of_numbers_matches_onnxruntime(numbers, activation, dtype):
    vae = fitted(
        numbers,
        activation=activation,
        likelihood={0: "poisson", 2: "bernoulli"},
    )
    X = numbers.astype(dtype)
    (Z,) = session(vae.to_onnx(dtype=dtype)).run(None, {"X": X})
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, vae.transform(X), atol=1e-5, rtol=1e-5)


def test_inverse_transform_of_numbers_matches_onnxruntime(numbers):
    vae = fitted(numbers, likelihood={0: "poisson", 2: "bernoulli"})
    Z = vae.transform(numbers.astype(np.float32))
    (X_back,) = session(vae.to_onnx(method="inverse_transform")).run(None, {"Z": Z})
    np.testing.assert_allclose(X_back, vae.inverse_transform(Z), rtol=1e-5, atol=1e-4)
    assert np.all(X_back[:, 4] == 7.0)  # the constant column is its constant


def test_mixed_table_transform_matches_onnxruntime(table):
    vae = fitted(table)
    assert vae.module_.encoder.reader.embeddings  # the wide column is embedded
    model = vae.to_onnx()
    assert [i.name for i in model.graph.input] == list(table.columns)
    (Z,) = session(model).run(None, frame_feeds(vae, table))
    np.testing.assert_allclose(Z, vae.transform(table), atol=1e-5, rtol=1e-5)


def test_mixed_table_reads_unseen_labels_as_missing(table):
    vae = fitted(table, handle_unknown="missing")
    changed = table.head(20).copy()
    changed["colour"] = changed["colour"].cat.add_categories("violet")
    changed.loc[changed.index[:5], "colour"] = "violet"
    changed.loc[changed.index[5:10], "shop"] = "a shop never seen"
    (Z,) = session(vae.to_onnx()).run(None, frame_feeds(vae, changed))
    np.testing.assert_allclose(Z, vae.transform(changed), atol=1e-5, rtol=1e-5)


def test_mixed_table_inverse_transform_matches_onnxruntime(table):
    vae = fitted(table)
    Z = vae.transform(table).astype(np.float32)
    model = vae.to_onnx(method="inverse_transform")
    outputs = session(model).run(None, {"Z": Z})
    expected = vae.inverse_transform(Z)
    for name, value in zip(table.columns, outputs, strict=True):
        if value.dtype == object:
            assert list(value[:, 0]) == list(expected[name].astype(object).map(str))
        else:
            np.testing.assert_allclose(
                value[:, 0], expected[name].to_numpy(float), rtol=1e-5, atol=1e-4
            )
    # The integer column comes back rounded, as inverse_transform rounds it.
    items = outputs[list(table.columns).index("items")]
    assert np.all(items == np.round(items))


def test_array_with_a_categorical_column_matches_onnxruntime():
    rng = np.random.RandomState(2)
    X = np.column_stack([rng.randn(150), rng.randint(0, 4, 150)]).astype(np.float32)
    vae = fitted(X, likelihood={1: "categorical"})
    (Z,) = session(vae.to_onnx()).run(None, {"X": X})
    np.testing.assert_allclose(Z, vae.transform(X), atol=1e-5, rtol=1e-5)
    (X_back,) = session(vae.to_onnx(method="inverse_transform")).run(None, {"Z": Z})
    np.testing.assert_allclose(X_back, vae.inverse_transform(Z), atol=1e-4)


def test_to_onnx_writes_the_file(tmp_path, numbers):
    vae = fitted(numbers)
    path = tmp_path / "vae.onnx"
    vae.to_onnx(path)
    (Z,) = ort.InferenceSession(str(path)).run(None, {"X": numbers.astype(np.float32)})
    np.testing.assert_allclose(Z, vae.transform(numbers.astype(np.float32)), atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="score_samples"), "method must be"),
        (dict(dtype=np.int32), "dtype must be"),
    ],
)
def test_to_onnx_refuses_bad_arguments(numbers, kwargs, match):
    vae = fitted(numbers)
    with pytest.raises(ValueError, match=match):
        vae.to_onnx(**kwargs)


def test_to_onnx_needs_a_fitted_model():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        VAETransformer().to_onnx()


def test_pipeline_converts_with_skl2onnx_and_predicts_the_same_labels():
    from sklearn.datasets import load_digits

    register_skl2onnx_converter()
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(
            StandardScaler(),
            VAETransformer(4, **{**FAST, "hidden_layer_sizes": (32,)}),
            LogisticRegression(max_iter=300),
        ).fit(X, y)
    model = to_onnx(pipe, X[:1], options={LogisticRegression: {"zipmap": False}})
    labels, probabilities = session(model).run(None, {"X": X})
    np.testing.assert_array_equal(labels, pipe.predict(X))
    np.testing.assert_allclose(probabilities, pipe.predict_proba(X), atol=1e-4)


def test_skl2onnx_refuses_a_model_of_label_columns(table):
    register_skl2onnx_converter()
    vae = fitted(table)
    tensor = [("X", FloatTensorType([None, table.shape[1]]))]
    with pytest.raises(NotImplementedError, match="VAETransformer.to_onnx"):
        to_onnx(vae, initial_types=tensor)
