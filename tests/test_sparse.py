"""scipy.sparse input: densified one minibatch at a time, never as a whole."""

import tracemalloc
import warnings

import numpy as np
import pytest
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

FAST = dict(hidden_layer_sizes=(16,), max_iter=3, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


@pytest.fixture
def counts():
    rng = np.random.RandomState(0)
    dense = rng.poisson(0.3, size=(300, 40)).astype(np.float64)
    dense[:, 5] = 0.0  # an empty column
    return dense


@pytest.mark.parametrize("form", ["csr", "csc"])
def test_sparse_fit_matches_the_dense_fit(counts, form):
    matrix = sparse.csr_matrix(counts) if form == "csr" else sparse.csc_matrix(counts)
    from_sparse, from_dense = fitted(matrix), fitted(counts)
    np.testing.assert_allclose(from_sparse.mean_, from_dense.mean_, rtol=1e-12)
    np.testing.assert_allclose(from_sparse.scale_, from_dense.scale_, rtol=1e-12)
    assert from_sparse.schema_.columns[5].constant
    np.testing.assert_allclose(
        from_sparse.transform(matrix),
        from_dense.transform(counts),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        from_sparse.score_samples(matrix), from_dense.score_samples(counts), rtol=1e-5
    )
    np.testing.assert_allclose(
        from_sparse.transform(matrix[:3]), from_dense.transform(counts[:3]), rtol=1e-5
    )


def test_partial_fit_and_early_stopping_take_sparse_rows(counts):
    matrix = sparse.csr_matrix(counts)
    vae = VAETransformer(**FAST).partial_fit(matrix[:150]).partial_fit(matrix[150:])
    assert vae.n_iter_ == 2
    stopped = fitted(matrix, early_stopping=True, max_iter=4)
    assert len(stopped.validation_scores_) == 4
    np.testing.assert_array_equal(stopped.impute(matrix).toarray(), counts)


def test_a_wide_sparse_matrix_is_never_densified_whole():
    rng = np.random.default_rng(0)
    n = 30_000  # non-zeros: a density of 0.1 %
    matrix = sparse.csr_matrix(
        (rng.random(n), (rng.integers(0, 1000, n), rng.integers(0, 30_000, n))),
        shape=(1000, 30_000),
    )
    dense_bytes = 1000 * 30_000 * 8
    tracemalloc.start()
    try:
        vae = fitted(matrix, hidden_layer_sizes=(8,), max_iter=1)
        Z = vae.transform(matrix)
        scores = vae.score_samples(matrix)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert Z.shape == (1000, 2) and np.isfinite(scores).all()
    # numpy's allocations stay far below the 240 MB a dense copy would take:
    # about one densified training batch (128 rows: 31 MB) and its slices.
    assert peak < dense_bytes / 4, peak


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda X: X.multiply(np.nan).tocsr(), "NaN entries"),
        (lambda X: X.multiply(np.inf).tocsr(), "infinity"),
    ],
)
def test_sparse_matrices_with_holes_or_infinities_are_refused(counts, make, match):
    matrix = make(sparse.csr_matrix(counts))
    with pytest.raises(ValueError, match=match):
        VAETransformer(**FAST).fit(matrix)


def test_sparse_matrices_take_gaussian_columns_only(counts):
    with pytest.raises(ValueError, match="Gaussian columns only"):
        VAETransformer(**FAST, likelihood="poisson").fit(sparse.csr_matrix(counts))
