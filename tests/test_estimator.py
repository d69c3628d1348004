"""Behaviour of VAETransformer: what users call and what it promises."""

import pickle
import re

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.validation import check_is_fitted

from skvae import VAETransformer

# Small networks and few epochs keep the suite fast; the data has 5 features.
FAST = dict(
    hidden_layer_sizes=(32, 16),
    max_iter=30,
    batch_size=32,
    warmup_epochs=0,
    random_state=0,
)


def fitted(X, **params):
    return VAETransformer(**{**FAST, **params}).fit(X)


# ------------------------------------------------------------------ shapes and API


@pytest.mark.parametrize("n_components", [1, 3])
def test_transform_shapes_and_round_trip(X_small, n_components):
    vae = fitted(X_small, n_components=n_components)
    Z = vae.transform(X_small)
    assert Z.shape == (X_small.shape[0], n_components)
    assert vae.inverse_transform(Z).shape == X_small.shape
    assert vae.sample(7, random_state=0).shape == (7, X_small.shape[1])
    assert vae.score_samples(X_small).shape == (X_small.shape[0],)
    assert np.isfinite(Z).all()


def test_fit_transform_equals_fit_then_transform(X_small):
    Z1 = VAETransformer(**FAST).fit_transform(X_small)
    Z2 = VAETransformer(**FAST).fit(X_small).transform(X_small)
    np.testing.assert_array_equal(Z1, Z2)


def test_fitted_attributes(X_small):
    vae = fitted(X_small, max_iter=7, n_iter_no_change=100)
    assert vae.n_features_in_ == X_small.shape[1]
    assert vae.n_iter_ == 7
    assert len(vae.loss_curve_) == 7
    assert all(np.isfinite(vae.loss_curve_))
    assert isinstance(vae.module_, torch.nn.Module)
    np.testing.assert_allclose(vae.mean_, X_small.mean(axis=0))
    np.testing.assert_allclose(vae.scale_, X_small.std(axis=0))


def test_training_lowers_the_loss(X_small):
    vae = fitted(X_small, max_iter=60, n_iter_no_change=100)
    assert vae.loss_curve_[-1] < vae.loss_curve_[0] - 0.5
    assert np.mean(vae.loss_curve_[-10:]) < np.mean(vae.loss_curve_[:10])


def test_early_stopping_on_training_loss(X_small):
    # A tolerance no epoch can meet stops training n_iter_no_change epochs after
    # the first (which always improves on an infinite best loss).
    vae = fitted(X_small, max_iter=100, tol=1e6, n_iter_no_change=3)
    assert vae.n_iter_ == 4


def test_transform_is_deterministic(X_small):
    vae = fitted(X_small)
    np.testing.assert_array_equal(vae.transform(X_small), vae.transform(X_small))


def test_transform_preserves_float32(X_small):
    vae = fitted(X_small)
    assert vae.transform(X_small.astype(np.float32)).dtype == np.float32
    assert vae.transform(X_small).dtype == np.float64


def test_transform_is_batch_invariant_to_float32_precision(X_small):
    # The strict sklearn check is an expected failure (see test_common.py); the
    # property holds at the precision the networks compute in.
    vae = fitted(X_small)
    full = vae.transform(X_small)
    one_by_one = np.vstack([vae.transform(row[None]) for row in X_small])
    np.testing.assert_allclose(full, one_by_one, rtol=1e-5, atol=1e-6)
    scores = np.hstack([vae.score_samples(row[None]) for row in X_small[:10]])
    np.testing.assert_allclose(vae.score_samples(X_small[:10]), scores, rtol=1e-5)


def test_get_feature_names_out(X_small):
    vae = fitted(X_small, n_components=3)
    assert list(vae.get_feature_names_out()) == [
        "vaetransformer0",
        "vaetransformer1",
        "vaetransformer2",
    ]


