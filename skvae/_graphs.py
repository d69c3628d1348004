"""The training step's forward and backward passes replayed from CUDA graphs.

On a GPU a minibatch step of a tabular VAE is bound by kernel launches, not by
arithmetic: its forward and backward passes are some 480 small operations, each
launched from Python, and up to batch 1,024 a step costs about the same whatever
its size (3.6 ms on an H100). A CUDA graph records those launches once and
replays them with one call. ``torch.cuda.make_graphed_callables`` records the
forward and the backward pass of a module as one autograd function; what stays
eager is cheap in launches: gathering the batch, copying it into the graph's
input buffers and the fused Adam step.

A graph replays fixed shapes, so one is captured per batch layout (rows, and
whether a mask of missing entries comes with them), the first time a full batch
of that layout arrives; the ragged last batch of an epoch runs eagerly, as does
every step once a capture has failed (an operation that would synchronise with
the host cannot be recorded). The eager and the graphed steps compute the same
operations on the same parameters, so training follows the same path either way.

Experimental, so off unless ``SKVAE_CUDA_GRAPHS=1`` is in the environment: no
GPU has run it yet. Known limits: a capture forbids CUDA work in other threads
while it runs (another thread's inference on the same GPU at that moment would
fail), so dask arrays, whose next block is read in a thread, train eagerly; and
only the current CUDA device is captured.

Torch only.
"""

import gc
import os
import warnings

import torch
from torch import nn

from ._data import ModelData, as_model_data

# Capturing costs a few warm-up passes and a private memory pool: below this
# many steps in a training call the graphs cannot pay for themselves.
MIN_STEPS = 200


def graphs_enabled():
    return os.environ.get("SKVAE_CUDA_GRAPHS", "0") == "1"


def wants_graphs(device, n_steps, threaded_reads=False):
    """Whether a training call of ``n_steps`` steps on ``device`` should replay
    its steps from CUDA graphs; never while another thread moves rows to the
    device (``threaded_reads``), never on a CUDA device but the current one."""
    device = torch.device(device)
    if device.type != "cuda" or n_steps < MIN_STEPS or threaded_reads:
        return False
    if not graphs_enabled():
        return False
    return device.index is None or device.index == torch.cuda.current_device()


def capture(module, sample_args):
    """Record ``module``'s forward and backward pass on ``sample_args``; the
    module's ``forward`` replays them from then on."""
    return torch.cuda.make_graphed_callables(module, sample_args)


class _BatchLoss(nn.Module):
    """``loss(model, data, noise, beta)`` as a module that holds the VAE:
    ``make_graphed_callables`` records the parameters of the module it graphs,
    and replaces that module's ``forward``, so each graph gets its own."""

    def __init__(self, model, loss):
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, noise, beta, targets, *observed):
        data = ModelData(targets, observed[0] if observed else None)
        return self.loss(self.model, data, noise, beta)


class GraphedStep:
    """``eager_step``'s Adam step, with ``loss``'s forward and backward passes
    replayed from CUDA graphs for full batches of ``batch_size`` rows.

    Parameters
    ----------
    model : VAE
    optimizer : torch.optim.Optimizer
    batch_size : int
        The rows of a full batch: the only size that is captured.
    loss : callable
        ``loss(model, data, noise, beta)`` -> (mean loss, detached batch sums).
    eager_step : callable
        ``eager_step(model, optimizer, data, noise, beta)``: the same step run
        eagerly, for ragged batches and after a failed capture.
    capture : callable, default=None
        ``capture(module, sample_args)`` -> the graphed module (None: CUDA
        graphs). Tests on machines without CUDA pass their own.
    """

    def __init__(self, model, optimizer, batch_size, loss, eager_step, capture=None):
        self.model = model
        self.optimizer = optimizer
        self.batch_size = batch_size
        self.loss = loss
        self.eager_step = eager_step
        self.capture = globals()["capture"] if capture is None else capture
        self.graphed = {}  # (with a mask?) -> graphed _BatchLoss
        self.failure = None  # what stopped capturing (its repr), if anything
        # The KL weight as a device scalar the graphs read: filled each step
        # (during the warm-up it changes every step), never reallocated.
        self.beta = None

    @property
    def replays(self):
        """Whether any full batch has been replayed from a graph."""
        return bool(self.graphed)

    def close(self):
        """Let the graphs and their memory go once training is over.

        A graphed module's ``forward`` refers back to the module (a cycle), and
        the parameters' gradients are views of the graphs' buffers: without
        this, each layout's private memory pool stayed reserved until Python's
        next full garbage collection.
        """
        if not self.graphed:
            return
        self.optimizer.zero_grad(set_to_none=True)
        for module in self.graphed.values():
            vars(module).pop("forward", None)
        self.graphed.clear()
        gc.collect()

    def __call__(self, model, optimizer, x, noise, beta):
        x = as_model_data(x)
        if self.failure is not None or len(x) != self.batch_size:
            return self.eager_step(model, optimizer, x, noise, beta)
        masked = x.observed is not None
        if masked not in self.graphed and not self._capture(masked, x, noise):
            return self.eager_step(model, optimizer, x, noise, beta)
        self.beta.fill_(beta)
        args = (noise, self.beta, x.targets) + ((x.observed,) if masked else ())
        optimizer.zero_grad(set_to_none=True)
        loss, sums = self.graphed[masked](*args)
        loss.backward()
        optimizer.step()
        # Detached: the graphed function's outputs are part of an autograd
        # graph, which the epoch's running totals must not hold on to.
        return sums.detach()

    def _capture(self, masked, x, noise):
        if self.beta is None:
            self.beta = torch.ones((), device=x.device)
        # Copies: the sample arguments become the graph's input buffers, which
        # each replay overwrites with its batch.
        args = (noise.clone(), self.beta, x.targets.clone())
        args += (x.observed.clone(),) if masked else ()
        stream = torch.cuda.current_stream() if x.device.type == "cuda" else None
        try:
            graphed = self.capture(_BatchLoss(self.model, self.loss), args)
        except Exception as exc:  # noqa: BLE001 - any refusal means: train eagerly
            if stream is not None:
                # A capture that fails at its end can leave its own stream current.
                torch.cuda.set_stream(stream)
            self.failure = repr(exc)
            warnings.warn(
                f"Capturing the training step as a CUDA graph failed ({exc!r}); "
                "training goes on with eager steps. Unset SKVAE_CUDA_GRAPHS to "
                "skip the attempt.",
                UserWarning,
                stacklevel=2,
            )
            return False
        self.graphed[masked] = graphed
        return True
