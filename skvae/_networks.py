"""The VAE's torch modules: an MLP encoder, an MLP decoder and the model joining them.

Torch only. Weights are initialised from an explicit ``torch.Generator`` so that a
model built from the same seed is bit-identical, without touching torch's global RNG.
"""

import math

import numpy as np
import torch
from scipy.special import erf
from torch import nn

from ._likelihoods import WIDE_LEVELS, embedding_dim, make_table_likelihood

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


class TableReader(nn.Module):
    """What the encoder reads of a table row, built on the model's device from
    the data's one-entry-per-column layout (see ``skvae._schema``).

    Gaussian columns as they are; counts as standardised log1p(count);
    Bernoulli values as -1/+1; categorical columns one-hot, or through a learned
    embedding for columns of more than ``WIDE_LEVELS`` levels; 0 for missing
    entries; then the observed-flags when the layout asks for them. For a table
    of Gaussian columns without holes it is the identity.

    Parameters
    ----------
    layout : ModelLayout
    generator : torch.Generator, default=None
        Source of the embeddings' initial values.
    """

    def __init__(self, layout, generator=None):
        super().__init__()
        self.n_numeric = layout.n_numeric
        self.n_gaussian = layout.n_gaussian
        self.n_poisson = layout.n_poisson
        self.mask_inputs = layout.mask_inputs
        self.register_buffer(
            "log_mean", torch.tensor(layout.poisson_log_mean, dtype=torch.float32)
        )
        self.register_buffer(
            "log_scale", torch.tensor(layout.poisson_log_scale, dtype=torch.float32)
        )
        narrow = [n for n in layout.levels if n <= WIDE_LEVELS]
        # Where each narrow column's one-hot starts, so that all of them are
        # written by one scatter.
        self.register_buffer(
            "narrow_offsets",
            torch.tensor(np.cumsum([0, *narrow[:-1]]), dtype=torch.long),
        )
        self.narrow_width = int(sum(narrow))
        # An index tensor (a buffer, so it moves with the module): a Python list
        # would be copied to the device on every forward pass.
        self.register_buffer(
            "narrow_columns",
            torch.tensor(
                [
                    self.n_numeric + c
                    for c, n in enumerate(layout.levels)
                    if n <= WIDE_LEVELS
                ],
                dtype=torch.long,
            ),
        )
        self.wide_columns = [
            self.n_numeric + c for c, n in enumerate(layout.levels) if n > WIDE_LEVELS
        ]
        self.embeddings = nn.ModuleList()
        for n in layout.levels:
            if n > WIDE_LEVELS:
                dim = embedding_dim(n)
                # skip_init: nn.Embedding would draw from the global RNG.
                embedding = nn.utils.skip_init(nn.Embedding, n, dim)
                # Rows of norm about 1, as a one-hot row has.
                nn.init.normal_(embedding.weight, 0.0, dim**-0.5, generator=generator)
                self.embeddings.append(embedding)
        self.width = (
            self.n_numeric
            + self.narrow_width
            + sum(e.embedding_dim for e in self.embeddings)
            + (layout.n_columns if self.mask_inputs else 0)
        )
        self.identity = (
            layout.n_numeric == layout.n_gaussian == layout.n_columns
            and not self.mask_inputs
        )

    def forward(self, x, observed=None):
        if self.identity:
            return x
        numeric = x[:, : self.n_numeric]
        if self.n_numeric > self.n_gaussian:
            gaussian, counts, binary = numeric.split(
                [
                    self.n_gaussian,
                    self.n_poisson,
                    self.n_numeric - self.n_gaussian - self.n_poisson,
                ],
                dim=1,
            )
            counts = (torch.log1p(counts.clamp(min=0)) - self.log_mean) / self.log_scale
            numeric = torch.cat((gaussian, counts, 2.0 * binary - 1.0), dim=1)
        if observed is not None:
            numeric = numeric * observed[:, : self.n_numeric]
        parts = [numeric]
        if self.narrow_width:
            columns = self.narrow_columns
            codes = x.index_select(1, columns).long() + self.narrow_offsets
            seen = (
                torch.ones_like(codes, dtype=x.dtype)
                if observed is None
                else observed.index_select(1, columns)
            )
            one_hot = x.new_zeros((x.shape[0], self.narrow_width))
            parts.append(one_hot.scatter_(1, codes, seen))
        for column, embedding in zip(self.wide_columns, self.embeddings, strict=True):
            embedded = embedding(x[:, column].long())
            if observed is not None:
                embedded = embedded * observed[:, column : column + 1]
            parts.append(embedded)
        if self.mask_inputs:
            parts.append(torch.ones_like(x) if observed is None else observed)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class Encoder(nn.Module):
    """x -> (mu, log_var) of the diagonal Gaussian q(z|x).

    ``reader`` turns the data's layout into the network's input (see
    ``TableReader``); None reads ``n_features`` values as they are.
    """

    def __init__(
        self,
        n_features,
        hidden_layer_sizes,
        n_components,
        activation,
        generator,
        reader=None,
    ):
        super().__init__()
        self.reader = reader
        sizes = [n_features, *hidden_layer_sizes, 2 * n_components]
        self.net = make_mlp(sizes, activation, generator)

    def forward(self, x, observed=None):
        return self.from_read(self.read(x, observed))

    def read(self, x, observed=None):
        """The rows as the network's first layer reads them."""
        return x if self.reader is None else self.reader(x, observed)

    def from_read(self, inputs):
        """(mu, log_var) of rows already ``read``."""
        # float32 out (a no-op unless a bfloat16 autocast is on), so that the
        # KL and the reparameterisation keep their precision.
        mu, log_var = self.net(inputs).float().chunk(2, dim=1)
        return mu, log_var

    @property
    def reads_values_as_they_are(self):
        """True when the network's input is the data itself (no reader work)."""
        return self.reader is None or self.reader.identity


