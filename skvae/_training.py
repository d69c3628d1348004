"""The ELBO and the minibatch training loop. Torch only; knows nothing of scikit-learn.

The loop is a chain of small steps (``train`` -> ``run_epoch`` -> ``train_step`` ->
``elbo_terms``) so each can be read, tested and replaced on its own.
"""

import contextlib
import copy
import functools
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ._data import BlockedRows, as_model_data, as_training_rows
from ._graphs import GraphedStep, wants_graphs
from ._likelihoods import _LOG_2PI
from ._neighbors import MAX_ROWS as NEIGHBOR_ROWS
from ._neighbors import input_affinities, tsne_divergence


class NonFiniteLossError(ValueError):
    """The training loss, or the weights after a step, became NaN or infinite:
    the optimisation diverged."""

    def __init__(self, epoch, loss, advice="", weights=False):
        self.epoch = epoch
        self.loss = loss
        self.weights = weights
        message = (
            f"Training diverged: the weights became NaN or infinite at epoch "
            f"{epoch} (its loss was {loss:g})."
            if weights
            else f"Training diverged: the loss became {loss} at epoch {epoch}."
        )
        super().__init__(f"{message} {advice}".strip())


def weights_are_finite(model):
    """One host sync for every parameter of ``model``."""
    checks = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(checks).all()) if checks else True


# ----------------------------------------------------------------- the objective


def gaussian_kl(mu, log_var):
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) of each row, in closed form."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


def _decode_draws(model, data, noise, encoder_input=None):
    """Encode ``data``, draw z for each of ``noise``'s draws, score x under each.

    ``encoder_input`` replaces ``data.targets`` as what the encoder reads (a
    corrupted copy, ``corrupt_inputs``); the likelihood always scores the data.
    Returns mu, log_var, z of shape (n_draws, n_rows, n_components), the
    log-likelihood log p(x|z) of shape (n_draws, n_rows), observed entries only,
    and the decoder's output for every draw, of shape (n_draws * n_rows, n_params).
    """
    data = as_model_data(data)
    read = data.targets if encoder_input is None else encoder_input
    mu, log_var = model.encode(read, data.observed)
    z = model.reparameterize(mu, log_var, noise)  # broadcasts over the draws
    n_draws, n_rows, n_components = z.shape
    params = model.decode(z.reshape(n_draws * n_rows, n_components))
    x, mask = data.targets, data.observed
    if n_draws > 1:  # score every draw against the same row
        x = x.repeat(n_draws, 1)
        mask = None if mask is None else mask.repeat(n_draws, 1)
    log_lik = model.likelihood.log_prob(x, params, mask).reshape(n_draws, n_rows)
    return mu, log_var, z, log_lik, params


def elbo_terms(model, x, noise, encoder_input=None):
    """Per-row reconstruction log-likelihood E_q[log p(x|z)] and KL(q(z|x) || p(z)).

    ``noise`` holds standard normal draws of shape ``(n_draws, n_rows, n_components)``
    (or ``(n_draws, 1, n_components)`` to share them across rows); the expectation
    over q is their Monte Carlo average, through the reparameterisation
    z = mu + sigma * noise so that gradients reach the encoder. With
    ``encoder_input``, q is that of the corrupted rows (a denoising VAE).
    """
    _, log_lik, kl = _elbo_parts(model, x, noise, encoder_input)
    return log_lik, kl


def _elbo_parts(model, x, noise, encoder_input=None):
    """``elbo_terms`` with the latent means in front: (mu, log_lik, kl)."""
    mu, log_var, _, log_lik, _ = _decode_draws(model, x, noise, encoder_input)
    # One draw (training): a view, cheaper than a mean in the backward pass too.
    log_lik = log_lik.squeeze(0) if log_lik.shape[0] == 1 else log_lik.mean(dim=0)
    return mu, log_lik, gaussian_kl(mu, log_var)


