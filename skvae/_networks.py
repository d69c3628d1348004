"""The VAE's torch modules: an MLP encoder, an MLP decoder and the model joining them.

Torch only. Weights are initialised from an explicit ``torch.Generator`` so that a
model built from the same seed is bit-identical, without touching torch's global RNG.
"""

import math

import numpy as np
import torch
from scipy.special import erf
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


# The activations on numpy arrays, written as torch defines them, for numpy_forward.
_NUMPY_ACTIVATIONS = {
    nn.ReLU: lambda h: np.maximum(h, 0),
    nn.ELU: lambda h: np.where(h > 0, h, np.expm1(np.minimum(h, 0))),
    nn.GELU: lambda h: 0.5 * h * (1 + erf(h / math.sqrt(2))),
    nn.SiLU: lambda h: h / (1 + np.exp(-h)),
    nn.Tanh: np.tanh,
    nn.LeakyReLU: lambda h: np.where(h > 0, h, 0.01 * h),
}


class NumpyMLP:
    """Runs a CPU network built by ``make_mlp`` on float32 arrays, without torch.

    For a few rows torch's per-operation dispatch costs more than the arithmetic
    (about 75 us against 35 us for one row through 64-256-128-4). The weights are
    held as zero-copy numpy views of the parameters, so in-place updates (training)
    show through; ``matches`` tells whether the network still has the same
    parameter tensors, e.g. after parameters were replaced.
    """

    def __init__(self, mlp):
        self.steps = []
        self._tensors = []
        for layer in mlp:
            if isinstance(layer, nn.Linear):
                weight, bias = layer.weight.detach(), layer.bias.detach()
                self.steps.append((weight.numpy().T, bias.numpy()))
                self._tensors.append((layer, weight.data_ptr(), bias.data_ptr()))
            else:
                self.steps.append(_NUMPY_ACTIVATIONS[type(layer)])

    def matches(self):
        return all(
            layer.weight.data_ptr() == weight and layer.bias.data_ptr() == bias
            for layer, weight, bias in self._tensors
        )

    def __call__(self, x):
        for step in self.steps:
            if isinstance(step, tuple):
                x = x @ step[0] + step[1]
            else:
                x = step(x).astype(np.float32, copy=False)
        return x


def _init_linear(layer, generator):
    """PyTorch's default ``nn.Linear`` initialisation, drawn from ``generator``."""
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    bound = 1.0 / math.sqrt(layer.in_features)
    nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def make_mlp(sizes, activation, generator):
    """Linear layers through ``sizes`` with ``activation`` between them.

    The last layer has no activation: its output is a distribution parameter.
    """
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        # skip_init: nn.Linear would otherwise draw its weights from the global RNG.
        linear = nn.utils.skip_init(nn.Linear, n_in, n_out)
        _init_linear(linear, generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """x -> (mu, log_var) of the diagonal Gaussian q(z|x)."""

    def __init__(
        self, n_features, hidden_layer_sizes, n_components, activation, generator
    ):
        super().__init__()
        sizes = [n_features, *hidden_layer_sizes, 2 * n_components]
        self.net = make_mlp(sizes, activation, generator)

    def forward(self, x):
        mu, log_var = self.net(x).chunk(2, dim=1)
        return mu, log_var


class Decoder(nn.Module):
    """z -> raw parameters of p(x|z), interpreted by the likelihood."""

    def __init__(
        self, n_components, hidden_layer_sizes, n_params, activation, generator
    ):
        super().__init__()
        sizes = [n_components, *reversed(hidden_layer_sizes), n_params]
        self.net = make_mlp(sizes, activation, generator)

    def forward(self, z):
        return self.net(z)


class VAE(nn.Module):
    """Encoder, decoder and likelihood of a variational autoencoder.

    Parameters
    ----------
    n_features : int
        Dimension of the data.
    n_components : int
        Dimension of the latent space; the prior is N(0, I).
    hidden_layer_sizes : sequence of int
        Widths of the encoder's hidden layers; the decoder mirrors them.
    activation : str
        Key of ``ACTIVATIONS``.
    likelihood : nn.Module
        The observation model p(x|z); see ``skvae._likelihoods``.
    generator : torch.Generator
        Source of the initial weights.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        likelihood,
        generator,
    ):
        super().__init__()
        self.n_components = n_components
        self.encoder = Encoder(
            n_features, hidden_layer_sizes, n_components, activation, generator
        )
        self.decoder = Decoder(
            n_components, hidden_layer_sizes, likelihood.n_params, activation, generator
        )
        self.likelihood = likelihood

    def encode(self, x):
        return self.encoder(x)

    def decode(self, z):
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu, log_var, noise):
        """z = mu + sigma * noise: a sample of q(z|x) that gradients flow through."""
        return mu + torch.exp(0.5 * log_var) * noise

    def forward(self, x, noise):
        mu, log_var = self.encode(x)
        z = self.reparameterize(mu, log_var, noise)
        return mu, log_var, self.decode(z)
