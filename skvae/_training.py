"""The ELBO and the minibatch training loop. Torch only; knows nothing of scikit-learn.

The loop is a chain of small steps (``train`` -> ``run_epoch`` -> ``train_step`` ->
``negative_elbo``) so each can be read, tested and replaced on its own.
"""

import math
from dataclasses import dataclass, field

import torch


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite: the optimisation diverged."""

    def __init__(self, epoch, loss):
        self.epoch = epoch
        self.loss = loss
        super().__init__(f"training loss became {loss} at epoch {epoch}")


def gaussian_kl(mu, log_var):
    """KL(N(mu, diag(exp(log_var))) || N(0, I)) of each row, in closed form."""
    return 0.5 * (mu.pow(2) + log_var.exp() - 1.0 - log_var).sum(dim=1)


def elbo_terms(model, x, noise, mask=None):
    """Per-row reconstruction log-likelihood E_q[log p(x|z)] and KL(q(z|x) || p(z)).

    ``noise`` holds standard normal draws of shape ``(n_draws, n_rows, n_components)``;
    the expectation over q is their Monte Carlo average, through the
    reparameterisation z = mu + sigma * noise so that gradients reach the encoder.
    """
    mu, log_var = model.encode(x)
    z = model.reparameterize(mu, log_var, noise)  # broadcasts over the draws
    n_draws, n_rows, n_components = z.shape
    params = model.decode(z.reshape(n_draws * n_rows, n_components))
    if n_draws > 1:  # score every draw against the same row
        x = x.repeat(n_draws, 1)
        mask = None if mask is None else mask.repeat(n_draws, 1)
    log_lik = model.likelihood.log_prob(x, params, mask)
    log_lik = log_lik.reshape(n_draws, n_rows).mean(dim=0)
    return log_lik, gaussian_kl(mu, log_var)


@dataclass
class TrainingHistory:
    """What training recorded: one entry per completed epoch."""

    loss: list = field(default_factory=list)
    stopped_early: bool = False

    @property
    def n_epochs(self):
        return len(self.loss)


@dataclass
class TrainingConfig:
    """Settings of the minibatch loop; see ``VAETransformer`` for their meaning."""

    batch_size: int
    learning_rate: float
    max_epochs: int
    tol: float
    n_iter_no_change: int
    beta: float = 1.0


def negative_elbo(model, x, generator, beta):
    """Batch mean of -(E_q[log p(x|z)] - beta * KL), one draw of z per row."""
    noise = torch.randn(
        (1, x.shape[0], model.n_components),
        generator=generator,
        device=x.device,
        dtype=x.dtype,
    )
    log_lik, kl = elbo_terms(model, x, noise)
    return (beta * kl - log_lik).mean()


def train_step(model, optimizer, x, generator, beta):
    optimizer.zero_grad(set_to_none=True)
    loss = negative_elbo(model, x, generator, beta)
    loss.backward()
    optimizer.step()
    return loss.detach()


def run_epoch(model, optimizer, X, config, generator):
    """One pass over ``X`` in shuffled minibatches; returns the mean loss per row."""
    n_rows = X.shape[0]
    order = torch.randperm(n_rows, generator=generator, device=X.device)
    total = torch.zeros((), device=X.device)
    for start in range(0, n_rows, config.batch_size):
        batch = X[order[start : start + config.batch_size]]
        loss = train_step(model, optimizer, batch, generator, config.beta)
        # Accumulate on the device: one host sync per epoch, not one per batch.
        total += loss * batch.shape[0]
    return (total / n_rows).item()


def train(model, X, config, generator, log=None):
    """Fit ``model`` to the rows of ``X`` with Adam, maximising the ELBO.

    Stops after ``config.max_epochs`` epochs, or earlier once the epoch loss has
    failed to improve on the best so far by at least ``config.tol`` for
    ``config.n_iter_no_change`` consecutive epochs.

    Parameters
    ----------
    model : VAE
    X : torch.Tensor of shape (n_rows, n_features)
        Training data, already on the model's device.
    config : TrainingConfig
    generator : torch.Generator
        Source of the shuffling and of the reparameterisation noise.
    log : callable, default=None
        Called with one line of progress per epoch.

    Returns
    -------
    TrainingHistory

    Raises
    ------
    NonFiniteLossError
        If an epoch's loss is NaN or infinite.
    """
    # The fused kernel updates all parameters in one call: on small networks the
    # per-tensor Python loop of the default implementation costs more than the maths.
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, fused=True
    )
    history = TrainingHistory()
    best_loss = math.inf
    epochs_without_improvement = 0
    model.train()
    for epoch in range(1, config.max_epochs + 1):
        loss = run_epoch(model, optimizer, X, config, generator)
        if not math.isfinite(loss):
            raise NonFiniteLossError(epoch, loss)
        history.loss.append(loss)
        if log is not None:
            log(f"epoch {epoch:4d}  loss {loss:.4f}")
        if loss > best_loss - config.tol:
            epochs_without_improvement += 1
        else:
            epochs_without_improvement = 0
        best_loss = min(best_loss, loss)
        if epochs_without_improvement >= config.n_iter_no_change:
            history.stopped_early = True
            break
    model.eval()
    return history
