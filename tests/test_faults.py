"""Interrupts and damaged files: Ctrl-C in the middle of a call leaves a usable
model; a saved model cut short or altered is refused with a clear error."""

import pickle
import warnings

import numpy as np
import pytest
import skops.io as sio
from sklearn.exceptions import ConvergenceWarning

import skvae._model as model_module
import skvae._training as training
from skvae import VAETransformer

FAST = dict(hidden_layer_sizes=(16,), max_iter=3, warmup_epochs=0, random_state=0)


@pytest.fixture
def X():
    return np.random.RandomState(0).standard_normal((400, 5))


@pytest.fixture
def vae(X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return VAETransformer(**FAST).fit(X)


def interrupt_after(monkeypatch, owner, name, n_calls):
    """Make ``owner.name`` raise KeyboardInterrupt on call ``n_calls + 1``."""
    real = getattr(owner, name)
    count = []

    def interrupted(*args, **kwargs):
        count.append(1)
        if len(count) > n_calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)


def test_ctrl_c_during_partial_fit_leaves_a_usable_model(vae, X, monkeypatch):
    interrupt_after(monkeypatch, training, "train_step", 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "interrupted by the user"
        vae.partial_fit(X)
    monkeypatch.undo()
    assert vae.n_iter_ == 3  # the interrupted epoch is not counted
    assert np.isfinite(vae.transform(X)).all()
    vae.partial_fit(X)  # and it trains on
    assert vae.n_iter_ == 4


def test_ctrl_c_during_a_first_partial_fit_leaves_it_unfitted(X, monkeypatch):
    interrupt_after(monkeypatch, training, "train_step", 0)
    vae = VAETransformer(**FAST)
    with pytest.raises(KeyboardInterrupt):
        vae.partial_fit(X)
    assert not hasattr(vae, "module_")


@pytest.mark.parametrize("method", ["transform", "score_samples", "impute"])
def test_ctrl_c_during_inference_leaves_the_model_as_it_was(
    vae, X, monkeypatch, method
):
    expected = getattr(vae, method)(X)
    monkeypatch.setattr(model_module, "inference_batch_rows", lambda *a, **k: 50)
    interrupt_after(monkeypatch, model_module, "encode_rows", 2)
    with pytest.raises(KeyboardInterrupt):
        getattr(vae, method)(X)
    monkeypatch.undo()
    np.testing.assert_array_equal(getattr(vae, method)(X), expected)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_a_pickle_cut_short_is_refused(vae, fraction):
    data = pickle.dumps(vae)
    with pytest.raises((pickle.UnpicklingError, EOFError, ValueError)):
        pickle.loads(data[: int(len(data) * fraction)])


def altered(vae, change):
    state = vae.__getstate__()
    change(state)
    clone = VAETransformer.__new__(VAETransformer)
    clone.__setstate__(state)
    return clone


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s["module_"].update(
            {"encoder.net.0.weight": np.zeros((3, 3), np.float32)}
        ),
        lambda s: s["module_"].pop("decoder.net.0.bias"),
        lambda s: s["module_"]["encoder.net.0.weight"].fill(np.nan),
        lambda s: s.update(schema_="not a schema"),
        lambda s: s["_architecture"].update(hidden_layer_sizes=[99]),
    ],
    ids=["wrong shape", "missing weight", "NaN weights", "schema", "architecture"],
)
def test_an_altered_state_is_refused_with_a_clear_error(vae, change):
    with pytest.raises(ValueError, match="damaged or was altered"):
        altered(vae, change)


def test_an_altered_skops_file_is_refused(vae, tmp_path):
    path = tmp_path / "vae.skops"
    sio.dump(vae, path)
    trusted = sio.get_untrusted_types(file=path)
    cut = tmp_path / "cut.skops"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(Exception) as error:  # the archive itself is damaged
        sio.load(cut, trusted=trusted)
    # zipfile's or skops' own refusal, not a failure deep in torch.
    assert "torch" not in type(error.value).__module__


def test_inference_that_runs_the_device_out_of_memory_retries_smaller(
    vae, X, monkeypatch
):
    import torch

    expected = vae.transform(X)
    encode = vae.module_.encode
    sizes = []

    def needs_small_batches(x, observed=None):
        sizes.append(x.shape[0])
        if x.shape[0] > 60:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return encode(x, observed)

    monkeypatch.setattr(vae.module_, "encode", needs_small_batches)
    # (close, not equal: on a GPU another batch size may pick another kernel)
    np.testing.assert_allclose(vae.transform(X), expected, rtol=1e-6, atol=1e-7)
    # Halved until a batch fits, then the rest of the rows in batches that fit.
    assert sizes == [400, 200, 100] + [50] * 8

    def never_fits(x, observed=None):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(vae.module_, "encode", never_fits)
    with pytest.raises(ValueError, match="ran out of memory on a single row"):
        vae.transform(X)


def test_a_fit_that_runs_the_device_out_of_memory_stops_clearly(X, monkeypatch):
    import torch

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")

    monkeypatch.setattr(training, "train_step", out_of_memory)
    vae = VAETransformer(**FAST)
    with pytest.raises(ValueError, match="ran out of memory while fitting"):
        vae.fit(X)
    assert not hasattr(vae, "module_")
