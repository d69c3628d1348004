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


class PoissonLikelihood(nn.Module):
    """Independent Poisson p(x|z) per count column; the decoder predicts log-rates.

    The decoder's output is added to a fixed per-column offset (the log of the
    column's training mean), so that training starts at the right scale even for
    large counts.

    Parameters
    ----------
    n_features : int
        Number of count columns.
    log_rate_offset : torch.Tensor of shape (n_features,), default=None
        Added to the decoder's output; zeros when None.
    """

    # exp(20) ~ 5e8: far above any count we model, and far below float32 overflow.
    _MAX_LOG_RATE = 20.0

    def __init__(self, n_features, log_rate_offset=None):
        super().__init__()
        self.n_features = n_features
        if log_rate_offset is None:
            log_rate_offset = torch.zeros(n_features)
        self.register_buffer("log_rate_offset", torch.as_tensor(log_rate_offset))

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_features

    def log_rate(self, params):
        return (params + self.log_rate_offset).clamp(max=self._MAX_LOG_RATE)

    def log_prob(self, x, params, mask=None):
        """Log-probability of each row's counts, summed over (observed) columns."""
        log_rate = self.log_rate(params)
        per_entry = x * log_rate - log_rate.exp() - torch.lgamma(x + 1.0)
        return _masked_row_sum(per_entry, mask)

    def mean(self, params):
        return self.log_rate(params).exp()

    def sample(self, params, generator=None):
        return torch.poisson(self.mean(params), generator=generator)


class CategoricalLikelihood(nn.Module):
    """One categorical column; the decoder predicts a logit per level.

    The data is the column one-hot (all zeros where missing).

    Parameters
    ----------
    n_categories : int
        Number of levels.
    """

    def __init__(self, n_categories):
        super().__init__()
        self.n_categories = n_categories

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_categories

    def log_prob(self, x, params, mask=None):
        """Log-probability of each row's level (0 where the column is missing)."""
        # The one-hot picks the observed level's log-probability; a missing entry
        # is all zeros and so contributes nothing, mask or not.
        per_row = (x * F.log_softmax(params, dim=1)).sum(dim=1, keepdim=True)
        return _masked_row_sum(per_row, mask)

    def mean(self, params):
        """The probability of each level."""
        return F.softmax(params, dim=1)

    def sample(self, params, generator=None):
        """A one-hot draw per row."""
        draws = torch.multinomial(self.mean(params), 1, generator=generator)
        return F.one_hot(draws[:, 0], self.n_categories).to(params.dtype)


class TableLikelihood(nn.Module):
    """p(x|z) of a table: one likelihood block per group of columns.

    The data, the decoder's output and the observed-mask are laid out block after
    block (see ``skvae._schema``); each block reads its own contiguous slice, and
    the row's log-likelihood is the sum of the blocks'.

    Parameters
    ----------
    blocks : list of (nn.Module, int)
        Each block's likelihood and the number of table columns it covers (its
        width in the observed-mask).
    """

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(block for block, _ in blocks)
        self._widths = [block.n_params for block, _ in blocks]
        self._n_columns = [n_columns for _, n_columns in blocks]
        self.n_features = sum(self._widths)

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_features

    def _split(self, tensor, sizes):
        # One split rather than a slice per block: its backward is one
        # concatenation, where slices would each fill a zero tensor.
        return tensor.split(sizes, dim=1)

    def log_prob(self, x, params, mask=None):
        """Log-likelihood of each row, summed over blocks and observed entries."""
        if len(self.blocks) == 1:  # the common all-numeric table: no splitting
            return self.blocks[0].log_prob(x, params, mask)
        masks = (
            [None] * len(self.blocks)
            if mask is None
            else self._split(mask, self._n_columns)
        )
        parts = zip(
            self.blocks,
            self._split(x, self._widths),
            self._split(params, self._widths),
            masks,
            strict=True,
        )
        return sum(block.log_prob(*args) for block, *args in parts)

    def _per_block(self, method, params, **kwargs):
        if len(self.blocks) == 1:
            return getattr(self.blocks[0], method)(params, **kwargs)
        return torch.cat(
            [
                getattr(block, method)(block_params, **kwargs)
                for block, block_params in zip(
                    self.blocks, self._split(params, self._widths), strict=True
                )
            ],
            dim=1,
        )

    def mean(self, params):
        """Each block's mean (probabilities for categorical blocks)."""
        return self._per_block("mean", params)

    def sample(self, params, generator=None):
        """A draw of every block (one-hot for categorical blocks)."""
        return self._per_block("sample", params, generator=generator)


LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "bernoulli": BernoulliLikelihood,
    "poisson": PoissonLikelihood,
}


def make_likelihood(name, n_features):
    """Build the likelihood registered under ``name`` for ``n_features`` columns."""
    return LIKELIHOODS[name](n_features)


def make_table_likelihood(blocks):
    """A ``TableLikelihood`` from the schema's ``(kind, n_columns, width, extra)``.

    ``extra`` is, for a Poisson block, the log of each column's mean count.
    """
    parts = []
    for kind, n_columns, width, extra in blocks:
        if kind == "categorical":
            parts.append((CategoricalLikelihood(width), n_columns))
        elif kind == "poisson":
            offset = torch.tensor(extra, dtype=torch.float32)
            parts.append((PoissonLikelihood(width, offset), n_columns))
        else:
            parts.append((make_likelihood(kind, width), n_columns))
    return TableLikelihood(parts)
