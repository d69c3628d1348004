"""The training step replayed from CUDA graphs (``skvae._graphs``).

The capture itself needs a GPU. On the CPU the rest is tested through a capture
that hands back the module it is given, so every replay runs the very module a
graph would record: which batches go to a graph, the KL weight read from a device
scalar, the eager step for ragged batches and after a failed capture. A real
capture runs in the last test, on a CUDA machine.
"""

import numpy as np
import pandas as pd
import pytest
import torch

import skvae._graphs as graphs
import skvae._training as training
from skvae import VAETransformer


def _table(n_rows=100, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n_rows),
            "b": rng.normal(size=n_rows),
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], size=n_rows)),
        }
    )
    X.loc[rng.choice(n_rows, 10, replace=False), "a"] = np.nan
    return X


def _fit(X, **params):
    # 100 rows at batch 32: three full batches and a ragged one of 4 each epoch;
    # the warm-up changes the KL weight at every step of the first two epochs.
    params = {"batch_size": 32, "max_iter": 3, "warmup_epochs": 2, **params}
    return VAETransformer(
        2, hidden_layer_sizes=(16,), random_state=0, device="cpu", **params
    ).fit(X)


class _RecordingCapture:
    """Records the sample arguments' shapes and hands back the module, run only
    on arguments of those shapes, as a graph's fixed input buffers demand."""

    def __init__(self):
        self.shapes = []

    def __call__(self, module, sample_args):
        shapes = [tuple(arg.shape) for arg in sample_args]
        self.shapes.append(shapes)

        def replay(*args):
            assert [tuple(arg.shape) for arg in args] == shapes
            return module(*args)

        return replay


@pytest.fixture
def forced_graphs(monkeypatch):
    """Graphs chosen as on a GPU, captured by ``_RecordingCapture``."""
    capture = _RecordingCapture()
    monkeypatch.setattr(training, "wants_graphs", lambda *args: True)
    monkeypatch.setattr(graphs, "capture", capture)
    return capture


def test_graphed_steps_train_exactly_as_the_eager_steps(forced_graphs):
    X = _table()
    graphed = _fit(X)
    assert graphed.training_plan_["cuda_graphs"] is True
    # Once training is over the graphs are let go, and with them the gradients
    # (views of the graphs' buffers on a GPU).
    assert all(p.grad is None for p in graphed.module_.parameters())
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(training, "wants_graphs", lambda *args: False)
        eager = _fit(X)
    assert eager.training_plan_["cuda_graphs"] is False
    assert graphed.loss_curve_ == eager.loss_curve_
    np.testing.assert_array_equal(graphed.transform(X), eager.transform(X))


def test_one_graph_per_layout_of_a_full_batch(forced_graphs):
    # A table's rows are encoded once, with a mask of its holes in every batch:
    # one layout, captured once, at the full batch's 32 rows (noise of shape
    # (1, 32, 2), the KL weight a scalar, one model entry per column).
    _fit(_table())
    assert forced_graphs.shapes == [[(1, 32, 2), (), (32, 3), (32, 3)]]
    # A float array is standardised batch by batch, and on the CPU a batch
    # carries a mask only when it holds a hole: with two holes both layouts
    # occur, each captured once.
    X = np.random.default_rng(0).normal(size=(100, 4))
    X[[3, 70], 1] = np.nan
    forced_graphs.shapes.clear()
    _fit(X)
    assert sorted(forced_graphs.shapes) == [
        [(1, 32, 2), (), (32, 4)],
        [(1, 32, 2), (), (32, 4), (32, 4)],
    ]


def test_a_failed_capture_trains_eagerly(monkeypatch):
    def refuse(module, sample_args):
        raise RuntimeError("operation not permitted when stream is capturing")

    X = _table()
    eager = _fit(X)
    monkeypatch.setattr(training, "wants_graphs", lambda *args: True)
    monkeypatch.setattr(graphs, "capture", refuse)
    with pytest.warns(UserWarning, match="CUDA graph failed.*eager steps"):
        fallback = _fit(X)
    assert fallback.training_plan_["cuda_graphs"] is False
    assert fallback.loss_curve_ == eager.loss_curve_