def importance_weighted_bound(model, x, noise):
    """IWAE bound log (1/K) sum_k p(x, z_k) / q(z_k|x) of each row, z_k ~ q(z|x).

    A lower bound of log p(x) that tightens as the number of draws K grows; with
    K = 1 it is a one-draw estimate of the ELBO.
    """
    log_weights, _ = _importance_weights(model, x, noise)
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def _importance_weights(model, x, noise):
    """log p(x, z_k) / q(z_k|x) for each draw z_k of q, and the decoder's outputs."""
    _, log_var, z, log_lik, params = _decode_draws(model, x, noise)
    # log q(z|x) with z = mu + sigma * noise: the squared standardised residual
    # is noise ** 2 itself.
    log_q = -0.5 * (_LOG_2PI + log_var + noise.pow(2)).sum(dim=-1)
    log_prior = -0.5 * (_LOG_2PI + z.pow(2)).sum(dim=-1)
    return log_lik + log_prior - log_q, params


def conditional_mean(model, x, noise):
    """E[x | observed entries of x] under the model, by self-normalised importance
    sampling: the decoder's means at draws z_k ~ q(z|x), weighted by
    p(x_obs, z_k) / q(z_k|x).

    Only the observed entries weigh the draws (the likelihood is masked), so the
    missing entries are predicted from what was seen. Returns a tensor of shape
    (n_rows, n_columns) in the data's layout (a categorical column's most
    probable level under the weighted average of the draws' probabilities).
    """
    log_weights, params = _importance_weights(model, x, noise)
    n_draws, n_rows = log_weights.shape
    weights = torch.softmax(log_weights, dim=0)
    means = model.likelihood.mean(params).reshape(n_draws, n_rows, -1)
    return model.likelihood.to_values((weights.unsqueeze(-1) * means).sum(dim=0))


# ----------------------------------------------------------------- the budget

# The automatic budget (``plan_budget``). Tables of up to AUTO_SMALL_ROWS rows
# train as the defaults were tuned on the digits (1,257 rows): 150 epochs of
# batches of 128, about 1,500 steps. A larger table is not harder to fit, it
# only holds more rows per pattern, so the budget grows far slower than its
# rows: the batch grows as the square root of the size ratio (fewer, larger
# steps: cheaper per row on every device, far cheaper on a GPU) and the samples
# seen as its AUTO_SAMPLES_POWER, with at least AUTO_MIN_EPOCHS passes.
AUTO_SMALL_ROWS = 2048
AUTO_EPOCHS = 150
AUTO_BATCH = 128
AUTO_MAX_BATCH = 8192
AUTO_SAMPLES_POWER = 0.4
AUTO_MIN_EPOCHS = 3
# The KL warm-up of an automatic plan: 10 of its 150 epochs on a small table.
AUTO_WARMUP_SHARE = 10 / 150
# Automatic patience: AUTO_PATIENCE_EPOCHS epochs, and never fewer minibatch
# steps than AUTO_PATIENCE_STEPS (10 epochs of a 2,048-row table at batch 128).
# On a table of a few hundred rows an epoch is one to three steps, so ten
# noisy epoch losses in a row stopped fits a third of the way through their
# plan (penguins, iris, wine), at worse held-out likelihoods.
AUTO_PATIENCE_EPOCHS = 10
AUTO_PATIENCE_STEPS = 160
# The size rule's samples are the least an automatic plan runs; while the loss
# still improves it runs on, to AUTO_EXTENSION times the size rule's epochs
# (never more than AUTO_EPOCHS, never fewer than the rule). The rule alone
# left held-out errors at 1.57 times a converged fit's on a 5-D manifold's
# 100,000 x 50 table at n_components=2, 1.34 times on a 10-D one's 1,000,000 x
# 100 at n_components=10 (benchmarks/README.md, "A budget that follows
# convergence").
AUTO_EXTENSION = 4
# "Still improves": over the last PLATEAU_WINDOW share of the call's epochs
# the best loss fell by at least PLATEAU_GAIN of all it fell since the first
# epoch. On that table n_components=5 then runs 41 epochs (MSE 0.0100, the
# noise floor; 150 epochs: 0.0101) and 2 runs 25 (0.126; 150 epochs: 0.088).
# A gain of 0.1 stopped 2 at 17 epochs and 0.135, 1.54 times the converged
# error.
PLATEAU_WINDOW = 0.25
PLATEAU_GAIN = 0.05


@dataclass
class TrainingPlan:
    """What a training call will do: batches, passes, KL warm-up, in total."""

    n_rows: int
    batch_size: int
    max_epochs: int
    warmup_epochs: float
    patience: int = AUTO_PATIENCE_EPOCHS
    # The epochs the size rule plans, when the call may run on to max_epochs
    # while the loss improves; None: a fixed plan of max_epochs.
    min_epochs: int | None = None

    @property
    def steps_per_epoch(self):
        return math.ceil(self.n_rows / self.batch_size)

    @property
    def max_steps(self):
        return self.max_epochs * self.steps_per_epoch

    @property
    def max_samples(self):
        return self.max_epochs * self.n_rows


