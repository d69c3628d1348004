"""One fitted model served from many threads, and fitted while it serves."""

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer

FAST = dict(hidden_layer_sizes=(32,), max_iter=3, warmup_epochs=0, random_state=0)
N_THREADS = 8


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, size=(2000, 2))
    return np.column_stack([t, np.sin(t[:, :1]), t[:, 1:] ** 2, rng.randn(2000, 2)])


def fitted(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


def calls(vae, X):
    """Every inference method once, with the same arguments each time."""
    Z = vae.transform(X[:300])
    return {
        "transform": Z,
        "transform_one_row": vae.transform(X[:1]),
        "inverse_transform": vae.inverse_transform(Z),
        "score_samples": vae.score_samples(X[:300]),
        "sample": vae.sample(50, random_state=7),
        "impute": vae.impute(np.where(np.eye(300, 6, dtype=bool), np.nan, X[:300])),
    }


def test_many_threads_get_what_serial_calls_get(X):
    vae = fitted(X)
    serial = calls(vae, X)
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(lambda _: calls(vae, X), range(4 * N_THREADS)))
    for result in results:
        for name, value in serial.items():
            np.testing.assert_array_equal(result[name], value, err_msg=name)


@pytest.mark.parametrize("how", ["partial_fit", "refit"])
def test_a_model_being_fitted_is_never_seen_half_fitted(X, how):
    vae = fitted(X)
    before = vae.transform(X[:200])
    seen, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            seen.append(vae.transform(X[:200]))

    readers = [threading.Thread(target=serve) for _ in range(N_THREADS)]
    for reader in readers:
        reader.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            if how == "partial_fit":
                vae.partial_fit(X)
            else:
                vae.set_params(random_state=1, max_iter=2).fit(X)
        after = vae.transform(X[:200])
        # Keep serving a little after the fit: the readers must see it.
        for _ in range(2):
            seen.append(vae.transform(X[:200]))
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert not np.array_equal(before, after)
    for Z in seen:  # each call saw one whole model: the old or the new
        assert np.array_equal(Z, before) or np.array_equal(Z, after)
    assert any(np.array_equal(Z, after) for Z in seen)
