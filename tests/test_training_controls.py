"""Early stopping, KL warm-up, warm_start, partial_fit, interrupts, progress, IWAE."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from threadpoolctl import threadpool_limits

import skvae._training as training
from skvae import VAETransformer
from skvae._data import encode_rows
from skvae._likelihoods import GaussianLikelihood
from skvae._model import TableModel, checked_precision
from skvae._networks import VAE

FAST = dict(
    hidden_layer_sizes=(32, 16),
    max_iter=20,
    batch_size=32,
    warmup_epochs=0,
    random_state=0,
)


def make(**params):
    return VAETransformer(**{**FAST, **params})


def quiet_fit(estimator, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


# ------------------------------------------------------------- early stopping


def test_early_stopping_records_validation_scores(X_small):
    vae = quiet_fit(
        make(early_stopping=True, max_iter=30, n_iter_no_change=100), X_small
    )
    assert len(vae.validation_scores_) == vae.n_iter_ == len(vae.loss_curve_) == 30
    assert vae.best_validation_score_ == pytest.approx(max(vae.validation_scores_))
    # Validation scores are ELBOs in nats of X, like score(): same ballpark.
    assert abs(vae.best_validation_score_ - vae.score(X_small)) < 2.0
    assert vae.best_loss_ is None
    without = quiet_fit(make(), X_small)
    assert without.validation_scores_ is None and without.best_validation_score_ is None
    assert without.best_loss_ == pytest.approx(min(without.loss_curve_))


def test_early_stopping_stops_on_a_plateau(X_small):
    vae = make(early_stopping=True, max_iter=500, tol=1e6, n_iter_no_change=4).fit(
        X_small
    )
    assert vae.n_iter_ == 5  # the first epoch improves on -inf, then 4 without


def test_early_stopping_standardises_with_the_training_part_only(X_small):
    vae = quiet_fit(make(early_stopping=True, validation_fraction=0.2), X_small)
    # The split is drawn from random_state: reproduce it.
    order = check_random_state(0).permutation(len(X_small))
    train_rows = order[int(np.ceil(0.2 * len(X_small))) :]
    np.testing.assert_allclose(vae.mean_, X_small[train_rows].mean(0))
    assert not np.allclose(vae.mean_, X_small.mean(0))


@pytest.mark.parametrize("tol", [0.0, 0.5])
def test_early_stopping_restores_the_best_weights(tol):
    # Few, independent training rows and many epochs: the model overfits, so the
    # validation score peaks before the last epoch.
    generator = torch.Generator().manual_seed(0)
    X_train = torch.randn(16, 4, generator=generator)
    X_val = torch.randn(50, 4, generator=generator)
    model = VAE(
        4, 2, [16], "elu", GaussianLikelihood(4), torch.Generator().manual_seed(0)
    )
    config = training.TrainingConfig(
        batch_size=4,
        max_epochs=60,
        tol=tol,  # sets patience only: the best weights are kept on any gain
        n_iter_no_change=1000,
        early_stopping=True,
    )
    records = []
    history = training.train(
        model,
        training.make_optimizer(model, 1e-2),
        X_train,
        config,
        torch.Generator().manual_seed(0),
        X_val=X_val,
        log=lambda record, _: records.append(record.validation_score),
    )
    noise = training.fixed_noise((1, 50, 2), "cpu")
    restored = training.validation_score(model, X_val, noise)
    assert restored == pytest.approx(max(records), abs=1e-5)
    assert history.best_validation_score == pytest.approx(max(records))
    assert records[-1] < max(records)  # otherwise this test would prove nothing


def test_early_stopping_needs_rows_for_both_parts():
    with pytest.raises(ValueError, match="at least one training and one validation"):
        make(early_stopping=True).fit(np.ones((1, 3)))


# ----------------------------------------------------------- convergence warning


def test_convergence_warning_when_max_iter_is_reached(X_small):
    with pytest.warns(ConvergenceWarning, match=r"maximum iterations \(3\) reached"):
        make(max_iter=3, n_iter_no_change=100).fit(X_small)


def test_no_convergence_warning_when_training_stops_by_itself(X_small):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        vae = make(max_iter=100, tol=1e6, n_iter_no_change=2).fit(X_small)
    assert vae.n_iter_ == 3


# ------------------------------------------------------------------ KL warm-up


def test_kl_weight_ramps_from_zero_to_beta(X_small):
    vae = quiet_fit(make(warmup_epochs=5, beta=2.0, max_iter=8), X_small)
    weights = [entry["kl_weight"] for entry in vae.history_]
    assert weights[0] < 2.0 * 0.25
    assert all(a <= b for a, b in zip(weights, weights[1:], strict=False))
    assert weights[4:] == [2.0] * 4
    # loss_curve_ always weighs the KL term by beta itself, so epochs compare.
    for entry in vae.history_:
        assert entry["loss"] == pytest.approx(
            entry["reconstruction"] + 2.0 * entry["kl"]
        )


def test_kl_weight_schedule():
    assert training.kl_weight(0.0, 1.0, 10) == 0.0
    assert training.kl_weight(5.0, 1.0, 10) == 0.5
    assert training.kl_weight(10.0, 1.0, 10) == 1.0
    assert training.kl_weight(50.0, 1.0, 10) == 1.0
    assert training.kl_weight(0, 3.0, 0) == 3.0


def test_patience_starts_after_warm_up(X_small):
    vae = make(warmup_epochs=5, tol=1e6, n_iter_no_change=2, max_iter=100).fit(X_small)
    assert vae.n_iter_ == 7


def test_warning_when_warm_up_outlasts_training(X_small):
    with pytest.warns(UserWarning, match="warmup_epochs=30 >= max_iter=10"):
        quiet_fit(make(warmup_epochs=30, max_iter=10), X_small)
    # Against an automatic budget the warning names the planned epochs.
    planned = r"warmup_epochs=200 >= max_iter=150 \(planned for these rows\)"
    with pytest.warns(UserWarning, match=planned):
        quiet_fit(make(warmup_epochs=200, max_iter="auto"), X_small[:40])


# ------------------------------------------------------ warm_start, partial_fit


def test_warm_start_continues_training(X_small):
    vae = quiet_fit(make(max_iter=5, warm_start=True), X_small)
    first_curve = list(vae.loss_curve_)
    Z_first = vae.transform(X_small)
    quiet_fit(vae, X_small)
    assert vae.n_iter_ == 10
    assert vae.loss_curve_[:5] == first_curve
    assert not np.allclose(vae.transform(X_small), Z_first)


def test_without_warm_start_refit_starts_over(X_small):
    vae = quiet_fit(make(max_iter=5), X_small)
    Z_first = vae.transform(X_small)
    quiet_fit(vae, X_small)
    assert vae.n_iter_ == 5
    np.testing.assert_array_equal(vae.transform(X_small), Z_first)


def test_warm_start_failure_before_training_keeps_the_model(X_small):
    vae = quiet_fit(make(max_iter=3, warm_start=True), X_small)
    with pytest.raises(ValueError, match="X has 4 features"):
        vae.fit(X_small[:, :4])
    assert vae.n_iter_ == 3
    assert vae.transform(X_small).shape == (len(X_small), 2)


def test_warm_start_refuses_a_changed_architecture(X_small):
    vae = quiet_fit(make(max_iter=3, warm_start=True), X_small)
    vae.set_params(n_components=3, activation="tanh")
    with pytest.raises(
        ValueError, match="n_components: 2 -> 3, activation: 'relu' -> 'tanh'"
    ):
        vae.fit(X_small)
    vae.set_params(warm_start=False)
    assert quiet_fit(vae, X_small).transform(X_small).shape == (len(X_small), 3)


def test_warm_start_uses_a_changed_learning_rate(X_small):
    vae = quiet_fit(make(max_iter=2, warm_start=True), X_small)
    vae.set_params(learning_rate_init=1e-5)
    before = [p.detach().clone() for p in vae.module_.parameters()]
    quiet_fit(vae, X_small)
    # The second call's two epochs: the new rate, then the step schedule's quarter.
    assert [entry["learning_rate"] for entry in vae.history_[2:]] == [1e-5, 2.5e-6]
    assert {group["lr"] for group in vae.optimizer_.param_groups} == {2.5e-6}
    # Adam moves a weight by about lr per step: 10 steps at 1e-5 and 10 at 2.5e-6
    # move it by about 1e-4, where the original 2e-3 would have moved it by up to
    # 3e-2.
    for old, new in zip(before, vae.module_.parameters(), strict=True):
        assert (new.detach() - old).abs().max() < 1e-3


# ------------------------------------------------------- learning-rate schedule


def test_step_schedule_quarters_the_rate_for_the_last_30_percent(X_small):
    vae = quiet_fit(make(max_iter=10, learning_rate_init=4e-3), X_small)
    rates = [entry["learning_rate"] for entry in vae.history_]
    assert rates == [4e-3] * 7 + [1e-3] * 3
    assert {group["lr"] for group in vae.optimizer_.param_groups} == {1e-3}


def test_constant_schedule_keeps_the_rate(X_small):
    vae = quiet_fit(make(max_iter=10, learning_rate="constant"), X_small)
    assert {entry["learning_rate"] for entry in vae.history_} == {2e-3}


def test_schedule_changes_the_training(X_small):
    step = quiet_fit(make(max_iter=10), X_small)
    constant = quiet_fit(make(max_iter=10, learning_rate="constant"), X_small)
    # Identical until the step (same seed), different after it.
    np.testing.assert_array_equal(step.loss_curve_[:7], constant.loss_curve_[:7])
    assert step.loss_curve_[7:] != constant.loss_curve_[7:]


def test_each_warm_start_call_runs_its_own_schedule(X_small):
    vae = quiet_fit(make(max_iter=4, warm_start=True), X_small)
    quiet_fit(vae, X_small)
    rates = [entry["learning_rate"] for entry in vae.history_]
    assert rates == [2e-3, 2e-3, 2e-3, 5e-4] * 2


def test_partial_fit_trains_at_the_initial_rate_after_a_scheduled_fit(X_small):
    vae = quiet_fit(make(max_iter=10), X_small)
    vae.partial_fit(X_small)
    assert vae.history_[-1]["learning_rate"] == 2e-3
    assert {group["lr"] for group in vae.optimizer_.param_groups} == {2e-3}


def test_partial_fit_runs_one_epoch_per_call_and_keeps_optimizer_state(X_small):
    vae = make()
    for call in range(1, 4):
        vae.partial_fit(X_small)
        assert vae.n_iter_ == call
    steps_per_epoch = int(np.ceil(len(X_small) / FAST["batch_size"]))
    adam_steps = {int(state["step"]) for state in vae.optimizer_.state.values()}
    assert adam_steps == {3 * steps_per_epoch}  # Adam's moments carried over


def test_first_partial_fit_equals_one_epoch_of_fit(X_small):
    one_epoch = quiet_fit(make(max_iter=1), X_small)
    partial = make().partial_fit(X_small)
    np.testing.assert_array_equal(
        one_epoch.transform(X_small), partial.transform(X_small)
    )


def test_partial_fit_over_chunks(X_small):
    vae = make()
    for chunk in np.array_split(X_small, 5):
        vae.partial_fit(chunk)
    for _ in range(20):
        vae.partial_fit(X_small)
    assert vae.n_iter_ == 25
    assert vae.loss_curve_[-1] < vae.loss_curve_[0]


def test_warm_up_is_monotone_over_chunks_of_any_size(X_small):
    vae = make(warmup_epochs=4)
    for size in (300, 40, 150, 7, 300, 300):
        vae.partial_fit(X_small[:size])
    weights = [entry["kl_weight"] for entry in vae.history_]
    assert weights == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_partial_fit_bad_chunk_keeps_the_model(X_small):
    vae = make().partial_fit(X_small)
    with pytest.raises(ValueError, match="X has 4 features"):
        vae.partial_fit(X_small[:, :4])
    assert vae.n_iter_ == 1
    assert vae.transform(X_small).shape == (len(X_small), 2)


# ------------------------------------------------------------ interrupt, verbose


def test_keyboard_interrupt_ends_training_gracefully(X_small, monkeypatch):
    real_run_epoch = training.run_epoch
    calls = []

    def interrupted_on_third_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", interrupted_on_third_epoch)
    with pytest.warns(UserWarning, match="interrupted by the user after 2 epochs"):
        vae = make(max_iter=10).fit(X_small)
    assert vae.n_iter_ == 2
    assert np.isfinite(vae.transform(X_small)).all()


def test_progress_bar_shows_losses_and_validation(X_small, capsys):
    quiet_fit(make(max_iter=3, n_iter_no_change=100, verbose=0), X_small)
    assert capsys.readouterr().out == ""
    quiet_fit(make(max_iter=3, verbose=1, early_stopping=True), X_small)
    out = capsys.readouterr().out
    # The plan first: 300 rows less the 30 held out, batches of 32.
    assert out.startswith(
        "VAETransformer plan: 270 rows, batch 32, 3 epochs: at most 27 steps, "
        "810 samples"
    )
    last = out.split("\r")[-1]
    parts = ("epoch 3/3", "step 27/27", "rows/s", "left 0:00", "loss", "recon")
    parts += ("KL", "lr 0.0005", "val ELBO", "=" * 20)
    for part in parts:  # the last epoch is past the step: a quarter of 2e-3
        assert part in last
    assert out.endswith("\n")


# ------------------------------------------------------------------- IWAE score


def test_iwae_with_one_draw_is_a_one_draw_elbo():
    torch.manual_seed(0)
    model = VAE(
        3, 2, [8], "elu", GaussianLikelihood(3), torch.Generator().manual_seed(0)
    )
    x, noise = torch.randn(5, 3), torch.randn(1, 5, 2)
    mu, log_var = model.encode(x)
    z = model.reparameterize(mu, log_var, noise[0])
    q = torch.distributions.Normal(mu, torch.exp(0.5 * log_var))
    prior = torch.distributions.Normal(0.0, 1.0)
    expected = (
        model.likelihood.log_prob(x, model.decode(z))
        + prior.log_prob(z).sum(1)
        - q.log_prob(z).sum(1)
    )
    bound = training.importance_weighted_bound(model, x, noise)
    torch.testing.assert_close(bound, expected)


def test_more_importance_samples_tighten_the_bound(X_small):
    vae = quiet_fit(make(max_iter=40), X_small)
    device = vae._model.device
    data = encode_rows(vae.schema_, X_small, device)

    def mean_bound(n_draws, seed):
        noise = training.fixed_noise((n_draws, 1, 2), device, seed=seed)
        with torch.inference_mode():
            bound = training.importance_weighted_bound(vae.module_, data, noise)
            return bound.mean().item()

    # The bound grows with the draws in expectation, not draw by draw: score()
    # shares its draws across rows, so average over several sets of draws.
    seeds = range(20)
    one_draw = np.mean([mean_bound(1, seed) for seed in seeds])
    many_draws = np.mean([mean_bound(64, seed) for seed in seeds])
    assert many_draws > one_draw
    # score() uses n_importance_samples draws: the parameter reaches it.
    vae.set_params(n_importance_samples=1)
    one = vae.score(X_small)
    vae.set_params(n_importance_samples=64)
    assert vae.score(X_small) != one
    vae.set_params(n_importance_samples=16)
    np.testing.assert_array_equal(
        vae.score_samples(X_small), vae.score_samples(X_small)
    )


def test_transform_can_return_the_posterior_std(X_small):
    vae = quiet_fit(make(), X_small)
    Z, Z_std = vae.transform(X_small, return_std=True)
    np.testing.assert_array_equal(Z, vae.transform(X_small))
    assert Z_std.shape == Z.shape and (Z_std > 0).all()


# ---------------------------------------------------------------------- threads


def test_training_honours_threadpool_limits(X_small, monkeypatch):
    # joblib's workers (GridSearchCV(n_jobs=k)) limit threads the same way.
    seen = []
    real_run_epoch = training.run_epoch

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(training, "run_epoch", spy)
    with threadpool_limits(limits=1):
        quiet_fit(make(max_iter=2), X_small)
    assert seen == [1, 1]


def test_interrupt_before_the_first_epoch_leaves_the_estimator_unfitted(
    X_small, monkeypatch
):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "run_epoch", interrupted)
    vae = make()
    with pytest.raises(KeyboardInterrupt):
        vae.fit(X_small)
    assert not [name for name in vars(vae) if name.endswith("_")]


def test_iwae_with_many_draws_is_a_log_mean_of_weights():
    model = VAE(
        3, 2, [8], "elu", GaussianLikelihood(3), torch.Generator().manual_seed(0)
    )
    x, noise = torch.randn(4, 3), torch.randn(5, 1, 2)
    mu, log_var = model.encode(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * log_var))
    prior = torch.distributions.Normal(0.0, 1.0)
    log_weights = []
    for eps in noise:
        z = model.reparameterize(mu, log_var, eps)
        log_weights.append(
            model.likelihood.log_prob(x, model.decode(z))
            + prior.log_prob(z).sum(1)
            - q.log_prob(z).sum(1)
        )
    expected = torch.logsumexp(torch.stack(log_weights), 0) - np.log(5)
    torch.testing.assert_close(
        training.importance_weighted_bound(model, x, noise), expected
    )


def test_warm_start_with_early_stopping_never_restores_worse_weights(X_small):
    vae = quiet_fit(make(early_stopping=True, max_iter=15, warm_start=True), X_small)
    first_best, first_epochs = vae.best_validation_score_, vae.n_iter_
    quiet_fit(vae.set_params(learning_rate_init=0.05, max_iter=5), X_small)
    # The int random_state holds out the same rows, so the incoming weights score
    # first_best again and only better epochs can replace them.
    assert vae.best_validation_score_ >= first_best - 1e-6
    assert (
        vae.best_validation_score_ >= max(vae.validation_scores_[first_epochs:]) - 1e-9
    )
    assert len(vae.validation_scores_) == vae.n_iter_ > first_epochs


def test_early_stopping_keeps_no_weights_from_the_warm_up(X_small):
    vae = quiet_fit(
        make(early_stopping=True, warmup_epochs=8, max_iter=12, n_iter_no_change=100),
        X_small,
    )
    # The kept score is the best of the epochs from the warm-up's end on.
    assert vae.best_validation_score_ == pytest.approx(max(vae.validation_scores_[7:]))


# ------------------------------------------------------------- input noise


def test_input_noise_corrupts_only_what_the_encoder_reads_of_the_numbers():
    import pandas as pd

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "a": rng.normal(size=64),
            "b": rng.normal(size=64),
            "kind": pd.Categorical(rng.choice(["x", "y"], size=64)),
        }
    )
    vae = quiet_fit(make(max_iter=1), table)
    model = vae.module_
    assert model.n_gaussian_inputs == 2
    batch = encode_rows(vae.schema_, table, "cpu")
    before = batch.targets.clone()
    generator = torch.Generator().manual_seed(0)
    read = training.corrupt_inputs(batch, model.n_gaussian_inputs, 0.5, generator)
    assert torch.equal(batch.targets, before)  # a copy: the data is kept clean
    assert torch.equal(read[:, 2:], before[:, 2:])  # the label's level index
    spread = (read[:, :2] - before[:, :2]).std().item()
    assert 0.4 < spread < 0.6


def test_input_noise_reaches_the_encoder_only_while_training(X_small):
    clean = quiet_fit(make(max_iter=30), X_small)
    # Noise that drowns the rows leaves the encoder nothing to encode: the
    # codes' information (the KL term) collapses.
    drowned = quiet_fit(make(max_iter=30, input_noise=30.0), X_small)
    assert drowned.history_[-1]["kl"] < 0.2 * clean.history_[-1]["kl"]
    noisy = quiet_fit(make(max_iter=30, input_noise=0.3), X_small)
    again = quiet_fit(make(max_iter=30, input_noise=0.3), X_small)
    np.testing.assert_array_equal(noisy.transform(X_small), again.transform(X_small))
    assert not np.allclose(noisy.transform(X_small), clean.transform(X_small))
    # Inference reads the rows as they are: the same codes on every call.
    np.testing.assert_array_equal(noisy.transform(X_small), noisy.transform(X_small))


def test_input_noise_must_not_be_negative(X_small):
    with pytest.raises(ValueError, match="input_noise"):
        make(input_noise=-0.1).fit(X_small)


def test_input_noise_leaves_missing_entries_alone():
    from skvae._data import ModelData

    targets = torch.ones(4, 3)
    observed = torch.tensor([[1.0, 0.0, 1.0]]).repeat(4, 1)
    generator = torch.Generator().manual_seed(0)
    read = training.corrupt_inputs(ModelData(targets, observed), 3, 1.0, generator)
    assert torch.equal(read[:, 1], targets[:, 1])  # missing: as it was
    assert not torch.equal(read[:, [0, 2]], targets[:, [0, 2]])


def test_input_noise_without_gaussian_columns_warns_and_does_nothing():
    import pandas as pd

    rng = np.random.default_rng(0)
    table = pd.DataFrame(
        {
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], size=80)),
            "flag": rng.random(80) > 0.5,
        }
    )
    plain = quiet_fit(make(max_iter=3), table)
    with pytest.warns(UserWarning, match="input_noise=0.5 has no effect"):
        noisy = quiet_fit(make(max_iter=3, input_noise=0.5), table)
    np.testing.assert_array_equal(noisy.transform(table), plain.transform(table))


@pytest.fixture
def graph_requests(monkeypatch):
    """The step counts training asks ``wants_graphs`` about (never granted)."""
    steps = []

    def record(device, n_steps, threaded_reads=False):
        steps.append(n_steps)
        return False

    monkeypatch.setattr(training, "wants_graphs", record)
    return steps


def test_input_noise_trains_without_cuda_graphs(graph_requests):
    # The graphs read the data as it is: a corrupted copy would bypass them.
    steps = graph_requests
    X = np.random.default_rng(0).normal(size=(64, 3))
    quiet_fit(make(max_iter=2, input_noise=0.3), X)
    quiet_fit(make(max_iter=2), X)
    assert steps == [0, 4]


def test_partial_fit_records_no_patience(X_small):
    vae = make().partial_fit(X_small)
    assert vae.training_plan_["n_iter_no_change"] is None
    assert quiet_fit(make(), X_small).training_plan_["n_iter_no_change"] == 16


# ------------------------------------------------------------------ precision


def _record_linear_outputs(module):
    """The dtypes the networks' linear layers put out, as they run."""
    dtypes = []
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            layer.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    return dtypes