def plan_budget(
    n_rows,
    batch_size="auto",
    max_epochs="auto",
    warmup_epochs="auto",
    patience="auto",
):
    """The ``TrainingPlan`` for ``n_rows`` rows; "auto" values follow the rule.

    - ``batch_size``: 128 up to 2,048 rows; beyond, 128 times the square root of
      ``n_rows / 2048``, rounded to a power of two, at most 8,192.
    - ``max_epochs``: 150 up to 2,048 rows; beyond, as many as see
      ``150 * 2048 * (n_rows / 2048) ** 0.4`` samples, at least 3: the
      ``min_epochs``. The call then runs on while the loss improves
      (``EpochSchedule``), to ``max_epochs``: 4 times as many, at most 150
      (never fewer than ``min_epochs``).
    - ``warmup_epochs``: 1/15 of ``min_epochs`` (10 of 150).
    - ``patience`` (epochs without progress that end training): 10, or as
      many as make 160 minibatch steps where an epoch has fewer than 16.

    An explicit value is kept (the batch is clipped to ``n_rows``).
    """
    ratio = max(1.0, n_rows / AUTO_SMALL_ROWS)
    if batch_size == "auto":
        doublings = round(math.log2(math.sqrt(ratio)))
        batch_size = min(AUTO_MAX_BATCH, AUTO_BATCH * 2**doublings)
    batch_size = max(1, min(int(batch_size), n_rows))
    min_epochs = None
    if max_epochs == "auto":
        samples = AUTO_EPOCHS * AUTO_SMALL_ROWS * ratio**AUTO_SAMPLES_POWER
        if n_rows <= AUTO_SMALL_ROWS:
            min_epochs = AUTO_EPOCHS
        else:
            min_epochs = max(AUTO_MIN_EPOCHS, math.ceil(samples / n_rows))
        max_epochs = max(min_epochs, min(AUTO_EXTENSION * min_epochs, AUTO_EPOCHS))
        if max_epochs == min_epochs:
            min_epochs = None
    if warmup_epochs == "auto":
        warmup_epochs = AUTO_WARMUP_SHARE * (min_epochs or max_epochs)
    plan = TrainingPlan(
        n_rows, batch_size, int(max_epochs), float(warmup_epochs), min_epochs=min_epochs
    )
    if patience == "auto":
        patience = max(
            AUTO_PATIENCE_EPOCHS, math.ceil(AUTO_PATIENCE_STEPS / plan.steps_per_epoch)
        )
    plan.patience = int(patience)
    return plan


# ---------------------------------------------------------------- the loop


@dataclass
class TrainingConfig:
    """Settings of the minibatch loop; see ``VAETransformer`` for their meaning."""

    batch_size: int
    max_epochs: int
    tol: float
    n_iter_no_change: int
    beta: float = 1.0
    warmup_epochs: float = 0
    early_stopping: bool = False
    learning_rate: float | None = None  # None: the optimiser's rate as it stands
    learning_rate_schedule: str = "constant"  # or "step"
    input_noise: float = 0.0  # sd of the noise the encoder reads (denoising)
    precision: str = "float32"  # or "bfloat16": the steps' matrix products
    neighbors: object = None  # a ``Neighbors``: the in-batch t-SNE term
    min_epochs: int | None = None  # see TrainingPlan.min_epochs


@dataclass
class EpochRecord:
    """Means per row over one epoch; ``loss`` uses the full ``beta``.

    ``steps`` and ``samples`` count this training call's minibatch steps and
    rows seen so far, ``seconds`` its time so far.
    """

    epoch: int
    loss: float
    reconstruction: float
    kl: float
    kl_weight: float
    learning_rate: float
    validation_score: float | None = None
    steps: int = 0
    samples: int = 0
    seconds: float = 0.0

    @property
    def rows_per_second(self):
        return self.samples / self.seconds if self.seconds > 0 else math.inf


