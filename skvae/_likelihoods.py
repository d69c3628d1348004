"""Observation models p(x|z): one small module per distribution.

Each likelihood turns the decoder's raw output (``params``) into a distribution
over a data row. It knows how many decoder outputs it needs per feature, how
to score observed data (summed over features, optionally masked), its mean
(what ``inverse_transform`` returns) and how to draw from it (``sample``).
Torch only: nothing here knows about scikit-learn or numpy.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

_LOG_2PI = math.log(2.0 * math.pi)


def _masked_row_sum(values, mask):
    """Sum per-entry log-likelihoods over features, keeping observed entries."""
    if mask is not None:
        values = values * mask
    return values.sum(dim=1)


class GaussianLikelihood(nn.Module):
    """Diagonal Gaussian p(x|z) with a learned variance per feature.

    The decoder predicts the mean; the variance is a free parameter per feature,
    ``softplus(raw) + min_variance``. The floor keeps the log-density bounded for
    near-constant features, where a freely learned variance would shrink to zero
    and the likelihood diverge.

    Parameters
    ----------
    n_features : int
        Dimension of the data.
    min_variance : float, default=1e-3
        Lower bound of each feature's variance, in the units the model sees.
    """

    def __init__(self, n_features, min_variance=1e-3, init_variance=1.0):
        super().__init__()
        self.n_features = n_features
        self.min_variance = min_variance
        # Inverse softplus, so that the variance starts at init_variance.
        raw = math.log(math.expm1(init_variance - min_variance))
        self.raw_variance = nn.Parameter(torch.full((n_features,), raw))

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_features

    def variance(self):
        return F.softplus(self.raw_variance) + self.min_variance

    def log_prob(self, x, params, mask=None):
        """Log-density of each row of ``x``, summed over (observed) features."""
        variance = self.variance()
        per_entry = -0.5 * (_LOG_2PI + variance.log() + (x - params) ** 2 / variance)
        return _masked_row_sum(per_entry, mask)

    def mean(self, params):
        return params

    def sample(self, params, generator=None):
        noise = torch.randn(
            params.shape, generator=generator, device=params.device, dtype=params.dtype
        )
        return params + noise * self.variance().sqrt()


class BernoulliLikelihood(nn.Module):
    """Independent Bernoulli p(x|z) per feature; the decoder predicts logits.

    Data must lie in [0, 1]; fractional values are scored with the same
    cross-entropy, as is common for grey-level images.

    Parameters
    ----------
    n_features : int
        Dimension of the data.
    """

    def __init__(self, n_features):
        super().__init__()
        self.n_features = n_features

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_features

    def log_prob(self, x, params, mask=None):
        """Log-probability of each row of ``x``, summed over (observed) features."""
        per_entry = -F.binary_cross_entropy_with_logits(params, x, reduction="none")
        return _masked_row_sum(per_entry, mask)

    def mean(self, params):
        return torch.sigmoid(params)

    def sample(self, params, generator=None):
        return torch.bernoulli(torch.sigmoid(params), generator=generator)


LIKELIHOODS = {"gaussian": GaussianLikelihood, "bernoulli": BernoulliLikelihood}


def make_likelihood(name, n_features):
    """Build the likelihood registered under ``name`` for ``n_features`` columns."""
    return LIKELIHOODS[name](n_features)
