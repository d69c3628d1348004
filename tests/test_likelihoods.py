"""Each likelihood against torch.distributions, its mask, mean and sampling."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from skvae._likelihoods import (
    BernoulliLikelihood,
    CategoricalLikelihood,
    GaussianLikelihood,
    PoissonLikelihood,
    make_likelihood,
    make_table_likelihood,
)
from skvae._schema import ModelLayout


def test_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    lik = GaussianLikelihood(4)
    with torch.no_grad():
        lik.raw_variance.copy_(torch.tensor([-1.0, 0.0, 0.5, 2.0]))
    x, mean = torch.randn(6, 4), torch.randn(6, 4)
    expected = Normal(mean, lik.variance().sqrt()).log_prob(x).sum(1)
    torch.testing.assert_close(lik.log_prob(x, mean), expected)


def test_gaussian_starts_at_unit_variance():
    torch.testing.assert_close(GaussianLikelihood(3).variance(), torch.ones(3))


def test_gaussian_variance_has_a_floor():
    # A freely learned variance of a (near-)constant feature would fall to zero and
    # send the log-density to infinity; the floor keeps it finite.
    lik = GaussianLikelihood(2, min_variance=1e-3)
    with torch.no_grad():
        lik.raw_variance.fill_(-1e4)
    assert (lik.variance() >= 1e-3).all()
    x = torch.zeros(1, 2)
    assert torch.isfinite(lik.log_prob(x, x)).all()
    assert lik.log_prob(x, x).item() == pytest.approx(-(math.log(2 * math.pi * 1e-3)))


def test_bernoulli_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    x = (torch.rand(5, 3) > 0.5).float()
    expected = Bernoulli(logits=logits).log_prob(x).sum(1)
    torch.testing.assert_close(BernoulliLikelihood(3).log_prob(x, logits), expected)


@pytest.mark.parametrize("name", ["gaussian", "bernoulli"])
def test_mask_drops_missing_entries(name):
    torch.manual_seed(0)
    lik = make_likelihood(name, 3)
    x = torch.rand(4, 3)
    params = torch.randn(4, 3)
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 0], [0, 1, 0]]).float()
    full = lik.log_prob(x, params)
    masked = lik.log_prob(x, params, mask)
    torch.testing.assert_close(masked[0], full[0])
    assert masked[2].item() == 0.0
    x_changed = x.clone()
    x_changed[1, 1] = 100.0  # a missing entry's value must not matter
    torch.testing.assert_close(lik.log_prob(x_changed, params, mask), masked)


def test_means():
    params = torch.tensor([[0.0, 2.0]])
    torch.testing.assert_close(GaussianLikelihood(2).mean(params), params)
    torch.testing.assert_close(
        BernoulliLikelihood(2).mean(params), torch.sigmoid(params)
    )


def test_gaussian_sample_moments_and_generator():
    lik = GaussianLikelihood(2)
    with torch.no_grad():
        lik.raw_variance.copy_(torch.tensor([-3.0, 1.0]))
    params = torch.tensor([[5.0, -1.0]]).expand(20000, 2)
    draws = lik.sample(params, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws.mean(0), params[0], atol=0.05, rtol=0)
    torch.testing.assert_close(draws.var(0), lik.variance().detach(), rtol=0.05, atol=0)
    again = lik.sample(params, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(draws, again)


def test_bernoulli_sample_is_binary_with_the_right_rate():
    params = torch.full((20000, 1), math.log(0.3 / 0.7))
    draws = BernoulliLikelihood(1).sample(params, torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) <= {0.0, 1.0}
    assert draws.mean().item() == pytest.approx(0.3, abs=0.02)


def test_poisson_log_prob_matches_torch_distributions():
    lik = PoissonLikelihood(3, log_rate_offset=torch.tensor([0.0, 1.0, 2.0]))
    params = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    x = torch.poisson(torch.full((5, 3), 3.0), torch.Generator().manual_seed(1))
    rate = (params + torch.tensor([0.0, 1.0, 2.0])).exp()
    expected = torch.distributions.Poisson(rate).log_prob(x).sum(dim=1)
    torch.testing.assert_close(lik.log_prob(x, params), expected)
    torch.testing.assert_close(lik.mean(params), rate)


def test_categorical_log_prob_matches_torch_distributions():
    lik = CategoricalLikelihood(4)
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    levels = torch.tensor([0, 3, 2, 1, 1, 0])
    expected = torch.distributions.Categorical(logits=logits).log_prob(levels)
    # The data is each row's level index, as a float column.
    codes = levels.float().unsqueeze(1)
    torch.testing.assert_close(lik.log_prob(codes, logits), expected)
    draws = lik.sample(logits, torch.Generator().manual_seed(0))
    assert draws.shape == (6, 1)
    assert set(draws[:, 0].tolist()) <= {0.0, 1.0, 2.0, 3.0}
    mean = lik.mean(logits)
    torch.testing.assert_close(mean, torch.softmax(logits, dim=1))
    assert torch.equal(lik.to_values(mean)[:, 0], logits.argmax(dim=1).float())


def test_wide_categorical_is_an_exact_softmax_through_a_factorised_layer():
    generator = torch.Generator().manual_seed(0)
    lik = CategoricalLikelihood(5000, embedding_dim=16, generator=generator)
    assert lik.n_params == 16  # the decoder predicts a 16-vector, not 5,000 logits
    params = torch.randn(8, 16, generator=generator)
    codes = torch.randint(5000, (8,), generator=generator)
    logits = params @ lik.project.weight.T + lik.project.bias
    expected = torch.distributions.Categorical(logits=logits).log_prob(codes)
    torch.testing.assert_close(
        lik.log_prob(codes.float().unsqueeze(1), params), expected
    )
    # Every level gets probability: the softmax runs over all 5,000 of them.
    torch.testing.assert_close(lik.mean(params).sum(dim=1), torch.ones(8))
    draws = lik.sample(params, torch.Generator().manual_seed(1))
    assert ((draws >= 0) & (draws < 5000)).all()


def test_table_likelihood_sums_blocks_and_skips_missing_entries():
    layout = ModelLayout(
        n_gaussian=2,
        poisson_log_mean=(0.0,),
        poisson_log_scale=(1.0,),
        poisson_log_rate=(0.5,),
        levels=(3,),
    )
    table = make_table_likelihood(layout)
    gaussian, poisson, categorical = table.blocks
    assert table.n_params == 6
    generator = torch.Generator().manual_seed(0)
    params = torch.randn(4, 6, generator=generator)
    x = torch.cat(
        [
            torch.randn(4, 2, generator=generator),
            torch.tensor([[1.0], [0.0], [4.0], [2.0]]),
            torch.tensor([[2.0], [0.0], [1.0], [1.0]]),  # the categorical's levels
        ],
        dim=1,
    )
    parts = [
        gaussian.log_prob(x[:, :2], params[:, :2]),
        poisson.log_prob(x[:, 2:3], params[:, 2:3]),
        categorical.log_prob(x[:, 3:], params[:, 3:]),
    ]
    torch.testing.assert_close(table.log_prob(x, params), sum(parts))
    # Gaussian column 1 and the categorical column missing in row 0: their terms
    # drop out, and the values behind them do not matter.
    mask = torch.ones(4, 4)
    mask[0, 1] = mask[0, 3] = 0
    masked = table.log_prob(x, params, mask)
    changed = x.clone()
    changed[0, 1] = 100.0
    torch.testing.assert_close(table.log_prob(changed, params, mask), masked)
    std = gaussian.variance().detach().sqrt()
    first_entry = Normal(params[0, 0], std[0]).log_prob(x[0, 0])
    torch.testing.assert_close(masked[0], first_entry + parts[1][0])
    torch.testing.assert_close(masked[1:], sum(parts)[1:])