@dataclass
class TrainingHistory:
    """What training recorded, and why it stopped."""

    records: list = field(default_factory=list)
    stop_reason: str = "max_epochs"  # or "converged", "interrupted"
    best_loss: float = math.inf
    best_validation_score: float = -math.inf
    # Whether full batches replayed their forward and backward passes from CUDA
    # graphs, and what stopped a capture (then the steps ran eagerly).
    cuda_graphs: bool = False
    cuda_graph_failure: str | None = None

    @property
    def n_epochs(self):
        return len(self.records)


def make_optimizer(model, learning_rate):
    # The fused kernel updates all parameters in one call: on small networks the
    # per-tensor Python loop of the default implementation costs more than the maths.
    return torch.optim.Adam(model.parameters(), lr=learning_rate, fused=True)


# The "step" schedule: the learning rate falls to STEP_FACTOR of its initial value
# for the epochs after the first STEP_AT share of a training call. A smaller step
# late in training lets the weights settle in the minimum SGD noise kept them
# around: lower reconstruction error in the same time (benchmarks/README.md).
STEP_AT = 0.7
STEP_FACTOR = 0.25


def learning_rate_at(epoch, config, full_rate_epochs=None):
    """Learning rate of the ``epoch``-th epoch (counting from 1) of a training
    call whose first ``full_rate_epochs`` run at the full rate (None: those of
    its fixed plan)."""
    if full_rate_epochs is None:
        full_rate_epochs = EpochSchedule.full_rate_share(config.max_epochs)
    if config.learning_rate_schedule == "step" and epoch > full_rate_epochs:
        return config.learning_rate * STEP_FACTOR
    return config.learning_rate


@dataclass
class EpochSchedule:
    """How many epochs a training call runs at the full rate, and in all.

    A fixed plan: ``STEP_AT`` of its epochs at the full rate, then the rest
    (at a quarter of the rate with the "step" schedule). A plan that may run
    on (``min_epochs`` set) starts as the fixed plan of ``min_epochs``; at the
    end of each last full-rate epoch, while the loss still improves
    (``still_improving``) and the cap allows, one more full-rate epoch is
    added, and the rest grows in proportion.
    """

    full_rate: int
    total: int
    most_full_rate: int  # what max_epochs allows
    base_rest: float  # the rest per full-rate epoch

    @staticmethod
    def full_rate_share(n_epochs):
        # Half-up rounding (Python's round() rounds halves to even): 10 of 15
        # epochs at the full rate would be 67 %, 11 is 73 %.
        return math.floor(STEP_AT * n_epochs + 0.5)

    @classmethod
    def of(cls, config):
        planned = config.min_epochs or config.max_epochs
        full_rate = cls.full_rate_share(planned)
        most = cls.full_rate_share(config.max_epochs) if config.min_epochs else 0
        return cls(full_rate, planned, most, (planned - full_rate) / max(full_rate, 1))

    def update(self, done, losses):
        """After epoch ``done`` of the call, with its epoch ``losses`` so far."""
        if done != self.full_rate or done >= self.most_full_rate:
            return
        if still_improving(losses):
            self.full_rate += 1
            self.total = self.full_rate + math.ceil(self.base_rest * self.full_rate)


def still_improving(losses):
    """Whether the best of ``losses`` fell, over their last ``PLATEAU_WINDOW``
    share, by at least ``PLATEAU_GAIN`` of all it fell since the first."""
    best = np.minimum.accumulate(np.asarray(losses, dtype=float))
    window = math.ceil(PLATEAU_WINDOW * len(best))
    if window >= len(best):
        return True
    gain = best[-1 - window] - best[-1]
    return bool(gain >= PLATEAU_GAIN * (best[0] - best[-1]) and gain > 0)


def set_learning_rate(optimizer, learning_rate):
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


def kl_weight(progress, beta, warmup_epochs):
    """Weight of the KL term after ``progress`` epochs (fractions count).

    A linear ramp from 0 that reaches ``beta`` once ``warmup_epochs`` epochs are
    done. Counting in epochs rather than steps keeps the ramp monotone when
    ``partial_fit`` passes chunks of different sizes.
    """
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, progress / warmup_epochs)