def test_set_output_pandas_and_feature_names_in(X_small):
    df = pd.DataFrame(X_small, columns=[f"col{i}" for i in range(X_small.shape[1])])
    vae = VAETransformer(**FAST).set_output(transform="pandas").fit(df)
    Z = vae.transform(df)
    assert isinstance(Z, pd.DataFrame)
    assert list(Z.columns) == ["vaetransformer0", "vaetransformer1"]
    assert list(Z.index) == list(df.index)
    assert list(vae.feature_names_in_) == list(df.columns)
    # The pandas codes decode straight back.
    assert vae.inverse_transform(Z).shape == X_small.shape


# --------------------------------------------------------- scale and likelihoods


def test_inverse_transform_returns_the_original_scale(X_small):
    vae = fitted(X_small, n_components=2, max_iter=100, n_iter_no_change=1000)
    X_hat = vae.inverse_transform(vae.transform(X_small))
    # Each column is reconstructed in its own units: the error is below that
    # column's spread, whatever the column's scale (1e-3 ... 100). Answers in
    # standardised units would miss by a factor of up to 1000.
    relative_rmse = np.sqrt(((X_hat - X_small) ** 2).mean(0)) / X_small.std(0)
    assert (relative_rmse < 1.0).all(), relative_rmse
    assert np.median(relative_rmse) < 0.8, relative_rmse


def test_sample_is_in_the_original_scale(X_small):
    vae = fitted(X_small, max_iter=100, n_iter_no_change=1000)
    X_new = vae.sample(2000, random_state=0)
    mean_gap = np.abs(X_new.mean(0) - X_small.mean(0)) / X_small.std(0)
    assert (mean_gap < 0.3).all(), mean_gap
    np.testing.assert_allclose(X_new.std(0), X_small.std(0), rtol=0.5)


def test_sample_reproducible_and_varied(X_small):
    vae = fitted(X_small)
    a = vae.sample(5, random_state=3)
    np.testing.assert_array_equal(a, vae.sample(5, random_state=3))
    assert not np.array_equal(a, vae.sample(5, random_state=4))
    assert not np.array_equal(vae.sample(5), vae.sample(5))


def test_sample_noise_is_independent_of_the_latent_draws(X_small):
    # Regression: one seed once fed both z and the noise of x given z, so the
    # noise of each row copied its latent code. Recover both and compare.
    from skvae._estimator import _seed_source
    from skvae._model import MAX_SEED

    vae = fitted(X_small).set_params(sampling="prior")  # z from N(0, I)
    X_new = vae.sample(200, random_state=7)
    z_seed, _ = _seed_source(7).randint(MAX_SEED, size=2)
    Z = torch.randn((200, 2), generator=torch.Generator().manual_seed(int(z_seed)))
    gaussian = vae.module_.likelihood.blocks[0]
    std = gaussian.variance().detach().sqrt().cpu().numpy() * vae.scale_
    noise = (X_new - vae.inverse_transform(Z.numpy())) / std
    first_draws = noise.ravel()[: Z.numel()]  # a shared stream would repeat Z here
    assert abs(np.corrcoef(first_draws, Z.numpy().ravel())[0, 1]) < 0.3
    assert abs(noise.std() - 1) < 0.1  # it is the model's noise, well scaled


@pytest.mark.parametrize("n_samples", [0, -1, 2.5, "3", True])
def test_sample_rejects_bad_n_samples(X_small, n_samples):
    vae = fitted(X_small)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        vae.sample(n_samples)


def test_bernoulli_likelihood(X_binary):
    vae = fitted(X_binary, likelihood="bernoulli", max_iter=100)
    probabilities = vae.inverse_transform(vae.transform(X_binary))
    assert probabilities.min() >= 0 and probabilities.max() <= 1
    accuracy = ((probabilities > 0.5) == X_binary).mean()
    assert accuracy > 0.9
    X_new = vae.sample(50, random_state=0)
    assert set(np.unique(X_new)) <= {0.0, 1.0}
    np.testing.assert_array_equal(vae.mean_, 0.0)
    np.testing.assert_array_equal(vae.scale_, 1.0)