def test_bfloat16_multiplies_in_bfloat16_only_while_training(X_small, monkeypatch):
    # (After training, fit encodes rows for the sampling mixture: inference, in
    # float32 like every other method; left out of what is recorded here.)
    monkeypatch.setattr(TableModel, "fit_mixture", lambda self, X, rows=None: None)
    vae = quiet_fit(make(max_iter=1, warm_start=True), X_small)
    products = _record_linear_outputs(vae.module_)
    codes, params = [], []
    vae.module_.encoder.register_forward_hook(
        lambda m, i, out: codes.append(out[0].dtype)
    )
    vae.module_.decoder.register_forward_hook(
        lambda m, i, out: params.append(out.dtype)
    )
    quiet_fit(vae.set_params(precision="bfloat16", max_iter=2), X_small)
    assert products and set(products) == {torch.bfloat16}
    assert set(codes) == {torch.float32}  # the KL and z are computed in float32
    assert set(params) == {torch.float32}  # and so is the likelihood
    assert {p.dtype for p in vae.module_.parameters()} == {torch.float32}
    assert all(np.isfinite(vae.loss_curve_))
    products.clear()
    Z = vae.transform(X_small)
    vae.score_samples(X_small)
    vae.inverse_transform(Z)
    assert products and set(products) == {torch.float32}