def corrupt_inputs(x, n_gaussian, noise_sd, generator):
    """A copy of the targets of ``x`` (``ModelData``) for the encoder to read,
    with Gaussian noise of standard deviation ``noise_sd`` added to the first
    ``n_gaussian`` entries of each row (the standardised numbers) where they
    were observed, the others as they are. (A reader that is the identity, for
    a model fitted on a first chunk without holes, would not zero the noise of
    a later chunk's missing entries.)"""
    targets = x.targets.clone()
    noise = torch.randn(
        (targets.shape[0], n_gaussian),
        generator=generator,
        device=generator.device,
    ).to(targets.device)
    if x.observed is not None:
        noise = noise * x.observed[:, :n_gaussian]
    targets[:, :n_gaussian] += noise_sd * noise
    return targets


def minibatch_loss(model, x, noise, beta, encoder_input=None, neighbors=None):
    """The loss a step minimises on ``x``: the mean of -E_q[log p(x|z)] + beta KL,
    plus ``neighbors`` (``Neighbors``) the in-batch t-SNE term when given.

    ``beta`` is a number or a device scalar (the CUDA graphs' input). Returns the
    loss and, detached, the batch sums of the reconstruction term and of the KL
    term, in that order.
    """
    if neighbors is not None:
        return _loss_with_neighbors(model, x, noise, beta, encoder_input, neighbors)
    log_lik, kl = elbo_terms(model, x, noise, encoder_input)
    # Every operation here runs once a step: skip the multiply when it is a no-op.
    weighted_kl = kl if not torch.is_tensor(beta) and beta == 1.0 else beta * kl
    loss = (weighted_kl - log_lik).mean()
    return loss, torch.stack((-log_lik.detach(), kl.detach())).sum(dim=1)


@dataclass(frozen=True)
class Neighbors:
    """The neighbour-preserving term's weight and perplexity (``_neighbors``)."""

    weight: float
    perplexity: float


def _loss_with_neighbors(model, x, noise, beta, encoder_input, neighbors):
    x = as_model_data(x)
    mu, log_lik, kl = _elbo_parts(model, x, noise, encoder_input)
    compared = slice(0, NEIGHBOR_ROWS)
    observed = None if x.observed is None else x.observed[compared]
    inputs = model.encoder.read(x.targets[compared], observed)
    divergence = tsne_divergence(
        input_affinities(inputs, neighbors.perplexity), mu[compared].float()
    )
    term = neighbors.weight * divergence
    loss = (beta * kl - log_lik).mean() + term
    # The records follow the objective trained on (the stopping rules read
    # them): the term joins the reconstruction's batch sum, per row.
    fitted = -log_lik.detach() + term.detach()
    return loss, torch.stack((fitted, kl.detach())).sum(dim=1)


def train_step(
    model, optimizer, x, noise, beta, encoder_input=None, autocast=None, neighbors=None
):
    """One Adam step on ``x`` (the encoder reading ``encoder_input`` if given).

    ``autocast`` (a device type) runs the forward pass in bfloat16 mixed
    precision there: matrix products in bfloat16, weights, gradients' updates
    and the loss's sums in float32.
    Returns a tensor holding the batch sums of the reconstruction term
    -E_q[log p(x|z)] and of the KL term, in that order.
    """
    optimizer.zero_grad(set_to_none=True)
    # No cache of the weights' bfloat16 copies: torch empties it only when the
    # outermost autocast block ends, so inside a caller's own autocast block
    # every step would read the first step's weights (and learn nothing).
    mixed = (
        torch.autocast(autocast, dtype=torch.bfloat16, cache_enabled=False)
        if autocast is not None
        else contextlib.nullcontext()
    )
    with mixed:
        loss, sums = minibatch_loss(model, x, noise, beta, encoder_input, neighbors)
    loss.backward()
    optimizer.step()
    return sums


def make_step(
    model,
    optimizer,
    batch_size,
    n_steps,
    threaded_reads=False,
    precision="float32",
    neighbors=None,
):
    """The step function of a training call: ``train_step``, or on a GPU, for a
    call long enough to pay for the capture and with ``SKVAE_CUDA_GRAPHS=1``,
    the same step with its forward and backward passes replayed from CUDA
    graphs (``skvae._graphs``); with ``precision="bfloat16"``, ``train_step``
    in bfloat16 mixed precision on the model's device (never captured: the
    graphs record float32 steps). On CPUs with AMX (and on GPUs) the matrix
    products of large batches take a third to a half of their float32 time."""
    device = next(model.parameters()).device
    if precision == "bfloat16":
        return functools.partial(train_step, autocast=device.type, neighbors=neighbors)
    if neighbors is not None:  # (never graphed: the graphs record the ELBO)
        return functools.partial(train_step, neighbors=neighbors)
    if wants_graphs(device, n_steps, threaded_reads):
        return GraphedStep(model, optimizer, batch_size, minibatch_loss, train_step)
    return train_step


