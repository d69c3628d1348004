"""Saving and loading: pickle and skops, with a state free of torch objects."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skvae import VAEImputer, VAETransformer
from skvae._estimator import _ADDED_PARAMETERS

FAST = dict(hidden_layer_sizes=(16,), max_iter=5, warmup_epochs=0, random_state=0)


def quiet(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return function(*args)


@pytest.fixture
def table():
    rng = np.random.RandomState(0)
    n = 60
    frame = pd.DataFrame(
        {
            "length": rng.randn(n),
            "count": pd.array(rng.poisson(3, n), dtype="Int64"),
            "member": rng.rand(n) > 0.5,
            "colour": pd.Categorical(rng.choice(["blue", "red", "green"], n)),
            "shop": pd.Series(rng.choice(["east", "west", "north"], n), dtype=object),
        }
    )
    frame.loc[::7, "length"] = np.nan
    return frame


def assert_same_model(a, b, X):
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    sample_a, sample_b = a.sample(5, random_state=0), b.sample(5, random_state=0)
    if isinstance(sample_a, pd.DataFrame):
        pd.testing.assert_frame_equal(sample_a, sample_b)
    else:
        np.testing.assert_array_equal(sample_a, sample_b)
    np.testing.assert_array_equal(a.score_samples(X), b.score_samples(X))


def walk(value):
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from walk(item)


def test_the_saved_state_holds_no_torch_objects(table):
    vae = quiet(VAETransformer(**FAST).fit, table)
    state = vae.__getstate__()
    torch_types = (torch.Tensor, torch.nn.Module, torch.optim.Optimizer)
    assert not [v for v in walk(state) if isinstance(v, torch_types)]
    assert isinstance(state["module_"]["encoder.net.0.weight"], np.ndarray)
    assert isinstance(vars(vae)["_model"].module, torch.nn.Module)  # left as it was


@pytest.mark.parametrize("kind", ["array", "frame"])
def test_skops_round_trip_trusts_only_skvae_types(kind, table):
    X = np.random.RandomState(0).randn(60, 4) if kind == "array" else table
    vae = quiet(VAETransformer(**FAST).fit, X)
    data = sio.dumps(vae)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted and all(name.startswith("skvae.") for name in untrusted)
    restored = sio.loads(data, trusted=untrusted)
    assert_same_model(vae, restored, X)
    if kind == "frame":
        assert dict(restored.sample(3).dtypes) == dict(table.dtypes)


def test_skops_round_trip_of_a_pipeline_and_an_imputer(table):
    rng = np.random.RandomState(0)
    X, y = rng.randn(80, 5), rng.randint(2, size=80)
    pipe = quiet(
        make_pipeline(
            StandardScaler(), VAETransformer(**FAST), LogisticRegression()
        ).fit,
        X,
        y,
    )
    data = sio.dumps(pipe)
    untrusted = sio.get_untrusted_types(data=data)
    assert all(name.startswith("skvae.") for name in untrusted)
    restored = sio.loads(data, trusted=untrusted)
    np.testing.assert_array_equal(restored.predict_proba(X), pipe.predict_proba(X))
    imputer = quiet(VAEImputer(VAETransformer(**FAST)).fit, table)
    data = sio.dumps(imputer)
    restored = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
    pd.testing.assert_frame_equal(restored.transform(table), imputer.transform(table))


def test_a_loaded_model_trains_on_with_its_optimiser_state(table):
    vae = quiet(VAETransformer(**FAST).fit, table)
    restored = pickle.loads(pickle.dumps(vae))
    steps = {int(s["step"]) for s in restored.optimizer_.state.values()}
    assert steps == {int(s["step"]) for s in vae.optimizer_.state.values()}
    quiet(vae.partial_fit, table)
    quiet(restored.partial_fit, table)
    assert_same_model(vae, restored, table)


def test_a_state_from_a_newer_version_is_refused(table):
    vae = quiet(VAETransformer(**FAST).fit, table)
    state = vae.__getstate__()
    state["_skvae_format"] = 99
    with pytest.raises(ValueError, match="saved by a newer skvae"):
        VAETransformer.__new__(VAETransformer).__setstate__(state)


def test_an_unfitted_estimator_saves_and_loads(table):
    restored = sio.loads(
        sio.dumps(VAETransformer(n_components=3)),
        trusted=["skvae._estimator.VAETransformer"],
    )
    assert restored.n_components == 3 and not hasattr(restored, "module_")


def test_a_model_saved_before_a_parameter_existed_loads_with_its_default(table):
    vae = quiet(VAETransformer(**FAST).fit, table)
    state = vae.__getstate__()
    for name in _ADDED_PARAMETERS:  # as saved by a version without them
        del state[name]
    old = VAETransformer.__new__(VAETransformer)
    old.__setstate__(state)
    assert old.get_params()["input_noise"] == 0.0
    assert old.get_params()["precision"] == "float32"
    np.testing.assert_array_equal(old.transform(table), vae.transform(table))
    quiet(old.partial_fit, table)  # and it trains on
