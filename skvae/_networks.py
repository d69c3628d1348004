"""The VAE's torch modules: an MLP encoder, an MLP decoder and the model joining them.

Torch only. Weights are initialised from an explicit ``torch.Generator`` so that a
model built from the same seed is bit-identical, without touching torch's global RNG.
"""

import math

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "leaky_relu": nn.LeakyReLU,
}


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
