"""Real distributed engines: a dask.distributed LocalCluster of worker processes
(joblib's dask backend, dask-ml's wrappers and searches) and a local Ray
instance (joblib's ray backend). The ``distributed`` extra installs them."""

import os
import warnings

import dask.array as da
import joblib
import numpy as np
import pytest
from dask.distributed import Client, LocalCluster, get_task_stream
from dask_ml.model_selection import HyperbandSearchCV, IncrementalSearchCV
from dask_ml.wrappers import Incremental, ParallelPostFit
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skvae import VAETransformer

FAST = dict(hidden_layer_sizes=(16,), max_iter=5, warmup_epochs=0, random_state=0)
N_WORKERS = 2

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=N_WORKERS,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def X():
    rng = np.random.RandomState(0)
    t = rng.uniform(-2, 2, size=(240, 2))
    return np.column_stack(
        [t[:, 0], np.sin(t[:, 0]), t[:, 1] ** 2, t[:, 0] * t[:, 1], rng.randn(240)]
    )


def _threads_in_a_fit():
    """Runs on a worker: the intra-op threads torch uses for a fit there."""
    import torch

    VAETransformer(**FAST).fit(np.random.RandomState(0).randn(50, 3))
    return torch.get_num_threads()


def test_each_worker_trains_on_its_share_of_the_cores(client):
    threads = client.run(_threads_in_a_fit)
    assert len(threads) == N_WORKERS
    # dask's nanny starts workers with OMP_NUM_THREADS=1, which torch follows:
    # the workers together use no more threads than the machine has cores.
    share = max(1, (os.cpu_count() or 1) // N_WORKERS)
    assert all(n <= share for n in threads.values()), threads


def test_grid_search_through_joblib_dask_backend_matches_a_local_one(client, X):
    grid = {"n_components": [1, 2], "beta": [0.5, 1.0]}
    local = GridSearchCV(VAETransformer(**FAST), grid, cv=2).fit(X)
    with get_task_stream(client) as tasks, joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(VAETransformer(**FAST), grid, cv=2, n_jobs=-1).fit(X)
    # The 4 settings x 2 folds ran as tasks of the cluster's workers.
    workers = {task["worker"] for task in tasks.data}
    assert workers and workers <= set(client.run(os.getpid))
    # Seeded fits are reproducible across processes: the same scores exactly.
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert remote.best_params_ == local.best_params_


def test_incremental_trains_block_by_block_as_partial_fit_does(client, X):
    blocks = da.from_array(X, chunks=60)
    remote = Incremental(VAETransformer(**FAST), shuffle_blocks=False).fit(blocks)
    local = VAETransformer(**FAST)
    for start in range(0, len(X), 60):
        local.partial_fit(X[start : start + 60])
    assert remote.estimator_.n_iter_ == local.n_iter_ == 4
    Z = remote.transform(blocks)
    assert isinstance(Z, da.Array)
    np.testing.assert_allclose(Z.compute(), local.transform(X), rtol=1e-5, atol=1e-6)


def test_parallel_post_fit_transforms_every_block_on_the_cluster(client, X):
    model = ParallelPostFit(VAETransformer(**FAST)).fit(X)
    Z = model.transform(da.from_array(X, chunks=50))
    assert isinstance(Z, da.Array) and Z.numblocks == (5, 1)
    np.testing.assert_allclose(Z.compute(), model.estimator.transform(X), rtol=1e-6)


@pytest.mark.parametrize("search", [IncrementalSearchCV, HyperbandSearchCV])
def test_incremental_searches_tune_over_partial_fit_and_score(client, X, search):
    blocks = da.from_array(X, chunks=40)
    # dask-ml's searches need a y; a transformer ignores it.
    y = da.zeros(len(X), chunks=40)
    params = {"n_components": [1, 2, 3]}
    kwargs = dict(max_iter=3, random_state=0)
    if search is IncrementalSearchCV:
        kwargs.update(n_initial_parameters=3, decay_rate=None)
    model = search(VAETransformer(**FAST), params, **kwargs).fit(blocks, y)
    assert model.best_params_["n_components"] in params["n_components"]
    assert np.isfinite(model.best_score_)
    Z = model.best_estimator_.transform(X)
    assert Z.shape == (len(X), model.best_params_["n_components"])


def test_grid_search_through_joblib_ray_backend_matches_a_local_one(X):
    import ray  # imported here: it costs a second that the dask tests need not pay
    from ray.util.joblib import register_ray

    grid = {"n_components": [1, 2]}
    # On the CPU: ray hides GPUs from tasks that ask for none, so its fits run
    # on the CPU, and the comparison is exact.
    local = GridSearchCV(VAETransformer(device="cpu", **FAST), grid, cv=2).fit(X)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        register_ray()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            with joblib.parallel_config(backend="ray"):
                remote = GridSearchCV(
                    VAETransformer(device="cpu", **FAST), grid, cv=2, n_jobs=2
                )
                remote.fit(X)

        # A local function: Ray ships it by value (the test module is not
        # importable on its workers).
        def threads_in_a_fit():
            import torch

            VAETransformer(**FAST).fit(np.random.RandomState(0).randn(50, 3))
            return torch.get_num_threads()

        task = ray.remote(num_cpus=1)(threads_in_a_fit)
        threads = ray.get([task.remote() for _ in range(2)])
    finally:
        ray.shutdown()
    np.testing.assert_allclose(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert all(n == 1 for n in threads)  # a 1-CPU Ray task runs torch on 1 thread


def test_a_fit_on_a_dask_array_reads_its_blocks_through_the_client(client, X):
    from skvae._schema import RowBlocks

    blocks = da.from_array(X, chunks=60)
    assert RowBlocks(blocks).scheduler is None  # the client's, where data lives
    vae = VAETransformer(**FAST).fit(blocks)
    np.testing.assert_allclose(vae.mean_, X.mean(axis=0))