def test_bernoulli_score_is_a_log_probability(X_binary):
    vae = fitted(X_binary, likelihood="bernoulli", max_iter=100)
    scores = vae.score_samples(X_binary)
    # The log-probability of a discrete row is at most log(1) = 0 (the bound is
    # below it in expectation), and a trained model beats the uniform model's
    # log(2 ** -12).
    assert scores.mean() < 0 and (scores < 0.5).all()
    assert scores.mean() > 12 * np.log(0.5)


def test_score_is_mean_of_score_samples_and_deterministic(X_small):
    vae = fitted(X_small)
    scores = vae.score_samples(X_small)
    assert vae.score(X_small) == pytest.approx(scores.mean())
    np.testing.assert_array_equal(scores, vae.score_samples(X_small))


def test_score_is_in_the_units_of_x(X_small):
    # log p(c * x) = log p(x) - d log c: the ELBO must carry the standardisation's
    # Jacobian, as PCA's log-likelihood does, or likelihoods across models and
    # scalings would not compare.
    c = 10.0
    d = X_small.shape[1]
    vae = fitted(X_small)
    vae_scaled = fitted(c * X_small)
    np.testing.assert_allclose(
        vae_scaled.score_samples(c * X_small),
        vae.score_samples(X_small) - d * np.log(c),
        rtol=1e-4,
    )
    pca_gap = PCA(2).fit(c * X_small).score(c * X_small) - PCA(2).fit(X_small).score(
        X_small
    )
    assert pca_gap == pytest.approx(-d * np.log(c))


def test_trained_score_beats_an_untrained_model(X_small):
    untrained = fitted(X_small, max_iter=1)
    trained = fitted(X_small, max_iter=100, n_iter_no_change=1000)
    assert trained.score(X_small) > untrained.score(X_small) + 0.5


def test_constant_feature_is_handled(X_small):
    X = np.column_stack([X_small, np.full(len(X_small), 7.0)])
    vae = fitted(X)
    assert vae.scale_[-1] == 1.0
    X_hat = vae.inverse_transform(vae.transform(X))
    np.testing.assert_allclose(X_hat[:, -1], 7.0, atol=0.5)
    assert np.isfinite(vae.score_samples(X)).all()


def test_linear_model_without_hidden_layers(X_small):
    vae = fitted(X_small, hidden_layer_sizes=())
    linears = [m for m in vae.module_.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 2
    assert np.isfinite(vae.transform(X_small)).all()


@pytest.mark.parametrize("hidden_layer_sizes", [16, (16,), [32, 16, 8]])
def test_hidden_layer_sizes_forms(X_small, hidden_layer_sizes):
    vae = fitted(X_small, hidden_layer_sizes=hidden_layer_sizes, max_iter=2)
    widths = [
        m.out_features
        for m in vae.module_.encoder.modules()
        if hasattr(m, "out_features")
    ]
    expected = list(np.atleast_1d(hidden_layer_sizes)) + [2 * vae.n_components]
    assert widths == expected
    assert vae.hidden_layer_sizes is hidden_layer_sizes  # stored unchanged


@pytest.mark.parametrize(
    "activation", ["relu", "elu", "gelu", "silu", "tanh", "leaky_relu"]
)
def test_activations(X_small, activation):
    vae = fitted(X_small, activation=activation, max_iter=2)
    assert np.isfinite(vae.transform(X_small)).all()


def test_beta_trades_kl_for_reconstruction(X_small):
    def kl_of(vae):
        x = torch.tensor((X_small - vae.mean_) / vae.scale_, dtype=torch.float32)
        mu, log_var = vae.module_.encode(x.to(vae._model.device))
        return (0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)).mean().item()

    loose = fitted(X_small, beta=0.1, max_iter=80)
    tight = fitted(X_small, beta=10.0, max_iter=80)
    assert kl_of(tight) < kl_of(loose)


# ------------------------------------------------------------ reproducibility