class Decoder(nn.Module):
    """z -> raw parameters of p(x|z), interpreted by the likelihood."""

    def __init__(
        self, n_components, hidden_layer_sizes, n_params, activation, generator
    ):
        super().__init__()
        sizes = [n_components, *reversed(hidden_layer_sizes), n_params]
        self.net = make_mlp(sizes, activation, generator)

    def forward(self, z):
        return self.net(z).float()  # (as the encoder's outputs)


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
    reader : TableReader, default=None
        What the encoder reads of the data; its ``width`` replaces
        ``n_features`` as the encoder's input width. None: the data as it is.
    """

    def __init__(
        self,
        n_features,
        n_components,
        hidden_layer_sizes,
        activation,
        likelihood,
        generator,
        reader=None,
    ):
        super().__init__()
        self.n_components = n_components
        if reader is not None:
            n_features = reader.width
        self.encoder = Encoder(
            n_features,
            hidden_layer_sizes,
            n_components,
            activation,
            generator,
            reader,
        )
        self.decoder = Decoder(
            n_components, hidden_layer_sizes, likelihood.n_params, activation, generator
        )
        self.likelihood = likelihood

    @property
    def n_gaussian_inputs(self):
        """How many leading entries of a row (the model's layout) are
        Gaussian numbers, standardised: all of them without a reader."""
        reader = self.encoder.reader
        if reader is None:
            return self.encoder.net[0].in_features
        return reader.n_gaussian

    def encode(self, x, observed=None):
        return self.encoder(x, observed)

    def decode(self, z):
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu, log_var, noise):
        """z = mu + sigma * noise: a sample of q(z|x) that gradients flow through."""
        return mu + torch.exp(0.5 * log_var) * noise

    def forward(self, x, noise, observed=None):
        mu, log_var = self.encode(x, observed)
        z = self.reparameterize(mu, log_var, noise)
        return mu, log_var, self.decode(z)


def build_vae(layout, n_components, hidden_layer_sizes, activation, generator):
    """The VAE of a table of ``layout`` (``skvae._schema.ModelLayout``): its
    reader, networks and likelihood, weights drawn from ``generator``.

    The reader and the likelihood draw weights only for wide label columns, so
    every other table's networks start as they always did.
    """
    reader = TableReader(layout, generator)
    return VAE(
        n_features=reader.width,
        n_components=n_components,
        hidden_layer_sizes=hidden_layer_sizes,
        activation=activation,
        likelihood=make_table_likelihood(layout, generator),
        generator=generator,
        reader=reader,
    )
