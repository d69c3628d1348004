"""Rows drawn given some columns: importance resampling of latent codes.

``sample(given=...)`` wants rows from p(x | x_C in the condition), which a VAE
does not give in closed form. We draw candidate codes from a defensive
proposal, half from the sampling density p_s(z) (the fitted mixture, or the
prior N(0, I)) and half from the encoder's q(z | x_C) for the row that holds
only the given values, and weigh each by

    w(z) = p_s(z) P(x_C in the condition | z) / (p_s(z) / 2 + q(z | x_C) / 2).

Resampling the codes by w and drawing x | z gives rows of the model's
conditional distribution as the candidates grow. The encoder's half finds a
rare condition's codes; the sampling half keeps the weights bounded (at most
twice the likelihood) where the encoder, which never saw rows this empty, is
off. The effective sample size (sum w)^2 / sum w^2 says how many candidates
carry the draw: near 1, the rows share one or a few codes.

The condition's probability given z is the likelihood of the given values
(observed entries, the others masked) and, for a range of a Gaussian or
normal-score column, the Gaussian's mass on the interval of its scores.
Torch only.
"""

import math

import torch

# Candidate codes per call: at least this many, and at least this many per row.
MIN_CANDIDATES = 8192
CANDIDATES_PER_ROW = 4
_BATCH = 8192


def _log_interval_mass(low, high):
    """log(Phi(high) - Phi(low)) elementwise, accurate in either tail."""
    # In the upper tail, reflect: Phi(b) - Phi(a) = Phi(-a) - Phi(-b).
    upper = low > 0
    low, high = torch.where(upper, -high, low), torch.where(upper, -low, high)
    log_high, log_low = torch.special.log_ndtr(high), torch.special.log_ndtr(low)
    gap = (log_low - log_high).clamp(max=-1e-12)  # log_low < log_high
    return log_high + torch.log1p(-torch.exp(gap))


def _condition_row(conditions, n_columns, device):
    """The row the encoder reads: the given values observed, the rest missing
    (ranges too: the encoder is told nothing of them)."""
    targets = torch.zeros(1, n_columns, device=device)
    observed = torch.zeros(1, n_columns, device=device)
    for condition in conditions:
        if condition.is_value:
            targets[0, condition.k] = condition.low
            observed[0, condition.k] = 1.0
    return targets, observed


def _log_condition(module, z, conditions, targets, observed):
    """log P(x_C in the condition | z) for each code of ``z``."""
    params = module.decode(z)
    likelihood = module.likelihood
    n = z.shape[0]
    log_p = likelihood.log_prob(
        targets.expand(n, -1), params, observed.expand(n, -1)
    ).double()
    ranges = [c for c in conditions if not c.is_value]
    if ranges:
        # Ranges are of Gaussian-block columns, the likelihood's first block.
        sd = likelihood.blocks[0].variance().sqrt()
        for c in ranges:
            mean, scale = params[:, c.k].double(), sd[c.k].double()
            log_p = log_p + _log_interval_mass(
                (c.low - mean) / scale, (c.high - mean) / scale
            )
    return log_p


def resample_codes(module, sampling, conditions, n_columns, n_samples, generator):
    """``n_samples`` codes of rows that meet ``conditions``, the effective
    sample size of the candidates they were resampled from, and the log of the
    condition's probability under the model (of its density, for a value of a
    number column).

    ``sampling``: (draw(n, generator) -> codes, log_prob(codes)) of the
    sampling density, as float32 and float64 tensors on the module's device.
    """
    draw_sampling, log_sampling = sampling
    device = next(module.parameters()).device
    targets, observed = _condition_row(conditions, n_columns, device)
    n_half = max(MIN_CANDIDATES, CANDIDATES_PER_ROW * n_samples) // 2
    mu, log_var = module.encode(targets, observed)
    std = torch.exp(0.5 * log_var)
    noise = torch.randn(
        (n_half, mu.shape[1]), generator=generator, device=device, dtype=mu.dtype
    )
    z = torch.cat([draw_sampling(n_half, generator), mu + std * noise])
    log_q = (
        -0.5
        * (math.log(2 * math.pi) + log_var + ((z - mu) / std) ** 2).sum(dim=1).double()
    )
    log_s = log_sampling(z)
    log_proposal = torch.logaddexp(log_s, log_q) - math.log(2.0)
    log_condition = torch.cat(
        [
            _log_condition(module, part, conditions, targets, observed)
            for part in z.split(_BATCH)
        ]
    )
    log_w = log_s + log_condition - log_proposal
    if not torch.isfinite(log_w).any():
        return None, 0.0, -math.inf
    log_w = torch.nan_to_num(log_w, nan=-math.inf)
    weights = torch.softmax(log_w, dim=0)
    ess = float(1.0 / (weights**2).sum())
    # The weights' mean estimates the condition's probability under the model.
    log_probability = float(torch.logsumexp(log_w, dim=0) - math.log(len(log_w)))
    chosen = torch.multinomial(
        weights, n_samples, replacement=True, generator=generator
    )
    return z[chosen], ess, log_probability


def meet_conditions(module, values, params, conditions, noise, generator):
    """``values`` (draws or means of p(x|z), the data's layout; ``params`` the
    decoder's output they came from) with the given columns set: a value to
    itself, a range to a draw of the Gaussian of its scores truncated to the
    range (its mean clamped into it without noise)."""
    ranges = [c for c in conditions if not c.is_value]
    sd = module.likelihood.blocks[0].variance().sqrt() if ranges else None
    for c in conditions:
        if c.is_value:
            values[:, c.k] = c.low
            continue
        mean = params[:, c.k]
        if noise:
            scale = sd[c.k]
            low = torch.special.ndtr((c.low - mean) / scale)
            high = torch.special.ndtr((c.high - mean) / scale)
            uniform = torch.rand(
                mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
            )
            u = (low + uniform * (high - low)).clamp(1e-12, 1 - 1e-12)
            mean = mean + scale * torch.special.ndtri(u)
        values[:, c.k] = mean.clamp(c.low, c.high)
    return values
