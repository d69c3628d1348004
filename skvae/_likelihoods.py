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

    The data is the index of each row's level (a float holding an integer; any
    value where missing, since the mask drops it). With ``embedding_dim`` the
    decoder predicts an ``embedding_dim``-vector instead, and the logits are that
    vector times a learned matrix of level embeddings (plus a bias per level): a
    factorised output layer for columns of thousands of levels. Either way the
    log-probability is an exact softmax over every level seen in training.

    Parameters
    ----------
    n_categories : int
        Number of levels.
    embedding_dim : int, default=None
        Width of the factorised output layer; None: one logit per level straight
        from the decoder.
    generator : torch.Generator, default=None
        Source of the level embeddings' initial values.
    """

    def __init__(self, n_categories, embedding_dim=None, generator=None):
        super().__init__()
        self.n_categories = n_categories
        self.embedding_dim = embedding_dim
        self.project = None
        if embedding_dim is not None:
            self.project = nn.utils.skip_init(nn.Linear, embedding_dim, n_categories)
            bound = 1.0 / math.sqrt(embedding_dim)
            nn.init.uniform_(self.project.weight, -bound, bound, generator=generator)
            nn.init.zeros_(self.project.bias)

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_categories if self.project is None else self.embedding_dim

    @property
    def n_values(self):
        """Entries of the mean's layout: the probability of each level."""
        return self.n_categories

    def logits(self, params):
        return params if self.project is None else self.project(params)

    def log_prob(self, x, params, mask=None):
        """Log-probability of each row's level (0 where the column is missing)."""
        codes = x[:, 0].long()
        per_row = -F.cross_entropy(self.logits(params), codes, reduction="none")
        return _masked_row_sum(per_row.unsqueeze(1), mask)

    def mean(self, params):
        """The probability of each level."""
        return F.softmax(self.logits(params), dim=1)

    def sample(self, params, generator=None):
        """A drawn level's index per row."""
        draws = torch.multinomial(self.mean(params), 1, generator=generator)
        return draws.to(params.dtype)

    @staticmethod
    def to_values(mean):
        """The most probable level's index per row, from ``mean``'s probabilities."""
        return mean.argmax(dim=1, keepdim=True).to(mean.dtype)


class TableLikelihood(nn.Module):
    """p(x|z) of a table: one likelihood block per group of columns.

    The data and the observed-mask have one entry per table column, the
    decoder's output ``n_params`` of each block's, laid out block after block
    (see ``skvae._schema``); each block reads its own contiguous slice, and the
    row's log-likelihood is the sum of the blocks'.

    Parameters
    ----------
    blocks : list of (nn.Module, int)
        Each block's likelihood and the number of table columns it covers (its
        width in the data and the observed-mask).
    """

    def __init__(self, blocks):
        super().__init__()
        self.blocks = nn.ModuleList(block for block, _ in blocks)
        self._widths = [block.n_params for block, _ in blocks]
        self._n_columns = [n_columns for _, n_columns in blocks]
        self._n_values = [getattr(b, "n_values", n) for b, n in blocks]
        self.n_features = sum(self._widths)

    @property
    def n_params(self):
        """Number of decoder outputs this likelihood consumes."""
        return self.n_features

    @property
    def n_values(self):
        """Entries of the mean's layout (every level of a categorical column)."""
        return sum(self._n_values)

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
            self._split(x, self._n_columns),
            self._split(params, self._widths),
            masks,
            strict=True,
        )
        return sum(block.log_prob(*args) for block, *args in parts)

    def _per_block(self, method, tensor, sizes, **kwargs):
        if len(self.blocks) == 1:
            return getattr(self.blocks[0], method)(tensor, **kwargs)
        return torch.cat(
            [
                getattr(block, method)(part, **kwargs)
                for block, part in zip(
                    self.blocks, self._split(tensor, sizes), strict=True
                )
            ],
            dim=1,
        )

    def mean(self, params):
        """Each block's mean (the probability of every level for a categorical
        block): ``n_values`` entries per block, which can be averaged."""
        return self._per_block("mean", params, self._widths)

    def to_values(self, mean):
        """``mean`` in the data's layout, one entry per column (a categorical
        column's most probable level), as ``skvae._schema`` decodes it."""
        if not any(hasattr(block, "to_values") for block in self.blocks):
            # (Comparing widths would not do: a one-level column's are equal.)
            return mean
        return torch.cat(
            [
                getattr(block, "to_values", lambda m: m)(part)
                for block, part in zip(
                    self.blocks, self._split(mean, self._n_values), strict=True
                )
            ],
            dim=1,
        )

    def sample(self, params, generator=None):
        """A draw of every column, in the data's layout (a level's index for a
        categorical column)."""
        return self._per_block("sample", params, self._widths, generator=generator)


LIKELIHOODS = {
    "gaussian": GaussianLikelihood,
    "bernoulli": BernoulliLikelihood,
    "poisson": PoissonLikelihood,
}

# Categorical columns with more levels than this are decoded through a
# factorised output layer (``CategoricalLikelihood(embedding_dim=...)``) and read
# by the encoder through an embedding: a one-hot block of thousands of levels
# costs thousands of multiply-adds per hidden unit and row.
WIDE_LEVELS = 64


def embedding_dim(n_levels):
    """Width of a wide column's embedding: fast.ai's 1.6 * n ** 0.56, at most 32."""
    return min(32, round(1.6 * n_levels**0.56))


def make_likelihood(name, n_features):
    """Build the likelihood registered under ``name`` for ``n_features`` columns."""
    return LIKELIHOODS[name](n_features)


def make_table_likelihood(layout, generator=None):
    """A ``TableLikelihood`` for the schema's ``ModelLayout``."""
    parts = []
    if layout.n_gaussian:
        parts.append((GaussianLikelihood(layout.n_gaussian), layout.n_gaussian))
    if layout.n_poisson:
        offset = torch.tensor(layout.poisson_log_rate, dtype=torch.float32)
        parts.append((PoissonLikelihood(layout.n_poisson, offset), layout.n_poisson))
    if layout.n_bernoulli:
        parts.append((BernoulliLikelihood(layout.n_bernoulli), layout.n_bernoulli))
    for n_levels in layout.levels:
        dim = embedding_dim(n_levels) if n_levels > WIDE_LEVELS else None
        parts.append((CategoricalLikelihood(n_levels, dim, generator), 1))
    return TableLikelihood(parts)
