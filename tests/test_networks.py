"""The torch modules: shapes, reparameterisation, seeded initialisation."""

import torch

from skvae._likelihoods import GaussianLikelihood
from skvae._networks import VAE


def make_vae(seed=0, hidden=(16, 8)):
    return VAE(
        n_features=6,
        n_components=3,
        hidden_layer_sizes=list(hidden),
        activation="elu",
        likelihood=GaussianLikelihood(6),
        generator=torch.Generator().manual_seed(seed),
    )


def test_encoder_gives_mean_and_log_variance_of_latent_width():
    vae = make_vae()
    mu, log_var = vae.encode(torch.randn(5, 6))
    assert mu.shape == log_var.shape == (5, 3)


def test_decoder_mirrors_the_encoder():
    vae = make_vae(hidden=(16, 8))
    enc = [m.out_features for m in vae.encoder.modules() if hasattr(m, "out_features")]
    dec = [m.out_features for m in vae.decoder.modules() if hasattr(m, "out_features")]
    assert enc == [16, 8, 6]
    assert dec == [8, 16, 6]
    assert vae.decode(torch.randn(5, 3)).shape == (5, 6)


def test_reparameterize_is_mu_plus_sigma_noise():
    mu = torch.tensor([[1.0, -2.0]])
    log_var = torch.log(torch.tensor([[4.0, 0.25]]))
    noise = torch.tensor([[1.0, 2.0]])
    z = VAE.reparameterize(mu, log_var, noise)
    torch.testing.assert_close(z, torch.tensor([[3.0, -1.0]]))


def test_gradients_reach_encoder_decoder_and_variance():
    vae = make_vae()
    mu, log_var, params = vae(torch.randn(8, 6), torch.randn(8, 3))
    loss = -vae.likelihood.log_prob(torch.randn(8, 6), params).mean() + mu.pow(2).mean()
    loss.backward()
    for name, parameter in vae.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_seeded_initialisation_is_reproducible_and_leaves_global_rng():
    state = torch.get_rng_state()
    a, b, c = make_vae(seed=1), make_vae(seed=1), make_vae(seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert not all(
        torch.equal(pa, pc)
        for pa, pc in zip(a.parameters(), c.parameters(), strict=True)
    )
