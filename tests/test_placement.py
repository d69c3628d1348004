"""placement="neighbors": new rows placed against the training codes."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.neighbors import KNeighborsClassifier

from skvae import VAETransformer
from skvae._placement import REFERENCE_BYTES, REFERENCE_ROWS, place, reference_rows

SMALL = dict(hidden_layer_sizes=(64,), max_iter=30, random_state=0)


def fit_quietly(vae, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return vae.fit(X)


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    rng = np.random.RandomState(0)
    order = rng.permutation(len(X))[:900]
    train, test = order[:600], order[600:]
    return X[train], X[test], y[train], y[test]


@pytest.fixture(scope="module")
def placed(digits_split):
    X_train, *_ = digits_split
    return fit_quietly(
        VAETransformer(n_components=2, placement="neighbors", **SMALL), X_train
    )


def test_placed_rows_keep_their_classes_better_than_the_means(placed, digits_split):
    # The encoder's means of held-out digits against the training codes, and the
    # same rows placed: a 5-NN classifier of the training codes reads the
    # placed rows' digit more often (the gap the option exists for).
    X_train, X_test, y_train, y_test = digits_split
    knn = KNeighborsClassifier(5).fit(
        placed.set_params(placement="encoder").transform(X_train), y_train
    )
    means = knn.score(placed.transform(X_test), y_test)
    placed_codes = placed.set_params(placement="neighbors").transform(X_test)
    assert knn.score(placed_codes, y_test) > means + 0.03, (
        means,
        knn.score(placed_codes, y_test),
    )


def test_a_row_is_placed_the_same_alone_or_in_a_batch(placed, digits_split):
    _, X_test, *_ = digits_split
    together = placed.transform(X_test[:40])
    alone = np.vstack([placed.transform(X_test[i : i + 1]) for i in range(0, 40, 13)])
    np.testing.assert_allclose(alone, together[::13], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(placed.transform(X_test[:40]), together)


def test_placement_changes_transform_only(digits_split):
    # Training is the same either way: same weights, same score; only
    # transform's codes move, and return_std stays the encoder's.
    X_train, X_test, *_ = digits_split
    encoder = fit_quietly(VAETransformer(n_components=2, **SMALL), X_train[:300])
    neighbors = fit_quietly(
        VAETransformer(n_components=2, placement="neighbors", **SMALL), X_train[:300]
    )
    pairs = zip(
        encoder.module_.parameters(), neighbors.module_.parameters(), strict=True
    )
    for a, b in pairs:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    np.testing.assert_array_equal(
        encoder.score_samples(X_test), neighbors.score_samples(X_test)
    )
    means, std = encoder.transform(X_test, return_std=True)
    codes, placed_std = neighbors.transform(X_test, return_std=True)
    np.testing.assert_array_equal(std, placed_std)
    assert np.isfinite(codes).all() and not np.allclose(codes, means)
    assert encoder._model.reference is None


def test_placement_needs_a_model_fitted_with_it(digits_split):
    X_train, X_test, *_ = digits_split
    vae = fit_quietly(VAETransformer(n_components=2, **SMALL), X_train[:200])
    vae.set_params(placement="neighbors")
    with pytest.raises(ValueError, match="Refit it with placement='neighbors'"):
        vae.transform(X_test)


def test_placement_is_checked():
    with pytest.raises(ValueError, match="placement"):
        VAETransformer(placement="umap").fit(np.zeros((10, 2)))


def test_the_reference_survives_pickling(placed, digits_split):
    _, X_test, *_ = digits_split
    copy = pickle.loads(pickle.dumps(placed))
    np.testing.assert_array_equal(
        copy.transform(X_test[:30]), placed.transform(X_test[:30])
    )


def test_to_onnx_refuses_a_placed_transform(placed):
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="placement='encoder'"):
        placed.to_onnx()
    assert placed.to_onnx(method="inverse_transform") is not None


def test_a_mixed_table_with_holes_is_placed():
    rng = np.random.RandomState(0)
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=150),
            "b": rng.normal(size=150),
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], 150)),
        }
    )
    frame.loc[::7, "a"] = np.nan
    vae = fit_quietly(
        VAETransformer(
            n_components=2,
            placement="neighbors",
            hidden_layer_sizes=(16,),
            max_iter=5,
            random_state=0,
        ),
        frame,
    )
    codes = vae.transform(frame.iloc[:20])
    assert codes.shape == (20, 2) and np.isfinite(codes).all()
    # The reference holds the rows as the encoder reads them: one-hot labels
    # and observed-flags make it wider than the table.
    assert vae._model.reference.inputs.shape[1] > 3


def test_the_reference_is_capped_by_rows_and_bytes():
    assert reference_rows(500, 64) == 500
    assert reference_rows(10**7, 64) == REFERENCE_ROWS
    wide = 10**6
    assert reference_rows(10**7, wide) == REFERENCE_BYTES // (4 * wide)
    assert reference_rows(10**7, 10**9) == 1


def test_a_placed_row_moves_toward_its_input_neighbours():
    # Two clusters of training codes; a row whose input neighbours are all in
    # the upper-right cluster, but whose encoder mean sits between the two,
    # ends in that cluster.
    generator = torch.Generator().manual_seed(0)
    ref_inputs = torch.cat(
        [
            torch.randn(50, 3, generator=generator) - 5,
            torch.randn(50, 3, generator=generator) + 5,
        ]
    )
    ref_codes = torch.cat([torch.full((50, 2), -1.0), torch.full((50, 2), 1.0)])
    ref_codes = ref_codes + 0.1 * torch.randn(100, 2, generator=generator)
    order = torch.randperm(100, generator=generator)
    reference = (ref_inputs[order], ref_codes[order])
    codes = place(torch.full((1, 3), 5.0), torch.zeros(1, 2), reference, 5.0)
    assert ((codes - 1.0).abs() < 0.3).all(), codes