def run_epoch(
    model, optimizer, X, config, generator, epochs_done=0, step_function=train_step
):
    """One pass over the rows of ``X`` (``TrainingRows``) in shuffled minibatches,
    each trained on by ``step_function`` (``train_step``'s signature).

    Returns the mean reconstruction term -E_q[log p(x|z)] and mean KL per row.
    """
    X = as_training_rows(X)
    n_rows = len(X)
    n_batches = X.n_batches(config.batch_size)
    totals = torch.zeros(2, device=generator.device)
    step = 0
    # One segment for rows held whole; one per block of a dask array. Noise is
    # drawn a segment at a time: one call instead of one a batch.
    for order, noise in X.epoch(generator, model.n_components):
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            step += 1
            progress = epochs_done + step / n_batches
            beta = kl_weight(progress, config.beta, config.warmup_epochs)
            x = X.batch(rows)
            z_noise = noise[:, start : start + len(rows)]
            read = ()  # the encoder reads x itself, or (never graphed) a copy
            if config.input_noise > 0:
                read = (
                    corrupt_inputs(
                        x, model.n_gaussian_inputs, config.input_noise, generator
                    ),
                )
            sums = step_function(model, optimizer, x, z_noise, beta, *read)
            # Accumulate on the device: one host sync per epoch, not one a batch.
            totals += sums
    reconstruction, kl = (totals / n_rows).tolist()
    return reconstruction, kl


