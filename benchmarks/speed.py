"""Speed: VAETransformer's training loop against a hand-written PyTorch loop.

All train the same architecture (VAETransformer's default hidden layers and
activation, mirrored decoder, learned per-feature variance, Adam at the default
learning rate) with the same batch size: the hand-written loop
slices a preloaded float32 tensor by permuted indices and has no wrapper at all; a
second hand-written loop draws its batches from ``torch.utils.data.DataLoader``; when
skorch is installed, the same network trains as a ``skorch.NeuralNet`` too (the
generic scikit-learn wrapper for torch, with its default callbacks).
Runs alternate between the loops so machine noise hits all alike; medians are
reported. Encoding is compared the same way (batches of 8192 rows, inference mode).

    python benchmarks/speed.py [--rows 20000] [--features 64] [--epochs 5] [--repeats 3]
    python benchmarks/speed.py --rows 200000 --features 100 --batch-size 1024

Prints markdown tables and writes ``speed.png`` to ``--output-dir``
(``benchmark_output`` by default).

Run it alone: two torch processes sharing the cores slow each other down many-fold.
"""

import argparse
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from torch import nn

from skvae import VAETransformer
from skvae._networks import ACTIVATIONS

# The hand-written loops follow VAETransformer's defaults, whatever they are.
DEFAULTS = VAETransformer().get_params()
HIDDEN = list(DEFAULTS["hidden_layer_sizes"])


def mlp(sizes):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[DEFAULTS["activation"]]())
    return nn.Sequential(*layers)


def permuted_batches(X, batch_size):
    order = torch.randperm(len(X), device=X.device)
    for i in range(0, len(X), batch_size):
        yield X[order[i : i + batch_size]]


def dataloader_batches(X, batch_size):
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(X), batch_size=batch_size, shuffle=True
    )
    for (x,) in loader:
        yield x


def hand_written_fit(X, n_components, epochs, batch_size, batches=permuted_batches):
    """The minimal VAE loop a PyTorch user would write.

    Returns seconds per epoch and the trained encoder.
    """
    torch.manual_seed(0)
    n_features = X.shape[1]
    encoder = mlp([n_features, *HIDDEN, 2 * n_components]).to(X.device)
    decoder = mlp([n_components, *reversed(HIDDEN), n_features]).to(X.device)
    raw_variance = nn.Parameter(torch.full((n_features,), 0.5413, device=X.device))
    params = [*encoder.parameters(), *decoder.parameters(), raw_variance]
    optimizer = torch.optim.Adam(params, lr=DEFAULTS["learning_rate_init"], fused=True)
    start = time.perf_counter()
    for _ in range(epochs):
        for x in batches(X, batch_size):
            mu, log_var = encoder(x).chunk(2, dim=1)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            variance = nn.functional.softplus(raw_variance) + 1e-3
            log_lik = -0.5 * (variance.log() + (x - decoder(z)) ** 2 / variance).sum(1)
            kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
            loss = (kl - log_lik).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if X.is_cuda:  # the GPU's queue of steps, not just their launch
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / epochs, encoder


class HandWrittenVAE(nn.Module):
    """The hand-written loop's networks as one module, for skorch."""

    def __init__(self, n_features, n_components):
        super().__init__()
        self.encoder = mlp([n_features, *HIDDEN, 2 * n_components])
        self.decoder = mlp([n_components, *reversed(HIDDEN), n_features])
        self.raw_variance = nn.Parameter(torch.full((n_features,), 0.5413))

    def forward(self, x):
        mu, log_var = self.encoder(x).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        return mu, log_var, self.decoder(z)


def skorch_fit(X, n_components, epochs, batch_size):
    """Seconds per epoch of the same VAE as a skorch NeuralNet; None without skorch."""
    try:
        from skorch import NeuralNet
    except ImportError:
        return None

    class VAENet(NeuralNet):
        def get_loss(self, y_pred, y_true, X=None, training=False):
            mu, log_var, mean = y_pred
            raw_variance = self.module_.raw_variance
            variance = nn.functional.softplus(raw_variance) + 1e-3
            x = X.to(mean.device)
            log_lik = -0.5 * (variance.log() + (x - mean) ** 2 / variance).sum(1)
            kl = 0.5 * (mu**2 + log_var.exp() - 1 - log_var).sum(1)
            return (kl - log_lik).mean()

    torch.manual_seed(0)
    net = VAENet(
        HandWrittenVAE,
        module__n_features=X.shape[1],
        module__n_components=n_components,
        criterion=nn.MSELoss,  # unused: get_loss is the ELBO
        optimizer=torch.optim.Adam,
        optimizer__fused=True,
        lr=DEFAULTS["learning_rate_init"],
        batch_size=batch_size,
        max_epochs=epochs,
        train_split=None,
        iterator_train__shuffle=True,
        device="cpu",
        verbose=0,
    )
    start = time.perf_counter()
    net.fit(X, None)
    return (time.perf_counter() - start) / epochs