def test_bfloat16_trains_about_as_well_as_float32(X_small):
    full = quiet_fit(make(max_iter=40), X_small)
    mixed = quiet_fit(make(max_iter=40, precision="bfloat16"), X_small)
    assert not np.array_equal(mixed.transform(X_small), full.transform(X_small))
    # Both learnt the table: far above the score of the first epoch's model.
    first = quiet_fit(make(max_iter=1), X_small).score(X_small)
    assert mixed.score(X_small) - first > 0.8 * (full.score(X_small) - first)


def test_bfloat16_learns_inside_a_callers_autocast_block(X_small):
    # A cached bfloat16 copy of the weights would outlive the steps there.
    plain = quiet_fit(make(max_iter=5, precision="bfloat16"), X_small)
    with torch.autocast("cpu", enabled=False):
        nested = quiet_fit(make(max_iter=5, precision="bfloat16"), X_small)
    np.testing.assert_allclose(nested.loss_curve_, plain.loss_curve_, rtol=1e-6)
    assert nested.loss_curve_[-1] < nested.loss_curve_[0]


def test_bfloat16_trains_without_cuda_graphs(graph_requests):
    steps = graph_requests
    X = np.random.default_rng(0).normal(size=(64, 3))
    quiet_fit(make(max_iter=2, precision="bfloat16"), X)
    assert steps == []  # never asked: the graphs record float32 steps
    quiet_fit(make(max_iter=2), X)
    assert steps == [4]


