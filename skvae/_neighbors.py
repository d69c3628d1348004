"""A neighbour-preserving term: in-batch t-SNE on the latent means.

With ``neighbor_weight`` > 0, each training step adds to the negative ELBO

    neighbor_weight * KL(P || Q),

over the pairs of rows of the minibatch (its first ``MAX_ROWS`` rows;
parametric t-SNE: van der Maaten, AISTATS 2009; inside a VAE as scvis does:
Ding, Condon & Shah, Nature Communications 2018). P holds the input rows'
affinities: for each row i a Gaussian kernel over the batch,
exp(-beta_i |x_i - x_j|^2), its precision beta_i set by bisection so that the
row's distribution has the asked perplexity
(2^entropy), then symmetrised, P = (P_j|i + P_i|j) / 2b. Q holds the latent
means' affinities under a Student t kernel with d - 1 degrees of freedom (one
for d = 1 or 2), of the means times ``LATENT_SCALE``, normalised over the
pairs. The rows are compared as the encoder reads them (standardised numbers,
one-hot labels, observed-flags). P carries no gradient; Q's reaches the
encoder only, through the means.

Torch only.
"""

import math

import torch

# Bisection steps on log(beta): the interval [-LOG_RANGE, LOG_RANGE] around the
# inverse mean squared distance, halved each step.
_BISECTION_STEPS = 25
_LOG_RANGE = 30.0

# Q compares the means times this factor. The prior keeps codes near unit
# scale, while a Student t layout spreads its clusters over tens of units: on
# the digits (weight 64, perplexity 5, input_noise 0.3, beta 0.5) the unscaled
# term cost 17 nats per row of held-out bound, the means times 4 cost 1.6 (5-NN
# 0.911 and 0.915; times 10: 0.922 at 4.6 nats).
LATENT_SCALE = 4.0

# The term compares at most this many rows of a batch (its first: batches are
# drawn in a shuffled order, so they are a random sample of it). Its cost grows
# with the square of the rows, 25 bisection steps over a b x b matrix: at the
# batch of 1,024 that 100,000 rows get, the whole batch made a default fit of
# 100,000 x 50 ten times slower (348 s against 35 s).
MAX_ROWS = 256


def input_affinities(inputs, perplexity):
    """The symmetric joint affinities P of a batch of input rows, shape (b, b)."""
    conditional = conditional_affinities(inputs, perplexity)
    return (conditional + conditional.T) / (2 * conditional.shape[0])


def conditional_affinities(inputs, perplexity):
    """Row i: the Gaussian-kernel distribution P_j|i over the other rows whose
    perplexity is ``perplexity`` (at most a third of the batch)."""
    inputs = inputs.detach().float()
    n = inputs.shape[0]
    squared = torch.cdist(inputs, inputs).pow(2)
    squared = squared / squared.mean().clamp_min(1e-12)  # scale-free bisection
    self_pairs = torch.eye(n, dtype=torch.bool, device=inputs.device)
    return perplexity_rows(
        squared, min(perplexity, max((n - 1) / 3.0, 1.0)), excluded=self_pairs
    )


def perplexity_rows(squared, perplexity, excluded=None):
    """Row i: the distribution exp(-beta_i d_ij) / sum over the row's squared
    distances d_ij (a tensor (n, m); ``excluded`` pairs get 0), its precision
    beta_i found by bisection so that its perplexity is ``perplexity``."""
    n = squared.shape[0]
    target = math.log(perplexity)
    low = torch.full((n, 1), -_LOG_RANGE, device=squared.device)
    high = torch.full((n, 1), _LOG_RANGE, device=squared.device)
    for _ in range(_BISECTION_STEPS):
        log_beta = (low + high) / 2
        logits = -torch.exp(log_beta) * squared
        if excluded is not None:
            logits = logits.masked_fill(excluded, -math.inf)
        conditional = torch.softmax(logits, dim=1)
        entropy = -(conditional * torch.log(conditional.clamp_min(1e-30))).sum(dim=1)
        # Entropy falls as the precision grows.
        too_flat = (entropy > target).unsqueeze(1)
        low = torch.where(too_flat, log_beta, low)
        high = torch.where(too_flat, high, log_beta)
    return conditional


def tsne_divergence(affinities, means):
    """KL(P || Q) of the batch, Q the Student t affinities of the latent means."""
    n, d = means.shape
    if n < 2:  # a one-row batch (the last of an epoch) has no pairs
        return means.sum() * 0.0
    dof = max(d - 1, 1)
    squared = torch.cdist(means, means).pow(2) * LATENT_SCALE**2
    log_kernel = -(dof + 1) / 2 * torch.log1p(squared / dof)
    self_pairs = torch.eye(n, dtype=torch.bool, device=means.device)
    log_kernel = log_kernel.masked_fill(self_pairs, -math.inf)
    log_q = log_kernel - torch.logsumexp(log_kernel.flatten(), dim=0)
    p = affinities.masked_fill(self_pairs, 0.0)
    log_p = torch.log(p.clamp_min(1e-30))
    return (p * (log_p - log_q.masked_fill(self_pairs, 0.0))).sum()