def test_graphs_are_wanted_on_a_gpu_for_long_training_calls_when_asked(
    monkeypatch,
):
    cuda = torch.device("cuda")
    monkeypatch.delenv("SKVAE_CUDA_GRAPHS", raising=False)
    assert not graphs.wants_graphs(cuda, 10**6)  # experimental: off by default
    monkeypatch.setenv("SKVAE_CUDA_GRAPHS", "1")
    assert graphs.wants_graphs(cuda, graphs.MIN_STEPS)
    assert not graphs.wants_graphs(torch.device("cpu"), 10**6)
    assert not graphs.wants_graphs(cuda, graphs.MIN_STEPS - 1)
    # Never while a thread moves rows to the device: a capture forbids it.
    assert not graphs.wants_graphs(cuda, 10**6, threaded_reads=True)
    monkeypatch.setenv("SKVAE_CUDA_GRAPHS", "0")
    assert not graphs.wants_graphs(cuda, 10**6)


def test_the_kl_weight_of_a_replay_is_read_from_a_device_scalar():
    # A graph reads the KL weight as a tensor: the loss must take it as one and
    # give what it gives for the same number.
    generator = torch.Generator().manual_seed(0)
    model = _fit(_table(), max_iter=1).module_
    # The model's layout: one entry per column, the label as its level's index.
    levels = torch.randint(0, 3, (8, 1), generator=generator).float()
    data = torch.cat([torch.randn(8, 2, generator=generator), levels], dim=1)
    noise = torch.randn(1, 8, 2, generator=generator)
    as_number, _ = training.minibatch_loss(model, data, noise, 0.3)
    as_tensor, _ = training.minibatch_loss(model, data, noise, torch.tensor(0.3))
    assert torch.equal(as_number, as_tensor)


def _gpu_tables():
    rng = np.random.default_rng(0)
    numbers = rng.normal(size=(6400, 8)).astype(np.float32)
    # Holes (a mask in every batch), a narrow label (one-hot) and a wide one
    # (an embedding in the encoder, a softmax over 200 levels in the decoder).
    mixed = pd.DataFrame(numbers[:, :3], columns=["a", "b", "c"])
    mixed.loc[rng.choice(6400, 300, replace=False), "a"] = np.nan
    mixed["kind"] = pd.Categorical(rng.choice(["x", "y", "z"], 6400))
    mixed["code"] = pd.Categorical(rng.integers(0, 200, 6400))
    return {"numbers": numbers, "mixed table": mixed}


@pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="captures a real CUDA graph: needs a GPU (CI has none)",
)
@pytest.mark.parametrize("name", ["numbers", "mixed table"])
def test_a_real_capture_on_a_gpu_trains_as_the_eager_steps(monkeypatch, name):
    X = _gpu_tables()[name]
    # 200 steps: the fewest that are graphed.
    params = {"batch_size": 32, "max_iter": 1, "hidden_layer_sizes": (32,)}
    monkeypatch.setenv("SKVAE_CUDA_GRAPHS", "1")
    graphed = VAETransformer(2, random_state=0, device="cuda", **params).fit(X)
    assert graphed.training_plan_["cuda_graphs"] is True
    monkeypatch.setenv("SKVAE_CUDA_GRAPHS", "0")
    eager = VAETransformer(2, random_state=0, device="cuda", **params).fit(X)
    assert eager.training_plan_["cuda_graphs"] is False
    np.testing.assert_allclose(graphed.loss_curve_, eager.loss_curve_, rtol=1e-3)
    np.testing.assert_allclose(
        graphed.transform(X[:100]), eager.transform(X[:100]), atol=1e-2
    )


def test_a_dask_array_is_never_trained_with_graphs(monkeypatch):
    # Its next block is read and moved to the device in a thread, which a
    # capture would forbid: the loop tells the rule so.
    da = pytest.importorskip("dask.array", reason="the distributed extra")
    asked = []

    def record(device, n_steps, threaded_reads=False):
        asked.append(threaded_reads)
        return False

    monkeypatch.setattr(training, "wants_graphs", record)
    X = np.random.default_rng(0).normal(size=(200, 3))
    _fit(da.from_array(X, chunks=(50, 3)), warmup_epochs=0)
    _fit(X, warmup_epochs=0)
    assert asked == [True, False]