def test_bfloat16_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="no bfloat16 support"):
        checked_precision("bfloat16", torch.device("cuda"))
    assert checked_precision("bfloat16", torch.device("cpu")) == "bfloat16"


def test_precision_must_be_a_known_one(X_small):
    with pytest.raises(ValueError, match="precision"):
        make(precision="float16").fit(X_small)


# ------------------------------------------------------- the neighbour term


def test_the_neighbor_term_keeps_neighbourhoods_better():
    # On 600 digits, a 2-D code trained with the term keeps each row's input
    # neighbours as its latent ones more often than the same fit without it.
    from sklearn.datasets import load_digits
    from sklearn.manifold import trustworthiness

    X = load_digits().data[:600]
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    scores = {}
    for weight in (0.0, 64.0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vae = VAETransformer(
                n_components=2,
                hidden_layer_sizes=(64,),
                max_iter=40,
                neighbor_weight=weight,
                random_state=0,
            ).fit(X)
        scores[weight] = trustworthiness(X, vae.transform(X), n_neighbors=5)
    assert scores[64.0] > scores[0.0] + 0.01, scores


def test_the_in_batch_affinities_have_the_asked_perplexity():
    from skvae._neighbors import (
        conditional_affinities,
        input_affinities,
        tsne_divergence,
    )

    rows = torch.randn(90, 5, generator=torch.Generator().manual_seed(0))
    conditional = conditional_affinities(rows, perplexity=7.0)
    entropy = -(conditional * torch.log(conditional.clamp_min(1e-30))).sum(dim=1)
    np.testing.assert_allclose(entropy.numpy(), np.log(7.0), atol=1e-3)
    assert float(conditional.diagonal().max()) == 0.0
    p = input_affinities(rows, perplexity=7.0)
    assert torch.allclose(p, p.T) and abs(float(p.sum()) - 1.0) < 1e-5
    # A layout that keeps the neighbours diverges less than one that does not.
    kept = tsne_divergence(p, rows[:, :2] * 3)
    lost = tsne_divergence(p, torch.randn(90, 2))
    assert float(kept) < float(lost)
