"""Training on a dask array, a block at a time: data larger than memory."""

import threading
import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skvae import VAETransformer
from skvae._schema import SchemaError

FAST = dict(hidden_layer_sizes=(32,), max_iter=4, warmup_epochs=0, random_state=0)
BLOCK_ROWS = 500


@pytest.fixture
def table():
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, size=(3000, 2))
    X = np.column_stack(
        [t[:, 0], np.sin(2 * t[:, 0]), t[:, 1] ** 2, t[:, 0] * t[:, 1], 5 + t[:, 1]]
    )
    X = (X + 0.05 * rng.randn(*X.shape)).astype(np.float32)
    X[rng.rand(*X.shape) < 0.02] = np.nan
    return X


class CountingBlocks:
    """A dask array over ``X`` whose blocks count how often they are read."""

    def __init__(self, X, block_rows=BLOCK_ROWS):
        self.X = X
        self.reads = 0
        self._lock = threading.Lock()
        blocks = [
            da.from_delayed(
                dask.delayed(self._read)(start, start + block_rows),
                shape=(min(block_rows, len(X) - start), X.shape[1]),
                dtype=X.dtype,
            )
            for start in range(0, len(X), block_rows)
        ]
        self.array = da.concatenate(blocks, axis=0)

    def _read(self, start, stop):
        with self._lock:
            self.reads += 1
        return self.X[start:stop].copy()


def fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**{**FAST, **params}).fit(X)


def test_fit_on_blocks_learns_what_a_fit_in_memory_learns(table):
    held_out = table[2500:]
    blocked = fit(da.from_array(table[:2500], chunks=BLOCK_ROWS))
    in_memory = fit(table[:2500])
    # One pass over the blocks gives the same standardisation.
    np.testing.assert_allclose(blocked.mean_, in_memory.mean_, rtol=1e-6)
    np.testing.assert_allclose(blocked.scale_, in_memory.scale_, rtol=1e-6)
    assert blocked.n_iter_ == 4 and len(blocked.history_) == 4
    assert blocked.loss_curve_[-1] < blocked.loss_curve_[0]

    def mse(vae):
        rows = held_out[~np.isnan(held_out).any(axis=1)]
        return np.mean((vae.inverse_transform(vae.transform(rows)) - rows) ** 2)

    # Shuffling within blocks rather than across the table costs little.
    assert mse(blocked) < 1.3 * mse(in_memory)


def test_every_epoch_reads_each_block_once(table):
    source = CountingBlocks(table)
    n_blocks = source.array.numblocks[0]
    fit(source.array)
    # The statistics pass (its first block twice: the shift, then the sums),
    # then one read of every block per epoch: never the whole table at once;
    # last, the codes of the sampling mixture, from as few blocks as give
    # MIXTURE_ROWS rows: every block of this small table.
    assert source.reads == 1 + n_blocks + FAST["max_iter"] * n_blocks + n_blocks


def test_the_sampling_mixture_reads_only_the_blocks_it_needs(table, monkeypatch):
    import skvae._model as model_module

    # A table of six blocks whose mixture needs two blocks' rows.
    monkeypatch.setattr(model_module, "MIXTURE_ROWS", 2 * BLOCK_ROWS - 100)
    source = CountingBlocks(table)
    n_blocks = source.array.numblocks[0]
    vae = fit(source.array)
    assert source.reads == 1 + n_blocks + FAST["max_iter"] * n_blocks + 2
    assert vae._model.mixture is not None
    assert np.isfinite(vae.sample(20, random_state=0)).all()


def test_fit_on_blocks_is_reproducible(table):
    X = da.from_array(table, chunks=BLOCK_ROWS)
    first, second = fit(X), fit(X)
    np.testing.assert_array_equal(first.transform(table), second.transform(table))
    other = fit(X, random_state=1)
    assert not np.allclose(first.transform(table), other.transform(table))


def test_partial_fit_trains_one_epoch_over_the_blocks(table):
    vae = VAETransformer(**FAST)
    X = da.from_array(table, chunks=BLOCK_ROWS)
    vae.partial_fit(X).partial_fit(X)
    assert vae.n_iter_ == 2
    assert np.isfinite(vae.transform(table)).all()


def test_transform_and_score_samples_of_blocks_are_lazy_and_match(table):
    vae = fit(table)
    X = da.from_array(table, chunks=BLOCK_ROWS)
    Z, scores = vae.transform(X), vae.score_samples(X)
    assert isinstance(Z, da.Array) and isinstance(scores, da.Array)
    assert Z.chunks == (X.chunks[0], (vae.n_components,))
    np.testing.assert_allclose(Z.compute(), vae.transform(table), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        scores.compute(), vae.score_samples(table), rtol=1e-6, atol=1e-7
    )


def test_columns_split_over_blocks_and_integers_are_read_whole_and_as_floats():
    rng = np.random.RandomState(0)
    X = rng.randint(0, 50, size=(400, 6))
    vae = fit(da.from_array(X, chunks=(100, 2)))
    np.testing.assert_allclose(vae.mean_, X.mean(axis=0))
    assert vae.n_features_in_ == 6


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(early_stopping=True), "early_stopping=True"),
        (dict(likelihood="bernoulli"), "Gaussian columns only"),
        (dict(likelihood={0: "poisson"}), "Gaussian columns only"),
    ],
)
def test_fit_on_blocks_refuses_what_it_cannot_do(table, params, match):
    vae = VAETransformer(**{**FAST, **params})
    with pytest.raises(ValueError, match=match):
        vae.fit(da.from_array(table, chunks=BLOCK_ROWS))
    assert not hasattr(vae, "module_")


def test_blocks_with_infinities_are_refused_naming_the_column(table):
    X = table.copy()
    X[2700, 3] = np.inf  # in the last block
    vae = VAETransformer(**FAST)
    with pytest.raises(SchemaError, match="Column 3 holds infinite values"):
        vae.fit(da.from_array(X, chunks=BLOCK_ROWS))
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda X: da.from_array(X[:, 0], chunks=100), "2-D dask array"),
        (lambda X: da.from_array(X, chunks=500)[da.from_array(X)[:, 0] > 0], "unknown"),
        (lambda X: da.from_array(X.astype(str), chunks=500), "cannot be read"),
    ],
)
def test_bad_dask_arrays_get_a_clear_error(table, make, match):
    with pytest.raises(ValueError, match=match):
        VAETransformer(**FAST).fit(make(table))


def test_transform_of_blocks_checks_the_width(table):
    vae = fit(table)
    with pytest.raises(ValueError, match="features"):
        vae.transform(da.from_array(table[:, :3], chunks=BLOCK_ROWS))


def test_blocks_are_read_in_this_thread_without_a_cluster(table):
    from skvae._schema import RowBlocks

    blocks = RowBlocks(da.from_array(table, chunks=BLOCK_ROWS))
    # dask's threaded scheduler costs ~200 ms a block in dispatch.
    assert blocks.scheduler == "synchronous" and len(blocks) == 6
    np.testing.assert_array_equal(blocks.read(1), table[BLOCK_ROWS : 2 * BLOCK_ROWS])