def hand_written_encode(encoder, X, batch_size=8192):
    with torch.inference_mode():
        return torch.cat(
            [encoder(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
        )


def skvae_fit(X, n_components, epochs, batch_size):
    vae = VAETransformer(
        n_components,
        warmup_epochs=0,
        batch_size=batch_size,
        max_iter=epochs,
        n_iter_no_change=epochs + 1,
        random_state=0,
        device="cpu",
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        vae.fit(X)
    return (time.perf_counter() - start) / epochs, vae


def median_seconds(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--components", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output-dir", type=Path, default=Path("benchmark_output"))
    args = parser.parse_args(argv)

    rng = np.random.RandomState(0)
    X = rng.standard_normal((args.rows, args.features)).astype(np.float32)
    X_tensor = torch.from_numpy(X.copy())
    hand, loader, ours, wrapped, vae, encoder = [], [], [], [], None, None
    fit_args = (X_tensor, args.components, args.epochs, args.batch_size)
    for _ in range(args.repeats):  # alternate, so drifts in machine speed hit all
        seconds, encoder = hand_written_fit(*fit_args)
        hand.append(seconds)
        loader.append(hand_written_fit(*fit_args, batches=dataloader_batches)[0])
        seconds, vae = skvae_fit(X, args.components, args.epochs, args.batch_size)
        ours.append(seconds)
        wrapped.append(skorch_fit(X, args.components, args.epochs, args.batch_size))
    hand_s, loader_s = statistics.median(hand), statistics.median(loader)
    ours_s = statistics.median(ours)

    pca = PCA(args.components).fit(X)
    row = X[:1]
    single_vae = median_seconds(lambda: vae.transform(row), 200)
    single_pca = median_seconds(lambda: pca.transform(row), 200)
    encode_ours, encode_hand = [], []
    for _ in range(args.repeats):
        encode_hand.append(
            median_seconds(lambda: hand_written_encode(encoder, X_tensor), 1)
        )
        encode_ours.append(median_seconds(lambda: vae.transform(X), 1))
    encode_hand_s = statistics.median(encode_hand)
    encode_ours_s = statistics.median(encode_ours)

    print(
        f"{args.rows} x {args.features} float32, batch {args.batch_size}, "
        f"{torch.get_num_threads()} threads, medians of {args.repeats}"
    )
    print("| measure | hand-written | DataLoader | VAETransformer | ours vs hand |")
    print("|---|---|---|---|---|")
    rates = [args.rows / s for s in (hand_s, loader_s, ours_s)]
    print(
        "| train rows/s | " + " | ".join(f"{r:,.0f}" for r in rates) + " | "
        f"{rates[2] / rates[0]:.0%} of the rate |"
    )
    print(
        f"| train s/epoch | {hand_s:.3f} | {loader_s:.3f} | {ours_s:.3f} | "
        f"{ours_s / hand_s:.2f}x the time |"
    )
    print(
        f"| encode rows/s | {args.rows / encode_hand_s:,.0f} | | "
        f"{args.rows / encode_ours_s:,.0f} | "
        f"{encode_hand_s / encode_ours_s:.0%} of the rate |"
    )
    print(
        f"| transform 1 row | PCA: {single_pca * 1e6:.0f} us | | "
        f"{single_vae * 1e6:.0f} us | {single_vae / single_pca:.2f}x PCA's time |"
    )
    epoch_seconds = {
        "hand-written": hand_s,
        "DataLoader": loader_s,
        "VAETransformer": ours_s,
    }
    if wrapped[0] is not None:
        skorch_s = statistics.median(wrapped)
        epoch_seconds["skorch NeuralNet"] = skorch_s
        print("\n| loop | train s/epoch | VAETransformer's time against it |")
        print("|---|---|---|")
        print(f"| skorch NeuralNet | {skorch_s:.3f} | {ours_s / skorch_s:.2f}x |")
    path = plot_speed(
        epoch_seconds,
        {
            "hand-written": args.rows / encode_hand_s,
            "VAETransformer": args.rows / encode_ours_s,
        },
        {"PCA": single_pca * 1e6, "VAETransformer": single_vae * 1e6},
        f"{args.rows:,} x {args.features}, batch {args.batch_size}",
        args.output_dir,
    )
    print(f"\nwrote {path}")


def plot_speed(epoch_seconds, encode_rates, single_row_us, title, output_dir):
    """Three bar charts side by side; returns the path of the PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        (epoch_seconds, "train s / epoch (lower is better)"),
        (encode_rates, "encode rows / s (higher is better)"),
        (single_row_us, "transform of 1 row, us (lower is better)"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
    for ax, (values, label) in zip(axes, panels, strict=True):
        colors = ["C1" if name == "VAETransformer" else "C0" for name in values]
        ax.barh(list(values), list(values.values()), color=colors)
        ax.invert_yaxis()
        ax.set_xlabel(label)
    fig.suptitle(f"speed: {title}")
    fig.tight_layout()
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "speed.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
