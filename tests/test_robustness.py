"""Regression tests for the defects the property-based tests (test_fuzz.py) and
the robustness issue found, each kept as a plain test."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAEImputer, VAETransformer

FAST = dict(hidden_layer_sizes=(8,), max_iter=2, warmup_epochs=0, random_state=0)


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


def test_a_single_level_column_decodes_to_its_level():
    # Found by the fuzzer: a one-level column's softmax has one entry, which was
    # taken for the level's index (1.0) instead of its argmax (0).
    frame = pd.DataFrame({"c": ["only"] * 5, "x": np.arange(5.0)})
    vae = fitted(frame)
    back = vae.inverse_transform(vae.transform(frame))
    assert list(back["c"]) == ["only"] * 5
    assert list(vae.sample(3, random_state=0)["c"]) == ["only"] * 3


def test_repeated_column_names_are_refused_by_name():
    # Found by the fuzzer: narwhals' DuplicateError escaped from validate_data.
    frame = pd.DataFrame([[1.0, 2.0, 3.0]] * 4, columns=["a", "b", "a"])
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        VAETransformer(**FAST).fit(frame)
    vae = fitted(frame.set_axis(["a", "b", "c"], axis=1))
    with pytest.raises(ValueError, match="more than one column named 'a'"):
        vae.transform(frame)


def test_a_diverged_model_refuses_to_return_infinities():
    # Found by the fuzzer: one huge Adam step on one row left finite weights
    # whose log-likelihoods were -inf; now every method says so instead.
    params = dict(
        n_components=1,
        hidden_layer_sizes=1,
        beta=0.0,
        learning_rate_init=1000.0,
        max_iter=1,
        tol=0.0,
        n_iter_no_change=1,
        random_state=3,
    )
    X = np.random.RandomState(0).standard_normal((1, 3))
    vae = VAETransformer(**params).fit(X)
    with pytest.raises(ValueError, match="non-finite values for 1 of 1 rows"):
        vae.score_samples(X)


def test_float32_values_around_1e30_give_finite_results():
    X = (np.random.RandomState(0).standard_normal((40, 3)) * 1e30).astype(np.float32)
    vae = fitted(X)
    assert np.isfinite(vae.scale_).all()
    Z = vae.transform(X)
    for result in (
        Z,
        vae.inverse_transform(Z),
        vae.score_samples(X),
        vae.sample(5, random_state=0),
    ):
        assert np.isfinite(result).all()


@pytest.mark.parametrize("dtype", [np.int64, np.uint64])
def test_integer_columns_at_the_end_of_their_range_round_trip(dtype):
    top = int(np.iinfo(dtype).max)
    frame = pd.DataFrame(
        {
            "big": np.array([top, top - 1, top - 2] * 10, dtype=dtype),
            "x": np.arange(30.0),
        }
    )
    vae = fitted(frame)
    drawn = vae.sample(5, random_state=0)
    assert drawn["big"].dtype == dtype
    holes = frame.astype({"x": float}).copy()
    holes.loc[3, "x"] = np.nan
    assert vae.impute(holes)["big"].dtype == dtype


def test_imputer_whose_second_fit_fails_is_not_fitted():
    X = np.random.RandomState(0).standard_normal((30, 3))
    imputer = VAEImputer(VAETransformer(**FAST))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        imputer.fit(X)
    with pytest.raises(ValueError):
        imputer.fit(np.full((30, 3), np.inf))
    assert not hasattr(imputer, "estimator_")
    imputer.set_params(estimator="not an estimator")
    with pytest.raises(ValueError):
        imputer.fit(X)  # a parameter error, too, leaves nothing fitted
    assert not hasattr(imputer, "estimator_")


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(hidden_layer_sizes=(10**9,)), "would need about .* to train"),
        (dict(hidden_layer_sizes=(10**6, 10**6)), "smaller hidden_layer_sizes"),
        (dict(n_importance_samples=10**12), "fewer importance samples"),
    ],
)
def test_a_model_too_big_for_memory_is_refused_before_allocating(params, match):
    X = np.random.RandomState(0).standard_normal((50, 4))
    vae = VAETransformer(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        vae.fit(X)
    assert not hasattr(vae, "module_")


def test_max_iter_is_bounded():
    X = np.random.RandomState(0).standard_normal((50, 4))
    with pytest.raises(ValueError, match="max_iter"):
        VAETransformer(max_iter=10**9).fit(X)


def test_float64_values_near_1e300_give_finite_results():
    # Found by the fuzzer: squared deviations of 1e300 overflowed float64, so the
    # scale was inf and decoded rows NaN; such columns now take a scaled pass.
    X = np.array([[1.6e300, -6.1e299, -5.3e299], [-1.1e300, np.nan, -2.3e300]] * 5)
    vae = fitted(X)
    assert np.isfinite(vae.scale_).all() and np.isfinite(vae.mean_).all()
    np.testing.assert_allclose(vae.mean_[0], np.mean(X[:, 0]), rtol=1e-12)
    # (numpy's own std overflows here: compare in units of 1e300)
    np.testing.assert_allclose(vae.scale_[0], np.std(X[:, 0] / 1e300) * 1e300)
    Z = vae.transform(X)
    for result in (vae.inverse_transform(Z), vae.sample(4, random_state=0)):
        assert np.isfinite(result).all()


def test_a_sample_too_big_for_memory_is_refused_before_drawing():
    vae = fitted(np.random.RandomState(0).standard_normal((30, 3)))
    with pytest.raises(ValueError, match="Draw fewer rows at a time"):
        vae.sample(10**15)


def test_a_partial_fit_that_diverges_keeps_the_model_it_had():
    # Found by the fuzzer: a second chunk far outside the first one's range
    # diverged, and the model was dropped; training now runs on a private
    # copy, so the model before the call stays.
    vae = VAETransformer(**FAST).partial_fit(np.array([[2.0]]))
    before = vae.transform(np.array([[2.0]]))
    with pytest.raises(ValueError, match="Training diverged"):
        vae.partial_fit(np.array([[176405235.0]]))
    np.testing.assert_array_equal(vae.transform(np.array([[2.0]])), before)
    assert vae.n_iter_ == 1


def test_rows_beyond_float32_after_standardising_are_refused_clearly():
    # Found by the fuzzer: a row ~1e149 scales from the training data overflowed
    # the float32 cast with a RuntimeWarning, then gave NaN codes.
    vae = VAETransformer(**FAST).partial_fit(np.array([[np.nan], [-6.1e149]]))
    with pytest.raises(ValueError, match="far outside the training data"):
        vae.transform(np.array([[0.0], [1.0]]))


# ---- found by a review of the change, each kept as a test


def test_a_thread_that_reads_may_read_again_while_a_writer_waits():
    import threading

    from skvae._concurrency import FittedStateLock

    lock, done = FittedStateLock(), threading.Event()
    lock.acquire_read()
    writer = threading.Thread(target=lock.write, args=(done.set,))
    writer.start()
    while not lock._writing:  # the writer now waits for this reader
        threading.Event().wait(0.001)
    lock.acquire_read()  # would wait for the writer, which waits for us
    lock.release_read()
    lock.release_read()
    writer.join(timeout=10)
    assert done.is_set() and not writer.is_alive()


def test_a_fit_copies_the_estimator_without_its_saved_state(monkeypatch):
    X = np.random.RandomState(0).standard_normal((40, 3))
    vae = fitted(X)

    def no_pickling(self):
        raise AssertionError("a fit must not round-trip the state through numpy")

    monkeypatch.setattr(VAETransformer, "__getstate__", no_pickling)
    vae.partial_fit(X)
    fitted(X)


def test_publishing_a_fit_keeps_parameters_set_meanwhile():
    X = np.random.RandomState(0).standard_normal((40, 3))
    from skvae._concurrency import private_copy, publish

    vae = fitted(X)
    work = private_copy(vae)
    vae.set_params(beta=0.25)  # while the copy "trains"
    publish(vae, work)
    assert vae.beta == 0.25 and hasattr(vae, "module_")


def test_columns_spanning_the_whole_float64_range_get_finite_statistics():
    from skvae._schema import _column_stats

    stats = _column_stats(np.array([[1.7e308], [-1.7e308], [0.0]]))
    assert np.isfinite(stats.mean).all() and np.isfinite(stats.std).all()
    np.testing.assert_allclose(stats.std, np.std([1.7, -1.7, 0.0]) * 1e308)


def test_sparse_statistics_do_not_cancel_for_large_means():
    from scipy import sparse

    from skvae._schema import _column_stats

    rng = np.random.RandomState(0)
    X = 1e8 + rng.standard_normal((500, 2))
    X[rng.rand(500) < 0.5, 0] = 0.0
    stats = _column_stats(sparse.csr_matrix(X))
    np.testing.assert_allclose(stats.std, X.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats.mean, X.mean(axis=0), rtol=1e-12)


def test_sparse_float32_input_gives_float32_codes():
    from scipy import sparse

    X = sparse.random(60, 8, density=0.3, random_state=0, dtype=np.float32)
    vae = fitted(X.tocsr())
    assert vae.transform(X.tocsr()).dtype == np.float32


def test_sparse_early_stopping_never_densifies_the_validation_rows(monkeypatch):
    from scipy import sparse

    from skvae._data import SparseRows

    def whole(self):
        raise AssertionError("the validation rows must be read a chunk at a time")

    monkeypatch.setattr(SparseRows, "all", whole)
    X = sparse.random(200, 8, density=0.3, random_state=0, format="csr")
    vae = fitted(X, early_stopping=True, max_iter=3)
    assert len(vae.validation_scores_) == 3


def test_partial_fit_on_a_dask_array_ignores_early_stopping_as_it_always_does():
    import dask.array as da

    X = da.from_array(np.random.RandomState(0).standard_normal((200, 3)), chunks=50)
    vae = VAETransformer(**FAST, early_stopping=True).partial_fit(X)
    assert vae.n_iter_ == 1
