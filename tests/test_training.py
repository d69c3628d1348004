"""The ELBO and the training loop, independent of scikit-learn."""

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from skvae._likelihoods import GaussianLikelihood
from skvae._networks import VAE
from skvae._training import (
    NonFiniteLossError,
    TrainingConfig,
    elbo_terms,
    gaussian_kl,
    learning_rate_at,
    make_optimizer,
    train,
    train_step,
)


def make_vae(n_features=4, seed=0):
    return VAE(
        n_features,
        2,
        [16],
        "elu",
        GaussianLikelihood(n_features),
        torch.Generator().manual_seed(seed),
    )


def config(**overrides):
    settings = dict(batch_size=16, max_epochs=30, tol=0.0, n_iter_no_change=1000)
    return TrainingConfig(**{**settings, **overrides})


def run(vae, X, cfg, seed=0, learning_rate=1e-2, **kwargs):
    optimizer = make_optimizer(vae, learning_rate)
    return train(vae, optimizer, X, cfg, torch.Generator().manual_seed(seed), **kwargs)


def test_closed_form_kl_matches_torch_distributions():
    torch.manual_seed(0)
    mu, log_var = torch.randn(5, 3), torch.randn(5, 3)
    q = Normal(mu, torch.exp(0.5 * log_var))
    p = Normal(torch.zeros(3), torch.ones(3))
    torch.testing.assert_close(gaussian_kl(mu, log_var), kl_divergence(q, p).sum(1))


def test_kl_is_zero_at_the_prior():
    assert gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3)).abs().max() == 0


def test_elbo_terms_average_over_draws():
    vae = make_vae()
    x = torch.randn(3, 4)
    noise = torch.randn(5, 1, 2)
    log_lik, kl = elbo_terms(vae, x, noise)
    mu, log_var = vae.encode(x)
    per_draw = torch.stack(
        [
            vae.likelihood.log_prob(x, vae.decode(vae.reparameterize(mu, log_var, e)))
            for e in noise
        ]
    )
    torch.testing.assert_close(log_lik, per_draw.mean(0))
    torch.testing.assert_close(kl, gaussian_kl(mu, log_var))


def test_train_step_weights_kl_by_beta():
    # With beta = 0 only the reconstruction term pulls: the encoder's log-variance
    # head gets no gradient towards the prior. With a large beta it does.
    x, noise = torch.randn(8, 4), torch.randn(1, 8, 2)
    kl_after = {}
    for beta in (0.0, 100.0):
        vae = make_vae()
        optimizer = make_optimizer(vae, 1e-2)
        for _ in range(20):
            reconstruction, kl = train_step(vae, optimizer, x, noise, beta)
        kl_after[beta] = kl.item()
    assert kl_after[100.0] < kl_after[0.0]


def test_train_lowers_the_loss_and_records_history():
    X = torch.randn(200, 4) @ torch.randn(4, 4)
    vae = make_vae()
    history = run(vae, X, config())
    assert history.n_epochs == 30 and history.stop_reason == "max_epochs"
    losses = [record.loss for record in history.records]
    assert losses[-1] < losses[0]
    assert not vae.training  # left in evaluation mode


def test_train_stops_without_improvement():
    history = run(make_vae(), torch.randn(64, 4), config(tol=1e9, n_iter_no_change=2))
    assert history.n_epochs == 3 and history.stop_reason == "converged"


def test_train_is_reproducible_from_the_generator():
    X = torch.randn(100, 4)
    runs = []
    for _ in range(2):
        vae = make_vae(seed=3)
        history = run(vae, X, config(max_epochs=5), seed=7)
        losses = [record.loss for record in history.records]
        runs.append((losses, [p.detach().clone() for p in vae.parameters()]))
    assert runs[0][0] == runs[1][0]
    for a, b in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(a, b)


def test_train_raises_on_non_finite_loss():
    with pytest.raises(NonFiniteLossError, match="Training diverged") as info:
        run(make_vae(), torch.randn(64, 4), config(), learning_rate=1e6)
    assert not math.isfinite(info.value.loss)
    assert info.value.epoch >= 1


def test_log_receives_one_record_per_epoch():
    records = []
    run(
        make_vae(),
        torch.randn(32, 4),
        config(max_epochs=4),
        log=lambda record, history: records.append(record),
    )
    assert [record.epoch for record in records] == [1, 2, 3, 4]


def test_validation_score_is_the_same_in_chunks():
    from skvae._training import fixed_noise, validation_score

    vae, X = make_vae(), torch.randn(50, 4)
    noise = fixed_noise((1, 50, 2), "cpu")
    whole = validation_score(vae, X, noise)
    assert validation_score(vae, X, noise, chunk_rows=7) == pytest.approx(
        whole, rel=1e-5
    )


def test_step_schedule_counts_epochs_of_the_call():
    cfg = config(max_epochs=150, learning_rate=2e-3, learning_rate_schedule="step")
    rates = [learning_rate_at(epoch, cfg) for epoch in range(1, 151)]
    assert rates == [2e-3] * 105 + [5e-4] * 45
    one_epoch = config(max_epochs=1, learning_rate=2e-3, learning_rate_schedule="step")
    assert learning_rate_at(1, one_epoch) == 2e-3  # never steps down within one epoch
    constant = config(max_epochs=150, learning_rate=2e-3)
    assert {learning_rate_at(epoch, constant) for epoch in range(1, 151)} == {2e-3}


def test_train_starts_from_the_optimizers_rate_unless_told():
    X = torch.randn(32, 4)
    history = run(make_vae(), X, config(max_epochs=2), learning_rate=0.05)
    assert [record.learning_rate for record in history.records] == [0.05, 0.05]
    stepped = config(max_epochs=15, learning_rate=0.04, learning_rate_schedule="step")
    rates = [learning_rate_at(epoch, stepped) for epoch in range(1, 16)]
    assert rates == [0.04] * 11 + [0.01] * 4  # 10.5 epochs round up, not to even


def test_the_neighbour_term_compares_the_first_rows_of_a_large_batch():
    # Its cost grows with the square of the rows: of a batch of 400 it reads
    # the first NEIGHBOR_ROWS (256), the rest count in the ELBO only.
    from skvae._neighbors import input_affinities, tsne_divergence
    from skvae._training import NEIGHBOR_ROWS, Neighbors, minibatch_loss

    assert NEIGHBOR_ROWS == 256
    vae = make_vae()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(400, 4, generator=generator)
    noise = torch.randn(1, 400, 2, generator=generator)
    neighbors = Neighbors(weight=3.0, perplexity=5.0)
    with_term, _ = minibatch_loss(vae, x, noise, 1.0, neighbors=neighbors)
    without, _ = minibatch_loss(vae, x, noise, 1.0)
    mu, _ = vae.encode(x)
    first = tsne_divergence(input_affinities(x[:256], 5.0), mu[:256])
    whole = tsne_divergence(input_affinities(x, 5.0), mu)
    torch.testing.assert_close(with_term - without, 3.0 * first)
    assert abs(float(first - whole)) > 1e-3  # the two differ: the cap is seen