def test_same_random_state_gives_bit_identical_results(X_small):
    a = fitted(X_small, random_state=42)
    b = fitted(X_small, random_state=42)
    np.testing.assert_array_equal(a.transform(X_small), b.transform(X_small))
    assert a.loss_curve_ == b.loss_curve_
    c = fitted(X_small, random_state=43)
    assert not np.array_equal(a.transform(X_small), c.transform(X_small))


def test_random_state_instance_and_none(X_small):
    a = fitted(X_small, random_state=np.random.RandomState(0))
    b = fitted(X_small, random_state=np.random.RandomState(0))
    np.testing.assert_array_equal(a.transform(X_small), b.transform(X_small))
    c = fitted(X_small, random_state=None)
    d = fitted(X_small, random_state=None)
    assert not np.array_equal(c.transform(X_small), d.transform(X_small))


@pytest.mark.parametrize("random_state", [0, None])
def test_global_random_state_untouched(X_small, random_state):
    torch.manual_seed(123)
    np.random.seed(123)
    torch_state = torch.get_rng_state()
    numpy_state = np.random.get_state()
    gpu = torch.cuda.is_available()  # (then the model trains there, by default)
    cuda_states = torch.cuda.get_rng_state_all() if gpu else []
    vae = fitted(X_small, random_state=random_state, early_stopping=True)
    vae.transform(X_small)
    vae.sample(5, random_state=random_state)
    vae.score(X_small)
    vae.partial_fit(X_small)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])
    after = torch.cuda.get_rng_state_all() if gpu else []
    assert all(map(torch.equal, after, cuda_states)) and len(after) == len(cuda_states)


# ----------------------------------------------------------- persistence & clone


@pytest.mark.parametrize("dumps_loads", ["pickle", "joblib"])
def test_pickle_round_trip(X_small, tmp_path, dumps_loads):
    vae = fitted(X_small)
    if dumps_loads == "pickle":
        restored = pickle.loads(pickle.dumps(vae))
    else:
        path = tmp_path / "vae.joblib"
        joblib.dump(vae, path)
        restored = joblib.load(path)
    np.testing.assert_array_equal(vae.transform(X_small), restored.transform(X_small))
    np.testing.assert_array_equal(
        vae.sample(10, random_state=5), restored.sample(10, random_state=5)
    )
    np.testing.assert_array_equal(
        vae.score_samples(X_small), restored.score_samples(X_small)
    )
    assert restored.loss_curve_ == vae.loss_curve_
    # The optimiser still drives the restored module's own parameters.
    assert {id(p) for g in restored.optimizer_.param_groups for p in g["params"]} == {
        id(p) for p in restored.module_.parameters()
    }
    before = restored.transform(X_small)
    restored.partial_fit(X_small)
    assert not np.allclose(restored.transform(X_small), before)


def test_a_loaded_model_runs_where_its_device_parameter_says(X_small):
    vae = fitted(X_small)
    restored = pickle.loads(pickle.dumps(vae))
    # As fit placed it: on the GPU with "auto" where there is one.
    assert restored._model.device == vae._model.device
    assert all(
        state.device == restored._model.device
        for values in restored.optimizer_.state.values()
        for state in values.values()
        if torch.is_tensor(state) and state.dim() > 0
    )
    vae.set_params(device="cuda")  # as if saved on a GPU machine
    if torch.cuda.is_available():
        restored = pickle.loads(pickle.dumps(vae))
        assert restored._model.device.type == "cuda"
    else:
        with pytest.warns(UserWarning, match="no CUDA device is available here"):
            restored = pickle.loads(pickle.dumps(vae))
        assert restored._model.device.type == "cpu"
    np.testing.assert_allclose(
        restored.transform(X_small), vae.transform(X_small), rtol=1e-5, atol=1e-6
    )


