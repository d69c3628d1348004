"""Placing new rows on a map against the training codes (``placement="neighbors"``).

The encoder generalises its neighbourhoods less well to new rows than it fits
them on the training rows. As openTSNE's ``transform`` does (Policar, Strazar &
Zupan, JMLR 2024), a new row's code starts at the encoder's mean and then moves
so that its affinities to a sample of training codes match its affinities to
those training rows in the space the encoder reads:

    min_y  KL(P_i || Q_i) = -sum_j p_j|i log q_ij + const,

with p_j|i the Gaussian-kernel distribution over the row's 3 * perplexity
nearest training rows at the model's perplexity (as the neighbour term's
P), and q_ij = k(y, z_j) / sum_r k(y, z_r) the Student t affinities of the
training codes z (times ``LATENT_SCALE``, as in the term), normalised over
the first ``REPULSION_ROWS`` reference rows (a random sample: the gradient of
the log normaliser is an average over codes, which a sample estimates).
Only the new code moves; the training codes stay. The gradient is written
out, so that it runs inside inference mode, and Adam takes ``STEPS`` steps.
Each row's problem is its own: the result does not depend on the batch.

Torch only.
"""

from dataclasses import dataclass

import numpy as np
import torch

from ._neighbors import LATENT_SCALE, perplexity_rows

# Training rows kept to place against: their inputs as the encoder reads them
# and their codes, at most REFERENCE_BYTES of inputs.
REFERENCE_ROWS = 10_000
REFERENCE_BYTES = 64 * 2**20
# Codes whose kernel sum normalises Q.
REPULSION_ROWS = 1_000
# Adam on the scaled codes: on the digits 50 steps at 0.2 placed held-out rows
# as well as 100 or 300 smaller ones did (benchmarks/README.md).
STEPS = 50
LEARNING_RATE = 0.2
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8


@dataclass
class MapReference:
    """Training rows to place new rows against: ``inputs`` as the encoder read
    them and ``codes`` their posterior means, float32 arrays, in a random order."""

    inputs: np.ndarray
    codes: np.ndarray

    def state(self):
        return {"inputs": self.inputs, "codes": self.codes}

    @classmethod
    def from_state(cls, state):
        reference = cls(np.asarray(state["inputs"]), np.asarray(state["codes"]))
        if not all(np.isfinite(a).all() for a in (reference.inputs, reference.codes)):
            raise ValueError("the map's reference rows hold NaN or infinite values")
        return reference


def reference_rows(n_rows, width):
    """How many training rows a reference keeps of a table of ``n_rows``."""
    return int(min(n_rows, REFERENCE_ROWS, max(1, REFERENCE_BYTES // (4 * width))))


def place(inputs, means, reference, perplexity):
    """The codes of rows that the encoder read as ``inputs`` (a tensor) and
    encoded as ``means``, placed against ``reference`` (tensors ``inputs``,
    ``codes`` on the same device)."""
    ref_inputs, ref_codes = reference
    n_neighbors = min(int(3 * perplexity), len(ref_codes))
    squared = torch.cdist(inputs.float(), ref_inputs).pow(2)
    distances, nearest = torch.topk(squared, n_neighbors, dim=1, largest=False)
    # Each row scaled by its own mean: the bisection is scale-free, and a row's
    # code never depends on the other rows of its batch.
    distances = distances / distances.mean(dim=1, keepdim=True).clamp_min(1e-12)
    p = perplexity_rows(distances, min(perplexity, max(n_neighbors / 3.0, 1.0)))
    scale = LATENT_SCALE
    neighbor_codes = ref_codes[nearest] * scale  # (n, k, d)
    repulsion_codes = ref_codes[:REPULSION_ROWS] * scale
    dof = max(means.shape[1] - 1, 1)
    y = means.float() * scale
    first, second = torch.zeros_like(y), torch.zeros_like(y)
    for step in range(1, STEPS + 1):
        gradient = _gradient(y, p, neighbor_codes, repulsion_codes, dof)
        first.lerp_(gradient, 1 - _ADAM_BETAS[0])
        second.lerp_(gradient.square(), 1 - _ADAM_BETAS[1])
        corrected = first / (1 - _ADAM_BETAS[0] ** step)
        spread = (second / (1 - _ADAM_BETAS[1] ** step)).sqrt() + _ADAM_EPS
        # The rate falls linearly to 0: the last steps settle instead of
        # oscillating about the minimum.
        rate = LEARNING_RATE * (1 - (step - 1) / STEPS)
        y = y - rate * corrected / spread
    return (y / scale).to(means.dtype)


def _gradient(y, p, neighbor_codes, repulsion_codes, dof):
    """d/dy of -sum_j p_j log k(y, z_j) + log sum_r k(y, z_r), k the Student t
    kernel with ``dof`` degrees of freedom: d log k / dy = -(dof + 1) (y - z) /
    (dof + |y - z|^2)."""
    toward = y.unsqueeze(1) - neighbor_codes  # (n, k, d)
    attraction = (p / (dof + toward.square().sum(2))).unsqueeze(2) * toward
    away = y.unsqueeze(1) - repulsion_codes  # (n, r, d)
    squared = away.square().sum(2)
    weights = torch.softmax(-(dof + 1) / 2 * torch.log1p(squared / dof), dim=1)
    repulsion = (weights / (dof + squared)).unsqueeze(2) * away
    return (dof + 1) * (attraction.sum(1) - repulsion.sum(1))