def fixed_noise(shape, device, seed=0):
    """Standard normal draws that are the same on every call and every device.

    Scoring with fixed draws (common random numbers) makes scores deterministic
    and comparable across epochs and calls.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator).to(device)


def validation_score(model, X_val, noise, chunk_rows=8192):
    """Mean ELBO of the validation rows, z drawn with ``noise``; higher is better.

    Scored in chunks, so a large validation split never holds every row's hidden
    activations at once.
    """
    X_val = as_training_rows(X_val)
    # Rows held whole are scored from one tensor; rows densified a batch at a
    # time (a sparse matrix) are read a chunk at a time, never all at once.
    whole = X_val.all() if X_val.resident else None
    total = torch.zeros((), device=noise.device)
    with torch.inference_mode():
        for start in range(0, len(X_val), chunk_rows):
            rows = slice(start, start + chunk_rows)
            if whole is not None:
                chunk = whole[rows]
            else:
                positions = torch.arange(start, min(start + chunk_rows, len(X_val)))
                chunk = X_val.batch(positions)
            log_lik, kl = elbo_terms(model, chunk, noise[:, rows])
            total += (log_lik - kl).sum()
    return (total / len(X_val)).item()


def train(model, optimizer, X, config, generator, X_val=None, first_epoch=0, log=None):
    """Fit ``model`` to the rows of ``X`` with ``optimizer``, maximising the ELBO.

    Each epoch's learning rate follows ``config.learning_rate_schedule`` over the
    ``config.max_epochs`` epochs of this call, starting from
    ``config.learning_rate`` (None: the optimiser's rate); it is written into the
    optimiser's parameter groups, so the optimiser keeps the last epoch's rate.
    Stops after them, or earlier once the monitored value has failed to improve on
    its best by at least ``config.tol`` for ``config.n_iter_no_change`` consecutive
    epochs after the KL warm-up. The monitored value is the validation ELBO when
    ``config.early_stopping`` (the weights of the best epoch are then restored),
    else the training loss. A ``KeyboardInterrupt`` abandons the current epoch and
    ends training; with early stopping the best weights so far are restored, else
    the current ones stay.

    Parameters
    ----------
    model : VAE
    optimizer : torch.optim.Optimizer
        Carries its state (Adam's moments) across calls.
    X : TrainingRows, ModelData or torch.Tensor of shape (n_rows, n_features)
        Training data (``skvae._data``); a tensor or ``ModelData`` is used on the
        device it is on.
    config : TrainingConfig
    generator : torch.Generator
        Source of the shuffling and of the reparameterisation noise.
    X_val : ModelData or torch.Tensor, default=None
        Validation data, required when ``config.early_stopping``.
    first_epoch : int, default=0
        Epochs already run, for the warm-up schedule and the epoch numbers in the
        history when training continues.
    log : callable, default=None
        Called with each ``EpochRecord`` and the history as training goes.

    Returns
    -------
    TrainingHistory

    Raises
    ------
    NonFiniteLossError
        If an epoch's loss is NaN or infinite.
    """
    if config.learning_rate is None:
        config = replace(config, learning_rate=optimizer.param_groups[0]["lr"])
    history = TrainingHistory()
    X = as_training_rows(X)
    val_noise = None
    if config.early_stopping:
        X_val = as_training_rows(X_val)
        if X_val.resident:  # moved to the device once, not every epoch
            X_val = as_training_rows(X_val.all())
        val_noise = fixed_noise((1, len(X_val), model.n_components), X_val.device)
    best_state = None
    if (
        config.early_stopping
        and first_epoch > 0
        and first_epoch >= config.warmup_epochs
    ):
        # Continuing a trained model: the weights it starts from are the ones to beat.
        history.best_validation_score = validation_score(model, X_val, val_noise)
        best_state = copy.deepcopy(model.state_dict())
    epochs_without_improvement = 0
    started = time.perf_counter()
    steps_per_epoch = X.n_batches(config.batch_size)
    step_function = make_step(
        model,
        optimizer,
        config.batch_size,
        # (Corrupted inputs train eagerly: the graphs read the data as it is.)
        config.max_epochs * steps_per_epoch if config.input_noise == 0 else 0,
        # A dask array's next block is read (and moved) in a thread.
        threaded_reads=isinstance(X, BlockedRows),
        precision=config.precision,
        neighbors=config.neighbors,
    )
    schedule = EpochSchedule.of(config)
    model.train()
    try:
        for epoch in range(first_epoch + 1, first_epoch + config.max_epochs + 1):
            learning_rate = learning_rate_at(
                epoch - first_epoch, config, schedule.full_rate
            )
            set_learning_rate(optimizer, learning_rate)
            reconstruction, kl = run_epoch(
                model,
                optimizer,
                X,
                config,
                generator,
                epochs_done=epoch - 1,
                step_function=step_function,
            )
            loss = reconstruction + config.beta * kl
            if not math.isfinite(loss):
                raise NonFiniteLossError(epoch, loss)
            # A finite loss can still be followed by a step that broke the
            # weights (a huge gradient): never hand back such a model.
            if not weights_are_finite(model):
                raise NonFiniteLossError(epoch, loss, weights=True)
            weight = kl_weight(epoch, config.beta, config.warmup_epochs)
            done = epoch - first_epoch
            record = EpochRecord(
                epoch,
                loss,
                reconstruction,
                kl,
                weight,
                learning_rate,
                steps=done * steps_per_epoch,
                samples=done * len(X),
                seconds=time.perf_counter() - started,
            )
            if config.early_stopping:
                score = validation_score(model, X_val, val_noise)
                record.validation_score = score
                improved = score > history.best_validation_score + config.tol
                # Keep the best weights on any gain (tol only sets patience), and
                # only once the warm-up is over: before, the objective differs.
                if (
                    epoch >= config.warmup_epochs
                    and score > history.best_validation_score
                ):
                    history.best_validation_score = score
                    best_state = copy.deepcopy(model.state_dict())
            else:
                improved = loss < history.best_loss - config.tol
            history.best_loss = min(history.best_loss, loss)
            history.records.append(record)
            if log is not None:
                log(record, history)
            # Patience counts only once the KL weight has reached beta: before, the
            # objective itself is still changing.
            if epoch <= config.warmup_epochs or improved:
                epochs_without_improvement = 0
            else:
                epochs_without_improvement += 1
            if epochs_without_improvement >= config.n_iter_no_change:
                history.stop_reason = "converged"
                break
            schedule.update(done, [r.loss for r in history.records])
            if done >= schedule.total:
                # The planned epochs: all of a fixed plan's, or as many as a
                # plan that could run on found worth running.
                if done < config.max_epochs:
                    history.stop_reason = "plateau"
                break
    except KeyboardInterrupt:
        history.stop_reason = "interrupted"
    finally:
        model.eval()
        if isinstance(step_function, GraphedStep):
            history.cuda_graphs = step_function.replays
            history.cuda_graph_failure = step_function.failure
            step_function.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