def test_clone_is_unfitted_with_same_params(X_small):
    vae = fitted(X_small, n_components=3)
    twin = clone(vae)
    assert twin.get_params() == vae.get_params()
    with pytest.raises(NotFittedError):
        twin.transform(X_small)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "X, message",
    [
        (np.array([[1.0, np.inf], [2.0, 3.0]]), "Input X contains infinity"),
        (np.array([["a", "b"], ["c", "d"]], dtype=object), "could not convert"),
        (np.array([1.0, 2.0, 3.0]), "Expected 2D array, got 1D array"),
        (np.empty((0, 3)), "0 sample"),
        (np.empty((3, 0)), "0 feature"),
    ],
)
def test_fit_rejects_bad_input(X, message):
    vae = VAETransformer(**FAST)
    with pytest.raises(ValueError, match=message):
        vae.fit(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(vae)


def test_wrong_number_of_features_at_transform(X_small):
    vae = fitted(X_small)
    with pytest.raises(
        ValueError, match="X has 4 features, but VAETransformer is expecting 5"
    ):
        vae.transform(X_small[:, :4])
    with pytest.raises(ValueError, match="X has 4 features"):
        vae.score_samples(X_small[:, :4])


def test_inverse_transform_rejects_wrong_latent_width(X_small):
    vae = fitted(X_small, n_components=2)
    with pytest.raises(ValueError, match=re.escape("n_components=2")):
        vae.inverse_transform(X_small)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        vae.inverse_transform(np.array([[0.0, np.nan]]))


def test_bernoulli_rejects_data_outside_unit_interval(X_small, X_binary):
    with pytest.raises(
        ValueError, match=r"likelihood 'bernoulli', which models values in \[0, 1\]"
    ):
        VAETransformer(likelihood="bernoulli", **FAST).fit(X_small)
    vae = fitted(X_binary, likelihood="bernoulli")
    with pytest.raises(ValueError, match="MinMaxScaler"):
        vae.transform(X_binary * 2)


@pytest.mark.parametrize(
    "params",
    [
        {"n_components": 0},
        {"hidden_layer_sizes": -3},
        {"activation": "swish"},
        {"likelihood": "student_t"},
        {"beta": -1.0},
        {"batch_size": 0},
        {"learning_rate": "adaptive"},
        {"learning_rate_init": 0.0},
        {"max_iter": 0},
        {"tol": -1.0},
        {"n_iter_no_change": 0},
        {"device": "tpu"},
        {"random_state": "seed"},
    ],
)
def test_invalid_parameters_are_refused(X_small, params):
    name = next(iter(params))
    vae = VAETransformer(**params)
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter"):
        vae.fit(X_small)


@pytest.mark.parametrize("hidden_layer_sizes", [(16, 0), (16, -2), (8.5,), ("a",)])
def test_invalid_hidden_layer_sizes(X_small, hidden_layer_sizes):
    with pytest.raises(ValueError, match="hidden_layer_sizes must be"):
        VAETransformer(hidden_layer_sizes=hidden_layer_sizes).fit(X_small)


def test_cuda_requested_without_cuda(X_small):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the error path needs a machine without it")
    with pytest.raises(ValueError, match="device='cuda' was requested"):
        VAETransformer(device="cuda", **FAST).fit(X_small)


def test_divergence_is_reported_and_leaves_no_fitted_state(X_small):
    vae = VAETransformer(learning_rate_init=1e4, **FAST)
    with pytest.raises(ValueError, match="Training diverged.*learning_rate_init"):
        vae.fit(X_small)
    with pytest.raises(NotFittedError):
        check_is_fitted(vae)
    assert not [name for name in vars(vae) if name.endswith("_")]


def test_failed_refit_does_not_leave_the_old_model_looking_fitted(X_small):
    vae = fitted(X_small)
    vae.set_params(learning_rate_init=1e4)
    with pytest.raises(ValueError, match="Training diverged"):
        vae.fit(X_small)
    with pytest.raises(NotFittedError):
        vae.transform(X_small)
    # An invalid parameter is a failed fit too.
    vae = fitted(X_small).set_params(max_iter=-1)
    with pytest.raises(InvalidParameterError):
        vae.fit(X_small)
    with pytest.raises(NotFittedError):
        vae.transform(X_small)


def test_methods_before_fit_raise_not_fitted(X_small):
    vae = VAETransformer()
    for call in (
        lambda: vae.transform(X_small),
        lambda: vae.inverse_transform(X_small[:, :2]),
        lambda: vae.sample(2),
        lambda: vae.score_samples(X_small),
        lambda: vae.score(X_small),
    ):
        with pytest.raises(NotFittedError):
            call()


# -------------------------------------------------------------------- scaling


def test_transform_works_in_batches(X_small, monkeypatch):
    # A huge input must be encoded chunk by chunk, never as one giant tensor.
    import skvae._model as model_module

    vae = fitted(X_small)
    expected = vae.transform(X_small)
    monkeypatch.setattr(model_module, "inference_batch_rows", lambda *a, **k: 7)
    seen_rows = []
    encode = vae.module_.encode

    def spy(x, observed=None):
        seen_rows.append(x.shape[0])
        return encode(x, observed)

    monkeypatch.setattr(vae.module_, "encode", spy)
    np.testing.assert_allclose(vae.transform(X_small), expected, rtol=1e-5, atol=1e-6)
    assert max(seen_rows) == 7
    assert sum(seen_rows) == len(X_small)


def test_transform_runs_without_autograd(X_small, monkeypatch):
    vae = fitted(X_small)
    encode = vae.module_.encode
    modes = []

    def spy(x, observed=None):
        modes.append(torch.is_inference_mode_enabled())
        return encode(x, observed)

    monkeypatch.setattr(vae.module_, "encode", spy)
    vae.transform(X_small)
    assert modes and all(modes)


def test_standardisation_keeps_precision_of_large_offsets():
    # float32 cannot tell 1e8 + 1 from 1e8 + 2: standardise in float64 first.
    rng = np.random.RandomState(0)
    X = np.column_stack([1e8 + rng.uniform(-2, 2, 300), rng.randn(300)])
    vae = fitted(X, max_iter=2)
    standardised = vae.schema_.encode(X).targets
    np.testing.assert_allclose(standardised.std(0), 1.0, rtol=1e-3)
    assert len(np.unique(standardised[:, 0])) > 250


@pytest.mark.parametrize(
    "activation", ["relu", "elu", "gelu", "silu", "tanh", "leaky_relu"]
)
def test_small_inputs_take_the_numpy_path_and_agree_with_torch(X_small, activation):
    import skvae._model as model_module

    # The numpy path is the CPU's (a GPU model always runs in torch).
    vae = fitted(X_small, activation=activation, max_iter=3, device="cpu")
    few = X_small[: model_module.NUMPY_PATH_MAX_ROWS]
    Z_numpy, std_numpy = vae.transform(few, return_std=True)
    assert vae._model._numpy_encoder is not None  # the numpy path ran
    with torch.inference_mode():
        x = torch.from_numpy(vae.schema_.encode(few).targets)
        mu, log_var = vae.module_.encode(x.to(vae._model.device))
    np.testing.assert_allclose(Z_numpy, mu.cpu().numpy(), rtol=1e-5, atol=1e-6)
    std = torch.exp(0.5 * log_var).cpu().numpy()
    np.testing.assert_allclose(std_numpy, std, rtol=1e-5)


def test_numpy_path_follows_training_and_replaced_weights(X_small):
    vae = fitted(X_small, max_iter=2, device="cpu")
    row = X_small[:1]
    before = vae.transform(row)
    vae.partial_fit(X_small)  # in-place updates show through the cached views
    after = vae.transform(row)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(
        after, vae.transform(np.vstack([row] * 40))[:1], rtol=1e-5, atol=1e-6
    )
    first = vae.module_.encoder.net[0]
    first.weight = torch.nn.Parameter(torch.zeros_like(first.weight))  # a new tensor
    np.testing.assert_allclose(
        vae.transform(row),
        vae.transform(np.vstack([row] * 40))[:1],
        rtol=1e-5,
        atol=1e-6,
    )
    assert pickle.loads(pickle.dumps(vae))._model._numpy_encoder is None
