"""Outputs pinned to the last digit: refactors must not change what skvae computes.

``tests/data/make_reference.py`` wrote the reference with main at b58cfb9 (CPU,
fixed ``random_state``): the outputs of ``transform``, ``inverse_transform``,
``sample``, ``score_samples`` and ``impute``, and the loss curves of ``fit``,
early stopping, ``partial_fit`` and ``warm_start``, on the digits and the
penguins; and the penguins model saved by that code with pickle and skops.
Every comparison is exact.
"""

import pickle
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
import make_reference  # noqa: E402

sys.path.remove(str(DATA))


@pytest.fixture(scope="module")
def expected():
    with np.load(DATA / "reference_outputs.npz") as saved:
        return dict(saved)


def assert_same(actual, expected):
    assert sorted(actual) == sorted(k for k in expected if k in actual)
    for key, value in actual.items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def quietly(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def test_outputs_are_those_of_the_reference(expected):
    _, actual = quietly(make_reference.reference)
    assert len(actual) > 60
    assert_same(actual, expected)


@pytest.mark.parametrize("load", ["pickle", "skops"])
def test_a_model_saved_by_the_reference_loads_and_answers_the_same(load, expected):
    if load == "pickle":
        with open(DATA / "reference_model.pkl", "rb") as file:
            model = pickle.load(file)
    else:
        model = sio.load(
            DATA / "reference_model.skops",
            trusted=[
                "skvae._estimator.VAETransformer",
                "skvae._schema.ColumnSpec",
                "skvae._schema.TableSchema",
            ],
        )
    actual = quietly(make_reference.saved_model_outputs, model)
    assert len(actual) > 10
    assert_same(actual, expected)
    quietly(model.partial_fit, make_reference.penguins())  # and it trains on
